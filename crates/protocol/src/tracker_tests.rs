//! Byte-literal tests for the tracker: real response shapes, in order.

use super::*;
use crate::caps::*;

const BASE: u32 = CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_MULTI_RESULTS
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_TRANSACTIONS;

/// A packet whose payload the framer did not capture: the tracker works
/// from its prefix.
fn pkt(payload: &[u8]) -> PacketInfo<'_> {
    PacketInfo {
        payload: None,
        ..PacketInfo::of_payload(payload)
    }
}

/// A one-column, one-row result (CLIENT_DEPRECATE_EOF) ended by an OK with
/// SERVER_MORE_RESULTS_EXISTS: another result follows.
const ONE_ROW_THEN_MORE: &[&[u8]] = &[&[0x01], COLDEF, &[0x01, b'1'], &[0xfe, 0, 0, 0x0a, 0, 0, 0]];

/// Server packets that each leave the reply unfinished.
fn mid_reply(t: &mut Tracker, packets: &[&[u8]]) {
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(t.on_server_packet(&pkt(p)), ServerEvent::None, "packet {i}");
    }
}

/// The server packet that ends a response (another may still be
/// outstanding).
fn ends_response(t: &mut Tracker, packet: &[u8]) {
    assert_eq!(t.on_server_packet(&pkt(packet)), ServerEvent::ResponseDone);
}

/// The server packet that ends the reply, leaving the session at rest.
fn ends_reply(t: &mut Tracker, packet: &[u8]) {
    ends_response(t, packet);
    assert!(t.at_rest());
}

/// A logged-in session, with or without CLIENT_DEPRECATE_EOF.
fn tracker(deprecate_eof: bool) -> Tracker {
    let dep = if deprecate_eof {
        CLIENT_DEPRECATE_EOF
    } else {
        0
    };
    let t = Tracker::logged_in(BASE | dep, 0, status::AUTOCOMMIT);
    assert!(t.at_rest());
    t
}

/// A logged-in session (see [`tracker`]) that has just sent `command`.
fn sent(deprecate_eof: bool, command: &[u8]) -> Tracker {
    let mut t = tracker(deprecate_eof);
    t.on_client_packet(&pkt(command));
    t
}

const OK_AUTOCOMMIT: &[u8] = &[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];
const EOF_AUTOCOMMIT: &[u8] = &[0xfe, 0x00, 0x00, 0x02, 0x00];
const COLDEF: &[u8] = &[0x03, b'd', b'e', b'f', 0, 0, 0, 1, b'x', 0, 0x0c];

#[test]
fn change_user_auth_switch_then_ok() {
    let mut t = sent(true, b"\x11app\0");
    mid_reply(&mut t, &[b"\xfemysql_native_password\0abc"]);
    assert_eq!(t.on_client_packet(&pkt(&[1u8; 20])), ClientEvent::Data);
    assert!(!t.at_rest());
    assert_eq!(t.on_server_packet(&pkt(OK_AUTOCOMMIT)), ServerEvent::AuthOk);
    assert!(t.at_rest());
}

#[test]
fn change_user_wrong_password_is_auth_failed() {
    let mut t = sent(true, b"\x11app\0");
    let err = b"\xff\x15\x04#28000Access denied";
    assert_eq!(t.on_server_packet(&pkt(err)), ServerEvent::AuthFailed);
    assert_eq!(t.outstanding(), 0);
}

#[test]
fn text_result_set_with_eof() {
    let mut t = tracker(false);
    assert_eq!(
        t.on_client_packet(&pkt(b"\x03SELECT 1")),
        ClientEvent::Command(0x03)
    );
    assert!(!t.at_rest());
    mid_reply(
        &mut t,
        &[&[0x01][..], COLDEF, EOF_AUTOCOMMIT, &[0x01, b'1']],
    );
    ends_reply(&mut t, EOF_AUTOCOMMIT);
}

#[test]
fn text_result_set_deprecate_eof_and_multi_results() {
    let mut t = sent(true, b"\x03SELECT 1; SELECT 2");
    // first result ends with an OK (0xFE header) carrying MORE_RESULTS_EXISTS
    mid_reply(&mut t, ONE_ROW_THEN_MORE);
    mid_reply(&mut t, &[&[0x01][..], COLDEF, &[0x01, b'2']]);
    ends_reply(&mut t, &[0xfe, 0, 0, 0x02, 0, 0, 0]);
}

