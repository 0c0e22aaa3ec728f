//! Session protocol tracker: from the packets flowing each way it knows which
//! responses are outstanding, where each ends, the last server status flags,
//! and so whether the session is at rest. It never changes a byte.

use std::collections::VecDeque;

use super::framer::{PacketInfo, MAX_PAYLOAD};
use super::{caps, command, read_lenenc, status};

/// The shape of the server's reply to one client command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Login or COM_CHANGE_USER: ends at OK or ERR; client packets in between
    /// are authentication data (auth switch, more data, next factor).
    Auth,
    /// COM_QUERY, COM_STMT_EXECUTE, COM_STMT_BULK_EXECUTE, COM_PROCESS_INFO:
    /// OK, ERR, LOCAL INFILE request, or result sets chained by MORE_RESULTS.
    Results { binary: bool },
    /// COM_STMT_PREPARE: OK-prepare header, parameter and column definitions.
    Prepare,
    /// COM_FIELD_LIST: column definitions until EOF (or ERR).
    FieldList,
    /// COM_STMT_FETCH: rows until EOF/OK (or ERR).
    Fetch,
    /// Exactly one packet (COM_PING, COM_INIT_DB, COM_STATISTICS, ...).
    Single,
    /// COM_BINLOG_DUMP and friends: streams until the connection ends.
    Stream,
}

/// Where we are inside the reply at the head of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    First,
    Defs { left: u64, then: AfterDefs },
    Eof { then: AfterEof },
    Rows,
    InfileData,
    InfileResult,
    UntilEof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterDefs {
    ResultColumns,
    PrepareParams { columns: u64 },
    PrepareColumns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterEof {
    Rows,
    PrepareColumns(u64),
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    expect: Expect,
    step: Step,
}

/// What a client packet was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// A command that expects a reply.
    Command(u8),
    /// A command the server never answers (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA).
    NoReply(u8),
    /// Part of something already under way (auth data, LOCAL INFILE data, a continuation).
    Data,
}

/// What a server packet completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// Nothing completed (a row, a definition, a continuation...).
    None,
    /// The authentication exchange ended with OK.
    AuthOk,
    /// The authentication exchange ended with ERR.
    AuthFailed,
    /// A whole reply to one command ended.
    ResponseDone,
    /// A packet while nothing was outstanding (e.g. an error before the server closes).
    Unsolicited,
}

#[derive(Debug, Clone)]
pub struct Tracker {
    /// Capabilities both sides agreed on (server's forwarded & client's).
    caps: u32,
    mariadb_caps: u32,
    pending: VecDeque<Pending>,
    status: u16,
    quit: bool,
}

impl Tracker {
    /// A tracker for a session whose login already succeeded (the login
    /// exchange is handled packet by packet before the relay starts).
    pub fn logged_in(caps: u32, mariadb_caps: u32, status: u16) -> Self {
        Tracker {
            caps,
            mariadb_caps,
            pending: VecDeque::new(),
            status,
            quit: false,
        }
    }

