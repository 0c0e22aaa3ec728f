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
//!   ZooKeeper ──watch──▶ discovery ──record──▶ verify (writable, right server) ──▶ promote
//!       │  users_path ──▶ credentials                  ──Arc<Route>──▶ routing::RouteTable
//!       │  replicas/  ──▶ ReplicaSet ──▶ replicas (health checks, choice)   │ (arc-swap + watch)
//!       └─ proxies/<id>: registration, drain acknowledgement;               │ one load per accept,
//!          failovers/<epoch>/<id>: the loss report (acknowledged)          │ a fence check per command
//!                                                                          │
//!   client ──TCP──▶ listener (limits, PROXY header) ──spawn──▶ session ─────┘
//!   client ──TCP──▶ read_only listener ──(a qualified replica's route)──▶ session
//!                                        │ greeting forwarded (caps adjusted); login passed
//!                                        │ through packet by packet and recorded
//!                                        ▼
//!                                     backend (TCP to the primary, or to a replica)
//!                                        │ relay: bytes as they are, in buffers borrowed from
//!                                        │ the proxy's pool while in flight; commands leave one
//!                                        │ at a time, the fence asked before each (and, on a
//!                                        │ replica, the causal wait); the protocol tracker knows
//!                                        │ reply boundaries and rest points; commit OKs feed the
//!                                        │ ledger (acknowledged), stripped for a client that did
//!                                        │ not ask for session tracking
//!                                        ▼ route moved → at a rest point: the session's state
//!                                          read on the old primary (session::snapshot), a new
//!                                          login with the derived credential, the state written
//!                                          as values and read back; or 9005 / 9006
//!   acknowledged: at a route move, the old term's acknowledged GTIDs against the new
//!   primary's position (control logins): the loss report, and the gate before new writes.
//!   admin (HTTP: /live /ready /status /metrics) reads routing, discovery, metrics,
//!   timeline, replicas and the ledger.
//!   reload (SIGHUP) swaps the live config; limits and credentials apply at once,
//!   TLS certificates are read again (tls: acceptor for clients, connector for backends).
//!   Above this crate, mysql-zk-proxy-ops (`publish`, `switchover`) writes the records
//!   with compare-and-set and drives a planned switchover: draining → every
//!   proxies/<id> acknowledges → read_only = 1, GTID catch-up, promote → serving record.
//!   Below it, mysql-zk-proxy-protocol holds the framer, tracker, handshake, OK
//!   packets and GTIDs.
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
