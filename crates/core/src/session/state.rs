//! What the proxy knows of a session's state between migrations, without
//! asking the server: whether its state is still exactly known (as it was
//! at login or after the last migration), the default schema where the
//! protocol alone proves it (for re-preparing statements where they were
//! prepared), and its server-side prepared statements (`stmts.rs`). The
//! state itself is read from the server when the session moves
//! (`snapshot.rs`); nothing here is guessed from statement text.
//! Fed with every packet the relay sees; effects apply when the server
//! answered OK.

use std::collections::VecDeque;

use crate::session::snapshot::Snapshot;
use crate::session::stmts::{self, Statements};
use mysql_zk_proxy_protocol::command;
use mysql_zk_proxy_protocol::tracker::{ClientEvent, ServerEvent};
use mysql_zk_proxy_protocol::PacketInfo;

/// Longest statement text captured (and the framer's capture limit).
pub(crate) const MAX_CAPTURE: usize = 16 * 1024;
/// Commands whose whole payload the state tracker reads.
pub(crate) const CAPTURED_COMMANDS: &[u8] = &[
    command::QUERY,
    command::INIT_DB,
    command::STMT_PREPARE,
    command::STMT_EXECUTE,
];
/// Replies the state waits for at most; the relay sends one command at a
/// time, so more means a client the proxy cannot follow.
const MAX_PENDING: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Effect {
    #[default]
    None,
    /// COM_INIT_DB or a statement that is exactly `USE name`.
    Schema(String),
    /// A statement that may be `SET TRANSACTION` for the next transaction.
    NextTransaction,
    /// COM_RESET_CONNECTION: the server drops prepared statements.
    Reset,
    /// A COM_STMT_PREPARE (its text when captured), registered at its OK.
    Prepare(Option<Vec<u8>>),
}

#[derive(Debug, Default)]
pub(crate) struct CarriedState {
    /// The session's state, while it is known without reading the server:
    /// from login or the last migration until a command that may change it.
    pub known: Option<Snapshot>,
    /// The default schema, while the protocol proves it: `None` once a
    /// statement may have changed it in a way only the server knows.
    pub schema: Option<Option<String>>,
    /// Server-side prepared statements and their id translation.
    pub stmts: Statements,
    /// Why the session cannot be followed at all, if it cannot.
    pub blocker: Option<&'static str>,
    /// A `SET TRANSACTION ...` for the next transaction may be pending: the
    /// server shows it in no variable, so it could not be carried.
    pub next_transaction_set: bool,
    /// Effects waiting for their reply, aligned with outstanding replies.
    pending: VecDeque<Effect>,
    head_answered: bool,
}

impl CarriedState {
    /// A session that logged in as `user` into `schema`.
    pub fn new(user: &str, schema: Option<String>) -> Self {
        let schema = schema.filter(|s| !s.is_empty());
        CarriedState {
            known: Some(Snapshot::fresh(user, schema.clone())),
            schema: Some(schema),
            ..Default::default()
        }
    }

    /// The state was read from the server (and carried): known again.
    pub(crate) fn known_now(&mut self, snapshot: Snapshot) {
        self.schema = Some(snapshot.schema.clone());
        self.known = Some(snapshot);
    }

