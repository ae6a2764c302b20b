//! DNS over HTTPS (RFC 8484): HTTP/2 from the `h2` crate over a TLS stream from the TCP
//! accept loop (ALPN `h2`), so a DoH connection holds a slot of the same connection table as
//! TCP and DNS over TLS.
//!
//! Both request forms are taken: `GET <path>?dns=<base64url>` and `POST <path>` with an
//! `application/dns-message` body. Each message is answered by [`answer`](crate::answer)
//! like a TCP query (TSIG-signed queries answered signed), and the response is sent as
//! those very octets. hickory-server's DoH listener is not used: hickory 0.26 refuses GET
//! (`hickory_net::h2::message_from` answers "GET unimplemented", and its request check
//! demands a `Content-Type` that a GET does not carry), and its listener owns the socket,
//! so nothing can be put in front of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

use crate::handler::{Note, Outcome, Transport, answer_noting};
use crate::stats::{Listener, Stats, inspect};
use crate::{ServerConfig, Store};

/// The media type of DNS messages (RFC 8484 §6).
const DNS_MESSAGE: &str = "application/dns-message";
/// HTTP/2 streams a client may have open at once on one connection.
const MAX_STREAMS: u32 = 100;
/// The largest DNS message (and so request body) taken.
const MAX_MESSAGE: usize = 65_535;

/// What the requests of one connection share.
struct Shared {
    store: Store,
    cfg: ServerConfig,
    stats: Arc<Stats>,
    peer: SocketAddr,
}

/// Serves one DNS over HTTPS connection (TLS already done) until the client closes it, it
/// stays idle for the TCP idle timeout, or `slot` is told to close.
pub(crate) async fn connection(
    io: impl AsyncRead + AsyncWrite + Unpin,
    peer: SocketAddr,
    store: &Store,
    cfg: &ServerConfig,
    slot: &crate::slots::Slot,
    stats: &Arc<Stats>,
) -> std::io::Result<()> {
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(16 * 1024)
        .handshake::<_, Bytes>(io);
    let mut conn = match tokio::time::timeout(cfg.encrypted.timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(std::io::Error::other(e)),
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP/2 handshake")),
    };
    let shared = Arc::new(Shared { store: store.clone(), cfg: cfg.clone(), stats: stats.clone(), peer });
    let mut requests = JoinSet::new();
    loop {
        if requests.is_empty() {
            slot.idle();
        }
        tokio::select! {
            next = tokio::time::timeout(cfg.tcp_idle_timeout, conn.accept()), if requests.len() < MAX_STREAMS as usize => {
                match next {
                    Ok(Some(Ok((request, respond)))) => {
                        slot.busy();
                        requests.spawn(respond_to(request, respond, shared.clone()));
                    }
                    Ok(Some(Err(e))) => return Err(std::io::Error::other(e)),
                    Ok(None) => return Ok(()),
                    // Idle: no new stream for the idle timeout.
                    Err(_) if requests.is_empty() => break,
                    Err(_) => {}
                }
            }
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
            () = slot.close.cancelled() => break,
        }
    }
    // Let the client know, and give what is in flight a moment to be written.
    conn.graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(1), std::future::poll_fn(|cx| conn.poll_closed(cx))).await;
    Ok(())
}

/// Answers one request; every failure is an HTTP status, never a panic.
async fn respond_to(request: Request<RecvStream>, mut respond: SendResponse<Bytes>, shared: Arc<Shared>) {
    let started = std::time::Instant::now();
    let (status, body) = match read_message(request, &shared.cfg).await {
        Ok(msg) => match answer(&msg, &shared) {
            Some(out) => (StatusCode::OK, Some(out)),
            // Not a query (a response, a runt): nothing to answer.
            None => (StatusCode::BAD_REQUEST, None),
        },
        Err(status) => (status, None),
    };
    let mut response = Response::builder().status(status);
    if let Some(b) = &body {
        response =
            response.header(http::header::CONTENT_TYPE, DNS_MESSAGE).header(http::header::CONTENT_LENGTH, b.len());
    }
    let Ok(response) = response.body(()) else { return };
    match respond.send_response(response, body.is_none()) {
        Ok(mut stream) => {
            if let Some(b) = body {
                let _ = stream.send_data(Bytes::from(b), true);
            }
        }
        Err(e) => tracing::debug!(peer = %shared.peer, error = %e, "cannot send a DNS over HTTPS response"),
    }
    tracing::trace!(peer = %shared.peer, ?status, took = ?started.elapsed(), "DNS over HTTPS request");
}

/// The DNS message of a request, or the HTTP status that refuses it.
async fn read_message(request: Request<RecvStream>, cfg: &ServerConfig) -> Result<Vec<u8>, StatusCode> {
    if request.uri().path() != cfg.encrypted.doh_path {
        return Err(StatusCode::NOT_FOUND);
    }
    match *request.method() {
        Method::GET => {
            // RFC 8484 §4.1: base64url without padding; padding is forgiven.
            let query = request.uri().query().unwrap_or("");
            let value = query.split('&').find_map(|p| p.strip_prefix("dns=")).ok_or(StatusCode::BAD_REQUEST)?;
            let value = value.trim_end_matches('=');
            if value.len() > MAX_MESSAGE.div_ceil(3) * 4 {
                return Err(StatusCode::URI_TOO_LONG);
            }
            data_encoding::BASE64URL_NOPAD.decode(value.as_bytes()).map_err(|_| StatusCode::BAD_REQUEST)
        }
        Method::POST => {
            let media = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            if media.map(|m| m.split(';').next().unwrap_or("").trim()) != Some(DNS_MESSAGE) {
                return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            let mut body = request.into_body();
            let mut msg = Vec::new();
            let read = async {
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
                    let _ = body.flow_control().release_capacity(chunk.len());
                    if msg.len() + chunk.len() > MAX_MESSAGE {
                        return Err(StatusCode::PAYLOAD_TOO_LARGE);
                    }
                    msg.extend_from_slice(&chunk);
                }
                Ok(())
            };
            match tokio::time::timeout(cfg.tcp_message_timeout, read).await {
                Ok(Ok(())) => Ok(msg),
                Ok(Err(status)) => Err(status),
                Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
            }
        }
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// Our answer to `msg`, as TCP would give it (`None`: no answer is due).
fn answer(msg: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    let started = std::time::Instant::now();
    let (cfg, peer) = (&shared.cfg, shared.peer.ip());
    let mut out = Vec::with_capacity(1024);
    let mut note = Note::default();
    let outcome = if !crate::net::query_allowed(cfg, peer) {
        crate::handler::refuse(msg, &cfg.answer, &mut out, &mut note)
    } else {
        let snapshot = shared.store.load();
        let zones = snapshot.zones_for(Some(peer));
        let o = answer_noting(zones, msg, Transport::Tcp, &cfg.answer, Some(peer), &mut out, &mut note);
        if note.tsig { crate::signed::answer(zones, msg, Transport::Tcp, cfg, peer, &mut out, &mut note) } else { o }
    };
    if outcome == Outcome::Drop {
        shared.stats.dropped(Listener::Doh);
        return None;
    }
    shared.stats.answered(Listener::Doh, inspect(&out, note.qtype, note.ext_rcode), started.elapsed());
    Some(out)
}
