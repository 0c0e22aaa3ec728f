//! Time formats shared by the JSON the proxy writes (`/status`, the
//! failover timeline, the reload and discovery status). A leaf: it uses no
//! other module of the crate, so any of them may use it.

/// `#[serde(with = "crate::time::rfc3339")]`: a `SystemTime` as RFC 3339
/// UTC with milliseconds.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;
    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
}