    /// Capabilities in effect for this session.
    pub fn caps(&self) -> u32 {
        self.caps
    }
    /// Last status flags seen in an OK or EOF packet.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// Replies still owed by the server.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }
    pub fn in_transaction(&self) -> bool {
        self.status & status::IN_TRANS != 0
    }
    /// The client sent COM_QUIT.
    pub fn quit_sent(&self) -> bool {
        self.quit
    }
    /// Nothing outstanding, no transaction, no open cursor.
    pub fn at_rest(&self) -> bool {
        self.pending.is_empty() && self.status & status::IN_TRANS == 0 && !self.cursor_open()
    }
    /// The next server packet is the first of a reply to COM_STMT_PREPARE.
    pub fn awaiting_prepare_ok(&self) -> bool {
        self.pending
            .front()
            .is_some_and(|p| p.expect == Expect::Prepare && p.step == Step::First)
    }
    /// A result set's rows are streaming: until a packet that is not a
    /// [`plain_row`](super::framer::plain_row), server packets change nothing here.
    pub fn in_rows(&self) -> bool {
        self.pending.front().is_some_and(|p| p.step == Step::Rows)
    }
    /// The next server packet is a column (or parameter) definition.
    pub fn in_defs(&self) -> bool {
        self.pending
            .front()
            .is_some_and(|p| matches!(p.step, Step::Defs { .. }))
    }
    /// A server packet starting with `first`, `len` bytes long, coming next
    /// would be an OK packet (one that may carry session state information):
    /// the OK answering a command or ending a result, or, with
    /// CLIENT_DEPRECATE_EOF, the 0xFE OK ending rows. Never a row, a
    /// definition, a PREPARE OK or an auth switch.
    pub fn next_is_ok(&self, first: u8, len: usize) -> bool {
        let Some(head) = self.pending.front() else {
            return false;
        };
        match (head.step, first) {
            (Step::First, 0x00) => !matches!(
                head.expect,
                Expect::Prepare | Expect::Stream | Expect::FieldList | Expect::Fetch
            ),
            (Step::InfileData | Step::InfileResult, 0x00) => true,
            (Step::Rows, 0xfe) => self.deprecate_eof() && (7..MAX_PAYLOAD).contains(&len),
            _ => false,
        }
    }
    /// MariaDB capabilities in effect for this session.
    pub fn mariadb_caps(&self) -> u32 {
        self.mariadb_caps
    }
    /// The next client packet starts a command (not auth or LOCAL INFILE data).
    pub fn expects_command(&self) -> bool {
        self.pending
            .front()
            .is_none_or(|p| p.expect != Expect::Auth && p.step != Step::InfileData)
    }
    fn cursor_open(&self) -> bool {
        self.status & status::CURSOR_EXISTS != 0 && self.status & status::LAST_ROW_SENT == 0
    }
    fn deprecate_eof(&self) -> bool {
        self.caps & caps::CLIENT_DEPRECATE_EOF != 0
    }

    /// Account for one client packet.
    pub fn on_client_packet(&mut self, p: &PacketInfo<'_>) -> ClientEvent {
        if p.continuation {
            return ClientEvent::Data;
        }
        if let Some(head) = self.pending.front_mut() {
            if head.step == Step::InfileData {
                if p.len == 0 {
                    head.step = Step::InfileResult;
                }
                return ClientEvent::Data;
            }
            if head.expect == Expect::Auth {
                return ClientEvent::Data;
            }
        }
        let cmd = p.first().unwrap_or(0xff);
        let (expect, step) = match cmd {
            command::QUIT => {
                self.quit = true;
                return ClientEvent::NoReply(cmd);
            }
            command::STMT_CLOSE | command::STMT_SEND_LONG_DATA => return ClientEvent::NoReply(cmd),
            command::QUERY | command::PROCESS_INFO => {
                (Expect::Results { binary: false }, Step::First)
            }
            command::STMT_EXECUTE | command::STMT_BULK_EXECUTE => {
                (Expect::Results { binary: true }, Step::First)
            }
            command::STMT_PREPARE => (Expect::Prepare, Step::First),
            command::FIELD_LIST => (Expect::FieldList, Step::First),
            command::STMT_FETCH => (Expect::Fetch, Step::Rows),
            command::CHANGE_USER => (Expect::Auth, Step::First),
            command::BINLOG_DUMP | command::BINLOG_DUMP_GTID | command::TABLE_DUMP => {
                (Expect::Stream, Step::First)
            }
            _ => (Expect::Single, Step::First),
        };
        self.pending.push_back(Pending { expect, step });
        ClientEvent::Command(cmd)
    }

