//! What the control and data paths share about a change of primary: the
//! credentials that let a session log in again on the new primary without a
//! plaintext password, the check that a new primary is writable and the
//! server the record names before it becomes the route, and the timeline of
//! the last failover.
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
