//! Query capture in the dnstap format (<https://dnstap.info>), sent over the Frame Streams
//! protocol to a UNIX socket or a TCP address, as BIND, Knot, NSD, Unbound and CoreDNS do.
//!
//! The serving path only copies: a listener that captures a query takes a preallocated
//! frame from a lock-free pool (crossbeam's `ArrayQueue`), fills it (addresses, ports,
//! times, the message octets) and pushes it onto a lock-free bounded queue. No allocation,
//! no lock, no system call beyond reading the clock, and it never waits: when the pool is
//! empty (the writer is behind) the frame is dropped and counted. One writer task takes the
//! frames, encodes them as `dnstap.Dnstap` protobuf messages and writes them as data frames;
//! while the receiver is down or being reconnected (with backoff), what arrives is dropped
//! and counted. Drops are logged at most once a second with their number.
//!
//! Frames hold messages of up to [`SMALL`] octets in the main pool; larger ones (TCP answers)
//! come from a smaller pool of 64 KiB frames.
//!
//! The protobuf encoding is written here rather than generated: prost's code generation needs
//! `protoc` at build time, and the fields a server fills are few (two nested messages, about
//! fifteen scalar and octet fields). Writing them by hand into a reused buffer keeps the
//! writer free of per-frame allocations too. `tests/it/dnstap.rs` checks the result with
//! BIND's `dnstap-read`, a protobuf-c decoder generated from the reference `dnstap.proto`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The Frame Streams content type of dnstap.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// Largest message a frame of the main pool holds.
pub const SMALL: usize = 2048;
/// Largest DNS message (TCP).
const LARGE: usize = 65_535;

/// Where dnstap frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnstapTarget {
    /// A UNIX stream socket (e.g. `fstrm_capture -u PATH`, `dnstap -u PATH`).
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl std::str::FromStr for DnstapTarget {
    type Err = String;

    /// `unix:PATH`, an absolute path, or `tcp:ADDRESS:PORT` / `ADDRESS:PORT`.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            return Ok(DnstapTarget::Unix(p.into()));
        }
        if s.starts_with('/') {
            return Ok(DnstapTarget::Unix(s.into()));
        }
        let a = s.strip_prefix("tcp:").unwrap_or(s);
        a.parse().map(DnstapTarget::Tcp).map_err(|_| format!("{s:?} is neither unix:PATH nor tcp:ADDRESS:PORT"))
    }
}

impl std::fmt::Display for DnstapTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnstapTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            DnstapTarget::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Query capture settings (off unless a target is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnstapConfig {
    /// The receiver; `None`: no capture.
    pub target: Option<DnstapTarget>,
    /// Capture one query in this many (1: every query); a sampled query's response is
    /// captured with it.
    pub sample: u32,
    /// Capture queries (`AUTH_QUERY`).
    pub queries: bool,
    /// Capture responses (`AUTH_RESPONSE`).
    pub responses: bool,
    /// Frames waiting for the writer at most; beyond them frames are dropped and counted.
    pub buffer: usize,
}

impl Default for DnstapConfig {
    fn default() -> Self {
        Self { target: None, sample: 1, queries: true, responses: true, buffer: 4096 }
    }
}

/// The dnstap `SocketProtocol` of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Proto {
    /// UDP.
    Udp = 1,
    /// TCP.
    Tcp = 2,
    /// DNS over TLS.
    Dot = 3,
    /// DNS over HTTPS.
    Doh = 4,
    /// DNS over QUIC.
    Doq = 7,
}

impl From<crate::stats::Listener> for Proto {
    fn from(l: crate::stats::Listener) -> Self {
        use crate::stats::Listener;
        match l {
            Listener::Udp => Proto::Udp,
            Listener::Tcp => Proto::Tcp,
            Listener::Dot => Proto::Dot,
            Listener::Doh => Proto::Doh,
            Listener::Doq => Proto::Doq,
        }
    }
}

/// `Message.Type`.
const AUTH_QUERY: u8 = 1;
const AUTH_RESPONSE: u8 = 2;

/// One captured message, preallocated and reused.
struct Frame {
    kind: u8,
    proto: Proto,
    client: SocketAddr,
    server: SocketAddr,
    query_time: Duration,
    response_time: Duration,
    msg: Vec<u8>,
}