    /// Account for one server packet.
    pub fn on_server_packet(&mut self, p: &PacketInfo<'_>) -> ServerEvent {
        if p.continuation {
            return ServerEvent::None;
        }
        let Some(head) = self.pending.front().copied() else {
            return ServerEvent::Unsolicited;
        };
        let first = p.first().unwrap_or(0);
        if first == 0xff {
            return self.on_err(p, head);
        }
        match head.step {
            Step::First => self.first_packet(p, head.expect),
            Step::Defs { left, then } => self.defs(left, then),
            Step::Eof { then } => self.eof(p, head.expect, then),
            Step::Rows => {
                if self.is_terminator(p) {
                    self.read_status(p);
                    self.result_end()
                } else {
                    ServerEvent::None
                }
            }
            Step::InfileData | Step::InfileResult => {
                self.read_status(p);
                self.result_end()
            }
            Step::UntilEof => {
                if first == 0xfe && p.len < 9 {
                    self.read_status(p);
                    self.done()
                } else {
                    ServerEvent::None
                }
            }
        }
    }

    fn on_err(&mut self, p: &PacketInfo<'_>, head: Pending) -> ServerEvent {
        let code = p.prefix.get(1..3).map(|b| u16::from_le_bytes([b[0], b[1]]));
        if code == Some(0xffff) && self.mariadb_caps & caps::MARIADB_CLIENT_PROGRESS != 0 {
            return ServerEvent::None; // progress report, the reply goes on
        }
        self.pending.pop_front();
        if head.expect == Expect::Auth {
            ServerEvent::AuthFailed
        } else {
            ServerEvent::ResponseDone
        }
    }

    fn first_packet(&mut self, p: &PacketInfo<'_>, expect: Expect) -> ServerEvent {
        let first = p.first().unwrap_or(0);
        match expect {
            Expect::Auth => {
                if first == 0x00 {
                    self.read_status(p);
                    self.pending.pop_front();
                    ServerEvent::AuthOk
                } else {
                    ServerEvent::None // auth switch / more data: the client answers
                }
            }
            Expect::Single => {
                if first == 0x00 || first == 0xfe {
                    self.read_status(p);
                }
                self.done()
            }
            Expect::Stream => ServerEvent::None,
            Expect::FieldList => {
                if first == 0xfe && p.len < 9 {
                    self.read_status(p);
                    return self.done();
                }
                self.set_step(Step::UntilEof);
                ServerEvent::None
            }
            Expect::Prepare => self.prepare_ok(p),
            Expect::Results { .. } | Expect::Fetch => match first {
                0x00 => {
                    self.read_status(p);
                    self.result_end()
                }
                0xfb => {
                    self.set_step(Step::InfileData);
                    ServerEvent::None
                }
                _ => {
                    let (columns, at) = read_lenenc(p.prefix).unwrap_or((0, 0));
                    if self.metadata_skipped(p, at) {
                        return self.defs_done(AfterDefs::ResultColumns);
                    }
                    self.set_step(Step::Defs {
                        left: columns,
                        then: AfterDefs::ResultColumns,
                    });
                    ServerEvent::None
                }
            },
        }
    }

    /// MariaDB's cached metadata (MARIADB_CLIENT_CACHE_METADATA): a byte
    /// after the column count says whether column definitions follow; 0
    /// (the statement's metadata is unchanged since the client last saw it)
    /// means none do, and the reply goes on as after the last definition.
    fn metadata_skipped(&self, p: &PacketInfo<'_>, count_len: usize) -> bool {
        self.mariadb_caps & caps::MARIADB_CLIENT_CACHE_METADATA != 0
            && count_len > 0
            && p.len > count_len
            && p.prefix.get(count_len) == Some(&0)
    }

