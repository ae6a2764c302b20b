//! Wiring of the metrics and the HTTP endpoint to the running server.

use std::sync::Arc;

use r53dns_metrics::{DnstapCounts, Metrics, Probes, QuerySource, SizeHistogram, TransportCounts, ZoneCount};
use r53dns_server::Store;
use r53dns_server::stats::{LATENCY_BUCKETS, Listener, SIZE_BUCKETS, Stats};
use r53dns_zone::Source;

use crate::sync::{SyncStatus, Syncer};

/// The server's query counters as a metrics source.
pub(crate) struct StatsSource(pub(crate) Arc<Stats>);

impl QuerySource for StatsSource {
    fn counts(&self) -> Vec<TransportCounts> {
        Listener::ALL
            .into_iter()
            .map(|t| {
                let name = t.label();
                let (bucket_counts, latency_sum) = self.0.latency(t);
                let ((rq, rq_sum), (rs, rs_sum)) = self.0.sizes(t);
                let sizes = |counts, sum| SizeHistogram { bounds: SIZE_BUCKETS.to_vec(), counts, sum };
                TransportCounts {
                    request_sizes: sizes(rq, rq_sum),
                    response_sizes: sizes(rs, rs_sum),
                    dnssec_ok: self.0.dnssec_ok(t),
                    unsent: self.0.unsent_count(t),
                    handshakes_failed: if t.has_handshake() {
                        self.0.handshakes_failed(t).into_iter().map(|(h, n)| (h.label(), n)).collect()
                    } else {
                        Vec::new()
                    },
                    transport: name,
                    queries: self.0.queries(t),
                    truncated: self.0.truncated(t),
                    dropped: self.0.dropped_count(t),
                    bucket_bounds: LATENCY_BUCKETS.to_vec(),
                    bucket_counts,
                    latency_sum,
                }
            })
            .collect()
    }

    fn rate_limited(&self) -> (u64, u64) {
        self.0.rate_limited_counts()
    }

    fn tcp(&self) -> (u64, u64) {
        self.0.tcp_counts()
    }

    fn refusals(&self) -> Vec<(&'static str, u64)> {
        r53dns_server::logs::refusals().into_iter().map(|(r, n)| (r.label(), n)).collect()
    }

    fn zone_queries(&self) -> Vec<ZoneCount> {
        let view = |external| if external { "external" } else { "internal" };
        self.0
            .zone_queries()
            .into_iter()
            .map(|z| ZoneCount {
                zone: z.zone.unwrap_or_else(|| "other".to_owned()),
                view: view(z.external),
                queries: z.queries,
            })
            .collect()
    }

    fn dnstap(&self) -> Option<DnstapCounts> {
        use r53dns_server::dnstap::Dropped;
        self.0.dnstap().map(|d| DnstapCounts {
            sent: d.sent,
            dropped: Dropped::ALL.iter().zip(d.dropped).map(|(r, n)| (r.label(), n)).collect(),
            connected: d.connected,
        })
    }

    fn response_cache(&self) -> Option<r53dns_metrics::ResponseCacheCounts> {
        let c = r53dns_server::cache::counts();
        Some(r53dns_metrics::ResponseCacheCounts {
            hits: c.hits,
            misses: c.misses,
            inserts: c.inserts,
            evictions: c.evictions,
            too_large: c.too_large,
            first_sighting: c.first_sighting,
            busy: c.busy,
            bypassed: c.bypassed,
            bytes: c.bytes,
        })
    }
}

/// Readiness, admin actions and per-zone gauges.
pub(crate) struct AppProbes {
    pub(crate) store: Store,
    pub(crate) syncer: Option<Arc<Syncer>>,
    pub(crate) status: Option<Arc<SyncStatus>>,
    pub(crate) secondaries: Option<Arc<crate::secondary::Secondaries>>,
    pub(crate) follower: Option<Arc<crate::replicate::FollowStatus>>,
    pub(crate) draining: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) metrics: Arc<Metrics>,
    /// Private zone names may label metrics.
    pub(crate) private_zone_metrics: bool,
}

fn source_label(s: &Source) -> String {
    match s {
        Source::File(p) => format!("file:{}", p.display()),
        Source::Other(o) => o.clone(),
    }
}

/// One zone as served in one view, for `/zones` and `ctl zone-status`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ZoneJson {
    pub(crate) name: String,
    /// `file:PATH`, `route53:ID`, `secondary:PRIMARY`, `catalog`…
    pub(crate) source: String,
    pub(crate) view: &'static str,
    pub(crate) serial: u32,
    pub(crate) records: usize,
    pub(crate) last_sync: Option<u64>,
    pub(crate) last_error: Option<String>,
    /// Secondary zones: `tcp` or `tls` (XoT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transport: Option<&'static str>,
    /// Secondary zones over TLS: the name the primary's certificate is checked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_name: Option<String>,
    /// Secondary zones: the last refresh's outcome (`axfr`, `ixfr`, `current`, `failed`,
    /// `too_large`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_outcome: Option<&'static str>,
}

