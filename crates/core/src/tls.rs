//! TLS material: the client-side acceptor (`[listen.tls]`), the
//! backend-side connector (`[backend.tls]`) and the ZooKeeper material
//! (`[zookeeper.tls]`, in `zookeeper`), built from PEM files with the ring
//! provider and swapped whole at a reload (a bad file keeps the old).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

mod any_name;
mod config;
mod zookeeper;
pub use config::{BackendTlsConfig, ListenTlsConfig, ZkTlsConfig};
pub use zookeeper::ZkTls;

/// The three TLS sections of the configuration, as [`TlsState`] reads them
/// (`crate::config::Config::tls` lends them).
#[derive(Debug, Clone, Copy)]
pub struct TlsSections<'a> {
    pub listen: &'a ListenTlsConfig,
    pub backend: &'a BackendTlsConfig,
    pub zookeeper: &'a ZkTlsConfig,
}

/// A TLS file or setting that cannot be used; [`TlsError::key`] names the config key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path:?}: {source}")]
    Read {
        key: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
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
    #[error("{source}")]
    Verifier {
        key: &'static str,
        #[source]
        source: VerifierBuilderError,
    },
    /// zookeeper-client refused the material (`[zookeeper.tls]`).
    #[error("{path:?}: {source}")]
    Zookeeper {
        key: &'static str,
        path: String,
        #[source]
        source: zookeeper_client::Error,
    },
    #[error("{0:?} is not a DNS name or IP address")]
    ServerName(String),
    /// A setting that is missing, contradicts another or cannot be used.
    #[error("{problem}")]
    Invalid { key: &'static str, problem: String },
}

impl TlsError {
    /// The config key whose value failed.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. }
            | TlsError::Pem { key, .. }
            | TlsError::Empty { key, .. }
            | TlsError::Rustls { key, .. }
            | TlsError::Verifier { key, .. }
            | TlsError::Zookeeper { key, .. }
            | TlsError::Invalid { key, .. } => key,
            TlsError::ServerName(_) => "backend.tls.server_name",
        }
    }
}

/// A PEM file's text.
fn read_pem(key: &'static str, path: &str) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        key,
        path: path.into(),
        source,
    })
}

/// The certificates in `pem` (the text of `path`); at least one.
fn parse_certs(
    key: &'static str,
    path: &str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            key,
            path: path.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            key,
            path: path.into(),
        });
    }
    Ok(certs)
}

/// The revocation lists in `pem` (the text of `path`); maybe none.
fn parse_crls(
    key: &'static str,
    path: &str,
    pem: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            key,
            path: path.into(),
            source,
        })
}

fn certs(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(key, path, &read_pem(key, path)?)
}

/// The private key in `pem` (the text of `path`).
fn parse_key(key: &'static str, path: &str, pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| TlsError::Pem {
        key,
        path: path.into(),
        source,
    })
}

