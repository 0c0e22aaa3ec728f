//! Failover without surprises (issue 4): what the proxy needs to move
//! sessions and routes safely from one primary to the next.
//!
//! - [`native`]: mysql_native_password derivation (session migration without plaintext).
//! - [`credentials`]: the credential store, a lock-free snapshot of users' hashes.
//! - [`config`]: `[[users]]` and `[fencing]`.
//! - [`verify`]: checking a new primary (writable, right server) before routing to it.

pub mod config;
pub mod credentials;
pub mod native;
pub mod timeline;
pub mod verify;
