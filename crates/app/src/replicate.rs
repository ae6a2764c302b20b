//! Snapshot replication: one r53dns that reads Route53 (the source) offers what it publishes,
//! and replicas started with `--follow URL` serve exactly that — both views, routed groups
//! with their health, aliases to AWS endpoints as the source resolved them, the source's
//! serials — while evaluating routing per query themselves. A replica needs no zone list, no
//! Route53 access and no AWS identity.
//!
//! What travels is the Route53 data, not a flattened zone: a zone transfer can only carry one
//! answer per name, which would freeze a weighted or geolocation name as the source's default
//! client saw it.
//!
//! Format (version 2): a *manifest* listing every zone with its serial and the SHA-256 of its
//! *zone object*, plus the account-wide inputs (health-check status, CIDR blocks, AWS endpoint
//! addresses, the source's internal networks); and one zone object per zone (its hosted zone,
//! record sets, serial, content hash). Each is a header line `r53dns-manifest v2 sha256=…` /
//! `r53dns-zone v2 sha256=…` with the checksum of the JSON body that follows. Zone objects are
//! named by their own checksum, so a replica fetches only the zones whose object it does not
//! hold: what a change costs grows with the zones it touched, not with the account.
//!
//! Over HTTP the source serves `GET /snapshot` (the manifest, with an `ETag`;
//! `If-None-Match` gives 304, and `?wait=30s` holds the request until the next publication,
//! so a change reaches every replica within moments) and `GET /snapshot/zones/SHA256`. Access
//! is off unless enabled, and then limited by client network and/or a bearer token: the
//! snapshot holds private zones.
//!
//! A replica verifies every checksum, the format version, that each object is the one the
//! manifest names and that no zone's serial goes back (RFC 1982), and builds every zone
//! before anything is swapped in; whatever fails is logged and counted, and the replica
//! keeps serving what it had.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use r53dns_route53::model::{HostedZone, RecordSet};
use r53dns_server::CancellationToken;
use r53dns_zone::Prefix;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::persist::{Saved, SavedZone, frame_as, hex, unframe};
use crate::sync::Syncer;

/// The replication format this version writes and reads.
pub const FORMAT: u32 = 2;
const MANIFEST_MAGIC: &str = "r53dns-manifest v2 sha256=";
const ZONE_MAGIC: &str = "r53dns-zone v2 sha256=";
/// Header carrying the Unix time Route53 last confirmed the source's data.
const CONFIRMED_HEADER: &str = "x-r53dns-confirmed";
/// Longest a `?wait=` long poll is held.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// One zone in a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestZone {
    /// Hosted zone ID.
    pub id: String,
    /// Zone name as Route53 writes it.
    pub name: String,
    /// A private zone.
    pub private: bool,
    /// The serial served for it.
    pub serial: u32,
    /// SHA-256 (hex) of its zone object, header line included: the object's name.
    pub object: String,
    /// Size of the zone object in bytes.
    pub size: u64,
}

/// The list of what a source serves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// Every zone.
    pub zones: Vec<ManifestZone>,
    /// Health-check status.
    pub health: Vec<(String, bool)>,
    /// CIDR blocks: (collection, location, blocks).
    pub cidr: Vec<(String, String, Vec<String>)>,
    /// AWS endpoint addresses as the source resolved them.
    pub endpoints: Vec<(String, Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
    /// The source's internal networks (who sees private zones); a replica uses them unless
    /// it is configured with its own.
    #[serde(default)]
    pub internal_networks: Vec<String>,
}

/// A zone as the source holds it, borrowed for encoding (same JSON as [`SavedZone`]).
#[derive(Debug, Serialize)]
pub(crate) struct ZoneRef<'a> {
    pub(crate) zone: &'a HostedZone,
    pub(crate) records: &'a [RecordSet],
    pub(crate) serial: u32,
    pub(crate) hash: String,
    pub(crate) confirmed: Option<u64>,
}

/// One publication: the manifest as served and the zone objects it names.
#[derive(Debug)]
struct Published {
    manifest: Bytes,
    etag: String,
    objects: HashMap<String, Bytes>,
}

