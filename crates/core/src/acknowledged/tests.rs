//! Unit tests of the ledger: terms follow the route's serving primary,
//! records land in their backend's term, the ring is bounded.

use std::time::SystemTime;

use super::*;
use crate::routing::RecordState;

fn route(port: Option<u16>, epoch: u64) -> Route {
    Route {
        primary: port.map(|p| Primary::local(p, epoch)),
        ..Route::empty()
    }
}

fn gtid(s: &str) -> Gtid {
    s.parse().unwrap()
}

fn user() -> Arc<str> {
    Arc::from("app")
}

#[test]
fn position_is_the_current_primarys_highest_per_domain() {
    let (l, _rx) = Ledger::new(10, None);
    assert!(l.position().is_empty(), "no primary yet");
    l.published(&Route::empty(), &route(Some(1), 3));
    l.record("127.0.0.1:1", 3, gtid("0-1-5"), 7, &user());
    l.record("127.0.0.1:1", 3, gtid("0-1-4"), 8, &user());
    l.record("127.0.0.1:1", 3, gtid("1-1-2"), 8, &user());
    assert_eq!(l.position().to_string(), "0-1-5,1-1-2");
    let t = &l.terms()[0];
    assert_eq!(t.acknowledged, 3);
    assert_eq!(t.recent[0].session, 7);
    assert!(t.recent[0].at <= SystemTime::now());
}

#[test]
fn a_move_to_another_server_hands_over_the_old_term() {
    let (l, mut rx) = Ledger::new(10, None);
    l.published(&Route::empty(), &route(Some(1), 3));
    l.record("127.0.0.1:1", 3, gtid("0-1-5"), 7, &user());
    // draining the same server, then no primary: no move
    let draining = Route {
        state: RecordState::Draining,
        ..route(Some(1), 4)
    };
    l.published(&route(Some(1), 3), &draining);
    l.published(&draining, &route(None, 4));
    assert!(rx.try_recv().is_err());
    l.published(&route(None, 4), &route(Some(2), 5));
    let m = rx.try_recv().expect("a move");
    assert_eq!(m.old.server, "127.0.0.1:1");
    assert_eq!(m.old.position.to_string(), "0-1-5");
    assert!(m.old.closed);
    assert_eq!((m.server.as_str(), m.epoch), ("127.0.0.1:2", 5));
    assert!(l.position().is_empty(), "the new term has nothing yet");
    l.record("127.0.0.1:2", 5, gtid("0-2-6"), 9, &user());
    assert_eq!(l.position().to_string(), "0-2-6");
}

#[test]
fn a_late_reply_from_the_old_server_lands_in_its_old_term() {
    let (l, mut rx) = Ledger::new(10, None);
    l.published(&Route::empty(), &route(Some(1), 3));
    l.published(&route(Some(1), 3), &route(Some(2), 5));
    let _ = rx.try_recv();
    l.published(&route(Some(2), 5), &route(Some(1), 7));
    let m = rx.try_recv().expect("a move back");
    assert_eq!(m.old.server, "127.0.0.1:2");
    // a session of the first term (epoch 3) answers late
    l.record("127.0.0.1:1", 3, gtid("0-1-9"), 1, &user());
    l.record("127.0.0.1:1", 7, gtid("0-1-12"), 2, &user());
    let terms = l.terms();
    let of_1: Vec<_> = terms.iter().filter(|t| t.server == "127.0.0.1:1").collect();
    assert_eq!(of_1.len(), 2);
    assert_eq!(of_1[0].position.to_string(), "0-1-9");
    assert_eq!(of_1[1].position.to_string(), "0-1-12");
    assert_eq!(l.position().to_string(), "0-1-12");
}

#[test]
fn the_ring_keeps_the_most_recent_and_counts_all() {
    let (l, _rx) = Ledger::new(2, None);
    l.published(&Route::empty(), &route(Some(1), 1));
    for seq in 1..=5 {
        l.record("127.0.0.1:1", 1, gtid(&format!("0-1-{seq}")), seq, &user());
    }
    let t = &l.terms()[0];
    assert_eq!(t.acknowledged, 5);
    let kept: Vec<u64> = t.recent.iter().map(|a| a.gtid.seq).collect();
    assert_eq!(kept, [4, 5]);
    assert!(t.ring_short_of(0, 1));
    assert!(!t.ring_short_of(0, 3));
}

#[test]
fn the_gate_closes_on_the_writer_thread_when_the_old_term_acknowledged_something() {
    let (l, _rx) = Ledger::new(10, Some(std::time::Duration::from_secs(5)));
    l.published(&Route::empty(), &route(Some(1), 3));
    l.published(&route(Some(1), 3), &route(Some(2), 4));
    assert_eq!(
        l.gate.state(),
        gate::GateState::Open,
        "nothing acknowledged"
    );
    l.record("127.0.0.1:2", 4, gtid("0-2-1"), 1, &user());
    l.published(&route(Some(2), 4), &route(Some(1), 5));
    assert_eq!(
        l.gate.state(),
        gate::GateState::Closed {
            server: "127.0.0.1:1".into(),
            epoch: 5
        }
    );
}
