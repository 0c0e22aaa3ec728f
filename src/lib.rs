//! mysql-zk-proxy: a MySQL/MariaDB wire-protocol proxy that follows the primary
//! published in ZooKeeper.
//!
//! Data flow (control plane publishes immutable snapshots, the data path reads them):
//!
//! ```text
//!   ZooKeeper ──watch──▶ discovery ──Arc<Route>──▶ routing::RouteTable (arc-swap + watch)
//!                                                        │ one load per accept
//!   client ──TCP──▶ listener ──spawn──▶ session ─────────┘
//!                                        │ handshake: forward the backend's greeting,
//!                                        │            pass auth through (backend decides)
//!                                        ▼
//!                                     backend (TCP to the primary)
//!                                        │ relay: bytes as they are, protocol scanner
//!                                        │        tracks command/response boundaries
//!   admin (HTTP: /live /ready /status /metrics) reads routing, discovery and metrics.
//! ```
//!
//! Every long-lived task hangs off one `CancellationToken` + `TaskTracker`
//! owned by [`proxy::Proxy`]; nothing on the data path is global, so several
//! proxies can run in one process (the integration tests do).

pub mod admin;
pub mod backend;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod failover;
pub mod listener;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod sandbox;
pub mod session;