    fn prepare_ok(&mut self, p: &PacketInfo<'_>) -> ServerEvent {
        let u16_at = |i: usize| {
            p.prefix
                .get(i..i + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
                .unwrap_or(0)
        };
        let (columns, params) = (u16_at(5), u16_at(7));
        if params > 0 {
            self.set_step(Step::Defs {
                left: params,
                then: AfterDefs::PrepareParams { columns },
            });
        } else if columns > 0 {
            self.set_step(Step::Defs {
                left: columns,
                then: AfterDefs::PrepareColumns,
            });
        } else {
            return self.done();
        }
        ServerEvent::None
    }

    fn defs(&mut self, left: u64, then: AfterDefs) -> ServerEvent {
        if left > 1 {
            self.set_step(Step::Defs {
                left: left - 1,
                then,
            });
            return ServerEvent::None;
        }
        self.defs_done(then)
    }

    /// The last definition of a list went by (or none were sent): the EOF,
    /// the rows or the next list follows, or the reply has ended.
    fn defs_done(&mut self, then: AfterDefs) -> ServerEvent {
        let next = match (then, self.deprecate_eof()) {
            (AfterDefs::ResultColumns, true) => Step::Rows,
            (AfterDefs::ResultColumns, false) => Step::Eof {
                then: AfterEof::Rows,
            },
            (AfterDefs::PrepareParams { columns }, false) => Step::Eof {
                then: AfterEof::PrepareColumns(columns),
            },
            (AfterDefs::PrepareParams { columns }, true) if columns > 0 => Step::Defs {
                left: columns,
                then: AfterDefs::PrepareColumns,
            },
            (AfterDefs::PrepareColumns, false) => Step::Eof {
                then: AfterEof::Done,
            },
            (AfterDefs::PrepareParams { .. }, true) | (AfterDefs::PrepareColumns, true) => {
                return self.done();
            }
        };
        self.set_step(next);
        ServerEvent::None
    }

    fn eof(&mut self, p: &PacketInfo<'_>, expect: Expect, then: AfterEof) -> ServerEvent {
        self.read_status(p);
        match then {
            AfterEof::Rows => {
                let cursor = self.status & status::CURSOR_EXISTS != 0;
                if cursor && expect == (Expect::Results { binary: true }) {
                    return self.done(); // cursor opened: rows come with COM_STMT_FETCH
                }
                self.set_step(Step::Rows);
                ServerEvent::None
            }
            AfterEof::PrepareColumns(0) | AfterEof::Done => self.done(),
            AfterEof::PrepareColumns(n) => {
                self.set_step(Step::Defs {
                    left: n,
                    then: AfterDefs::PrepareColumns,
                });
                ServerEvent::None
            }
        }
    }

    /// EOF (or, with DEPRECATE_EOF, an OK with the 0xFE header) ending rows.
    fn is_terminator(&self, p: &PacketInfo<'_>) -> bool {
        p.first() == Some(0xfe)
            && if self.deprecate_eof() {
                p.len < MAX_PAYLOAD
            } else {
                p.len < 9
            }
    }

    /// Status flags from an OK (0x00 / 0xFE-as-OK) or EOF packet.
    fn read_status(&mut self, p: &PacketInfo<'_>) {
        let b = p.prefix;
        let at = if b.first() == Some(&0xfe) && p.len < 9 {
            Some(3) // EOF: header, warnings(2), status(2)
        } else if matches!(b.first(), Some(0x00) | Some(0xfe)) {
            read_lenenc(&b[1..])
                .and_then(|(_, n1)| read_lenenc(&b[1 + n1..]).map(|(_, n2)| 1 + n1 + n2))
        } else {
            None
        };
        if let Some(s) = at.and_then(|i| b.get(i..i + 2)) {
            self.status = u16::from_le_bytes([s[0], s[1]]);
        }
    }

    /// End of one result: another follows when MORE_RESULTS_EXISTS is set.
    fn result_end(&mut self) -> ServerEvent {
        if self.status & status::MORE_RESULTS_EXISTS != 0 {
            self.set_step(Step::First);
            ServerEvent::None
        } else {
            self.done()
        }
    }

    fn done(&mut self) -> ServerEvent {
        self.pending.pop_front();
        ServerEvent::ResponseDone
    }

    fn set_step(&mut self, step: Step) {
        if let Some(head) = self.pending.front_mut() {
            head.step = step;
        }
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