impl Frame {
    fn new(cap: usize) -> Box<Self> {
        let any = SocketAddr::from(([0, 0, 0, 0], 0));
        Box::new(Frame {
            kind: 0,
            proto: Proto::Udp,
            client: any,
            server: any,
            query_time: Duration::ZERO,
            response_time: Duration::ZERO,
            msg: Vec::with_capacity(cap),
        })
    }
}

/// Why frames were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Every frame was waiting for the writer (it is behind, or the receiver is slow).
    Full,
    /// The receiver was not connected.
    Down,
    /// The message was larger than any frame (never with the default sizes).
    Large,
}

impl Dropped {
    /// Every reason.
    pub const ALL: [Dropped; 3] = [Dropped::Full, Dropped::Down, Dropped::Large];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::Full => "buffer_full",
            Dropped::Down => "receiver_down",
            Dropped::Large => "too_large",
        }
    }
}

/// The capture's counters.
#[derive(Debug, Default)]
pub struct DnstapCounts {
    /// Frames written to the receiver.
    pub sent: u64,
    /// Frames dropped, by [`Dropped`] reason (in `Dropped::ALL` order).
    pub dropped: [u64; 3],
    /// Whether the receiver is connected now.
    pub connected: bool,
}

/// The capture: frame pools, the queue to the writer, counters. The listeners feed it; a
/// writer task started by `Bound::serve` empties it.
pub struct Tap {
    cfg: DnstapConfig,
    small: ArrayQueue<Box<Frame>>,
    large: ArrayQueue<Box<Frame>>,
    queue: ArrayQueue<Box<Frame>>,
    sent: AtomicU64,
    dropped: [AtomicU64; 3],
    connected: AtomicBool,
    identity: Vec<u8>,
    version: Vec<u8>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("cfg", &self.cfg).finish()
    }
}

impl Tap {
    /// Preallocates every frame; `identity` and `version` go in every message (empty: left
    /// out).
    pub fn new(cfg: DnstapConfig, identity: &[u8], version: &[u8]) -> Self {
        let n = cfg.buffer.max(2);
        let n_large = (n / 64).max(2);
        let small = ArrayQueue::new(n);
        let large = ArrayQueue::new(n_large);
        for _ in 0..n {
            let _ = small.push(Frame::new(SMALL));
        }
        for _ in 0..n_large {
            let _ = large.push(Frame::new(LARGE));
        }
        Self {
            cfg,
            small,
            large,
            queue: ArrayQueue::new(n + n_large),
            sent: AtomicU64::new(0),
            dropped: Default::default(),
            connected: AtomicBool::new(false),
            identity: identity.to_vec(),
            version: version.to_vec(),
        }
    }

    /// Whether to capture the next query (one in `sample`); its response goes with it.
    pub fn sampled(&self) -> bool {
        self.cfg.sample <= 1 || crate::handler::next_random().is_multiple_of(u64::from(self.cfg.sample))
    }

    /// Takes frames as if the receiver were connected (a test of the capturing side
    /// alone, with no writer).
    #[doc(hidden)]
    pub fn assume_connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    /// Frames waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn drop_one(&self, why: Dropped) {
        self.dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Captures a query received at `at`.
    pub fn query(&self, proto: Proto, client: SocketAddr, server: SocketAddr, at: SystemTime, msg: &[u8]) {
        if self.cfg.queries {
            self.put(AUTH_QUERY, proto, client, server, at, at, msg);
        }
    }

    /// Captures a response to a query received at `query_time`, sent at `at`.
    pub fn response(
        &self,
        proto: Proto,
        client: SocketAddr,
        server: SocketAddr,
        query_time: SystemTime,
        at: SystemTime,
        msg: &[u8],
    ) {
        if self.cfg.responses {
            self.put(AUTH_RESPONSE, proto, client, server, query_time, at, msg);
        }
    }

    /// Whether responses are captured.
    pub fn responses(&self) -> bool {
        self.cfg.responses
    }

