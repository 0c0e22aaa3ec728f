//! mysql-zk-proxy's core layer: the proxy itself, a MySQL/MariaDB
//! wire-protocol proxy that follows the primary published in ZooKeeper.
//! Config, discovery, routing, sessions, the listener, backends, admin
//! HTTP, metrics, credentials, verify, timeline, reload, TLS, workers and the [`proxy::Proxy`]
//! that assembles them.
//!
//! Layer: above `mysql-zk-proxy-protocol` (the sans-IO codec), which is the
//! only crate of the workspace it may depend on. The operator commands and
//! the drill (`mysql-zk-proxy-ops`), the binary and the test bench
//! (`mysql-zk-proxy-sandbox`) sit above it; nothing here knows them.
//!
//! Data flow (control plane publishes immutable snapshots, the data path reads them):
//!
//! ```text
//!   ZooKeeper ──watch──▶ discovery ──record──▶ fence (verify writable) ──Arc<Route>──▶ routing::RouteTable
//!       ▲  users_path ──▶ credentials           (arc-swap + change watch) │
//!       └─ proxies/<id>: registration + drain acknowledgement                         │ one load per accept,
//!                                                                                     │ a fence check per command
//!   client ──TCP──▶ listener (limits, PROXY header) ──spawn──▶ session ───────────────┘
//!                                        │ greeting forwarded (caps adjusted); login passed
//!                                        │ through packet by packet and recorded
//!                                        ▼
//!                                     backend (TCP to the primary)
//!                                        │ relay: bytes as they are, in buffers borrowed from
//!                                        │ the proxy's pool while in flight; commands leave one
//!                                        │ at a time, the fence asked before each; the protocol
//!                                        │ tracker knows reply boundaries and rest points
//!                                        ▼ route moved → at a rest point: the session's state
//!                                          read on the old primary (session::snapshot), a new
//!                                          login with the derived credential, the state written
//!                                          as values and read back; or 9005 / 9006
//!   admin (HTTP: /live /ready /status /metrics) reads routing, discovery, metrics, timeline.
//!   reload (SIGHUP) swaps the live config; limits and credentials apply at once,
//!   TLS certificates are read again (tls: acceptor for clients, connector for backends).
//!   Above this crate, mysql-zk-proxy-ops (`publish`, `switchover`) writes the record
//!   with compare-and-set and drives a planned switchover: draining → every
//!   proxies/<id> acknowledges → fence, GTID catch-up, promote → serving record.
//!   Below it, mysql-zk-proxy-protocol holds the framer, tracker and handshake.
//! ```
//!
//! Every long-lived task hangs off one `CancellationToken` + `TaskTracker`
//! owned by [`proxy::Proxy`]; nothing on the data path is global, so several
//! proxies can run in one process (the integration tests do).

pub mod acknowledged;
pub mod admin;
pub mod backend;
pub mod config;
pub mod control;
pub mod credentials;
pub mod discovery;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod native_password;
mod net;
pub mod proxy;
pub mod proxy_header;
pub mod read_only;
pub mod reload;
pub mod replicas;
pub mod routing;
pub mod session;
mod time;
pub mod timeline;
pub mod tls;
pub mod verify;
pub mod workers;