    /// Why the session cannot be moved whatever its server says, if so.
    pub(crate) fn why_not_migratable(&self) -> Option<&'static str> {
        self.blocker.or_else(|| self.stmts.blocker()).or_else(|| {
            self.next_transaction_set.then_some(
                "SET TRANSACTION for the next transaction, which no server variable shows",
            )
        })
    }

    /// The head of a server packet that answers a COM_STMT_PREPARE with OK,
    /// while ids are translated: registers the statement now and returns the
    /// id the client must see in place of the backend's.
    pub(crate) fn on_prepare_ok_head(&mut self, prefix: &[u8]) -> Option<u32> {
        let backend_id = stmts::id_at(prefix)?;
        let params = prefix.get(7..9).map(|b| u16::from_le_bytes([b[0], b[1]]))?;
        let Some(Effect::Prepare(sql)) = self.pending.front_mut() else {
            return None;
        };
        let sql = sql.take();
        *self.pending.front_mut()? = Effect::None;
        Some(
            self.stmts
                .prepared(backend_id, params, sql, self.schema.clone()),
        )
    }

    /// A client packet, after the protocol tracker classified it.
    pub(crate) fn on_client(&mut self, ev: ClientEvent, p: &PacketInfo<'_>) {
        match ev {
            ClientEvent::Command(cmd) => {
                if stmts::names_statement(cmd) {
                    self.stmts.on_command(cmd, p.prefix, p.payload);
                }
                let reads = cmd == command::QUERY && p.payload.is_some_and(|b| reads_only(&b[1..]));
                if changes_state(cmd) && !reads {
                    self.known = None;
                }
                let effect = self.effect_of(cmd, p);
                if self.pending.len() >= MAX_PENDING {
                    self.blocker = Some("more commands pipelined than the proxy follows");
                    return;
                }
                self.pending.push_back(effect);
            }
            ClientEvent::NoReply(cmd) => self.stmts.on_command(cmd, p.prefix, p.payload),
            ClientEvent::Data => {}
        }
    }

    /// A server packet, after the protocol tracker classified it (and
    /// read the status flags it carries: `status`).
    pub(crate) fn on_server(&mut self, ev: ServerEvent, p: &PacketInfo<'_>, status: u16) {
        if p.continuation || self.pending.is_empty() {
            return;
        }
        if !self.head_answered {
            self.head_answered = true;
            if p.first() == Some(0x00) {
                if let Some(effect) = self.pending.front_mut().map(std::mem::take) {
                    self.apply(effect, p.prefix);
                }
            }
        }
        let in_trans = status & mysql_zk_proxy_protocol::status::IN_TRANS != 0;
        if ev == ServerEvent::ResponseDone && self.next_transaction_set && in_trans {
            self.next_transaction_set = false; // the transaction it was for began
        }
        match ev {
            // COM_CHANGE_USER, whatever the exchange: a new session
            ServerEvent::AuthOk => self.changed_user(),
            ServerEvent::ResponseDone | ServerEvent::AuthFailed => {}
            _ => return,
        }
        self.pending.pop_front();
        self.head_answered = false;
    }

    fn changed_user(&mut self) {
        self.next_transaction_set = false;
        self.stmts.clear();
        self.known = None;
        self.schema = None;
    }

    fn apply(&mut self, effect: Effect, reply: &[u8]) {
        match effect {
            Effect::Prepare(sql) => {
                let backend_id = stmts::id_at(reply);
                let params = reply.get(7..9).map(|b| u16::from_le_bytes([b[0], b[1]]));
                if let (Some(id), Some(params)) = (backend_id, params) {
                    self.stmts.prepared(id, params, sql, self.schema.clone());
                }
            }
            Effect::None => {}
            Effect::Schema(s) => {
                if let Some(k) = self.known.as_mut() {
                    k.schema = Some(s.clone());
                }
                self.schema = Some(Some(s));
            }
            Effect::Reset => self.stmts.clear(),
            Effect::NextTransaction => self.next_transaction_set = true,
        }
    }

    fn effect_of(&mut self, cmd: u8, p: &PacketInfo<'_>) -> Effect {
        match cmd {
            command::INIT_DB => match p.payload {
                Some(b) => Effect::Schema(String::from_utf8_lossy(&b[1..]).into_owned()),
                None => self.schema_unknown(),
            },
            command::QUERY if p.payload.is_some_and(|b| sets_next_transaction(&b[1..])) => {
                self.schema_unknown_if(p);
                Effect::NextTransaction
            }
            command::QUERY => match p.payload.map(|b| use_statement(&b[1..])) {
                Some(Use::None) => Effect::None,
                Some(Use::Exactly(db)) => Effect::Schema(db),
                Some(Use::Maybe) | None => self.schema_unknown(),
            },
            command::STMT_PREPARE => Effect::Prepare(p.payload.map(|b| b[1..].to_vec())),
            command::RESET_CONNECTION => Effect::Reset,
            _ => Effect::None,
        }
    }

    /// A statement that may also be a `USE` leaves the schema unknown.
    fn schema_unknown_if(&mut self, p: &PacketInfo<'_>) {
        if p.payload
            .is_some_and(|b| use_statement(&b[1..]) != Use::None)
        {
            self.schema = None;
        }
    }

    fn schema_unknown(&mut self) -> Effect {
        self.schema = None;
        Effect::None
    }
}

/// Commands that may change what a session holds on its server (not
/// statements the proxy tracks itself, nor commands that only read).
fn changes_state(cmd: u8) -> bool {
    !matches!(
        cmd,
        command::PING
            | command::STATISTICS
            | command::FIELD_LIST
            | command::STMT_PREPARE
            | command::INIT_DB
            | command::PROCESS_INFO
    )
}

