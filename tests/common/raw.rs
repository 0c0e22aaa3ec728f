//! A minimal raw-protocol client for tests: logs in with
//! mysql_native_password and returns the reply packets of any command, so
//! replies through the proxy can be compared byte for byte with direct ones.

use mysql_common::io::ParseBuf;
use mysql_common::packets::HandshakePacket;
use mysql_zk_proxy_protocol::caps::*;
use mysql_zk_proxy_protocol::{Framer, ServerEvent, Tracker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawConn {
    stream: TcpStream,
    tracker: Tracker,
    pub connection_id: u32,
    /// The payload of the login's final OK.
    pub login_ok: Vec<u8>,
}

pub const CLIENT_CAPS: u32 = CLIENT_MYSQL
    | CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_MULTI_RESULTS
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_TRANSACTIONS
    | CLIENT_DEPRECATE_EOF;

/// How long a reply's next packet may take.
const REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

impl RawConn {
    pub async fn login(addr: &str, user: &str, pass: &str, db: &str) -> anyhow::Result<RawConn> {
        let stream = TcpStream::connect(addr).await?;
        Self::login_on(stream, user, pass, db).await
    }

    /// Log in as a MariaDB client asking for these extended capabilities
    /// (those the server offers are agreed), with or without
    /// CLIENT_DEPRECATE_EOF.
    pub async fn login_mariadb(
        addr: &str,
        (user, pass, db): (&str, &str, &str),
        deprecate_eof: bool,
        mariadb_caps: u32,
    ) -> anyhow::Result<RawConn> {
        let mut caps = CLIENT_CAPS & !CLIENT_MYSQL;
        if !deprecate_eof {
            caps &= !CLIENT_DEPRECATE_EOF;
        }
        let stream = TcpStream::connect(addr).await?;
        Self::login_as(stream, (user, pass, db), caps, mariadb_caps).await
    }

    /// Log in asking for exactly `caps` (those the server offers are agreed).
    pub async fn login_with_caps(
        addr: &str,
        login: (&str, &str, &str),
        caps: u32,
    ) -> anyhow::Result<RawConn> {
        let stream = TcpStream::connect(addr).await?;
        Self::login_as(stream, login, caps, 0).await
    }

    /// Log in on a connection already open (e.g. after a PROXY header).
    pub async fn login_on(
        stream: TcpStream,
        user: &str,
        pass: &str,
        db: &str,
    ) -> anyhow::Result<RawConn> {
        Self::login_as(stream, (user, pass, db), CLIENT_CAPS, 0).await
    }

    async fn login_as(
        mut stream: TcpStream,
        (user, pass, db): (&str, &str, &str),
        client_caps: u32,
        mariadb_caps: u32,
    ) -> anyhow::Result<RawConn> {
        let (_, greeting) = read_packet(&mut stream).await?;
        let hs: HandshakePacket<'_> = ParseBuf(&greeting).parse(())?;
        let server_caps = hs.capabilities().bits();
        let connection_id = hs.connection_id();
        let nonce = hs.nonce();
        let auth = mysql_common::scramble::scramble_native(&nonce, pass.as_bytes())
            .map(|a| a.to_vec())
            .unwrap_or_default();
        let caps = client_caps & server_caps;
        // without CLIENT_MYSQL, the filler's last 4 bytes are MariaDB's
        // extended capabilities
        let mariadb = if caps & CLIENT_MYSQL == 0 {
            mariadb_caps & hs.mariadb_ext_capabilities().bits()
        } else {
            0
        };
        let mut hr = caps.to_le_bytes().to_vec();
        hr.extend_from_slice(&(64u32 << 20).to_le_bytes());
        hr.push(45);
        hr.extend_from_slice(&[0; 19]);
        hr.extend_from_slice(&mariadb.to_le_bytes());
        hr.extend_from_slice(user.as_bytes());
        hr.push(0);
        hr.push(auth.len() as u8);
        hr.extend_from_slice(&auth);
        hr.extend_from_slice(db.as_bytes());
        hr.push(0);
        hr.extend_from_slice(b"mysql_native_password\0");
        stream.write_all(&frame(1, &hr)).await?;
        let (_, reply) = read_packet(&mut stream).await?;
        anyhow::ensure!(
            reply.first() == Some(&0),
            "login failed: {}",
            String::from_utf8_lossy(&reply)
        );
        let status = mysql_zk_proxy_protocol::ok_status(&reply);
        let tracker = Tracker::logged_in(caps, mariadb, status);
        Ok(RawConn {
            stream,
            tracker,
            connection_id,
            login_ok: reply,
        })
    }

    /// Send a command and collect every packet of its reply (payloads).
    pub async fn command(&mut self, payload: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
        self.send(payload).await?;
        self.reply().await
    }

    /// Every packet of the next reply.
    async fn reply(&mut self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        loop {
            // a reply whose end the tracker misses fails the test, not hangs it
            let next = tokio::time::timeout(REPLY_WAIT, read_packet(&mut self.stream)).await;
            let (seq, p) = next.map_err(|_| {
                anyhow::anyhow!("no end of reply within {REPLY_WAIT:?} after {out:?}")
            })??;
            let mut done = false;
            let tracker = &mut self.tracker;
            Framer::new().feed(&frame(seq, &p), |info| {
                done = tracker.on_server_packet(&info) == ServerEvent::ResponseDone;
            });
            out.push(p);
            if done {
                return Ok(out);
            }
        }
    }

    /// Send several commands in one write (pipelined), then collect each
    /// one's reply in order.
    pub async fn pipeline(&mut self, payloads: &[&[u8]]) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        let mut bytes = Vec::new();
        for p in payloads {
            let packet = frame(0, p);
            Framer::new().feed(&packet, |info| {
                self.tracker.on_client_packet(&info);
            });
            bytes.extend_from_slice(&packet);
        }
        self.stream.write_all(&bytes).await?;
        let mut replies = Vec::new();
        for _ in payloads {
            replies.push(self.reply().await?);
        }
        Ok(replies)
    }

    /// Send a command that has no reply (COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE, COM_QUIT).
    pub async fn send(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        let packet = frame(0, payload);
        Framer::new().feed(&packet, |info| {
            self.tracker.on_client_packet(&info);
        });
        self.stream.write_all(&packet).await?;
        Ok(())
    }

    pub fn at_rest(&self) -> bool {
        self.tracker.at_rest()
    }
}

async fn read_packet(s: &mut TcpStream) -> anyhow::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await?;
    Ok((h[3], p))
}

impl RawConn {
    /// The socket, for tests that go on with raw bytes after the login.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}
