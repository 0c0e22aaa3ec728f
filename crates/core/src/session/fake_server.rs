//! A scripted fake MariaDB server for session tests: a greeting with a
//! scramble, a login checked against the known password (a wrong
//! mysql_native_password answer is refused, as a server would), then
//! commands answered from a scripted session state (`fake_state.rs`) with
//! real result-set packets in either EOF mode (prepared statements get ids
//! from a scripted first one; their executions an OK). It listens on an
//! in-process loopback port (new logins) and serves sessions handed to it
//! over an in-memory stream (a session already logged in); it records
//! every command it received, and it can crash.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub(crate) use super::fake_state::{Answer, FakeSession, FakeVar, Script};
use crate::routing::Primary;
use mysql_common::scramble::scramble_native;
use mysql_zk_proxy_protocol::packet_io::{frame, PacketReader};
use mysql_zk_proxy_protocol::{caps, command};

/// The password of the fake server's one user.
pub(crate) const PASSWORD: &[u8] = b"fake-secret";
/// The fake server's one user.
pub(crate) const USER: &str = "app";

const SERVER_CAPS: u32 = caps::CLIENT_PROTOCOL_41
    | caps::CLIENT_CONNECT_WITH_DB
    | caps::CLIENT_TRANSACTIONS
    | caps::CLIENT_SECURE_CONNECTION
    | caps::CLIENT_MULTI_RESULTS
    | caps::CLIENT_PLUGIN_AUTH
    | caps::CLIENT_DEPRECATE_EOF;

/// A login the server accepted: the user and the schema it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub user: String,
    pub schema: Option<String>,
}

