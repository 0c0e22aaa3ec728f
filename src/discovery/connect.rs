//! One attempt at a ZooKeeper session: the connector with `[zookeeper.auth]`
//! and `[zookeeper.tls]`, bounded by `zookeeper.connect_timeout`. With TLS
//! every server of the connect string is reached over TLS, and a failed
//! attempt is explained by [`diagnose`](super::diagnose).

use std::sync::Arc;

use zookeeper_client::Client;

use super::diagnose::diagnose;
use super::DiscoveryError;
use crate::config::ZookeeperConfig;
use crate::tls::ZkTls;

/// Establish a session. `shared` is the proxy's TLS material (kept current
/// by its reloads); without it, enabled TLS is read from the files here.
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
    if let Some(tls) = &tls {
        // zookeeper-client builds its rustls config with the process default.
        crate::tls::install_default_provider();
        connector = connector.with_tls(tls.options());
    }
    let secure = tls.is_some();
    let attempt = async move {
        match secure {
            // Servers without a scheme (all of them: validation) use TLS.
            true => connector.secure_connect(&cfg.connect).await,
            false => connector.connect(&cfg.connect).await,
        }
    };
    let failed = match tokio::time::timeout(cfg.connect_timeout, attempt).await {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(source)) => DiscoveryError::Connect {
            connect: cfg.connect.clone(),
            source,
        },
        Err(_) => DiscoveryError::ConnectTimeout {
            connect: cfg.connect.clone(),
            after: cfg.connect_timeout,
        },
    };
    let Some(tls) = tls else {
        return Err(failed);
    };
    match diagnose(&tls, &cfg.connect, cfg.connect_timeout).await {
        Some(diagnosis) => Err(DiscoveryError::Tls {
            connect: cfg.connect.clone(),
            diagnosis,
        }),
        None => Err(failed),
    }
}
