//! TLS material: the client-side acceptor (`[listen.tls]`) and the
//! backend-side connector (`[backend.tls]`), built from PEM files with the
//! ring provider and swapped whole at a reload (a bad file keeps the old).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{BackendTlsConfig, Config, ConfigError, ListenTlsConfig};

/// A TLS file or setting that cannot be used; [`TlsError::key`] names the config key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path:?}: {source}")]
    Pem {
        key: &'static str,
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path:?}: no certificate in the file")]
    Empty { key: &'static str, path: String },
    #[error("{source}")]
    Rustls {
        key: &'static str,
        #[source]
        source: rustls::Error,
    },
    #[error("{0:?} is not a DNS name or IP address")]
    ServerName(String),
}

impl TlsError {
    /// The config key whose value failed.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Pem { key, .. }
            | TlsError::Empty { key, .. }
            | TlsError::Rustls { key, .. } => key,
            TlsError::ServerName(_) => "backend.tls.server_name",
        }
    }
}

impl From<TlsError> for ConfigError {
    fn from(e: TlsError) -> Self {
        crate::config::invalid(e.key(), e.to_string())
    }
}

fn certs(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        key,
        path: path.into(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            key,
            path: path.into(),
        });
    }
    Ok(certs)
}

fn private_key(key: &'static str, path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        key,
        path: path.into(),
        source,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side of client TLS, from `[listen.tls]`.
pub fn server_config(cfg: &ListenTlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certs("listen.tls.cert", &cfg.cert)?;
    let key = private_key("listen.tls.key", &cfg.key)?;
    let rustls = |source| TlsError::Rustls {
        key: "listen.tls.key",
        source,
    };
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rustls)?;
    Ok(Arc::new(config))
}

/// The client side of backend TLS, from `[backend.tls]`.
pub fn client_config(cfg: &BackendTlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in certs("backend.tls.ca", &cfg.ca)? {
        roots.add(ca).map_err(|source| TlsError::Rustls {
            key: "backend.tls.ca",
            source,
        })?;
    }
    if !cfg.server_name.is_empty() {
        ServerName::try_from(cfg.server_name.clone())
            .map_err(|_| TlsError::ServerName(cfg.server_name.clone()))?;
    }
    let rustls = |key| move |source| TlsError::Rustls { key, source };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls("backend.tls.ca"))?
        .with_root_certificates(roots);
    let config = if cfg.cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = certs("backend.tls.cert", &cfg.cert)?;
        let key = private_key("backend.tls.key", &cfg.key)?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(rustls("backend.tls.key"))?
    };
    Ok(Arc::new(config))
}

/// How sessions connect to primaries with TLS.
pub struct BackendTls {
    pub connector: TlsConnector,
    /// Fixed name to verify, else the primary's host.
    server_name: Option<String>,
}

impl BackendTls {
    /// The name the primary at `host` must present.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName(name.into()))
    }
}

/// The TLS material in force; sessions take it once per connection.
#[derive(Default)]
pub struct TlsState {
    acceptor: ArcSwapOption<TlsAcceptor>,
    backend: ArcSwapOption<BackendTls>,
}

impl TlsState {
    pub fn from_config(cfg: &Config) -> Result<TlsState, TlsError> {
        let state = TlsState::default();
        state.reload(cfg)?;
        Ok(state)
    }

    /// Read the files named by `cfg` again; on an error nothing changes.
    pub fn reload(&self, cfg: &Config) -> Result<(), TlsError> {
        let acceptor = match cfg.listen.tls.enabled() {
            true => Some(Arc::new(TlsAcceptor::from(server_config(&cfg.listen.tls)?))),
            false => None,
        };
        let b = &cfg.backend.tls;
        let backend = match b.enabled {
            true => Some(Arc::new(BackendTls {
                connector: TlsConnector::from(client_config(b)?),
                server_name: (!b.server_name.is_empty()).then(|| b.server_name.clone()),
            })),
            false => None,
        };
        self.acceptor.store(acceptor);
        self.backend.store(backend);
        Ok(())
    }

    pub fn acceptor(&self) -> Option<Arc<TlsAcceptor>> {
        self.acceptor.load_full()
    }

    pub fn backend(&self) -> Option<Arc<BackendTls>> {
        self.backend.load_full()
    }
}
