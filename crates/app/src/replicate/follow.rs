//! The replica side: follow a source over HTTP (long poll) or S3 (conditional GETs), verify
//! everything, and hand the whole snapshot to the replica's [`Syncer`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use r53dns_server::CancellationToken;
use sha2::{Digest, Sha256};

use super::s3::{ManifestRead, S3Store};
use super::{CONFIRMED_HEADER, Manifest, Refused, ZonePart, check_serials, decode_manifest, decode_part, join_parts};
use crate::persist::{Saved, hex};
use crate::sync::Syncer;
use crate::sync::unix_now;

/// A replica's settings.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// `http://HOST:PORT` of the source's HTTP endpoint, or `s3://BUCKET/PREFIX`.
    pub source: String,
    /// Bearer token sent to an HTTP source.
    pub token: Option<String>,
    /// Largest manifest or zone object accepted, in bytes.
    pub max_object_bytes: u64,
    /// HTTP: how long the source may hold a request before answering "unchanged".
    pub wait: Duration,
    /// S3: time between two polls.
    pub poll_interval: Duration,
}

/// Replica state for probes and metrics.
#[derive(Debug, Default)]
pub struct FollowStatus {
    /// Unix time the source last answered (a manifest or "unchanged").
    heard: AtomicU64,
    /// The last round failed: the lag counts from `heard`.
    failing: AtomicBool,
    /// Largest serial difference between the source's last manifest and what is served.
    behind: AtomicU64,
}

impl FollowStatus {
    /// Seconds the replica may be behind its source: 0 while it follows (its last round
    /// with the source succeeded), else the time since the source last answered; `None`
    /// before it ever answered.
    pub fn lag(&self) -> Option<u64> {
        let at = self.heard.load(Ordering::Relaxed);
        if at == 0 {
            return None;
        }
        if !self.failing.load(Ordering::Relaxed) {
            return Some(0);
        }
        Some(unix_now().saturating_sub(at))
    }

    /// Serials the replica is behind its source (0 when current).
    pub fn behind(&self) -> u64 {
        self.behind.load(Ordering::Relaxed)
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<Bytes>,
>;

/// Where snapshots come from.
enum Transport {
    // Boxed: one per process, and the client is large.
    Http(Box<Client>),
    S3(S3Store),
}

/// A failed round with the source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RoundError {
    #[error("{0}")]
    Fetch(String),
    #[error(transparent)]
    Refused(#[from] Refused),
}

/// A manifest round's outcome.
enum Fetched {
    Unchanged { confirmed: Option<u64> },
    New { bytes: Bytes, etag: String, confirmed: Option<u64> },
}

/// A replica following a source.
pub struct Follower {
    cfg: FollowConfig,
    syncer: Arc<Syncer>,
    metrics: Option<Arc<r53dns_metrics::Metrics>>,
    status: Arc<FollowStatus>,
    transport: Transport,
    /// Zone parts held, by object name, for the next manifest.
    held: tokio::sync::Mutex<HashMap<String, ZonePart>>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").field("source", &self.cfg.source).finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower publishing through `syncer` (a replica [`Syncer`]).
    pub async fn new(
        cfg: FollowConfig,
        syncer: Arc<Syncer>,
        metrics: Option<Arc<r53dns_metrics::Metrics>>,
    ) -> Result<Self, String> {
        let transport = if cfg.source.starts_with("s3://") {
            Transport::S3(S3Store::new(&cfg.source).await?)
        } else {
            let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
            http.set_connect_timeout(Some(Duration::from_secs(5)));
            http.set_nodelay(true);
            Transport::Http(Box::new(
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(http),
            ))
        };
        Ok(Self { cfg, syncer, metrics, status: Arc::default(), transport, held: tokio::sync::Mutex::default() })
    }

    /// Lag and serial distance, for probes.
    pub fn status(&self) -> Arc<FollowStatus> {
        self.status.clone()
    }

    /// Follows the source until `shutdown`; a failure is retried with backoff (1 s to 30 s)
    /// while the current data stays served.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut etag: Option<String> = None;
            let mut backoff = Duration::from_secs(1);
            loop {
                let round = tokio::select! {
                    r = me.round(etag.as_deref()) => r,
                    () = shutdown.cancelled() => return,
                };
                let pause = match round {
                    Ok(new) => {
                        backoff = Duration::from_secs(1);
                        if new.is_some() {
                            etag = new;
                        }
                        // HTTP long-polls: ask again at once. S3 has no long poll.
                        match me.transport {
                            Transport::Http(_) => Duration::ZERO,
                            Transport::S3(_) => me.cfg.poll_interval,
                        }
                    }
                    Err(e) => {
                        me.failed(&e);
                        let b = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        b
                    }
                };
                if !pause.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        });
    }

    fn failed(&self, e: &RoundError) {
        self.status.failing.store(true, Ordering::Relaxed);
        match e {
            RoundError::Refused(r) => {
                if let Some(m) = &self.metrics {
                    m.replication_refused.with_label_values(&[r.label()]).inc();
                }
                tracing::error!(source = %self.cfg.source, error = %e, "snapshot refused; serving what was held");
            }
            RoundError::Fetch(_) => {
                if let Some(m) = &self.metrics {
                    m.replication_fetches.with_label_values(&["failed"]).inc();
                }
                tracing::warn!(source = %self.cfg.source, error = %e, "cannot reach the replication source; serving what was held");
            }
        }
    }

