//! Admin HTTP server: /live, /ready, /status (JSON), /metrics (Prometheus).
//!
//! OWNED BY THE ADMIN HELPER — interface below is fixed, body to be written.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::discovery::DiscoveryHandle;
use crate::metrics::{Metrics, Stats};
use crate::routing::RouteTable;

/// What the admin endpoints read.
pub struct AdminState {
    pub config: Arc<Config>,
    pub table: Arc<RouteTable>,
    pub discovery: DiscoveryHandle,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<Stats>,
    pub started: SystemTime,
}

pub async fn serve(listener: TcpListener, state: Arc<AdminState>, cancel: CancellationToken) {
    let _ = (listener, state);
    cancel.cancelled().await
}

/// serde helper: `SystemTime` as an RFC 3339 string.
pub mod rfc3339 {
    use std::time::SystemTime;
    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
}
