//! DNS over TLS (RFC 7858), zone transfers over TLS (RFC 9103), DNS over HTTPS (RFC 8484)
//! and DNS over QUIC (RFC 9250).
//!
//! **DNS over TLS** is a TCP connection inside TLS, so it is served by the TCP connection
//! code itself (`net::connection`) on a stream from `tokio-rustls`: the same connection
//! table and limits, the same idle and message timeouts, pipelining, zone transfers to the
//! same `allow-transfer` networks and `transfer-keys` (RFC 9103: XoT), TSIG-signed queries,
//! UPDATE and NOTIFY, and the very octets TCP would send. hickory-server's TLS listener is
//! not used for it: it queues at most 32 responses per request and writes them only after
//! the handler returns, so a transfer of more than about 32 messages cannot be sent, and
//! it re-encodes every response (which a TSIG signature does not survive).
//!
//! **DNS over HTTPS** also runs on that accept loop and connection table: after the TLS
//! handshake, HTTP/2 from the `h2` crate, GET and POST (`doh.rs`).
//!
//! **DNS over QUIC** runs on quinn (the QUIC implementation hickory's `QuicServer` wraps)
//! with hickory's RFC 9250 error codes, and answers each stream's request with the same
//! [`answer`](crate::answer) from the same snapshot, views and ACL, sending those very octets
//! with the Message ID set to 0 (RFC 9250 §4.2.1): the same octets as TCP and DNS over TLS,
//! TSIG signatures included. hickory-server's `QuicServer` is not used: it completes one
//! handshake before it takes the next connection (one silent client stalls all the others,
//! see `quic_endpoint`), and its request handler takes responses only as hickory records
//! to encode itself, which compresses names differently from us.
//!
//! Every listener presents the certificate held by [`Certificates`], which
//! [`Certificates::reload`] replaces for new connections without a restart.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_server::net::quic::DoqErrorCode;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::handler::{Note, Outcome, Transport, answer_noting};
use crate::stats::{Handshake, Listener, Stats, inspect};
use crate::{ServerConfig, Store};

/// Where and with which certificate to serve DNS over TLS and HTTPS.
#[derive(Debug, Clone, Default)]
pub struct EncryptedConfig {
    /// Addresses for DNS over TLS (port 853 by convention).
    pub dot: Vec<SocketAddr>,
    /// Addresses for DNS over HTTPS (port 443 by convention).
    pub doh: Vec<SocketAddr>,
    /// UDP addresses for DNS over QUIC (port 853 by convention).
    pub doq: Vec<SocketAddr>,
    /// The HTTP path of DNS over HTTPS (RFC 8484 §4.1 suggests `/dns-query`).
    pub doh_path: String,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// A connection that completes no TLS handshake (and for DNS over HTTPS no HTTP/2
    /// handshake) within this long is closed; so is a DNS over QUIC connection that sends no
    /// request for this long. DNS over TLS and HTTPS connections are then held to the TCP
    /// idle and message timeouts.
    pub timeout: Duration,
}

impl EncryptedConfig {
    /// Whether any encrypted listener is asked for.
    pub fn enabled(&self) -> bool {
        !self.dot.is_empty() || !self.doh.is_empty() || !self.doq.is_empty()
    }
}

