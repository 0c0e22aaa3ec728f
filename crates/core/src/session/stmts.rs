//! Server-side prepared statements of one session: what re-preparing them on
//! a new primary needs (text, parameter count, the parameter types the client
//! bound last) and the statement-id translation once the backend's ids differ
//! from the ids the client was given (after a migration).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use mysql_zk_proxy_protocol::command;

/// Hashes a statement id with one multiply. The keys are ids the backend or
/// the proxy handed out, never ones a client picks, so there is no flooding
/// to defend against, and SipHash cost more than the rest of the lookup on
/// every EXECUTE.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Statements tracked per session at most; more makes the session unmigratable.
pub(crate) const MAX_STATEMENTS: usize = 4096;

/// An id the backend never hands out: a client id we do not know maps here,
/// so the backend answers "unknown prepared statement" as it would have.
pub(crate) const UNKNOWN_ID: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Types {
    /// Never executed with types: the client sends them on its first EXECUTE.
    NotYet,
    /// `(type, flags)` pairs of the last EXECUTE that bound them.
    Known(Vec<u8>),
    /// Bound in a packet the proxy could not read whole.
    Unknown,
}

#[derive(Debug, Clone)]
struct Statement {
    /// The statement text; `None` when it was too long to capture.
    sql: Option<Vec<u8>>,
    params: u16,
    backend_id: u32,
    types: Types,
    /// SEND_LONG_DATA sent and not yet consumed by EXECUTE or RESET.
    long_data: bool,
    /// Re-prepared on a new backend, which has no types bound yet.
    needs_types: bool,
    /// The default schema it was prepared in (`Some(None)`: none), or
    /// `None` when the proxy does not know it.
    schema: Option<Option<String>>,
}

/// One statement to prepare again on a new backend.
#[derive(Debug, Clone)]
pub(crate) struct ToPrepare<'a> {
    pub client_id: u32,
    pub sql: &'a [u8],
    pub params: u16,
    /// The default schema to prepare it in.
    pub schema: Option<&'a str>,
}

#[derive(Debug, Default)]
pub struct Statements {
    by_client: HashMap<u32, Statement, BuildHasherDefault<IdHasher>>,
    /// Backend ids differ from client ids (the session was migrated).
    translating: bool,
    too_many: bool,
}

impl Statements {
    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// Ids must be rewritten both ways (the session was migrated).
    pub(crate) fn translating(&self) -> bool {
        self.translating
    }

