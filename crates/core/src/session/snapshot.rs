//! A session's state as the server it runs on reports it: default schema,
//! system variables that differ from the server's defaults (by value), user
//! variables (typed, byte-exact), LAST_INSERT_ID, and what can never be
//! carried (temporary tables, locks, SQL prepared statements, another user).
//! Read at the rest point before a session leaves a live primary, carried to
//! the new one as values, then read again there and compared.

use crate::session::query::{ident, quote, Backend, QueryError, Row};

/// Lifts the client's own row limit and statement timeout off the proxy's
/// reads; `SET STATEMENT` leaves no trace in the session.
const UNLIMITED: &str =
    "SET STATEMENT sql_select_limit = 18446744073709551615, max_statement_time = 0 FOR ";

/// Read apart from the others: `UNLIMITED` masks their session values.
/// First, while the previous statement's warnings are still there (a
/// statement without tables keeps them).
const LIMITS: &str = "SELECT @@session.sql_select_limit, @@global.sql_select_limit, \
     @@session.max_statement_time, @@global.max_statement_time, @@warning_count";

const BASICS: &str = "SELECT DATABASE(), LAST_INSERT_ID(), @@session.insert_id, \
     IF(@@timestamp > UNIX_TIMESTAMP(SYSDATE(6)) \
        OR UNIX_TIMESTAMP(SYSDATE(6)) - @@timestamp > 0.5, @@timestamp, NULL), \
     SUBSTRING_INDEX(USER(), '@', 1), \
     (SELECT GROUP_CONCAT(LOWER(VARIABLE_NAME), ' = ', VARIABLE_VALUE) \
        FROM information_schema.SESSION_STATUS \
       WHERE VARIABLE_NAME IN ('COM_CREATE_TEMPORARY_TABLE', 'COM_PREPARE_SQL') \
         AND VARIABLE_VALUE <> '0'), \
     @@character_set_results, @@character_set_client, @@collation_connection";

const LOCKS: &str = "SELECT COUNT(*) FROM information_schema.METADATA_LOCK_INFO \
     WHERE THREAD_ID = CONNECTION_ID()";

/// Session and global values side by side (`s` session, `g` global), and
/// the names of variables without a session scope (`n`): compared by the
/// proxy, as a join of the tables costs the server tens of milliseconds
/// where the reads cost a few. A variable without a session scope shows its
/// global value on both sides, read at two instants: one that moves under
/// load (`gtid_binlog_pos`) or at a switchover (`read_only`) may differ
/// between them, and is no state of the session.
const SYSVARS: &str = "SELECT 's', VARIABLE_NAME, VARIABLE_VALUE \
     FROM information_schema.SESSION_VARIABLES UNION ALL \
     SELECT 'g', VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES UNION ALL \
     SELECT 'n', VARIABLE_NAME, NULL FROM information_schema.SYSTEM_VARIABLES \
     WHERE VARIABLE_SCOPE = 'GLOBAL'";

const USER_VARS: &str = "SELECT VARIABLE_NAME, VARIABLE_TYPE, VARIABLE_VALUE \
     FROM information_schema.USER_VARIABLES ORDER BY VARIABLE_NAME";

/// MariaDB's error for an information_schema table that does not exist.
const UNKNOWN_TABLE: u16 = 1109;

/// One user variable, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserVar {
    pub name: String,
    /// INT, INT UNSIGNED, DECIMAL, DOUBLE or VARCHAR (information_schema).
    pub kind: String,
    /// The value's text for numbers, its bytes in hex for strings; `None`: NULL.
    pub value: Option<String>,
    /// Collation of a string value.
    pub collation: Option<String>,
}

/// What a session holds on its server, by value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub schema: Option<String>,
    /// System variables whose session value differs from the global, in
    /// the order to set them (collations after character sets).
    pub sysvars: Vec<(String, Option<String>)>,
    pub user_vars: Vec<UserVar>,
    pub last_insert_id: u64,
    pub insert_id: u64,
    /// A TIMESTAMP the session fixed with `SET timestamp`.
    pub timestamp: Option<String>,
    /// The user the session runs as now (COM_CHANGE_USER may have changed it).
    pub user: String,
    /// `SET NAMES cs COLLATE c` leaves `character_set_results` with a
    /// collation other than its character set's default, which only result
    /// metadata shows: `(cs, c, character_set_client, collation_connection)`.
    pub results_collation: Option<[String; 4]>,
    /// Why this state cannot be carried, if it cannot.
    pub blocker: Option<String>,
}