/// The certificate and key every encrypted listener presents, read from their files at
/// startup and again by [`reload`](Self::reload); a handshake takes whichever is current.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl Certificates {
    /// Reads the certificate chain and key (errors name the file and the reason).
    pub fn load(cfg: &EncryptedConfig) -> io::Result<Arc<Self>> {
        let current = ArcSwap::from_pointee(read_certified_key(&cfg.cert, &cfg.key)?);
        Ok(Arc::new(Self { cert: cfg.cert.clone(), key: cfg.key.clone(), current }))
    }

    /// Reads the files again; new connections get the new certificate, open ones keep
    /// theirs. On error the current certificate stays.
    pub fn reload(&self) -> io::Result<()> {
        let fresh = read_certified_key(&self.cert, &self.key)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }

    /// A TLS acceptor presenting these certificates and offering `alpn` (`dot`: RFC 7858
    /// §3.2 and RFC 9103 §7.1; `h2`: RFC 8484 §5.2).
    pub(crate) fn acceptor(self: &Arc<Self>, alpn: &[u8]) -> io::Result<tokio_rustls::TlsAcceptor> {
        Ok(tokio_rustls::TlsAcceptor::from(self.tls_config(alpn, false)?))
    }

    /// A TLS server configuration presenting these certificates, offering `alpn`; TLS 1.3
    /// only when `tls13` (QUIC needs it).
    fn tls_config(self: &Arc<Self>, alpn: &[u8], tls13: bool) -> io::Result<Arc<rustls::ServerConfig>> {
        let builder = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()));
        let builder = if tls13 {
            builder.with_protocol_versions(&[&rustls::version::TLS13])
        } else {
            builder.with_safe_default_protocol_versions()
        };
        let mut config = builder
            .map_err(|e| io::Error::other(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_certified_key(cert: &std::path::Path, key: &std::path::Path) -> io::Result<CertifiedKey> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", what.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, &e))?;
    if certs.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(private).map_err(|e| bad(key, &e))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| bad(key, &format!("does not match the certificate: {e}")))?;
    Ok(certified)
}

/// Whether a DNS over TLS connection negotiated TLS 1.3, the least RFC 9103 §9 allows for
/// zone transfers (ordinary queries are answered over TLS 1.2 as well).
pub(crate) fn transfers_allowed<S>(tls: &tokio_rustls::server::TlsStream<S>) -> bool {
    tls.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
}

/// On a connection below TLS 1.3: the REFUSED answer to `msg` if it asks for a zone transfer
/// (AXFR, IXFR), logged and counted; `None` for anything else. A signed request is refused
/// signed, as `xfr` refuses one from a network not allowed.
pub(crate) fn refuse_transfer(msg: &[u8], peer: std::net::IpAddr, cfg: &ServerConfig) -> Option<Vec<u8>> {
    use r53dns_proto::tsig::{self, Verified};
    use r53dns_proto::wire::{self, Request};
    use r53dns_zone::rtype;
    if !matches!(wire::question_type(msg), Some(rtype::AXFR | rtype::IXFR)) {
        return None;
    }
    let mut req = Request::empty();
    wire::read_request(msg, &mut req).ok()?;
    if req.opcode() != 0 {
        return None;
    }
    crate::logs::refused(crate::logs::Refusal::TransferTlsVersion, |skipped| {
        tracing::info!(%peer, skipped, "zone transfer refused: the TLS connection is older than TLS 1.3 (RFC 9103)");
    });
    let now = tsig::now();
    if let Some(Verified::Signed(mut signer)) =
        r53dns_proto::message::parse(msg).map(|p| tsig::verify(&cfg.tsig_keys, msg, &p, now))
    {
        let mut m = crate::xfr::start(&req, true, wire::rcode::REFUSED);
        // A header and a question: the signature always fits.
        if signer.sign(&mut m, now).is_ok() {
            return Some(m);
        }
    }
    let mut out = Vec::new();
    let mut note = Note::default();
    crate::handler::refuse(msg, &cfg.answer, &mut out, &mut note);
    Some(out)
}

/// Listeners bound at startup (so a taken port is a startup error), then served with the
/// rest of the server.
pub struct EncryptedListeners {
    pub(crate) dot: Vec<tokio::net::TcpListener>,
    doh: Vec<tokio::net::TcpListener>,
    doq: Vec<tokio::net::UdpSocket>,
    pub(crate) certs: Arc<Certificates>,
}

impl std::fmt::Debug for EncryptedListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedListeners")
            .field("dot", &self.dot)
            .field("doh", &self.doh)
            .field("doq", &self.doq)
            .finish()
    }
}

impl EncryptedListeners {
    /// Loads the certificate and binds every address.
    pub fn bind(cfg: &EncryptedConfig) -> io::Result<Self> {
        let certs = Certificates::load(cfg)?;
        let listen = |addrs: &[SocketAddr]| -> io::Result<Vec<tokio::net::TcpListener>> {
            addrs.iter().map(|a| tokio::net::TcpListener::from_std(crate::net::tcp_listener(*a)?)).collect()
        };
        let doq = cfg
            .doq
            .iter()
            .map(|a| {
                let s = std::net::UdpSocket::bind(a).map_err(|e| io::Error::new(e.kind(), format!("UDP {a}: {e}")))?;
                s.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(s)
            })
            .collect::<io::Result<_>>()?;
        Ok(Self { dot: listen(&cfg.dot)?, doh: listen(&cfg.doh)?, doq, certs })
    }

