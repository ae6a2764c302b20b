//! Listeners: UDP on dedicated threads (one SO_REUSEPORT socket per worker, no task per
//! packet), TCP on tokio with per-connection tasks, idle timeout and a connection cap.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use std::{future::Future, pin::Pin};

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Store;
use crate::dnstap::Proto;
use crate::handler::{AnswerConfig, Note, Outcome, Transport, answer_cached};
use crate::logs::Refusal;
use crate::stats::{Handshake, Listener, Stats, inspect};

/// How the listeners behave.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to serve UDP and TCP on; port 0 picks a free port (the same for both).
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads per address, each with its own socket.
    pub udp_workers: usize,
    /// Answering settings.
    pub answer: AnswerConfig,
    /// A TCP connection with no complete query for this long is closed (RFC 7766 §6.2.3).
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections open at once, over all listeners; at the cap a new connection
    /// closes the one idle the longest (RFC 7766 §6.2.3), or is closed if none is idle.
    pub tcp_max_connections: usize,
    /// Share of queries logged (0 = none, 1 = all), at INFO on the `r53dns::query` target.
    pub query_log: f64,
    /// Client networks allowed to transfer zones (AXFR, IXFR over TCP); empty: nobody.
    pub transfer_acl: Vec<r53dns_zone::Prefix>,
    /// Client networks allowed to query; `None`: everyone. Others get REFUSED.
    pub query_acl: Option<Vec<r53dns_zone::Prefix>>,
    /// Most TCP connections open at once from one client network (/24, /56); more are
    /// closed at once.
    pub tcp_max_connections_per_network: usize,
    /// Time allowed to receive the rest of a message once its length arrived (slow senders).
    pub tcp_message_timeout: Duration,
    /// TSIG keys the server knows.
    pub tsig_keys: r53dns_proto::tsig::KeyRing,
    /// Keys (labels, lowercase) whose signed transfer requests are allowed from anywhere.
    pub transfer_keys: Vec<String>,
    /// Per zone (lower-case apex): who may transfer it, in place of `transfer_acl` and
    /// `transfer_keys`.
    pub zone_transfer: std::collections::HashMap<r53dns_zone::Name, TransferRule>,
    /// Response rate limiting of UDP answers (off unless a rate is set).
    pub rrl: crate::rrl::RrlConfig,
    /// DNS over TLS and HTTPS (off unless addresses are given).
    pub encrypted: crate::encrypted::EncryptedConfig,
    /// Query capture in the dnstap format (off unless a target is given).
    pub dnstap: crate::dnstap::DnstapConfig,
    /// Count queries per zone for up to this many zones (0: not per zone).
    pub zone_queries: usize,
    /// The response cache (on, 16 MiB, by default).
    pub cache: crate::cache::CacheConfig,
}

/// Who may transfer one zone: clients of these networks, or requests signed with these keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferRule {
    /// Client networks.
    pub acl: Vec<r53dns_zone::Prefix>,
    /// Key labels, lowercase.
    pub keys: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            udp_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            answer: AnswerConfig::default(),
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_max_connections: 1024,
            query_log: 0.0,
            transfer_acl: Vec::new(),
            query_acl: None,
            tcp_max_connections_per_network: 64,
            tcp_message_timeout: Duration::from_secs(2),
            tsig_keys: r53dns_proto::tsig::KeyRing::default(),
            transfer_keys: Vec::new(),
            zone_transfer: std::collections::HashMap::new(),
            rrl: crate::rrl::RrlConfig::default(),
            encrypted: crate::encrypted::EncryptedConfig::default(),
            dnstap: crate::dnstap::DnstapConfig::default(),
            zone_queries: 0,
            cache: crate::cache::CacheConfig::default(),
        }
    }
}

/// Handles the requests that leave the fast path: DNS UPDATE (opcode 5), which waits on
/// other systems, and NOTIFY (opcode 4), which concerns secondary zones. Runs on the tokio
/// runtime; the UDP workers never wait for it.
pub trait RequestHandler: Send + Sync + 'static {
    /// The response to `msg` from `peer`, or `None` to send nothing.
    fn handle(
        self: Arc<Self>,
        msg: Vec<u8>,
        peer: SocketAddr,
        transport: Transport,
    ) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + 'static>>;
}