/// A zone's encoded object, valid while (serial, content hash, hosted zone) are unchanged.
type CachedObject = ((u32, String, HostedZone), String, Bytes);

/// What a source offers to replicas: the latest publication (and the objects of the one
/// before, for replicas still fetching it). Zone objects are encoded once per version of a
/// zone and kept while the zone is unchanged.
#[derive(Debug)]
pub struct Hub {
    tx: tokio::sync::watch::Sender<Option<Arc<Published>>>,
    previous: StdMutex<HashMap<String, Bytes>>,
    /// Per hosted zone: (serial, content hash, hosted zone) → object name and bytes.
    cache: StdMutex<HashMap<String, CachedObject>>,
    confirmed: AtomicU64,
}

impl Hub {
    /// A hub with nothing published yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers a new version. Unchanged zones reuse their encoded object; the manifest is
    /// replaced (and waiting replicas woken) only when something in it changed.
    pub(crate) fn publish<'a>(
        &self,
        zones: impl Iterator<Item = ZoneRef<'a>>,
        health: Vec<(String, bool)>,
        cidr: Vec<(String, String, Vec<String>)>,
        endpoints: Vec<(String, Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
        internal_networks: Vec<String>,
        confirmed: Option<u64>,
    ) {
        if let Some(at) = confirmed {
            self.confirmed.fetch_max(at, Ordering::Relaxed);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut objects = HashMap::new();
        let mut listed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for z in zones {
            let key = (z.serial, z.hash.clone(), z.zone.clone());
            let (name, bytes) = match cache.get(&z.zone.id) {
                Some((k, name, bytes)) if *k == key => (name.clone(), bytes.clone()),
                _ => {
                    let body = match serde_json::to_vec(&z) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(zone = %z.zone.name, error = %e, "cannot encode zone for replicas");
                            continue;
                        }
                    };
                    let bytes = Bytes::from(frame_as(ZONE_MAGIC, &body));
                    let name = hex(&Sha256::digest(&bytes));
                    cache.insert(z.zone.id.clone(), (key, name.clone(), bytes.clone()));
                    (name, bytes)
                }
            };
            seen.insert(z.zone.id.clone());
            listed.push(ManifestZone {
                id: z.zone.id.clone(),
                name: z.zone.name.clone(),
                private: z.zone.private,
                serial: z.serial,
                object: name.clone(),
                size: bytes.len() as u64,
            });
            objects.insert(name, bytes);
        }
        cache.retain(|id, _| seen.contains(id));
        drop(cache);
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        let manifest = Manifest {
            format: FORMAT,
            zones: listed,
            health: sorted(health),
            cidr: sorted(cidr),
            endpoints: sorted(endpoints),
            internal_networks,
        };
        let body = match serde_json::to_vec(&manifest) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the replication manifest");
                return;
            }
        };
        let bytes = Bytes::from(frame_as(MANIFEST_MAGIC, &body));
        let etag = hex(&Sha256::digest(&bytes));
        self.tx.send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.etag == etag) {
                return false;
            }
            if let Some(old) = current.take() {
                *self.previous.lock().unwrap_or_else(|p| p.into_inner()) = old.objects.clone();
            }
            *current = Some(Arc::new(Published { manifest: bytes, etag, objects }));
            true
        });
    }

    fn object(&self, name: &str) -> Option<Bytes> {
        let current = self.tx.borrow().as_ref().and_then(|p| p.objects.get(name).cloned());
        current.or_else(|| self.previous.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned())
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: tokio::sync::watch::Sender::new(None),
            previous: StdMutex::default(),
            cache: StdMutex::default(),
            confirmed: AtomicU64::new(0),
        }
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Who may fetch snapshots: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Client networks allowed (empty: any network).
    pub networks: Vec<Prefix>,
    /// SHA-256 of the bearer token required, if one is.
    pub token_sha256: Option<[u8; 32]>,
}