    /// The bound DNS over QUIC addresses.
    pub fn quic_addrs(&self) -> Vec<SocketAddr> {
        self.doq.iter().filter_map(|s| s.local_addr().ok()).collect()
    }

    /// The bound addresses: (DNS over TLS, DNS over HTTPS).
    pub fn local_addrs(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let addrs = |l: &[tokio::net::TcpListener]| l.iter().filter_map(|l| l.local_addr().ok()).collect();
        (addrs(&self.dot), addrs(&self.doh))
    }
}

/// Serves DNS over QUIC until `shutdown` (DNS over TLS and HTTPS are served by `net`'s
/// accept loop): a quinn endpoint per socket, a task per connection from its first packet
/// (so handshakes run side by side), and on every stream of a connection, one after the
/// other, our answer's octets as they are (RFC 9250 §4.2).
pub(crate) async fn serve_quic(
    doq: Vec<tokio::net::UdpSocket>,
    certs: Arc<Certificates>,
    store: Store,
    server: ServerConfig,
    stats: Arc<Stats>,
    slots: Arc<crate::slots::Slots>,
    shutdown: CancellationToken,
) {
    let mut listeners = tokio::task::JoinSet::new();
    for s in doq {
        let local = s.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        // RFC 9250 §4.1.1: ALPN "doq"; QUIC itself requires TLS 1.3.
        let endpoint = certs.tls_config(b"doq", true).and_then(|tls| quic_endpoint(s, tls));
        let endpoint = match endpoint {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(%local, error = %e, "cannot serve DNS over QUIC");
                continue;
            }
        };
        let handler = Arc::new(Handler { store: store.clone(), cfg: server.clone(), stats: stats.clone(), local });
        listeners.spawn(accept_quic(endpoint, handler, server.encrypted.timeout, slots.clone(), shutdown.clone()));
    }
    while listeners.join_next().await.is_some() {}
}

/// A QUIC endpoint on `socket` for DNS over QUIC. quinn, the QUIC implementation
/// hickory's `QuicServer` wraps, used directly: hickory 0.26's `QuicServer::next` completes
/// one handshake before it takes the next connection, so a client that sends one Initial
/// packet and falls silent held every other DoQ client up (measured: 16 s for the next
/// client's first answer with one such packet ahead of it, 28 s with three).
fn quic_endpoint(socket: tokio::net::UdpSocket, tls: Arc<rustls::ServerConfig>) -> io::Result<quinn::Endpoint> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(io::Error::other)?;
    let mut transport = quinn::TransportConfig::default();
    // RFC 9250 §4.2: a query and its answer on a client-initiated bidirectional stream;
    // no unidirectional streams and no datagrams.
    transport.max_concurrent_uni_streams(0u32.into());
    transport.datagram_receive_buffer_size(None);
    transport.datagram_send_buffer_size(0);
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport));
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket.into_std()?,
        Arc::new(quinn::TokioRuntime),
    )
}