/// UPDATE and NOTIFY handling as the listeners hold it.
#[derive(Clone)]
struct Updates {
    handler: Arc<dyn RequestHandler>,
    /// Bounds the UDP UPDATEs in flight; more are dropped (the client retries).
    updates: Arc<Semaphore>,
    /// The same for NOTIFYs, apart, so a NOTIFY flood cannot crowd out UPDATEs (each of
    /// which waits on Route53) nor the reverse.
    notifies: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
    /// Counts replies the socket would not take.
    stats: Arc<Stats>,
}

/// UPDATEs over UDP handled at once; DHCP servers send a few per lease.
const MAX_UDP_UPDATES: usize = 64;
/// NOTIFYs over UDP handled at once (each is answered at once; a refresh runs apart).
const MAX_UDP_NOTIFIES: usize = 64;

/// Whether a message is an UPDATE or NOTIFY request (opcode 5 or 4, QR clear).
fn leaves_fast_path(msg: &[u8]) -> bool {
    msg.len() >= 12 && msg[2] & 0x80 == 0 && matches!((msg[2] >> 3) & 0x0f, 4 | 5)
}

/// Each TCP connection is a descriptor, and the usual soft limit (1 024) is below what
/// `tcp_max_connections` plus listeners, zone files and HTTP need: past it, `accept` fails
/// and clients wait in the kernel's queue. The soft limit is raised to the hard one, as
/// other name servers do; if the hard limit is still too low, the operator is told.
fn raise_open_files(cfg: &ServerConfig) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        tracing::debug!(soft, hard, "cannot raise the open-file limit");
    }
    let have = getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(s, _)| s);
    let want = u64::try_from(cfg.tcp_max_connections).unwrap_or(u64::MAX).saturating_add(256);
    if have < want {
        tracing::warn!(
            limit = have,
            tcp_max_connections = cfg.tcp_max_connections,
            "the open-file limit is below tcp-max-connections + 256; raise LimitNOFILE (or ulimit -n)"
        );
    }
}

/// Sockets bound and ready; [`Bound::serve`] runs them.
pub struct Bound {
    cfg: ServerConfig,
    stats: Arc<Stats>,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    updates: Option<Arc<dyn RequestHandler>>,
    encrypted: Option<crate::encrypted::EncryptedListeners>,
    /// Answers of UDP, TCP and DNS over TLS (`None`: caching is off).
    cache: Option<Arc<crate::cache::ResponseCache>>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound").field("addrs", &self.addrs).field("updates", &self.updates.is_some()).finish()
    }
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    // A deep receive queue rides out bursts instead of dropping them.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s.into())
}

pub(crate) fn tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds UDP and TCP on every address of `cfg.listen`. Must run inside a tokio runtime.
pub fn bind(cfg: ServerConfig) -> io::Result<Bound> {
    raise_open_files(&cfg);
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut addrs = Vec::new();
    for &want in &cfg.listen {
        // With port 0, UDP picks the port and TCP must get the same one; retry if taken.
        let mut attempt = 0;
        let (first, listener) = loop {
            let first = udp_socket(want)?;
            let got = first.local_addr()?;
            match tcp_listener(got) {
                Ok(l) => break (first, l),
                Err(e) if want.port() == 0 && attempt < 20 => {
                    attempt += 1;
                    tracing::debug!(%got, error = %e, "TCP port taken; picking another");
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("TCP {got}: {e}"))),
            }
        };
        let got = first.local_addr()?;
        udp.push(first);
        for _ in 1..cfg.udp_workers.max(1) {
            udp.push(udp_socket(got)?);
        }
        tcp.push(TcpListener::from_std(listener)?);
        addrs.push(got);
    }
    let encrypted =
        if cfg.encrypted.enabled() { Some(crate::encrypted::EncryptedListeners::bind(&cfg.encrypted)?) } else { None };
    let tap = cfg.dnstap.target.is_some().then(|| {
        Arc::new(crate::dnstap::Tap::new(
            cfg.dnstap.clone(),
            cfg.answer.identity.as_bytes(),
            cfg.answer.version.as_bytes(),
        ))
    });
    let stats = Arc::new(Stats::new(cfg.zone_queries, tap));
    let settings = cfg.cache;
    let cache = settings.enabled.then(|| Arc::new(crate::cache::ResponseCache::new(settings.budget, cfg.answer)));
    Ok(Bound { cfg, stats, udp, tcp, addrs, updates: None, encrypted, cache })
}