impl Snapshot {
    /// The state of a session that just logged in as `user` into `schema`.
    pub fn fresh(user: &str, schema: Option<String>) -> Self {
        Snapshot {
            schema: schema.filter(|s| !s.is_empty()),
            user: user.to_string(),
            ..Default::default()
        }
    }

    /// Read the state of the session on `be`.
    pub async fn read(be: &mut Backend<'_>) -> Result<Snapshot, QueryError> {
        Self::read_with(be, None).await
    }

    /// Read the state a carry of `self` gave the session on `be`, with the
    /// values of `self`'s system variables (whatever the globals there).
    pub async fn read_carried(&self, be: &mut Backend<'_>) -> Result<Snapshot, QueryError> {
        Self::read_with(be, Some(&self.sysvar_names())).await
    }

    /// The state on `be`; system variables that differ from the globals, or
    /// the values of `named` ones.
    async fn read_with(
        be: &mut Backend<'_>,
        named: Option<&[&str]>,
    ) -> Result<Snapshot, QueryError> {
        let mut snap = Snapshot::default();
        let limits = be.query(LIMITS).await?;
        let warnings = match limits.first() {
            Some(row) => text(row, 4),
            // a row limit of 0 hid the row
            None => text(
                &one_row(
                    be.query(&format!("{UNLIMITED}SELECT @@warning_count"))
                        .await?,
                )?,
                0,
            ),
        };
        if warnings.is_some_and(|n| n != "0") {
            snap.block(
                "the previous statement's warnings (SHOW WARNINGS) cannot be carried".into(),
            );
        }
        let basics = one_row(be.query(&format!("{UNLIMITED}{BASICS}")).await?)?;
        snap.schema = text(&basics, 0);
        snap.last_insert_id = number(&basics, 1)?;
        snap.insert_id = number(&basics, 2)?;
        snap.timestamp = text(&basics, 3);
        snap.user = text(&basics, 4).unwrap_or_default();
        snap.results_collation = read_results_collation(be, &basics).await?;
        if let Some(counts) = text(&basics, 5) {
            snap.block(format!(
                "temporary tables or SQL prepared statements may exist ({counts})"
            ));
        }
        match be.query(&format!("{UNLIMITED}{LOCKS}")).await {
            Ok(rows) => {
                if number(&one_row(rows)?, 0)? > 0 {
                    snap.block(
                        "the session holds locks (user locks, LOCK TABLES or HANDLER)".into(),
                    )
                }
            }
            Err(e) if e.code() == Some(UNKNOWN_TABLE) => snap.block(
                "its locks cannot be checked: the metadata_lock_info plugin is not loaded".into(),
            ),
            Err(e) => return Err(e),
        }
        snap.sysvars = match named {
            None => {
                let rows = be.query(&format!("{UNLIMITED}{SYSVARS}")).await?;
                let mut vars = limits_that_differ(&limits)?;
                vars.extend(differing_from_global(&rows));
                vars
            }
            Some(names) => read_sysvars(be, names, &limits).await?,
        };
        // a collation after the character set that would reset it
        snap.sysvars
            .sort_by_key(|(name, _)| (name.starts_with("collation_"), name.clone()));
        snap.user_vars = read_user_vars(be).await?;
        Ok(snap)
    }

    fn block(&mut self, why: String) {
        self.blocker.get_or_insert(why);
    }

    /// Statements that give a fresh session (logged in with `schema`) this
    /// state; `Err` names a value that cannot be written exactly.
    pub(crate) fn carry(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        if !self.sysvars.is_empty() {
            let mut sets = Vec::new();
            for (name, value) in &self.sysvars {
                sets.push(format!(
                    "SESSION {} = {}",
                    ident(name),
                    sysvar_value(name, value)?
                ));
            }
            out.push(format!("SET {}", sets.join(", ")));
        }
        if let Some([cs, coll, client, connection]) = &self.results_collation {
            out.push(format!("SET NAMES {} COLLATE {}", ident(cs), ident(coll)));
            out.push(format!(
                "SET SESSION character_set_client = {}, SESSION collation_connection = {}",
                quote(client),
                quote(connection)
            ));
        }
        if !self.user_vars.is_empty() {
            let sets: Vec<String> = self.user_vars.iter().map(user_var_assignment).collect();
            out.push(format!("SET {}", sets.join(", ")));
        }
        if self.last_insert_id != 0 {
            out.push(format!("SET LAST_INSERT_ID = {}", self.last_insert_id));
        }
        if self.insert_id != 0 {
            out.push(format!("SET insert_id = {}", self.insert_id));
        }
        if let Some(ts) = &self.timestamp {
            check_number(ts).ok_or("a fixed TIMESTAMP that is not a number")?;
            out.push(format!("SET timestamp = {ts}"));
        }
        Ok(out)
    }