/// Takes QUIC connections on one endpoint until `shutdown`. A connection holds a slot in
/// the connection table TCP, DoT and DoH use from its first packet (the same caps per
/// client network and overall, the same eviction of the longest-idle connection), and is
/// served by its own task: handshake (within `timeout`), then its streams.
async fn accept_quic(
    endpoint: quinn::Endpoint,
    handler: Arc<Handler>,
    timeout: Duration,
    slots: Arc<crate::slots::Slots>,
    shutdown: CancellationToken,
) {
    use crate::logs::{Refusal, refused};
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        let peer = incoming.remote_address();
        match slots.admit(peer.ip(), &shutdown) {
            Ok((slot, evicted)) => {
                if evicted {
                    handler.stats.tcp_evicted();
                }
                handler.stats.tcp_open(slots.open());
                let (handler, slots) = (handler.clone(), slots.clone());
                connections.spawn(async move {
                    let connection = tokio::select! {
                        () = slot.close.cancelled() => None,
                        c = tokio::time::timeout(timeout, incoming) => match c {
                            Ok(Ok(c)) => Some(c),
                            Ok(Err(e)) => {
                                handler.stats.handshake_failed(Listener::Doq, Handshake::Failed, peer, &e);
                                None
                            }
                            Err(_) => {
                                let e = "no QUIC handshake within the TLS timeout";
                                handler.stats.handshake_failed(Listener::Doq, Handshake::TimedOut, peer, &e);
                                None
                            }
                        },
                    };
                    if let Some(c) = connection {
                        quic_connection(&c, peer, &handler, timeout, &slot).await;
                    }
                    drop(slot);
                    handler.stats.tcp_open(slots.open());
                });
            }
            Err(why) => {
                let (why, what) = match why {
                    crate::slots::Refused::Network => {
                        (Refusal::TcpNetworkLimit, "its network (/24, /56) holds its share of connections")
                    }
                    crate::slots::Refused::Full => (Refusal::TcpFull, "every connection is busy"),
                };
                refused(why, |skipped| tracing::warn!(%peer, skipped, "DNS over QUIC connection refused: {what}"));
                incoming.refuse();
            }
        }
        // Reap the connections that ended.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
    endpoint.close(DoqErrorCode::NoError.into(), b"");
}

/// Answers the streams of one QUIC connection, one at a time, until the client closes it,
/// opens no stream (or sends no query on one) for `timeout`, sends a request with a
/// Message ID other than 0, or `slot` is told to close (evicted, or the server stops).
async fn quic_connection(
    connection: &quinn::Connection,
    peer: SocketAddr,
    handler: &Handler,
    timeout: Duration,
    slot: &crate::slots::Slot,
) {
    let close = |code: DoqErrorCode| connection.close(code.into(), b"");
    loop {
        slot.idle();
        let next = tokio::select! {
            () = slot.close.cancelled() => return close(DoqErrorCode::NoError),
            next = tokio::time::timeout(timeout, connection.accept_bi()) => next,
        };
        let (mut send, mut recv) = match next {
            Ok(Ok(stream)) => stream,
            // Closed by the client, or broken.
            Ok(Err(_)) => return,
            Err(_) => return close(DoqErrorCode::NoError),
        };
        slot.busy();
        let msg = match tokio::time::timeout(timeout, r53dns_proto::frame::read(&mut recv)).await {
            Ok(Ok(msg)) => msg,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "cannot read a DNS over QUIC request");
                let _ = send.reset(DoqErrorCode::ProtocolError.into());
                continue;
            }
            Err(_) => return close(DoqErrorCode::NoError),
        };
        if msg.get(..2).is_some_and(|id| id != [0, 0]) {
            // RFC 9250 §4.2.1: a DoQ Message ID is 0; anything else is a protocol error
            // that ends the connection (§4.3.3).
            crate::logs::refused(crate::logs::Refusal::DoqMessageId, |skipped| {
                tracing::info!(%peer, skipped, "DNS over QUIC request with a Message ID other than 0: connection closed (RFC 9250)");
            });
            return close(DoqErrorCode::ProtocolError);
        }
        // Zone transfers (XoQ, RFC 9250 §4.2): every message of the transfer on the
        // request's stream, each behind its length, then the end of the stream. QUIC is TLS
        // 1.3, so RFC 9103 §9 holds; who may transfer is decided as over TCP (xfr.rs).
        let transfer = {
            let snapshot = handler.store.load();
            crate::xfr::respond(snapshot.zones_for(Some(peer.ip())), &msg, peer.ip(), &handler.cfg)
        };
        if let Some(messages) = transfer {
            // Each message within the TCP idle timeout, as over TCP: a client that does not
            // read its transfer loses the connection.
            let limit = handler.cfg.tcp_idle_timeout;
            for mut m in messages {
                // The Message ID is 0 (§4.2.1); a TSIG signature holds (Original ID).
                if let Some(id) = m.get_mut(..2) {
                    id.copy_from_slice(&[0, 0]);
                }
                match tokio::time::timeout(limit, r53dns_proto::frame::send(&mut send, &m)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "cannot send a zone transfer over QUIC");
                        break;
                    }
                    Err(_) => return close(DoqErrorCode::NoError),
                }
            }
            let _ = send.finish();
            continue;
        }
        let Some(out) = handler.answer(&msg, peer) else {
            // Not a query we answer (a response, a runt): the stream is reset (RFC 9250 §4.3.3).
            let _ = send.reset(DoqErrorCode::ProtocolError.into());
            continue;
        };
        let sent = async {
            r53dns_proto::frame::send(&mut send, &out).await?;
            send.finish().map_err(io::Error::other)
        };
        match tokio::time::timeout(timeout, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "cannot send a DNS over QUIC response"),
            Err(_) => return close(DoqErrorCode::NoError),
        }
    }
}