impl Bound {
    /// Query counters of this server.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Hands DNS UPDATE and NOTIFY requests to `handler` (without one, they get NOTIMP).
    pub fn with_handler(mut self, handler: Arc<dyn RequestHandler>) -> Self {
        self.updates = Some(handler);
        self
    }

    /// The addresses actually bound (ports resolved), one per `listen` entry.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The DNS over TLS and DNS over HTTPS addresses bound (ports resolved).
    pub fn encrypted_addrs(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        self.encrypted.as_ref().map(|e| e.local_addrs()).unwrap_or_default()
    }

    /// The DNS over QUIC addresses bound (ports resolved).
    pub fn quic_addrs(&self) -> Vec<SocketAddr> {
        self.encrypted.as_ref().map(|e| e.quic_addrs()).unwrap_or_default()
    }

    /// The certificate of the encrypted listeners, to reload it (`None` without them).
    pub fn certificates(&self) -> Option<Arc<crate::encrypted::Certificates>> {
        self.encrypted.as_ref().map(|e| e.certs.clone())
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight TCP queries
    /// finish (bounded by the idle timeout) and returns.
    pub async fn serve(self, store: Store, shutdown: CancellationToken) {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let updates = self.updates.map(|handler| Updates {
            handler,
            updates: Arc::new(Semaphore::new(MAX_UDP_UPDATES)),
            notifies: Arc::new(Semaphore::new(MAX_UDP_NOTIFIES)),
            runtime: tokio::runtime::Handle::current(),
            stats: self.stats.clone(),
        });
        let rrl = self.cfg.rrl.enabled().then(|| Arc::new(crate::rrl::Rrl::new(self.cfg.rrl.clone())));
        for (i, sock) in self.udp.into_iter().enumerate() {
            let rrl = rrl.clone();
            let cache = self.cache.clone();
            let store = store.clone();
            let stop = stop.clone();
            let cfg = self.cfg.clone();
            let stats = self.stats.clone();
            let updates = updates.clone();
            let t = std::thread::Builder::new().name(format!("r53dns-udp-{i}")).spawn(move || {
                let cache = cache.as_deref();
                let shared =
                    Shared { store: &store, cfg: &cfg, stop: &stop, stats: &stats, rrl: rrl.as_deref(), cache };
                udp_worker(Arc::new(sock), &shared, updates.as_ref())
            });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => tracing::error!(error = %e, "cannot start a UDP worker thread"),
            }
        }
        let tracker = TaskTracker::new();
        // The dnstap writer outlives the listeners' drain: it stops after them.
        let tap_stop = CancellationToken::new();
        let tap_writer = self.stats.tap.clone().map(|tap| tokio::spawn(crate::dnstap::writer(tap, tap_stop.clone())));
        let mut tcp: Vec<(TcpListener, Kind)> = self.tcp.into_iter().map(|l| (l, Kind::Tcp)).collect();
        // One connection table for TCP, DNS over TLS, HTTPS and QUIC alike.
        let slots = crate::slots::Slots::new(self.cfg.tcp_max_connections, self.cfg.tcp_max_connections_per_network);
        if let Some(listeners) = self.encrypted {
            let (dot, doh, doq, certs) = crate::encrypted::split(listeners);
            match certs.acceptor(b"dot") {
                Ok(acceptor) => tcp.extend(dot.into_iter().map(|l| (l, Kind::Dot(acceptor.clone())))),
                Err(e) => tracing::error!(error = %e, "cannot serve DNS over TLS"),
            }
            match certs.acceptor(b"h2") {
                Ok(acceptor) => tcp.extend(doh.into_iter().map(|l| (l, Kind::Doh(acceptor.clone())))),
                Err(e) => tracing::error!(error = %e, "cannot serve DNS over HTTPS"),
            }
            let (cfg, store, stats, shutdown) = (self.cfg.clone(), store.clone(), self.stats.clone(), shutdown.clone());
            let slots = slots.clone();
            tracker.spawn(async move {
                crate::encrypted::serve_quic(doq, certs, store, cfg, stats, slots, shutdown).await;
            });
        }
        for (listener, kind) in tcp {
            tracker.spawn(accept_loop(
                listener,
                kind,
                store.clone(),
                self.cfg.clone(),
                slots.clone(),
                shutdown.clone(),
                tracker.clone(),
                self.stats.clone(),
                updates.clone(),
                self.cache.clone(),
            ));
        }
        shutdown.cancelled().await;
        stop.store(true, Ordering::Relaxed);
        tracker.close();
        let drain = self.cfg.tcp_idle_timeout + Duration::from_secs(1);
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!("TCP connections still open after {drain:?}; closing them");
        }
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        tap_stop.cancel();
        if let Some(w) = tap_writer {
            let _ = w.await;
        }
    }
}

