//! Query counters kept as plain atomics on the serving path; exported elsewhere (the app
//! turns them into Prometheus metrics at scrape time), so serving never touches a registry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::handler::Transport;

/// Query types counted by name; everything else is `other`.
pub const QTYPES: [(&str, u16); 18] = [
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("NAPTR", 35),
    ("DS", 43),
    ("DNSKEY", 48),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("CAA", 257),
    ("ANY", 255),
    ("AXFR", 252),
    ("IXFR", 251),
];
/// Index of `other` in the qtype dimension.
pub const QTYPE_OTHER: usize = QTYPES.len();
/// Response codes counted by name (index = rcode for 0–10: UPDATE's and TSIG's included);
/// 11 is `BADVERS`, 12 `other`.
pub const RCODES: [&str; 13] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
    "NOTZONE", "BADVERS", "other",
];
/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] =
    [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25];

/// Upper bounds (octets) of the request and response size histogram buckets: the classic
/// 512, the DNS Flag Day 1232, an Ethernet datagram's 1472, and powers of two up to TCP's
/// largest message.
pub const SIZE_BUCKETS: [f64; 12] =
    [64.0, 128.0, 256.0, 512.0, 1024.0, 1232.0, 1472.0, 2048.0, 4096.0, 8192.0, 16384.0, 65535.0];

const NQ: usize = QTYPES.len() + 1;
const NR: usize = RCODES.len();

/// The listener a query came in on: the `transport` label of the query metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Plain UDP.
    Udp,
    /// Plain TCP.
    Tcp,
    /// DNS over TLS (RFC 7858), zone transfers over TLS (RFC 9103) included.
    Dot,
    /// DNS over HTTPS (RFC 8484).
    Doh,
    /// DNS over QUIC (RFC 9250).
    Doq,
}

impl Listener {
    /// Every listener, in label order.
    pub const ALL: [Listener; 5] = [Listener::Udp, Listener::Tcp, Listener::Dot, Listener::Doh, Listener::Doq];

    /// Whether its connections begin with a handshake of their own (TLS, QUIC), counted
    /// in [`Stats::handshakes_failed`].
    pub fn has_handshake(self) -> bool {
        matches!(self, Listener::Dot | Listener::Doh | Listener::Doq)
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Listener::Udp => "udp",
            Listener::Tcp => "tcp",
            Listener::Dot => "dot",
            Listener::Doh => "doh",
            Listener::Doq => "doq",
        }
    }
}

impl From<Transport> for Listener {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Udp => Listener::Udp,
            Transport::Tcp => Listener::Tcp,
        }
    }
}

/// Why an encrypted connection ended before its first request could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Handshake {
    /// The handshake (TLS, then HTTP/2 for DNS over HTTPS; QUIC's) did not finish within
    /// the `[tls]` timeout.
    TimedOut,
    /// The handshake failed: no common protocol version, cipher or ALPN, a malformed
    /// message, the peer closed it.
    Failed,
}

impl Handshake {
    /// Every reason, in `repr` order.
    pub const ALL: [Handshake; 2] = [Handshake::TimedOut, Handshake::Failed];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Handshake::TimedOut => "timeout",
            Handshake::Failed => "failed",
        }
    }
}

/// Counters per transport.
#[derive(Debug)]
pub struct TransportStats {
    queries: [[AtomicU64; NR]; NQ],
    truncated: AtomicU64,
    dropped: AtomicU64,
    /// Answers the socket did not take (UDP).
    unsent: AtomicU64,
    unsent_lines: crate::logs::Throttle,
    /// Indexed like [`Handshake::ALL`].
    handshakes_failed: [AtomicU64; 2],
    handshake_lines: crate::logs::Throttle,
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_ns: AtomicU64,
    request_sizes: Sizes,
    response_sizes: Sizes,
    dnssec_ok: AtomicU64,
}

/// A size histogram.
#[derive(Debug, Default)]
struct Sizes {
    buckets: [AtomicU64; SIZE_BUCKETS.len() + 1],
    sum: AtomicU64,
}

