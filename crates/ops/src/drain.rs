//! Waiting for the drain acknowledgements: every proxy registered under
//! `<cluster>/proxies/` (docs/architecture.md, ZooKeeper contract) writes
//! `"drained_epoch": E` once it has drained for the `draining` record of
//! epoch E. The set is re-read on every poll: a proxy whose session ended no
//! longer counts, one that registered meanwhile must acknowledge too. None
//! registered = done.

use std::time::Duration;

use serde::Serialize;
use zookeeper_client::Client;

use super::zk::{children_data, ZkOpError};
use mysql_zk_proxy_core::discovery::register::registration_path;

/// Pause between polls of the registrations.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// One registered proxy as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyAck {
    pub id: String,
    /// `listen` from its registration (what clients connect to).
    pub listen: String,
    /// Acknowledged the drain for the epoch waited for (or a later one).
    pub acked: bool,
}

/// The registrations when the wait ended.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Drained {
    pub proxies: Vec<ProxyAck>,
    /// Every registered proxy acknowledged (true when none is registered).
    pub complete: bool,
}

/// `<cluster>/proxies`, the parent of every registration.
pub(crate) fn proxies_dir(primary_path: &str) -> String {
    let one = registration_path(primary_path, "x");
    one[..one.len() - 2].to_owned()
}

/// Poll until every registered proxy acknowledged `epoch` or `timeout` passed.
pub(crate) async fn wait_for_acks(
    client: &Client,
    primary_path: &str,
    epoch: u64,
    timeout: Duration,
) -> Result<Drained, ZkOpError> {
    let dir = proxies_dir(primary_path);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let proxies: Vec<ProxyAck> = children_data(client, &dir)
            .await?
            .into_iter()
            .map(|(id, data)| ack(id, &data, epoch))
            .collect();
        let complete = proxies.iter().all(|p| p.acked);
        if complete || tokio::time::Instant::now() >= deadline {
            return Ok(Drained { proxies, complete });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A registration's data judged against `epoch` (unreadable = not acknowledged).
fn ack(id: String, data: &[u8], epoch: u64) -> ProxyAck {
    let v: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    ProxyAck {
        id,
        listen: v["listen"].as_str().unwrap_or_default().to_owned(),
        acked: v["drained_epoch"].as_u64().is_some_and(|e| e >= epoch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_live_beside_the_primary_znode() {
        assert_eq!(
            proxies_dir("/mysql/clusters/main/primary"),
            "/mysql/clusters/main/proxies"
        );
    }

    #[test]
    fn acknowledgement_needs_the_epoch_or_a_later_one() {
        let d = |s: &str| ack("p".into(), s.as_bytes(), 5);
        assert!(d(r#"{"id":"p","listen":"a:1","drained_epoch":5}"#).acked);
        assert!(d(r#"{"id":"p","listen":"a:1","drained_epoch":6}"#).acked);
        assert!(!d(r#"{"id":"p","listen":"a:1","drained_epoch":4}"#).acked);
        assert!(!d(r#"{"id":"p","listen":"a:1","drained_epoch":null}"#).acked);
        assert!(!d("garbage").acked);
        assert_eq!(d(r#"{"listen":"a:1"}"#).listen, "a:1");
    }
}
