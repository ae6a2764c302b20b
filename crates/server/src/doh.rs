//! DNS over HTTPS (RFC 8484): HTTP/2 from the `h2` crate over a TLS stream from the TCP
//! accept loop (ALPN `h2`), so a DoH connection holds a slot of the same connection table as
//! TCP and DNS over TLS.
//!
//! Both request forms are taken: `GET <path>?dns=<base64url>` and `POST <path>` with an
//! `application/dns-message` body. Each message is answered by [`answer`](crate::answer)
//! like a TCP query (TSIG-signed queries answered signed), and the response is sent as
//! those very octets, with `Cache-Control: max-age` from the answer's TTLs (RFC 8484 §5.1;
//! none on errors). hickory-server's DoH listener is not used: hickory 0.26 refuses GET
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

use crate::stats::{Handshake, Listener, Stats};
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
    local: SocketAddr,
}

/// Serves one DNS over HTTPS connection (TLS already done) until the client closes it, it
/// stays idle for the TCP idle timeout, or `slot` is told to close.
pub(crate) async fn connection(
    io: impl AsyncRead + AsyncWrite + Unpin,
    (peer, local): (SocketAddr, SocketAddr),
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
        Ok(Err(e)) => {
            stats.handshake_failed(Listener::Doh, Handshake::Failed, peer, &e);
            return Err(std::io::Error::other(e));
        }
        Err(_) => {
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP/2 handshake");
            stats.handshake_failed(Listener::Doh, Handshake::TimedOut, peer, &e);
            return Err(e);
        }
    };
    let shared = Shared { store: store.clone(), cfg: cfg.clone(), stats: stats.clone(), peer, local };
    // POSTs whose body is still on its way. Everything happens in this one task, so a
    // response's HEADERS and DATA go out together (the `h2` connection writes when polled).
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        if pending.is_empty() {
            slot.idle();
        }
        let deadline = pending.iter().map(|p| p.deadline).min();
        tokio::select! {
            // Bodies that arrived first: their answers go out before more requests are read.
            biased;
            (i, msg) = std::future::poll_fn(|cx| poll_pending(&mut pending, cx)), if !pending.is_empty() => {
                let p = pending.swap_remove(i);
                reply(msg, p.respond, &shared);
            }
            next = tokio::time::timeout(cfg.tcp_idle_timeout, conn.accept()), if pending.len() < MAX_STREAMS as usize => {
                match next {
                    Ok(Some(Ok((request, respond)))) if request.method() == Method::POST => {
                        match post_body(request, cfg) {
                            Posted::Now(msg) => reply(msg, respond, &shared),
                            Posted::Later(body, msg, refused) => {
                                slot.busy();
                                let deadline = tokio::time::Instant::now() + cfg.tcp_message_timeout;
                                pending.push(Pending { body, msg, refused, respond, deadline });
                            }
                        }
                    }
                    Ok(Some(Ok((request, respond)))) => reply(read_get(&request, cfg), respond, &shared),
                    Ok(Some(Err(e))) => return Err(std::io::Error::other(e)),
                    Ok(None) => return Ok(()),
                    // Idle: no new stream for the idle timeout.
                    Err(_) if pending.is_empty() => break,
                    Err(_) => {}
                }
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {}
            () = slot.close.cancelled() => break,
        }
    }
    // Let the client know, and give what is in flight a moment to be written.
    conn.graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(1), std::future::poll_fn(|cx| conn.poll_closed(cx))).await;
    Ok(())
}