/// Logs a sampled share of queries: client, question and outcome (a name is only formatted
/// for the sampled ones).
fn log_query(share: f64, t: impl Into<Listener>, peer: SocketAddr, response: &[u8], a: crate::stats::Answered) {
    if share <= 0.0 || (share < 1.0 && crate::handler::next_random() as f64 / u64::MAX as f64 >= share) {
        return;
    }
    let mut name = [0u8; r53dns_zone::name::MAX_NAME_LEN];
    let qname = r53dns_proto::wire::read_name(response, 12, &mut name)
        .map(|(len, _)| r53dns_zone::name::wire_to_text(&name[..len]));
    tracing::info!(
        target: "r53dns::query",
        client = %peer.ip(),
        transport = t.into().label(),
        qname = qname.as_deref().unwrap_or("-"),
        qtype = %r53dns_zone::rdata::type_to_string(a.qtype),
        rcode = a.rcode,
        tc = a.truncated,
        "query"
    );
}

/// Whether the query ACL lets `ip` ask at all.
pub(crate) fn query_allowed(cfg: &ServerConfig, ip: std::net::IpAddr) -> bool {
    cfg.query_acl.as_ref().is_none_or(|acl| crate::xfr::allowed(acl, ip))
}

/// Datagrams taken per `recvmmsg` and answered per `sendmmsg`.
const BATCH: usize = 32;
/// Largest request kept (a query with EDNS options is far smaller; bigger ones are cut and
/// then fail to parse).
const MAX_REQUEST: usize = 4096;

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(std::net::SocketAddrV4::new(v4.ip(), v4.port())));
    }
    let v6 = a.as_sockaddr_in6()?;
    Some(SocketAddr::V6(std::net::SocketAddrV6::new(v6.ip(), v6.port(), v6.flowinfo(), v6.scope_id())))
}

/// What every UDP worker shares.
struct Shared<'a> {
    store: &'a Store,
    cfg: &'a ServerConfig,
    stop: &'a AtomicBool,
    stats: &'a Stats,
    rrl: Option<&'a crate::rrl::Rrl>,
    cache: Option<&'a crate::cache::ResponseCache>,
}

