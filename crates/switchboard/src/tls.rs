//! TLS for the whole process, on rustls with the ring provider: the provider's one-time
//! set-up ([`install_crypto_provider`]) for every client the gateway builds, and the
//! termination of the API listener (`api.tls: {cert_file, key_file}`).
//!
//! Handshakes run beside the accept loop, not in it: a client that connects and never
//! finishes its handshake holds only its own slot, for at most [`HANDSHAKE_TIMEOUT`], and
//! every other connection is accepted meanwhile.
//! Must not: read or log key material beyond loading it (errors name the file, never its
//! contents), or know what is served over the connections it accepts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
pub use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many handshakes at once per listener; past it, accepting waits.
const MAX_PENDING_HANDSHAKES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("api.tls.cert_file: {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("api.tls.key_file: {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("api.tls: the certificate and key do not make a TLS server: {0}")]
    Server(#[from] rustls::Error),
}

/// Makes ring rustls's process-wide provider, once: the worker client (`workers::http`),
/// the guarded client (`net::guard`) and reqwest's clients build their TLS from it, and
/// without one installed rustls panics on a process that links two providers.
pub fn install_crypto_provider() {
    // Err only means another part of the process installed one first: fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The acceptor for `api.tls`: the certificate chain and private key read from their PEM
/// files. Every problem names the file and what is wrong with it (never the key itself).
/// Takes the paths, not the config section, so that this module sits below `config` and
/// `net` can use its crypto provider.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    let certificates = read_certificates(cert_file)?;
    let key = read_key(key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let failed = |reason: String| TlsError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(pem_reason(&e)))?;
    if certificates.is_empty() {
        return Err(failed("no PEM certificate in the file".into()));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: pem_reason(&e),
    })
}

/// What went wrong reading a PEM file, without its contents.
fn pem_reason(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in the file".into(),
        _ => "not a readable PEM file".into(),
    }
}

/// A handshake under way: the connection once it is done, `None` if it failed.
type Handshake = BoxFuture<'static, Option<(TlsStream<TcpStream>, SocketAddr)>>;

/// A TCP listener whose connections are TLS streams once their handshake is done.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: FuturesUnordered<Handshake>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        Self {
            tcp,
            acceptor,
            handshakes: FuturesUnordered::new(),
        }
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let acceptor = self.acceptor.clone();
        self.handshakes.push(Box::pin(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some((tls, peer)),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    None
                }
            }
        }));
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let accepting = self.handshakes.len() < MAX_PENDING_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if accepting => match accepted {
                    Ok((stream, peer)) => self.start_handshake(stream, peer),
                    Err(e) => {
                        // Not the listener's end (a connection reset before it was taken,
                        // no file descriptors left); the wait keeps a lasting one from
                        // spinning.
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(connection) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
