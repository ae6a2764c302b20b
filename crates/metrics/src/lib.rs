//! Typed Prometheus metrics of r53dns and its HTTP endpoint: `/metrics`, `/healthz`,
//! `/readyz`, and the admin routes `POST /sync` and `GET /zones`.
//!
//! Every metric is named `r53dns_*` and every label takes values from a bounded set (query
//! types and rcodes are fixed lists; zone labels are bounded by the number of zones served).
//! Query counters are kept by the server as plain atomics and read at scrape time through
//! [`QuerySource`], so answering a query never touches the registry.
//!
//! ```
//! let m = r53dns_metrics::Metrics::new("1.2.3");
//! m.sweeps.with_label_values(&["ok"]).inc();
//! let text = m.render();
//! assert!(text.contains("r53dns_sync_sweeps_total{outcome=\"ok\"} 1"));
//! assert!(text.contains(&format!("revision=\"{}\",version=\"1.2.3\"}} 1", r53dns_metrics::REVISION)));
//! ```
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

/// The git revision this was built from (`unknown` outside a git checkout).
pub const REVISION: &str = env!("R53DNS_GIT_REVISION");

/// What the build serves and reads, for `r53dns_build_info{features}`.
pub const FEATURES: &str = "udp,tcp,dot,doh,doq,xot,xoq,route53,sqs-events,s3-replication";

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio_util::sync::CancellationToken;

/// Query counters of one transport at scrape time.
#[derive(Debug, Clone, Default)]
pub struct TransportCounts {
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// (qtype, rcode, count).
    pub queries: Vec<(&'static str, &'static str, u64)>,
    /// Responses with TC set.
    pub truncated: u64,
    /// Packets not answered (responses, runts, garbage).
    pub dropped: u64,
    /// Latency bucket upper bounds (seconds).
    pub bucket_bounds: Vec<f64>,
    /// Per-bucket counts, not cumulative; one more than the bounds (+Inf).
    pub bucket_counts: Vec<u64>,
    /// Sum of latencies in seconds.
    pub latency_sum: f64,
    /// Request sizes (octets) of answered queries.
    pub request_sizes: SizeHistogram,
    /// Response sizes (octets).
    pub response_sizes: SizeHistogram,
    /// Queries that set the DO bit.
    pub dnssec_ok: u64,
    /// Answers the socket would not take.
    pub unsent: u64,
    /// Connections closed in their handshake, by reason (`timeout`, `failed`); empty for
    /// unencrypted transports.
    pub handshakes_failed: Vec<(&'static str, u64)>,
}

/// A size histogram at scrape time.
#[derive(Debug, Clone, Default)]
pub struct SizeHistogram {
    /// Bucket upper bounds (octets).
    pub bounds: Vec<f64>,
    /// Per-bucket counts, not cumulative; one more than the bounds (+Inf).
    pub counts: Vec<u64>,
    /// Sum of sizes.
    pub sum: f64,
}

/// Queries answered from one zone.
#[derive(Debug, Clone, Default)]
pub struct ZoneCount {
    /// The zone (`other`: zones beyond the counted ones).
    pub zone: String,
    /// `internal` or `external`.
    pub view: &'static str,
    /// Queries.
    pub queries: u64,
}

/// The dnstap capture's counters at scrape time.
#[derive(Debug, Clone, Default)]
pub struct DnstapCounts {
    /// Frames written to the receiver.
    pub sent: u64,
    /// Frames dropped, by reason.
    pub dropped: Vec<(&'static str, u64)>,
    /// Whether the receiver is connected.
    pub connected: bool,
}

/// Where query counters come from (the DNS server).
pub trait QuerySource: Send + Sync {
    /// The counters now.
    fn counts(&self) -> Vec<TransportCounts>;

    /// Answers response rate limiting withheld and sent truncated.
    fn rate_limited(&self) -> (u64, u64) {
        (0, 0)
    }