#[derive(Default)]
struct Shared {
    script: Mutex<Script>,
    /// (connection, command payload), in arrival order.
    received: Mutex<Vec<(u32, Vec<u8>)>>,
    logins: Mutex<Vec<Login>>,
    refused_logins: AtomicU32,
    next_conn: AtomicU32,
    /// The listener's task and its connections' (a crash ends them all).
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// A running fake server.
#[derive(Clone)]
pub(crate) struct FakeServer {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FakeServer {
    /// Listen on a loopback port, greeting every connection.
    pub(crate) async fn listen(script: Script) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            next_conn: AtomicU32::new(100),
            ..Default::default()
        });
        let server = FakeServer { port, shared };
        let accepting = server.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let s = accepting.clone();
                let conn = tokio::spawn(async move { s.greet_and_serve(tcp).await });
                accepting
                    .shared
                    .tasks
                    .lock()
                    .unwrap()
                    .push(conn.abort_handle());
            }
        });
        server
            .shared
            .tasks
            .lock()
            .unwrap()
            .push(accept.abort_handle());
        server
    }

    /// This server as a route's primary.
    pub(crate) fn primary(&self, epoch: u64) -> Primary {
        Primary::local(self.port, epoch)
    }

    /// Serve `session`, already logged in, over `io`; abort the handle to
    /// close the connection from the server's side.
    pub(crate) fn attach<S>(
        &self,
        io: S,
        session: FakeSession,
        deprecate_eof: bool,
    ) -> JoinHandle<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let s = self.clone();
        let conn = self.shared.next_conn.fetch_add(1, Relaxed);
        tokio::spawn(async move { s.serve(io, conn, session, deprecate_eof).await })
    }

    /// Crash: stop listening and drop every connection it accepted.
    pub(crate) fn crash(&self) {
        for task in self.shared.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// The script, to change how the server behaves from now on.
    pub(crate) fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.shared.script.lock().unwrap()
    }

    /// A fresh session as a login as [`USER`] into `schema` would get.
    pub(crate) fn session(&self, schema: Option<&str>) -> FakeSession {
        self.script().login(USER, schema.map(str::to_string))
    }

    /// The text of every COM_QUERY received, in order.
    pub(crate) fn queries(&self) -> Vec<String> {
        let received = self.shared.received.lock().unwrap();
        received
            .iter()
            .filter(|(_, p)| p.first() == Some(&command::QUERY))
            .map(|(_, p)| String::from_utf8_lossy(&p[1..]).into_owned())
            .collect()
    }

    /// Whether any command received contains `bytes`.
    pub(crate) fn received(&self, bytes: impl AsRef<[u8]>) -> bool {
        let bytes = bytes.as_ref();
        let received = self.shared.received.lock().unwrap();
        received
            .iter()
            .any(|(_, p)| p.windows(bytes.len()).any(|w| w == bytes))
    }

    /// Every command payload received, in order.
    pub(crate) fn commands(&self) -> Vec<Vec<u8>> {
        let received = self.shared.received.lock().unwrap();
        received.iter().map(|(_, p)| p.clone()).collect()
    }

    /// The logins it accepted, and how many it refused.
    pub(crate) fn logins(&self) -> (Vec<Login>, u32) {
        let accepted = self.shared.logins.lock().unwrap().clone();
        (accepted, self.shared.refused_logins.load(Relaxed))
    }

    async fn greet_and_serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut io: S) {
        let conn = self.shared.next_conn.fetch_add(1, Relaxed);
        let scramble: Vec<u8> = (0..20u32)
            .map(|i| b'A' + ((i * 7 + conn) % 26) as u8)
            .collect();
        if io
            .write_all(&frame(0, &greeting(conn, &scramble)))
            .await
            .is_err()
        {
            return;
        }
        let mut reader = PacketReader::new(1 << 16);
        let Ok(p) = reader.read(&mut io).await else {
            return;
        };
        if self.script().faults.stall_login {
            return std::future::pending().await;
        }
        let response = HandshakeResponse::parse(&p.payload);
        let expected = scramble_native(&scramble, PASSWORD).expect("a 20-byte scramble");
        if response.user != USER || response.auth != expected {
            self.shared.refused_logins.fetch_add(1, Relaxed);
            let denied = err(1045, &format!("Access denied for user '{}'", response.user));
            let _ = io.write_all(&frame(2, &denied)).await;
            return;
        }
        self.shared.logins.lock().unwrap().push(Login {
            user: response.user.clone(),
            schema: response.schema.clone(),
        });
        let session = self.script().login(&response.user, response.schema);
        if io.write_all(&frame(2, &ok(session.status))).await.is_ok() {
            self.serve(io, conn, session, response.deprecate_eof).await;
        }
    }

    /// Answer commands until the peer quits or goes.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut io: S,
        conn: u32,
        mut session: FakeSession,
        deprecate_eof: bool,
    ) {
        let mut reader = PacketReader::new(1 << 24);
        while let Ok(p) = reader.read(&mut io).await {
            let payload = p.payload.to_vec();
            self.shared
                .received
                .lock()
                .unwrap()
                .push((conn, payload.clone()));
            let answer = match payload.first() {
                Some(&command::QUIT) | None => return,
                Some(&command::QUERY) => {
                    let sql = String::from_utf8_lossy(&payload[1..]).into_owned();
                    self.script().query(&mut session, &sql)
                }
                Some(&command::INIT_DB) => {
                    session.schema = Some(String::from_utf8_lossy(&payload[1..]).into_owned());
                    Answer::Ok
                }
                Some(&command::PING) | Some(&command::STMT_EXECUTE) => Answer::Ok,
                Some(&command::STMT_PREPARE) => {
                    session.next_statement += 1;
                    let params = payload.iter().filter(|&&b| b == b'?').count();
                    Answer::Prepared(session.next_statement - 1, params as u16)
                }
                Some(&command::STMT_CLOSE) => Answer::Silence,
                Some(_) => Answer::Err(1047, "Unknown command".into()),
            };
            let reply = encode(&answer, &session, deprecate_eof);
            if io.write_all(&reply).await.is_err() {
                return;
            }
        }
    }
}

/// What the fake server reads of a HandshakeResponse41.
struct HandshakeResponse {
    user: String,
    auth: Vec<u8>,
    schema: Option<String>,
    deprecate_eof: bool,
}