/// The UDP loop: up to [`BATCH`] datagrams per system call each way, one snapshot load per
/// batch, reused buffers. Each answer still comes from exactly one snapshot. Nothing is
/// allocated per batch either: the I/O vectors and addresses handed to the kernel are
/// arrays on the stack, the reply list is reused.
fn udp_worker(sock: Arc<UdpSocket>, shared: &Shared<'_>, updates: Option<&Updates>) {
    let Shared { store, cfg, stop, stats, rrl, cache } = *shared;
    let fd = sock.as_raw_fd();
    let tap = stats.tap.as_deref();
    let local = sock.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // On the heap (128 KiB), fixed length so each batch can borrow all of it as an array.
    let mut bufs: Box<[[u8; MAX_REQUEST]; BATCH]> = Box::new([[0u8; MAX_REQUEST]; BATCH]);
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(4096)).collect();
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut meta: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        meta.clear();
        replies.clear();
        {
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = bufs.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
            match recvmmsg(fd, &mut recv_headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(results) => meta.extend(results.map(|r| (r.bytes, r.address))),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive failed");
                    continue;
                }
            }
        }
        let started = std::time::Instant::now();
        let received = if tap.is_some() { std::time::SystemTime::now() } else { std::time::UNIX_EPOCH };
        let snapshot = store.load();
        if let Some(c) = cache.filter(|c| c.serves(&cfg.answer)) {
            prefetch_batch(c, &snapshot, &meta, &bufs);
        }
        for (i, (n, addr)) in meta.iter().enumerate() {
            let (Some(addr), Some(peer)) = (addr, addr.as_ref().and_then(to_std)) else { continue };
            let zones = snapshot.zones_for(Some(peer.ip()));
            let mut note = Note { want_rrl: rrl.is_some(), ..Note::default() };
            let msg = &bufs[i][..(*n).min(MAX_REQUEST)];
            if let Some(u) = updates.filter(|_| leaves_fast_path(msg)) {
                let tapped = tap.filter(|t| t.sampled()).inspect(|t| t.query(Proto::Udp, peer, local, received, msg));
                udp_update(u, &sock, msg, (peer, local), tapped.map(|_| received));
                continue;
            }
            let allowed = query_allowed(cfg, peer.ip());
            let outcome = if allowed {
                let (o, ip) = (&mut outs[i], Some(peer.ip()));
                let o = answer_cached(cache, zones, msg, Transport::Udp, &cfg.answer, ip, o, &mut note);
                if note.tsig {
                    crate::signed::answer(zones, msg, Transport::Udp, cfg, peer.ip(), &mut outs[i], &mut note)
                } else {
                    o
                }
            } else {
                crate::handler::refuse(msg, &cfg.answer, &mut outs[i], &mut note)
            };
            if outcome == Outcome::Drop {
                stats.dropped(Transport::Udp);
                continue;
            }
            let tapped = tap.filter(|t| t.sampled()).inspect(|t| t.query(Proto::Udp, peer, local, received, msg));
            if let Some(rrl) = rrl {
                match rrl.check(peer.ip(), note.rrl.unwrap_or(crate::rrl::ERROR)) {
                    crate::rrl::Verdict::Send => {}
                    crate::rrl::Verdict::Slip => {
                        crate::rrl::slip(&mut outs[i]);
                        stats.rate_limited(true);
                    }
                    crate::rrl::Verdict::Drop => {
                        stats.rate_limited(false);
                        continue;
                    }
                }
            }
            stats.sized(Transport::Udp, msg.len(), outs[i].len(), note.dnssec_ok);
            if allowed {
                stats.zone_query(&snapshot, zones, msg);
            }
            let answered = inspect(&outs[i], note.qtype, note.ext_rcode);
            log_query(cfg.query_log, Transport::Udp, peer, &outs[i], answered);
            replies.push((i, *addr, answered, tapped.is_some()));
        }
        drop(snapshot);
        // The whole batch in one call. Sending every 8 answers instead (so the first ones do
        // not wait for the last) was measured: no better tail at 20 000 q/s (p99 median of 5
        // rounds 77 µs against 66 µs) and no higher rate, for four times the send calls.
        if !replies.is_empty() {
            send_replies(&sock, &mut send_headers, &replies, &outs, (local, received, started), stats);
        }
    }
}

/// Starts loading, for every request of a batch, the cache lines its response-cache lookup
/// will read: the bucket's tags for all of them first, then the slot each one's tag points
/// to. The requests' cache misses then overlap instead of coming one after another.
/// Measured under `benches/load` at a million records: see `cache.rs`.
fn prefetch_batch(
    cache: &crate::cache::ResponseCache,
    snapshot: &crate::Snapshot,
    meta: &[(usize, Option<SockaddrStorage>)],
    bufs: &[[u8; MAX_REQUEST]; BATCH],
) {
    let mut hashes = [None; BATCH];
    for ((h, (n, addr)), buf) in hashes.iter_mut().zip(meta).zip(bufs) {
        let zones = snapshot.zones_for(addr.as_ref().and_then(to_std).map(|a| a.ip()));
        *h = cache.prefetch(zones.id(), &buf[..(*n).min(MAX_REQUEST)]);
    }
    for h in hashes.iter().take(meta.len()).flatten() {
        cache.prefetch_slot(*h);
    }
}

/// One answer of a UDP batch ready to go: its buffer index, the client, what it says, and
/// whether dnstap took its query.
type Reply = (usize, SockaddrStorage, crate::stats::Answered, bool);