    #[allow(clippy::too_many_arguments)] // the frame's fields
    fn put(
        &self,
        kind: u8,
        proto: Proto,
        client: SocketAddr,
        server: SocketAddr,
        query_time: SystemTime,
        at: SystemTime,
        msg: &[u8],
    ) {
        if !self.connected.load(Ordering::Relaxed) {
            self.drop_one(Dropped::Down);
            return;
        }
        let frame = if msg.len() <= SMALL {
            self.small.pop().or_else(|| self.large.pop())
        } else if msg.len() <= LARGE {
            self.large.pop()
        } else {
            self.drop_one(Dropped::Large);
            return;
        };
        let Some(mut f) = frame else {
            self.drop_one(Dropped::Full);
            return;
        };
        f.kind = kind;
        f.proto = proto;
        f.client = client;
        f.server = server;
        f.query_time = query_time.duration_since(UNIX_EPOCH).unwrap_or_default();
        f.response_time = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        f.msg.clear();
        f.msg.extend_from_slice(msg);
        if let Err(f) = self.queue.push(f) {
            // Cannot happen (the queue holds every frame there is); the frame goes back.
            self.drop_one(Dropped::Full);
            self.release(f);
        }
    }

    /// Returns a frame to its pool.
    fn release(&self, f: Box<Frame>) {
        let _ = if f.msg.capacity() > SMALL { self.large.push(f) } else { self.small.push(f) };
    }

    /// The counters now.
    pub fn counts(&self) -> DnstapCounts {
        DnstapCounts {
            sent: self.sent.load(Ordering::Relaxed),
            dropped: std::array::from_fn(|i| self.dropped[i].load(Ordering::Relaxed)),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }

    /// Encodes `f` as a `Dnstap` protobuf message into `out` (cleared first); `scratch`
    /// holds the inner `Message`.
    fn encode(&self, f: &Frame, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
        encode(f, &self.identity, &self.version, scratch, out);
    }
}

// Protobuf wire types.
const VARINT: u8 = 0;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn key(out: &mut Vec<u8>, field: u8, wire: u8) {
    out.push((field << 3) | wire);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn uint(out: &mut Vec<u8>, field: u8, v: u64) {
    key(out, field, VARINT);
    varint(out, v);
}

fn bytes(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn fixed32(out: &mut Vec<u8>, field: u8, v: u32) {
    key(out, field, FIXED32);
    out.extend_from_slice(&v.to_le_bytes());
}

fn ip(out: &mut Vec<u8>, field: u8, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => bytes(out, field, &v4.octets()),
        IpAddr::V6(v6) => bytes(out, field, &v6.octets()),
    }
}

/// The dnstap encoding of one frame (field numbers from the reference `dnstap.proto`).
fn encode(f: &Frame, identity: &[u8], version: &[u8], m: &mut Vec<u8>, out: &mut Vec<u8>) {
    m.clear();
    // Message
    uint(m, 1, u64::from(f.kind)); // type
    uint(m, 2, if f.client.is_ipv4() { 1 } else { 2 }); // socket_family: INET, INET6
    uint(m, 3, f.proto as u64); // socket_protocol
    ip(m, 4, f.client.ip()); // query_address
    ip(m, 5, f.server.ip()); // response_address
    uint(m, 6, u64::from(f.client.port())); // query_port
    uint(m, 7, u64::from(f.server.port())); // response_port
    uint(m, 8, f.query_time.as_secs()); // query_time_sec
    fixed32(m, 9, f.query_time.subsec_nanos()); // query_time_nsec
    if f.kind == AUTH_QUERY {
        bytes(m, 10, &f.msg); // query_message
    } else {
        uint(m, 12, f.response_time.as_secs()); // response_time_sec
        fixed32(m, 13, f.response_time.subsec_nanos()); // response_time_nsec
        bytes(m, 14, &f.msg); // response_message
    }
    out.clear();
    // Dnstap
    if !identity.is_empty() {
        bytes(out, 1, identity);
    }
    if !version.is_empty() {
        bytes(out, 2, version);
    }
    bytes(out, 14, m); // message
    uint(out, 15, 1); // type: MESSAGE
}

// Frame Streams control frames.
const ACCEPT: u32 = 1;
const START: u32 = 2;
const STOP: u32 = 3;
const READY: u32 = 4;
const FINISH: u32 = 5;
const FIELD_CONTENT_TYPE: u32 = 1;

/// A control frame: the escape (a zero length), its length, its type and, but for STOP and
/// FINISH, the content type.
fn control(kind: u32) -> Vec<u8> {
    let mut payload = kind.to_be_bytes().to_vec();
    if !matches!(kind, STOP | FINISH) {
        payload.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        payload.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        payload.extend_from_slice(CONTENT_TYPE);
    }
    let mut out = 0u32.to_be_bytes().to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Reads one control frame; its type and whether it names our content type.
async fn read_control(s: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(u32, bool)> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    if s.read_u32().await? != 0 {
        return Err(bad("a data frame where a control frame was due"));
    }
    let len = s.read_u32().await? as usize;
    if !(4..=512).contains(&len) {
        return Err(bad("control frame length"));
    }
    let mut buf = vec![0; len];
    s.read_exact(&mut buf).await?;
    let kind = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let mut rest = &buf[4..];
    let mut ours = false;
    while rest.len() >= 8 {
        let field = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let n = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let Some(v) = rest.get(8..8 + n) else { break };
        ours |= field == FIELD_CONTENT_TYPE && v == CONTENT_TYPE;
        rest = &rest[8 + n..];
    }
    Ok((kind, ours))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Time allowed to connect and for the receiver to answer the handshake.
const HANDSHAKE: Duration = Duration::from_secs(2);
/// A receiver that takes nothing for this long is dropped and connected again.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most frames encoded per write.
const BATCH: usize = 512;

async fn connect(target: &DnstapTarget) -> std::io::Result<Box<dyn Stream>> {
    let mut s: Box<dyn Stream> = match target {
        DnstapTarget::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
        DnstapTarget::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        }
    };
    // Bidirectional Frame Streams: READY, the receiver's ACCEPT, then START.
    s.write_all(&control(READY)).await?;
    s.flush().await?;
    match read_control(&mut s).await? {
        (ACCEPT, true) => {}
        (ACCEPT, false) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the receiver does not accept protobuf:dnstap.Dnstap",
            ));
        }
        (k, _) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("control frame {k}"))),
    }
    s.write_all(&control(START)).await?;
    Ok(s)
}

