//! Session state tracking on the backend leg, which the ledger of
//! acknowledged commits reads each commit's GTID from (docs/ledger.md):
//! who asked for it, asking for it in the client's handshake response, and
//! the login OK as the client would have received it.

use mysql_zk_proxy_protocol::caps;
use mysql_zk_proxy_protocol::handshake::Greeting;
use mysql_zk_proxy_protocol::ok;

/// Who asked the backend for session state tracking (CLIENT_SESSION_TRACK),
/// which the ledger reads each commit's GTID from (docs/ledger.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tracking {
    /// The ledger is off: the client's capabilities go as they are.
    #[default]
    Off,
    /// The client asked for it: its OKs pass unchanged.
    Client,
    /// Only the proxy: state information is removed from the OKs the
    /// client gets, which then are the bytes a direct connection gets.
    Proxy,
}

/// With the ledger on, ask the backend for session tracking in the client's
/// handshake response (`payload`) when the server offers it.
pub(super) fn ask_for_tracking(payload: &mut [u8], greeting: &Greeting, ledger: bool) -> Tracking {
    let offered = greeting.caps & caps::CLIENT_SESSION_TRACK != 0;
    let Some(flags) = payload.get_mut(..4) else {
        return Tracking::Off;
    };
    let asked = u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]]);
    if !ledger || !offered {
        return Tracking::Off;
    }
    if asked & caps::CLIENT_SESSION_TRACK != 0 {
        return Tracking::Client;
    }
    flags.copy_from_slice(&(asked | caps::CLIENT_SESSION_TRACK).to_le_bytes());
    Tracking::Proxy
}

/// An OK payload as the client gets it: without the state information
/// the proxy asked for on its behalf (see [`Tracking::Proxy`]).
pub(super) fn for_client(payload: &mut Vec<u8>, tracking: Tracking) {
    if tracking == Tracking::Proxy {
        if let Some(plain) = ok::without_session_state(payload) {
            *payload = plain;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting() -> Greeting {
        Greeting {
            server_version: "10.11".into(),
            connection_id: 1,
            caps: 0,
            mariadb_caps: 0,
            auth_plugin: Some("mysql_native_password".into()),
            scramble: vec![3; 20],
            backend_ssl: false,
        }
    }

    #[test]
    fn tracking_is_asked_for_only_with_the_ledger_and_a_server_offering_it() {
        let mut g = greeting();
        let base = caps::CLIENT_PROTOCOL_41;
        let mut p = base.to_le_bytes().to_vec();
        assert_eq!(ask_for_tracking(&mut p, &g, true), Tracking::Off);
        g.caps = caps::CLIENT_SESSION_TRACK;
        assert_eq!(ask_for_tracking(&mut p, &g, false), Tracking::Off);
        assert_eq!(p, base.to_le_bytes(), "untouched");
        assert_eq!(ask_for_tracking(&mut p, &g, true), Tracking::Proxy);
        assert_eq!(p, (base | caps::CLIENT_SESSION_TRACK).to_le_bytes());
        assert_eq!(ask_for_tracking(&mut p, &g, true), Tracking::Client);
    }

    #[test]
    fn only_ok_packets_the_proxy_asked_tracking_for_are_rewritten() {
        let tracked = vec![0, 0, 0, 2, 0x40, 0, 0, 0, 4, 1, 2, 1, b't'];
        let mut p = tracked.clone();
        for_client(&mut p, Tracking::Client);
        assert_eq!(p, tracked);
        for_client(&mut p, Tracking::Proxy);
        assert_eq!(p, [0, 0, 0, 2, 0, 0, 0]);
    }
}