/// Sends `replies` (their bytes in `outs`) in one `sendmmsg`, the rest one by one if the
/// kernel stops early; taps the responses and counts them with the time since `started`.
fn send_replies(
    sock: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrStorage>,
    replies: &[Reply],
    outs: &[Vec<u8>],
    (local, received, started): (SocketAddr, std::time::SystemTime, std::time::Instant),
    stats: &Stats,
) {
    if let Some(tap) = stats.tap.as_deref().filter(|t| t.responses()) {
        let at = std::time::SystemTime::now();
        for (i, addr, _, tapped) in replies {
            if let (true, Some(peer)) = (*tapped, to_std(addr)) {
                tap.response(Proto::Udp, peer, local, received, at, &outs[*i]);
            }
        }
    }
    let sent = {
        let n = replies.len().min(BATCH);
        let slices: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|k| [IoSlice::new(replies.get(k).map_or(&[][..], |r| &outs[r.0][..]))]);
        let addrs: [Option<SockaddrStorage>; BATCH] = std::array::from_fn(|k| replies.get(k).map(|r| r.1));
        match sendmmsg(sock.as_raw_fd(), headers, slices[..n].iter(), &addrs[..n], [], MsgFlags::empty()) {
            Ok(r) => r.count(),
            Err(e) => {
                tracing::debug!(error = %e, "UDP send failed");
                0
            }
        }
    };
    // Whatever the batch call did not send goes one by one (the kernel stops a batch at the
    // first message it refuses); what the socket still refuses is counted.
    for (i, addr, _, _) in &replies[sent.min(replies.len())..] {
        if let Some(peer) = to_std(addr)
            && let Err(e) = sock.send_to(&outs[*i], peer)
        {
            stats.unsent(Transport::Udp, peer, &e);
        }
    }
    let took = started.elapsed();
    for (_, _, answered, _) in replies {
        stats.answered(Transport::Udp, *answered, took);
    }
}

/// Hands a UDP UPDATE or NOTIFY to the runtime; the reply goes out on the same socket
/// without blocking. Beyond [`MAX_UDP_UPDATES`] UPDATEs or [`MAX_UDP_NOTIFIES`] NOTIFYs in
/// flight, the request is dropped (the client retries), counted and logged.
/// `tapped`: dnstap took the request (received then); it takes the response too.
fn udp_update(
    u: &Updates,
    sock: &Arc<UdpSocket>,
    msg: &[u8],
    (peer, local): (SocketAddr, SocketAddr),
    tapped: Option<std::time::SystemTime>,
) {
    let notify = msg.get(2).is_some_and(|b| (b >> 3) & 0x0f == 4);
    let queue = if notify { &u.notifies } else { &u.updates };
    let Ok(permit) = queue.clone().try_acquire_owned() else {
        let what = if notify { "NOTIFY" } else { "UPDATE" };
        crate::logs::refused(Refusal::QueueFull, |skipped| {
            tracing::warn!(%peer, skipped, "too many {what}s in flight over UDP; dropping one (the client will retry)");
        });
        return;
    };
    let (handler, stats) = (u.handler.clone(), u.stats.clone());
    let sock = sock.clone();
    let msg = msg.to_vec();
    u.runtime.spawn(async move {
        if let Some(reply) = handler.handle(msg, peer, Transport::Udp).await {
            if let (Some(received), Some(tap)) = (tapped, stats.tap.as_deref().filter(|t| t.responses())) {
                tap.response(Proto::Udp, peer, local, received, std::time::SystemTime::now(), &reply);
            }
            let addr = SockaddrStorage::from(peer);
            if let Err(e) = nix::sys::socket::sendto(sock.as_raw_fd(), &reply, &addr, MsgFlags::MSG_DONTWAIT) {
                stats.unsent(Transport::Udp, peer, &e);
            }
        }
        drop(permit);
    });
}

/// What a TCP listener speaks.
#[derive(Clone)]
enum Kind {
    /// DNS over TCP.
    Tcp,
    /// DNS over TLS: the TCP protocol inside TLS.
    Dot(tokio_rustls::TlsAcceptor),
    /// DNS over HTTPS (HTTP/2 inside TLS).
    Doh(tokio_rustls::TlsAcceptor),
}