impl Access {
    fn allows(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        let peer = peer.to_canonical();
        let network_ok = self.networks.is_empty()
            || self.networks.iter().any(|(net, len)| r53dns_zone::routing::in_prefix(*net, *len, peer));
        let token_ok = match &self.token_sha256 {
            None => true,
            Some(want) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                // Comparing digests: the time taken says nothing about the token.
                .is_some_and(|t| Sha256::digest(t.trim().as_bytes()).as_slice() == want),
        };
        network_ok && token_ok
    }
}

#[derive(Clone)]
struct HttpState {
    hub: Arc<Hub>,
    access: Arc<Access>,
    metrics: Option<Arc<r53dns_metrics::Metrics>>,
    shutdown: CancellationToken,
}

impl HttpState {
    fn refused(&self, peer: SocketAddr) -> Response {
        if let Some(m) = &self.metrics {
            m.replication_requests.with_label_values(&["refused"]).inc();
        }
        tracing::debug!(%peer, "snapshot request refused");
        (StatusCode::FORBIDDEN, "snapshot access refused\n").into_response()
    }
}

/// The `/snapshot` routes for the HTTP endpoint; long polls end with `shutdown`.
pub fn router(
    hub: Arc<Hub>,
    access: Access,
    metrics: Option<Arc<r53dns_metrics::Metrics>>,
    shutdown: CancellationToken,
) -> axum::Router {
    axum::Router::new()
        .route("/snapshot", get(manifest))
        .route("/snapshot/zones/{object}", get(zone_object))
        .with_state(HttpState { hub, access: Arc::new(access), metrics, shutdown })
}

fn wait_param(uri: &Uri) -> Option<Duration> {
    let q = uri.query()?;
    let v = q.split('&').find_map(|kv| kv.strip_prefix("wait="))?;
    humantime::parse_duration(v).ok().map(|d| d.min(MAX_WAIT))
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/").trim_matches('"') == etag))
}

async fn manifest(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !s.access.allows(peer.ip(), &headers) {
        return s.refused(peer);
    }
    let mut rx = s.hub.tx.subscribe();
    let mut current = rx.borrow_and_update().clone();
    if let (Some(p), Some(wait)) = (&current, wait_param(&uri))
        && etag_matches(&headers, &p.etag)
    {
        {
            // Long poll: hold the request until the next publication, the end of the wait or
            // shutdown (which waits for open requests).
            tokio::select! {
                r = tokio::time::timeout(wait, rx.changed()) => {
                    if let Ok(Ok(())) = r {
                        current = rx.borrow_and_update().clone();
                    }
                }
                () = s.shutdown.cancelled() => {}
            }
        }
    }
    let confirmed = s.hub.confirmed.load(Ordering::Relaxed).to_string();
    let Some(p) = current else {
        return (StatusCode::SERVICE_UNAVAILABLE, "nothing published yet\n").into_response();
    };
    let outcome = if etag_matches(&headers, &p.etag) { "not_modified" } else { "manifest" };
    if let Some(m) = &s.metrics {
        m.replication_requests.with_label_values(&[outcome]).inc();
    }
    let common = [
        (header::ETAG, format!("\"{}\"", p.etag)),
        (header::CACHE_CONTROL, "no-store".to_owned()),
        (header::HeaderName::from_static(CONFIRMED_HEADER), confirmed),
    ];
    if outcome == "not_modified" {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (StatusCode::OK, common, [(header::CONTENT_TYPE, "application/octet-stream")], p.manifest.clone()).into_response()
}

async fn zone_object(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath(object): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !s.access.allows(peer.ip(), &headers) {
        return s.refused(peer);
    }
    match s.hub.object(&object) {
        Some(bytes) => {
            if let Some(m) = &s.metrics {
                m.replication_requests.with_label_values(&["zone"]).inc();
                m.replication_bytes_sent.inc_by(bytes.len() as u64);
            }
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such zone object\n").into_response(),
    }
}

/// Why a snapshot was refused (the `reason` label of `r53dns_replication_refused_total`).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Cut short, damaged, or not a snapshot at all.
    #[error("damaged: {0}")]
    Damaged(String),
    /// Written by a newer version of r53dns.
    #[error("format version {0} is newer than this version reads ({FORMAT}); upgrade the replicas first")]
    Version(u32),
    /// Well-formed but inconsistent (an object that is not the zone the manifest names, …).
    #[error("inconsistent: {0}")]
    Inconsistent(String),
    /// A zone's serial would go back.
    #[error("zone {zone}: serial {offered} is older than the {held} served (RFC 1982)")]
    SerialBack {
        /// The zone.
        zone: String,
        /// Served now.
        held: u32,
        /// Offered.
        offered: u32,
    },
    /// Larger than the configured limit.
    #[error("too large: {0}")]
    TooLarge(String),
}

impl Refused {
    fn label(&self) -> &'static str {
        match self {
            Self::Damaged(_) => "damaged",
            Self::Version(_) => "version",
            Self::Inconsistent(_) => "inconsistent",
            Self::SerialBack { .. } => "serial_back",
            Self::TooLarge(_) => "too_large",
        }
    }
}

