//! Query counters kept as plain atomics on the serving path; exported elsewhere (the app
//! turns them into Prometheus metrics at scrape time), so serving never touches a registry.

use std::sync::atomic::{AtomicU64, Ordering};
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

/// Counters per transport.
#[derive(Debug)]
pub struct TransportStats {
    queries: [[AtomicU64; NR]; NQ],
    truncated: AtomicU64,
    dropped: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_ns: AtomicU64,
}

impl Default for TransportStats {
    fn default() -> Self {
        Self {
            queries: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            truncated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
        }
    }
}

/// All query counters of a server.
#[derive(Debug, Default)]
pub struct Stats {
    /// Indexed like [`Listener::ALL`].
    by: [TransportStats; 5],
    rrl_dropped: AtomicU64,
    rrl_slipped: AtomicU64,
    tcp_open: AtomicU64,
    tcp_evicted: AtomicU64,
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