impl HandshakeResponse {
    fn parse(p: &[u8]) -> HandshakeResponse {
        let flags = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        let rest = &p[32..];
        let nul = rest.iter().position(|&b| b == 0).expect("user name");
        let user = String::from_utf8_lossy(&rest[..nul]).into_owned();
        let rest = &rest[nul + 1..];
        let len = usize::from(rest[0]);
        let auth = rest[1..1 + len].to_vec();
        let rest = &rest[1 + len..];
        let schema = (flags & caps::CLIENT_CONNECT_WITH_DB != 0).then(|| {
            let nul = rest.iter().position(|&b| b == 0).expect("schema");
            String::from_utf8_lossy(&rest[..nul]).into_owned()
        });
        HandshakeResponse {
            user,
            auth,
            schema,
            deprecate_eof: flags & caps::CLIENT_DEPRECATE_EOF != 0,
        }
    }
}

/// A MariaDB 10.11 HandshakeV10 with `scramble` (20 bytes).
fn greeting(conn: u32, scramble: &[u8]) -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(b"5.5.5-10.11.6-MariaDB-fake\0");
    p.extend_from_slice(&conn.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&(SERVER_CAPS as u16).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&mysql_zk_proxy_protocol::status::AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&((SERVER_CAPS >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&0u32.to_le_bytes()); // no MariaDB extended capabilities
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(b"mysql_native_password\0");
    p
}

fn ok(status: u16) -> Vec<u8> {
    let s = status.to_le_bytes();
    vec![0x00, 0, 0, s[0], s[1], 0, 0]
}

fn err(code: u16, msg: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.extend_from_slice(b"#HY000");
    p.extend_from_slice(msg.as_bytes());
    p
}

/// The end of a result set: an EOF, or (CLIENT_DEPRECATE_EOF) an OK with
/// the EOF header.
fn end_of_rows(status: u16, deprecate_eof: bool) -> Vec<u8> {
    let s = status.to_le_bytes();
    if deprecate_eof {
        vec![0xfe, 0, 0, s[0], s[1], 0, 0]
    } else {
        vec![0xfe, 0, 0, s[0], s[1]]
    }
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    assert!(s.len() < 251, "short test values");
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// A string column named `name` in `collation`.
fn column(name: &str, collation: u16) -> Vec<u8> {
    let mut p = Vec::new();
    for field in ["def", "", "", "", name, ""] {
        lenenc_str(&mut p, field.as_bytes());
    }
    p.push(0x0c);
    p.extend_from_slice(&collation.to_le_bytes());
    p.extend_from_slice(&1024u32.to_le_bytes());
    p.push(0xfd); // VAR_STRING
    p.extend_from_slice(&[0, 0, 0, 0, 0]); // flags, decimals, filler
    p
}

fn text_row(values: &[Option<String>]) -> Vec<u8> {
    let mut p = Vec::new();
    for v in values {
        match v {
            None => p.push(0xfb),
            Some(t) => lenenc_str(&mut p, t.as_bytes()),
        }
    }
    p
}

/// The packets of `answer`, sequence ids from 1.
fn encode(answer: &Answer, s: &FakeSession, deprecate_eof: bool) -> Vec<u8> {
    let mut packets = Vec::new();
    match answer {
        Answer::Ok => packets.push(ok(s.status)),
        Answer::Err(code, msg) => packets.push(err(*code, msg)),
        Answer::Silence => {}
        Answer::Prepared(id, params) => {
            let mut head = vec![0x00];
            head.extend_from_slice(&id.to_le_bytes());
            head.extend_from_slice(&[0, 0]); // no columns
            head.extend_from_slice(&params.to_le_bytes());
            head.extend_from_slice(&[0, 0, 0]); // filler, warnings
            packets.push(head);
            packets.extend((0..*params).map(|_| column("?", 63)));
            if *params > 0 && !deprecate_eof {
                packets.push(end_of_rows(s.status, false));
            }
        }
        Answer::Rows(columns, rows) => {
            packets.push(vec![*columns as u8]);
            packets.extend((0..*columns).map(|i| column(&format!("c{i}"), s.results_collation)));
            if !deprecate_eof {
                packets.push(end_of_rows(s.status, false));
            }
            packets.extend(rows.iter().map(|r| text_row(r)));
            packets.push(end_of_rows(s.status, deprecate_eof));
        }
    }
    let mut out = Vec::new();
    for (seq, p) in packets.iter().enumerate() {
        out.extend_from_slice(&frame(seq as u8 + 1, p));
    }
    out
}
