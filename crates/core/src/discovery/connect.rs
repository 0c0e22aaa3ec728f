//! One attempt at a ZooKeeper session: the connector with `[zookeeper.auth]`
//! and `[zookeeper.tls]`, bounded by `zookeeper.connect_timeout`. With TLS
//! every server of the connect string is reached over TLS, and a failed
//! attempt is explained by [`diagnose`](super::diagnose). [`attempt`] is
//! shared with the operator commands.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::{Client, Connector};

use super::diagnose::{diagnose, Diagnosis};
use super::DiscoveryError;
use crate::config::ZookeeperConfig;
use crate::tls::ZkTls;

/// How an attempt ended without a session.
pub enum Failed {
    Zk(zookeeper_client::Error),
    Timeout,
    /// With TLS: what the handshake with each server said.
    Tls(Diagnosis),
}

/// Connect with `connector`, over TLS to every server when `tls` is given,
/// bounded by `bound`; with TLS a failure is diagnosed (within `bound` too).
pub async fn attempt(
    mut connector: Connector,
    connect: &str,
    tls: Option<&ZkTls>,
    bound: Duration,
) -> Result<Client, Failed> {
    if let Some(tls) = tls {
        // zookeeper-client builds its rustls config with the process default.
        crate::tls::install_default_provider();
        connector = connector.with_tls(tls.options());
    }
    let secure = tls.is_some();
    let session = async move {
        match secure {
            // Servers without a scheme (all of them: validation) use TLS.
            true => connector.secure_connect(connect).await,
            false => connector.connect(connect).await,
        }
    };
    let failed = match tokio::time::timeout(bound, session).await {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(source)) => Failed::Zk(source),
        Err(_) => Failed::Timeout,
    };
    let Some(tls) = tls else {
        return Err(failed);
    };
    Err(diagnose(tls, connect, bound)
        .await
        .map_or(failed, Failed::Tls))
}

/// Establish discovery's session. `shared` is the proxy's TLS material
/// (kept current by its reloads); without it, enabled TLS is read from the
/// files here.
pub(super) async fn open(
    cfg: &ZookeeperConfig,
    shared: Option<&Arc<ZkTls>>,
) -> Result<Client, DiscoveryError> {
    let tls = match (cfg.tls.enabled, shared) {
        (false, _) => None,
        (true, Some(tls)) => Some(tls.clone()),
        (true, None) => Some(Arc::new(
            ZkTls::from_config(&cfg.tls).map_err(DiscoveryError::TlsFiles)?,
        )),
    };
    let mut connector = Client::connector()
        .with_session_timeout(cfg.session_timeout)
        .with_fail_eagerly();
    if let Some(auth) = &cfg.auth {
        let credentials = auth
            .digest_credentials()
            .map_err(DiscoveryError::Credentials)?;
        connector = connector.with_auth("digest", credentials.expose().as_bytes());
    }
    let connect = cfg.connect.clone();
    match attempt(connector, &cfg.connect, tls.as_deref(), cfg.connect_timeout).await {
        Ok(client) => Ok(client),
        Err(Failed::Zk(source)) => Err(DiscoveryError::Connect { connect, source }),
        Err(Failed::Timeout) => Err(DiscoveryError::ConnectTimeout {
            connect,
            after: cfg.connect_timeout,
        }),
        Err(Failed::Tls(diagnosis)) => Err(DiscoveryError::Tls { connect, diagnosis }),
    }
}