impl Sizes {
    fn observe(&self, n: usize) {
        let b = SIZE_BUCKETS.iter().position(|&ub| n as f64 <= ub).unwrap_or(SIZE_BUCKETS.len());
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn read(&self) -> (Vec<u64>, f64) {
        (self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(), self.sum.load(Ordering::Relaxed) as f64)
    }
}

impl Default for TransportStats {
    fn default() -> Self {
        Self {
            queries: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            truncated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            unsent_lines: crate::logs::Throttle::new(),
            handshakes_failed: std::array::from_fn(|_| AtomicU64::new(0)),
            handshake_lines: crate::logs::Throttle::new(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            request_sizes: Sizes::default(),
            response_sizes: Sizes::default(),
            dnssec_ok: AtomicU64::new(0),
        }
    }
}

/// All query counters of a server, and the query capture every listener feeds.
#[derive(Debug, Default)]
pub struct Stats {
    /// Indexed like [`Listener::ALL`].
    by: [TransportStats; 5],
    rrl_dropped: AtomicU64,
    rrl_slipped: AtomicU64,
    tcp_open: AtomicU64,
    tcp_evicted: AtomicU64,
    /// Queries per zone, when asked for.
    zones: Option<ZoneCounters>,
    /// dnstap capture, when configured.
    pub(crate) tap: Option<Arc<crate::dnstap::Tap>>,
}

/// Queries per zone: a fixed open-addressing table of atomics, claimed by compare-and-swap
/// on a zone's first query (its apex copied in then), so counting takes no lock and
/// allocates nothing. At most `max` zones are counted; queries to others go to `overflow`.
#[derive(Debug)]
struct ZoneCounters {
    slots: Box<[ZoneSlot]>,
    max: usize,
    claimed: AtomicUsize,
    overflow: AtomicU64,
}

#[derive(Debug)]
struct ZoneSlot {
    /// Hash of the lower-case apex and the view; 0: free.
    key: AtomicU64,
    /// The apex (wire form, lower case) is written and may be read.
    ready: AtomicBool,
    apex: [AtomicU64; 32],
    external: AtomicBool,
    count: AtomicU64,
}

/// Probes before a zone is counted as overflow.
const ZONE_PROBES: usize = 16;

impl ZoneCounters {
    fn new(max: usize) -> Self {
        let n = (max.saturating_mul(2)).next_power_of_two().max(16);
        let slots = (0..n)
            .map(|_| ZoneSlot {
                key: AtomicU64::new(0),
                ready: AtomicBool::new(false),
                apex: std::array::from_fn(|_| AtomicU64::new(0)),
                external: AtomicBool::new(false),
                count: AtomicU64::new(0),
            })
            .collect();
        Self { slots, max, claimed: AtomicUsize::new(0), overflow: AtomicU64::new(0) }
    }

    fn count(&self, apex: &[u8], external: bool) {
        use std::hash::Hasher;
        let mut h = rustc_hash::FxHasher::default();
        for b in apex {
            h.write_u8(b.to_ascii_lowercase());
        }
        h.write_u8(u8::from(external));
        let key = h.finish() | 1;
        let mask = self.slots.len() - 1;
        for i in 0..ZONE_PROBES {
            let slot = &self.slots[(key as usize).wrapping_add(i) & mask];
            let k = slot.key.load(Ordering::Acquire);
            if k == key {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if k != 0 {
                continue;
            }
            if self.claimed.load(Ordering::Relaxed) >= self.max {
                break;
            }
            match slot.key.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.claimed.fetch_add(1, Ordering::Relaxed);
                    let mut words = [0u64; 32];
                    for (j, chunk) in apex.chunks(8).take(32).enumerate() {
                        let mut w = [0u8; 8];
                        w[..chunk.len()].copy_from_slice(chunk);
                        w.make_ascii_lowercase();
                        words[j] = u64::from_le_bytes(w);
                    }
                    for (a, w) in slot.apex.iter().zip(words) {
                        a.store(w, Ordering::Relaxed);
                    }
                    slot.external.store(external, Ordering::Relaxed);
                    slot.ready.store(true, Ordering::Release);
                    slot.count.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(k) if k == key => {
                    slot.count.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(_) => {}
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self) -> Vec<ZoneQueries> {
        let mut out = Vec::new();
        for slot in self.slots.iter().filter(|s| s.ready.load(Ordering::Acquire)) {
            let mut wire = Vec::with_capacity(256);
            for w in &slot.apex {
                wire.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
            }
            let Some(len) = r53dns_zone::name::wire_len(&wire) else { continue };
            out.push(ZoneQueries {
                zone: Some(r53dns_zone::name::wire_to_text(&wire[..len])),
                external: slot.external.load(Ordering::Relaxed),
                queries: slot.count.load(Ordering::Relaxed),
            });
        }
        out.sort_by(|a, b| (&a.zone, a.external).cmp(&(&b.zone, b.external)));
        let overflow = self.overflow.load(Ordering::Relaxed);
        if overflow > 0 {
            out.push(ZoneQueries { zone: None, external: false, queries: overflow });
        }
        out
    }
}

/// Queries answered from one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneQueries {
    /// The zone's apex (`None`: zones beyond the counted ones).
    pub zone: Option<String>,
    /// Answered from the view external clients see (`false`: the internal one).
    pub external: bool,
    /// Queries.
    pub queries: u64,
}

/// What one answer was, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// Question type.
    pub qtype: u16,
    /// Full response code (extended included).
    pub rcode: u16,
    /// TC was set.
    pub truncated: bool,
}

fn qtype_index(t: u16) -> usize {
    QTYPES.iter().position(|(_, c)| *c == t).unwrap_or(QTYPE_OTHER)
}

fn rcode_index(r: u16) -> usize {
    match r {
        0..=10 => usize::from(r),
        16 => 11,
        _ => 12,
    }
}

impl Stats {
    /// Counters that also count queries per zone, for up to `zones` zones (0: not per zone),
    /// and feed `tap`.
    pub(crate) fn new(zones: usize, tap: Option<Arc<crate::dnstap::Tap>>) -> Self {
        Self { zones: (zones > 0).then(|| ZoneCounters::new(zones)), tap, ..Self::default() }
    }

