//! Byte-literal tests of the OK packet reader, taken from a MariaDB 10.11
//! server with `session_track_system_variables` including `last_gtid`.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An autocommit INSERT, with CLIENT_SESSION_TRACK: empty info, last_gtid 0-1-15.
const INSERT_TRACKED: &str = "00010b0240000000130011096c6173745f6774696406302d312d3135";
/// The same INSERT to a client without it.
const INSERT_PLAIN: &str = "00010b02000000";
/// An UPDATE with an info message, tracked, last_gtid 0-1-16.
const UPDATE_TRACKED: &str = "000b00024000002a526f7773206d6174636865643a20313120204368616e6765643a20313120205761726e696e67733a2030130011096c6173745f6774696406302d312d3136";
/// The same UPDATE, untracked.
const UPDATE_PLAIN: &str = "000b00020000002a526f7773206d6174636865643a20313120204368616e6765643a20313120205761726e696e67733a2030";
/// SET autocommit=0, tracked (not a commit).
const AUTOCOMMIT_OFF: &str = "000000004000000011000f0a6175746f636f6d6d6974034f4646";
/// The login OK, tracked: the schema item (type 1) "t".
const LOGIN_TRACKED: &str = "00000002400000000401020174";

#[test]
fn the_gtid_of_a_commit_is_read_from_its_ok() {
    assert_eq!(last_gtid(&hex(INSERT_TRACKED)), Some(&b"0-1-15"[..]));
    assert_eq!(last_gtid(&hex(UPDATE_TRACKED)), Some(&b"0-1-16"[..]));
}

#[test]
fn oks_without_a_gtid_item_have_none() {
    assert_eq!(last_gtid(&hex(AUTOCOMMIT_OFF)), None);
    assert_eq!(last_gtid(&hex(LOGIN_TRACKED)), None);
    assert_eq!(last_gtid(&hex(INSERT_PLAIN)), None);
    assert_eq!(last_gtid(&[0xff, 0x15, 0x04]), None);
}

#[test]
fn stripping_gives_the_bytes_the_server_sends_an_untracked_client() {
    let strip = |s: &str| without_session_state(&hex(s));
    assert_eq!(strip(INSERT_TRACKED), Some(hex(INSERT_PLAIN)));
    assert_eq!(strip(UPDATE_TRACKED), Some(hex(UPDATE_PLAIN)));
    assert_eq!(strip(AUTOCOMMIT_OFF), Some(hex("00000000000000")));
    assert_eq!(strip(LOGIN_TRACKED), Some(hex("00000002000000")));
}

#[test]
fn an_ok_without_state_info_is_left_alone() {
    assert_eq!(without_session_state(&hex(INSERT_PLAIN)), None);
    assert_eq!(without_session_state(&hex(UPDATE_PLAIN)), None);
}

#[test]
fn layout_reads_each_field() {
    let p = hex(UPDATE_TRACKED);
    let l = layout(&p).unwrap();
    assert_eq!(l.status, 0x4002);
    assert_eq!(l.status_at, 3);
    assert_eq!(
        &p[l.info.clone()],
        b"Rows matched: 11  Changed: 11  Warnings: 0"
    );
    let state = &p[l.state.unwrap()];
    let all: Vec<_> = items(state).collect();
    assert_eq!(all.len(), 1);
    assert_eq!(
        system_variable(&all[0]),
        Some((&b"last_gtid"[..], &b"0-1-16"[..]))
    );
}

#[test]
fn a_result_set_terminator_ok_is_read_like_an_ok() {
    // 0xFE header (CLIENT_DEPRECATE_EOF), two-byte lenenc affected rows
    let p = hex("fefc0001000240000000130011096c6173745f6774696406302d312d3939");
    assert_eq!(last_gtid(&p), Some(&b"0-1-99"[..]));
    assert_eq!(without_session_state(&p), Some(hex("fefc00010002000000")));
}

#[test]
fn truncated_packets_are_errors_not_panics() {
    let p = hex(INSERT_TRACKED);
    for n in 0..p.len() {
        let _ = layout(&p[..n]);
        assert!(last_gtid(&p[..n]).is_none(), "prefix {n}");
    }
    assert_eq!(layout(&[0x03]), Err(OkError::NotOk(3)));
    assert_eq!(layout(&[0x00, 0x00]), Err(OkError::Truncated("insert id")));
    // state length past the end
    assert_eq!(
        layout(&hex("0000000240000000ff")),
        Err(OkError::Truncated("state info"))
    );
}