/// Reads a manifest: checksum, format version, shape.
pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, Refused> {
    let body = match unframe(MANIFEST_MAGIC, bytes) {
        Ok(b) => b,
        Err(e) => {
            // A header of a later format names its version: say so rather than "damaged".
            let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
            let text = String::from_utf8_lossy(first);
            if let Some(v) = text.strip_prefix("r53dns-manifest v").and_then(|r| r.split(' ').next())
                && let Ok(v) = v.parse::<u32>()
                && v > FORMAT
            {
                return Err(Refused::Version(v));
            }
            return Err(Refused::Damaged(e));
        }
    };
    let m: Manifest = serde_json::from_slice(body).map_err(|e| Refused::Damaged(format!("manifest: {e}")))?;
    if m.format != FORMAT {
        return Err(if m.format > FORMAT { Refused::Version(m.format) } else { Refused::Damaged("format".into()) });
    }
    Ok(m)
}

/// Reads a zone object and checks it is the one `entry` names.
pub fn decode_zone(bytes: &[u8], entry: &ManifestZone) -> Result<SavedZone, Refused> {
    let sum = hex(&Sha256::digest(bytes));
    if sum != entry.object {
        return Err(Refused::Damaged(format!("zone {}: object checksum {sum} is not {}", entry.name, entry.object)));
    }
    let body = unframe(ZONE_MAGIC, bytes).map_err(|e| Refused::Damaged(format!("zone {}: {e}", entry.name)))?;
    let z: SavedZone =
        serde_json::from_slice(body).map_err(|e| Refused::Damaged(format!("zone {}: {e}", entry.name)))?;
    if z.zone.id != entry.id || z.serial != entry.serial {
        return Err(Refused::Inconsistent(format!(
            "object for {} holds zone {} serial {}",
            entry.name, z.zone.id, z.serial
        )));
    }
    Ok(z)
}

/// Checks that no zone `held` serves would move back to an older serial.
pub fn check_serials(manifest: &Manifest, held: &HashMap<String, u32>) -> Result<(), Refused> {
    for z in &manifest.zones {
        if let Some(&h) = held.get(&z.id)
            && h != z.serial
            && (z.serial.wrapping_sub(h) as i32) < 0
        {
            return Err(Refused::SerialBack { zone: z.name.clone(), held: h, offered: z.serial });
        }
    }
    Ok(())
}

/// A replica's settings.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// `http://HOST:PORT` of the source's HTTP endpoint.
    pub source: String,
    /// Bearer token sent to the source.
    pub token: Option<String>,
    /// Largest manifest or zone object accepted, in bytes.
    pub max_object_bytes: u64,
    /// How long the source may hold a request before answering "unchanged".
    pub wait: Duration,
}

/// Replica state for probes and metrics.
#[derive(Debug, Default)]
pub struct FollowStatus {
    /// Unix time the source last answered (a manifest or "unchanged").
    heard: AtomicU64,
    /// The last round failed: the lag counts from `heard`.
    failing: std::sync::atomic::AtomicBool,
    /// Largest serial difference between the source's last manifest and what is served.
    behind: AtomicU64,
}