    /// TCP connections open now, and idle ones closed so far to make room for new ones.
    fn tcp(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Requests refused so far, by reason (failed TSIG, not allowed, over a limit).
    fn refusals(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Queries per zone, when counted (empty otherwise: no series).
    fn zone_queries(&self) -> Vec<ZoneCount> {
        Vec::new()
    }

    /// The dnstap capture's counters (`None`: no capture, no series).
    fn dnstap(&self) -> Option<DnstapCounts> {
        None
    }

    /// The response cache's counters (`None`: no cache).
    fn response_cache(&self) -> Option<ResponseCacheCounts> {
        None
    }
}

const TCP_OPEN: (&str, &str) = ("r53dns_tcp_connections", "TCP connections open now.");
const TCP_EVICTED: (&str, &str) = (
    "r53dns_tcp_connections_evicted_total",
    "Idle TCP connections closed to make room for a new one at the connection cap.",
);
const UNSENT: (&str, &str) =
    ("r53dns_responses_unsent_total", "Answers the socket would not take (the send failed), by transport.");
const HANDSHAKES_FAILED: (&str, &str) = (
    "r53dns_handshakes_failed_total",
    "Encrypted connections closed in their handshake, by transport and reason (timeout, failed).",
);
const REFUSED: (&str, &str) = (
    "r53dns_requests_refused_total",
    "Requests refused by reason: failed TSIG, a network or key not allowed, a limit reached (one log line a second per reason).",
);

const REQUEST_SIZE: (&str, &str) =
    ("r53dns_request_size_bytes", "Size of the DNS messages of answered queries (without TCP's length prefix).");
const RESPONSE_SIZE: (&str, &str) = ("r53dns_response_size_bytes", "Size of the DNS responses sent.");
const DNSSEC_OK: (&str, &str) = ("r53dns_queries_dnssec_ok_total", "Answered queries that set the DO bit.");
const ZONE_QUERIES: (&str, &str) = (
    "r53dns_zone_queries_total",
    "Queries answered from each zone, by view (only with zone-query-metrics; zone=\"other\": zones beyond the limit).",
);
const DNSTAP_SENT: (&str, &str) = ("r53dns_dnstap_frames_sent_total", "dnstap frames written to the receiver.");
const DNSTAP_DROPPED: (&str, &str) = (
    "r53dns_dnstap_frames_dropped_total",
    "dnstap frames dropped: the buffer was full (the writer or receiver is behind), the receiver was down, or the message too large.",
);
const DNSTAP_CONNECTED: (&str, &str) = ("r53dns_dnstap_connected", "1 while the dnstap receiver is connected.");

fn histogram(pairs: &[(&str, &str)], bounds: &[f64], counts: &[u64], sum: f64) -> prometheus::proto::Metric {
    let mut h = prometheus::proto::Histogram::default();
    let mut cumulative = 0;
    let mut buckets = Vec::new();
    for (i, ub) in bounds.iter().enumerate() {
        cumulative += counts.get(i).copied().unwrap_or(0);
        let mut b = prometheus::proto::Bucket::default();
        b.set_upper_bound(*ub);
        b.set_cumulative_count(cumulative);
        buckets.push(b);
    }
    h.set_bucket(buckets);
    h.set_sample_count(counts.iter().sum());
    h.set_sample_sum(sum);
    let mut m = prometheus::proto::Metric::default();
    m.set_label(labels(pairs));
    m.set_histogram(h);
    m
}

fn gauge(v: f64) -> prometheus::proto::Metric {
    let mut g = prometheus::proto::Metric::default();
    let mut x = prometheus::proto::Gauge::default();
    x.set_value(v);
    g.set_gauge(x);
    g
}

struct QueryCollector {
    source: Arc<dyn QuerySource>,
    descs: Vec<Desc>,
}

impl QueryCollector {
    fn new(source: Arc<dyn QuerySource>) -> Self {
        let mk = |name: &str, help: &str, labels: &[&str]| {
            Desc::new(name.into(), help.into(), labels.iter().map(|s| (*s).to_owned()).collect(), Default::default())
        };
        let descs = [
            mk(
                "r53dns_queries_total",
                "DNS queries answered, by transport, query type and rcode.",
                &["transport", "qtype", "rcode"],
            ),
            mk("r53dns_responses_truncated_total", "Responses sent with TC set.", &["transport"]),
            mk("r53dns_dropped_packets_total", "Packets given no answer (responses, runts, garbage).", &["transport"]),
            mk(
                "r53dns_response_duration_seconds",
                "Time from receiving a query to sending its answer.",
                &["transport"],
            ),
            mk(
                "r53dns_rrl_responses_total",
                "UDP answers response rate limiting withheld (dropped) or sent truncated (slipped).",
                &["action"],
            ),
            mk(TCP_OPEN.0, TCP_OPEN.1, &[]),
            mk(TCP_EVICTED.0, TCP_EVICTED.1, &[]),
            mk(REFUSED.0, REFUSED.1, &["reason"]),
            mk(UNSENT.0, UNSENT.1, &["transport"]),
            mk(HANDSHAKES_FAILED.0, HANDSHAKES_FAILED.1, &["transport", "reason"]),
            mk(REQUEST_SIZE.0, REQUEST_SIZE.1, &["transport"]),
            mk(RESPONSE_SIZE.0, RESPONSE_SIZE.1, &["transport"]),
            mk(DNSSEC_OK.0, DNSSEC_OK.1, &["transport"]),
            mk(ZONE_QUERIES.0, ZONE_QUERIES.1, &["zone", "view"]),
            mk(DNSTAP_SENT.0, DNSTAP_SENT.1, &[]),
            mk(DNSTAP_DROPPED.0, DNSTAP_DROPPED.1, &["reason"]),
            mk(DNSTAP_CONNECTED.0, DNSTAP_CONNECTED.1, &[]),
        ]
        .into_iter()
        .chain(RESPONSE_CACHE.iter().map(|(name, help, labels)| mk(name, help, labels)))
        .filter_map(Result::ok)
        .collect();
        Self { source, descs }
    }
}

fn family(
    name: &str,
    help: &str,
    kind: prometheus::proto::MetricType,
    metrics: Vec<prometheus::proto::Metric>,
) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn labels(pairs: &[(&str, &str)]) -> Vec<prometheus::proto::LabelPair> {
    // Sorted by name, as the registry's own metrics are.
    let mut pairs = pairs.to_vec();
    pairs.sort_by_key(|(k, _)| *k);
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = prometheus::proto::LabelPair::default();
            l.set_name((*k).into());
            l.set_value((*v).into());
            l
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], v: u64) -> prometheus::proto::Metric {
    let mut m = prometheus::proto::Metric::default();
    m.set_label(labels(pairs));
    let mut c = prometheus::proto::Counter::default();
    c.set_value(v as f64);
    m.set_counter(c);
    m
}

impl Collector for QueryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        use prometheus::proto::MetricType;
        let counts = self.source.counts();
        let mut queries = Vec::new();
        let mut truncated = Vec::new();
        let mut dropped = Vec::new();
        let mut latency = Vec::new();
        let (mut request_sizes, mut response_sizes, mut dnssec_ok) = (Vec::new(), Vec::new(), Vec::new());
        let (mut unsent, mut handshakes) = (Vec::new(), Vec::new());
        for t in &counts {
            unsent.push(counter(&[("transport", t.transport)], t.unsent));
            for (reason, n) in &t.handshakes_failed {
                handshakes.push(counter(&[("transport", t.transport), ("reason", reason)], *n));
            }
            let tl = [("transport", t.transport)];
            let (rq, rs) = (&t.request_sizes, &t.response_sizes);
            request_sizes.push(histogram(&tl, &rq.bounds, &rq.counts, rq.sum));
            response_sizes.push(histogram(&tl, &rs.bounds, &rs.counts, rs.sum));
            dnssec_ok.push(counter(&tl, t.dnssec_ok));
            for (q, r, n) in &t.queries {
                queries.push(counter(&[("transport", t.transport), ("qtype", q), ("rcode", r)], *n));
            }
            truncated.push(counter(&[("transport", t.transport)], t.truncated));
            dropped.push(counter(&[("transport", t.transport)], t.dropped));
            let mut h = prometheus::proto::Histogram::default();
            let mut cumulative = 0;
            let mut buckets = Vec::new();
            for (i, ub) in t.bucket_bounds.iter().enumerate() {
                cumulative += t.bucket_counts.get(i).copied().unwrap_or(0);
                let mut b = prometheus::proto::Bucket::default();
                b.set_upper_bound(*ub);
                b.set_cumulative_count(cumulative);
                buckets.push(b);
            }
            let total: u64 = t.bucket_counts.iter().sum();
            h.set_bucket(buckets);
            h.set_sample_count(total);
            h.set_sample_sum(t.latency_sum);
            let mut m = prometheus::proto::Metric::default();
            m.set_label(labels(&[("transport", t.transport)]));
            m.set_histogram(h);
            latency.push(m);
        }
        vec![
            family(
                "r53dns_queries_total",
                "DNS queries answered, by transport, query type and rcode.",
                MetricType::COUNTER,
                queries,
            ),
            family("r53dns_responses_truncated_total", "Responses sent with TC set.", MetricType::COUNTER, truncated),
            family(
                "r53dns_dropped_packets_total",
                "Packets given no answer (responses, runts, garbage).",
                MetricType::COUNTER,
                dropped,
            ),
            family(
                "r53dns_response_duration_seconds",
                "Time from receiving a query to sending its answer.",
                MetricType::HISTOGRAM,
                latency,
            ),
            {
                let (dropped, slipped) = self.source.rate_limited();
                family(
                    "r53dns_rrl_responses_total",
                    "UDP answers response rate limiting withheld (dropped) or sent truncated (slipped).",
                    MetricType::COUNTER,
                    vec![counter(&[("action", "dropped")], dropped), counter(&[("action", "slipped")], slipped)],
                )
            },
            {
                let (open, _) = self.source.tcp();
                let mut g = prometheus::proto::Metric::default();
                let mut v = prometheus::proto::Gauge::default();
                v.set_value(open as f64);
                g.set_gauge(v);
                family(TCP_OPEN.0, TCP_OPEN.1, MetricType::GAUGE, vec![g])
            },
            family(TCP_EVICTED.0, TCP_EVICTED.1, MetricType::COUNTER, vec![counter(&[], self.source.tcp().1)]),
            family(REQUEST_SIZE.0, REQUEST_SIZE.1, MetricType::HISTOGRAM, request_sizes),
            family(RESPONSE_SIZE.0, RESPONSE_SIZE.1, MetricType::HISTOGRAM, response_sizes),
            family(DNSSEC_OK.0, DNSSEC_OK.1, MetricType::COUNTER, dnssec_ok),
            family(UNSENT.0, UNSENT.1, MetricType::COUNTER, unsent),
        ]
        .into_iter()
        .chain({
            // The text encoder refuses a family with no samples.
            (!handshakes.is_empty())
                .then(|| family(HANDSHAKES_FAILED.0, HANDSHAKES_FAILED.1, MetricType::COUNTER, handshakes))
        })
        .chain({
            // The text encoder refuses a family with no samples.
            let refused: Vec<_> =
                self.source.refusals().into_iter().map(|(reason, n)| counter(&[("reason", reason)], n)).collect();
            (!refused.is_empty()).then(|| family(REFUSED.0, REFUSED.1, MetricType::COUNTER, refused))
        })
        .chain({
            let zones: Vec<_> = self
                .source
                .zone_queries()
                .iter()
                .map(|z| counter(&[("zone", &z.zone), ("view", z.view)], z.queries))
                .collect();
            (!zones.is_empty()).then(|| family(ZONE_QUERIES.0, ZONE_QUERIES.1, MetricType::COUNTER, zones))
        })
        .chain(self.source.dnstap().into_iter().flat_map(|d| {
            let dropped = d.dropped.iter().map(|(reason, n)| counter(&[("reason", reason)], *n)).collect();
            [
                family(DNSTAP_SENT.0, DNSTAP_SENT.1, MetricType::COUNTER, vec![counter(&[], d.sent)]),
                family(DNSTAP_DROPPED.0, DNSTAP_DROPPED.1, MetricType::COUNTER, dropped),
                family(
                    DNSTAP_CONNECTED.0,
                    DNSTAP_CONNECTED.1,
                    MetricType::GAUGE,
                    vec![gauge(f64::from(u8::from(d.connected)))],
                ),
            ]
        }))
        .chain(self.source.response_cache().map(response_cache_families).into_iter().flatten())
        .collect()
    }
}

/// The response cache's counters at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseCacheCounts {
    /// Answers copied from the cache.
    pub hits: u64,
    /// Cacheable questions not found there.
    pub misses: u64,
    /// Answers stored.
    pub inserts: u64,
    /// Stored answers given up for new ones (the table was full where they hash).
    pub evictions: u64,
    /// Answers too large for a slot, not stored.
    pub too_large: u64,
    /// Answers not stored because their question missed for the first time.
    pub first_sighting: u64,
    /// Answers not stored because another worker was writing where they would go.
    pub busy: u64,
    /// Questions and answers that bypass the cache (routed per query, client subnet,
    /// signed, refused).
    pub bypassed: u64,
    /// Octets of table allocated (the budget).
    pub bytes: u64,
}

