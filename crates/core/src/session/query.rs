//! The proxy's own commands on a session's backend connection (reading its
//! state, carrying it to a new primary): one command at a time, its whole
//! reply read and understood by the protocol tracker, text rows decoded.

use std::io;

use tokio::io::AsyncWriteExt;

use crate::session::stream::Stream;
use mysql_zk_proxy_protocol::caps::MARIADB_CLIENT_EXTENDED_METADATA;
use mysql_zk_proxy_protocol::packet_io::{frame, PacketReader};
use mysql_zk_proxy_protocol::{read_lenenc, PacketInfo, ServerEvent, Tracker};

/// One text row: `None` is SQL NULL.
pub type Row = Vec<Option<Vec<u8>>>;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The server answered with an error.
    #[error(transparent)]
    Server(ServerError),
    #[error("backend: {0}")]
    Io(#[from] io::Error),
    #[error("backend sent a reply the proxy does not understand")]
    Malformed,
}

impl QueryError {
    /// The server's error code, when the server answered with an error.
    pub fn code(&self) -> Option<u16> {
        match self {
            QueryError::Server(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A server's ERR packet: its code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServerError {
    pub code: u16,
    pub message: String,
}

impl ServerError {
    /// The ERR payload `payload` (code 0 when it is not one).
    pub fn parse(payload: &[u8]) -> ServerError {
        if payload.len() < 3 || payload[0] != 0xff {
            return ServerError {
                code: 0,
                message: "unexpected reply".into(),
            };
        }
        let rest = &payload[3..];
        let message = if rest.first() == Some(&b'#') && rest.len() >= 6 {
            &rest[6..]
        } else {
            rest
        };
        ServerError {
            code: u16::from_le_bytes([payload[1], payload[2]]),
            message: String::from_utf8_lossy(message).into_owned(),
        }
    }
}

/// A session's backend connection, driven by the proxy between client
/// commands (the client's own reply is never outstanding then).
pub struct Backend<'a> {
    pub stream: &'a mut Stream,
    pub reader: PacketReader,
    pub tracker: Tracker,
    /// The collation id of the first column of the last result set: the
    /// collation of `character_set_results` for a string column.
    pub first_column_collation: Option<u16>,
}

impl<'a> Backend<'a> {
    pub fn new(stream: &'a mut Stream, tracker: Tracker) -> Self {
        Backend {
            stream,
            reader: PacketReader::new(64 * 1024 * 1024),
            tracker,
            first_column_collation: None,
        }
    }

    /// Send one command and read its whole reply: the rows of a result
    /// set (none for an OK).
    pub async fn command(&mut self, payload: &[u8]) -> Result<Vec<Row>, QueryError> {
        self.stream.write_all(&frame(0, payload)).await?;
        self.stream.flush().await?;
        self.tracker.on_client_packet(&info(payload, 0));
        let mut rows = Vec::new();
        let mut defs_seen = false;
        self.first_column_collation = None;
        loop {
            let p = self.reader.read(self.stream).await?;
            let in_rows = self.tracker.in_rows();
            if self.tracker.in_defs() && !defs_seen {
                defs_seen = true;
                let extended = self.tracker.mariadb_caps() & MARIADB_CLIENT_EXTENDED_METADATA != 0;
                self.first_column_collation = column_collation(&p.payload, extended);
            }
            let ev = self.tracker.on_server_packet(&info(&p.payload, p.seq));
            // an ERR, first or after a result of a multi-result reply, ends it
            if ev == ServerEvent::ResponseDone {
                return match p.payload.first() {
                    Some(0xff) => Err(QueryError::Server(ServerError::parse(&p.payload))),
                    _ => Ok(rows),
                };
            }
            if in_rows {
                rows.push(text_row(&p.payload).ok_or(QueryError::Malformed)?);
            }
        }
    }

    /// COM_STMT_PREPARE `sql`, expecting `params` parameters; the new
    /// statement id, or the server's error or what did not match.
    pub async fn prepare(&mut self, sql: &[u8], params: u16) -> Result<u32, String> {
        let mut payload = vec![mysql_zk_proxy_protocol::command::STMT_PREPARE];
        payload.extend_from_slice(sql);
        let io = |e: io::Error| e.to_string();
        self.stream
            .write_all(&frame(0, &payload))
            .await
            .map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        self.tracker.on_client_packet(&info(&payload, 0));
        let mut answer = None;
        loop {
            let p = self.reader.read(self.stream).await.map_err(io)?;
            if answer.is_none() {
                answer = Some(match p.payload.first() {
                    Some(0x00) if p.payload.len() >= 9 => {
                        let b = &p.payload;
                        let got = u16::from_le_bytes([b[7], b[8]]);
                        if got != params {
                            return Err(format!("{got} parameters, the client's had {params}"));
                        }
                        Ok(u32::from_le_bytes([b[1], b[2], b[3], b[4]]))
                    }
                    _ => Err(err_text(&p.payload)),
                });
            }
            let ev = self.tracker.on_server_packet(&info(&p.payload, p.seq));
            if ev == ServerEvent::ResponseDone {
                return answer.expect("set at the first packet");
            }
        }
    }

    /// COM_QUERY `sql`; its rows.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Row>, QueryError> {
        let mut payload = vec![mysql_zk_proxy_protocol::command::QUERY];
        payload.extend_from_slice(sql.as_bytes());
        self.command(&payload).await
    }
}

/// The packet as the tracker sees it.
pub fn info(payload: &[u8], seq: u8) -> PacketInfo<'_> {
    PacketInfo {
        seq,
        payload: None,
        ..PacketInfo::of_payload(payload)
    }
}

