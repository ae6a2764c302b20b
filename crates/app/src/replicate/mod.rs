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
use std::time::Duration;

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use r53dns_route53::model::{HostedZone, RecordSet};
use r53dns_server::CancellationToken;
use r53dns_zone::Prefix;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::persist::{SavedZone, frame_as, hex, unframe};

mod follow;
pub mod s3;

pub use follow::{FollowConfig, FollowStatus, Follower};

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
    /// VPCs of a private zone, with their regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpcs: Vec<(String, String)>,
    /// The account (assumed role) it was read with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// The serial served for it.
    pub serial: u32,
    /// Its content hash (hex; the serial belongs to it): equal content keeps one serial
    /// across syncers.
    #[serde(default)]
    pub hash: String,
    /// Its zone objects (one per part), in order.
    pub objects: Vec<ObjectRef>,
    /// Unix time Route53 last confirmed it, when its last fetch failed (otherwise the
    /// source's time for the whole snapshot applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<u64>,
}

impl ManifestZone {
    fn hosted_zone(&self) -> HostedZone {
        HostedZone {
            id: self.id.clone(),
            name: self.name.clone(),
            private: self.private,
            vpcs: self.vpcs.clone(),
            account: self.account.clone(),
        }
    }
}

/// One zone object named by a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectRef {
    /// SHA-256 (hex) of the object, header line included: its name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// One part of a zone as stored: the record sets whose owner name hashes to this part.
/// Splitting large zones by owner name keeps a one-record change to one part (insertions
/// and deletions included), so that is all a replica downloads; the record sets of one
/// owner (a routed group's members, in listing order) stay together and in order. A part
/// holds records only (serial and the rest are in the manifest), so a part whose records
/// did not change keeps its name across versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZonePart {
    /// The hosted zone's ID.
    pub zone: String,
    /// Which part this is, from 0.
    pub part: u32,
    /// How many parts the zone has.
    pub parts: u32,
    /// The record sets of this part, in listing order.
    pub records: Vec<RecordSet>,
}

/// Record sets per part a zone aims at; the number of parts is a power of two, so it
/// changes (and every part with it) only when the zone doubles or halves.
const PART_SETS: usize = 1024;

fn parts_for(sets: usize) -> usize {
    sets.div_ceil(PART_SETS).max(1).next_power_of_two()
}

/// The part of `parts` a record set's owner belongs to (case-insensitive).
fn part_of(name: &str, parts: usize) -> usize {
    if parts == 1 {
        return 0;
    }
    let mut h = Sha256::new();
    h.update(name.trim_end_matches('.').to_ascii_lowercase().as_bytes());
    let d = h.finalize();
    (u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) % parts as u64) as usize
}

/// A part as encoded (same JSON as [`ZonePart`]).
#[derive(Serialize)]
struct PartRef<'a> {
    zone: &'a str,
    part: u32,
    parts: u32,
    records: Vec<&'a RecordSet>,
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

impl Manifest {
    /// The snapshot this manifest describes, with `zones` put together from its objects;
    /// `with_views` carries the source's internal networks along.
    pub(crate) fn saved(
        &self,
        zones: Vec<SavedZone>,
        confirmed: Option<u64>,
        with_views: bool,
    ) -> crate::persist::Saved {
        crate::persist::Saved {
            zones,
            health: self.health.clone(),
            cidr: self.cidr.clone(),
            endpoints: self.endpoints.clone(),
            confirmed,
            internal_networks: with_views.then(|| self.internal_networks.clone()),
        }
    }
}

/// A zone as the source holds it, borrowed for encoding (same JSON as [`SavedZone`]).
#[derive(Debug, Serialize)]
pub struct ZoneRef<'a> {
    /// The hosted zone.
    pub zone: &'a HostedZone,
    /// Its record sets as listed.
    pub records: &'a [RecordSet],
    /// The serial served.
    pub serial: u32,
    /// Content hash (hex) the serial belongs to.
    pub hash: String,
    /// Unix time Route53 last confirmed the records, when the last fetch failed.
    pub stale_since: Option<u64>,
}