/// Takes the encrypted listeners apart: DNS over TLS and HTTPS for `net`, QUIC for
/// [`serve_quic`].
#[allow(clippy::type_complexity)] // a tuple of the fields, taken apart at once
pub(crate) fn split(
    l: EncryptedListeners,
) -> (Vec<tokio::net::TcpListener>, Vec<tokio::net::TcpListener>, Vec<tokio::net::UdpSocket>, Arc<Certificates>) {
    (l.dot, l.doh, l.doq, l.certs)
}

struct Handler {
    store: Store,
    cfg: ServerConfig,
    stats: Arc<Stats>,
    /// The (first) QUIC address, as dnstap's response address.
    local: SocketAddr,
}

impl Handler {
    /// Our answer to `msg` from `peer`, or `None` when there is none to send.
    fn answer(&self, msg: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        answer(Listener::Doq, msg, (peer, self.local), &self.store, &self.cfg, &self.stats)
    }
}

/// The answer to `msg` over DoH or DoQ, `via` (`None`: no answer is due): the octets TCP
/// would send (ACL refusals, signed queries answered signed), padded when the query was
/// (RFC 8467), with the Message ID 0 over QUIC (RFC 9250 §4.2.1); counted, sized and
/// sent to dnstap as sent. DoT answers on the TCP connection loop, which pads the same way.
pub(crate) fn answer(
    via: Listener,
    msg: &[u8],
    (peer, local): (SocketAddr, SocketAddr),
    store: &Store,
    cfg: &ServerConfig,
    stats: &Stats,
) -> Option<Vec<u8>> {
    let started = std::time::Instant::now();
    let received = std::time::SystemTime::now();
    let tap = stats.tap.as_deref().filter(|t| t.sampled());
    if let Some(tap) = tap {
        tap.query(via.into(), peer, local, received, msg);
    }
    let mut out = Vec::with_capacity(1024);
    let mut note = Note::default();
    let outcome = if !crate::net::query_allowed(cfg, peer.ip()) {
        crate::handler::refuse(msg, &cfg.answer, &mut out, &mut note)
    } else {
        let snapshot = store.load();
        let zones = snapshot.zones_for(Some(peer.ip()));
        let o = answer_noting(zones, msg, Transport::Tcp, &cfg.answer, Some(peer.ip()), &mut out, &mut note);
        let o = if note.tsig {
            // A signed query: the answer signed (sent as it is, but for a DoQ ID).
            crate::signed::answer(zones, msg, Transport::Tcp, cfg, peer.ip(), &mut out, &mut note)
        } else {
            o
        };
        if o == Outcome::Respond {
            stats.zone_query(&snapshot, zones, msg);
        }
        o
    };
    if outcome == Outcome::Drop {
        stats.dropped(via);
        return None;
    }
    if note.padding {
        crate::handler::pad(&mut out);
    }
    // RFC 9250 §4.2.1: the Message ID is 0. A TSIG signature holds: it is made over the
    // query's ID, which it carries as its Original ID (RFC 8945 §4.3.1).
    if via == Listener::Doq
        && let Some(id) = out.get_mut(..2)
    {
        id.copy_from_slice(&[0, 0]);
    }
    stats.sized(via, msg.len(), out.len(), note.dnssec_ok);
    if let Some(tap) = tap {
        // Our answer's octets, as sent.
        tap.response(via.into(), peer, local, received, std::time::SystemTime::now(), &out);
    }
    stats.answered(via, inspect(&out, note.qtype, note.ext_rcode), started.elapsed());
    Some(out)
}
