//! HTTPS with rustls: certificate and key from PEM files, reloaded when the
//! files change, optional client-certificate verification (mTLS), HTTP/2 and
//! HTTP/1.1 negotiated by ALPN.
//!
//! [`TlsReloader`] holds the `rustls::ServerConfig` in force. A background
//! task re-reads the files every `reload_interval`; when their contents
//! changed and they load, the new config is used for connections accepted
//! from then on. Established connections keep the certificate they were
//! set up with. Files that fail to load (for example a certificate written
//! before its key) keep the previous config and log an error.
//!
//! [`serve`] accepts TCP connections, runs each TLS handshake in its own task
//! (a slow client does not hold up others), and serves the router over
//! hyper's HTTP/1.1 + HTTP/2 connection builder with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct TlsOptions {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs.
    pub client_ca_file: Option<PathBuf>,
    pub reload_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client CA: {0}")]
    ClientCa(String),
}

/// The TLS configuration in force, and the fingerprint of the files it came from.
pub struct TlsReloader {
    options: TlsOptions,
    current: RwLock<Arc<ServerConfig>>,
    last_seen: Mutex<[u8; 32]>,
}

impl TlsReloader {
    /// Loads the files; failing to load them is an error at start-up.
    pub fn new(options: TlsOptions) -> Result<TlsReloader, TlsError> {
        let (bytes, fingerprint) = read_files(&options)?;
        let config = build_config(&options, &bytes)?;
        Ok(TlsReloader {
            options,
            current: RwLock::new(Arc::new(config)),
            last_seen: Mutex::new(fingerprint),
        })
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read())
    }

    /// Reloads if the files' contents changed since last seen.
    pub fn reload_if_changed(&self) {
        let (bytes, fingerprint) = match read_files(&self.options) {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, "cannot read TLS files, keeping the current certificate");
                return;
            }
        };
        let mut last = self.last_seen.lock();
        if *last == fingerprint {
            return;
        }
        *last = fingerprint;
        match build_config(&self.options, &bytes) {
            Ok(config) => {
                *self.current.write() = Arc::new(config);
                tracing::info!(cert_file = %self.options.cert_file.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "invalid TLS files, keeping the current certificate");
            }
        }
    }

    fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(this.options.reload_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let reloader = Arc::clone(&this);
                let _ = tokio::task::spawn_blocking(move || reloader.reload_if_changed()).await;
            }
        })
    }
}

struct FileBytes {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_files(options: &TlsOptions) -> Result<(FileBytes, [u8; 32]), TlsError> {
    let bytes = FileBytes {
        cert: read(&options.cert_file)?,
        key: read(&options.key_file)?,
        client_ca: options.client_ca_file.as_deref().map(read).transpose()?,
    };
    let mut hasher = Sha256::new();
    for part in [
        Some(&bytes.cert),
        Some(&bytes.key),
        bytes.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    Ok((bytes, hasher.finalize().into()))
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            message: "no certificate found".into(),
        });
    }
    Ok(certs)
}

fn build_config(options: &TlsOptions, bytes: &FileBytes) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&options.cert_file, &bytes.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&bytes.key).map_err(|e| TlsError::Pem {
        path: options.key_file.clone(),
        message: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match (&options.client_ca_file, &bytes.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path, pem)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` over TLS until `stop` resolves, then waits (bounded) for
/// in-flight connections to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<TlsReloader>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reloader = tls.spawn_reloader();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let acceptor = TlsAcceptor::from(tls.current());
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        let response = app.oneshot(request.map(axum::body::Body::new)).await;
                        Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
                    }
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    reloader.abort();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}
