//! The table of session-state cases: what a session does before the
//! failover (steps) and what is asked after it (probes). `{tag}` in any text
//! is the session's own tag (`m_<case>` through the proxy, `c_<case>` for
//! the control session), so per-session rows, tables and lock names differ.

/// Something a session does before the failover.
#[derive(Debug, Clone)]
pub enum Step {
    /// A text-protocol query (COM_QUERY); every result set is read.
    Sql(String),
    /// COM_STMT_PREPARE; statements are numbered from 0 in order.
    Prep(String),
    /// COM_STMT_EXECUTE of statement n with string parameters.
    Exec(usize, Vec<String>),
    /// COM_CHANGE_USER (user, password, schema); on the raw client the
    /// server answers with an auth switch request.
    ChangeUser(&'static str, &'static str, &'static str),
    /// COM_RESET_CONNECTION.
    Reset,
    /// COM_STMT_EXECUTE of statement n with a read-only cursor (raw client).
    OpenCursor(usize),
    /// COM_STMT_FETCH of statement n, this many rows (raw client).
    Fetch(usize, u32),
}

/// A question asked after the failover; its answer is compared.
#[derive(Debug, Clone)]
pub enum Probe {
    /// A query on the session itself.
    Sql(String),
    /// A query on a third connection (admin, direct to the new primary).
    Third(String),
    /// COM_STMT_EXECUTE of statement n on the session.
    Exec(usize, Vec<String>),
    /// COM_STMT_FETCH on the session (raw client).
    Fetch(usize, u32),
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    /// Runs on the raw-protocol client instead of mysql_async.
    pub raw: bool,
    /// A refusal (9005) at a planned switchover fails this case: with its
    /// old primary readable, the session must be migrated.
    pub must_migrate: bool,
    pub steps: Vec<Step>,
    pub probes: Vec<Probe>,
    /// Queries whose answers on the proxied session must be the same before
    /// and after the failover (values that differ between sessions).
    pub stable: Vec<String>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Sql(s) => write!(f, "{s}"),
            Step::Prep(s) => write!(f, "COM_STMT_PREPARE {s}"),
            Step::Exec(n, p) => write!(f, "COM_STMT_EXECUTE #{n} {p:?}"),
            Step::ChangeUser(u, _, d) => write!(f, "COM_CHANGE_USER {u} db {d}"),
            Step::Reset => write!(f, "COM_RESET_CONNECTION"),
            Step::OpenCursor(n) => write!(f, "COM_STMT_EXECUTE #{n} cursor"),
            Step::Fetch(n, k) => write!(f, "COM_STMT_FETCH #{n} {k} rows"),
        }
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Sql(s) => write!(f, "{s}"),
            Probe::Third(s) => write!(f, "[third] {s}"),
            Probe::Exec(n, p) => write!(f, "COM_STMT_EXECUTE #{n} {p:?}"),
            Probe::Fetch(n, k) => write!(f, "COM_STMT_FETCH #{n} {k} rows"),
        }
    }
}

fn sql(s: &str) -> Step {
    Step::Sql(s.into())
}
fn q(s: &str) -> Probe {
    Probe::Sql(s.into())
}
fn third(s: &str) -> Probe {
    Probe::Third(s.into())
}

fn case(name: &'static str, steps: Vec<Step>, probes: Vec<Probe>) -> Case {
    Case {
        name,
        raw: false,
        must_migrate: false,
        steps,
        probes,
        stable: Vec::new(),
    }
}

/// A case whose steps and probes are all plain queries.
fn plain(name: &'static str, steps: &[&str], probes: &[&str]) -> Case {
    case(
        name,
        steps.iter().map(|s| sql(s)).collect(),
        probes.iter().map(|s| q(s)).collect(),
    )
}