    /// Counts an answered query's sizes (octets, without TCP's length prefix) and whether
    /// it set the DO bit.
    pub(crate) fn sized(&self, t: impl Into<Listener>, request: usize, response: usize, dnssec_ok: bool) {
        let s = self.of(t);
        s.request_sizes.observe(request);
        s.response_sizes.observe(response);
        if dnssec_ok {
            s.dnssec_ok.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a query answered from `zones` (one of `snapshot`'s views), by the zone holding
    /// its question name, when queries are counted per zone.
    pub(crate) fn zone_query(&self, snapshot: &crate::Snapshot, zones: &crate::ZoneSet, request: &[u8]) {
        let Some(table) = &self.zones else { return };
        let Some(zone) = request.get(12..).and_then(|q| zones.zone_of(q)) else { return };
        let external = !std::ptr::eq(zones, snapshot.internal());
        table.count(zone.apex().wire(), external);
    }

    /// Queries per zone (empty unless counted).
    pub fn zone_queries(&self) -> Vec<ZoneQueries> {
        self.zones.as_ref().map(ZoneCounters::read).unwrap_or_default()
    }

    /// The dnstap capture's counters (`None` without one).
    pub fn dnstap(&self) -> Option<crate::dnstap::DnstapCounts> {
        self.tap.as_ref().map(|t| t.counts())
    }

    /// Request and response size histograms: per-bucket counts (not cumulative; the last is
    /// +Inf) and the sum in octets.
    #[allow(clippy::type_complexity)] // two histograms
    pub fn sizes(&self, t: impl Into<Listener>) -> ((Vec<u64>, f64), (Vec<u64>, f64)) {
        let s = self.of(t);
        (s.request_sizes.read(), s.response_sizes.read())
    }

    /// Queries that set the DO bit.
    pub fn dnssec_ok(&self, t: impl Into<Listener>) -> u64 {
        self.of(t).dnssec_ok.load(Ordering::Relaxed)
    }

    fn of(&self, t: impl Into<Listener>) -> &TransportStats {
        &self.by[t.into() as usize]
    }

    /// Counts one answered query and its latency.
    pub fn answered(&self, t: impl Into<Listener>, a: Answered, took: Duration) {
        let s = self.of(t);
        s.queries[qtype_index(a.qtype)][rcode_index(a.rcode)].fetch_add(1, Ordering::Relaxed);
        if a.truncated {
            s.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        let b = LATENCY_BUCKETS.iter().position(|&ub| secs <= ub).unwrap_or(LATENCY_BUCKETS.len());
        s.buckets[b].fetch_add(1, Ordering::Relaxed);
        s.latency_sum_ns.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a packet that got no answer (a response, a runt, garbage).
    pub fn dropped(&self, t: impl Into<Listener>) {
        self.of(t).dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an answer the socket would not take (and logs it, at most once a second).
    pub(crate) fn unsent(&self, t: impl Into<Listener>, peer: SocketAddr, error: &dyn std::fmt::Display) {
        let t = t.into();
        let s = self.of(t);
        s.unsent.fetch_add(1, Ordering::Relaxed);
        s.unsent_lines.log(|skipped| {
            tracing::warn!(transport = t.label(), %peer, %error, skipped, "an answer could not be sent");
        });
    }

    /// Answers the socket would not take.
    pub fn unsent_count(&self, t: impl Into<Listener>) -> u64 {
        self.of(t).unsent.load(Ordering::Relaxed)
    }

    /// Counts an encrypted connection closed in its handshake (and logs it, at most once a
    /// second per transport: scanners and misconfigured clients are common on port 853).
    pub(crate) fn handshake_failed(
        &self,
        t: impl Into<Listener>,
        why: Handshake,
        peer: SocketAddr,
        error: &dyn std::fmt::Display,
    ) {
        let t = t.into();
        let s = self.of(t);
        s.handshakes_failed[why as usize].fetch_add(1, Ordering::Relaxed);
        s.handshake_lines.log(|skipped| {
            let reason = why.label();
            tracing::info!(transport = t.label(), %peer, reason, %error, skipped, "connection closed in its handshake");
        });
    }

    /// Handshakes failed, by reason.
    pub fn handshakes_failed(&self, t: impl Into<Listener>) -> [(Handshake, u64); 2] {
        let s = self.of(t);
        Handshake::ALL.map(|h| (h, s.handshakes_failed[h as usize].load(Ordering::Relaxed)))
    }

    /// Queries by (qtype label, rcode label) with a non-zero count.
    pub fn queries(&self, t: impl Into<Listener>) -> Vec<(&'static str, &'static str, u64)> {
        let s = self.of(t);
        let mut out = Vec::new();
        for (qi, row) in s.queries.iter().enumerate() {
            for (ri, c) in row.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let q = QTYPES.get(qi).map_or("other", |(name, _)| name);
                    out.push((q, RCODES[ri], n));
                }
            }
        }
        out
    }

    /// Counts a response withheld (`slipped` false) or sent truncated (`slipped` true) by
    /// response rate limiting.
    pub fn rate_limited(&self, slipped: bool) {
        let c = if slipped { &self.rrl_slipped } else { &self.rrl_dropped };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Responses rate limiting dropped and slipped.
    pub fn rate_limited_counts(&self) -> (u64, u64) {
        (self.rrl_dropped.load(Ordering::Relaxed), self.rrl_slipped.load(Ordering::Relaxed))
    }

    /// Sets the number of TCP connections open now.
    pub fn tcp_open(&self, n: usize) {
        self.tcp_open.store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts an idle TCP connection closed to make room for a new one.
    pub fn tcp_evicted(&self) {
        self.tcp_evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// TCP connections open now and idle ones closed so far to make room.
    pub fn tcp_counts(&self) -> (u64, u64) {
        (self.tcp_open.load(Ordering::Relaxed), self.tcp_evicted.load(Ordering::Relaxed))
    }

    /// Truncated responses.
    pub fn truncated(&self, t: impl Into<Listener>) -> u64 {
        self.of(t).truncated.load(Ordering::Relaxed)
    }

    /// Dropped packets.
    pub fn dropped_count(&self, t: impl Into<Listener>) -> u64 {
        self.of(t).dropped.load(Ordering::Relaxed)
    }

    /// Latency histogram: per-bucket counts (not cumulative; the last is +Inf) and the sum
    /// in seconds.
    pub fn latency(&self, t: impl Into<Listener>) -> (Vec<u64>, f64) {
        let s = self.of(t);
        let counts = s.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        (counts, s.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9)
    }
}

/// Reads qtype, rcode and TC back from a response this server wrote.
pub(crate) fn inspect(response: &[u8], question_qtype: u16, ext_rcode: u16) -> Answered {
    let rcode = response.get(3).map_or(0, |b| u16::from(b & 0x0f)) | ext_rcode;
    let truncated = response.get(2).is_some_and(|b| b & 0x02 != 0);
    Answered { qtype: question_qtype, rcode, truncated }
}
