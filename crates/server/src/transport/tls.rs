//! TLS of the server (issue 15 item 16): a PEM certificate chain and private key, served with
//! rustls (TLS 1.2 and 1.3, the ring provider that reqwest, kube and object_store already use)
//! and read again when the files change, so that a renewed certificate — cert-manager's, or a
//! Secret updated in place — is served to new connections without a restart.
//!
//! The files are polled, not watched: Kubernetes updates a mounted Secret by swapping a
//! symlink, which a path watch misses, and reading two small files every few seconds costs
//! nothing. A new pair is taken only when both files parse and the key matches the
//! certificate; otherwise the pair in use stays and the error is logged once per change.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// Where the certificate and key are, and how often to look for new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM: the server's certificate first, then any intermediates.
    pub cert_path: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key_path: PathBuf,
    pub reload_interval: Duration,
}

impl TlsConfig {
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> TlsConfig {
        TlsConfig {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            reload_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: no PEM private key in it (expected -----BEGIN PRIVATE KEY----- or an RSA/EC key)", .0.display())]
    NoKey(PathBuf),
    #[error("{}: {message}", .path.display())]
    Pem { path: PathBuf, message: String },
    #[error("the key {} does not fit the certificate {}: {message}", .key.display(), .cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate in use, swapped in place when the files change.
pub struct TlsCerts {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// SHA-256 of the (certificate, key) files last read: unchanged files are not parsed
    /// again, and a bad pair is reported once.
    seen: Mutex<[u8; 32]>,
}

impl fmt::Debug for TlsCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCerts")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TlsCerts {
    /// Loads the pair; an error here stops the server from starting.
    pub fn load(config: TlsConfig) -> Result<Arc<TlsCerts>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert, key) = read_pair(&config)?;
        let digest = digest(&cert, &key);
        let certified = parse_pair(&config, &cert, &key, &provider)?;
        Ok(Arc::new(TlsCerts {
            config,
            provider,
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(digest),
        }))
    }

    pub fn config(&self) -> &TlsConfig {
        &self.config
    }

    /// Reads the files again: `Ok(true)` = a new pair is now served, `Ok(false)` = the files
    /// did not change (or changed to a pair already reported bad), `Err` = the new files are
    /// not a valid pair and the previous one stays in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let (cert, key) = read_pair(&self.config)?;
        let digest = digest(&cert, &key);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == digest {
                return Ok(false);
            }
            *seen = digest;
        }
        let certified = parse_pair(&self.config, &cert, &key, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        Ok(true)
    }

    /// The rustls configuration: TLS 1.3 and 1.2, no client certificates, ALPN `h2` then
    /// `http/1.1`, the certificate from `self` at each handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Polls the files every `reload_interval` until the returned task is dropped/aborted.
    pub(crate) async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // A read error (a file briefly missing during an update) is reported once, not at
        // every tick.
        let mut last_read_error: Option<String> = None;
        loop {
            tick.tick().await;
            match self.reload() {
                Ok(true) => {
                    last_read_error = None;
                    tracing::info!(
                        cert = %self.config.cert_path.display(),
                        "TLS certificate reloaded; new connections get the new one"
                    );
                }
                Ok(false) => last_read_error = None,
                Err(e @ TlsError::Read { .. }) => {
                    let msg = e.to_string();
                    if last_read_error.as_deref() != Some(&msg) {
                        tracing::error!(
                            "TLS certificate not reloaded, still serving the previous one: {msg}"
                        );
                        last_read_error = Some(msg);
                    }
                }
                Err(e) => {
                    tracing::error!(
                        "TLS certificate not reloaded, still serving the previous one: {e}"
                    )
                }
            }
        }
    }
}

impl ResolvesServerCert for TlsCerts {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_pair(config: &TlsConfig) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    Ok((read(&config.cert_path)?, read(&config.key_path)?))
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_le_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

fn parse_pair(
    config: &TlsConfig,
    cert: &[u8],
    key: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem_err = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&config.cert_path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(config.cert_path.clone()));
    }
    let key = match PrivateKeyDer::from_pem_slice(key) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey(config.key_path.clone()));
        }
        Err(e) => return Err(pem_err(&config.key_path, e)),
    };
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Mismatch {
        cert: config.cert_path.clone(),
        key: config.key_path.clone(),
        message: e.to_string(),
    })
}