#[test]
fn in_rows_from_the_first_row_to_the_terminator_only() {
    for deprecate_eof in [false, true] {
        let mut t = sent(deprecate_eof, b"\x03SELECT 1; SELECT 2");
        let (more, done): (&[u8], &[u8]) = if deprecate_eof {
            (&[0xfe, 0, 0, 0x0a, 0, 0, 0], &[0xfe, 0, 0, 0x02, 0, 0, 0])
        } else {
            (&[0xfe, 0, 0, 0x0a, 0], EOF_AUTOCOMMIT)
        };
        let mut defs: Vec<&[u8]> = vec![&[0x01], COLDEF];
        if !deprecate_eof {
            defs.push(more);
        }
        let row: &[u8] = &[0x01, b'1'];
        let mut replies = defs.clone();
        replies.extend([row, row, more]);
        replies.extend(defs.iter().copied());
        replies.extend([row, done]);
        let seen: Vec<bool> = replies
            .iter()
            .map(|p| {
                let before = t.in_rows();
                t.on_server_packet(&pkt(p));
                before
            })
            .collect();
        // true before each row and before the terminator, nowhere else
        let mut want = vec![false; defs.len()];
        want.extend([true, true, true]);
        want.extend(vec![false; defs.len()]);
        want.extend([true, true]);
        assert_eq!(seen, want, "deprecate_eof {deprecate_eof}");
        assert!(!t.in_rows() && t.at_rest());
    }
}

#[test]
fn call_ends_with_extra_ok() {
    let mut t = sent(true, b"\x03CALL p()");
    mid_reply(&mut t, ONE_ROW_THEN_MORE);
    ends_response(&mut t, OK_AUTOCOMMIT);
}

#[test]
fn error_mid_multi_statement_ends_the_reply() {
    let mut t = sent(true, b"\x03SELECT 1; SELEC");
    t.on_server_packet(&pkt(&[0x00, 0, 0, 0x0a, 0, 0, 0]));
    ends_response(&mut t, b"\xff\x28\x04#42000syntax");
    assert_eq!(t.outstanding(), 0);
}

#[test]
fn transaction_flags_follow_ok_packets() {
    let mut t = sent(true, b"\x03BEGIN");
    t.on_server_packet(&pkt(&[0x00, 0, 0, 0x03, 0, 0, 0]));
    assert!(t.in_transaction());
    assert!(!t.at_rest());
    t.on_client_packet(&pkt(b"\x03COMMIT"));
    t.on_server_packet(&pkt(OK_AUTOCOMMIT));
    assert!(t.at_rest());
}

#[test]
fn ok_with_multibyte_lenenc_fields() {
    let mut t = sent(true, b"\x03INSERT");
    // affected rows 0x10000 (0xfd form), insert id 300 (0xfc form), status IN_TRANS|AUTOCOMMIT
    let ok = [0x00, 0xfd, 0, 0, 1, 0xfc, 0x2c, 0x01, 0x03, 0x00, 0, 0];
    ends_response(&mut t, &ok);
    assert_eq!(t.status(), 0x0003);
}

#[test]
fn prepare_with_params_and_columns_both_eof_modes() {
    for dep in [false, true] {
        let mut t = sent(dep, b"\x16SELECT ?, ?");
        // OK: stmt id 1, 1 column, 2 params
        let ok = [0x00, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0];
        let mut seq: Vec<&[u8]> = vec![&ok, COLDEF, COLDEF];
        if !dep {
            seq.push(EOF_AUTOCOMMIT);
        }
        seq.push(COLDEF);
        if !dep {
            seq.push(EOF_AUTOCOMMIT);
        }
        let last = seq.pop().unwrap();
        for p in seq {
            assert_eq!(t.on_server_packet(&pkt(p)), ServerEvent::None, "dep={dep}");
            assert_eq!(t.outstanding(), 1, "dep={dep}");
        }
        assert_eq!(
            t.on_server_packet(&pkt(last)),
            ServerEvent::ResponseDone,
            "dep={dep}"
        );
        assert!(t.at_rest(), "dep={dep}");
    }
}

