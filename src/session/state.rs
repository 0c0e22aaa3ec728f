//! What a session changed on its backend that a migration must carry (the
//! current schema, SET statements) and what makes it unmigratable (temporary
//! tables, user locks, LOCK TABLES, SQL PREPARE, COM_CHANGE_USER), plus the
//! session's server-side prepared statements (`stmts.rs`).
//! Fed with every packet the relay sees; effects apply only when the server
//! answered OK.

use std::collections::VecDeque;

use crate::protocol::command;
use crate::protocol::tracker::{ClientEvent, ServerEvent};
use crate::protocol::PacketInfo;
use crate::session::stmts::{self, Statements};

/// SET statements kept for replay at most; more makes the session unmigratable.
const MAX_SETS: usize = 64;
/// Longest statement text captured for replay (and the framer's capture limit).
pub const MAX_CAPTURE: usize = 16 * 1024;
/// Commands whose whole payload the state tracker reads.
pub const CAPTURED_COMMANDS: &[u8] = &[
    command::QUERY,
    command::INIT_DB,
    command::STMT_PREPARE,
    command::STMT_EXECUTE,
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Effect {
    #[default]
    None,
    Schema(String),
    Set(String),
    Block(&'static str),
    Unblock(&'static str),
    Reset,
    /// A COM_STMT_PREPARE (its text when captured), registered at its OK.
    Prepare(Option<Vec<u8>>),
}

#[derive(Debug, Default)]
pub struct CarriedState {
    /// Current default schema (from the handshake, COM_INIT_DB or USE).
    pub schema: Option<String>,
    /// SET statements that succeeded, in order.
    pub sets: Vec<String>,
    /// Why the session cannot be migrated, if it cannot (see also `stmts`).
    pub blocker: Option<&'static str>,
    /// Server-side prepared statements and their id translation.
    pub stmts: Statements,
    /// Effects waiting for their reply, aligned with outstanding replies.
    pending: VecDeque<Effect>,
    head_answered: bool,
}

impl CarriedState {
    pub fn new(schema: Option<String>) -> Self {
        CarriedState {
            schema,
            ..Default::default()
        }
    }

    pub fn migratable(&self) -> bool {
        self.why_not_migratable().is_none()
    }

    /// Why the session cannot be moved to another backend, if it cannot.
    pub fn why_not_migratable(&self) -> Option<&'static str> {
        self.blocker.or_else(|| self.stmts.blocker())
    }

    /// The head of a server packet that answers a COM_STMT_PREPARE with OK,
    /// while ids are translated: registers the statement now and returns the
    /// id the client must see in place of the backend's.
    pub fn on_prepare_ok_head(&mut self, prefix: &[u8]) -> Option<u32> {
        let backend_id = stmts::id_at(prefix)?;
        let params = prefix.get(7..9).map(|b| u16::from_le_bytes([b[0], b[1]]))?;
        let Some(Effect::Prepare(sql)) = self.pending.front_mut() else {
            return None;
        };
        let sql = sql.take();
        *self.pending.front_mut()? = Effect::None;
        Some(self.stmts.prepared(backend_id, params, sql))
    }

    /// A client packet, after the protocol tracker classified it.
    pub fn on_client(&mut self, ev: ClientEvent, p: &PacketInfo<'_>) {
        match ev {
            ClientEvent::Command(cmd) => {
                if stmts::names_statement(cmd) {
                    self.stmts.on_command(cmd, p.prefix, p.payload);
                }
                let effect = self.effect_of(cmd, p);
                self.pending.push_back(effect);
            }
            ClientEvent::NoReply(cmd) => self.stmts.on_command(cmd, p.prefix, p.payload),
            ClientEvent::Data => {}
        }
    }

    /// A server packet, after the protocol tracker classified it.
    pub fn on_server(&mut self, ev: ServerEvent, p: &PacketInfo<'_>) {
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
        if matches!(
            ev,
            ServerEvent::ResponseDone | ServerEvent::AuthOk | ServerEvent::AuthFailed
        ) {
            self.pending.pop_front();
            self.head_answered = false;
        }
    }

    fn apply(&mut self, effect: Effect, reply: &[u8]) {
        match effect {
            Effect::Prepare(sql) => {
                let backend_id = stmts::id_at(reply);
                let params = reply.get(7..9).map(|b| u16::from_le_bytes([b[0], b[1]]));
                if let (Some(id), Some(params)) = (backend_id, params) {
                    self.stmts.prepared(id, params, sql);
                }
            }
            Effect::None => {}
            Effect::Schema(s) => self.schema = Some(s),
            Effect::Set(s) if self.sets.len() < MAX_SETS => self.sets.push(s),
            Effect::Set(_) => self.block("too many SET statements to replay"),
            Effect::Block(why) => self.block(why),
            Effect::Unblock(why) => {
                if self.blocker == Some(why) {
                    self.blocker = None;
                }
            }
            Effect::Reset => {
                self.sets.clear();
                self.stmts.clear();
                if self.blocker != Some("COM_CHANGE_USER") {
                    self.blocker = None;
                }
            }
        }
    }

    fn block(&mut self, why: &'static str) {
        if self.blocker.is_none() {
            self.blocker = Some(why);
        }
    }

    fn effect_of(&mut self, cmd: u8, p: &PacketInfo<'_>) -> Effect {
        match cmd {
            command::INIT_DB => match p.payload {
                Some(b) => Effect::Schema(String::from_utf8_lossy(&b[1..]).into_owned()),
                None => Effect::Block("untracked COM_INIT_DB"),
            },
            command::QUERY => match p.payload {
                Some(b) => classify(&b[1..]),
                None if starts_with_keyword(&p.prefix[1..], "set")
                    || starts_with_keyword(&p.prefix[1..], "use") =>
                {
                    Effect::Block("statement too long to track")
                }
                None => Effect::None,
            },
            command::STMT_PREPARE => Effect::Prepare(p.payload.map(|b| b[1..].to_vec())),
            command::STMT_BULK_EXECUTE => Effect::Block("COM_STMT_BULK_EXECUTE"),
            command::CHANGE_USER => Effect::Block("COM_CHANGE_USER"),
            command::RESET_CONNECTION => Effect::Reset,
            _ => Effect::None,
        }
    }
}

/// What a COM_QUERY text does to session state. Allocates only for the
/// statements it keeps (SET / USE); every other query costs a byte scan.
fn classify(sql: &[u8]) -> Effect {
    if contains_ignore_case(sql, b"get_lock(") {
        return Effect::Block("user lock (GET_LOCK)");
    }
    let t = sql.trim_ascii();
    let body = t.strip_suffix(b";").unwrap_or(t).trim_ascii_end();
    let multi = body.contains(&b';');
    let kw = |k: &str| starts_with_keyword(t, k);
    if kw("use") {
        if multi {
            return Effect::Block("multi-statement USE");
        }
        let db = String::from_utf8_lossy(body[3..].trim_ascii());
        return Effect::Schema(db.trim_matches('`').to_string());
    }
    if kw("set") {
        if starts_with_keyword(t[3..].trim_ascii_start(), "statement") {
            return Effect::None; // per-statement settings leave no trace
        }
        if multi {
            return Effect::Block("multi-statement SET");
        }
        return Effect::Set(String::from_utf8_lossy(body).into_owned());
    }
    if kw("create") && starts_with_keyword(t[6..].trim_ascii_start(), "temporary") {
        return Effect::Block("temporary table");
    }
    if kw("lock") {
        return Effect::Block("LOCK TABLES");
    }
    if kw("unlock") {
        return Effect::Unblock("LOCK TABLES");
    }
    if kw("prepare") {
        return Effect::Block("SQL PREPARE");
    }
    Effect::None
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn starts_with_keyword(text: &[u8], kw: &str) -> bool {
    let t = text.trim_ascii_start();
    t.len() > kw.len()
        && t[..kw.len()].eq_ignore_ascii_case(kw.as_bytes())
        && !t[kw.len()].is_ascii_alphanumeric()
        && t[kw.len()] != b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(sql: &str) -> Vec<u8> {
        [&[command::QUERY][..], sql.as_bytes()].concat()
    }

    fn run(state: &mut CarriedState, payload: &[u8], reply_first: u8) {
        let p = PacketInfo {
            len: payload.len(),
            seq: 0,
            prefix: &payload[..payload.len().min(32)],
            continuation: false,
            payload: Some(payload),
        };
        state.on_client(ClientEvent::Command(payload[0]), &p);
        let reply = [reply_first, 0, 0, 2, 0, 0, 0];
        let r = PacketInfo {
            len: 7,
            seq: 1,
            prefix: &reply,
            continuation: false,
            payload: None,
        };
        state.on_server(ServerEvent::ResponseDone, &r);
    }

    #[test]
    fn set_and_use_tracked_only_when_ok() {
        let mut s = CarriedState::new(Some("app".into()));
        run(&mut s, &query("SET @a = 1"), 0x00);
        run(&mut s, &query("set session sql_mode = ''"), 0x00);
        run(&mut s, &query("SET nonsense"), 0xff);
        run(&mut s, &query("  USE `other`;"), 0x00);
        assert_eq!(s.sets, vec!["SET @a = 1", "set session sql_mode = ''"]);
        assert_eq!(s.schema.as_deref(), Some("other"));
        assert!(s.migratable());
        run(&mut s, b"\x02third", 0x00);
        assert_eq!(s.schema.as_deref(), Some("third"));
    }

    #[test]
    fn blockers() {
        for (sql, why) in [
            ("CREATE TEMPORARY TABLE t (a INT)", "temporary table"),
            ("SELECT GET_LOCK('x', 1)", "user lock (GET_LOCK)"),
            ("lock tables t write", "LOCK TABLES"),
            ("SET @a = 1; SET @b = 2", "multi-statement SET"),
        ] {
            let mut s = CarriedState::new(None);
            run(&mut s, &query(sql), 0x00);
            assert_eq!(s.blocker, Some(why), "{sql}");
        }
        let mut s = CarriedState::new(None);
        run(&mut s, &query("LOCK TABLES t READ"), 0x00);
        run(&mut s, &query("UNLOCK TABLES"), 0x00);
        assert!(s.migratable());
        run(&mut s, &query("PREPARE s FROM 'SELECT 1'"), 0x00);
        assert_eq!(s.blocker, Some("SQL PREPARE"));
        run(&mut s, b"\x1f", 0x00);
        assert!(
            s.migratable(),
            "COM_RESET_CONNECTION drops prepared statements"
        );
    }

    #[test]
    fn setting_like_words_are_not_set() {
        let mut s = CarriedState::new(None);
        run(&mut s, &query("SETTINGS"), 0x00);
        run(&mut s, &query("SELECT 'SET x=1'"), 0x00);
        run(
            &mut s,
            &query("SET STATEMENT max_statement_time=1 FOR SELECT 1"),
            0x00,
        );
        assert!(s.sets.is_empty());
    }
}
