//! Unit tests of what the proxy knows of a session between migrations.

use super::*;

fn query(sql: &str) -> Vec<u8> {
    [&[command::QUERY][..], sql.as_bytes()].concat()
}

fn packet(payload: &[u8]) -> PacketInfo<'_> {
    PacketInfo::of_payload(payload)
}

/// The client sends `payload`; the server answers with one packet whose
/// first byte is `first`, ending the reply with `ev`.
fn run_with(state: &mut CarriedState, payload: &[u8], replies: &[(&[u8], ServerEvent)]) {
    state.on_client(ClientEvent::Command(payload[0]), &packet(payload));
    for (reply, ev) in replies {
        let mut r = packet(reply);
        r.payload = None;
        state.on_server(*ev, &r, 0);
    }
}

fn run(state: &mut CarriedState, payload: &[u8], first: u8) {
    let reply = [first, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
    run_with(state, payload, &[(&reply, ServerEvent::ResponseDone)]);
}

#[test]
fn only_a_bare_use_statement_says_which_schema_follows() {
    for (sql, want) in [
        ("SELECT 1", Use::None),
        ("SELECT user_id FROM users", Use::None),
        ("USE db2", Use::Exactly("db2".into())),
        ("  use `my db` ;", Use::Exactly("my db".into())),
        ("/* app */ USE db2", Use::Maybe),
        ("USE a; SELECT 1", Use::Maybe),
        ("SELECT 'in use'", Use::Maybe),
        ("USE `a``b`", Use::Maybe),
        ("USEdb", Use::None),
    ] {
        assert_eq!(use_statement(sql.as_bytes()), want, "{sql}");
    }
}

#[test]
fn state_is_known_until_a_command_may_change_it() {
    let mut s = CarriedState::new("app", Some("db1".into()));
    assert_eq!(s.known.as_ref().unwrap().schema.as_deref(), Some("db1"));
    run(&mut s, &[command::PING], 0x00);
    run(&mut s, b"\x02db2", 0x00);
    let known = s
        .known
        .as_ref()
        .expect("PING and COM_INIT_DB keep it known");
    assert_eq!(known.schema.as_deref(), Some("db2"));
    run(&mut s, &query("SELECT 1"), 0x00);
    assert!(s.known.is_none(), "any statement may change server state");
    assert_eq!(s.schema, Some(Some("db2".into())), "but not the schema");
    run(&mut s, &query("USE db3"), 0x00);
    assert_eq!(s.schema, Some(Some("db3".into())));
    run(&mut s, &query("USE nowhere"), 0xff);
    assert_eq!(
        s.schema,
        Some(Some("db3".into())),
        "a failed USE changes nothing"
    );
    run(&mut s, &query("/* x */ use db4"), 0x00);
    assert_eq!(s.schema, None, "only the server knows now");
}

#[test]
fn statements_remember_the_schema_they_were_prepared_in() {
    let mut s = CarriedState::new("app", Some("db1".into()));
    let ok = [0x00, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    run_with(
        &mut s,
        b"\x16INSERT INTO t VALUES (?)",
        &[
            (&ok, ServerEvent::None),
            (&[0xfe, 0, 0, 2, 0], ServerEvent::ResponseDone),
        ],
    );
    run(&mut s, &query("USE db2"), 0x00);
    let todo = s.stmts.to_prepare();
    assert_eq!(todo.len(), 1);
    assert_eq!(todo[0].schema, Some("db1"));
    assert_eq!(s.why_not_migratable(), None);
    run(&mut s, &query("SELECT 'use'"), 0x00);
    run_with(
        &mut s,
        b"\x16SELECT ?",
        &[
            (&[0x00, 8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], ServerEvent::None),
            (&[0xfe, 0, 0, 2, 0], ServerEvent::ResponseDone),
        ],
    );
    assert_eq!(
        s.why_not_migratable(),
        Some("a prepared statement's default schema is not known")
    );
}

#[test]
fn a_change_user_answered_by_an_auth_switch_still_counts() {
    let mut s = CarriedState::new("app", None);
    let ok = [0x00, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    run_with(&mut s, b"\x16SELECT 1", &[(&ok, ServerEvent::ResponseDone)]);
    assert!(!s.stmts.is_empty());
    run_with(
        &mut s,
        b"\x11other\x00",
        &[
            (b"\xfemysql_native_password\x00", ServerEvent::None),
            (&[0x00, 0, 0, 2, 0, 0, 0], ServerEvent::AuthOk),
        ],
    );
    assert!(s.stmts.is_empty(), "the server dropped the statements");
    assert!(s.known.is_none() && s.schema.is_none());
}

#[test]
fn only_provably_reading_statements_keep_the_state_known() {
    for sql in [
        "SELECT @@max_allowed_packet,@@wait_timeout",
        "select @@session.auto_increment_increment AS x, @@tx_isolation t;",
        "SHOW VARIABLES LIKE 'x'",
    ] {
        assert!(reads_only(sql.as_bytes()), "{sql}");
    }
    for sql in [
        "SELECT @a := 1",
        "SELECT GET_LOCK('x', 0)",
        "SELECT @@x INTO @y",
        "SELECT @@x FROM t",
        "SELECT @x",
        "SELECT NEXT VALUE FOR s",
        "SHOW TABLES; SET @a = 1",
        "SELECT",
        "SELECTED",
    ] {
        assert!(!reads_only(sql.as_bytes()), "{sql}");
    }
    let mut s = CarriedState::new("app", None);
    run(
        &mut s,
        &query("SELECT @@max_allowed_packet, @@wait_timeout"),
        0x00,
    );
    assert!(s.known.is_some());
}

#[test]
fn a_pending_set_transaction_is_remembered_until_its_transaction_begins() {
    let mut s = CarriedState::new("app", None);
    run(&mut s, &query("SET TRANSACTION READ ONLY"), 0x00);
    assert!(s.next_transaction_set);
    run(&mut s, &query("SELECT 1"), 0x00);
    assert!(s.next_transaction_set, "no transaction began yet");
    s.on_client(
        ClientEvent::Command(command::QUERY),
        &packet(&query("BEGIN")),
    );
    let ok = [0x00, 0, 0, 0x01, 0, 0, 0];
    let mut r = packet(&ok);
    r.payload = None;
    s.on_server(
        ServerEvent::ResponseDone,
        &r,
        mysql_zk_proxy_protocol::status::IN_TRANS,
    );
    assert!(!s.next_transaction_set);
    run(
        &mut s,
        &query("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        0xff,
    );
    assert!(!s.next_transaction_set, "a failed statement sets nothing");
}

#[test]
fn only_a_plain_session_wide_set_transaction_is_not_pending() {
    assert!(!sets_next_transaction(
        b"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
    ));
    assert!(!sets_next_transaction(b"SELECT 1"));
    for sql in [
        "SET TRANSACTION READ ONLY",
        "set transaction isolation level serializable",
        "SET SESSION TRANSACTION READ WRITE; SET TRANSACTION READ ONLY",
        "/* x */ SET TRANSACTION READ ONLY",
    ] {
        assert!(sets_next_transaction(sql.as_bytes()), "{sql}");
    }
}