/// A statement that provably changes nothing a session holds: `SHOW ...`,
/// or a `SELECT` of nothing but system variables (what drivers run when
/// they connect), e.g. `SELECT @@max_allowed_packet, @@wait_timeout AS w`.
/// No function call, user variable or table can hide in either.
fn reads_only(sql: &[u8]) -> bool {
    let t = sql.trim_ascii();
    let t = t.strip_suffix(b";").unwrap_or(t).trim_ascii_end();
    let Some(rest) = keyword(t, b"select") else {
        return keyword(t, b"show").is_some() && !t.contains(&b';');
    };
    let name =
        |w: &[u8]| !w.is_empty() && w.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    rest.split(|&b| b == b',').all(|item| {
        let words: Vec<&[u8]> = item
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let var = |w: &[u8]| {
            w.strip_prefix(b"@@").is_some_and(|v| {
                !v.is_empty()
                    && v.iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            })
        };
        match words[..] {
            [v] => var(v),
            [v, alias] => var(v) && name(alias) && !alias.eq_ignore_ascii_case(b"from"),
            [v, as_, alias] => var(v) && as_.eq_ignore_ascii_case(b"as") && name(alias),
            _ => false,
        }
    })
}

/// The text after a leading keyword `kw` and white space.
fn keyword<'a>(t: &'a [u8], kw: &[u8]) -> Option<&'a [u8]> {
    let rest = t.get(kw.len()..)?;
    (t[..kw.len()].eq_ignore_ascii_case(kw) && rest.first()?.is_ascii_whitespace()).then_some(rest)
}

/// Whether `sql` may set characteristics of the next transaction only
/// (`SET TRANSACTION ...` without SESSION/GLOBAL): it has both words.
/// Only the words matter; a false alarm costs a refused move, never a
/// silent one.
fn sets_next_transaction(sql: &[u8]) -> bool {
    if !(has_word(sql, b"set") && has_word(sql, b"transaction")) {
        return false;
    }
    // one `SET SESSION|GLOBAL TRANSACTION ...` shows in the variables
    let t = sql.trim_ascii();
    let t = t.strip_suffix(b";").unwrap_or(t);
    let words: Vec<&[u8]> = t
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .take(3)
        .collect();
    let scoped = matches!(words[..], [set, scope, trx]
        if set.eq_ignore_ascii_case(b"set")
            && (scope.eq_ignore_ascii_case(b"session") || scope.eq_ignore_ascii_case(b"global"))
            && trx.eq_ignore_ascii_case(b"transaction"));
    !(scoped
        && !t.contains(&b';')
        && !t.contains(&b'/')
        && !t.contains(&b'#')
        && !t.contains(&b'-'))
}

/// `word` appears in `sql` as a whole word (any case).
fn has_word(sql: &[u8], word: &[u8]) -> bool {
    sql.windows(word.len()).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(word)
            && (i == 0 || !word_byte(sql[i - 1]))
            && sql.get(i + word.len()).is_none_or(|&b| !word_byte(b))
    })
}

/// What a COM_QUERY text can do to the default schema.
#[derive(Debug, PartialEq, Eq)]
enum Use {
    /// It has no `USE` word: it cannot change the schema.
    None,
    /// It is exactly `USE name` (or `` USE `name` ``).
    Exactly(String),
    /// Anything else with the word in it: only the server knows.
    Maybe,
}

/// Whether `sql` can change the default schema. Only a `USE` statement
/// does, and it cannot be written without the word, so a text without it
/// proves the schema unchanged; a text that is nothing but `USE name` says
/// which schema follows.
fn use_statement(sql: &[u8]) -> Use {
    if !has_word(sql, b"use") {
        return Use::None;
    }
    let t = sql.trim_ascii();
    let t = t.strip_suffix(b";").unwrap_or(t).trim_ascii_end();
    let Some(rest) = t.get(3..).filter(|_| t[..3].eq_ignore_ascii_case(b"use")) else {
        return Use::Maybe;
    };
    let name = rest.trim_ascii_start();
    if name.len() == rest.len() {
        return Use::Maybe; // no space after the word
    }
    let inner = match name.strip_prefix(b"`").and_then(|n| n.strip_suffix(b"`")) {
        Some(q) if !q.is_empty() && !q.contains(&b'`') => q,
        Some(_) => return Use::Maybe,
        None if !name.is_empty() && name.iter().all(|&b| word_byte(b) || b == b'$') => name,
        None => return Use::Maybe,
    };
    match std::str::from_utf8(inner) {
        Ok(s) if s.is_ascii() => Use::Exactly(s.to_string()),
        _ => Use::Maybe,
    }
}

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
