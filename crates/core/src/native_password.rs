//! mysql_native_password without plaintext (docs/architecture.md, Failover:
//! logging in again without a password): from a greeting scramble, the
//! client's 20-byte response and the stored hash `SHA1(SHA1(pw))`, derive and
//! verify `SHA1(pw)`, then answer any later scramble with it. Pure functions,
//! byte-literal tests.
//!
//! A leaf of the crate: the credential store, the session's re-login and the config's `[[users]]` validation use it.
//!
//! ```text
//! response = SHA1(pw) XOR SHA1(scramble ‖ SHA1(SHA1(pw)))
//! SHA1(pw) = response XOR SHA1(scramble ‖ stored)   verified: SHA1(SHA1(pw)) == stored
//! ```

use std::fmt;

use sha1::{Digest, Sha1};

/// Length of a SHA1 digest, a native-password scramble and response.
pub(crate) const LEN: usize = 20;

/// Why a hash, scramble or response cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NativeError {
    #[error("a mysql_native_password hash is `*` followed by 40 hex digits (as in mysql.user)")]
    BadHash,
    #[error("the scramble is {0} bytes, expected 20")]
    BadScramble(usize),
    #[error("the auth response is {0} bytes, expected 20 (an empty password cannot be migrated)")]
    BadResponse(usize),
    #[error("the auth response does not match the stored hash (wrong or stale hash)")]
    Mismatch,
}

/// Fill `bytes` with zeroes in a way the optimiser keeps.
fn wipe(bytes: &mut [u8; LEN]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// `SHA1(SHA1(pw))`, the `*HEX` value of mysql.user. Enough, together with
/// one observed login exchange, to recover `SHA1(pw)`: treated as a secret
/// (Debug prints `<redacted>`, no Display, wiped on drop).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash([u8; LEN]);

impl StoredHash {
    /// Parse the `*` + 40 hex digits form (either case).
    pub fn parse(text: &str) -> Result<StoredHash, NativeError> {
        let hex = text.strip_prefix('*').ok_or(NativeError::BadHash)?;
        if hex.len() != 2 * LEN || !hex.is_ascii() {
            return Err(NativeError::BadHash);
        }
        let mut out = [0u8; LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| NativeError::BadHash)?;
        }
        Ok(StoredHash(out))
    }

    /// The hash of a plaintext password (tests, tooling).
    pub fn of_password(password: &[u8]) -> StoredHash {
        StoredHash(sha1(&sha1(password)))
    }

    pub fn as_bytes(&self) -> &[u8; LEN] {
        &self.0
    }
}

/// Debug as `Name(<redacted>)` and wiped on drop, for the secret byte
/// arrays of this module.
macro_rules! redacted_and_wiped {
    ($($name:ident),+) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                wipe(&mut self.0);
            }
        }
    )+};
}

redacted_and_wiped!(StoredHash, DerivedPassword);

/// `SHA1(pw)`: answers any native-password scramble for the user. Secret:
/// Debug prints `<redacted>`, no Display, wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct DerivedPassword([u8; LEN]);

fn sha1(bytes: &[u8]) -> [u8; LEN] {
    Sha1::digest(bytes).into()
}