const RESPONSE_CACHE: [(&str, &str, &[&str]); 5] = [
    (
        "r53dns_response_cache_lookups_total",
        "Cacheable questions looked up in the response cache, by result (hit, miss).",
        &["result"],
    ),
    ("r53dns_response_cache_inserts_total", "Answers stored in the response cache.", &[]),
    (
        "r53dns_response_cache_evictions_total",
        "Answers the response cache gave up to store others (its budget is full where they hash).",
        &[],
    ),
    (
        "r53dns_response_cache_skipped_total",
        "Answers not cached, by reason: too_large for a slot, first_sighting (stored on the second miss), busy (another worker was writing there), bypassed (routed per query, client subnet, signed, refused).",
        &["reason"],
    ),
    ("r53dns_response_cache_bytes", "Memory of the response cache (its budget).", &[]),
];

fn response_cache_families(c: ResponseCacheCounts) -> Vec<MetricFamily> {
    use prometheus::proto::MetricType;
    let [lookups, inserts, evictions, skipped, bytes] = RESPONSE_CACHE;
    let mut g = prometheus::proto::Metric::default();
    let mut v = prometheus::proto::Gauge::default();
    v.set_value(c.bytes as f64);
    g.set_gauge(v);
    vec![
        family(
            lookups.0,
            lookups.1,
            MetricType::COUNTER,
            vec![counter(&[("result", "hit")], c.hits), counter(&[("result", "miss")], c.misses)],
        ),
        family(inserts.0, inserts.1, MetricType::COUNTER, vec![counter(&[], c.inserts)]),
        family(evictions.0, evictions.1, MetricType::COUNTER, vec![counter(&[], c.evictions)]),
        family(
            skipped.0,
            skipped.1,
            MetricType::COUNTER,
            vec![
                counter(&[("reason", "too_large")], c.too_large),
                counter(&[("reason", "first_sighting")], c.first_sighting),
                counter(&[("reason", "busy")], c.busy),
                counter(&[("reason", "bypassed")], c.bypassed),
            ],
        ),
        family(bytes.0, bytes.1, MetricType::GAUGE, vec![g]),
    ]
}