    /// Why these statements cannot be moved to another backend, if they cannot.
    pub(crate) fn blocker(&self) -> Option<&'static str> {
        if self.too_many {
            return Some("too many prepared statements");
        }
        let s = self.by_client.values();
        for st in s {
            if st.sql.is_none() {
                return Some("prepared statement too long to track");
            }
            if st.long_data {
                return Some("prepared statement with pending SEND_LONG_DATA");
            }
            if st.types == Types::Unknown {
                return Some("prepared statement parameter types not seen");
            }
            if st.schema.is_none() {
                return Some("a prepared statement's default schema is not known");
            }
        }
        None
    }

    /// The server answered a PREPARE with `backend_id`: the id the client
    /// gets (the same unless translating and already taken).
    pub fn prepared(
        &mut self,
        backend_id: u32,
        params: u16,
        sql: Option<Vec<u8>>,
        schema: Option<Option<String>>,
    ) -> u32 {
        if self.by_client.len() >= MAX_STATEMENTS {
            self.too_many = true;
        }
        let client_id = if self.translating && self.by_client.contains_key(&backend_id) {
            self.free_client_id()
        } else {
            backend_id
        };
        let st = Statement {
            sql,
            params,
            backend_id,
            types: Types::NotYet,
            long_data: false,
            needs_types: false,
            schema,
        };
        self.by_client.insert(client_id, st);
        client_id
    }

    fn free_client_id(&self) -> u32 {
        let mut id = self.by_client.keys().max().map_or(1, |m| m.wrapping_add(1));
        while id == 0 || id == UNKNOWN_ID || self.by_client.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        id
    }

    /// The backend id for a client's statement id.
    pub(crate) fn to_backend(&self, client_id: u32) -> u32 {
        self.by_client
            .get(&client_id)
            .map_or(UNKNOWN_ID, |s| s.backend_id)
    }

    /// A client command naming a statement (`payload` whole when captured).
    pub(crate) fn on_command(&mut self, cmd: u8, prefix: &[u8], payload: Option<&[u8]>) {
        let Some(id) = id_at(prefix) else { return };
        match cmd {
            command::STMT_EXECUTE => {
                self.on_execute(id, payload.unwrap_or(prefix), payload.is_some())
            }
            command::STMT_SEND_LONG_DATA => self.with(id, |s| s.long_data = true),
            command::STMT_RESET => self.with(id, |s| s.long_data = false),
            command::STMT_CLOSE => {
                self.by_client.remove(&id);
            }
            _ => {}
        }
    }

    fn with(&mut self, id: u32, f: impl FnOnce(&mut Statement)) {
        if let Some(s) = self.by_client.get_mut(&id) {
            f(s)
        }
    }

    fn on_execute(&mut self, id: u32, bytes: &[u8], whole: bool) {
        let Some(st) = self.by_client.get_mut(&id) else {
            return;
        };
        st.long_data = false;
        let n = st.params as usize;
        if n == 0 {
            return;
        }
        let bound_at = 10 + n.div_ceil(8);
        match bytes.get(bound_at) {
            Some(0) => {}
            Some(_) => {
                st.needs_types = false;
                match (bytes.get(bound_at + 1..bound_at + 1 + 2 * n), &mut st.types) {
                    // drivers bind the same types on every EXECUTE: no new copy
                    (Some(t), Types::Known(known)) => {
                        if known.as_slice() != t {
                            known.clear();
                            known.extend_from_slice(t);
                        }
                    }
                    (Some(t), types) => *types = Types::Known(t.to_vec()),
                    (None, types) => *types = Types::Unknown,
                }
            }
            None if whole => {} // malformed: the server rejects it
            None => st.types = Types::Unknown,
        }
    }

    /// COM_RESET_CONNECTION succeeded: the server dropped every statement.
    pub fn clear(&mut self) {
        self.by_client.clear();
        self.too_many = false;
    }

    /// What to prepare on a new backend, in client-id order.
    pub(crate) fn to_prepare(&self) -> Vec<ToPrepare<'_>> {
        let mut v: Vec<_> = self
            .by_client
            .iter()
            .filter_map(|(&client_id, s)| {
                Some(ToPrepare {
                    client_id,
                    sql: s.sql.as_deref()?,
                    params: s.params,
                    schema: s.schema.as_ref()?.as_deref(),
                })
            })
            .collect();
        v.sort_by_key(|p| p.client_id);
        v
    }

    /// `client_id` now lives under `backend_id` on the new backend.
    pub(crate) fn reprepared(&mut self, client_id: u32, backend_id: u32) {
        self.translating = true;
        self.with(client_id, |s| {
            s.backend_id = backend_id;
            s.needs_types = matches!(s.types, Types::Known(_));
        });
    }

    /// The session moved to a new backend (ids from now on are translated).
    pub fn moved(&mut self) {
        self.translating = true;
    }

    /// Must this client EXECUTE be held for [`Statements::with_types`]?
    pub(crate) fn needs_types(&self, client_id: u32) -> bool {
        self.by_client
            .get(&client_id)
            .is_some_and(|s| s.needs_types)
    }

    /// Parameter bytes needed to rewrite an EXECUTE of `client_id`
    /// (header included): through its new-params-bound flag.
    pub(crate) fn execute_head_len(&self, client_id: u32) -> usize {
        let n = self
            .by_client
            .get(&client_id)
            .map_or(0, |s| s.params as usize);
        4 + 11 + n.div_ceil(8)
    }

    /// An EXECUTE packet (header included, at least `execute_head_len`
    /// bytes) that relies on types bound before the migration, rewritten to
    /// send them again; `None` when it needs no rewrite.
    pub(crate) fn with_types(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let id = id_at(packet.get(4..)?)?;
        let st = self.by_client.get(&id)?;
        let Types::Known(types) = &st.types else {
            return None;
        };
        let at = 4 + 10 + (st.params as usize).div_ceil(8);
        if !st.needs_types || *packet.get(at)? != 0 {
            return None;
        }
        let len = u32::from_le_bytes([packet[0], packet[1], packet[2], 0]) as usize;
        let new_len = len + types.len();
        if new_len >= mysql_zk_proxy_protocol::MAX_PAYLOAD {
            return None;
        }
        let mut out = Vec::with_capacity(packet.len() + types.len());
        out.extend_from_slice(&(new_len as u32).to_le_bytes()[..3]);
        out.push(packet[3]);
        out.extend_from_slice(&packet[4..at]);
        out.push(1);
        out.extend_from_slice(types);
        out.extend_from_slice(&packet[at + 1..]);
        Some(out)
    }
}

/// The statement id at payload bytes 1..5.
pub(crate) fn id_at(payload: &[u8]) -> Option<u32> {
    let b = payload.get(1..5)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Commands whose payload bytes 1..5 are a statement id.
pub(crate) fn names_statement(cmd: u8) -> bool {
    matches!(
        cmd,
        command::STMT_EXECUTE
            | command::STMT_SEND_LONG_DATA
            | command::STMT_CLOSE
            | command::STMT_RESET
            | command::STMT_FETCH
            | command::STMT_BULK_EXECUTE
    )
}

#[cfg(test)]
#[path = "stmts_tests.rs"]
mod tests;
