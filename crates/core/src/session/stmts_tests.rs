//! Byte-literal tests of statement tracking, id allocation and the types
//! rewrite of a first EXECUTE after a migration.

use super::*;

/// COM_STMT_EXECUTE of `id` with `n` parameters; `types` when bound.
fn execute(id: u32, n: usize, types: Option<&[u8]>, values: &[u8]) -> Vec<u8> {
    let mut p = vec![command::STMT_EXECUTE];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(0); // flags
    p.extend_from_slice(&1u32.to_le_bytes()); // iteration count
    p.extend(std::iter::repeat_n(0u8, n.div_ceil(8))); // null bitmap
    match types {
        Some(t) => {
            p.push(1);
            p.extend_from_slice(t);
        }
        None => p.push(0),
    }
    p.extend_from_slice(values);
    p
}

fn with_header(payload: &[u8], seq: u8) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

#[test]
fn ids_stay_the_same_until_translating_then_never_collide() {
    let mut s = Statements::default();
    assert_eq!(
        s.prepared(40, 1, Some(b"SELECT ?".to_vec()), Some(None)),
        40
    );
    assert_eq!(
        s.prepared(41, 0, Some(b"SELECT 1".to_vec()), Some(None)),
        41
    );
    s.reprepared(40, 7);
    s.reprepared(41, 8);
    assert!(s.translating());
    assert_eq!((s.to_backend(40), s.to_backend(41)), (7, 8));
    assert_eq!(s.to_backend(99), UNKNOWN_ID);
    // the new backend hands out 40 again: the client cannot get it twice
    let c = s.prepared(40, 0, Some(b"SELECT 2".to_vec()), Some(None));
    assert!(c != 40 && c != 41 && c != UNKNOWN_ID);
    assert_eq!(s.to_backend(c), 40);
    // a free id is kept as it is
    assert_eq!(s.prepared(9, 0, Some(b"SELECT 3".to_vec()), Some(None)), 9);
}

#[test]
fn types_of_the_last_bound_execute_are_sent_again_once() {
    let mut s = Statements::default();
    s.prepared(5, 2, Some(b"SELECT ?, ?".to_vec()), Some(None));
    let types = [0x03, 0x00, 0xfe, 0x00];
    let bound = execute(5, 2, Some(&types), b"\x01\x00\x00\x00\x01x");
    s.on_command(command::STMT_EXECUTE, &bound, Some(&bound));
    let unbound = execute(5, 2, None, b"\x02\x00\x00\x00\x01y");
    s.on_command(command::STMT_EXECUTE, &unbound, Some(&unbound));
    assert_eq!(
        s.with_types(&with_header(&unbound, 0)),
        None,
        "not migrated"
    );

    s.reprepared(5, 77);
    assert!(s.needs_types(5));
    let packet = with_header(&unbound, 0);
    assert!(packet.len() >= s.execute_head_len(5));
    let rewritten = s.with_types(&packet).expect("rewritten");
    let want = execute(5, 2, Some(&types), b"\x02\x00\x00\x00\x01y");
    assert_eq!(rewritten, with_header(&want, 0));
    // the rewritten EXECUTE passes the tracker like any other
    s.on_command(command::STMT_EXECUTE, &want, Some(&want));
    assert!(!s.needs_types(5));
}

#[test]
fn blockers_and_reset() {
    let mut s = Statements::default();
    s.prepared(1, 1, None, Some(None));
    assert_eq!(s.blocker(), Some("prepared statement too long to track"));
    s.on_command(
        command::STMT_CLOSE,
        &[command::STMT_CLOSE, 1, 0, 0, 0],
        None,
    );
    assert_eq!(s.blocker(), None);
    s.prepared(2, 1, Some(b"INSERT INTO t VALUES (?)".to_vec()), Some(None));
    let long = [command::STMT_SEND_LONG_DATA, 2, 0, 0, 0, 0, 0, b'x'];
    s.on_command(command::STMT_SEND_LONG_DATA, &long, None);
    assert_eq!(
        s.blocker(),
        Some("prepared statement with pending SEND_LONG_DATA")
    );
    s.on_command(
        command::STMT_RESET,
        &[command::STMT_RESET, 2, 0, 0, 0],
        None,
    );
    assert_eq!(s.blocker(), None);
    // types bound in a packet too long to capture are not known
    let big = execute(2, 1, Some(&[0xfc, 0]), &[]);
    s.on_command(command::STMT_EXECUTE, &big[..11], None);
    assert_eq!(
        s.blocker(),
        Some("prepared statement parameter types not seen")
    );
    s.clear();
    assert!(s.is_empty() && s.blocker().is_none());
}