    async fn http_get(
        &self,
        client: &Client,
        path: &str,
        etag: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, HeaderMap, Bytes), RoundError> {
        let uri = format!("{}{path}", self.cfg.source.trim_end_matches('/'));
        let limit = self.cfg.max_object_bytes;
        let too_large = |what: String| RoundError::Refused(Refused::TooLarge(format!("{uri}: {what}")));
        let fetch = |e: String| RoundError::Fetch(format!("{uri}: {e}"));
        let mut req = hyper::Request::get(&uri);
        if let Some(t) = &self.cfg.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, format!("\"{e}\""));
        }
        let req = req.body(http_body_util::Empty::new()).map_err(|e| fetch(e.to_string()))?;
        let resp = tokio::time::timeout(timeout, client.request(req))
            .await
            .map_err(|_| fetch(format!("no answer within {timeout:?}")))?
            .map_err(|e| fetch(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            && len > limit
        {
            return Err(too_large(format!("{len} bytes announced, the limit is {limit}")));
        }
        // Never more than the limit in memory, whatever the source sends.
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        let body = tokio::time::timeout(timeout, http_body_util::Limited::new(resp.into_body(), cap).collect())
            .await
            .map_err(|_| fetch(format!("body not received within {timeout:?}")))?
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    too_large(format!("more than the limit of {limit} bytes sent"))
                } else {
                    fetch(e.to_string())
                }
            })?
            .to_bytes();
        self.received(body.len());
        Ok((status, headers, body))
    }

    fn received(&self, n: usize) {
        if let Some(m) = &self.metrics {
            m.replication_bytes_received.inc_by(n as u64);
        }
    }

    async fn fetch_manifest(&self, etag: Option<&str>) -> Result<Fetched, RoundError> {
        match &self.transport {
            Transport::Http(client) => {
                let wait = self.cfg.wait;
                let path = format!("/snapshot?wait={}s", wait.as_secs().max(1));
                let (status, headers, body) =
                    self.http_get(client, &path, etag, wait + Duration::from_secs(15)).await?;
                let confirmed = headers
                    .get(CONFIRMED_HEADER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .filter(|&t| t != 0);
                match status {
                    304 => Ok(Fetched::Unchanged { confirmed }),
                    200 => {
                        let etag = hex(&Sha256::digest(&body));
                        Ok(Fetched::New { bytes: body, etag, confirmed })
                    }
                    other => {
                        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned();
                        Err(RoundError::Fetch(format!("source answered {other}: {text}")))
                    }
                }
            }
            Transport::S3(store) => {
                let confirmed = store.heartbeat().await.map_err(RoundError::Fetch)?;
                match store.manifest(etag, self.cfg.max_object_bytes).await.map_err(RoundError::Fetch)? {
                    ManifestRead::NotModified => Ok(Fetched::Unchanged { confirmed }),
                    ManifestRead::Missing => Err(RoundError::Fetch(format!("{}: no manifest yet", store.url()))),
                    ManifestRead::Found(bytes, etag) => {
                        self.received(bytes.len());
                        Ok(Fetched::New { bytes, etag, confirmed })
                    }
                }
            }
        }
    }

    async fn fetch_object(&self, name: &str) -> Result<Bytes, RoundError> {
        match &self.transport {
            Transport::Http(client) => {
                let (st, _, bytes) =
                    self.http_get(client, &format!("/snapshot/zones/{name}"), None, Duration::from_secs(120)).await?;
                if st != 200 {
                    // The source moved on while we fetched: the next round gets the new manifest.
                    return Err(RoundError::Fetch(format!("zone object {name}: source answered {st}")));
                }
                Ok(bytes)
            }
            Transport::S3(store) => {
                let bytes = store.object(name, self.cfg.max_object_bytes).await.map_err(RoundError::Fetch)?;
                self.received(bytes.len());
                Ok(bytes)
            }
        }
    }

    /// One round: the manifest if it changed, then the zones not held; everything checked
    /// before the snapshot is handed over. Returns the new ETag when one was applied.
    async fn round(&self, etag: Option<&str>) -> Result<Option<String>, RoundError> {
        let (bytes, new_etag, confirmed) = match self.fetch_manifest(etag).await? {
            Fetched::Unchanged { confirmed } => {
                self.heard(confirmed);
                if let Some(m) = &self.metrics {
                    m.replication_fetches.with_label_values(&["unchanged"]).inc();
                }
                return Ok(None);
            }
            Fetched::New { bytes, etag, confirmed } => (bytes, etag, confirmed),
        };
        let manifest = decode_manifest(&bytes)?;
        let held_serials = self.syncer.serials().await;
        // Behind until this manifest is applied: the largest serial step it brings, counted
        // forward modulo 2^32 (RFC 1982: a serial that wrapped past 0 is a small step). A
        // serial not after the held one (2^31 or more forward) is no step: left out here;
        // one before it is refused by `check_serials`.
        let behind = manifest
            .zones
            .iter()
            .filter_map(|z| held_serials.get(&z.id).map(|h| u64::from(z.serial.wrapping_sub(*h))))
            .filter(|d| *d < 1 << 31)
            .max()
            .unwrap_or(0);
        self.status.behind.store(behind, Ordering::Relaxed);
        check_serials(&manifest, &held_serials)?;
        let mut held = self.held.lock().await;
        let (saved, fetched) = self.assemble(&manifest, &held, confirmed).await?;
        let bytes_fetched: u64 = fetched.values().map(|(n, _)| *n).sum();
        let n = self.syncer.apply_replica(saved).await;
        // Keep exactly the objects of the manifest now served.
        let wanted: std::collections::HashSet<&String> =
            manifest.zones.iter().flat_map(|z| z.objects.iter().map(|o| &o.name)).collect();
        held.retain(|k, _| wanted.contains(k));
        held.extend(fetched.into_iter().map(|(k, (_, z))| (k, z)).filter(|(k, _)| wanted.contains(k)));
        drop(held);
        self.heard(confirmed);
        if let Some(m) = &self.metrics {
            m.replication_fetches.with_label_values(&["applied"]).inc();
        }
        tracing::info!(source = %self.cfg.source, zones = n, bytes = bytes_fetched, "snapshot from the source applied");
        Ok(Some(new_etag))
    }

    /// Fetches what `manifest` names and `held` lacks, checks it, and puts the snapshot
    /// together. Also returns what was fetched (bytes, zone) by object name.
    async fn assemble(
        &self,
        manifest: &Manifest,
        held: &HashMap<String, ZonePart>,
        confirmed: Option<u64>,
    ) -> Result<(Saved, HashMap<String, (u64, ZonePart)>), RoundError> {
        let mut fetched: HashMap<String, (u64, ZonePart)> = HashMap::new();
        for z in &manifest.zones {
            for (i, o) in z.objects.iter().enumerate() {
                if o.size > self.cfg.max_object_bytes {
                    return Err(Refused::TooLarge(format!("zone {} part {i}: {} bytes", z.name, o.size)).into());
                }
                if held.contains_key(&o.name) || fetched.contains_key(&o.name) {
                    continue;
                }
                let bytes = self.fetch_object(&o.name).await?;
                fetched.insert(o.name.clone(), (bytes.len() as u64, decode_part(&bytes, z, i)?));
            }
        }
        let mut zones = Vec::with_capacity(manifest.zones.len());
        for z in &manifest.zones {
            let mut parts = Vec::with_capacity(z.objects.len());
            for (i, o) in z.objects.iter().enumerate() {
                // A part held from an earlier version is the same bytes (same name), checked
                // when it was fetched; only where it sits must match.
                match fetched.get(&o.name).map(|(_, p)| p).or_else(|| held.get(&o.name)) {
                    Some(p) if p.zone == z.id && p.part as usize == i => parts.push(p),
                    _ => return Err(Refused::Inconsistent(format!("zone {} has no part {i}", z.name)).into()),
                }
            }
            zones.push(join_parts(z, parts, confirmed));
        }
        if let Some(n) = manifest.internal_networks.iter().find(|n| r53dns_zone::routing::parse_prefix(n).is_none()) {
            return Err(Refused::Inconsistent(format!("internal network '{n}' is not a network")).into());
        }
        Ok((manifest.saved(zones, confirmed, true), fetched))
    }

    fn heard(&self, confirmed: Option<u64>) {
        self.status.heard.store(unix_now(), Ordering::Relaxed);
        self.status.failing.store(false, Ordering::Relaxed);
        self.status.behind.store(0, Ordering::Relaxed);
        if let Some(at) = confirmed {
            self.syncer.status().confirm(at);
        }
    }
}

/// The last snapshot written to `store`, read whole and checked: what a syncer starts from.
/// `None` when there is none yet.
pub(crate) async fn load_s3(store: &S3Store, limit: u64) -> Result<Option<Saved>, RoundError> {
    let bytes = match store.manifest(None, limit).await.map_err(RoundError::Fetch)? {
        ManifestRead::Found(b, _) => b,
        ManifestRead::Missing | ManifestRead::NotModified => return Ok(None),
    };
    let manifest = decode_manifest(&bytes)?;
    let confirmed = store.heartbeat().await.map_err(RoundError::Fetch)?;
    let mut zones = Vec::with_capacity(manifest.zones.len());
    for z in &manifest.zones {
        let mut parts = Vec::with_capacity(z.objects.len());
        for (i, o) in z.objects.iter().enumerate() {
            let b = store.object(&o.name, limit).await.map_err(RoundError::Fetch)?;
            parts.push(decode_part(&b, z, i)?);
        }
        zones.push(join_parts(z, parts.iter().collect(), confirmed));
    }
    // A syncer keeps its own views: the source's networks are not taken.
    Ok(Some(manifest.saved(zones, confirmed, false)))
}