impl Case {
    fn stable(mut self, queries: &[&str]) -> Case {
        self.stable = queries.iter().map(|s| s.to_string()).collect();
        self
    }
    fn raw(mut self) -> Case {
        self.raw = true;
        self
    }
    fn must_migrate(mut self) -> Case {
        self.must_migrate = true;
        self
    }
}

/// Set a user variable, COM_CHANGE_USER to the listed user `app2`, then
/// probe who and where the session is and whether the variable survived.
fn change_user_to_app2(name: &'static str) -> Case {
    case(
        name,
        vec![
            sql("SET @before = 1"),
            Step::ChangeUser("app2", "app2", "db1"),
        ],
        vec![q("SELECT CURRENT_USER(), DATABASE(), @before")],
    )
}

/// Is `{tag}_job` held by this session, and does a third connection see it taken?
fn lock_probes() -> Vec<Probe> {
    vec![
        q("SELECT IS_USED_LOCK('{tag}_job') = CONNECTION_ID()"),
        third("SELECT IS_FREE_LOCK('{tag}_job')"),
    ]
}

/// Value, numeric value, hex, character set and collation of `@x`.
const VAR_X: &str = "SELECT @x, @x + 0, HEX(@x), CHARSET(@x), COLLATION(@x)";

const CHARSETS: &str = "SELECT @@character_set_client, @@character_set_connection, \
     @@character_set_results, @@collation_connection";
const LITERAL_CHARSET: &str = "SELECT CHARSET('x'), COLLATION('x'), 'caf\u{e9}' = 'CAFE'";

/// User variable `@x` set by these statements, one case each; the probe
/// reads its value and type back.
const VARIABLE_CASES: &[(&str, &[&str])] = &[
    ("var_int", &["SET @x = 42"]),
    ("var_negative_int", &["SET @x = -12345"]),
    (
        "var_bigint_unsigned_max",
        &["SET @x = 18446744073709551615"],
    ),
    ("var_decimal_scale", &["SET @x = 1.50"]),
    ("var_double_tenth", &["SET @x = 0.1e0"]),
    ("var_double_huge", &["SET @x = 1e300"]),
    (
        "var_utf8mb4_text",
        &["SET @x = 'h\u{e9}llo w\u{f6}rld \u{2713} \u{1f389}'"],
    ),
    ("var_latin1_text", &["SET @x = _latin1 X'636166E9'"]),
    ("var_binary", &["SET @x = X'00FF'"]),
    ("var_null", &["SET @x = NULL"]),
    ("var_set_twice", &["SET @x = 'text'", "SET @x = 3.5"]),
    ("var_from_own_value", &["SET @x = 1", "SET @x = @x + 1"]),
];

