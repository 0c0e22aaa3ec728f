//! The session state a scripted fake MariaDB server (`fake_server.rs`)
//! reports: what the snapshot's reads (`snapshot.rs`) see, and what the
//! carry's `SET` statements change. Only the statement shapes the proxy
//! sends are understood; anything else is answered with an OK.

use std::collections::BTreeMap;

use mysql_zk_proxy_protocol::status;

/// Collations the fake server knows: (id, character set, name, is default).
const COLLATIONS: [(u16, &str, &str, bool); 4] = [
    (33, "utf8mb3", "utf8mb3_general_ci", true),
    (45, "utf8mb4", "utf8mb4_general_ci", true),
    (46, "utf8mb4", "utf8mb4_bin", false),
    (63, "binary", "binary", true),
];

/// The text of an `UNLIMITED` read after its `SET STATEMENT ... FOR` prefix.
fn unprefixed(sql: &str) -> &str {
    match sql.strip_prefix("SET STATEMENT ") {
        Some(rest) => rest.split_once(" FOR ").map_or(rest, |(_, q)| q),
        None => sql,
    }
}

/// One user variable as information_schema.USER_VARIABLES lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FakeVar {
    pub name: String,
    /// INT, INT UNSIGNED, DECIMAL, DOUBLE or VARCHAR.
    pub kind: String,
    /// The value as text (a string's bytes as they are).
    pub value: String,
    /// A string's collation; `binary` for numbers.
    pub collation: String,
}

/// One session on the fake server.
#[derive(Debug, Clone)]
pub(crate) struct FakeSession {
    pub schema: Option<String>,
    pub user: String,
    /// Session values by upper-case name (every global has one).
    pub sysvars: BTreeMap<String, String>,
    pub user_vars: Vec<FakeVar>,
    pub last_insert_id: u64,
    pub insert_id: u64,
    /// The collation id result metadata carries (`SET NAMES ... COLLATE`).
    pub results_collation: u16,
    pub status: u16,
    /// The id the next prepared statement gets.
    pub next_statement: u32,
}

/// How the fake server behaves, shared by all its connections.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub globals: BTreeMap<String, String>,
    /// `com_create_temporary_table` of the session (refuses a move when > 0).
    pub temp_tables: u64,
    /// Metadata locks the session holds; `None`: no metadata_lock_info plugin.
    pub locks: Option<u64>,
    /// `@@warning_count` left by the previous statement.
    pub warnings: u64,
    /// Faults to inject.
    pub faults: Faults,
    /// The id of a session's first prepared statement.
    pub first_statement_id: u32,
}

impl Script {
    /// The default script with the faults `set` sets.
    pub(crate) fn faulty(set: impl FnOnce(&mut Faults)) -> Script {
        let mut script = Script::default();
        set(&mut script.faults);
        script
    }
}

/// How a scripted server misbehaves (nothing by default).
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// A system variable a `SET` silently leaves as it was.
    pub ignores: Option<String>,
    /// A system variable a `SET` is refused for (error 1231).
    pub refuses: Option<String>,
    /// A query containing this text gets error 1105.
    pub fails: Option<String>,
    /// A query containing this text is never answered.
    pub stalls: Option<String>,
    /// A variable without a session scope (in `globals`) that moves between
    /// the session-side and the global-side read, as `gtid_binlog_pos`
    /// does under write load.
    pub moves: Option<String>,
    /// Greet, then never answer the login.
    pub stall_login: bool,
}

/// Variables of `Script::default`'s globals without a session scope.
const GLOBAL_ONLY: &[&str] = &["GTID_BINLOG_POS"];

impl Default for Script {
    fn default() -> Self {
        let globals = [
            ("GTID_BINLOG_POS", "0-1-100"),
            ("SQL_MODE", "STRICT_TRANS_TABLES"),
            ("WAIT_TIMEOUT", "28800"),
            ("SQL_SELECT_LIMIT", "18446744073709551615"),
            ("MAX_STATEMENT_TIME", "0.000000"),
            ("CHARACTER_SET_RESULTS", "utf8mb4"),
            ("CHARACTER_SET_CLIENT", "utf8mb4"),
            ("COLLATION_CONNECTION", "utf8mb4_general_ci"),
        ];
        Script {
            globals: globals
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            temp_tables: 0,
            locks: Some(0),
            warnings: 0,
            faults: Faults::default(),
            first_statement_id: 1,
        }
    }
}

/// A reply to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Ok,
    /// A result set: column count, rows (`None` is NULL).
    Rows(usize, Vec<Vec<Option<String>>>),
    Err(u16, String),
    /// A prepared statement: its id and parameter count.
    Prepared(u32, u16),
    /// No reply at all.
    Silence,
}