/// One publication: the manifest as served and the zone objects it names.
#[derive(Debug)]
pub struct Published {
    /// The manifest, decoded.
    pub manifest: Manifest,
    /// The manifest as written (header line and JSON).
    pub bytes: Bytes,
    /// SHA-256 (hex) of `bytes`: the HTTP ETag.
    pub etag: String,
    /// Zone objects by name.
    pub objects: HashMap<String, Bytes>,
}

/// A zone's encoded parts (name, bytes), valid while its content hash is unchanged.
type CachedObject = (String, Vec<(String, Bytes)>);

/// The account-wide inputs of a publication.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// Health-check status.
    pub health: Vec<(String, bool)>,
    /// CIDR blocks: (collection, location, blocks).
    pub cidr: Vec<(String, String, Vec<String>)>,
    /// AWS endpoint addresses.
    pub endpoints: Vec<(String, Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
    /// Who sees private zones.
    pub internal_networks: Vec<String>,
}

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

    /// Encodes a version: unchanged zones reuse their encoded object.
    pub fn prepare<'a>(&self, zones: impl Iterator<Item = ZoneRef<'a>>, shared: Shared) -> Arc<Published> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut objects = HashMap::new();
        let mut listed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for z in zones {
            let key = z.hash.clone();
            let parts = match cache.get(&z.zone.id) {
                Some((k, parts)) if *k == key => parts.clone(),
                _ => {
                    let parts = encode_parts(&z);
                    cache.insert(z.zone.id.clone(), (key, parts.clone()));
                    parts
                }
            };
            seen.insert(z.zone.id.clone());
            listed.push(ManifestZone {
                id: z.zone.id.clone(),
                name: z.zone.name.clone(),
                private: z.zone.private,
                vpcs: z.zone.vpcs.clone(),
                account: z.zone.account.clone(),
                serial: z.serial,
                hash: z.hash.clone(),
                objects: parts.iter().map(|(name, b)| ObjectRef { name: name.clone(), size: b.len() as u64 }).collect(),
                stale_since: z.stale_since,
            });
            objects.extend(parts);
        }
        cache.retain(|id, _| seen.contains(id));
        drop(cache);
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        let manifest = Manifest {
            format: FORMAT,
            zones: listed,
            health: sorted(shared.health),
            cidr: sorted(shared.cidr),
            endpoints: sorted(shared.endpoints),
            internal_networks: shared.internal_networks,
        };
        // Plain data of strings and numbers: serde_json cannot fail on it.
        let body = serde_json::to_vec(&manifest).unwrap_or_default();
        let bytes = Bytes::from(frame_as(MANIFEST_MAGIC, &body));
        let etag = hex(&Sha256::digest(&bytes));
        Arc::new(Published { manifest, bytes, etag, objects })
    }

    /// Offers `p` to replicas; waiting ones are woken only when the manifest changed.
    pub(crate) fn offer(&self, p: Arc<Published>, confirmed: Option<u64>) {
        if let Some(at) = confirmed {
            self.confirmed.fetch_max(at, Ordering::Relaxed);
        }
        self.tx.send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.etag == p.etag) {
                return false;
            }
            if let Some(old) = current.take() {
                *self.previous.lock().unwrap_or_else(|p| p.into_inner()) = old.objects.clone();
            }
            *current = Some(p);
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