#[test]
fn prepare_without_params_or_columns() {
    let mut t = sent(false, b"\x16DO 1");
    let ok = [0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ends_response(&mut t, &ok);
}

#[test]
fn binary_rows_starting_with_zero_are_rows() {
    let mut t = sent(true, &[0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
    mid_reply(
        &mut t,
        &[
            &[0x01][..],
            COLDEF,
            &[0x00, 0x00, 1, 0, 0, 0],
            &[0x00, 0x00, 2, 0, 0, 0],
        ],
    );
    ends_response(&mut t, &[0xfe, 0, 0, 2, 0, 0, 0]);
}

#[test]
fn cursor_execute_ends_after_column_eof_then_fetch() {
    let mut t = sent(false, &[0x17, 1, 0, 0, 0, 1, 1, 0, 0, 0]);
    t.on_server_packet(&pkt(&[0x01]));
    t.on_server_packet(&pkt(COLDEF));
    // EOF with CURSOR_EXISTS | AUTOCOMMIT
    ends_response(&mut t, &[0xfe, 0, 0, 0x42, 0]);
    assert!(!t.at_rest(), "an open cursor keeps the session busy");
    t.on_client_packet(&pkt(&[0x1c, 1, 0, 0, 0, 10, 0, 0, 0]));
    t.on_server_packet(&pkt(&[0x00, 0x00, 7]));
    // EOF with CURSOR_EXISTS | LAST_ROW_SENT | AUTOCOMMIT
    ends_reply(&mut t, &[0xfe, 0, 0, 0xc2, 0]);
}

#[test]
fn local_infile_exchange() {
    let mut t = sent(true, b"\x03LOAD DATA LOCAL INFILE 'x' INTO TABLE t");
    mid_reply(&mut t, &[b"\xfbx"]);
    // file content: its first byte could look like any command
    assert_eq!(t.on_client_packet(&pkt(b"\x01\x02data")), ClientEvent::Data);
    assert_eq!(t.on_client_packet(&pkt(b"")), ClientEvent::Data);
    ends_reply(&mut t, OK_AUTOCOMMIT);
}

#[test]
fn commands_without_reply_and_pipelining() {
    let mut t = tracker(true);
    assert_eq!(
        t.on_client_packet(&pkt(&[0x19, 1, 0, 0, 0])),
        ClientEvent::NoReply(0x19)
    );
    assert!(t.at_rest());
    t.on_client_packet(&pkt(&[0x0e]));
    t.on_client_packet(&pkt(&[0x0e]));
    assert_eq!(t.outstanding(), 2);
    ends_response(&mut t, OK_AUTOCOMMIT);
    ends_reply(&mut t, OK_AUTOCOMMIT);
    assert_eq!(
        t.on_client_packet(&pkt(&[0x01])),
        ClientEvent::NoReply(0x01)
    );
    assert!(t.quit_sent());
}

#[test]
fn field_list_and_statistics() {
    let mut t = sent(false, b"\x04kv\0");
    mid_reply(&mut t, &[COLDEF]);
    ends_response(&mut t, EOF_AUTOCOMMIT);
    t.on_client_packet(&pkt(&[0x09]));
    ends_response(&mut t, b"Uptime: 5  Threads: 1");
}

#[test]
fn change_user_is_an_auth_exchange() {
    let mut t = sent(true, b"\x11app\0");
    mid_reply(&mut t, &[b"\xfemysql_native_password\0s"]);
    assert_eq!(t.on_client_packet(&pkt(&[9u8; 20])), ClientEvent::Data);
    assert_eq!(t.on_server_packet(&pkt(OK_AUTOCOMMIT)), ServerEvent::AuthOk);
    assert!(t.at_rest());
}

#[test]
fn progress_reports_do_not_end_the_reply() {
    let caps = BASE | CLIENT_DEPRECATE_EOF;
    let mut t = Tracker::logged_in(caps, MARIADB_CLIENT_PROGRESS, status::AUTOCOMMIT);
    t.on_client_packet(&pkt(b"\x03ALTER TABLE t ENGINE=InnoDB"));
    mid_reply(&mut t, &[b"\xff\xff\xff\x01\x01\x00\x10\x00\x00"]);
    ends_response(&mut t, OK_AUTOCOMMIT);
}

#[test]
fn continuation_packets_are_not_commands_or_terminators() {
    let mut t = sent(true, b"\x03SELECT big");
    let cont = PacketInfo {
        len: 5,
        seq: 9,
        prefix: &[0xfe, 0, 0, 0, 0],
        continuation: true,
        payload: None,
    };
    t.on_server_packet(&pkt(&[0x01]));
    t.on_server_packet(&pkt(COLDEF));
    assert_eq!(t.on_server_packet(&cont), ServerEvent::None);
    assert_eq!(t.on_client_packet(&cont), ClientEvent::Data);
    assert_eq!(t.outstanding(), 1);
}

#[test]
fn prepare_with_params_only_deprecate_eof() {
    let mut t = sent(true, b"\x16INSERT INTO t VALUES (?)");
    let ok = [0x00, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    mid_reply(&mut t, &[&ok]);
    ends_reply(&mut t, COLDEF);
}

/// A session that agreed on MARIADB_CLIENT_CACHE_METADATA.
fn cached_metadata_tracker(deprecate_eof: bool) -> Tracker {
    let dep = if deprecate_eof {
        CLIENT_DEPRECATE_EOF
    } else {
        0
    };
    Tracker::logged_in(
        BASE | dep,
        MARIADB_CLIENT_CACHE_METADATA,
        status::AUTOCOMMIT,
    )
}

const EXECUTE: &[u8] = &[0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0];
const BINARY_ROW: &[u8] = &[0x00, 0x00, 0x01, b'1'];
const OK_AS_EOF: &[u8] = &[0xfe, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];

/// Feed `reply` after an EXECUTE: only its last packet ends it.
fn execute_reply(t: &mut Tracker, reply: &[&[u8]]) {
    t.on_client_packet(&pkt(EXECUTE));
    let (last, rest) = reply.split_last().unwrap();
    for p in rest {
        assert_eq!(t.on_server_packet(&pkt(p)), ServerEvent::None, "{p:?}");
    }
    ends_reply(t, last);
}

// Shapes as MariaDB 10.11 sends them (captured against the sandbox server):
// the first EXECUTE carries the definitions (flag 1), later ones skip them
// (flag 0); without DEPRECATE_EOF the EOF after the definitions stays.
#[test]
fn cached_metadata_with_eof_packets() {
    let mut t = cached_metadata_tracker(false);
    let count_then_defs: &[u8] = &[0x02, 0x01];
    let first = [
        count_then_defs,
        COLDEF,
        COLDEF,
        EOF_AUTOCOMMIT,
        BINARY_ROW,
        EOF_AUTOCOMMIT,
    ];
    execute_reply(&mut t, &first);
    let count_skipped: &[u8] = &[0x02, 0x00];
    execute_reply(
        &mut t,
        &[count_skipped, EOF_AUTOCOMMIT, BINARY_ROW, EOF_AUTOCOMMIT],
    );
}

#[test]
fn cached_metadata_with_deprecate_eof() {
    let mut t = cached_metadata_tracker(true);
    execute_reply(
        &mut t,
        &[&[0x02, 0x01], COLDEF, COLDEF, BINARY_ROW, OK_AS_EOF],
    );
    execute_reply(&mut t, &[&[0x02, 0x00], BINARY_ROW, OK_AS_EOF]);
    // an empty result: the count, then the end
    execute_reply(&mut t, &[&[0x02, 0x00], OK_AS_EOF]);
}

#[test]
fn a_count_with_flag_1_or_none_is_followed_by_definitions() {
    // the capability is not agreed: no flag byte, definitions follow
    let mut t = tracker(true);
    execute_reply(&mut t, &[&[0x01], COLDEF, BINARY_ROW, OK_AS_EOF]);
    // agreed: MariaDB puts the flag (1) on a text result's count too
    let mut t = cached_metadata_tracker(true);
    t.on_client_packet(&pkt(b"\x03SELECT 1"));
    mid_reply(&mut t, &[&[0x01, 0x01][..], COLDEF, &[0x01, b'1']]);
    ends_response(&mut t, OK_AS_EOF);
}

#[test]
fn next_is_ok_names_only_packets_that_are_oks() {
    let mut t = tracker(true);
    assert!(!t.next_is_ok(0x00, 7), "nothing outstanding");
    t.on_client_packet(&pkt(b"\x03SELECT 1"));
    assert!(t.next_is_ok(0x00, 7), "an OK instead of a result set");
    assert!(!t.next_is_ok(0x01, 1), "a column count");
    t.on_server_packet(&pkt(&[0x01]));
    assert!(!t.next_is_ok(0x00, 7), "a definition");
    t.on_server_packet(&pkt(COLDEF));
    assert!(t.in_rows());
    assert!(!t.next_is_ok(0x00, 7), "a row");
    assert!(t.next_is_ok(0xfe, 7), "the OK ending the rows");
    assert!(
        !t.next_is_ok(0xfe, MAX_PAYLOAD),
        "a row with a huge first column"
    );
    let end = [0xfe, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];
    ends_response(&mut t, &end);

    t.on_client_packet(&pkt(b"\x16SELECT ?"));
    assert!(!t.next_is_ok(0x00, 12), "a PREPARE OK");
    let mut t = sent(false, b"\x03SELECT 1");
    t.on_server_packet(&pkt(&[0x01]));
    t.on_server_packet(&pkt(COLDEF));
    t.on_server_packet(&pkt(EOF_AUTOCOMMIT));
    assert!(!t.next_is_ok(0xfe, 5), "an EOF without DEPRECATE_EOF");
    t.on_server_packet(&pkt(EOF_AUTOCOMMIT));
    t.on_client_packet(&pkt(b"\x11app\0"));
    assert!(!t.next_is_ok(0xfe, 30), "an auth switch");
    assert!(t.next_is_ok(0x00, 7), "the OK of COM_CHANGE_USER");
}
