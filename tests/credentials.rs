//! The credential store and native-password derivation against real
//! servers: users under `zookeeper.users_path` are loaded and hot-reloaded
//! (bad children skipped and counted), and a credential derived from one
//! real login exchange logs in again, on the same and on another MariaDB,
//! without the plaintext password; a wrong hash fails verification.

#[path = "discovery/support.rs"]
mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use mysql_common::io::ParseBuf;
use mysql_common::packets::HandshakePacket;
use mysql_common::scramble::scramble_native;
use mysql_zk_proxy_core::config::{Secret, UserConfig};
use mysql_zk_proxy_core::credentials::{CredentialStore, Origin};
use mysql_zk_proxy_core::discovery::Extras;
use mysql_zk_proxy_core::native_password::{derive, respond, NativeError, StoredHash};
use mysql_zk_proxy_protocol::caps::*;
use mysql_zk_proxy_sandbox::Cluster;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `*HEX` of `password`, as in mysql.user.
fn hash_text(password: &str) -> String {
    let hex: String = StoredHash::of_password(password.as_bytes())
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("*{hex}")
}

fn hash_json(password: &str) -> Vec<u8> {
    format!(r#"{{"mysql_native_password":"{}"}}"#, hash_text(password)).into_bytes()
}

/// Write `data` as user `name`'s entry under the users znode.
async fn put_user(users: &Znode, name: &str, data: &[u8]) {
    write(&users.connect, &format!("{}/{name}", users.path), data).await;
}

/// A discovery (primary record at `primary`, ZooKeeper session timeout
/// `session`) that follows the users under `users` into `store`.
fn follow_users(
    users: &Znode,
    primary: &str,
    session: Duration,
    store: &Arc<CredentialStore>,
) -> Disco {
    let mut cfg = cfg(&users.connect, primary, session);
    cfg.users_path = Some(users.path.into());
    let extras = Extras {
        credentials: Some(store.clone()),
        ..Extras::default()
    };
    Disco::start_with(cfg, extras)
}

/// Wait (bounded) until the store satisfies `pred`.
async fn store_until(store: &CredentialStore, what: &str, pred: impl Fn(&CredentialStore) -> bool) {
    let mut rx = store.subscribe();
    let ok = tokio::time::timeout(WAIT, async {
        while !pred(store) {
            rx.changed().await.expect("store alive");
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "timed out waiting for users: {what}; {:?}",
        store.snapshot().names()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_users_are_loaded_and_hot_reloaded() {
    let users = Znode::start("/t/users").await;
    put_user(&users, "app", &hash_json("app")).await;
    put_user(&users, "garbage", b"not json").await;
    put_user(&users, "plain", br#"{"mysql_native_password":"app"}"#).await;
    let config = [("app", "old"), ("cfg", "cfg")].map(|(name, pw)| UserConfig {
        name: name.into(),
        mysql_native_password: Secret::new(hash_text(pw)),
    });
    let store = Arc::new(CredentialStore::from_config(&config).unwrap());
    assert_eq!(store.lookup("app"), Some(StoredHash::of_password(b"old")));

    let d = follow_users(&users, "/t/users-primary", Duration::from_secs(4), &store);
    store_until(&store, "first load", |s| {
        s.zookeeper_reloads.load(Relaxed) >= 1
    })
    .await;
    let snap = store.snapshot();
    assert_eq!(snap.names(), ["app", "cfg"], "bad children skipped");
    assert_eq!(snap.get("app").unwrap().origin, Origin::Zookeeper);
    assert_eq!(
        store.lookup("app"),
        Some(StoredHash::of_password(b"app")),
        "ZooKeeper wins"
    );
    assert_eq!(store.bad_zookeeper_entries.load(Relaxed), 2);

    put_user(&users, "app", &hash_json("rotated")).await;
    store_until(&store, "rotated", |s| {
        s.lookup("app") == Some(StoredHash::of_password(b"rotated"))
    })
    .await;
    put_user(&users, "new", &hash_json("new")).await;
    store_until(&store, "new user", |s| s.lookup("new").is_some()).await;
    delete(&users.connect, &format!("{}/app", users.path)).await;
    store_until(&store, "back to [[users]]", |s| {
        s.lookup("app") == Some(StoredHash::of_password(b"old"))
    })
    .await;
    assert_eq!(store.snapshot().get("app").unwrap().origin, Origin::Config);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_followed_again_on_a_new_session_after_expiry() {
    let users = Znode::start("/t/users-expiry").await;
    put_user(&users, "app", &hash_json("app")).await;
    let store = Arc::new(CredentialStore::from_config(&[]).unwrap());
    let d = follow_users(
        &users,
        "/t/users-expiry-primary",
        Duration::from_secs(2),
        &store,
    );
    store_until(&store, "first load", |s| s.lookup("app").is_some()).await;
    let first = d.connected().await.session_id;

    users.zk.pause().expect("SIGSTOP");
    d.status("expired", |s| {
        s.state == mysql_zk_proxy_core::discovery::ZkState::Expired
    })
    .await;
    assert!(
        store.lookup("app").is_some(),
        "users kept without a session"
    );
    users.zk.resume().expect("SIGCONT");
    let s = d.connected().await;
    assert_ne!(s.session_id, first);

    put_user(&users, "app", &hash_json("after-expiry")).await;
    store_until(&store, "change seen on the new session", |s| {
        s.lookup("app") == Some(StoredHash::of_password(b"after-expiry"))
    })
    .await;
    d.stop().await;
}

/// One login exchange seen on the wire.
struct Exchange {
    scramble: Vec<u8>,
    response: Vec<u8>,
    /// First byte of the server's reply: 0x00 OK, 0xFF ERR.
    reply: u8,
}

/// Log in as `user` on `port`, answering the greeting's scramble with `answer`.
async fn login(
    port: u16,
    user: &str,
    answer: impl FnOnce(&[u8]) -> Vec<u8>,
) -> anyhow::Result<Exchange> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let greeting = read_packet(&mut s).await?;
    let hs: HandshakePacket<'_> = ParseBuf(&greeting).parse(())?;
    anyhow::ensure!(
        hs.auth_plugin_name_ref() == Some(&b"mysql_native_password"[..]),
        "plugin"
    );
    let scramble = hs.nonce();
    let response = answer(&scramble);
    let caps = (CLIENT_MYSQL | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH)
        & hs.capabilities().bits() as u32;
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    p.push(response.len() as u8);
    p.extend_from_slice(&response);
    p.extend_from_slice(b"mysql_native_password\0");
    let mut framed = (p.len() as u32).to_le_bytes()[..3].to_vec();
    framed.push(1);
    framed.extend_from_slice(&p);
    s.write_all(&framed).await?;
    let reply = read_packet(&mut s).await?;
    Ok(Exchange {
        scramble,
        response,
        reply: reply.first().copied().unwrap_or(0xFF),
    })
}

async fn read_packet(s: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await?;
    let mut p = vec![0u8; u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize];
    s.read_exact(&mut p).await?;
    Ok(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_credential_logs_in_on_another_server_without_plaintext() {
    let cluster = Cluster::builder().start().await.expect("cluster");
    let (primary, replica) = (cluster.primary(), cluster.replica().unwrap());
    // The hash as mysql.user stores it (replicated to the replica too).
    let stored = primary
        .sql_async("SELECT authentication_string FROM mysql.user WHERE user = 'app' AND host = '%'")
        .await
        .unwrap();
    let stored = StoredHash::parse(stored.trim()).expect("a *HEX hash");
    assert_eq!(stored, StoredHash::of_password(b"app"));

    // The client's own login (the only place the plaintext appears).
    let seen = login(primary.port(), "app", |s| {
        scramble_native(s, b"app").unwrap().to_vec()
    })
    .await
    .unwrap();
    assert_eq!(seen.reply, 0x00, "the client's login works");
    let derived = derive(&seen.scramble, &seen.response, &stored).expect("verified");

    for port in [replica.port(), primary.port()] {
        let again = login(port, "app", |s| {
            respond(&derived, s.try_into().unwrap()).to_vec()
        })
        .await
        .unwrap();
        assert_eq!(again.reply, 0x00, "derived login on port {port}");
        assert_ne!(again.scramble, seen.scramble, "a fresh scramble");
    }

    // A wrong or stale hash never yields a credential.
    let stale = StoredHash::of_password(b"previous password");
    assert_eq!(
        derive(&seen.scramble, &seen.response, &stale),
        Err(NativeError::Mismatch)
    );
    // A wrong password seen on the wire does not verify either (and the server refused it).
    let wrong = login(primary.port(), "app", |s| {
        scramble_native(s, b"nope").unwrap().to_vec()
    })
    .await
    .unwrap();
    assert_eq!(wrong.reply, 0xFF);
    assert_eq!(
        derive(&wrong.scramble, &wrong.response, &stored),
        Err(NativeError::Mismatch)
    );
}
