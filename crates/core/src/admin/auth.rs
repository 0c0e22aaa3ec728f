//! The `admin.token` check: when a token is configured, /status answers only
//! requests carrying `Authorization: Bearer <token>` (compared in constant
//! time); /live, /ready and /metrics stay open for probes and scrapers.

use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use sha1::{Digest, Sha1};

use super::{text, AdminState, Body};

/// Paths that need the token when one is set.
const PROTECTED: &[&str] = &["/status"];

/// `None` when the request may proceed, else the refusal (401, or 500 when
/// the configured token cannot be read).
pub(super) fn check(
    state: &AdminState,
    path: &str,
    authorization: Option<&HeaderValue>,
) -> Option<Response<Body>> {
    if !PROTECTED.contains(&path) {
        return None;
    }
    let token = match state.config.load().admin.resolve_token() {
        Ok(None) => return None,
        Ok(Some(token)) => token,
        Err(e) => {
            tracing::warn!(error = %e, "admin: cannot read the admin token; refusing {path}");
            return Some(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "admin token unavailable",
            ));
        }
    };
    let offered = authorization
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if same(offered, token.expose().as_bytes()) {
        return None;
    }
    let mut res = text(StatusCode::UNAUTHORIZED, "unauthorized");
    res.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(res)
}

/// Constant-time equality: both sides are hashed first, so neither the
/// length nor the position of the first difference shows in the timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha1::digest(a), Sha1::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn equal_only_when_identical() {
        assert!(same(b"token-0123456789ab", b"token-0123456789ab"));
        assert!(!same(b"token-0123456789ab", b"token-0123456789ac"));
        assert!(!same(b"", b"token"));
        assert!(!same(b"token-0123456789ab ", b"token-0123456789ab"));
    }
}
