//! Socket settings shared by both sides of the proxy: the listener's
//! accepted client connections and the backend's connections to primaries.
//! A leaf: it uses no other module of the crate.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// TCP keepalive with `idle` before the first probe ("0s" = leave it off).
pub(crate) fn set_keepalive(sock: &TcpStream, idle: Duration) {
    if idle.is_zero() {
        return;
    }
    let ka = TcpKeepalive::new()
        .with_time(idle)
        .with_interval(idle.min(Duration::from_secs(10)));
    if let Err(e) = SockRef::from(sock).set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keepalive_is_set_with_its_idle_time_or_left_off() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let on = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        set_keepalive(&on, Duration::from_secs(42));
        let s = SockRef::from(&on);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
        let off = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        set_keepalive(&off, Duration::ZERO);
        assert!(!SockRef::from(&off).keepalive().unwrap());
    }
}