/// The metrics of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Records per zone.
    pub zone_records: IntGaugeVec,
    /// SOA serial per zone.
    pub zone_serial: IntGaugeVec,
    /// Unix time each zone was last confirmed by its origin.
    pub zone_last_sync: GaugeVec,
    /// Failed fetches or conversions per Route53 zone.
    pub zone_sync_failures: IntCounterVec,
    /// Sweep durations.
    pub sweep_duration: Histogram,
    /// Sweeps by outcome (`ok`, `partial`, `failed`).
    pub sweeps: IntCounterVec,
    /// Route53 API calls by operation and outcome (`ok`, `throttled`, `retried`, `failed`).
    pub api_calls: IntCounterVec,
    /// Route53 throttling responses.
    pub api_throttles: IntCounter,
    /// Route53 calls retried.
    pub api_retries: IntCounter,
    /// Seconds since the served data was last confirmed by its origin.
    pub snapshot_age: Gauge,
    /// Saves of the Route53 snapshot to the state directory by outcome (`written`, `failed`,
    /// `superseded`: replaced by a later one before the writer took it).
    pub state_saves: IntCounterVec,
    /// Zones whose file in the state directory was damaged at start, by outcome
    /// (`previous`: served from the previous save, `skipped`: left out).
    pub state_damaged_zones: IntCounterVec,
    /// Alias targets (AWS endpoints) that could not be resolved.
    pub alias_failures: IntCounter,
    /// 1 while ready.
    pub ready: Gauge,
    /// DNS UPDATE requests by outcome (`applied`, `unchanged`, `refused`, `notauth`,
    /// `prerequisite`, `formerr`, `notzone`, `failed`).
    pub updates: IntCounterVec,
    /// Refreshes of secondary zones by zone and outcome (`axfr`, `ixfr`, `current`,
    /// `failed`).
    pub transfers_in: IntCounterVec,
    /// Seconds left before a secondary zone expires if its primary stays silent.
    pub secondary_expire: GaugeVec,
    /// Snapshot requests served to replicas, by outcome (`manifest`, `not_modified`, `zone`,
    /// `refused`).
    pub replication_requests: IntCounterVec,
    /// Bytes of zone objects sent to replicas.
    pub replication_bytes_sent: IntCounter,
    /// Bytes received from the replication source.
    pub replication_bytes_received: IntCounter,
    /// Rounds with the replication source, by outcome (`applied`, `unchanged`, `failed`).
    pub replication_fetches: IntCounterVec,
    /// Snapshots refused, by reason (`damaged`, `version`, `inconsistent`, `serial_back`,
    /// `too_large`).
    pub replication_refused: IntCounterVec,
    /// Seconds since the replication source last answered.
    pub replication_lag: Gauge,
    /// Largest serial step the source has that this replica does not serve yet.
    pub replication_serial_behind: Gauge,
    /// Snapshot writes to S3 by outcome (`written`, `conflict`, `failed`).
    pub replication_s3_writes: IntCounterVec,
    /// Route53 change events by outcome (`applied`, `unchanged`, `duplicate`, `unserved`,
    /// `ignored`, `foreign`, `malformed`, `failed`).
    pub events: IntCounterVec,
    /// 1 while the event queue (`queue`: its name) answers, 0 while it does not; absent
    /// without events.
    pub events_queue_up: GaugeVec,
    /// Failed receives from the event queue.
    pub events_receive_failures: IntCounter,
    /// Seconds from a Route53 change (its event's time) to its publication.
    pub event_delay: Histogram,
}

