//! Time formats shared by the JSON the proxy writes (`/status`, the
//! failover timeline, the reload and discovery status). A leaf: it uses no
//! other module of the crate, so any of them may use it.

/// `#[serde(with = "crate::time::rfc3339")]`: a `SystemTime` as RFC 3339
/// UTC with milliseconds (read back by the drill, which deserializes
/// `/status` into the proxy's own types).
pub(crate) mod rfc3339 {
    use std::time::SystemTime;
    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}