pub fn all() -> Vec<Case> {
    let mut v = vec![
        plain(
            "baseline_idle",
            &[],
            &[
                "SELECT DATABASE(), CURRENT_USER(), @@autocommit, @@sql_mode, @@time_zone, \
               @@tx_isolation, @@tx_read_only, @@character_set_client, @@collation_connection",
            ],
        ),
        plain("use_db2", &["USE db2"], &["SELECT DATABASE()"]),
        // user locks
        case(
            "get_lock_in_select",
            vec![sql("SELECT GET_LOCK('{tag}_job', 0)")],
            lock_probes(),
        ),
        case(
            "get_lock_in_set",
            vec![sql("SET @got = GET_LOCK('{tag}_job', 0)")],
            [vec![q("SELECT @got")], lock_probes()].concat(),
        ),
        case(
            "get_lock_in_procedure",
            vec![sql("CALL db1.take_lock('{tag}_job')")],
            lock_probes(),
        ),
        case(
            "get_lock_in_binary_prepared_statement",
            vec![
                Step::Prep("SELECT GET_LOCK(?, 0)".into()),
                Step::Exec(0, vec!["{tag}_job".into()]),
            ],
            lock_probes(),
        ),
        case(
            "get_lock_in_sql_prepare",
            vec![
                sql("SET @ln = '{tag}_job'"),
                sql("PREPARE gl FROM 'SELECT GET_LOCK(?, 0)'"),
                sql("EXECUTE gl USING @ln"),
            ],
            lock_probes(),
        ),
        case(
            "get_lock_then_release",
            vec![
                sql("SELECT GET_LOCK('{tag}_job', 0)"),
                sql("SELECT RELEASE_LOCK('{tag}_job')"),
            ],
            lock_probes(),
        ),
        case(
            "get_lock_twice_release_once",
            vec![
                sql("SELECT GET_LOCK('{tag}_job', 0)"),
                sql("SELECT GET_LOCK('{tag}_job', 0)"),
                sql("SELECT RELEASE_LOCK('{tag}_job')"),
            ],
            [
                lock_probes(),
                vec![
                    q("SELECT RELEASE_LOCK('{tag}_job')"),
                    third("SELECT IS_FREE_LOCK('{tag}_job')"),
                ],
            ]
            .concat(),
        ),
        // user variables
        plain(
            "uuid_user_var",
            &["SET @u = UUID()"],
            &["SELECT LENGTH(@u), CHARSET(@u)"],
        )
        .stable(&["SELECT @u"]),
        plain("now_user_var", &["SET @t = NOW(6)"], &["SELECT LENGTH(@t)"]).stable(&["SELECT @t"]),
        plain(
            "rand_user_var",
            &["SET @r = RAND()"],
            &["SELECT @r BETWEEN 0 AND 1"],
        )
        .stable(&["SELECT @r"]),
        plain(
            "connection_id_user_var",
            &["SET @cid = CONNECTION_ID()"],
            &["SELECT @cid > 0"],
        )
        .stable(&["SELECT @cid"]),
        plain(
            "port_user_var",
            &["SELECT @p := @@port"],
            &["SELECT @p > 0"],
        )
        .stable(&["SELECT @p"]),
        plain(
            "select_into_var",
            &["SELECT 42 INTO @answer"],
            &["SELECT @answer, @answer + 0"],
        ),
        plain("select_assign_var", &["SELECT @n := 7"], &["SELECT @n"]),
        plain(
            "commented_set_var",
            &["/* app */ SET @c = 5"],
            &["SELECT @c"],
        ),
        plain("do_assign_var", &["DO @z := 5"], &["SELECT @z"]),
        plain(
            "multi_statement_sets",
            &["SET @a = 1; SET @b = 'two'"],
            &["SELECT @a, @b"],
        ),
        plain(
            "set_with_semicolon_in_string",
            &["SET @s = 'a;b'"],
            &["SELECT @s"],
        ),
        // session variables
        plain(
            "set_statement_leaves_no_trace",
            &["SET STATEMENT max_statement_time=10 FOR SELECT 1"],
            &["SELECT @@max_statement_time"],
        ),
        plain(
            "max_statement_time_session",
            &["SET SESSION max_statement_time = 5"],
            &["SELECT @@max_statement_time"],
        ),
        plain(
            "set_names_latin1",
            &["SET NAMES latin1"],
            &[CHARSETS, LITERAL_CHARSET],
        ),
        plain(
            "set_names_utf8mb4_bin",
            &["SET NAMES utf8mb4 COLLATE utf8mb4_bin"],
            &[CHARSETS, LITERAL_CHARSET],
        ),
        plain(
            "set_character_set_latin1",
            &["SET CHARACTER SET latin1"],
            &[CHARSETS, LITERAL_CHARSET],
        ),
        plain(
            "character_set_results_null",
            &["SET character_set_results = NULL"],
            &["SELECT @@character_set_results IS NULL, 'caf\u{e9}'"],
        ),
        plain(
            "sql_mode_plain",
            &["SET sql_mode = 'ANSI_QUOTES,NO_ZERO_DATE'"],
            &["SELECT @@sql_mode", "SELECT \"x\""],
        ),
        plain(
            "sql_mode_concat",
            &["SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')"],
            &["SELECT @@sql_mode"],
        ),
        plain(
            "sql_mode_at_at",
            &["SET @@sql_mode = 'PIPES_AS_CONCAT'"],
            &["SELECT @@sql_mode", "SELECT 'a' || 'b'"],
        ),
        plain(
            "sql_mode_from_user_var",
            &[
                "SET @m = 'NO_BACKSLASH_ESCAPES'",
                "SET sql_mode = @m",
                "SET @m = 'ANSI'",
            ],
            &["SELECT @@sql_mode, @m"],
        ),
        plain(
            "sql_mode_set_then_default",
            &[
                "SET SESSION sql_mode = 'ANSI'",
                "SET SESSION sql_mode = DEFAULT",
            ],
            &["SELECT @@sql_mode"],
        ),
        plain(
            "time_zone_named",
            &["SET time_zone = 'Test/Plus3'"],
            &["SELECT @@time_zone, FROM_UNIXTIME(0)"],
        ),
        plain(
            "time_zone_offset",
            &["SET time_zone = '+05:30'"],
            &["SELECT @@time_zone, FROM_UNIXTIME(0)"],
        ),
        plain(
            "timestamp_fixed",
            &["SET timestamp = 1000000000"],
            &["SELECT UNIX_TIMESTAMP(), @@timestamp"],
        ),
        plain(
            "isolation_session_statement",
            &["SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"],
            &["SELECT @@tx_isolation"],
        ),
        plain(
            "isolation_session_variable",
            &["SET SESSION tx_isolation = 'READ-COMMITTED'"],
            &["SELECT @@tx_isolation"],
        ),
        plain(
            "set_transaction_read_only_next_only",
            &["SET TRANSACTION READ ONLY"],
            &[
                "SELECT @@tx_read_only",
                "START TRANSACTION",
                "INSERT INTO db1.t VALUES ('{tag}', 1)",
                "ROLLBACK",
                "START TRANSACTION",
                "INSERT INTO db1.t VALUES ('{tag}', 2)",
                "ROLLBACK",
            ],
        ),
        plain(
            "set_transaction_read_only_consumed",
            &["SET TRANSACTION READ ONLY", "START TRANSACTION", "COMMIT"],
            &[
                "SELECT @@tx_read_only",
                "START TRANSACTION",
                "INSERT INTO db1.t VALUES ('{tag}', 1)",
                "ROLLBACK",
            ],
        ),
        plain(
            "set_transaction_isolation_consumed",
            &[
                "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                "START TRANSACTION",
                "COMMIT",
            ],
            &["SELECT @@tx_isolation"],
        ),
        plain(
            "autocommit_zero_between_transactions",
            &[
                "SET autocommit = 0",
                "INSERT INTO db1.t VALUES ('{tag}', 1)",
                "COMMIT",
            ],
            &[
                "SELECT @@autocommit, @@in_transaction",
                "INSERT INTO db1.t VALUES ('{tag}', 2)",
                "ROLLBACK",
                "SELECT COUNT(*) FROM db1.t WHERE tag = '{tag}'",
            ],
        ),
        plain(
            "sql_select_limit",
            &["SET @@session.sql_select_limit = 5"],
            &["SELECT n FROM db1.ten ORDER BY n"],
        ),
        plain(
            "group_concat_max_len",
            &["SET SESSION group_concat_max_len = 6"],
            &["SELECT GROUP_CONCAT(n ORDER BY n) FROM db1.ten"],
        ),
        plain(
            "div_precision_increment",
            &["SET SESSION div_precision_increment = 9"],
            &["SELECT 1 / 3"],
        ),
        plain(
            "lc_time_names",
            &["SET lc_time_names = 'de_DE'"],
            &["SELECT DATE_FORMAT('2024-03-01', '%W %M')"],
        ),
        plain(
            "set_several_in_one_statement",
            &["SET @a = 1, SESSION sql_mode = 'ANSI', @@session.time_zone = '+01:00'"],
            &["SELECT @a, @@sql_mode, @@time_zone"],
        ),
        plain(
            "warnings_of_last_statement",
            &["SELECT 1 / 0"],
            &["SHOW WARNINGS"],
        ),
        // LAST_INSERT_ID
        plain(
            "last_insert_id_auto_increment",
            &["INSERT INTO db1.ai (tag) VALUES ('{tag}')"],
            &["SELECT LAST_INSERT_ID() = (SELECT MAX(id) FROM db1.ai WHERE tag = '{tag}')"],
        )
        .stable(&["SELECT LAST_INSERT_ID()"]),
        plain(
            "last_insert_id_explicit",
            &["SELECT LAST_INSERT_ID(77)"],
            &["SELECT LAST_INSERT_ID()"],
        ),
        // temporary tables
        plain(
            "temp_table_create_or_replace",
            &[
                "CREATE OR REPLACE TEMPORARY TABLE tmp_{tag} (a INT)",
                "INSERT INTO tmp_{tag} VALUES (1), (2)",
            ],
            &["SELECT COUNT(*) FROM tmp_{tag}"],
        ),
        plain(
            "temp_table_plain",
            &[
                "CREATE TEMPORARY TABLE tmp_{tag} (a INT PRIMARY KEY, b VARCHAR(10))",
                "INSERT INTO tmp_{tag} VALUES (1, 'one'), (2, 'two')",
            ],
            &["SELECT a, b FROM tmp_{tag} ORDER BY a"],
        ),
        plain(
            "temp_table_as_select",
            &["CREATE TEMPORARY TABLE tmp_{tag} AS SELECT n FROM db1.ten WHERE n < 4"],
            &["SELECT COUNT(*), SUM(n) FROM tmp_{tag}"],
        ),
        plain(
            "temp_table_like",
            &["CREATE TEMPORARY TABLE tmp_{tag} LIKE db1.t"],
            &[
                "SELECT COUNT(*) FROM tmp_{tag}",
                "INSERT INTO tmp_{tag} VALUES ('x', 1)",
                "SELECT tag, v FROM tmp_{tag}",
            ],
        ),
        plain(
            "temp_table_in_procedure",
            &["CALL db1.make_tmp()"],
            &["SELECT COUNT(*) FROM db1.proc_tmp"],
        ),
        plain(
            "temp_table_created_then_dropped",
            &[
                "CREATE TEMPORARY TABLE tmp_{tag} (a INT)",
                "DROP TEMPORARY TABLE tmp_{tag}",
            ],
            &["SELECT COUNT(*) FROM tmp_{tag}", "SELECT 1"],
        ),
        plain(
            "temp_table_shadows_real_table",
            &[
                "INSERT INTO db1.t VALUES ('{tag}', 1)",
                "CREATE TEMPORARY TABLE db1.t (tag VARCHAR(64), v INT)",
            ],
            &["SELECT COUNT(*) FROM db1.t WHERE tag = '{tag}'"],
        ),
        // stored procedures
        plain(
            "procedure_sets_variables",
            &["CALL db1.set_vars()"],
            &["SELECT @proc_var, @@time_zone, @@sql_mode"],
        ),
        // LOCK TABLES
        case(
            "lock_tables_then_unlock",
            vec![
                sql("CREATE TABLE db1.lt_{tag} (a INT)"),
                sql("LOCK TABLES db1.lt_{tag} READ"),
                sql("UNLOCK TABLES"),
            ],
            vec![
                q("INSERT INTO db1.lt_{tag} VALUES (1)"),
                q("SELECT COUNT(*) FROM db1.ten"),
                third(META_LOCKS),
            ],
        ),
        case(
            "lock_tables_held",
            vec![
                sql("CREATE TABLE db1.lt_{tag} (a INT)"),
                sql("LOCK TABLES db1.lt_{tag} READ"),
            ],
            vec![
                q("SELECT COUNT(*) FROM db1.lt_{tag}"),
                q("SELECT COUNT(*) FROM db1.ten"),
                third(META_LOCKS),
            ],
        ),
        // SQL PREPARE
        plain(
            "sql_prepare_execute_after",
            &["PREPARE s FROM 'SELECT ? * 2'"],
            &["EXECUTE s USING 21"],
        ),
        plain(
            "sql_prepare_deallocated",
            &["PREPARE s FROM 'SELECT 1'", "DEALLOCATE PREPARE s"],
            &["EXECUTE s", "SELECT 1"],
        ),
        plain(
            "sql_prepare_in_db1_then_use_db2",
            &[
                "INSERT INTO db1.t VALUES ('{tag}', 5)",
                "USE db1",
                "PREPARE s FROM 'SELECT COUNT(*), SUM(v) FROM t WHERE tag = ?'",
                "USE db2",
            ],
            &["EXECUTE s USING '{tag}'", "SELECT DATABASE()"],
        ),
        // binary prepared statements
        case(
            "binary_prepared_insert_in_db1_then_use_db2",
            vec![
                sql("USE db1"),
                Step::Prep("INSERT INTO t (tag, v) VALUES (?, ?)".into()),
                sql("USE db2"),
            ],
            vec![
                Probe::Exec(0, vec!["{tag}".into(), "1".into()]),
                q("SELECT (SELECT COUNT(*) FROM db1.t WHERE tag = '{tag}'), \
                   (SELECT COUNT(*) FROM db2.t WHERE tag = '{tag}'), DATABASE()"),
            ],
        ),
        case(
            "binary_prepared_select_in_db1_then_use_db2",
            vec![
                sql("INSERT INTO db1.t VALUES ('{tag}', 5)"),
                sql("USE db1"),
                Step::Prep("SELECT COUNT(*), SUM(v) FROM t WHERE tag = ?".into()),
                sql("USE db2"),
            ],
            vec![Probe::Exec(0, vec!["{tag}".into()])],
        ),
        // server-side cursor open at the failover
        case(
            "cursor_open_at_failover",
            vec![
                Step::Prep("SELECT CAST(n AS CHAR) FROM db1.ten ORDER BY n".into()),
                Step::OpenCursor(0),
                Step::Fetch(0, 3),
            ],
            vec![Probe::Fetch(0, 4), Probe::Fetch(0, 10)],
        )
        .raw(),
        // COM_CHANGE_USER
        change_user_to_app2("change_user_to_listed_user"),
        case(
            "change_user_to_unlisted_user",
            vec![Step::ChangeUser("app3", "app3", "db1")],
            vec![q("SELECT CURRENT_USER(), DATABASE()")],
        ),
        case(
            "change_user_and_back",
            vec![
                Step::ChangeUser("app2", "app2", "db1"),
                Step::ChangeUser("app", "app", "app"),
            ],
            vec![q("SELECT CURRENT_USER(), DATABASE()")],
        ),
        case(
            "change_user_clears_state",
            vec![
                sql("SET @x = 1"),
                sql("CREATE TEMPORARY TABLE tmp_{tag} (a INT)"),
                sql("SELECT GET_LOCK('{tag}_job', 0)"),
                Step::ChangeUser("app2", "app2", "db1"),
            ],
            [
                vec![
                    q("SELECT @x IS NULL, CURRENT_USER()"),
                    q("SELECT COUNT(*) FROM app.tmp_{tag}"),
                ],
                lock_probes(),
            ]
            .concat(),
        ),
        change_user_to_app2("change_user_with_auth_switch").raw(),
        // COM_RESET_CONNECTION
        case(
            "reset_connection_after_state",
            vec![
                sql("SET @x = 1"),
                sql("SET sql_mode = 'ANSI'"),
                sql("USE db1"),
                sql("CREATE TEMPORARY TABLE tmp_{tag} (a INT)"),
                sql("SELECT GET_LOCK('{tag}_job', 0)"),
                Step::Reset,
            ],
            [
                vec![
                    q("SELECT @x, @@sql_mode, DATABASE()"),
                    q("SELECT COUNT(*) FROM tmp_{tag}"),
                ],
                lock_probes(),
            ]
            .concat(),
        ),
        // transactions
        plain(
            "read_only_transaction_open",
            &[
                "START TRANSACTION READ ONLY",
                "SELECT COUNT(*) FROM db1.ten",
            ],
            &[
                "SELECT @@in_transaction",
                "INSERT INTO db1.t VALUES ('{tag}', 1)",
                "COMMIT",
            ],
        ),
    ];
    let mut toggles = Vec::new();
    for i in 0..40 {
        toggles.push(sql("SET autocommit = 0"));
        toggles.push(Step::Sql(format!(
            "INSERT INTO db1.t VALUES ('{{tag}}', {i})"
        )));
        toggles.push(sql("COMMIT"));
        toggles.push(sql("SET autocommit = 1"));
    }
    v.push(
        case(
            "pool_toggles_autocommit_40_times",
            toggles,
            vec![
                q("SELECT @@autocommit, @@in_transaction"),
                q("SELECT COUNT(*) FROM db1.t WHERE tag = '{tag}'"),
            ],
        )
        .must_migrate(),
    );
    v.extend(
        VARIABLE_CASES
            .iter()
            .map(|(name, set)| plain(name, set, &[VAR_X])),
    );
    v
}