/// Drains the queue without sending (the receiver is down): every frame is counted dropped.
fn discard(tap: &Tap) {
    while let Some(f) = tap.queue.pop() {
        tap.drop_one(Dropped::Down);
        tap.release(f);
    }
}

/// Logs the drops since the last call, at most once a second.
struct DropLog {
    last: [u64; 3],
    at: std::time::Instant,
}

impl DropLog {
    fn tick(&mut self, tap: &Tap, target: &DnstapTarget) {
        if self.at.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.at = std::time::Instant::now();
        let now = tap.counts().dropped;
        for (i, why) in Dropped::ALL.iter().enumerate() {
            let n = now[i] - self.last[i];
            if n > 0 {
                tracing::warn!(%target, dropped = n, reason = why.label(), "dnstap frames dropped");
            }
        }
        self.last = now;
    }
}

/// The writer: connects, encodes and writes what the listeners capture, reconnects with
/// backoff, and sends STOP (waiting briefly for FINISH) when `shutdown` is cancelled.
pub(crate) async fn writer(tap: std::sync::Arc<Tap>, shutdown: CancellationToken) {
    let Some(target) = tap.cfg.target.clone() else { return };
    let mut log = DropLog { last: [0; 3], at: std::time::Instant::now() };
    let mut backoff = Duration::from_millis(100);
    let (mut scratch, mut msg, mut buf) = (Vec::new(), Vec::new(), Vec::with_capacity(256 * 1024));
    loop {
        let connected = tokio::select! {
            r = tokio::time::timeout(HANDSHAKE, connect(&target)) => r.unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake"))),
            () = shutdown.cancelled() => return,
        };
        let mut s = match connected {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%target, error = %e, "dnstap receiver not reached");
                let until = tokio::time::Instant::now() + backoff;
                while tokio::time::Instant::now() < until {
                    discard(&tap);
                    log.tick(&tap, &target);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(10)) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        tracing::info!(%target, "dnstap receiver connected");
        backoff = Duration::from_millis(100);
        tap.connected.store(true, Ordering::Relaxed);
        let ended = loop {
            log.tick(&tap, &target);
            buf.clear();
            let mut n = 0u64;
            while n < BATCH as u64 {
                let Some(f) = tap.queue.pop() else { break };
                tap.encode(&f, &mut scratch, &mut msg);
                tap.release(f);
                buf.extend_from_slice(&(msg.len() as u32).to_be_bytes());
                buf.extend_from_slice(&msg);
                n += 1;
            }
            if n == 0 {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(2)) => continue,
                    () = shutdown.cancelled() => break None,
                }
            }
            match tokio::time::timeout(WRITE_TIMEOUT, s.write_all(&buf)).await {
                Ok(Ok(())) => {
                    tap.sent.fetch_add(n, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    tap.dropped[Dropped::Down as usize].fetch_add(n, Ordering::Relaxed);
                    break Some(e);
                }
                Err(_) => {
                    tap.dropped[Dropped::Down as usize].fetch_add(n, Ordering::Relaxed);
                    break Some(std::io::Error::new(std::io::ErrorKind::TimedOut, "the receiver takes nothing"));
                }
            }
        };
        tap.connected.store(false, Ordering::Relaxed);
        match ended {
            Some(e) => tracing::warn!(%target, error = %e, "dnstap receiver lost; connecting again"),
            None => {
                // Shutdown: STOP, then FINISH from the receiver (not waited for long).
                let _ = tokio::time::timeout(HANDSHAKE, async {
                    s.write_all(&control(STOP)).await?;
                    s.flush().await?;
                    read_control(&mut s).await
                })
                .await;
                discard(&tap);
                log.at = std::time::Instant::now() - Duration::from_secs(2);
                log.tick(&tap, &target);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        v.clear();
        uint(&mut v, 15, 1);
        assert_eq!(v, [0x78, 0x01]);
        v.clear();
        fixed32(&mut v, 9, 1);
        assert_eq!(v, [0x4d, 1, 0, 0, 0]);
    }

    #[test]
    fn control_frames() {
        let ready = control(READY);
        assert_eq!(&ready[..4], &[0, 0, 0, 0]);
        assert_eq!(u32::from_be_bytes([ready[4], ready[5], ready[6], ready[7]]) as usize, ready.len() - 8);
        assert_eq!(&ready[8..12], &READY.to_be_bytes());
        assert!(ready.ends_with(CONTENT_TYPE));
        assert_eq!(control(STOP), [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3]);
    }

    #[test]
    fn targets_parse() {
        assert_eq!("unix:/run/x.sock".parse(), Ok(DnstapTarget::Unix("/run/x.sock".into())));
        assert_eq!("/run/x.sock".parse(), Ok(DnstapTarget::Unix("/run/x.sock".into())));
        assert_eq!("tcp:127.0.0.1:6000".parse(), Ok(DnstapTarget::Tcp(([127, 0, 0, 1], 6000).into())));
        assert_eq!("[::1]:6000".parse(), Ok(DnstapTarget::Tcp("[::1]:6000".parse().unwrap())));
        assert!("nowhere".parse::<DnstapTarget>().is_err());
    }

    #[test]
    fn a_full_pool_drops_and_counts() {
        let cfg = DnstapConfig { buffer: 4, ..DnstapConfig::default() };
        let tap = Tap::new(cfg, b"", b"");
        let a = SocketAddr::from(([127, 0, 0, 1], 53));
        let now = SystemTime::now();
        tap.query(Proto::Udp, a, a, now, b"x");
        assert_eq!(tap.counts().dropped[Dropped::Down as usize], 1, "not connected: dropped");
        tap.connected.store(true, Ordering::Relaxed);
        // 4 small frames and 2 large ones.
        for _ in 0..10 {
            tap.query(Proto::Udp, a, a, now, b"x");
        }
        assert_eq!(tap.counts().dropped[Dropped::Full as usize], 4);
        assert_eq!(tap.queue.len(), 6);
        tap.query(Proto::Tcp, a, a, now, &[0; LARGE + 1]);
        assert_eq!(tap.counts().dropped[Dropped::Large as usize], 1);
        discard(&tap);
        assert_eq!(tap.small.len() + tap.large.len(), 6, "frames went back to their pools");
    }
}