    /// The first way `other` (read on the new primary after carrying this
    /// state there) differs from this state, if any.
    pub fn difference(&self, other: &Snapshot) -> Option<String> {
        if self.schema != other.schema {
            return Some(format!(
                "schema {:?} became {:?}",
                self.schema, other.schema
            ));
        }
        if self.user != other.user {
            return Some(format!("user {:?} became {:?}", self.user, other.user));
        }
        for (name, value) in &self.sysvars {
            let now = other
                .sysvars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v);
            if now.is_some_and(|v| v != value) {
                return Some(format!("@@{name} {value:?} became {:?}", now.unwrap()));
            }
        }
        if self.results_collation != other.results_collation {
            return Some(format!(
                "the collation of character_set_results {:?} became {:?}",
                self.results_collation, other.results_collation
            ));
        }
        if self.user_vars != other.user_vars {
            return Some("user variables differ after carrying them".into());
        }
        if (self.last_insert_id, self.insert_id) != (other.last_insert_id, other.insert_id) {
            return Some("LAST_INSERT_ID differs after carrying it".into());
        }
        None
    }

    /// Names of the system variables to compare after a carry.
    pub(crate) fn sysvar_names(&self) -> Vec<&str> {
        self.sysvars.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// The session values of `names` on `be` (for [`Snapshot::difference`]),
/// in the form `information_schema.SESSION_VARIABLES` gives them; the two
/// read apart come from `limits`.
async fn read_sysvars(
    be: &mut Backend<'_>,
    names: &[&str],
    limits: &[Row],
) -> Result<Vec<(String, Option<String>)>, QueryError> {
    let mut out = limits_that_differ(limits)?;
    let listed: Vec<String> = names.iter().map(|n| quote(&n.to_uppercase())).collect();
    if !listed.is_empty() {
        let sql = format!(
            "{UNLIMITED}SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE \
             FROM information_schema.SESSION_VARIABLES WHERE VARIABLE_NAME IN ({}) \
             AND VARIABLE_NAME NOT IN ('SQL_SELECT_LIMIT', 'MAX_STATEMENT_TIME')",
            listed.join(", ")
        );
        for row in be.query(&sql).await? {
            out.push((text(&row, 0).unwrap_or_default(), text(&row, 1)));
        }
    }
    Ok(out)
}

/// The collation results are sent in, when it is not the default of
/// `character_set_results` (read from the metadata of `basics`, the reply
/// just read on `be`).
async fn read_results_collation(
    be: &mut Backend<'_>,
    basics: &Row,
) -> Result<Option<[String; 4]>, QueryError> {
    let (Some(id), Some(results)) = (be.first_column_collation, text(basics, 6)) else {
        return Ok(None); // NULL character_set_results: columns keep their own
    };
    let sql = format!(
        "{UNLIMITED}SELECT CHARACTER_SET_NAME, COLLATION_NAME, IS_DEFAULT \
         FROM information_schema.COLLATIONS WHERE ID = {id}"
    );
    let row = one_row(be.query(&sql).await?)?;
    let cs = text(&row, 0).unwrap_or_default();
    if cs == results && text(&row, 2).as_deref() == Some("Yes") {
        return Ok(None);
    }
    let client = text(basics, 7).unwrap_or_default();
    let connection = text(basics, 8).unwrap_or_default();
    Ok(Some([
        cs,
        text(&row, 1).unwrap_or_default(),
        client,
        connection,
    ]))
}

/// The session variables of `rows` ([`SYSVARS`]) whose value differs from
/// the global one (session-only variables have none and are not listed),
/// named in lower case; the two read apart ([`LIMITS`]) and variables
/// without a session scope are left out.
fn differing_from_global(rows: &[Row]) -> Vec<(String, Option<String>)> {
    let side = |tag: &'static str| {
        rows.iter()
            .filter(move |r| text(r, 0).as_deref() == Some(tag))
            .map(|r| (text(r, 1).unwrap_or_default(), text(r, 2)))
    };
    let global: std::collections::HashMap<String, Option<String>> = side("g").collect();
    let global_only: std::collections::HashSet<String> = side("n").map(|(n, _)| n).collect();
    side("s")
        .filter(|(name, _)| !global_only.contains(name))
        .filter_map(|(name, value)| {
            let differs = global.get(&name).is_some_and(|g| *g != value);
            let apart = matches!(&name[..], "SQL_SELECT_LIMIT" | "MAX_STATEMENT_TIME");
            (differs && !apart).then(|| (name.to_lowercase(), value))
        })
        .collect()
}