/// A zone's parts, encoded and named.
fn encode_parts(z: &ZoneRef<'_>) -> Vec<(String, Bytes)> {
    let n = parts_for(z.records.len());
    let mut split: Vec<Vec<&RecordSet>> = vec![Vec::new(); n];
    for r in z.records {
        split[part_of(&r.name, n)].push(r);
    }
    split
        .into_iter()
        .enumerate()
        .map(|(i, records)| {
            let part = PartRef { zone: &z.zone.id, part: i as u32, parts: n as u32, records };
            // Plain data of strings and numbers: serde_json cannot fail on it.
            let body = serde_json::to_vec(&part).unwrap_or_default();
            let bytes = Bytes::from(frame_as(ZONE_MAGIC, &body));
            (hex(&Sha256::digest(&bytes)), bytes)
        })
        .collect()
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
    (StatusCode::OK, common, [(header::CONTENT_TYPE, "application/octet-stream")], p.bytes.clone()).into_response()
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

/// `body` framed as a manifest (header line with its checksum), for tests and fuzzing.
pub fn frame_manifest(body: &[u8]) -> Vec<u8> {
    frame_as(MANIFEST_MAGIC, body)
}

/// `body` framed as a zone object, with the name a manifest gives it; for tests and fuzzing.
pub fn frame_zone_part(body: &[u8]) -> (String, Vec<u8>) {
    let bytes = frame_as(ZONE_MAGIC, body);
    (hex(&Sha256::digest(&bytes)), bytes)
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

/// Reads part `index` of the zone `entry` names and checks it is that part.
pub fn decode_part(bytes: &[u8], entry: &ManifestZone, index: usize) -> Result<ZonePart, Refused> {
    let want = entry
        .objects
        .get(index)
        .ok_or_else(|| Refused::Inconsistent(format!("zone {} has no part {index}", entry.name)))?;
    let sum = hex(&Sha256::digest(bytes));
    if sum != want.name {
        return Err(Refused::Damaged(format!("zone {}: object checksum {sum} is not {}", entry.name, want.name)));
    }
    let body = unframe(ZONE_MAGIC, bytes).map_err(|e| Refused::Damaged(format!("zone {}: {e}", entry.name)))?;
    let z: ZonePart =
        serde_json::from_slice(body).map_err(|e| Refused::Damaged(format!("zone {}: {e}", entry.name)))?;
    if z.zone != entry.id || z.part as usize != index || z.parts as usize != entry.objects.len() {
        return Err(Refused::Inconsistent(format!(
            "object for {} part {index} of {} holds zone {} part {} of {}",
            entry.name,
            entry.objects.len(),
            z.zone,
            z.part,
            z.parts
        )));
    }
    Ok(z)
}

/// The zone `entry` names, put together from its parts (in order); `confirmed` is the
/// source's time for the whole snapshot.
pub fn join_parts(entry: &ManifestZone, parts: Vec<&ZonePart>, confirmed: Option<u64>) -> SavedZone {
    let mut records = Vec::with_capacity(parts.iter().map(|p| p.records.len()).sum());
    for p in parts {
        records.extend(p.records.iter().cloned());
    }
    SavedZone {
        zone: entry.hosted_zone(),
        records: std::sync::Arc::new(records),
        serial: entry.serial,
        hash: entry.hash.clone(),
        confirmed: entry.stale_since.or(confirmed),
    }
}

/// Checks that no zone `held` serves would move back to an older serial.
pub fn check_serials(manifest: &Manifest, held: &HashMap<String, u32>) -> Result<(), Refused> {
    for z in &manifest.zones {
        if let Some(&h) = held.get(&z.id)
            && h != z.serial
            && r53dns_zone::proto::serial::is_after(h, z.serial)
        {
            return Err(Refused::SerialBack { zone: z.name.clone(), held: h, offered: z.serial });
        }
    }
    Ok(())
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

    /// Zones with one A record each, whose address is the serial.
    fn publish(hub: &Hub, zones: &[(&str, u32)]) -> Arc<Published> {
        let hzs: Vec<HostedZone> = zones.iter().map(|(id, _)| hz(id)).collect();
        let sets: Vec<Vec<RecordSet>> = zones
            .iter()
            .map(|(id, serial)| {
                vec![RecordSet::plain(format!("www.{id}.example."), "A".into(), 60, vec![format!("192.0.2.{serial}")])]
            })
            .collect();
        let refs = hzs.iter().zip(zones).zip(&sets).map(|((h, (_, serial)), records)| ZoneRef {
            zone: h,
            records,
            serial: *serial,
            hash: format!("{serial:x}"),
            stale_since: Some(5),
        });
        let shared = Shared { internal_networks: vec!["10.0.0.0/8".into()], ..Default::default() };
        let p = hub.prepare(refs, shared);
        hub.offer(p, Some(7));
        hub.tx.borrow().clone().unwrap()
    }

    #[test]
    fn manifests_and_objects_read_back_and_unchanged_zones_keep_their_object() {
        let hub = Hub::new();
        let first = publish(&hub, &[("Z1", 1), ("Z2", 1)]);
        let m = decode_manifest(&first.bytes).unwrap();
        assert_eq!(m.zones.len(), 2);
        assert_eq!(m.internal_networks, vec!["10.0.0.0/8".to_owned()]);
        for z in &m.zones {
            let part = decode_part(&hub.object(&z.objects[0].name).unwrap(), z, 0).unwrap();
            let saved = join_parts(z, vec![&part], Some(7));
            assert_eq!((saved.zone.id.as_str(), saved.serial, saved.confirmed), (z.id.as_str(), 1, Some(5)));
        }
        let second = publish(&hub, &[("Z1", 2), ("Z2", 1)]);
        let m2 = decode_manifest(&second.bytes).unwrap();
        assert_ne!(m.zones[0].objects, m2.zones[0].objects, "a changed zone is a new object");
        assert_eq!(m.zones[1].objects, m2.zones[1].objects, "an unchanged zone keeps its object");
        assert!(hub.object(&m.zones[0].objects[0].name).is_some(), "the previous version's objects stay fetchable");
        // The same content again wakes nobody.
        let mut rx = hub.tx.subscribe();
        rx.borrow_and_update();
        publish(&hub, &[("Z1", 2), ("Z2", 1)]);
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn a_large_zone_is_split_so_a_change_touches_one_part() {
        let h = hz("Z9");
        let mut records: Vec<RecordSet> = (0..5000)
            .map(|i| RecordSet::plain(format!("h{i}.Z9.example."), "A".into(), 60, vec!["192.0.2.1".into()]))
            .collect();
        // The members of a routed name stay together and in order, whatever their case.
        for (i, id) in ["b", "a", "c"].iter().enumerate() {
            let mut r = RecordSet::plain(format!("W{i}.z9.EXAMPLE."), "A".into(), 60, vec![format!("192.0.2.{i}")]);
            r.name = if i == 1 { "w.Z9.example.".into() } else { "W.z9.EXAMPLE.".into() };
            r.set_identifier = Some((*id).into());
            records.push(r);
        }
        let hub = Hub::new();
        let zref = |records: &[RecordSet], serial: u32| {
            let z = ZoneRef { zone: &h, records, serial, hash: format!("{serial}"), stale_since: None };
            hub.prepare(std::iter::once(z), Shared::default())
        };
        let first = zref(&records, 1);
        let m = decode_manifest(&first.bytes).unwrap();
        assert_eq!(m.zones[0].objects.len(), 8, "5003 record sets in parts of about 1024");
        let parts: Vec<ZonePart> = m.zones[0]
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| decode_part(&first.objects[&o.name], &m.zones[0], i).unwrap())
            .collect();
        let joined = join_parts(&m.zones[0], parts.iter().collect(), None);
        assert_eq!(joined.records.len(), records.len());
        let routed: Vec<_> = joined.records.iter().filter_map(|r| r.set_identifier.as_deref()).collect();
        assert_eq!(routed, ["b", "a", "c"]);
        // One changed value and one new name: at most two parts change, the rest keep their names.
        records[10].resource_records[0].value = "192.0.2.99".into();
        records.push(RecordSet::plain("new.Z9.example.".into(), "A".into(), 60, vec!["192.0.2.5".into()]));
        let second = zref(&records, 2);
        let m2 = decode_manifest(&second.bytes).unwrap();
        let changed = m2.zones[0].objects.iter().filter(|o| !first.objects.contains_key(&o.name)).count();
        assert!((1..=2).contains(&changed), "{changed} parts changed");
    }

    #[test]
    fn damage_versions_and_serials_going_back_are_refused() {
        let hub = Hub::new();
        let p = publish(&hub, &[("Z1", 10)]);
        let bytes = p.bytes.to_vec();
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
        wrong.id = "Z2".into();
        let part = hub.object(&m.zones[0].objects[0].name).unwrap();
        assert!(matches!(decode_part(&part, &wrong, 0), Err(Refused::Inconsistent(_))));
        assert!(matches!(decode_part(&part, &m.zones[0], 1), Err(Refused::Inconsistent(_))));
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
