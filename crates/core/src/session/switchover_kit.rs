//! The planned-switchover scenario the move tests share: a session on a
//! live old primary, the route drains, a command arrives, the route names
//! the new primary; what each server received and what the client got.

use std::sync::atomic::Ordering::Relaxed;

use tokio::io::AsyncWriteExt;

use super::fake_server::{FakeServer, FakeSession, FakeVar, Script};
use super::testkit::{
    command, env_with, error_of, live_with, publish, read_payload, record_with, run_session_as,
    CAPS, PATIENCE,
};
use crate::config::Config;
use crate::metrics::ConnOutcome;
use crate::routing::RecordState;
use mysql_zk_proxy_protocol::caps;
use mysql_zk_proxy_protocol::packet_io::frame;

/// A session with system and user variables and a LAST_INSERT_ID.
pub(super) fn busy(s: &mut FakeSession) {
    s.sysvars.insert("SQL_MODE".into(), "ANSI".into());
    s.sysvars.insert("WAIT_TIMEOUT".into(), "60".into());
    s.user_vars = vec![
        FakeVar {
            name: "n".into(),
            kind: "INT".into(),
            value: "5".into(),
            collation: "binary".into(),
        },
        FakeVar {
            name: "s".into(),
            kind: "VARCHAR".into(),
            value: "hé".into(),
            collation: "utf8mb4_general_ci".into(),
        },
    ];
    s.last_insert_id = 42;
}

/// What carries [`busy`]'s state: values, in the order the carry sends them.
pub(super) const BUSY_CARRIED: [&str; 3] = [
    "SET SESSION `sql_mode` = 'ANSI', SESSION `wait_timeout` = 60",
    "SET @`n` = CAST('5' AS SIGNED), @`s` = _utf8mb4 X'68C3A9' COLLATE `utf8mb4_general_ci`",
    "SET LAST_INSERT_ID = 42",
];

/// A planned switchover: a session on a live old primary (scripted by
/// `old`), in the state `edit` gives a fresh login into `app`, runs the
/// command `first` there; the route drains; the application sends the
/// command `held`; the route names the new primary (scripted by `new`).
/// Commands are payloads; both are answered with one OK packet.
pub(super) struct Planned {
    pub first: &'static [u8],
    pub held: &'static [u8],
    pub old: Script,
    pub new: Script,
    pub edit: fn(&mut FakeSession),
    /// Changes the config (whose waits do not expire unless it says so).
    pub tweak: fn(&mut Config),
    /// The client's capabilities.
    pub caps: u32,
}

impl Default for Planned {
    fn default() -> Self {
        Planned {
            first: b"\x03SELECT 1",
            held: b"\x03SELECT 2",
            old: Script::default(),
            new: Script::default(),
            edit: |_| {},
            tweak: |_| {},
            caps: CAPS,
        }
    }
}

/// What a planned switchover did to a session.
pub(super) struct Switched {
    pub old: FakeServer,
    pub new: FakeServer,
    pub outcome: ConnOutcome,
    /// The command sent while the route drained, and its reply.
    pub held: &'static [u8],
    pub reply: Vec<u8>,
    pub migrated: u64,
}

impl Planned {
    pub(super) async fn run(self) -> Switched {
        let old = FakeServer::listen(self.old).await;
        let new = FakeServer::listen(self.new).await;
        let tweak = self.tweak;
        let env = env_with(Some(old.primary(1)), |c| {
            c.failover.hold_timeout = PATIENCE;
            c.failover.drain_timeout = PATIENCE;
            tweak(c);
        });
        let mut state = old.session(Some("app"));
        (self.edit)(&mut state);
        let (live, far) = live_with(&env, &old.primary(1), state.status, self.caps);
        let _conn = old.attach(far, state, self.caps & caps::CLIENT_DEPRECATE_EOF != 0);
        let (e, from, to) = (&env, old.primary(1), new.primary(2));
        let (first, held) = (self.first, self.held);
        let rec = record_with(self.caps);
        let (outcome, reply) = run_session_as(&env, live, &rec, |mut app| async move {
            assert_eq!(command(&mut app, first).await[0], 0x00, "an OK");
            publish(e, Some(from), RecordState::Draining);
            app.write_all(&frame(0, held)).await.unwrap();
            publish(e, Some(to), RecordState::Serving);
            read_payload(&mut app).await
        })
        .await;
        let migrated = env.stats.sessions_migrated.load(Relaxed);
        Switched {
            old,
            new,
            outcome,
            held,
            reply,
            migrated,
        }
    }
}

impl Switched {
    /// The session was refused with 9005 naming `why`, and the held
    /// command ran on neither primary.
    pub(super) fn refused(&self, why: &str) {
        let (code, msg) = error_of(&self.reply);
        assert_eq!(code, 9005, "{msg}");
        assert!(msg.contains(why), "{why:?} in {msg:?}");
        assert_eq!(self.outcome, ConnOutcome::FailoverClosed);
        assert_eq!(self.migrated, 0);
        let held = "the held command stayed unsent";
        assert!(!self.old.received(self.held), "{held}");
        assert!(!self.new.received(self.held), "{held}");
    }
}