/// `sql_select_limit` and `max_statement_time` where they differ.
fn limits_that_differ(rows: &[Row]) -> Result<Vec<(String, Option<String>)>, QueryError> {
    let Some(row) = rows.first() else {
        // a row limit of 0 hides the row: that is its session value
        return Ok(vec![("sql_select_limit".into(), Some("0".into()))]);
    };
    let mut out = Vec::new();
    for (at, name) in [(0, "sql_select_limit"), (2, "max_statement_time")] {
        if row.get(at) != row.get(at + 1) {
            out.push((name.to_string(), text(row, at)));
        }
    }
    Ok(out)
}

async fn read_user_vars(be: &mut Backend<'_>) -> Result<Vec<UserVar>, QueryError> {
    let rows = be.query(&format!("{UNLIMITED}{USER_VARS}")).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut vars: Vec<UserVar> = rows
        .iter()
        .map(|r| UserVar {
            name: text(r, 0).unwrap_or_default(),
            kind: text(r, 1).unwrap_or_default(),
            value: text(r, 2),
            collation: None,
        })
        .collect();
    // exact bytes and collation of strings; whether a DOUBLE's text is exact
    let cols: Vec<String> = vars
        .iter()
        .map(|v| {
            let at = format!("@{}", ident(&v.name));
            let exact = match (&v.kind[..], &v.value) {
                ("DOUBLE", Some(t)) => format!("{at} = CAST({} AS DOUBLE)", quote(t)),
                _ => "1".into(),
            };
            format!("HEX({at}), COLLATION({at}), {exact}")
        })
        .collect();
    let exact = one_row(be.query(&format!("SELECT {}", cols.join(", "))).await?)?;
    for (i, v) in vars.iter_mut().enumerate() {
        if v.kind == "VARCHAR" {
            v.value = text(&exact, 3 * i);
            v.collation = text(&exact, 3 * i + 1);
        }
        if text(&exact, 3 * i + 2).as_deref() == Some("0") {
            v.kind = "DOUBLE (no exact text)".into();
        }
    }
    Ok(vars)
}

fn user_var_assignment(v: &UserVar) -> String {
    let name = format!("@{}", ident(&v.name));
    let value = match (&v.kind[..], &v.value) {
        (_, None) => match &v.kind[..] {
            "INT" => "CAST(NULL AS SIGNED)".into(),
            "INT UNSIGNED" => "CAST(NULL AS UNSIGNED)".into(),
            "DECIMAL" => "CAST(NULL AS DECIMAL)".into(),
            "DOUBLE" => "CAST(NULL AS DOUBLE)".into(),
            _ => "NULL".into(),
        },
        ("INT", Some(t)) => format!("CAST({} AS SIGNED)", quote(t)),
        ("INT UNSIGNED", Some(t)) => format!("CAST({} AS UNSIGNED)", quote(t)),
        ("DECIMAL", Some(t)) => {
            let scale = t.split_once('.').map_or(0, |(_, f)| f.len());
            format!("CAST({} AS DECIMAL(65, {scale}))", quote(t))
        }
        ("DOUBLE", Some(t)) => format!("CAST({} AS DOUBLE)", quote(t)),
        ("VARCHAR", Some(hex)) => match v.collation.as_deref() {
            None | Some("binary") => format!("X'{hex}'"),
            Some(coll) => {
                let cs = coll.split('_').next().unwrap_or(coll);
                format!("_{cs} X'{hex}' COLLATE {}", ident(coll))
            }
        },
        // a kind the proxy cannot write: NULL, which the comparison catches
        _ => "NULL".into(),
    };
    format!("{name} = {value}")
}

/// A system variable's value as SQL: numbers bare (numeric variables
/// refuse strings), the rest quoted.
fn sysvar_value(name: &str, value: &Option<String>) -> Result<String, String> {
    let Some(v) = value else {
        return Ok("NULL".into());
    };
    if v.contains(['\\', '\0']) {
        return Err(format!(
            "@@{name} holds a value the proxy cannot write exactly"
        ));
    }
    Ok(match check_number(v) {
        Some(n) => n.to_string(),
        None => quote(v),
    })
}

/// `s` when it is a plain decimal number.
fn check_number(s: &str) -> Option<&str> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let plain = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (plain(int) && plain(frac)).then_some(s)
}

fn one_row(rows: Vec<Row>) -> Result<Row, QueryError> {
    rows.into_iter().next().ok_or(QueryError::Malformed)
}

fn text(row: &Row, at: usize) -> Option<String> {
    row.get(at)?
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn number(row: &Row, at: usize) -> Result<u64, QueryError> {
    match text(row, at) {
        None => Ok(0),
        Some(t) => t.parse().map_err(|_| QueryError::Malformed),
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