/// Metadata locks a third connection sees on the table `db1.lt_{tag}`.
const META_LOCKS: &str = "SELECT LOCK_MODE, LOCK_TYPE FROM information_schema.METADATA_LOCK_INFO \
     WHERE TABLE_SCHEMA = 'db1' AND TABLE_NAME = 'lt_{tag}' ORDER BY 1, 2";

/// What the admin connection creates on the primary before any case runs.
pub const SCHEMA: &[&str] = &[
    "CREATE DATABASE db1",
    "CREATE DATABASE db2",
    "CREATE TABLE db1.t (tag VARCHAR(64), v INT)",
    "CREATE TABLE db2.t (tag VARCHAR(64), v INT)",
    "CREATE TABLE db1.ai (id INT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(64))",
    "CREATE TABLE db1.ten (n INT PRIMARY KEY)",
    "INSERT INTO db1.ten VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)",
    "CREATE PROCEDURE db1.set_vars() BEGIN SET @proc_var = 'from_proc'; \
     SET SESSION time_zone = '+03:00'; SET SESSION sql_mode = 'ANSI'; END",
    "CREATE PROCEDURE db1.take_lock(n VARCHAR(64)) BEGIN DO GET_LOCK(n, 0); END",
    "CREATE PROCEDURE db1.make_tmp() BEGIN CREATE TEMPORARY TABLE proc_tmp (a INT); \
     INSERT INTO proc_tmp VALUES (1), (2), (3); END",
    "INSERT INTO mysql.time_zone (Time_zone_id, Use_leap_seconds) VALUES (900, 'N')",
    "INSERT INTO mysql.time_zone_name (Name, Time_zone_id) VALUES ('Test/Plus3', 900)",
    "INSERT INTO mysql.time_zone_transition_type \
     (Time_zone_id, Transition_type_id, `Offset`, Is_DST, Abbreviation) VALUES (900, 0, 10800, 0, 'TP3')",
    "CREATE USER app2@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('app2')",
    "CREATE USER app3@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('app3')",
    "GRANT ALL ON db1.* TO app@'%'",
    "GRANT ALL ON db2.* TO app@'%'",
    "GRANT ALL ON db1.* TO app2@'%'",
    "GRANT ALL ON db2.* TO app2@'%'",
    "GRANT ALL ON app.* TO app2@'%'",
    "GRANT ALL ON db1.* TO app3@'%'",
    "GRANT ALL ON app.* TO app3@'%'",
];
