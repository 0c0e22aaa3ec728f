//! Accept loop: one task per client connection, tracked for shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::Stats;
use crate::routing::RouteTable;

/// Everything a session needs, shared by all sessions of one proxy.
pub struct Context {
    pub config: Arc<Config>,
    pub table: Arc<RouteTable>,
    pub stats: Arc<Stats>,
    pub cancel: CancellationToken,
    pub sessions: TaskTracker,
}

pub async fn accept_loop(listener: TcpListener, ctx: Arc<Context>) {
    let _ = (listener, ctx);
}
