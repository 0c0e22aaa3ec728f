//! Unit tests of carrying a snapshot: the SQL it writes, what it refuses.

use super::*;

fn var(name: &str, kind: &str, value: Option<&str>, coll: Option<&str>) -> UserVar {
    UserVar {
        name: name.into(),
        kind: kind.into(),
        value: value.map(Into::into),
        collation: coll.map(Into::into),
    }
}

#[test]
fn values_are_carried_with_their_types() {
    let snap = Snapshot {
        sysvars: vec![
            ("character_set_client".into(), Some("latin1".into())),
            ("wait_timeout".into(), Some("2".into())),
            ("character_set_results".into(), None),
            ("collation_connection".into(), Some("latin1_bin".into())),
        ],
        user_vars: vec![
            var("a", "INT", Some("-5"), None),
            var("big", "INT UNSIGNED", Some("18446744073709551615"), None),
            var("d", "DECIMAL", Some("1.50"), None),
            var("f", "DOUBLE", Some("0.30000000000000004"), None),
            var("s", "VARCHAR", Some("E9"), Some("latin1_bin")),
            var("b", "VARCHAR", Some("00FF"), Some("binary")),
            var("n", "INT", None, None),
        ],
        last_insert_id: 7,
        ..Default::default()
    };
    let sql = snap.carry().unwrap();
    assert_eq!(
        sql,
        vec![
            "SET SESSION `character_set_client` = 'latin1', SESSION `wait_timeout` = 2, \
             SESSION `character_set_results` = NULL, SESSION `collation_connection` = 'latin1_bin'"
                .to_string(),
            "SET @`a` = CAST('-5' AS SIGNED), @`big` = CAST('18446744073709551615' AS UNSIGNED), \
             @`d` = CAST('1.50' AS DECIMAL(65, 2)), @`f` = CAST('0.30000000000000004' AS DOUBLE), \
             @`s` = _latin1 X'E9' COLLATE `latin1_bin`, @`b` = X'00FF', @`n` = CAST(NULL AS SIGNED)"
                .to_string(),
            "SET LAST_INSERT_ID = 7".to_string(),
        ]
    );
}

#[test]
fn a_value_that_cannot_be_written_exactly_is_refused() {
    let snap = Snapshot {
        sysvars: vec![("init_connect".into(), Some("a\\b".into()))],
        ..Default::default()
    };
    assert!(snap.carry().unwrap_err().contains("init_connect"));
    assert_eq!(check_number("1.5"), Some("1.5"));
    assert_eq!(check_number("-3"), Some("-3"));
    for not in ["", "1.", ".5", "1e5", "+1", "ANSI"] {
        assert_eq!(check_number(not), None, "{not}");
    }
}

#[test]
fn differences_name_what_changed() {
    let a = Snapshot {
        schema: Some("db1".into()),
        sysvars: vec![("sql_mode".into(), Some("ANSI".into()))],
        ..Snapshot::fresh("app", Some("db1".into()))
    };
    assert_eq!(a.difference(&a.clone()), None);
    let mut b = a.clone();
    b.sysvars[0].1 = Some("".into());
    assert!(a.difference(&b).unwrap().contains("sql_mode"));
    let mut c = a.clone();
    c.schema = Some("db2".into());
    assert!(a.difference(&c).unwrap().contains("schema"));
    let mut d = a.clone();
    d.user_vars.push(var("x", "INT", Some("1"), None));
    assert!(a.difference(&d).is_some());
}

#[test]
fn only_session_values_that_differ_from_the_global_ones_are_kept() {
    let row = |scope: &str, name: &str, value: Option<&str>| -> Row {
        vec![
            Some(scope.as_bytes().to_vec()),
            Some(name.as_bytes().to_vec()),
            value.map(|v| v.as_bytes().to_vec()),
        ]
    };
    let rows = vec![
        row("s", "SQL_MODE", Some("ANSI")),
        row("s", "WAIT_TIMEOUT", Some("28800")),
        row("s", "CHARACTER_SET_RESULTS", None),
        row("s", "SQL_SELECT_LIMIT", Some("5")),
        row("s", "TIMESTAMP", Some("1.5")),
        row("g", "SQL_MODE", Some("STRICT_TRANS_TABLES")),
        row("g", "WAIT_TIMEOUT", Some("28800")),
        row("g", "CHARACTER_SET_RESULTS", Some("utf8mb4")),
        row("g", "SQL_SELECT_LIMIT", Some("18446744073709551615")),
        // global only, and it moved between the two reads
        row("s", "GTID_BINLOG_POS", Some("0-1-5")),
        row("g", "GTID_BINLOG_POS", Some("0-1-6")),
        row("n", "GTID_BINLOG_POS", None),
    ];
    assert_eq!(
        differing_from_global(&rows),
        vec![
            ("sql_mode".to_string(), Some("ANSI".to_string())),
            ("character_set_results".to_string(), None),
        ]
    );
}
