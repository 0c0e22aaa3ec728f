//! Admin HTTP server: /live, /ready, /status (JSON), /metrics (Prometheus).
//! HTTP/1.1 on hyper, one task per connection, everything stops on cancel.

mod auth;
mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::DiscoveryHandle;
use crate::listener::admission::Registry;
use crate::metrics::{Metrics, Stats};
use crate::reload::LiveConfig;
use crate::routing::RouteTable;

pub use status::Status;

/// A client that sends no request headers within this time is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, how long an open connection may take to finish its response.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the admin endpoints read.
pub struct AdminState {
    /// The running config (swapped at a reload; records the last reload).
    pub config: Arc<LiveConfig>,
    /// Live sessions with their client addresses.
    pub registry: Arc<Registry>,
    pub table: Arc<RouteTable>,
    pub discovery: DiscoveryHandle,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<Stats>,
    pub started: SystemTime,
    /// The address the client listener is bound to (the configured one with
    /// its port resolved).
    pub listen_addr: SocketAddr,
    /// Set when a graceful shutdown begins: `/ready` answers 503 from then on
    /// so load balancers stop sending new clients.
    pub shutting_down: AtomicBool,
    /// The last failover's timeline.
    pub timeline: Arc<crate::timeline::Timeline>,
    /// The read-only listener's routing and address, when it is on.
    pub read_only: Option<(Arc<crate::replicas::ReadRouter>, String)>,
    /// Acknowledged commits and loss reports.
    pub ledger: Arc<crate::acknowledged::Ledger>,
}

impl AdminState {
    /// Why the proxy is not ready for new clients, or `None` when it is:
    /// a primary is known and the ZooKeeper session is usable.
    pub(crate) fn not_ready(&self) -> Option<String> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Some("shutting down".into());
        }
        if self.table.current().primary.is_none() {
            return Some("no primary known".into());
        }
        let zk = self.discovery.status.borrow();
        if !zk.usable() {
            return Some(format!("zookeeper {}", zk.state.label()));
        }
        None
    }
}

pub(crate) type Body = Full<Bytes>;

/// Serve admin HTTP on `listener` until `cancel` fires, then close every
/// connection (in-flight responses get [`CLOSE_GRACE`]) and return.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, cancel: CancellationToken) {
    let open = listener.local_addr().is_ok_and(|a| !a.ip().is_loopback());
    if open && matches!(state.config.load().admin.resolve_token(), Ok(None)) {
        tracing::warn!("admin HTTP listens beyond loopback without admin.token: /status is readable by anyone who can reach it");
    }
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(connection(stream, state.clone(), cancel.clone()));
            }
            Err(e) => {
                // e.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "admin: accept failed");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

async fn connection(stream: TcpStream, state: Arc<AdminState>, cancel: CancellationToken) {
    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
        let bearer = req.headers().get(hyper::header::AUTHORIZATION);
        let res = match auth::check(&state, req.uri().path(), bearer) {
            Some(refused) => refused,
            None => respond(&state, req.method(), req.uri().path()),
        };
        async move { Ok::<_, Infallible>(res) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(CLOSE_GRACE, conn).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "admin: connection ended with an error");
    }
}

/// The response to `method path` (the request body is never read).
pub fn respond(state: &AdminState, method: &Method, path: &str) -> Response<Body> {
    if !matches!(path, "/live" | "/ready" | "/status" | "/metrics") {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    match path {
        "/live" => text(StatusCode::OK, "ok"),
        "/ready" => match state.not_ready() {
            None => text(StatusCode::OK, "ready"),
            Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, &reason),
        },
        "/status" => json(&Status::collect(state)),
        _ => with_type(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.render(),
        ),
    }
}

/// A one-line plain-text response.
pub(crate) fn text(code: StatusCode, line: &str) -> Response<Body> {
    with_type(code, "text/plain; charset=utf-8", format!("{line}\n"))
}

fn json(value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_string_pretty(value) {
        Ok(mut body) => {
            body.push('\n');
            with_type(StatusCode::OK, "application/json", body)
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn with_type(code: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = code;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

#[cfg(test)]
mod tests;