#[allow(clippy::too_many_arguments)] // each is a separate shared handle; a struct would only rename them
async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    store: Store,
    cfg: ServerConfig,
    slots: Arc<crate::slots::Slots>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    stats: Arc<Stats>,
    updates: Option<Updates>,
    cache: Option<Arc<crate::cache::ResponseCache>>,
) {
    loop {
        // Accept at once, whatever the load: a new client is better served by closing an
        // idle connection than by waiting in the kernel's queue behind held ones.
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let slot = match slots.admit(peer.ip(), &shutdown) {
            Ok((slot, evicted)) => {
                if evicted {
                    stats.tcp_evicted();
                }
                slot
            }
            Err(why) => {
                let (why, what) = match why {
                    crate::slots::Refused::Network => {
                        (Refusal::TcpNetworkLimit, "its network (/24, /56) holds its share of connections")
                    }
                    crate::slots::Refused::Full => (Refusal::TcpFull, "every connection is busy"),
                };
                crate::logs::refused(why, |skipped| tracing::warn!(%peer, skipped, "TCP connection closed: {what}"));
                drop(stream);
                continue;
            }
        };
        stats.tcp_open(slots.open());
        let store = store.clone();
        let cfg = cfg.clone();
        let stats = stats.clone();
        let updates = updates.clone();
        let slots = slots.clone();
        let kind = kind.clone();
        let local = stream.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let cache = cache.clone();
        tracker.spawn(async move {
            let _ = stream.set_nodelay(true);
            let ends = (peer, local);
            let ended = match kind {
                Kind::Tcp => {
                    let up = updates.as_ref();
                    let via = (Listener::Tcp, true);
                    connection(stream, ends, via, &store, &cfg, &slot, &stats, up, cache.as_deref()).await
                }
                Kind::Dot(ref acceptor) | Kind::Doh(ref acceptor) => {
                    // The handshake counts as idle time: a client that never finishes it
                    // may be closed to make room, and is closed after the TLS timeout.
                    let handshake = tokio::time::timeout(cfg.encrypted.timeout, acceptor.accept(stream));
                    let listener = if matches!(kind, Kind::Doh(_)) { Listener::Doh } else { Listener::Dot };
                    let tls = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => Ok(s),
                            Ok(Err(e)) => {
                                stats.handshake_failed(listener, Handshake::Failed, peer, &e);
                                Err(e)
                            }
                            Err(_) => {
                                let e = io::Error::new(io::ErrorKind::TimedOut, "TLS handshake");
                                stats.handshake_failed(listener, Handshake::TimedOut, peer, &e);
                                Err(e)
                            }
                        },
                        // Evicted to make room: counted as such by the table.
                        () = slot.close.cancelled() => Err(io::Error::new(io::ErrorKind::Interrupted, "TLS handshake")),
                    };
                    match (tls, &kind) {
                        (Ok(s), Kind::Doh(_)) => crate::doh::connection(s, ends, &store, &cfg, &slot, &stats).await,
                        (Ok(s), _) => {
                            let via = (Listener::Dot, crate::encrypted::transfers_allowed(&s));
                            connection(s, ends, via, &store, &cfg, &slot, &stats, updates.as_ref(), cache.as_deref())
                                .await
                        }
                        (Err(e), _) => Err(e),
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
            drop(slot);
            stats.tcp_open(slots.open());
        });
    }
}

/// Writes `msg` behind its length, in one vectored write without copying it; a client
/// that does not read its answers within `limit` loses the connection (it would otherwise
/// hold a connection slot forever). A message too long for a stream (over 65 535 octets:
/// nothing here builds one, but that is the builders' bound, not the type's) is not sent:
/// logged, counted as dropped, and the connection goes on.
async fn send(
    stream: &mut (impl AsyncWrite + Unpin),
    msg: &[u8],
    limit: Duration,
    stats: &Stats,
    via: Listener,
) -> io::Result<()> {
    match tokio::time::timeout(limit, r53dns_proto::frame::send(stream, msg)).await {
        Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidInput => {
            tracing::warn!(transport = via.label(), octets = msg.len(), "a reply too long for a stream was not sent");
            stats.dropped(via);
            Ok(())
        }
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client does not read its answers")),
    }
}

/// RFC 7766: length-prefixed messages, answered in order, one at a time: a client may send
/// many queries at once (pipelining), but only one is in flight per connection, so a
/// connection can never hold more than one answer's work; the rest wait in the socket (and
/// in a small read buffer: one read takes the length and the message, or several queries).
/// `via` names the listener and says whether zone transfers may be asked (not over TLS
/// below 1.3).
#[allow(clippy::too_many_arguments)] // each is a separate shared handle; a struct would only rename them
async fn connection(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    (peer_addr, local): (SocketAddr, SocketAddr),
    (via, transfers): (Listener, bool),
    store: &Store,
    cfg: &ServerConfig,
    slot: &crate::slots::Slot,
    stats: &Stats,
    updates: Option<&Updates>,
    cache: Option<&crate::cache::ResponseCache>,
) -> io::Result<()> {
    let peer = peer_addr.ip();
    let mut stream = tokio::io::BufReader::with_capacity(4096, stream);
    let mut msg = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(4096);
    loop {
        slot.idle();
        let len = tokio::select! {
            r = tokio::time::timeout(cfg.tcp_idle_timeout, stream.read_u16()) => match r {
                Ok(Ok(n)) => usize::from(n),
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(()), // idle
            },
            // Evicted to make room, or the server stops.
            () = slot.close.cancelled() => return Ok(()),
        };
        slot.busy();
        msg.resize(len, 0);
        match tokio::time::timeout(cfg.tcp_message_timeout, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let started = std::time::Instant::now();
        let received = std::time::SystemTime::now();
        let tap = stats.tap.as_deref().filter(|t| t.sampled());
        if let Some(tap) = tap {
            tap.query(via.into(), peer_addr, local, received, &msg);
        }
        // Every response to a query dnstap took is taken too: answers, refusals, UPDATE and
        // NOTIFY responses, each message of a transfer.
        let tap_response = |m: &[u8]| {
            if let Some(tap) = tap {
                tap.response(via.into(), peer_addr, local, received, std::time::SystemTime::now(), m);
            }
        };
        if let Some(u) = updates.filter(|_| leaves_fast_path(&msg)) {
            let reply = u.handler.clone().handle(msg.clone(), peer_addr, Transport::Tcp).await;
            if let Some(reply) = reply {
                tap_response(&reply);
                send(&mut stream, &reply, cfg.tcp_idle_timeout, stats, via).await?;
            }
            continue;
        }
        if !query_allowed(cfg, peer) {
            let mut note = Note::default();
            if crate::handler::refuse(&msg, &cfg.answer, &mut out, &mut note) == Outcome::Respond {
                stats.sized(via, msg.len(), out.len(), note.dnssec_ok);
                tap_response(&out);
                send(&mut stream, &out, cfg.tcp_idle_timeout, stats, via).await?;
                stats.answered(via, inspect(&out, note.qtype, 0), started.elapsed());
            }
            continue;
        }
        if !transfers && let Some(m) = crate::encrypted::refuse_transfer(&msg, peer, cfg) {
            tap_response(&m);
            send(&mut stream, &m, cfg.tcp_idle_timeout, stats, via).await?;
            continue;
        }
        let transfer = {
            let snapshot = store.load();
            crate::xfr::respond(snapshot.zones_for(Some(peer)), &msg, peer, cfg)
        };
        if let Some(messages) = transfer {
            for m in messages {
                tap_response(&m);
                send(&mut stream, &m, cfg.tcp_idle_timeout, stats, via).await?;
            }
            continue;
        }
        let mut note = Note::default();
        let outcome = {
            let snapshot = store.load();
            let zones = snapshot.zones_for(Some(peer));
            let o = answer_cached(cache, zones, &msg, Transport::Tcp, &cfg.answer, Some(peer), &mut out, &mut note);
            let o = if note.tsig {
                crate::signed::answer(zones, &msg, Transport::Tcp, cfg, peer, &mut out, &mut note)
            } else {
                o
            };
            if o == Outcome::Respond {
                stats.zone_query(&snapshot, zones, &msg);
            }
            o
        };
        if outcome == Outcome::Drop {
            stats.dropped(via);
            continue;
        }
        if note.padding && via == Listener::Dot {
            crate::handler::pad(&mut out);
        }
        stats.sized(via, msg.len(), out.len(), note.dnssec_ok);
        tap_response(&out);
        let answered = inspect(&out, note.qtype, note.ext_rcode);
        send(&mut stream, &out, cfg.tcp_idle_timeout, stats, via).await?;
        stats.answered(via, answered, started.elapsed());
        log_query(cfg.query_log, via, SocketAddr::new(peer, 0), &out, answered);
    }
}