/// The collation id of a column definition packet: after catalog, schema,
/// table, org_table, name, org_name (and MariaDB's extended metadata) and
/// the length of the fixed fields.
fn column_collation(b: &[u8], extended: bool) -> Option<u16> {
    let mut at = 0;
    for _ in 0..(6 + usize::from(extended)) {
        let (len, used) = read_lenenc(b.get(at..)?)?;
        at += used + usize::try_from(len).ok()?;
    }
    let (_, used) = read_lenenc(b.get(at..)?)?;
    let id = b.get(at + used..at + used + 2)?;
    Some(u16::from_le_bytes([id[0], id[1]]))
}

/// A text-protocol row: length-encoded strings, 0xFB for NULL.
fn text_row(mut b: &[u8]) -> Option<Row> {
    let mut row = Vec::new();
    while !b.is_empty() {
        if b[0] == 0xfb {
            row.push(None);
            b = &b[1..];
            continue;
        }
        let (len, at) = read_lenenc(b)?;
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        row.push(Some(b.get(at..end)?.to_vec()));
        b = &b[end..];
    }
    Some(row)
}

/// "code: message" of an ERR payload.
pub fn err_text(payload: &[u8]) -> String {
    ServerError::parse(payload).to_string()
}

/// A string literal for SQL text: quoted, with quotes and backslashes escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// An identifier for SQL text: backquoted, backquotes doubled.
pub(crate) fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rows_decode_nulls_and_lengths() {
        let row = text_row(b"\x01a\xfb\x00\x03xyz").unwrap();
        assert_eq!(
            row,
            vec![
                Some(b"a".to_vec()),
                None,
                Some(vec![]),
                Some(b"xyz".to_vec())
            ]
        );
        assert_eq!(text_row(b"\x05ab"), None, "a string longer than the packet");
    }

    #[test]
    fn a_column_definition_gives_its_collation() {
        let def =
            b"\x03def\x00\x00\x00\x01a\x00\x0c\x2e\x00\x04\x00\x00\x00\xfd\x00\x00\x1f\x00\x00";
        assert_eq!(column_collation(def, false), Some(46));
        let ext =
            b"\x03def\x00\x00\x00\x01a\x00\x00\x0c\x21\x00\x04\x00\x00\x00\xfd\x00\x00\x1f\x00\x00";
        assert_eq!(column_collation(ext, true), Some(33));
        assert_eq!(column_collation(b"\x03de", false), None);
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(quote("it's \\ ok"), "'it''s \\\\ ok'");
        assert_eq!(ident("we`ird"), "`we``ird`");
        let e = QueryError::Server(ServerError::parse(b"\xff\x7a\x04#42S02Unknown table"));
        assert_eq!(e.code(), Some(1146));
        assert_eq!(e.to_string(), "1146: Unknown table");
    }
}