impl Metrics {
    /// A registry with every metric, the build info and process metrics.
    pub fn new(version: &str) -> Self {
        let registry = Registry::new();
        let reg = |c: Box<dyn Collector>| {
            if let Err(e) = registry.register(c) {
                tracing::warn!(error = %e, "metric not registered");
            }
        };
        macro_rules! make {
            ($e:expr) => {{
                let m = $e.expect("metric definitions are static and valid");
                reg(Box::new(m.clone()));
                m
            }};
        }
        let zone_records = make!(IntGaugeVec::new(
            Opts::new("r53dns_zone_records", "Records served per zone."),
            &["zone", "source", "hosted_zone"]
        ));
        let zone_serial = make!(IntGaugeVec::new(
            Opts::new("r53dns_zone_serial", "SOA serial served per zone."),
            &["zone", "hosted_zone"]
        ));
        let zone_last_sync = make!(GaugeVec::new(
            Opts::new(
                "r53dns_zone_last_sync_timestamp_seconds",
                "Unix time a zone was last confirmed by its origin (a complete Route53 listing, or the primary of a secondary zone)."
            ),
            &["zone", "hosted_zone"]
        ));
        let zone_sync_failures = make!(IntCounterVec::new(
            Opts::new("r53dns_zone_sync_failures_total", "Failed fetches or conversions of a Route53 zone."),
            &["zone"]
        ));
        let sweep_duration = make!(Histogram::with_opts(
            HistogramOpts::new("r53dns_sync_sweep_duration_seconds", "Duration of Route53 sweeps.")
                .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0])
        ));
        let sweeps = make!(IntCounterVec::new(
            Opts::new("r53dns_sync_sweeps_total", "Route53 sweeps by outcome."),
            &["outcome"]
        ));
        let api_calls = make!(IntCounterVec::new(
            Opts::new("r53dns_route53_api_calls_total", "Route53 API calls by operation and outcome."),
            &["operation", "outcome"]
        ));
        let api_throttles = make!(IntCounter::new("r53dns_route53_throttles_total", "Route53 throttling responses."));
        let api_retries = make!(IntCounter::new("r53dns_route53_retries_total", "Route53 API calls retried."));
        let state_saves = make!(IntCounterVec::new(
            Opts::new(
                "r53dns_state_saves_total",
                "Saves of the Route53 snapshot to the state directory, by outcome (written, failed, superseded: replaced by a later one before it was written)."
            ),
            &["outcome"]
        ));
        let state_damaged_zones = make!(IntCounterVec::new(
            Opts::new(
                "r53dns_state_damaged_zones_total",
                "Zones whose file in the state directory was damaged at start, by outcome (previous: served from the previous save, skipped: left out until listed again)."
            ),
            &["outcome"]
        ));
        let snapshot_age = make!(Gauge::new(
            "r53dns_snapshot_age_seconds",
            "Seconds since the served data was last confirmed by its origin: a Route53 sweep that listed every zone (on a replica, its source's), or the least recently confirmed secondary zone."
        ));
        let alias_failures = make!(IntCounter::new(
            "r53dns_alias_resolution_failures_total",
            "Alias targets (AWS endpoints) that did not resolve."
        ));
        let ready = make!(Gauge::new("r53dns_ready", "1 while the server reports ready."));
        let updates = make!(IntCounterVec::new(
            Opts::new("r53dns_updates_total", "DNS UPDATE requests, by outcome."),
            &["outcome"]
        ));
        let transfers_in = make!(IntCounterVec::new(
            Opts::new(
                "r53dns_secondary_refreshes_total",
                "Refreshes of secondary zones from their primary, by outcome (axfr, ixfr, current, failed, too_large)."
            ),
            &["zone", "outcome"]
        ));
        let secondary_expire = make!(GaugeVec::new(
            Opts::new(
                "r53dns_secondary_expire_seconds",
                "Seconds left before a secondary zone is withdrawn if its primary stays silent (SOA expire)."
            ),
            &["zone"]
        ));
        let replication_requests = make!(IntCounterVec::new(
            Opts::new(
                "r53dns_replication_requests_total",
                "Snapshot requests from replicas, by outcome (manifest, not_modified, zone, refused)."
            ),
            &["outcome"]
        ));
        let replication_bytes_sent =
            make!(IntCounter::new("r53dns_replication_sent_bytes_total", "Bytes of zone objects sent to replicas."));
        let replication_bytes_received = make!(IntCounter::new(
            "r53dns_replication_received_bytes_total",
            "Bytes received from the replication source."
        ));
        let replication_fetches = make!(IntCounterVec::new(
            Opts::new(
                "r53dns_replication_fetches_total",
                "Rounds with the replication source, by outcome (applied, unchanged, failed)."
            ),
            &["outcome"]
        ));
        let replication_refused = make!(IntCounterVec::new(
            Opts::new(
                "r53dns_replication_refused_total",
                "Snapshots from the source refused, by reason (damaged, version, inconsistent, serial_back, too_large)."
            ),
            &["reason"]
        ));
        let replication_lag = make!(Gauge::new(
            "r53dns_replication_lag_seconds",
            "Seconds since the replication source last answered (0 while following)."
        ));
        let replication_serial_behind = make!(Gauge::new(
            "r53dns_replication_serial_behind",
            "Largest serial step the source has that this replica does not serve yet."
        ));
        let replication_s3_writes = make!(IntCounterVec::new(
            Opts::new(
                "r53dns_replication_s3_writes_total",
                "Snapshot writes to S3, by outcome (written, conflict: another syncer wrote first, failed)."
            ),
            &["outcome"]
        ));
        let events = make!(IntCounterVec::new(
            Opts::new(
                "r53dns_route53_events_total",
                "Route53 change events from the event queue, by outcome (applied, unchanged, duplicate, unserved, ignored, foreign, malformed, failed)."
            ),
            &["outcome"]
        ));
        let events_queue_up = make!(GaugeVec::new(
            Opts::new(
                "r53dns_route53_events_queue_up",
                "1 while the Route53 event queue answers, 0 while it does not (sweeps stand in)."
            ),
            &["queue"]
        ));
        let events_receive_failures = make!(IntCounter::new(
            "r53dns_route53_events_receive_failures_total",
            "Failed receives from the Route53 event queue."
        ));
        let event_delay = make!(Histogram::with_opts(
            HistogramOpts::new(
                "r53dns_route53_event_delay_seconds",
                "Seconds from a Route53 change (the time in its event) until it is served."
            )
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0])
        ));
        let build = make!(IntGaugeVec::new(
            Opts::new(
                "r53dns_build_info",
                "Build information: version, git revision, transports and sources built in."
            ),
            &["version", "revision", "features"]
        ));
        build.with_label_values(&[version, REVISION, FEATURES]).set(1);
        reg(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        Self {
            registry,
            zone_records,
            zone_serial,
            zone_last_sync,
            zone_sync_failures,
            sweep_duration,
            sweeps,
            api_calls,
            api_throttles,
            api_retries,
            snapshot_age,
            state_saves,
            state_damaged_zones,
            alias_failures,
            ready,
            updates,
            transfers_in,
            secondary_expire,
            replication_requests,
            replication_bytes_sent,
            replication_bytes_received,
            replication_fetches,
            replication_refused,
            replication_lag,
            replication_serial_behind,
            replication_s3_writes,
            events,
            events_queue_up,
            events_receive_failures,
            event_delay,
        }
    }

    /// Adds the query counters of a server.
    pub fn add_queries(&self, source: Arc<dyn QuerySource>) {
        if let Err(e) = self.registry.register(Box::new(QueryCollector::new(source))) {
            tracing::warn!(error = %e, "query metrics not registered");
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric as JSON, for `r53dns ctl stats`: `{"name": [{"labels": {…}, "value": v}]}`,
    /// histograms as their `count` and `sum`.
    pub fn json(&self) -> String {
        use prometheus::proto::MetricType;
        let mut out = serde_json::Map::new();
        for family in self.registry.gather() {
            let samples: Vec<serde_json::Value> = family
                .get_metric()
                .iter()
                .map(|m| {
                    let labels: serde_json::Map<String, serde_json::Value> =
                        m.get_label().iter().map(|l| (l.name().to_owned(), l.value().into())).collect();
                    let mut sample = serde_json::json!({ "labels": labels });
                    match family.get_field_type() {
                        MetricType::COUNTER => sample["value"] = m.get_counter().get_value().into(),
                        MetricType::GAUGE => sample["value"] = m.get_gauge().get_value().into(),
                        MetricType::HISTOGRAM => {
                            sample["count"] = m.get_histogram().get_sample_count().into();
                            sample["sum"] = m.get_histogram().get_sample_sum().into();
                        }
                        MetricType::SUMMARY | MetricType::UNTYPED => {}
                    }
                    sample
                })
                .collect();
            out.insert(family.name().to_owned(), samples.into());
        }
        serde_json::to_string_pretty(&out).unwrap_or_else(|_| "{}".into())
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// What the HTTP endpoint asks of the rest of the process.
pub trait Probes: Send + Sync + 'static {
    /// Whether there is data to serve and the process is not shutting down.
    fn ready(&self) -> bool;
    /// One line on why the process is (not) ready, for the `/readyz` body.
    fn readiness_detail(&self) -> String {
        String::new()
    }
    /// Triggers a Route53 sweep; false when there is no Route53 source.
    fn trigger_sync(&self) -> bool;
    /// Zones as JSON.
    fn zones_json(&self) -> String;
    /// Called before each scrape to refresh gauges.
    fn before_scrape(&self) {}
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    probes: Arc<dyn Probes>,
    admin: bool,
}

async fn scrape(State(s): State<AppState>) -> Response {
    s.probes.before_scrape();
    s.metrics.ready.set(if s.probes.ready() { 1.0 } else { 0.0 });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    let detail = s.probes.readiness_detail();
    let sep = if detail.is_empty() { "" } else { ": " };
    if s.probes.ready() {
        (StatusCode::OK, format!("ready{sep}{detail}\n")).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready{sep}{detail}\n")).into_response()
    }
}

/// The header `r53dns ctl` sends with every admin request. A browser cannot send it across
/// sites without a CORS preflight, which this endpoint never grants: a web page an operator
/// visits cannot trigger a sweep or read the zone list.
pub const ADMIN_HEADER: &str = "x-r53dns-ctl";

/// Why an admin request is refused, if it is.
fn admin_refusal(s: &AppState, headers: &axum::http::HeaderMap) -> Option<Response> {
    if !s.admin {
        return Some((StatusCode::FORBIDDEN, "admin routes are disabled\n").into_response());
    }
    admin_request_refusal(headers)
}

/// The checks an admin request on the HTTP endpoint passes (when admin routes are on): the
/// [`ADMIN_HEADER`], and a `Host` that is an address or `localhost`. `None` when it passes.
pub fn admin_request_refusal(headers: &axum::http::HeaderMap) -> Option<Response> {
    if !headers.contains_key(ADMIN_HEADER) {
        return Some(
            (StatusCode::FORBIDDEN, format!("admin requests need the {ADMIN_HEADER} header (r53dns ctl sends it)\n"))
                .into_response(),
        );
    }
    // DNS rebinding: a name that resolves to this address is still not this server's name.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let bare =
        host.rsplit_once(':').filter(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok()).map_or(host, |(h, _)| h);
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    if bare != "localhost" && bare.parse::<std::net::IpAddr>().is_err() {
        return Some((StatusCode::FORBIDDEN, "admin requests must name the server by address\n").into_response());
    }
    None
}

async fn sync(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(r) = admin_refusal(&s, &headers) {
        return r;
    }
    if s.probes.trigger_sync() {
        (StatusCode::ACCEPTED, "sync triggered\n").into_response()
    } else {
        (StatusCode::CONFLICT, "no Route53 source configured\n").into_response()
    }
}

async fn zones(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(r) = admin_refusal(&s, &headers) {
        return r;
    }
    ([(header::CONTENT_TYPE, "application/json")], s.probes.zones_json()).into_response()
}

/// Serves HTTP on `listener` until `shutdown`. Admin routes answer 403 unless `admin`.
/// `extra` adds routes of the caller's (they see the client address as
/// `ConnectInfo<SocketAddr>`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    probes: Arc<dyn Probes>,
    admin: bool,
    extra: Option<axum::Router>,
    shutdown: CancellationToken,
) {
    let app = axum::Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/sync", post(sync))
        .route("/zones", get(zones))
        .with_state(AppState { metrics, probes, admin });
    let app = match extra {
        Some(r) => app.merge(r),
        None => app,
    };
    if let Ok(addr) = listener.local_addr() {
        let addr: SocketAddr = addr;
        tracing::info!(%addr, admin, "serving HTTP");
    }
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) =
        axum::serve(listener, service).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
    {
        tracing::error!(error = %e, "HTTP endpoint stopped");
    }
}

