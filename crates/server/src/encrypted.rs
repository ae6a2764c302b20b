//! DNS over TLS (RFC 7858) and over HTTPS (RFC 8484), on hickory-server's listeners: it
//! owns TLS, HTTP/2, connection handling and their timeouts; every request it reads comes
//! here as raw octets and is answered by the same [`answer`](crate::answer) as UDP and TCP,
//! from the same snapshot, views, ACL and TSIG keys.
//!
//! hickory-server sends responses it encodes itself, so our response is read back into its
//! message type and re-encoded: the same records, sections and flags, names possibly
//! compressed differently. A TSIG-signed answer would not survive that (the MAC covers our
//! octets), so signed requests are answered REFUSED here and belong on plain TCP, where
//! zone transfers and UPDATE also stay.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use rustls::server::ResolvesServerCert;
use tokio_util::sync::CancellationToken;

use crate::handler::{Note, Outcome, Transport, answer_noting};
use crate::stats::{Stats, inspect};
use crate::{ServerConfig, Store};

/// Where and with which certificate to serve DNS over TLS and HTTPS.
#[derive(Debug, Clone, Default)]
pub struct EncryptedConfig {
    /// Addresses for DNS over TLS (port 853 by convention).
    pub dot: Vec<SocketAddr>,
    /// Addresses for DNS over HTTPS (port 443 by convention).
    pub doh: Vec<SocketAddr>,
    /// The HTTP path of DNS over HTTPS (RFC 8484 §4.1 suggests `/dns-query`).
    pub doh_path: String,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// A connection that completes no TLS handshake or sends no request for this long is
    /// closed.
    pub timeout: Duration,
}

impl EncryptedConfig {
    /// Whether any encrypted listener is asked for.
    pub fn enabled(&self) -> bool {
        !self.dot.is_empty() || !self.doh.is_empty()
    }
}

/// Reads the certificate chain and key (errors name the file and the reason).
pub fn load_certificate(cfg: &EncryptedConfig) -> io::Result<Arc<dyn ResolvesServerCert>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", what.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| bad(&cfg.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&cfg.cert, &e))?;
    if certs.is_empty() {
        return Err(bad(&cfg.cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| bad(&cfg.key, &e))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).map_err(|e| bad(&cfg.key, &e))?;
    let certified = rustls::sign::CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| bad(&cfg.key, &format!("does not match the certificate: {e}")))?;
    Ok(Arc::new(rustls::sign::SingleCertAndKey::from(certified)))
}

/// Listeners bound at startup (so a taken port is a startup error), then served with the
/// rest of the server.
pub struct EncryptedListeners {
    dot: Vec<tokio::net::TcpListener>,
    doh: Vec<tokio::net::TcpListener>,
    cert: Arc<dyn ResolvesServerCert>,
}

impl std::fmt::Debug for EncryptedListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedListeners").field("dot", &self.dot).field("doh", &self.doh).finish()
    }
}

impl EncryptedListeners {
    /// Loads the certificate and binds every address.
    pub fn bind(cfg: &EncryptedConfig) -> io::Result<Self> {
        let cert = load_certificate(cfg)?;
        let listen = |addrs: &[SocketAddr]| -> io::Result<Vec<tokio::net::TcpListener>> {
            addrs.iter().map(|a| tokio::net::TcpListener::from_std(crate::net::tcp_listener(*a)?)).collect()
        };
        Ok(Self { dot: listen(&cfg.dot)?, doh: listen(&cfg.doh)?, cert })
    }

    /// The bound addresses: (DNS over TLS, DNS over HTTPS).
    pub fn local_addrs(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let addrs = |l: &[tokio::net::TcpListener]| l.iter().filter_map(|l| l.local_addr().ok()).collect();
        (addrs(&self.dot), addrs(&self.doh))
    }
}

/// Serves DNS over TLS and HTTPS until `shutdown`.
pub(crate) async fn serve(
    listeners: EncryptedListeners,
    cfg: &EncryptedConfig,
    store: Store,
    server: ServerConfig,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let mut hickory = hickory_server::Server::new(Handler { store, cfg: server, stats });
    for l in listeners.dot {
        if let Err(e) = hickory.register_tls_listener(l, cfg.timeout, listeners.cert.clone()) {
            tracing::error!(error = %e, "cannot serve DNS over TLS");
        }
    }
    for l in listeners.doh {
        if let Err(e) =
            hickory.register_https_listener(l, cfg.timeout, listeners.cert.clone(), None, cfg.doh_path.clone())
        {
            tracing::error!(error = %e, "cannot serve DNS over HTTPS");
        }
    }
    let stop = hickory.shutdown_token().clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stop.cancel();
    });
    if let Err(e) = hickory.block_until_done().await {
        tracing::debug!(error = %e, "encrypted listeners ended");
    }
}

struct Handler {
    store: Store,
    cfg: ServerConfig,
    stats: Arc<Stats>,
}

impl Handler {
    /// Our answer to `msg` from `peer`, or `None` to say SERVFAIL.
    fn answer(&self, msg: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let started = std::time::Instant::now();
        let mut out = Vec::with_capacity(1024);
        let mut note = Note::default();
        let outcome = if !crate::net::query_allowed(&self.cfg, peer.ip()) {
            crate::handler::refuse(msg, &self.cfg.answer, &mut out, &mut note)
        } else {
            let snapshot = self.store.load();
            let zones = snapshot.zones_for(Some(peer.ip()));
            let o = answer_noting(zones, msg, Transport::Tcp, &self.cfg.answer, Some(peer.ip()), &mut out, &mut note);
            if note.tsig {
                // See the module documentation: a signature would not survive re-encoding.
                crate::handler::refuse(msg, &self.cfg.answer, &mut out, &mut note)
            } else {
                o
            }
        };
        if outcome == Outcome::Drop {
            self.stats.dropped(Transport::Tcp);
            return None;
        }
        self.stats.answered(Transport::Tcp, inspect(&out, note.qtype, note.ext_rcode), started.elapsed());
        Some(out)
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let ours = self.answer(request.as_slice(), request.src()).and_then(|o| Message::from_vec(&o).ok());
        let sent = match &ours {
            Some(m) => {
                let mut b = MessageResponseBuilder::from_message_request(request);
                if let Some(e) = &m.edns {
                    b.edns(e);
                }
                let r = b.build(
                    m.metadata,
                    m.answers.iter(),
                    m.authorities.iter(),
                    std::iter::empty(),
                    m.additionals.iter(),
                );
                response.send_response(r).await
            }
            None => {
                let r = MessageResponseBuilder::from_message_request(request)
                    .error_msg(&request.metadata, ResponseCode::ServFail);
                response.send_response(r).await
            }
        };
        match sent {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(peer = %request.src(), error = %e, "cannot send an encrypted response");
                use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata};
                let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
                metadata.response_code = ResponseCode::ServFail;
                Header { metadata, counts: HeaderCounts::default() }.into()
            }
        }
    }
}