/// Sends the answer to `msg`, or the HTTP status that refused it; never panics.
fn reply(msg: Result<Vec<u8>, StatusCode>, mut respond: SendResponse<Bytes>, shared: &Shared) {
    let (status, body) = match msg {
        Ok(msg) => match answer(&msg, shared) {
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
        if let Some(ttl) = freshness(b) {
            response = response.header(http::header::CACHE_CONTROL, CacheControl(ttl));
        }
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
}

/// `max-age=N`, written without allocating a string first.
struct CacheControl(u32);

impl TryFrom<CacheControl> for http::HeaderValue {
    type Error = http::header::InvalidHeaderValue;
    fn try_from(c: CacheControl) -> Result<Self, Self::Error> {
        let mut buf = [0u8; 24];
        let mut n = buf.len();
        let mut v = c.0;
        loop {
            n -= 1;
            buf[n] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let prefix = b"max-age=";
        n -= prefix.len();
        buf[n..n + prefix.len()].copy_from_slice(prefix);
        http::HeaderValue::from_bytes(&buf[n..])
    }
}

/// How long an HTTP cache may keep `response` (RFC 8484 §5.1): the smallest TTL of its
/// answer section; with no answer (a negative answer, RFC 2308 §5), the SOA's in the
/// authority section, the lesser of its TTL and its MINIMUM field; a referral's, the
/// smallest TTL of its authority section. `None` (no `Cache-Control`) for an error (SERVFAIL,
/// REFUSED, FORMERR, NOTIMP, ...), which must not be kept, and for anything that does not parse.
fn freshness(response: &[u8]) -> Option<u32> {
    const SOA: u16 = 6;
    let header = response.get(..12)?;
    let rcode = header[3] & 0x0f;
    // NOERROR and NXDOMAIN only (RFC 2308 §7: a server failure is not cached for long, and
    // these answers carry no TTL to say how long).
    if rcode != 0 && rcode != 3 {
        return None;
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (questions, answers, authority) = (count(4), count(6), count(8));
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(response, at)? + 4;
    }
    let mut least: Option<u32> = None;
    for i in 0..answers + authority {
        at = skip_name(response, at)?;
        let fixed = response.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let mut ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = response.get(at + 10..at + 10 + len)?;
        at += 10 + len;
        if i >= answers {
            if answers > 0 {
                break;
            }
            if rtype == SOA {
                // MINIMUM is the last field, after two names and four other numbers.
                let end = skip_name(rdata, skip_name(rdata, 0)?)?;
                let min = rdata.get(end + 16..end + 20)?;
                ttl = ttl.min(u32::from_be_bytes([min[0], min[1], min[2], min[3]]));
            }
        }
        least = Some(least.map_or(ttl, |l| l.min(ttl)));
    }
    least
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2).filter(|&e| e <= msg.len()),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// The DNS message of a request other than POST, or the HTTP status that refuses it.
fn read_get(request: &Request<RecvStream>, cfg: &ServerConfig) -> Result<Vec<u8>, StatusCode> {
    if request.uri().path() != cfg.encrypted.doh_path {
        return Err(StatusCode::NOT_FOUND);
    }
    if request.method() != Method::GET {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    // RFC 8484 §4.1: base64url without padding; padding is forgiven.
    let query = request.uri().query().unwrap_or("");
    let value = query.split('&').find_map(|p| p.strip_prefix("dns=")).ok_or(StatusCode::BAD_REQUEST)?;
    let value = value.trim_end_matches('=');
    if value.len() > MAX_MESSAGE.div_ceil(3) * 4 {
        return Err(StatusCode::URI_TOO_LONG);
    }
    data_encoding::BASE64URL_NOPAD.decode(value.as_bytes()).map_err(|_| StatusCode::BAD_REQUEST)
}

/// A POST's message: complete now, or the body still to be read and what came so far.
enum Posted {
    Now(Result<Vec<u8>, StatusCode>),
    Later(RecvStream, Vec<u8>, Option<StatusCode>),
}

/// The DNS message of a POST request (its body), or the HTTP status that refuses it, as far
/// as it has arrived: usually whole, in the same read as the request's headers.
fn post_body(request: Request<RecvStream>, cfg: &ServerConfig) -> Posted {
    // A refused request's body is still read (and dropped) before the answer: a response
    // before the end of the request makes h2 reset the stream, which clients take for an
    // error rather than the status.
    let media = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let refused = if request.uri().path() != cfg.encrypted.doh_path {
        Some(StatusCode::NOT_FOUND)
    } else if media.map(|m| m.split(';').next().unwrap_or("").trim()) != Some(DNS_MESSAGE) {
        Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
    } else {
        None
    };
    let mut body = request.into_body();
    let mut msg = Vec::new();
    // Take what is buffered without waiting (a no-op waker: a pending body is polled again,
    // with a real one, by `poll_pending`).
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if body.is_end_stream() {
            return Posted::Now(settle(refused, msg));
        }
        match body.poll_data(&mut cx) {
            std::task::Poll::Ready(Some(Ok(chunk))) => {
                if let Err(status) = take(&mut body, &mut msg, &chunk, refused.is_some()) {
                    return Posted::Now(Err(status));
                }
            }
            std::task::Poll::Ready(Some(Err(_))) => return Posted::Now(Err(StatusCode::BAD_REQUEST)),
            std::task::Poll::Ready(None) => return Posted::Now(settle(refused, msg)),
            std::task::Poll::Pending => return Posted::Later(body, msg, refused),
        }
    }
}

/// A whole body's outcome: its message, or the status decided from the headers.
fn settle(refused: Option<StatusCode>, msg: Vec<u8>) -> Result<Vec<u8>, StatusCode> {
    match refused {
        Some(status) => Err(status),
        None => Ok(msg),
    }
}

/// Appends a body chunk to `msg` (unless `discard`) and gives its flow-control window back.
fn take(body: &mut RecvStream, msg: &mut Vec<u8>, chunk: &[u8], discard: bool) -> Result<(), StatusCode> {
    let _ = body.flow_control().release_capacity(chunk.len());
    if discard {
        return Ok(());
    }
    if msg.len() + chunk.len() > MAX_MESSAGE {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    msg.extend_from_slice(chunk);
    Ok(())
}

/// A POST whose body has not all arrived.
struct Pending {
    body: RecvStream,
    msg: Vec<u8>,
    /// The status to answer once the body is in, when the headers refused the request.
    refused: Option<StatusCode>,
    respond: SendResponse<Bytes>,
    /// Slow senders get REQUEST_TIMEOUT after the TCP message timeout.
    deadline: tokio::time::Instant,
}

/// The first pending POST whose body is complete (or refused, or late), with its message.
fn poll_pending(
    pending: &mut [Pending],
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<(usize, Result<Vec<u8>, StatusCode>)> {
    use std::task::Poll;
    let now = tokio::time::Instant::now();
    for (i, p) in pending.iter_mut().enumerate() {
        loop {
            if p.body.is_end_stream() {
                return Poll::Ready((i, settle(p.refused, std::mem::take(&mut p.msg))));
            }
            match p.body.poll_data(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Err(status) = take(&mut p.body, &mut p.msg, &chunk, p.refused.is_some()) {
                        return Poll::Ready((i, Err(status)));
                    }
                }
                Poll::Ready(Some(Err(_))) => return Poll::Ready((i, Err(StatusCode::BAD_REQUEST))),
                Poll::Ready(None) => return Poll::Ready((i, settle(p.refused, std::mem::take(&mut p.msg)))),
                Poll::Pending => break,
            }
        }
        if now >= p.deadline {
            return Poll::Ready((i, Err(StatusCode::REQUEST_TIMEOUT)));
        }
    }
    Poll::Pending
}

/// Our answer to `msg`, as TCP would give it (`None`: no answer is due).
fn answer(msg: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    crate::encrypted::answer(Listener::Doh, msg, (shared.peer, shared.local), &shared.store, &shared.cfg, &shared.stats)
}
