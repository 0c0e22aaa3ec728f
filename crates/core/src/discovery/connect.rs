//! Every ZooKeeper session of the crate is established here, by [`open`]:
//! discovery's (from `[zookeeper]`), the operator commands' and the drill's
//! (from their `--zk*` flags) and the sandbox's. One attempt, bounded, with
//! optional digest credentials (`[zookeeper.auth]`) and optional TLS to every
//! server of the connect string (`[zookeeper.tls]`); a failed TLS attempt is
//! explained by [`diagnose`](super::diagnose).
//!
//! It lives in `discovery` because the TLS diagnosis does, and every caller
//! (ops, drill, sandbox) sits above discovery in the layering
//! (docs/architecture.md, Layers and modules).

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::Client;

use super::diagnose::{diagnose, Diagnosis};
use super::DiscoveryError;
use crate::config::{ConfigError, ZkAuth, ZookeeperConfig};
use crate::tls::ZkTls;

/// What a session is established with.
#[derive(Clone, Copy)]
pub struct SessionSpec<'a> {
    /// `host:port[,host:port...][/chroot]`; with `tls`, every server uses TLS.
    pub connect: &'a str,
    /// Session timeout negotiated with the server.
    pub session_timeout: Duration,
    /// Bound on establishing the session (and on the TLS diagnosis after).
    pub connect_timeout: Duration,
    /// Idle time after which a connection counts as lost, also the bound on
    /// connecting to one server; `None`: 2/5 of the session timeout.
    pub connection_timeout: Option<Duration>,
    /// Digest credentials (`user:password`) sent when the session starts.
    pub auth: Option<&'a ZkAuth>,
    /// TLS material; `None`: plain connections.
    pub tls: Option<&'a ZkTls>,
}

impl<'a> SessionSpec<'a> {
    /// A plain session to `connect` without credentials.
    pub fn new(connect: &'a str, session_timeout: Duration, connect_timeout: Duration) -> Self {
        SessionSpec {
            connect,
            session_timeout,
            connect_timeout,
            connection_timeout: None,
            auth: None,
            tls: None,
        }
    }
}

/// Why no session was established (the ZooKeeper or TLS cause is kept).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot establish a ZooKeeper session with {connect:?}: {source}")]
    Connect {
        connect: String,
        #[source]
        source: zookeeper_client::Error,
    },
    #[error("no ZooKeeper session with {connect:?} within {after:?}")]
    Timeout { connect: String, after: Duration },
    /// With TLS: what the handshake with each server said.
    #[error("cannot establish a ZooKeeper session with {connect:?} over TLS: {diagnosis}")]
    Tls {
        connect: String,
        #[source]
        diagnosis: Diagnosis,
    },
    /// The password of the digest credentials could not be read.
    #[error("ZooKeeper credentials: {0}")]
    Credentials(#[source] ConfigError),
}

/// Establish one session as `spec` says, failing instead of retrying past
/// the servers listed or past `spec.connect_timeout`. The password is read
/// (file, environment) at each call.
pub async fn open(spec: &SessionSpec<'_>) -> Result<Client, ConnectError> {
    let mut connector = Client::connector()
        .with_session_timeout(spec.session_timeout)
        .with_fail_eagerly();
    if let Some(idle) = spec.connection_timeout {
        connector = connector.with_connection_timeout(idle);
    }
    if let Some(auth) = spec.auth {
        let credentials = auth
            .digest_credentials()
            .map_err(ConnectError::Credentials)?;
        connector = connector.with_auth("digest", credentials.expose().as_bytes());
    }
    if let Some(tls) = spec.tls {
        // zookeeper-client builds its rustls config with the process default.
        crate::tls::install_default_provider();
        connector = connector.with_tls(tls.options());
    }
    let (connect, bound) = (spec.connect, spec.connect_timeout);
    let session = async move {
        match spec.tls {
            // Servers without a scheme (all of them: validation) use TLS.
            Some(_) => connector.secure_connect(connect).await,
            None => connector.connect(connect).await,
        }
    };
    let failed = match tokio::time::timeout(bound, session).await {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(source)) => ConnectError::Connect {
            connect: connect.to_owned(),
            source,
        },
        Err(_) => ConnectError::Timeout {
            connect: connect.to_owned(),
            after: bound,
        },
    };
    let Some(tls) = spec.tls else {
        return Err(failed);
    };
    match diagnose(tls, connect, bound).await {
        Some(diagnosis) => Err(ConnectError::Tls {
            connect: connect.to_owned(),
            diagnosis,
        }),
        None => Err(failed),
    }
}

/// Establish discovery's session. `shared` is the proxy's TLS material
/// (kept current by its reloads); without it, enabled TLS is read from the
/// files here.
pub(crate) async fn open_discovery(
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
    let spec = SessionSpec {
        auth: cfg.auth.as_ref(),
        tls: tls.as_deref(),
        ..SessionSpec::new(&cfg.connect, cfg.session_timeout, cfg.connect_timeout)
    };
    Ok(open(&spec).await?)
}