fn sha1_pair(a: &[u8], b: &[u8]) -> [u8; LEN] {
    let mut h = Sha1::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

fn xor(a: &[u8; LEN], b: &[u8; LEN]) -> [u8; LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Recover `SHA1(pw)` from one login exchange and check it against `stored`:
/// a wrong or stale hash is [`NativeError::Mismatch`], never a wrong login.
pub fn derive(
    scramble: &[u8],
    response: &[u8],
    stored: &StoredHash,
) -> Result<DerivedPassword, NativeError> {
    if scramble.len() != LEN {
        return Err(NativeError::BadScramble(scramble.len()));
    }
    let response: &[u8; LEN] = response
        .try_into()
        .map_err(|_| NativeError::BadResponse(response.len()))?;
    let mut mask = sha1_pair(scramble, &stored.0);
    let derived = DerivedPassword(xor(response, &mask));
    wipe(&mut mask);
    let mut check = sha1(&derived.0);
    // Constant-time comparison: no early exit on the first differing byte.
    let diff = check
        .iter()
        .zip(stored.0.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    wipe(&mut check);
    if diff != 0 {
        return Err(NativeError::Mismatch);
    }
    Ok(derived)
}

/// Answer `scramble` as the user would:
/// `SHA1(pw) XOR SHA1(scramble ‖ SHA1(SHA1(pw)))` (equals
/// `mysql_common::scramble::scramble_native(scramble, pw)`).
pub fn respond(password: &DerivedPassword, scramble: &[u8; LEN]) -> [u8; LEN] {
    let mut stored = sha1(&password.0);
    let mut mask = sha1_pair(scramble, &stored);
    let out = xor(&password.0, &mask);
    wipe(&mut stored);
    wipe(&mut mask);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::scramble::scramble_native;

    /// mysql.user for password "app": `SELECT PASSWORD('app')`.
    const APP_HASH: &str = "*5BCB3E6AC345B435C7C2E6B7949A04CE6F6563D3";
    const SCRAMBLE_A: &[u8; 20] = b"abcdefghijklmnopqrst";
    const SCRAMBLE_B: &[u8; 20] = b"0123456789ABCDEFGHIJ";

    #[test]
    fn parses_the_mysql_user_form() {
        let h = StoredHash::parse(APP_HASH).unwrap();
        assert_eq!(h, StoredHash::of_password(b"app"));
        assert_eq!(StoredHash::parse(&APP_HASH.to_lowercase()).unwrap(), h);
        assert_eq!(h.as_bytes()[..3], [0x5b, 0xcb, 0x3e]);
        for bad in [
            "",
            "*",
            &APP_HASH[1..],
            &APP_HASH[..40],
            "*5BCB3E6AC345B435C7C2E6B7949A04CE6F6563DG",
        ] {
            assert_eq!(StoredHash::parse(bad), Err(NativeError::BadHash), "{bad:?}");
        }
        assert_eq!(
            StoredHash::parse("*ééééééééééééééééééééééééééééééééééééééé"),
            Err(NativeError::BadHash)
        );
    }

    #[test]
    fn derives_and_answers_a_new_scramble_like_the_password_would() {
        let stored = StoredHash::parse(APP_HASH).unwrap();
        let response = scramble_native(SCRAMBLE_A, b"app").unwrap();
        let derived = derive(SCRAMBLE_A, &response, &stored).unwrap();
        assert_eq!(derived.0, sha1(b"app"));
        let answer = respond(&derived, SCRAMBLE_B);
        assert_eq!(answer, scramble_native(SCRAMBLE_B, b"app").unwrap());
    }

    #[test]
    fn byte_literal_exchange() {
        // SHA1("app") and the response to SCRAMBLE_A, computed independently.
        let sha1_app: [u8; 20] = [
            0x7d, 0x10, 0x43, 0x47, 0x3d, 0x55, 0xbf, 0xa9, 0x0e, 0x85, 0x30, 0xd3, 0x58, 0x01,
            0xd4, 0xe3, 0x81, 0xbc, 0x69, 0xf0,
        ];
        let response: [u8; 20] = [
            0x9b, 0x7d, 0x58, 0x72, 0xd8, 0x4e, 0x55, 0xf2, 0xa3, 0xc7, 0xab, 0x9d, 0xfc, 0x24,
            0x40, 0x2d, 0x68, 0xa5, 0x10, 0x40,
        ];
        assert_eq!(scramble_native(SCRAMBLE_A, b"app").unwrap(), response);
        let stored = StoredHash::parse(APP_HASH).unwrap();
        assert_eq!(derive(SCRAMBLE_A, &response, &stored).unwrap().0, sha1_app);
    }

    #[test]
    fn wrong_or_stale_hash_fails_verification() {
        let response = scramble_native(SCRAMBLE_A, b"app").unwrap();
        let stale = StoredHash::of_password(b"old-password");
        assert_eq!(
            derive(SCRAMBLE_A, &response, &stale),
            Err(NativeError::Mismatch)
        );
        let stored = StoredHash::of_password(b"app");
        assert_eq!(
            derive(SCRAMBLE_B, &response, &stored),
            Err(NativeError::Mismatch)
        );
        let mut flipped = response;
        flipped[0] ^= 1;
        assert_eq!(
            derive(SCRAMBLE_A, &flipped, &stored),
            Err(NativeError::Mismatch)
        );
    }

    #[test]
    fn lengths_are_checked() {
        let stored = StoredHash::of_password(b"app");
        assert_eq!(
            derive(&SCRAMBLE_A[..19], &[0; 20], &stored),
            Err(NativeError::BadScramble(19))
        );
        assert_eq!(
            derive(SCRAMBLE_A, &[], &stored),
            Err(NativeError::BadResponse(0))
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let stored = StoredHash::parse(APP_HASH).unwrap();
        let shown = format!("{stored:?} {:?}", DerivedPassword(sha1(b"app")));
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.to_uppercase().contains("5BCB"), "{shown}");
        assert!(!shown.contains("7d1043"), "{shown}");
    }
}
