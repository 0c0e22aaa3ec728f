//! Tests of the admin endpoints: handlers directly, and one server over TCP.

use std::sync::atomic::Ordering;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::*;
use crate::discovery::{DiscoveryStatus, ZkState};
use crate::routing::{Primary, Route};

struct Fixture {
    state: Arc<AdminState>,
    zk: watch::Sender<DiscoveryStatus>,
}

fn fixture() -> Fixture {
    let stats = Stats::new();
    let table = Arc::new(RouteTable::new());
    let metrics = Arc::new(Metrics::new(stats.clone(), table.clone()));
    let (zk, rx) = watch::channel(DiscoveryStatus::starting());
    let zk_rx = rx.clone();
    metrics.set_zk_state(move || zk_rx.borrow().state.label());
    let state = Arc::new(AdminState {
        config: Arc::new(crate::reload::LiveConfig::new(Default::default())),
        registry: Default::default(),
        table,
        discovery: DiscoveryHandle { status: rx },
        metrics,
        timeline: crate::timeline::Timeline::new(stats.clone()),
        stats,
        started: SystemTime::now(),
        listen_addr: "127.0.0.1:6033".parse().unwrap(),
        shutting_down: AtomicBool::new(false),
        read_only: None,
        ledger: crate::acknowledged::Ledger::new(10, None).0,
    });
    Fixture { state, zk }
}

impl Fixture {
    fn set_zk(&self, state: ZkState) {
        self.zk.send_modify(|s| s.state = state);
    }
    fn publish(&self, epoch: u64) {
        self.state.table.publish(|prev| Route {
            primary: Some(Primary {
                host: "10.0.0.5".into(),
                port: 3306,
                epoch,
                server_id: Some(7),
                server_uuid: None,
            }),
            ..prev.clone()
        });
    }
    async fn get(&self, path: &str) -> (StatusCode, String) {
        call(&self.state, Method::GET, path).await
    }
}

async fn call(state: &AdminState, method: Method, path: &str) -> (StatusCode, String) {
    let res = respond(state, &method, path);
    let code = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn live_is_always_ok() {
    let f = fixture();
    assert_eq!(f.get("/live").await, (StatusCode::OK, "ok\n".into()));
}

#[tokio::test]
async fn ready_needs_a_primary_and_a_usable_session() {
    let f = fixture();
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    assert_eq!(
        f.get("/ready").await,
        (unavailable, "no primary known\n".into())
    );
    f.publish(1);
    assert_eq!(
        f.get("/ready").await,
        (unavailable, "zookeeper connecting\n".into())
    );
    f.set_zk(ZkState::Connected);
    assert_eq!(f.get("/ready").await.0, StatusCode::OK);
    f.set_zk(ZkState::Disconnected);
    assert_eq!(
        f.get("/ready").await,
        (unavailable, "zookeeper disconnected\n".into())
    );
    f.set_zk(ZkState::Connected);
    f.state.shutting_down.store(true, Ordering::Relaxed);
    assert_eq!(
        f.get("/ready").await,
        (unavailable, "shutting down\n".into())
    );
}

#[tokio::test]
async fn status_is_json_with_primary_zookeeper_and_counters() {
    let f = fixture();
    let (code, body) = f.get("/status").await;
    assert_eq!(code, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["primary"].is_null(), "{v}");
    assert_eq!(v["not_ready"], "no primary known");
    assert_eq!(v["zookeeper"]["state"], "connecting");
    assert_eq!(v["zookeeper"]["tls"], false, "plain ZooKeeper by default");
    assert_eq!(
        v["zookeeper"]["connect"],
        crate::config::Config::default().zookeeper.connect
    );

    f.publish(42);
    f.set_zk(ZkState::Connected);
    f.state
        .stats
        .connection_closed(crate::metrics::ConnOutcome::Shutdown);
    let v: serde_json::Value = serde_json::from_str(&f.get("/status").await.1).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["listen_address"], "127.0.0.1:6033");
    assert!(v["not_ready"].is_null(), "{v}");
    assert_eq!(v["primary"]["address"], "10.0.0.5:3306");
    assert_eq!(v["primary"]["epoch"], 42);
    assert_eq!(v["primary"]["server_id"], 7);
    assert_eq!(v["route"]["generation"], 1);
    assert_eq!(v["route"]["record_state"], "serving");
    assert_eq!(v["zookeeper"]["state"], "connected");
    assert_eq!(v["zookeeper"]["sessions_expired"], 0);
    assert_eq!(v["connections"]["by_outcome"]["shutdown"], 1);
    assert_eq!(v["sessions"]["idle"], 0);
    assert_eq!(v["records_ignored"]["unparseable"], 0);
    assert_eq!(v["bytes"]["client_to_backend"], 0);
}

#[tokio::test]
async fn metrics_unknown_paths_and_methods() {
    let f = fixture();
    let (code, body) = f.get("/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        body.contains("# TYPE mysql_zk_proxy_primary_known gauge"),
        "{body}"
    );
    assert_eq!(f.get("/nope").await.0, StatusCode::NOT_FOUND);
    let res = respond(&f.state, &Method::POST, "/ready");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[ALLOW], "GET, HEAD");
}

/// One raw HTTP/1.1 request; returns the whole response text.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn serves_over_tcp_and_stops_on_cancel() {
    let f = fixture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(serve(listener, f.state.clone(), cancel.clone()));

    let live = http_get(addr, "/live").await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    assert!(live.ends_with("\r\n\r\nok\n"), "{live}");
    let ready = http_get(addr, "/ready").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");

    // An idle keep-alive connection must not keep the server from stopping.
    let _idle = TcpStream::connect(addr).await.unwrap();
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns after cancel")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}