fn row(values: &[Option<String>]) -> Answer {
    Answer::Rows(values.len(), vec![values.to_vec()])
}

fn some(s: impl ToString) -> Option<String> {
    Some(s.to_string())
}

impl Script {
    /// A fresh session logged in as `user` into `schema`.
    pub(crate) fn login(&self, user: &str, schema: Option<String>) -> FakeSession {
        FakeSession {
            schema,
            user: user.to_string(),
            sysvars: self.globals.clone(),
            user_vars: Vec::new(),
            last_insert_id: 0,
            insert_id: 0,
            results_collation: 45,
            status: status::AUTOCOMMIT,
            next_statement: self.first_statement_id,
        }
    }

    /// Answer the query `sql` in `s`.
    pub(crate) fn query(&self, s: &mut FakeSession, sql: &str) -> Answer {
        if let Some(text) = self.faults.fails.as_deref().filter(|t| sql.contains(t)) {
            return Answer::Err(1105, format!("scripted failure at {text}"));
        }
        if self
            .faults
            .stalls
            .as_deref()
            .is_some_and(|t| sql.contains(t))
        {
            return Answer::Silence;
        }
        let q = unprefixed(sql);
        let var = |name: &str| some(&s.sysvars[name]);
        let global = |name: &str| some(&self.globals[name]);
        match q {
            _ if q.starts_with("SELECT @@session.sql_select_limit") => row(&[
                var("SQL_SELECT_LIMIT"),
                global("SQL_SELECT_LIMIT"),
                var("MAX_STATEMENT_TIME"),
                global("MAX_STATEMENT_TIME"),
                some(self.warnings),
            ]),
            "SELECT @@warning_count" => row(&[some(self.warnings)]),
            _ if q.starts_with("SELECT DATABASE()") => self.basics(s),
            _ if q.contains("information_schema.COLLATIONS") => collation(q),
            _ if q.contains("METADATA_LOCK_INFO") => match self.locks {
                Some(n) => row(&[some(n)]),
                None => Answer::Err(1109, "Unknown table 'METADATA_LOCK_INFO'".into()),
            },
            _ if q.contains("UNION ALL") => self.all_sysvars(s),
            _ if q.contains("SESSION_VARIABLES WHERE") => named_sysvars(s, q),
            _ if q.contains("USER_VARIABLES") => user_vars(s),
            _ if q.starts_with("SELECT HEX(") => hex_and_collations(s),
            _ if q.starts_with("SET ") => self.set(s, &q[4..]),
            "BEGIN" => transaction(s, status::IN_TRANS),
            "COMMIT" | "ROLLBACK" => transaction(s, 0),
            _ => Answer::Ok,
        }
    }

    fn basics(&self, s: &FakeSession) -> Answer {
        let temp = (self.temp_tables > 0)
            .then(|| format!("com_create_temporary_table = {}", self.temp_tables));
        row(&[
            s.schema.clone(),
            some(s.last_insert_id),
            some(s.insert_id),
            None,
            some(&s.user),
            temp,
            some(&s.sysvars["CHARACTER_SET_RESULTS"]),
            some(&s.sysvars["CHARACTER_SET_CLIENT"]),
            some(&s.sysvars["COLLATION_CONNECTION"]),
        ])
    }

    fn all_sysvars(&self, s: &FakeSession) -> Answer {
        let side = |n: &str, vars: &BTreeMap<String, String>| {
            vars.iter()
                .map(move |(k, v)| vec![some(n), some(k), some(v)])
                .collect::<Vec<_>>()
        };
        let mut rows = side("s", &s.sysvars);
        if let Some(moving) = &self.faults.moves {
            for r in rows.iter_mut().filter(|r| r[1].as_ref() == Some(moving)) {
                r[2] = some("read before it moved");
            }
        }
        rows.extend(side("g", &self.globals));
        rows.extend(GLOBAL_ONLY.iter().map(|n| vec![some("n"), some(n), None]));
        Answer::Rows(3, rows)
    }