impl FollowStatus {
    /// Seconds the replica may be behind its source: 0 while it follows (a long poll is
    /// open after a good round), else the time since the source last answered; `None`
    /// before it ever answered.
    pub fn lag(&self) -> Option<u64> {
        let at = self.heard.load(Ordering::Relaxed);
        if at == 0 {
            return None;
        }
        if !self.failing.load(Ordering::Relaxed) {
            return Some(0);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Some(now.saturating_sub(at))
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

/// A replica following a source over HTTP.
pub struct Follower {
    cfg: FollowConfig,
    syncer: Arc<Syncer>,
    metrics: Option<Arc<r53dns_metrics::Metrics>>,
    status: Arc<FollowStatus>,
    client: Client,
    /// Zone objects held, by name, for the next manifest.
    held: tokio::sync::Mutex<HashMap<String, SavedZone>>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").field("source", &self.cfg.source).finish_non_exhaustive()
    }
}

/// A failed round with the source.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Fetch(String),
    #[error(transparent)]
    Refused(#[from] Refused),
}

impl Follower {
    /// A follower publishing through `syncer` (a replica [`Syncer`]).
    pub fn new(cfg: FollowConfig, syncer: Arc<Syncer>, metrics: Option<Arc<r53dns_metrics::Metrics>>) -> Self {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(http);
        Self { cfg, syncer, metrics, status: Arc::default(), client, held: tokio::sync::Mutex::default() }
    }

    /// Lag and serial distance, for probes.
    pub fn status(&self) -> Arc<FollowStatus> {
        self.status.clone()
    }

    /// Follows the source until `shutdown`: long polls, then fetches what changed; a failure
    /// is retried with backoff (1 s to 30 s) while the current data stays served.
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
                        Duration::ZERO
                    }
                    Err(e) => {
                        me.status.failing.store(true, Ordering::Relaxed);
                        match &e {
                            RoundError::Refused(r) => {
                                if let Some(m) = &me.metrics {
                                    m.replication_refused.with_label_values(&[r.label()]).inc();
                                }
                                tracing::error!(source = %me.cfg.source, error = %e, "snapshot refused; serving what was held");
                            }
                            RoundError::Fetch(_) => {
                                if let Some(m) = &me.metrics {
                                    m.replication_fetches.with_label_values(&["failed"]).inc();
                                }
                                tracing::warn!(source = %me.cfg.source, error = %e, "cannot reach the replication source; serving what was held");
                            }
                        }
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

    async fn get(
        &self,
        path: &str,
        etag: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, HeaderMap, Bytes), RoundError> {
        let uri = format!("{}{path}", self.cfg.source.trim_end_matches('/'));
        let limit = self.cfg.max_object_bytes;
        let too_large = |what: String| RoundError::Refused(Refused::TooLarge(format!("{uri}: {what}")));
        let mut req = hyper::Request::get(&uri);
        if let Some(t) = &self.cfg.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, format!("\"{e}\""));
        }
        let fetch = |e: String| RoundError::Fetch(format!("{uri}: {e}"));
        let req = req.body(http_body_util::Empty::new()).map_err(|e| fetch(e.to_string()))?;
        let resp = tokio::time::timeout(timeout, self.client.request(req))
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
        if let Some(m) = &self.metrics {
            m.replication_bytes_received.inc_by(body.len() as u64);
        }
        Ok((status, headers, body))
    }