fn private_key(key: &'static str, path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    parse_key(key, path, &read_pem(key, path)?)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Make ring the process-wide default rustls provider, unless one is
/// installed already (an embedding program's choice is kept). Libraries that
/// build configs with `ClientConfig::builder()` (zookeeper-client, mysql_async)
/// need one: zookeeper-client's TLS brings aws-lc-rs next to ring, and with
/// two providers compiled in rustls will not pick one itself. The proxy's
/// own configs name ring explicitly. Idempotent.
pub fn install_default_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed one meanwhile: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The server side of client TLS, from `[listen.tls]`.
pub(crate) fn server_config(cfg: &ListenTlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
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

/// The config keys a client config comes from (for errors).
struct ClientKeys {
    ca: &'static str,
    key: &'static str,
}

/// A client certificate chain and its key.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// What a client trusts: CA certificates, and revocation lists for them.
struct Trust {
    roots: Vec<CertificateDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

/// A client config (ring) trusting `trust`, presenting `identity` if any;
/// `any_name` accepts a certificate for any name (its chain is verified).
fn client_config_with(
    keys: ClientKeys,
    trust: Trust,
    identity: Option<Identity>,
    any_name: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let rustls = |key| move |source| TlsError::Rustls { key, source };
    let mut store = RootCertStore::empty();
    for ca in trust.roots {
        store.add(ca).map_err(rustls(keys.ca))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
        .with_crls(trust.crls)
        .build()
        .map_err(|source| TlsError::Verifier {
            key: keys.ca,
            source,
        })?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls(keys.ca))?;
    let builder = match any_name {
        true => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(any_name::AnyName(webpki))),
        false => builder.with_webpki_verifier(webpki),
    };
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(rustls(keys.key))?,
    };
    Ok(Arc::new(config))
}

/// The client side of backend TLS, from `[backend.tls]`.
pub(crate) fn client_config(cfg: &BackendTlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let trust = Trust {
        roots: certs("backend.tls.ca", &cfg.ca)?,
        crls: Vec::new(),
    };
    if !cfg.server_name.is_empty() {
        ServerName::try_from(cfg.server_name.clone())
            .map_err(|_| TlsError::ServerName(cfg.server_name.clone()))?;
    }
    let identity = match cfg.cert.is_empty() {
        true => None,
        false => Some((
            certs("backend.tls.cert", &cfg.cert)?,
            private_key("backend.tls.key", &cfg.key)?,
        )),
    };
    let keys = ClientKeys {
        ca: "backend.tls.ca",
        key: "backend.tls.key",
    };
    client_config_with(keys, trust, identity, false)
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
    /// `[zookeeper.tls]` when enabled; whether it is stays as at the start
    /// (`[zookeeper]` needs a restart), its files are read at each reload.
    zookeeper: Option<Arc<ZkTls>>,
}

/// The client and backend material as read, before it is put in force.
struct Loaded {
    acceptor: Option<Arc<TlsAcceptor>>,
    backend: Option<Arc<BackendTls>>,
}

impl Loaded {
    fn read(cfg: TlsSections<'_>) -> Result<Loaded, TlsError> {
        let acceptor = match cfg.listen.enabled() {
            true => Some(Arc::new(TlsAcceptor::from(server_config(cfg.listen)?))),
            false => None,
        };
        let b = cfg.backend;
        let backend = match b.enabled {
            true => Some(Arc::new(BackendTls {
                connector: TlsConnector::from(client_config(b)?),
                server_name: (!b.server_name.is_empty()).then(|| b.server_name.clone()),
            })),
            false => None,
        };
        Ok(Loaded { acceptor, backend })
    }
}

impl TlsState {
    pub fn from_config(cfg: TlsSections<'_>) -> Result<TlsState, TlsError> {
        let Loaded { acceptor, backend } = Loaded::read(cfg)?;
        let zookeeper = match cfg.zookeeper.enabled {
            true => Some(Arc::new(ZkTls::from_config(cfg.zookeeper)?)),
            false => None,
        };
        Ok(TlsState {
            acceptor: ArcSwapOption::new(acceptor),
            backend: ArcSwapOption::new(backend),
            zookeeper,
        })
    }

    /// Read the files named by `cfg` again; on an error nothing changes.
    pub fn reload(&self, cfg: TlsSections<'_>) -> Result<(), TlsError> {
        let loaded = Loaded::read(cfg)?;
        let zookeeper = match &self.zookeeper {
            Some(_) => Some(zookeeper::ZkMaterial::read(cfg.zookeeper)?),
            None => None,
        };
        self.acceptor.store(loaded.acceptor);
        self.backend.store(loaded.backend);
        if let (Some(zk), Some(material)) = (&self.zookeeper, zookeeper) {
            zk.apply(material);
        }
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> Option<Arc<TlsAcceptor>> {
        self.acceptor.load_full()
    }

    pub fn backend(&self) -> Option<Arc<BackendTls>> {
        self.backend.load_full()
    }

    /// The ZooKeeper material discovery connects with (`None`: TLS off).
    pub fn zookeeper(&self) -> Option<Arc<ZkTls>> {
        self.zookeeper.clone()
    }
}