impl AppProbes {
    /// Every zone served, per view, sorted by view and name.
    pub(crate) fn zones(&self) -> Vec<ZoneJson> {
        let snap = self.store.load();
        let r53 = self.status.as_ref().map(|s| s.zones()).unwrap_or_default();
        let secondary = self.secondaries.as_ref().map(|s| s.status()).unwrap_or_default();
        let mut out = Vec::new();
        let views = [("internal", Some(snap.internal())), ("external", snap.external())];
        for (view, set) in views {
            let Some(set) = set else { continue };
            for z in set.zones() {
                let name = z.apex().to_text();
                let source = source_label(z.source());
                let status = r53.iter().find(|s| source.ends_with(&s.id));
                let followed = secondary.iter().find(|s| source.starts_with("secondary:") && s.name == name);
                let now = crate::sync::unix_now();
                out.push(ZoneJson {
                    name,
                    source,
                    view,
                    serial: z.serial(),
                    records: z.record_count(),
                    last_sync: status
                        .and_then(|s| s.last_sync)
                        .or_else(|| followed.and_then(|f| f.confirmed_secs_ago).map(|ago| now.saturating_sub(ago))),
                    last_error: status
                        .and_then(|s| s.last_error.clone())
                        .or_else(|| followed.and_then(|f| f.last_error.clone())),
                    transport: followed.map(|f| f.transport),
                    tls_name: followed.and_then(|f| f.tls_name.clone()),
                    last_outcome: followed.and_then(|f| f.last_outcome),
                });
            }
        }
        out.sort_by(|a, b| (a.view, &a.name).cmp(&(b.view, &b.name)));
        out
    }
}

impl Probes for AppProbes {
    fn ready(&self) -> bool {
        !self.draining.load(std::sync::atomic::Ordering::Relaxed)
            && self.status.as_ref().is_none_or(|s| s.ready())
            && self.secondaries.as_ref().is_none_or(|s| s.ready())
    }

    fn readiness_detail(&self) -> String {
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return "draining (shutting down)".into();
        }
        let mut parts = Vec::new();
        if let Some(s) = &self.status {
            match (s.ready(), s.age()) {
                (false, _) => parts.push("no Route53 data yet".to_owned()),
                (true, Some(age)) => parts.push(format!("data confirmed {}s ago", age.as_secs())),
                (true, None) => parts.push("data never confirmed by a complete sweep".to_owned()),
            }
            parts.extend(s.events.detail());
        }
        if let Some(f) = &self.follower {
            match f.lag() {
                Some(lag) => parts.push(format!("source last heard {lag}s ago")),
                None => parts.push("source not reached yet".to_owned()),
            }
        }
        if let Some(sec) = &self.secondaries {
            let st = sec.status();
            let expired = st.iter().filter(|z| z.expires_in == Some(0)).count();
            let missing = st.iter().filter(|z| z.serial.is_none()).count();
            parts.push(format!("{} secondary zones, {missing} not served, {expired} expired", st.len()));
        }
        parts.join("; ")
    }

    fn trigger_sync(&self) -> bool {
        match &self.syncer {
            Some(s) => {
                s.trigger();
                true
            }
            None => false,
        }
    }

    fn zones_json(&self) -> String {
        serde_json::to_string_pretty(&self.zones()).unwrap_or_else(|_| "[]".into())
    }

    fn before_scrape(&self) {
        let snap = self.store.load();
        let m = &self.metrics;
        m.zone_records.reset();
        m.zone_serial.reset();
        // Private hosted zones' names are internal: not in metrics unless allowed.
        let private: std::collections::HashSet<String> = match (&self.status, self.private_zone_metrics) {
            (Some(st), false) => st.zones().into_iter().filter(|z| z.private).map(|z| z.id).collect(),
            _ => Default::default(),
        };
        let is_private = |z: &r53dns_zone::Zone| match z.source() {
            Source::Other(o) => o.strip_prefix("route53:").is_some_and(|id| private.contains(id)),
            Source::File(_) => false,
        };
        // Both views: a public and a private hosted zone of one name are two series, told
        // apart by their hosted-zone ID (empty for zones not from Route53).
        let views = std::iter::once(snap.internal()).chain(snap.external());
        for z in views.flat_map(|v| v.zones()).filter(|z| !is_private(z)) {
            let name = z.apex().to_text();
            let (source, hosted_zone) = match z.source() {
                Source::File(_) => ("file", ""),
                Source::Other(o) if o.starts_with("secondary:") => ("secondary", ""),
                Source::Other(o) => ("route53", o.strip_prefix("route53:").unwrap_or(o)),
            };
            m.zone_records.with_label_values(&[name.as_str(), source, hosted_zone]).set(z.record_count() as i64);
            m.zone_serial.with_label_values(&[name.as_str(), hosted_zone]).set(i64::from(z.serial()));
        }
        if let Some(status) = &self.status {
            m.zone_last_sync.reset();
            for z in status.zones().into_iter().filter(|z| !private.contains(&z.id)) {
                if let Some(t) = z.last_sync {
                    m.zone_last_sync.with_label_values(&[z.name.as_str(), z.id.as_str()]).set(t as f64);
                }
            }
            if let Some(age) = status.age() {
                m.snapshot_age.set(age.as_secs_f64());
            }
        }
        if let Some(f) = &self.follower {
            m.replication_lag.set(f.lag().map_or(f64::NAN, |l| l as f64));
            m.replication_serial_behind.set(f.behind() as f64);
        }
        if let Some(sec) = &self.secondaries {
            m.secondary_expire.reset();
            let now = crate::sync::unix_now();
            let mut oldest = None::<u64>;
            for z in sec.status() {
                if let Some(left) = z.expires_in {
                    m.secondary_expire.with_label_values(&[z.name.as_str()]).set(left as f64);
                }
                if let Some(ago) = z.confirmed_secs_ago {
                    m.zone_last_sync.with_label_values(&[z.name.as_str(), ""]).set(now.saturating_sub(ago) as f64);
                    oldest = Some(oldest.map_or(ago, |o| o.max(ago)));
                }
            }
            // Without Route53 data, the age is that of the least recently confirmed zone.
            if self.status.is_none()
                && let Some(ago) = oldest
            {
                m.snapshot_age.set(ago as f64);
            }
        }
    }
}