    /// `SET a = x, SESSION b = y, @v = z` (or `SET NAMES cs COLLATE c`).
    fn set(&self, s: &mut FakeSession, assignments: &str) -> Answer {
        if let Some(names) = assignments.strip_prefix("NAMES ") {
            let (cs, coll) = names
                .split_once(" COLLATE ")
                .expect("SET NAMES cs COLLATE c");
            let (cs, coll) = (unquoted(cs), unquoted(coll));
            s.results_collation = COLLATIONS.iter().find(|c| c.2 == coll).expect("known").0;
            for (name, value) in [
                ("CHARACTER_SET_RESULTS", &cs),
                ("CHARACTER_SET_CLIENT", &cs),
                ("COLLATION_CONNECTION", &coll),
            ] {
                s.sysvars.insert(name.into(), value.clone());
            }
            return Answer::Ok;
        }
        for item in split_top_level(assignments) {
            let item = item.trim();
            let item = item.strip_prefix("SESSION ").unwrap_or(item);
            let (name, value) = item.split_once(" = ").expect("name = value");
            if let Some(var) = name.strip_prefix('@') {
                assign_user_var(s, &unquoted(var), value);
                continue;
            }
            let name = unquoted(name);
            match name.as_str() {
                "LAST_INSERT_ID" => s.last_insert_id = value.parse().expect("a number"),
                "insert_id" => s.insert_id = value.parse().expect("a number"),
                _ => {
                    let upper = name.to_uppercase();
                    if GLOBAL_ONLY.contains(&upper.as_str()) {
                        let msg = format!("Variable '{name}' is a read only variable");
                        return Answer::Err(1238, msg);
                    }
                    if self.faults.refuses.as_deref() == Some(&upper) {
                        let msg = format!("Variable '{name}' can't be set to the value of {value}");
                        return Answer::Err(1231, msg);
                    }
                    if self.faults.ignores.as_deref() != Some(&upper) {
                        s.sysvars.insert(upper, unquoted(value));
                    }
                }
            }
        }
        Answer::Ok
    }
}

fn transaction(s: &mut FakeSession, in_trans: u16) -> Answer {
    s.status = (s.status & !status::IN_TRANS) | in_trans;
    Answer::Ok
}

fn collation(q: &str) -> Answer {
    let id: u16 = q
        .rsplit("ID = ")
        .next()
        .and_then(|t| t.trim().parse().ok())
        .expect("an id");
    let (_, cs, name, default) = COLLATIONS.iter().find(|c| c.0 == id).expect("known");
    row(&[
        some(cs),
        some(name),
        some(if *default { "Yes" } else { "" }),
    ])
}

/// The session values of the names listed in the first `IN (...)`.
fn named_sysvars(s: &FakeSession, q: &str) -> Answer {
    let list = q
        .split_once("IN (")
        .and_then(|(_, r)| r.split_once(')'))
        .expect("IN (...)")
        .0;
    let rows = split_top_level(list)
        .iter()
        .map(|n| unquoted(n.trim()))
        .filter(|n| !matches!(&n[..], "SQL_SELECT_LIMIT" | "MAX_STATEMENT_TIME"))
        .filter_map(|n| {
            s.sysvars
                .get(&n)
                .map(|v| vec![some(n.to_lowercase()), some(v)])
        })
        .collect();
    Answer::Rows(2, rows)
}

fn user_vars(s: &FakeSession) -> Answer {
    let mut vars = s.user_vars.clone();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = vars
        .iter()
        .map(|v| vec![some(&v.name), some(&v.kind), some(&v.value)])
        .collect();
    Answer::Rows(3, rows)
}

/// `HEX(@v), COLLATION(@v), <exact>` for every variable, in name order.
fn hex_and_collations(s: &FakeSession) -> Answer {
    let mut vars = s.user_vars.clone();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    let values: Vec<Option<String>> = vars
        .iter()
        .flat_map(|v| [some(hex(v.value.as_bytes())), some(&v.collation), some(1)])
        .collect();
    row(&values)
}

/// `@v = CAST('t' AS SIGNED)`, `_cs X'..' COLLATE c`, `X'..'`.
fn assign_user_var(s: &mut FakeSession, name: &str, value: &str) {
    let var = if let Some(cast) = value.strip_prefix("CAST(") {
        let text = cast.split('\'').nth(1).expect("a quoted value");
        let kind = match cast.rsplit(" AS ").next().unwrap_or_default() {
            k if k.starts_with("SIGNED") => "INT",
            k if k.starts_with("UNSIGNED") => "INT UNSIGNED",
            k if k.starts_with("DECIMAL") => "DECIMAL",
            _ => "DOUBLE",
        };
        FakeVar {
            name: name.into(),
            kind: kind.into(),
            value: text.into(),
            collation: "binary".into(),
        }
    } else {
        let hex_text = value.split('\'').nth(1).expect("X'..'");
        let collation = value
            .split_once(" COLLATE ")
            .map_or("binary".into(), |(_, c)| unquoted(c));
        FakeVar {
            name: name.into(),
            kind: "VARCHAR".into(),
            value: String::from_utf8(unhex(hex_text)).expect("utf-8 test values"),
            collation,
        }
    };
    s.user_vars.retain(|v| v.name != var.name);
    s.user_vars.push(var);
}

/// Split at commas outside quotes and parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut depth, mut quoted) = (Vec::new(), 0, 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// An identifier or literal without its quotes (doubled quotes undone).
fn unquoted(s: &str) -> String {
    let s = s.trim();
    for q in ['`', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.replace(&format!("{q}{q}"), &q.to_string());
        }
    }
    s.to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
