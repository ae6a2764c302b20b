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
//! **DNS over QUIC** runs on hickory-server's listener (QUIC, stream framing and their
//! timeouts are its own): each request arrives as raw octets, is answered by the same
//! [`answer`](crate::answer) from the same snapshot, views and ACL, and our response is read
//! back into hickory's message type for it to encode: the same records, sections and
//! flags, names possibly compressed differently. A TSIG-signed answer would not survive
//! that (the MAC covers our octets), so it is signed again over hickory's encoding of it.
//!
//! Every listener presents the certificate held by [`Certificates`], which
//! [`Certificates::reload`] replaces for new connections without a restart.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::dnstap::Proto;
use crate::handler::{Note, Outcome, Transport, answer_noting};
use crate::stats::{Listener, Stats, inspect};
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
    use crate::tsig::{self, Verified};
    use crate::wire::{self, Request};
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
        crate::message::parse(msg).map(|p| tsig::verify(&cfg.tsig_keys, msg, &p, now))
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

/// Serves DNS over QUIC on hickory-server until `shutdown` (DNS over TLS and HTTPS are
/// served by `net`'s accept loop).
pub(crate) async fn serve_quic(
    doq: Vec<tokio::net::UdpSocket>,
    certs: Arc<Certificates>,
    cfg: &EncryptedConfig,
    store: Store,
    server: ServerConfig,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    if doq.is_empty() {
        return;
    }
    let local = doq.first().and_then(|s| s.local_addr().ok()).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut hickory = hickory_server::Server::new(Handler { store, cfg: server, stats, local });
    for s in doq {
        // RFC 9250 §4.1.1: ALPN "doq"; QUIC itself requires TLS 1.3.
        let registered = certs.tls_config(b"doq", true).and_then(|tls| {
            hickory.register_quic_listener_and_tls_config(s, cfg.timeout, tls).map_err(io::Error::other)
        });
        if let Err(e) = registered {
            tracing::error!(error = %e, "cannot serve DNS over QUIC");
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

/// Takes the encrypted listeners apart: DNS over TLS and HTTPS for `net`, QUIC for hickory.
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
    /// Our answer to `msg` from `peer`, or `None` to say SERVFAIL.
    fn answer(&self, msg: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let via = Listener::Doq;
        let started = std::time::Instant::now();
        let received = std::time::SystemTime::now();
        let tap = self.stats.tap.as_deref().filter(|t| t.sampled());
        if let Some(tap) = tap {
            tap.query(Proto::Doq, peer, self.local, received, msg);
        }
        let mut out = Vec::with_capacity(1024);
        let mut note = Note::default();
        let outcome = if !crate::net::query_allowed(&self.cfg, peer.ip()) {
            crate::handler::refuse(msg, &self.cfg.answer, &mut out, &mut note)
        } else {
            let snapshot = self.store.load();
            let zones = snapshot.zones_for(Some(peer.ip()));
            let o = answer_noting(zones, msg, Transport::Tcp, &self.cfg.answer, Some(peer.ip()), &mut out, &mut note);
            let o = if note.tsig {
                // Signed here; signed again over hickory's encoding when sent (`resign`).
                crate::signed::answer(zones, msg, Transport::Tcp, &self.cfg, peer.ip(), &mut out, &mut note)
            } else {
                o
            };
            if o == Outcome::Respond {
                self.stats.zone_query(&snapshot, zones, msg);
            }
            o
        };
        if outcome == Outcome::Drop {
            self.stats.dropped(via);
            return None;
        }
        self.stats.sized(via, msg.len(), out.len(), note.dnssec_ok);
        if let Some(tap) = tap {
            // Our answer's octets; hickory re-encodes them (same content) for the wire.
            tap.response(Proto::Doq, peer, self.local, received, std::time::SystemTime::now(), &out);
        }
        self.stats.answered(via, inspect(&out, note.qtype, note.ext_rcode), started.elapsed());
        Some(out)
    }
}

impl Handler {
    /// The TSIG record signing `response` as hickory will encode it, when `request` carries
    /// a good signature (RFC 8945 §5.3: the MAC covers the response's octets, and hickory's
    /// encoding of our answer may compress names differently from ours). `None` when the
    /// request's signature is not good: the TSIG error record we wrote carries no MAC over the
    /// message and goes out as it is.
    fn resign<'a>(
        &self,
        request: &[u8],
        response: hickory_server::zone_handler::MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Option<Record> {
        let now = crate::tsig::now();
        let parsed = crate::message::parse(request)?;
        let crate::tsig::Verified::Signed(mut signer) = crate::tsig::verify(&self.cfg.tsig_keys, request, &parsed, now)
        else {
            return None;
        };
        let mut octets = Vec::with_capacity(1024);
        let mut encoder = hickory_server::proto::serialize::binary::BinEncoder::new(&mut octets);
        response.destructive_emit(&mut encoder).ok()?;
        signer.sign(&mut octets, now).ok()?;
        additional_records(&Message::from_vec(&octets).ok()?).1
    }
}

/// Our answer `m` to `request` for hickory to encode, `extra` as its additional section and
/// `tsig` (if any) last, `edns` written by hickory after `extra`.
fn response_to<'q, 'a>(
    request: &'q Request,
    m: &'a Message,
    extra: &'a [Record],
    tsig: Option<&'a Record>,
    edns: Option<&'q hickory_server::proto::op::Edns>,
) -> hickory_server::zone_handler::MessageResponse<
    'q,
    'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
> {
    let mut metadata = m.metadata;
    // RFC 9250 §4.2.1, as hickory's QUIC handler sets it.
    metadata.id = 0;
    let mut b = MessageResponseBuilder::from_message_request(request);
    if let Some(e) = edns {
        b.edns(e);
    }
    b.build(metadata, m.answers.iter(), m.authorities.iter(), std::iter::empty(), extra.iter().chain(tsig))
}

/// The additional records of `m` but OPT and TSIG, and its TSIG record.
fn additional_records(m: &Message) -> (Vec<Record>, Option<Record>) {
    use hickory_server::proto::rr::{RData, RecordType};
    let mut tsig = m.signature.as_deref().cloned().and_then(|s| s.map(|t| Some(RData::TSIG(t))));
    let mut extra = Vec::with_capacity(m.additionals.len() + 1);
    for r in &m.additionals {
        if r.record_type() == RecordType::TSIG {
            tsig = Some(r.clone());
        } else {
            extra.push(r.clone());
        }
    }
    (extra, tsig)
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let ours = self.answer(request.as_slice(), request.src()).and_then(|o| Message::from_vec(&o).ok());
        let sent = match &ours {
            Some(m) => {
                let (extra, tsig) = additional_records(m);
                match tsig {
                    None => response.send_response(response_to(request, m, &extra, None, m.edns.as_ref())).await,
                    Some(tsig) => {
                        // hickory encodes OPT after the additional records it is given, and a
                        // TSIG record must come last (RFC 8945 §5.1): so OPT goes in as a
                        // record, and the TSIG after it, made anew over hickory's octets.
                        let extra: Vec<Record> = extra.into_iter().chain(m.edns.as_ref().map(Record::from)).collect();
                        let build = |tsig| response_to(request, m, &extra, tsig, None);
                        let fresh = self.resign(request.as_slice(), build(None));
                        // A TSIG error (no MAC over the message) goes out as we wrote it.
                        response.send_response(build(Some(fresh.as_ref().unwrap_or(&tsig)))).await
                    }
                }
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
