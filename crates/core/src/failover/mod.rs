//! What the control and data paths share about a change of primary: the
//! credentials that let a session log in again on the new primary without a
//! plaintext password, the check that a new primary is writable and the
//! server the record names before it becomes the route, and the timeline of
//! the last failover.
//!
//! - [`native`]: mysql_native_password derivation (session migration without
//!   plaintext); it lives in the leaf [`crate::native_password`], which the
//!   config's `[[users]]` validation uses too.
//! - [`credentials`]: the credential store, a lock-free snapshot of users' hashes.
//!   Its configuration, `[[users]]` and `[fencing]`, is in [`crate::config`].
//! - [`verify`]: checking a new primary (writable, right server) before routing to it.

pub mod credentials;
pub use crate::native_password as native;
pub mod timeline;
pub mod verify;