#[cfg(test)]
mod response_cache_tests {
    use super::*;

    struct Source;

    impl QuerySource for Source {
        fn counts(&self) -> Vec<TransportCounts> {
            Vec::new()
        }

        fn response_cache(&self) -> Option<ResponseCacheCounts> {
            Some(ResponseCacheCounts {
                hits: 7,
                misses: 3,
                inserts: 3,
                evictions: 1,
                too_large: 2,
                first_sighting: 5,
                busy: 6,
                bypassed: 4,
                bytes: 1 << 20,
            })
        }
    }

    #[test]
    fn the_response_cache_is_rendered() {
        let m = Metrics::new("1");
        m.add_queries(Arc::new(Source));
        let text = m.render();
        for line in [
            "r53dns_response_cache_lookups_total{result=\"hit\"} 7",
            "r53dns_response_cache_lookups_total{result=\"miss\"} 3",
            "r53dns_response_cache_inserts_total 3",
            "r53dns_response_cache_evictions_total 1",
            "r53dns_response_cache_skipped_total{reason=\"too_large\"} 2",
            "r53dns_response_cache_skipped_total{reason=\"first_sighting\"} 5",
            "r53dns_response_cache_skipped_total{reason=\"busy\"} 6",
            "r53dns_response_cache_skipped_total{reason=\"bypassed\"} 4",
            "r53dns_response_cache_bytes 1048576",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}

#[cfg(test)]
mod docs_tests {
    /// Every metric this crate defines has a row in docs/metrics.md, so an operator can look
    /// up any name a scrape shows.
    #[test]
    fn every_metric_is_documented() {
        let source = include_str!("lib.rs");
        let docs = include_str!("../../../docs/metrics.md");
        let mut names: Vec<&str> = source
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| {
                s.starts_with("r53dns_") && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 40, "{names:?}");
        let missing: Vec<&&str> = names.iter().filter(|n| !docs.contains(&format!("| `{n}` |"))).collect();
        assert!(missing.is_empty(), "metrics with no row in docs/metrics.md: {missing:?}");
    }
}
