//! A minimal client for the unplanned drill's writers: it logs in with
//! `mysql_native_password` asking for CLIENT_SESSION_TRACK (which mysql_async
//! does not), so the OK that acknowledges a commit also names its GTID
//! (`last_gtid`, tracked by servers set up as docs/ledger.md says). The
//! drill's ground truth is then per transaction, not only per row.

use std::io;

use mysql_common::io::ParseBuf;
use mysql_common::packets::HandshakePacket;
use mysql_zk_proxy_core::acknowledged::Gtid;
use mysql_zk_proxy_protocol::caps::*;
use mysql_zk_proxy_protocol::packet_io::{frame, PacketReader};
use mysql_zk_proxy_protocol::{ok, Framer, ServerEvent, Tracker};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CAPS: u32 = CLIENT_MYSQL
    | CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_TRANSACTIONS
    | CLIENT_MULTI_RESULTS
    | CLIENT_DEPRECATE_EOF
    | CLIENT_SESSION_TRACK;

/// Largest packet read (replies to the drill's statements are small).
const MAX_PACKET: usize = 1 << 20;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// OK, with the GTID of the commit it acknowledged, if any.
    Ok(Option<Gtid>),
    /// An error packet: code and message.
    Err(u16, String),
}

pub struct RawConn {
    stream: TcpStream,
    reader: PacketReader,
    tracker: Tracker,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl RawConn {
    /// Connect and log in; `Ok(Err(..))` when the server (or the proxy)
    /// refused with an error packet.
    pub async fn connect(
        addr: (&str, u16),
        (user, pass, db): (&str, &str, &str),
    ) -> io::Result<Result<RawConn, Reply>> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut reader = PacketReader::new(MAX_PACKET);
        let greeting = reader.read(&mut stream).await?;
        if greeting.payload.first() == Some(&0xff) {
            return Ok(Err(error(&greeting.payload)));
        }
        let hs: HandshakePacket<'_> = ParseBuf(&greeting.payload)
            .parse(())
            .map_err(|e| bad(format!("greeting: {e}")))?;
        let caps = CAPS & hs.capabilities().bits();
        let auth = mysql_common::scramble::scramble_native(&hs.nonce(), pass.as_bytes())
            .map(|a| a.to_vec())
            .unwrap_or_default();
        let mut hr = caps.to_le_bytes().to_vec();
        hr.extend_from_slice(&(16u32 << 20).to_le_bytes());
        hr.push(45);
        hr.extend_from_slice(&[0; 23]);
        hr.extend_from_slice(user.as_bytes());
        hr.push(0);
        hr.push(auth.len() as u8);
        hr.extend_from_slice(&auth);
        hr.extend_from_slice(db.as_bytes());
        hr.push(0);
        hr.extend_from_slice(b"mysql_native_password\0");
        stream.write_all(&frame(greeting.seq + 1, &hr)).await?;
        let reply = reader.read(&mut stream).await?;
        match reply.payload.first() {
            Some(0x00) => {}
            Some(0xff) => return Ok(Err(error(&reply.payload))),
            _ => return Err(bad("login: neither OK nor ERR (an auth switch?)")),
        }
        let status = mysql_zk_proxy_protocol::ok_status(&reply.payload);
        let tracker = Tracker::logged_in(caps, 0, status);
        Ok(Ok(RawConn {
            stream,
            reader,
            tracker,
        }))
    }

    /// Run one statement (COM_QUERY) and read its whole reply.
    pub async fn query(&mut self, sql: &str) -> io::Result<Reply> {
        let cmd = frame(0, &[&[0x03u8][..], sql.as_bytes()].concat());
        Framer::new().feed(&cmd, |p| {
            self.tracker.on_client_packet(&p);
        });
        self.stream.write_all(&cmd).await?;
        let mut first: Option<Vec<u8>> = None;
        loop {
            let p = self.reader.read(&mut self.stream).await?;
            let mut done = false;
            let tracker = &mut self.tracker;
            Framer::new().feed(&frame(p.seq, &p.payload), |info| {
                done = tracker.on_server_packet(&info) == ServerEvent::ResponseDone;
            });
            first.get_or_insert(p.payload);
            if done {
                break;
            }
        }
        let first = first.unwrap_or_default();
        Ok(match first.first() {
            Some(0xff) => error(&first),
            _ => Reply::Ok(ok::last_gtid(&first).and_then(Gtid::from_bytes)),
        })
    }
}

/// An error packet's code and message.
fn error(p: &[u8]) -> Reply {
    let code = p.get(1..3).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    // `#` + 5-byte SQLSTATE follows the code after the greeting
    let msg = match p.get(3) {
        Some(b'#') => p.get(9..).unwrap_or_default(),
        _ => p.get(3..).unwrap_or_default(),
    };
    Reply::Err(code, String::from_utf8_lossy(msg).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_packets_with_and_without_sqlstate() {
        let with = b"\xff\x29\x23#08S01mysql-zk-proxy: moved";
        assert_eq!(
            error(with),
            Reply::Err(0x2329, "mysql-zk-proxy: moved".into())
        );
        let without = b"\xff\x10\x04Too many connections";
        assert_eq!(
            error(without),
            Reply::Err(1040, "Too many connections".into())
        );
    }
}