    /// One long poll; on a new manifest, fetches the zones not held, checks everything and
    /// publishes. Returns the new ETag when one was applied.
    async fn round(&self, etag: Option<&str>) -> Result<Option<String>, RoundError> {
        let wait = self.cfg.wait;
        let path = format!("/snapshot?wait={}s", wait.as_secs().max(1));
        let (status, headers, body) = self.get(&path, etag, wait + Duration::from_secs(15)).await?;
        let confirmed =
            headers.get(CONFIRMED_HEADER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()).filter(|&t| t != 0);
        match status {
            304 => {
                self.heard(confirmed, 0);
                if let Some(m) = &self.metrics {
                    m.replication_fetches.with_label_values(&["unchanged"]).inc();
                }
                return Ok(None);
            }
            200 => {}
            other => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned();
                return Err(RoundError::Fetch(format!("source answered {other}: {text}")));
            }
        }
        let new_etag = hex(&Sha256::digest(&body));
        let manifest = decode_manifest(&body)?;
        let held_serials = self.syncer.serials().await;
        // Behind until this manifest is applied: the largest serial step it brings.
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
        let mut fetched = HashMap::new();
        let mut bytes_fetched = 0u64;
        for z in &manifest.zones {
            if z.size > self.cfg.max_object_bytes {
                return Err(Refused::TooLarge(format!("zone {}: {} bytes", z.name, z.size)).into());
            }
            if held.contains_key(&z.object) || fetched.contains_key(&z.object) {
                continue;
            }
            let (st, _, bytes) =
                self.get(&format!("/snapshot/zones/{}", z.object), None, Duration::from_secs(120)).await?;
            if st != 200 {
                // The source moved on while we fetched: the next round gets the new manifest.
                return Err(RoundError::Fetch(format!("zone {} object {}: source answered {st}", z.name, z.object)));
            }
            bytes_fetched += bytes.len() as u64;
            fetched.insert(z.object.clone(), decode_zone(&bytes, z)?);
        }
        let mut zones = Vec::with_capacity(manifest.zones.len());
        for z in &manifest.zones {
            match fetched.get(&z.object).or_else(|| held.get(&z.object)) {
                Some(saved) => zones.push(saved.clone()),
                None => return Err(Refused::Inconsistent(format!("zone {} has no object", z.name)).into()),
            }
        }
        if let Some(n) = manifest.internal_networks.iter().find(|n| r53dns_zone::routing::parse_prefix(n).is_none()) {
            return Err(Refused::Inconsistent(format!("internal network '{n}' is not a network")).into());
        }
        let saved = Saved {
            zones,
            health: manifest.health,
            cidr: manifest.cidr,
            endpoints: manifest.endpoints,
            confirmed,
            internal_networks: Some(manifest.internal_networks),
        };
        let n = self.syncer.apply_replica(saved).await;
        // Keep exactly the objects of the manifest now served.
        let wanted: std::collections::HashSet<&String> = manifest.zones.iter().map(|z| &z.object).collect();
        held.retain(|k, _| wanted.contains(k));
        held.extend(fetched.into_iter().filter(|(k, _)| wanted.contains(k)));
        drop(held);
        self.heard(confirmed, 0);
        if let Some(m) = &self.metrics {
            m.replication_fetches.with_label_values(&["applied"]).inc();
        }
        tracing::info!(source = %self.cfg.source, zones = n, bytes = bytes_fetched, "snapshot from the source applied");
        Ok(Some(new_etag))
    }

    fn heard(&self, confirmed: Option<u64>, behind: u64) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.status.heard.store(now, Ordering::Relaxed);
        self.status.failing.store(false, Ordering::Relaxed);
        self.status.behind.store(behind, Ordering::Relaxed);
        if let Some(at) = confirmed {
            self.syncer.status().confirm(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hz(id: &str) -> HostedZone {
        HostedZone {
            id: id.into(),
            name: format!("{id}.example."),
            private: false,
            vpcs: vec![],
            account: String::new(),
        }
    }

    fn publish(hub: &Hub, zones: &[(&str, u32)]) -> Arc<Published> {
        let hzs: Vec<HostedZone> = zones.iter().map(|(id, _)| hz(id)).collect();
        let refs = hzs.iter().zip(zones).map(|(h, (_, serial))| ZoneRef {
            zone: h,
            records: &[],
            serial: *serial,
            hash: format!("{serial:x}"),
            confirmed: Some(5),
        });
        hub.publish(refs, vec![], vec![], vec![], vec!["10.0.0.0/8".into()], Some(7));
        hub.tx.borrow().clone().unwrap()
    }

    #[test]
    fn manifests_and_objects_read_back_and_unchanged_zones_keep_their_object() {
        let hub = Hub::new();
        let first = publish(&hub, &[("Z1", 1), ("Z2", 1)]);
        let m = decode_manifest(&first.manifest).unwrap();
        assert_eq!(m.zones.len(), 2);
        assert_eq!(m.internal_networks, vec!["10.0.0.0/8".to_owned()]);
        for z in &m.zones {
            let saved = decode_zone(&hub.object(&z.object).unwrap(), z).unwrap();
            assert_eq!((saved.zone.id.as_str(), saved.serial, saved.confirmed), (z.id.as_str(), 1, Some(5)));
        }
        let second = publish(&hub, &[("Z1", 2), ("Z2", 1)]);
        let m2 = decode_manifest(&second.manifest).unwrap();
        assert_ne!(m.zones[0].object, m2.zones[0].object, "a changed zone is a new object");
        assert_eq!(m.zones[1].object, m2.zones[1].object, "an unchanged zone keeps its object");
        assert!(hub.object(&m.zones[0].object).is_some(), "the previous version's objects stay fetchable");
        // The same content again wakes nobody.
        let mut rx = hub.tx.subscribe();
        rx.borrow_and_update();
        publish(&hub, &[("Z1", 2), ("Z2", 1)]);
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn damage_versions_and_serials_going_back_are_refused() {
        let hub = Hub::new();
        let p = publish(&hub, &[("Z1", 10)]);
        let bytes = p.manifest.to_vec();
        // Cut short, flipped, empty, not ours.
        for bad in [&bytes[..bytes.len() - 1], &bytes[..10], b"", b"<html>hello</html>"] {
            assert!(matches!(decode_manifest(bad), Err(Refused::Damaged(_))), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 2] ^= 1;
        assert!(matches!(decode_manifest(&flipped), Err(Refused::Damaged(_))));
        // A later format is named as such, whether in the header or in the body.
        let future = frame_as("r53dns-manifest v3 sha256=", b"{}");
        assert!(matches!(decode_manifest(&future), Err(Refused::Version(3))));
        let body = serde_json::to_vec(&Manifest { format: 9, ..decode_manifest(&bytes).unwrap() }).unwrap();
        assert!(matches!(decode_manifest(&frame_as(MANIFEST_MAGIC, &body)), Err(Refused::Version(9))));
        // An object that is not the one named.
        let m = decode_manifest(&bytes).unwrap();
        let mut wrong = m.zones[0].clone();
        wrong.serial = 11;
        assert!(matches!(decode_zone(&hub.object(&m.zones[0].object).unwrap(), &wrong), Err(Refused::Inconsistent(_))));
        // Serials: forward and equal are fine, back is refused, across the wrap too.
        let held = HashMap::from([("Z1".to_owned(), 11u32)]);
        assert!(matches!(check_serials(&m, &held), Err(Refused::SerialBack { held: 11, offered: 10, .. })));
        let held = HashMap::from([("Z1".to_owned(), u32::MAX - 3)]);
        assert!(check_serials(&m, &held).is_ok(), "10 is after 2^32-4 in RFC 1982 order");
        assert!(check_serials(&m, &HashMap::new()).is_ok());
    }

    #[test]
    fn access_needs_every_condition_given() {
        let mut h = HeaderMap::new();
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        let open = Access::default();
        assert!(open.allows(outside, &h));
        let nets = Access { networks: vec![("10.0.0.0".parse().unwrap(), 8)], token_sha256: None };
        assert!(nets.allows(inside, &h) && !nets.allows(outside, &h));
        let both = Access { token_sha256: Some(Sha256::digest(b"s3cret").into()), ..nets };
        assert!(!both.allows(inside, &h));
        h.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(!both.allows(inside, &h));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(both.allows(inside, &h) && !both.allows(outside, &h));
    }
}
