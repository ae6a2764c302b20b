//! The Route53 sync loop: sweep the account(s) on a timer, convert, publish.
//!
//! A sweep lists the hosted zones, then every zone's record sets, one zone at a time: a zone
//! whose listing equals the records held costs that comparison only; a changed one is
//! converted at once and served (whole) within seconds, while the sweep goes on. A zone whose
//! listing fails at any page keeps its last good version; other zones still update. Zones that disappear
//! from a successful listing disappear from the snapshot. Nothing half-fetched is ever
//! published. Aliases to AWS endpoints are resolved on their own timer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use r53dns_route53::convert::{EndpointAddrs, Inputs, convert};
use r53dns_route53::fetch::{client_config, http_client, parse_prefix};
use r53dns_route53::model::{HostedZone, RecordSet};
use r53dns_route53::{RateBudget, RetryPolicy, Route53};
use r53dns_server::CancellationToken;
use r53dns_zone::{Name, Prefix, Zone};
use tokio::sync::{Mutex, Notify};

use crate::config::{Route53Config, ZoneKind};
use crate::persist::{self, Saved, SavedZone, hex};
use crate::publish::{Publisher, R53Zone};

/// What operators and probes can see of the sync.
#[derive(Debug, Default)]
pub struct SyncStatus {
    ready: AtomicBool,
    /// Unix time of the last sweep that listed every zone completely (0: never), as carried
    /// by the saved snapshot and by replication: the age of the data, wherever it is served.
    confirmed: AtomicU64,
    sweeps: AtomicU64,
    failures: AtomicU64,
    zones: StdMutex<Vec<ZoneStatus>>,
    /// The event queue, with `[route53] events`.
    pub events: crate::events::EventsStatus,
}

/// One zone's state, for `/zones` and logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ZoneStatus {
    /// Zone name.
    pub name: String,
    /// Hosted zone ID.
    pub id: String,
    /// Private zone.
    pub private: bool,
    /// Serial in effect.
    pub serial: u32,
    /// Records in effect.
    pub records: usize,
    /// Unix time of the last successful fetch.
    pub last_sync: Option<u64>,
    /// The last error, if the last fetch failed.
    pub last_error: Option<String>,
}

impl SyncStatus {
    /// Ready once there is data to serve: a sweep published, a saved snapshot was loaded, or
    /// (on a replica) a snapshot was received. Stale data never makes a server unready: an
    /// AWS or credential outage reaches every replica at the same moment, and taking them all
    /// out of service would turn it into a DNS outage. Staleness shows in
    /// `r53dns_snapshot_age_seconds` and its alert instead.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Sweeps done and failed.
    pub fn counts(&self) -> (u64, u64) {
        (self.sweeps.load(Ordering::Relaxed), self.failures.load(Ordering::Relaxed))
    }

    /// Per-zone state.
    pub fn zones(&self) -> Vec<ZoneStatus> {
        self.zones.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Time since Route53 last confirmed the data (a sweep that listed every zone), also
    /// across restarts and replication.
    pub fn age(&self) -> Option<Duration> {
        let at = self.confirmed_at()?;
        Some(Duration::from_secs(unix_now().saturating_sub(at)))
    }

    /// Unix time of the confirmation [`SyncStatus::age`] counts from.
    pub fn confirmed_at(&self) -> Option<u64> {
        Some(self.confirmed.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }

    /// Notes a confirmation at Unix time `at` (never moves back).
    pub(crate) fn confirm(&self, at: u64) {
        self.confirmed.fetch_max(at, Ordering::Relaxed);
    }
}

/// The current Unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_of(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[derive(Debug, Clone)]
struct ZoneEntry {
    hz: HostedZone,
    /// Shared with a save in progress ([`Saver`]): a change while it holds them copies
    /// this zone's record sets ([`Arc::make_mut`]), never the account's.
    records: Arc<Vec<RecordSet>>,
    built: Option<Arc<Zone>>,
    hash: [u8; 32],
    serial: u32,
    last_ok: Option<SystemTime>,
    last_error: Option<String>,
    endpoints: Vec<String>,
    /// When an UPDATE or an event last changed `records` locally: a sweep that started
    /// fetching before then does not overwrite them.
    updated: Option<Instant>,
    /// When the listing that gave `records` started: an event's read that started before
    /// then is older and is not applied.
    listed: Option<Instant>,
    /// When the zone was taken in: a zone listing that started before then does not remove
    /// it.
    added: Instant,
}

impl ZoneEntry {
    fn new(hz: HostedZone) -> Self {
        Self {
            hz,
            records: Arc::default(),
            built: None,
            hash: [0; 32],
            serial: 0,
            last_ok: None,
            last_error: None,
            endpoints: Vec::new(),
            updated: None,
            listed: None,
            added: Instant::now(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    zones: BTreeMap<String, ZoneEntry>,
    health: HashMap<String, bool>,
    cidr: HashMap<(String, String), Vec<Prefix>>,
    endpoints: HashMap<String, EndpointAddrs>,
    /// Zones an event-driven listing found gone, and when: a sweep whose listing started
    /// before then does not bring them back.
    gone: HashMap<String, Instant>,
}

/// Writes the state directory in the background: the sync loop hands it the latest
/// publication ([`Saver::hand_off`], record sets shared, not copied) and goes on; a save
/// handed over while one is being written replaces the one waiting, so the writer always
/// takes the latest and never falls further behind than one save.
struct Saver {
    /// The save waiting for the writer.
    slot: Arc<StdMutex<Option<Saved>>>,
    /// Saves handed over so far (wakes the writer).
    queued: tokio::sync::watch::Sender<u64>,
    /// The last of them the writer is done with.
    done: tokio::sync::watch::Receiver<u64>,
    /// The last save failed: the next publication saves even if nothing changed.
    failed: Arc<AtomicBool>,
}

impl Saver {
    /// Starts the writer for `dir`; it ends once the syncer is gone and the last save
    /// handed over is written.
    fn start(dir: std::path::PathBuf, metrics: Option<Arc<r53dns_metrics::Metrics>>) -> Self {
        let slot: Arc<StdMutex<Option<Saved>>> = Arc::default();
        let (queued, mut wake) = tokio::sync::watch::channel(0u64);
        let (done_tx, done) = tokio::sync::watch::channel(0u64);
        let failed = Arc::new(AtomicBool::new(false));
        let (job, flag) = (slot.clone(), failed.clone());
        tokio::spawn(async move {
            loop {
                let closed = wake.changed().await.is_err();
                let generation = *wake.borrow_and_update();
                let saved = job.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(saved) = saved {
                    let dir = dir.clone();
                    let started = Instant::now();
                    let result = tokio::task::spawn_blocking(move || persist::save(&dir, &saved)).await;
                    let outcome = match result.map_err(std::io::Error::other).and_then(|r| r) {
                        Ok(w) => {
                            tracing::debug!(
                                zone_files = w.zone_files,
                                bytes = w.bytes,
                                ms = started.elapsed().as_millis() as u64,
                                "saved the Route53 snapshot"
                            );
                            "written"
                        }
                        Err(e) => {
                            flag.store(true, Ordering::Relaxed);
                            tracing::warn!(error = %e, "cannot save the Route53 snapshot; trying again with the next publication");
                            "failed"
                        }
                    };
                    if let Some(m) = &metrics {
                        m.state_saves.with_label_values(&[outcome]).inc();
                    }
                }
                let _ = done_tx.send(generation);
                if closed {
                    return;
                }
            }
        });
        Self { slot, queued, done, failed }
    }

    /// Hands `saved` to the writer; one still waiting is superseded (counted).
    fn hand_off(&self, saved: Saved, metrics: &Option<Arc<r53dns_metrics::Metrics>>) {
        let superseded = self.slot.lock().unwrap_or_else(|p| p.into_inner()).replace(saved).is_some();
        if superseded {
            tracing::debug!("a save of the Route53 snapshot was still waiting; the latest replaces it");
            if let Some(m) = metrics {
                m.state_saves.with_label_values(&["superseded"]).inc();
            }
        }
        self.queued.send_modify(|g| *g += 1);
    }
}

/// The Route53 source.
pub struct Syncer {
    cfg: Route53Config,
    metrics: Option<Arc<r53dns_metrics::Metrics>>,
    clients: Vec<Route53>,
    state: Mutex<State>,
    publisher: Arc<Publisher>,
    status: Arc<SyncStatus>,
    trigger: Notify,
    /// When a save to the state directory was last handed to its writer.
    saved_at: StdMutex<Option<Instant>>,
    /// The writer of the state directory, started with the first save.
    saver: std::sync::OnceLock<Saver>,
    /// Zones with a re-fetch scheduled after an UPDATE.
    resync_pending: StdMutex<BTreeSet<String>>,
    /// Where published data is offered to replicas, if anywhere.
    hub: Option<Arc<crate::replicate::Hub>>,
    /// Where published data is written in S3, if anywhere.
    s3: Option<Arc<crate::replicate::s3::Writer>>,
    /// Private zone names may label metrics (`http.private-zone-metrics`).
    private_zone_metrics: bool,
    /// A replica: data comes from another r53dns ([`Syncer::apply_replica`]), never from
    /// the API, and serials are the source's.
    replica: bool,
    /// Told after each zone a sweep lists (`export` shows it).
    progress: Option<Box<dyn Fn(SweepProgress) + Send + Sync>>,
}

/// How far a sweep got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepProgress {
    /// Zones listed so far (failed ones included).
    pub zones_done: usize,
    /// Zones the sweep lists.
    pub zones_total: usize,
    /// Record sets read so far.
    pub record_sets: usize,
}

/// Where an UPDATE for a zone goes.
#[derive(Debug, Clone)]
pub struct UpdateTarget {
    /// The hosted zone.
    pub zone: HostedZone,
    /// API access for its account.
    pub client: Route53,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("accounts", &self.clients.len()).finish_non_exhaustive()
    }
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Zones discovered.
    pub zones: usize,
    /// Zones whose content changed.
    pub changed: Vec<String>,
    /// Zones that failed (kept their last good version).
    pub failed: Vec<String>,
    /// Their `zone` labels in metrics: the name, or `(private)` for a private zone unless
    /// private zone names may appear in metrics.
    pub failed_labels: Vec<String>,
    /// Time listing and fetching.
    pub fetch: Duration,
    /// Time converting.
    pub convert: Duration,
    /// Time publishing.
    pub publish: Duration,
}

/// What reading a zone again for an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reread {
    /// The zone changed and the change is published.
    Changed,
    /// Nothing to publish: the zone holds what it held.
    Unchanged,
    /// The zone is not served (filtered out, unknown, or not built).
    NotServed,
    /// The read or the publication failed; what is served stays.
    Failed(String),
}

/// How often a sweep serves the zones it has converted so far.
const SERVE_EVERY: Duration = Duration::from_secs(2);

/// How often a long sweep logs how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How often a sweep that changed nothing still saves the snapshot (for the age it
/// carries).
const SAVE_UNCHANGED_EVERY: Duration = Duration::from_secs(3600);

/// Health checks and CIDR locations whose value a sweep found changed.
#[derive(Debug, Default)]
struct Refs {
    health: BTreeSet<String>,
    cidr: BTreeSet<(String, String)>,
}

impl Refs {
    fn is_empty(&self) -> bool {
        self.health.is_empty() && self.cidr.is_empty()
    }

    /// Whether any of `records` refers to one of them.
    fn referred_to(&self, records: &[RecordSet]) -> bool {
        records.iter().any(|r| {
            r.health_check_id.as_ref().is_some_and(|h| self.health.contains(h))
                || r.cidr_routing_config
                    .as_ref()
                    .is_some_and(|c| self.cidr.iter().any(|(id, l)| *id == c.collection_id && *l == c.location_name))
        })
    }
}

/// Where a sweep reads record sets from.
enum Lister<'a> {
    /// The Route53 API.
    Api,
    /// A function of the hosted zone ID (benchmarks).
    Fixed(&'a (dyn Fn(&str) -> Vec<RecordSet> + Sync)),
}

/// What an event-driven read brought back.
enum Fresh {
    /// The whole zone.
    Whole(Vec<RecordSet>),
    /// The record sets at each (name, type) read.
    Sets(Vec<((String, String), Vec<RecordSet>)>),
}

/// The `zone` label standing for every private zone in metrics, unless the operator lets
/// private zone names appear there.
pub const PRIVATE_LABEL: &str = "(private)";

/// How long after an UPDATE its zone is re-fetched from Route53.
const RESYNC_DELAY: Duration = Duration::from_secs(2);

fn now_secs() -> u32 {
    unix_now().min(u64::from(u32::MAX)) as u32
}

/// Route53 keeps its SOA serial at 1. Ours: unchanged while the content hash is unchanged;
/// on a change, the current Unix time, or one more than before if the clock is behind.
/// (The catalog zone numbers its versions the same way.)
pub(crate) fn next_serial(prev: Option<(&[u8; 32], u32)>, hash: &[u8; 32]) -> u32 {
    match prev {
        Some((h, s)) if h == hash => s,
        Some((_, s)) => now_secs().max(s.wrapping_add(1)),
        None => now_secs(),
    }
}

/// Returns the records lent by [`Syncer::lend`].
fn give_back(st: &mut State, inputs: Inputs) {
    for (id, (_, records)) in inputs.zones {
        if let Some(z) = st.zones.get_mut(&id) {
            z.records = Arc::new(records);
        }
    }
}

/// Whether a Route53 owner name (as listed, or as an event or UPDATE wrote it) is one of
/// `owners` (lower case): compared as text, ASCII case ignored, and parsed only when it has
/// escapes, so that looking through a zone's records costs no allocation per record.
fn owner_in(name: &str, owners: &[Name], texts: &[String]) -> bool {
    let t = name.strip_suffix('.').unwrap_or(name);
    if t.contains('\\') {
        return r53dns_route53::convert::parse_route53_name(name).is_ok_and(|n| owners.contains(&n.to_lowercase()));
    }
    texts.iter().any(|w| w.len() == t.len() && w.eq_ignore_ascii_case(t))
}

/// The owners as plain text without the final dot (names with escapes are compared parsed).
fn owner_texts(owners: &[Name]) -> Vec<String> {
    owners.iter().map(|n| n.to_text().trim_end_matches('.').to_owned()).collect()
}

/// The record sets of `records` owned by one of `owners` (lower case), in their order.
fn records_at<'a>(records: &'a [RecordSet], owners: &[Name]) -> Vec<&'a RecordSet> {
    let texts = owner_texts(owners);
    records.iter().filter(|r| owner_in(&r.name, owners, &texts)).collect()
}

/// `names` (zone ID → changed owners, lower case) with every owner added whose alias
/// targets one of them, in any zone, transitively: their converted data follows the target's.
fn alias_dependents(st: &State, names: BTreeMap<String, BTreeSet<Name>>) -> BTreeMap<String, BTreeSet<Name>> {
    use r53dns_route53::convert::parse_route53_name;
    let mut names = names;
    loop {
        let mut more: Vec<(String, Name)> = Vec::new();
        for (id, z) in &st.zones {
            for r in z.records.iter() {
                let Some(a) = &r.alias_target else { continue };
                let Some(targets) = names.get(r53dns_route53::model::bare_zone_id(&a.hosted_zone_id)) else {
                    continue;
                };
                let hit = parse_route53_name(&a.dns_name).is_ok_and(|t| targets.contains(&t.to_lowercase()));
                if !hit {
                    continue;
                }
                if let Ok(owner) = parse_route53_name(&r.name).map(|n| n.to_lowercase())
                    && !names.get(id).is_some_and(|o| o.contains(&owner))
                {
                    more.push((id.clone(), owner));
                }
            }
        }
        if more.is_empty() {
            return names;
        }
        for (id, owner) in more {
            names.entry(id).or_default().insert(owner);
        }
    }
}

fn name_matches(pattern: &str, hz: &HostedZone) -> bool {
    let p = pattern.trim_end_matches('.');
    p.eq_ignore_ascii_case(hz.name.trim_end_matches('.')) || p == hz.id
}

impl Syncer {
    /// Builds the API clients from the standard AWS credential chain (and assumed roles).
    pub async fn new(
        cfg: Route53Config,
        publisher: Arc<Publisher>,
        metrics: Option<Arc<r53dns_metrics::Metrics>>,
    ) -> anyhow::Result<Arc<Self>> {
        let observer: Option<r53dns_route53::fetch::CallObserver> = metrics.clone().map(|m| {
            let f: r53dns_route53::fetch::CallObserver = Arc::new(move |op: &'static str, outcome: &'static str| {
                m.api_calls.with_label_values(&[op, outcome]).inc();
                match outcome {
                    "throttled" => {
                        m.api_throttles.inc();
                        m.api_retries.inc();
                    }
                    "retried" => m.api_retries.inc(),
                    _ => {}
                }
            });
            f
        });
        let observe = |r: Route53| match &observer {
            Some(o) => r.with_observer(o.clone()),
            None => r,
        };
        let budget = Arc::new(
            RateBudget::new(cfg.rate_limit, cfg.rate_limit.ceil().max(1.0) as u32).with_update_share(cfg.update_share),
        );
        let mut base = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await;
        if base.region().is_none() {
            // Route53 is global; requests are signed for us-east-1.
            base = base.into_builder().region(aws_config::Region::new("us-east-1")).build();
        }
        let mut clients = Vec::new();
        let timeout = Duration::from_secs(20);
        if cfg.own_account {
            let client = aws_sdk_route53::Client::from_conf(client_config(&base, timeout));
            clients.push(observe(Route53::new(client, budget.clone(), RetryPolicy::default(), String::new())));
        }
        for a in &cfg.accounts {
            let mut b =
                aws_config::sts::AssumeRoleProvider::builder(&a.role_arn).session_name("r53dns").configure(&base);
            if let Some(id) = &a.external_id {
                b = b.external_id(id);
            }
            let provider = b.build().await;
            let conf = base.to_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build();
            let client = aws_sdk_route53::Client::from_conf(client_config(&conf, timeout));
            clients.push(observe(Route53::new(client, budget.clone(), RetryPolicy::default(), a.role_arn.clone())));
        }
        Ok(Arc::new(Self::with_clients(cfg, publisher, metrics, clients, false)))
    }

    /// A syncer without API clients, swept with [`Syncer::sweep_listed`] (benchmarks).
    #[doc(hidden)]
    pub fn without_api(cfg: Route53Config, publisher: Arc<Publisher>) -> Arc<Self> {
        Arc::new(Self::with_clients(cfg, publisher, None, Vec::new(), false))
    }

    /// A replica's holder of Route53 data: no API clients and no AWS identity; the data
    /// arrives through [`Syncer::apply_replica`].
    pub fn replica(
        cfg: Route53Config,
        publisher: Arc<Publisher>,
        metrics: Option<Arc<r53dns_metrics::Metrics>>,
    ) -> Arc<Self> {
        Arc::new(Self::with_clients(cfg, publisher, metrics, Vec::new(), true))
    }

    fn with_clients(
        cfg: Route53Config,
        publisher: Arc<Publisher>,
        metrics: Option<Arc<r53dns_metrics::Metrics>>,
        clients: Vec<Route53>,
        replica: bool,
    ) -> Self {
        let status = SyncStatus::default();
        if cfg.events.is_some() && !replica {
            status.events.enable();
        }
        Self {
            cfg,
            metrics,
            clients,
            state: Mutex::new(State::default()),
            publisher,
            status: Arc::new(status),
            trigger: Notify::new(),
            resync_pending: StdMutex::default(),
            saved_at: StdMutex::default(),
            saver: std::sync::OnceLock::new(),
            hub: None,
            s3: None,
            private_zone_metrics: false,
            replica,
            progress: None,
        }
    }

    /// Calls `f` after each zone a sweep lists.
    pub fn with_progress(mut self: Arc<Self>, f: impl Fn(SweepProgress) + Send + Sync + 'static) -> Arc<Self> {
        if let Some(me) = Arc::get_mut(&mut self) {
            me.progress = Some(Box::new(f));
        }
        self
    }

    /// Lets private zone names label metrics.
    pub fn with_private_zone_metrics(mut self: Arc<Self>, on: bool) -> Arc<Self> {
        if let Some(me) = Arc::get_mut(&mut self) {
            me.private_zone_metrics = on;
        }
        self
    }

    /// Offers every published version to replicas through `hub`, and writes it to S3 first
    /// through `s3`.
    pub fn with_hub(
        mut self: Arc<Self>,
        hub: Arc<crate::replicate::Hub>,
        s3: Option<Arc<crate::replicate::s3::Writer>>,
    ) -> Arc<Self> {
        if let Some(me) = Arc::get_mut(&mut self) {
            me.hub = Some(hub);
            me.s3 = s3;
        }
        self
    }

    /// The Route53 zones in effect, with their hosted-zone records.
    pub async fn zones(&self) -> Vec<(HostedZone, Arc<Zone>)> {
        let st = self.state.lock().await;
        st.zones.values().filter_map(|z| Some((z.hz.clone(), z.built.clone()?))).collect()
    }

    /// Status for probes and operators.
    pub fn status(&self) -> Arc<SyncStatus> {
        self.status.clone()
    }

    /// The metrics, if any.
    pub(crate) fn metrics(&self) -> Option<Arc<r53dns_metrics::Metrics>> {
        self.metrics.clone()
    }

    /// Time between full sweeps now: `refresh`; with events, while the queue cannot be
    /// read, at most `fallback-refresh`.
    pub(crate) fn sweep_interval(&self) -> Duration {
        let events = &self.status.events;
        if events.enabled() && !events.reachable() {
            self.cfg.refresh.min(self.cfg.fallback_refresh)
        } else {
            self.cfg.refresh
        }
    }

    /// Asks for a sweep now (SIGHUP, `POST /sync`).
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }

    fn wanted(&self, hz: &HostedZone) -> bool {
        let c = &self.cfg;
        let kind = match c.kind {
            ZoneKind::All => true,
            ZoneKind::Public => !hz.private,
            ZoneKind::Private => hz.private,
        };
        let included = c.include.is_empty() || c.include.iter().any(|p| name_matches(p, hz));
        let excluded = c.exclude.iter().any(|p| name_matches(p, hz));
        let vpc = !hz.private || c.vpcs.is_empty() || hz.vpcs.iter().any(|(id, _)| c.vpcs.contains(id));
        kind && included && !excluded && vpc
    }

    /// Waits, at most `limit`, until the state directory holds the last publication handed
    /// to its writer (at shutdown; a save still running after `limit` is logged).
    pub async fn flush_save(&self, limit: Duration) {
        let Some(saver) = self.saver.get() else { return };
        let target = *saver.queued.borrow();
        let mut done = saver.done.clone();
        match tokio::time::timeout(limit, done.wait_for(|&g| g >= target)).await {
            Ok(_) => {}
            Err(_) => tracing::warn!(
                limit = ?limit,
                "the Route53 snapshot is still being saved; stopping without waiting longer (the state directory keeps the previous save)"
            ),
        }
    }

    /// Serves the persisted snapshot, if there is a good one. Returns whether it did.
    pub async fn restore(&self) -> bool {
        let Some(dir) = &self.cfg.state_dir else {
            return false;
        };
        let Some(loaded) = persist::load_counted(dir) else {
            return false;
        };
        if let Some(m) = &self.metrics {
            m.state_damaged_zones.with_label_values(&["previous"]).inc_by(loaded.previous as u64);
            m.state_damaged_zones.with_label_values(&["skipped"]).inc_by(loaded.skipped as u64);
        }
        let n = self.replace(loaded.saved).await;
        tracing::info!(zones = n, dir = %dir.display(), "serving the saved Route53 snapshot while the first sweep runs");
        true
    }

    /// Serves `saved` as received from the replication source: every zone with the source's
    /// serial, zones it no longer has gone. Returns the zones served.
    pub async fn apply_replica(&self, saved: Saved) -> usize {
        self.replace(saved).await
    }

    /// The serial a replica serves for each zone it holds, by hosted zone ID.
    pub async fn serials(&self) -> HashMap<String, u32> {
        self.state
            .lock()
            .await
            .zones
            .iter()
            .filter(|(_, z)| z.built.is_some())
            .map(|(id, z)| (id.clone(), z.serial))
            .collect()
    }

    /// Replaces every zone with `saved` and publishes.
    async fn replace(&self, saved: Saved) -> usize {
        if let Some(at) = saved.confirmed {
            self.status.confirm(at);
        }
        // A replica serves its source's views unless configured with its own.
        if self.replica
            && self.cfg.internal_networks.is_empty()
            && let Some(nets) = &saved.internal_networks
        {
            self.publisher
                .set_internal_networks(nets.iter().filter_map(|n| r53dns_zone::routing::parse_prefix(n)).collect());
        }
        let mut st = self.state.lock().await;
        st.zones.clear();
        // The saved data may predate the configuration: serve only what it asks for now (a
        // replica serves whatever its source serves).
        let mut saved = saved;
        if !self.replica {
            saved.zones.retain(|z| self.wanted(&z.zone));
        }
        st.health = saved.health.into_iter().collect();
        st.cidr = saved
            .cidr
            .into_iter()
            .map(|(c, l, blocks)| ((c, l), blocks.iter().filter_map(|b| parse_prefix(b)).collect()))
            .collect();
        st.endpoints = saved.endpoints.into_iter().map(|(n, a, aaaa)| (n, EndpointAddrs { a, aaaa })).collect();
        for z in saved.zones {
            st.zones.insert(
                z.zone.id.clone(),
                ZoneEntry {
                    hash: z.content_hash(),
                    records: z.records,
                    serial: z.serial,
                    last_ok: z.confirmed.map(|t| UNIX_EPOCH + Duration::from_secs(t)),
                    ..ZoneEntry::new(z.zone)
                },
            );
        }
        let ids: Vec<String> = st.zones.keys().cloned().collect();
        self.convert_all(&mut st, &ids, &mut Vec::new());
        let n = st.zones.values().filter(|z| z.built.is_some()).count();
        if self.publish(&mut st).await {
            self.status.ready.store(true, Ordering::Relaxed);
        }
        n
    }

    /// The inputs to convert `ids`: the zones these need, themselves and, through their
    /// aliases, the zones of the account they point into (transitively). A zone missing
    /// here would make its aliases look like AWS endpoints; a zone more costs a copy of its
    /// records, which for an event's one-zone change would be a copy of the whole account.
    /// The records are lent, not copied: [`give_back`] returns them.
    fn lend(st: &mut State, ids: &[String]) -> Inputs {
        let mut needed: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = ids.to_vec();
        while let Some(id) = todo.pop() {
            let Some(z) = st.zones.get(&id) else { continue };
            if !needed.insert(id) {
                continue;
            }
            for r in z.records.iter() {
                if let Some(a) = &r.alias_target {
                    let target = r53dns_route53::model::bare_zone_id(&a.hosted_zone_id);
                    if st.zones.contains_key(target) && !needed.contains(target) {
                        todo.push(target.to_owned());
                    }
                }
            }
        }
        Inputs {
            zones: needed
                .iter()
                .filter_map(|id| {
                    let z = st.zones.get_mut(id).filter(|z| !z.records.is_empty())?;
                    Some((id.clone(), (z.hz.clone(), Arc::unwrap_or_clone(std::mem::take(&mut z.records)))))
                })
                .collect(),
            health: st.health.clone(),
            cidr_blocks: st.cidr.clone(),
            endpoints: st.endpoints.clone(),
        }
    }

    /// Converts `ids` from the stored records; a failure keeps the zone's last good version.
    fn convert_all(&self, st: &mut State, ids: &[String], changed: &mut Vec<String>) {
        let inputs = Self::lend(st, ids);
        for id in ids {
            let Some(entry) = st.zones.get_mut(id) else {
                continue;
            };
            if !inputs.zones.contains_key(id) {
                continue;
            }
            // The serial in effect (from this run or the saved snapshot) is the one to keep;
            // a replica serves its source's serial whatever it computes.
            let prev = (entry.serial != 0).then_some((entry.hash, entry.serial));
            let pinned = self.replica.then_some(entry.serial).filter(|&s| s != 0);
            match convert(id, &inputs, |h| {
                pinned.unwrap_or_else(|| next_serial(prev.as_ref().map(|(ph, s)| (ph, *s)), h))
            }) {
                Ok(c) => {
                    for w in &c.warnings {
                        tracing::warn!(zone = %entry.hz.name, "{w}");
                    }
                    let is_change = entry.built.is_none() || entry.hash != c.content_hash;
                    if is_change && entry.built.is_some() {
                        changed.push(format!("{} serial {}→{}", entry.hz.name, entry.serial, c.zone.serial()));
                    }
                    entry.hash = c.content_hash;
                    entry.endpoints = c.endpoints;
                    // The same content under the same serial keeps the zone already built:
                    // nothing to publish, no journal to extend.
                    entry.serial = c.zone.serial();
                    if is_change || entry.built.as_ref().is_none_or(|b| b.serial() != c.zone.serial()) {
                        entry.built = Some(Arc::new(c.zone));
                    }
                }
                Err(e) => {
                    tracing::error!(zone = %entry.hz.name, error = %e, "zone not updated; the previous version stays");
                    entry.last_error = Some(e.to_string());
                }
            }
        }
        give_back(st, inputs);
    }

    /// Brings the zones whose owners in `names` (per zone ID, lower case) changed up to
    /// date with their records, and every owner whose alias reaches one of them: each zone
    /// patched for those owners alone ([`Syncer::patch`]), or converted whole when it
    /// cannot be. Returns the zones patched.
    fn convert_names(&self, st: &mut State, names: BTreeMap<String, BTreeSet<Name>>) -> usize {
        let names = alias_dependents(st, names);
        let mut patched = 0;
        for (id, owners) in names {
            if self.patch(st, &id, &owners) {
                patched += 1;
            } else {
                self.convert_all(st, std::slice::from_ref(&id), &mut Vec::new());
            }
        }
        patched
    }

    /// Makes zone `id`'s next version from its current one and the records of `owners`
    /// (lower case) alone: they and the apex are converted as a zone of their own, with
    /// aliases resolved against the whole account as a full conversion does, and
    /// [`Zone::patched`] puts them in place of what those owners held. The content hash
    /// moves by those owners' shares ([`r53dns_route53::convert::node_digest`]), so hash
    /// and serial are the ones a full conversion gives. `false` when the zone has no
    /// version to patch, is a replica's (serials are its source's), or holds DNSSEC chains.
    fn patch(&self, st: &mut State, id: &str, owners: &BTreeSet<Name>) -> bool {
        use r53dns_route53::convert::{digest_add, digest_sub, node_digest};
        let Some(entry) = st.zones.get(id) else { return false };
        let Some(old) = entry.built.clone().filter(|_| !self.replica) else { return false };
        let apex = old.apex().to_lowercase();
        let mut all: Vec<Name> = owners.iter().cloned().collect();
        if !owners.contains(&apex) {
            all.push(apex);
        }
        let picked: Vec<RecordSet> = records_at(&entry.records, &all).into_iter().cloned().collect();
        // The hash without the owners' old shares; their new ones come from the conversion.
        let mut base = entry.hash;
        for n in &all {
            if let Some(node) = old.node(n.wire()) {
                digest_sub(&mut base, &node_digest(node));
            }
        }
        let prev = (entry.serial != 0).then_some((entry.hash, entry.serial));
        let hz = entry.hz.clone();
        let key = format!("{id} (patch)");
        let mut inputs = Self::lend(st, &[id.to_owned()]);
        inputs.zones.insert(key.clone(), (hz.clone(), picked));
        let mut hash = base;
        let result = convert(&key, &inputs, |h| {
            digest_add(&mut hash, h);
            next_serial(prev.as_ref().map(|(ph, s)| (ph, *s)), &hash)
        });
        inputs.zones.remove(&key);
        give_back(st, inputs);
        let Ok(c) = result else { return false };
        let Some(zone) = old.patched(&c.zone, &all) else { return false };
        let Some(entry) = st.zones.get_mut(id) else { return false };
        for w in &c.warnings {
            tracing::warn!(zone = %hz.name, "{w}");
        }
        for e in c.endpoints {
            if !entry.endpoints.contains(&e) {
                entry.endpoints.push(e);
            }
        }
        if hash != entry.hash || zone.serial() != old.serial() {
            entry.hash = hash;
            entry.serial = zone.serial();
            entry.built = Some(Arc::new(zone));
        }
        true
    }

    /// Converts `ids` like [`Syncer::convert_all`]; returns whether any of them now holds
    /// another zone than before (something to publish).
    fn convert_changed(&self, st: &mut State, ids: &[String], changed: &mut Vec<String>) -> bool {
        let before: Vec<Option<Arc<Zone>>> =
            ids.iter().map(|id| st.zones.get(id).and_then(|z| z.built.clone())).collect();
        self.convert_all(st, ids, changed);
        ids.iter().zip(before).any(|(id, b)| {
            let now = st.zones.get(id).and_then(|z| z.built.as_ref());
            match (now, b) {
                (Some(n), Some(b)) => !Arc::ptr_eq(n, &b),
                (n, b) => n.is_some() != b.is_some(),
            }
        })
    }

    /// Serves the zones in `st` from the store, without writing them anywhere else: a sweep
    /// in progress, before [`Syncer::publish`] at its end.
    async fn serve(&self, st: &State) {
        let zones: Vec<R53Zone> =
            st.zones.values().filter_map(|z| Some(R53Zone { private: z.hz.private, zone: z.built.clone()? })).collect();
        self.publisher.set_route53(zones).await;
        self.set_statuses(st);
    }

    fn set_statuses(&self, st: &State) {
        let statuses = st
            .zones
            .values()
            .map(|z| ZoneStatus {
                name: z.hz.name.clone(),
                id: z.hz.id.clone(),
                private: z.hz.private,
                serial: z.serial,
                records: z.built.as_ref().map_or(0, |b| b.record_count()),
                last_sync: z.last_ok.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
                last_error: z.last_error.clone(),
            })
            .collect();
        *self.status.zones.lock().unwrap_or_else(|p| p.into_inner()) = statuses;
    }

    fn shared(&self, st: &State) -> crate::replicate::Shared {
        crate::replicate::Shared {
            health: st.health.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            cidr: st
                .cidr
                .iter()
                .map(|((c, l), b)| (c.clone(), l.clone(), b.iter().map(|(a, n)| format!("{a}/{n}")).collect()))
                .collect(),
            endpoints: st.endpoints.iter().map(|(n, e)| (n.clone(), e.a.clone(), e.aaaa.clone())).collect(),
            internal_networks: self.publisher.internal_networks().iter().map(|(a, l)| format!("{a}/{l}")).collect(),
        }
    }

    fn prepare(&self, hub: &crate::replicate::Hub, st: &State) -> Arc<crate::replicate::Published> {
        let zones = st.zones.values().filter(|z| z.built.is_some()).map(|z| crate::replicate::ZoneRef {
            zone: &z.hz,
            records: &z.records,
            serial: z.serial,
            hash: hex(&z.hash),
            stale_since: z.last_error.as_ref().and(z.last_ok).and_then(unix_of),
        });
        hub.prepare(zones, self.shared(st))
    }

    /// Serves the zones in `st`: with S3 writing on, only once S3 holds them (see
    /// [`Syncer::commit`]); then to replicas, the store, and the state directory. Returns
    /// whether they are served.
    async fn publish(&self, st: &mut State) -> bool {
        self.publish_if(st, true).await
    }

    /// [`Syncer::publish`] when `changed`; otherwise what is served stays as it is and only
    /// the confirmation moves on: statuses, replicas (S3's heartbeat) and, at most every
    /// [`SAVE_UNCHANGED_EVERY`], the state directory.
    async fn publish_if(&self, st: &mut State, changed: bool) -> bool {
        let publication = match (&self.hub, &self.s3) {
            (Some(hub), Some(w)) => match self.commit(hub, w, st).await {
                Ok(p) => Some(p),
                Err(e) => {
                    if let Some(m) = &self.metrics {
                        m.replication_s3_writes.with_label_values(&["failed"]).inc();
                    }
                    tracing::error!(error = %e, "cannot write the snapshot to S3; serving the last version written there");
                    return false;
                }
            },
            (Some(hub), None) => Some(self.prepare(hub, st)),
            (None, _) => None,
        };
        // S3 may have moved serials (zones converted again): served as written there.
        if changed || self.s3.is_some() {
            self.serve(st).await;
        } else {
            self.set_statuses(st);
        }
        if let (Some(hub), Some(p)) = (&self.hub, publication) {
            hub.offer(p, self.status.confirmed_at());
        }
        let save = {
            let mut at = self.saved_at.lock().unwrap_or_else(|p| p.into_inner());
            let retry = self.saver.get().is_some_and(|s| s.failed.swap(false, Ordering::Relaxed));
            let due = changed || retry || at.is_none_or(|t| t.elapsed() >= SAVE_UNCHANGED_EVERY);
            if due {
                *at = Some(Instant::now());
            }
            due
        };
        if let Some(dir) = self.cfg.state_dir.as_ref().filter(|_| save) {
            let shared = self.shared(st);
            let saved = Saved {
                zones: st
                    .zones
                    .values()
                    .filter(|z| z.built.is_some())
                    .map(|z| SavedZone {
                        zone: z.hz.clone(),
                        records: Arc::clone(&z.records),
                        serial: z.serial,
                        hash: hex(&z.hash),
                        confirmed: z.last_ok.and_then(unix_of),
                    })
                    .collect(),
                health: shared.health,
                cidr: shared.cidr,
                endpoints: shared.endpoints,
                confirmed: self.status.confirmed_at(),
                internal_networks: self.replica.then_some(shared.internal_networks),
            };
            self.saver.get_or_init(|| Saver::start(dir.clone(), self.metrics.clone())).hand_off(saved, &self.metrics);
        }
        true
    }

    /// Writes the zones in `st` to S3 as the successor of the manifest there, with a
    /// conditional write, so that any number of syncers may write at once:
    ///
    /// - every zone whose content equals the current manifest's takes its serial (equal
    ///   content never gets two serials), and every other zone a serial after it (serials
    ///   never go back, whatever the clocks of the syncers say);
    /// - the manifest is replaced only if it is still the version read (`If-Match`); if
    ///   another syncer wrote in between, it is read again and the serials worked out anew.
    ///
    /// Serials changed here are applied to `st` (zones re-converted), so what this syncer
    /// serves is exactly what S3 holds.
    async fn commit(
        &self,
        hub: &crate::replicate::Hub,
        w: &crate::replicate::s3::Writer,
        st: &mut State,
    ) -> Result<Arc<crate::replicate::Published>, String> {
        use crate::replicate::s3::Written;
        for _ in 0..8 {
            let base = w.base().await?;
            if let Some(b) = &base {
                let mut moved = Vec::new();
                for (id, entry) in st.zones.iter_mut().filter(|(_, z)| z.built.is_some()) {
                    let Some(theirs) = b.manifest.zones.iter().find(|z| &z.id == id) else { continue };
                    let serial = if theirs.hash == hex(&entry.hash) {
                        theirs.serial
                    } else if r53dns_zone::proto::serial::is_after(entry.serial, theirs.serial) {
                        entry.serial
                    } else {
                        theirs.serial.wrapping_add(1)
                    };
                    if serial != entry.serial {
                        entry.serial = serial;
                        moved.push(id.clone());
                    }
                }
                if !moved.is_empty() {
                    tracing::info!(zones = ?moved, "serials continued from the snapshot in S3");
                    self.convert_all(st, &moved, &mut Vec::new());
                }
            }
            let p = self.prepare(hub, st);
            if base.as_ref().is_some_and(|b| b.sha == p.etag) {
                w.heartbeat(self.status.confirmed_at()).await;
                return Ok(p);
            }
            let known = base.as_ref().map(|b| b.objects()).unwrap_or_default();
            for (name, bytes) in &p.objects {
                if !known.contains(name) {
                    w.store.put_object_once(name, bytes.clone()).await?;
                }
            }
            match w.store.put_manifest(p.bytes.clone(), base.as_ref().map(|b| b.etag.as_str())).await? {
                Written::Done(etag) => {
                    if let Some(m) = &self.metrics {
                        m.replication_s3_writes.with_label_values(&["written"]).inc();
                    }
                    w.written(etag, &p).await;
                    w.heartbeat(self.status.confirmed_at()).await;
                    return Ok(p);
                }
                Written::Conflict => {
                    if let Some(m) = &self.metrics {
                        m.replication_s3_writes.with_label_values(&["conflict"]).inc();
                    }
                    tracing::info!("another syncer wrote the S3 snapshot first; reading it and trying again");
                    w.forget().await;
                }
            }
        }
        Err("eight conditional writes in a row lost to other writers".into())
    }

    /// Serves the last snapshot written to S3, if there is one (a syncer starting next to, or
    /// after, another). Returns whether it did.
    pub async fn restore_from_s3(&self) -> bool {
        let Some(w) = &self.s3 else { return false };
        match w.load().await {
            Ok(Some(saved)) => {
                let n = self.replace(saved).await;
                tracing::info!(zones = n, source = %w.store.url(), "serving the snapshot in S3 while the first sweep runs");
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(source = %w.store.url(), error = %e, "cannot read the snapshot in S3");
                false
            }
        }
    }

    /// One sweep of every account. An error listing zones publishes nothing.
    pub async fn sweep(&self) -> Result<SweepReport, String> {
        let started = Instant::now();
        let mut discovered: Vec<(usize, HostedZone)> = Vec::new();
        for (i, c) in self.clients.iter().enumerate() {
            let zones = c.list_zones(!self.cfg.vpcs.is_empty()).await.map_err(|e| e.to_string())?;
            discovered.extend(zones.into_iter().filter(|z| self.wanted(z)).map(|z| (i, z)));
        }
        self.sweep_zones(started, discovered, Lister::Api).await
    }

    /// A sweep over `zones` whose record sets come from `records` instead of the API (no
    /// health checks or CIDR blocks either): the same conversion and publication as
    /// [`Syncer::sweep`], for benchmarks of accounts too large for an emulator.
    #[doc(hidden)]
    pub async fn sweep_listed(
        &self,
        zones: Vec<HostedZone>,
        records: &(dyn Fn(&str) -> Vec<RecordSet> + Sync),
    ) -> Result<SweepReport, String> {
        let discovered = zones.into_iter().filter(|z| self.wanted(z)).map(|z| (0, z)).collect();
        self.sweep_zones(Instant::now(), discovered, Lister::Fixed(records)).await
    }

    async fn sweep_zones(
        &self,
        started: Instant,
        discovered: Vec<(usize, HostedZone)>,
        lister: Lister<'_>,
    ) -> Result<SweepReport, String> {
        let mut report = SweepReport { zones: discovered.len(), ..SweepReport::default() };
        let total = discovered.len();
        let ids: BTreeSet<String> = discovered.iter().map(|(_, z)| z.id.clone()).collect();
        // Zones gone from a complete listing are gone (unless an event brought them in
        // after it started).
        let mut dirty = {
            let mut st = self.state.lock().await;
            let before = st.zones.len();
            st.zones.retain(|id, z| ids.contains(id) || z.added > started);
            st.zones.len() != before
        };
        let api = self.clients.first().filter(|_| matches!(lister, Lister::Api));
        // Health checks and CIDR locations read in this sweep (each once), and those whose
        // value changed: zones referring to them are converted again even if their own
        // records did not change.
        let mut health_read: BTreeSet<String> = BTreeSet::new();
        let mut cidr_read: BTreeSet<(String, String)> = BTreeSet::new();
        let mut moved = Refs::default();
        // Zones whose records changed (zones with aliases into them are converted again at
        // the end).
        let mut renewed: Vec<String> = Vec::new();
        let mut sets = 0usize;
        let mut last_progress = Instant::now();
        let mut last_served = Instant::now();
        for (done, (i, hz)) in discovered.into_iter().enumerate() {
            let fetching = Instant::now();
            let fetched = match &lister {
                Lister::Api => self.clients[i].list_records(&hz.id).await.map_err(|e| e.to_string()),
                Lister::Fixed(f) => Ok(f(&hz.id)),
            };
            // What the records refer to and this sweep has not read yet.
            let mut health = HashMap::new();
            let mut cidr = HashMap::new();
            if let (Some(api), Ok(recs)) = (api, &fetched) {
                for r in recs {
                    if let Some(h) = r.health_check_id.as_ref().filter(|h| !health_read.contains(*h)) {
                        health_read.insert(h.clone());
                        match api.health(h).await {
                            Ok(v) => {
                                health.insert(h.clone(), v);
                            }
                            Err(e) => {
                                tracing::warn!(health_check = %h, error = %e, "health status unknown; keeping the last one")
                            }
                        }
                    }
                    if let Some(k) = r
                        .cidr_routing_config
                        .as_ref()
                        .filter(|c| c.location_name != "*")
                        .map(|c| (c.collection_id.clone(), c.location_name.clone()))
                        .filter(|k| !cidr_read.contains(k))
                    {
                        cidr_read.insert(k.clone());
                        match api.cidr_blocks(&k.0, &k.1).await {
                            Ok(b) => {
                                cidr.insert(k, b);
                            }
                            Err(e) => {
                                tracing::warn!(collection = %k.0, location = %k.1, error = %e, "CIDR blocks unknown; keeping the last ones")
                            }
                        }
                    }
                }
            }
            let converting = Instant::now();
            let mut st = self.state.lock().await;
            for (h, v) in health {
                if st.health.insert(h.clone(), v) != Some(v) {
                    moved.health.insert(h);
                }
            }
            for (k, v) in cidr {
                if st.cidr.get(&k) != Some(&v) {
                    st.cidr.insert(k.clone(), v);
                    moved.cidr.insert(k);
                }
            }
            let id = hz.id.clone();
            // An event found it gone after this listing started.
            if st.gone.get(&id).is_some_and(|t| *t > started) {
                continue;
            }
            let entry = st.zones.entry(id.clone()).or_insert_with(|| ZoneEntry::new(hz.clone()));
            if entry.hz != hz {
                entry.hz = hz;
                dirty = true;
            }
            let mut convert = false;
            match fetched {
                // An UPDATE or an event landed while this zone was being fetched: its local
                // copy is newer.
                Ok(_) if entry.updated.is_some_and(|t| t > fetching) => {
                    tracing::debug!(zone = %entry.hz.name, "keeping records changed by an UPDATE during the sweep");
                }
                Ok(records) => {
                    sets += records.len();
                    entry.listed = Some(fetching);
                    entry.last_ok = Some(SystemTime::now());
                    entry.last_error = None;
                    // An unchanged listing costs the comparison and nothing more.
                    if entry.built.is_none() || *entry.records != records {
                        entry.records = Arc::new(records);
                        renewed.push(id.clone());
                        convert = true;
                    }
                }
                Err(e) => {
                    tracing::error!(zone = %entry.hz.name, error = %e, "fetch failed; the previous version stays");
                    entry.last_error = Some(e);
                    report.failed.push(entry.hz.name.clone());
                    report.failed_labels.push(if entry.hz.private && !self.private_zone_metrics {
                        PRIVATE_LABEL.to_owned()
                    } else {
                        entry.hz.name.clone()
                    });
                }
            }
            convert |= !moved.is_empty() && moved.referred_to(&entry.records);
            if convert {
                dirty |= self.convert_changed(&mut st, &[id], &mut report.changed);
            }
            report.convert += converting.elapsed();
            // Zones are served as they complete, each whole, a few at a time (with S3
            // writing on, only what S3 holds is served: at the end).
            if dirty && self.s3.is_none() && last_served.elapsed() >= SERVE_EVERY && done + 1 < total {
                self.serve(&st).await;
                last_served = Instant::now();
            }
            drop(st);
            if let Some(f) = &self.progress {
                f(SweepProgress { zones_done: done + 1, zones_total: total, record_sets: sets });
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                tracing::info!(
                    zones_done = done + 1,
                    zones_total = total,
                    record_sets = sets,
                    elapsed_s = started.elapsed().as_secs(),
                    "route53 sweep in progress"
                );
            }
        }
        report.fetch = started.elapsed().saturating_sub(report.convert);
        let converting = Instant::now();
        let mut st = self.state.lock().await;
        // Zones whose aliases reach (transitively) a zone whose records changed after they
        // were converted — a zone converted early in the sweep resolved its aliases against
        // what it found then — or whose health checks or CIDR blocks changed.
        let targets: HashMap<&str, BTreeSet<&str>> = st
            .zones
            .iter()
            .map(|(id, z)| {
                let t = z
                    .records
                    .iter()
                    .filter_map(|r| r.alias_target.as_ref())
                    .map(|a| r53dns_route53::model::bare_zone_id(&a.hosted_zone_id))
                    .filter(|t| st.zones.contains_key(*t))
                    .collect();
                (id.as_str(), t)
            })
            .collect();
        let again: Vec<String> = st
            .zones
            .iter()
            .filter(|(id, z)| {
                let converted = renewed.iter().position(|r| r == *id);
                let mut seen: BTreeSet<&str> = BTreeSet::new();
                let mut todo: Vec<&str> = targets.get(id.as_str()).into_iter().flatten().copied().collect();
                let mut later = false;
                while let Some(t) = todo.pop() {
                    if !seen.insert(t) {
                        continue;
                    }
                    later |= t != id.as_str() && renewed.iter().position(|r| r == t) > converted;
                    todo.extend(targets.get(t).into_iter().flatten().copied());
                }
                later || (!moved.is_empty() && moved.referred_to(&z.records))
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !again.is_empty() {
            dirty |= self.convert_changed(&mut st, &again, &mut report.changed);
        }
        if report.failed.is_empty() {
            // Every zone listed completely: the data is as Route53 has it now.
            self.status.confirm(unix_now());
        }
        report.convert += converting.elapsed();
        let publishing = Instant::now();
        let published = self.publish_if(&mut st, dirty).await;
        report.publish = publishing.elapsed();
        let complete = st.zones.values().all(|z| z.built.is_some());
        drop(st);
        // Ready as soon as every zone is served, or after a second sweep whatever failed: a
        // zone that keeps failing is alerted on, and must not keep the others out of service.
        if published && (complete || self.status.sweeps.load(Ordering::Relaxed) >= 2) {
            self.status.ready.store(true, Ordering::Relaxed);
        }
        Ok(report)
    }

    /// The hosted zone a DNS UPDATE for `apex` goes to: with a public and a private zone of
    /// the same name, the one named by ID in `prefer`, else the private one.
    pub async fn update_target(&self, apex: &r53dns_zone::Name, prefer: &[String]) -> Option<UpdateTarget> {
        let st = self.state.lock().await;
        let want = apex.to_lowercase();
        let mut candidates: Vec<&ZoneEntry> = st
            .zones
            .values()
            .filter(|z| z.built.is_some())
            .filter(|z| r53dns_route53::convert::parse_route53_name(&z.hz.name).is_ok_and(|n| n.to_lowercase() == want))
            .collect();
        if candidates.iter().any(|z| prefer.contains(&z.hz.id)) {
            candidates.retain(|z| prefer.contains(&z.hz.id));
        }
        candidates.sort_by_key(|z| !z.hz.private);
        let hz = candidates.first()?.hz.clone();
        let client = self.clients.iter().find(|c| c.account == hz.account)?.clone();
        Some(UpdateTarget { zone: hz, client })
    }

    /// Applies a change batch Route53 accepted to the local copy of the zone and publishes
    /// it at once (read-your-writes); a re-fetch of the zone follows shortly.
    pub async fn apply_local(self: &Arc<Self>, zone_id: &str, changes: &[r53dns_route53::write::Change]) {
        use r53dns_route53::convert::parse_route53_name;
        let mut st = self.state.lock().await;
        let Some(entry) = st.zones.get_mut(zone_id) else {
            return;
        };
        let mut owners = BTreeSet::new();
        for c in changes {
            let Ok(owner) = parse_route53_name(&c.set.name).map(|n| n.to_lowercase()) else {
                continue;
            };
            let one = [owner];
            let texts = owner_texts(&one);
            Arc::make_mut(&mut entry.records).retain(|r| {
                r.set_identifier.is_some()
                    || !(r.rtype.eq_ignore_ascii_case(&c.set.rtype) && owner_in(&r.name, &one, &texts))
            });
            let [owner] = one;
            owners.insert(owner);
            if c.action != r53dns_route53::write::Action::Delete {
                let mut set = c.set.clone();
                if !set.name.ends_with('.') {
                    set.name.push('.');
                }
                Arc::make_mut(&mut entry.records).push(set);
            }
        }
        entry.updated = Some(Instant::now());
        self.convert_names(&mut st, BTreeMap::from([(zone_id.to_owned(), owners)]));
        let _ = self.publish(&mut st).await;
        drop(st);
        self.resync_soon(zone_id);
    }

    /// Re-fetches one zone a little later (several UPDATEs in a row share one fetch).
    fn resync_soon(self: &Arc<Self>, zone_id: &str) {
        if !self.resync_pending.lock().unwrap_or_else(|p| p.into_inner()).insert(zone_id.to_owned()) {
            return;
        }
        let me = self.clone();
        let id = zone_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(RESYNC_DELAY).await;
            me.resync_pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            me.resync_zone(&id).await;
        });
    }

    /// Fetches one zone now and publishes it if it changed; a failure keeps what is served.
    async fn resync_zone(&self, zone_id: &str) {
        let Some((hz, client)) = ({
            let st = self.state.lock().await;
            st.zones
                .get(zone_id)
                .and_then(|z| Some((z.hz.clone(), self.clients.iter().find(|c| c.account == z.hz.account)?.clone())))
        }) else {
            return;
        };
        let started = Instant::now();
        let records = match client.list_records(&hz.id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(zone = %hz.name, error = %e, "re-fetch after UPDATE failed; the next sweep retries");
                return;
            }
        };
        let mut st = self.state.lock().await;
        let Some(entry) = st.zones.get_mut(zone_id) else {
            return;
        };
        if entry.updated.is_some_and(|t| t > started) {
            return; // another UPDATE landed meanwhile; its own re-fetch follows
        }
        entry.records = Arc::new(records);
        entry.listed = Some(started);
        entry.last_ok = Some(SystemTime::now());
        entry.last_error = None;
        let mut changed = Vec::new();
        self.convert_all(&mut st, &[zone_id.to_owned()], &mut changed);
        let _ = self.publish(&mut st).await;
        tracing::debug!(zone = %hz.name, ?changed, "zone re-fetched after UPDATE");
    }

    /// Reads again the record sets events named, per hosted zone, patches the zones and
    /// publishes once. A zone is read whole instead when that takes fewer calls than its
    /// names do. Reads go through the API budget like a sweep's.
    pub(crate) async fn reread(
        &self,
        wanted: &BTreeMap<String, BTreeSet<(String, String)>>,
    ) -> HashMap<String, Reread> {
        use r53dns_route53::convert::parse_route53_name;
        let mut out = HashMap::new();
        if wanted.is_empty() {
            return out;
        }
        let started = Instant::now();
        let plan: Vec<(String, Route53, usize)> = {
            let st = self.state.lock().await;
            wanted
                .keys()
                .filter_map(|id| {
                    let found = st.zones.get(id).filter(|z| z.built.is_some()).and_then(|z| {
                        Some((self.clients.iter().find(|c| c.account == z.hz.account)?.clone(), z.records.len()))
                    });
                    if found.is_none() {
                        out.insert(id.clone(), Reread::NotServed);
                    }
                    found.map(|(c, n)| (id.clone(), c, n))
                })
                .collect()
        };
        // (zone, whole listing, or the sets read per (name, type))
        type Read = (String, Result<Fresh, String>);
        let mut reads: Vec<Read> = Vec::new();
        for (id, client, n) in plan {
            let keys = &wanted[&id];
            let whole_cost = n.div_ceil(client.page_size.max(1) as usize).max(1);
            let fresh = if keys.len() > whole_cost {
                client.list_records(&id).await.map(Fresh::Whole).map_err(|e| e.to_string())
            } else {
                let mut sets = Vec::new();
                let mut failed = None;
                for (name, t) in keys {
                    match client.record_sets_of(&id, name, t).await {
                        Ok(s) => sets.push(((name.clone(), t.clone()), s)),
                        Err(e) => {
                            failed = Some(e.to_string());
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => Ok(Fresh::Sets(sets)),
                }
            };
            reads.push((id, fresh));
        }
        // Health checks and CIDR locations the new data refers to and that are not known.
        let (health_ids, cidr_keys) = {
            let st = self.state.lock().await;
            let mut h = BTreeSet::new();
            let mut c = BTreeSet::new();
            for (_, fresh) in &reads {
                let sets: Vec<&RecordSet> = match fresh {
                    Ok(Fresh::Whole(r)) => r.iter().collect(),
                    Ok(Fresh::Sets(s)) => s.iter().flat_map(|(_, v)| v).collect(),
                    Err(_) => Vec::new(),
                };
                for r in sets {
                    if let Some(id) = r.health_check_id.as_ref().filter(|id| !st.health.contains_key(*id)) {
                        h.insert(id.clone());
                    }
                    if let Some(k) = r
                        .cidr_routing_config
                        .as_ref()
                        .filter(|k| k.location_name != "*")
                        .map(|k| (k.collection_id.clone(), k.location_name.clone()))
                        .filter(|k| !st.cidr.contains_key(k))
                    {
                        c.insert(k);
                    }
                }
            }
            (h, c)
        };
        let mut health = HashMap::new();
        let mut cidr = HashMap::new();
        if let Some(client) = self.clients.first() {
            for id in &health_ids {
                if let Ok(h) = client.health(id).await {
                    health.insert(id.clone(), h);
                }
            }
            for (c, l) in &cidr_keys {
                if let Ok(b) = client.cidr_blocks(c, l).await {
                    cidr.insert((c.clone(), l.clone()), b);
                }
            }
        }
        let key = |name: &str, rtype: &str| {
            (parse_route53_name(name).map(|n| n.to_lowercase()).ok(), rtype.to_ascii_uppercase())
        };
        let mut st = self.state.lock().await;
        st.health.extend(health);
        st.cidr.extend(cidr);
        let mut touched = Vec::new();
        let mut before = HashMap::new();
        let mut whole: Vec<String> = Vec::new();
        let mut by_name: BTreeMap<String, BTreeSet<Name>> = BTreeMap::new();
        for (id, fresh) in reads {
            let fresh = match fresh {
                Ok(f) => f,
                Err(e) => {
                    out.insert(id, Reread::Failed(e));
                    continue;
                }
            };
            let Some(entry) = st.zones.get_mut(&id) else {
                out.insert(id, Reread::NotServed);
                continue;
            };
            // A listing that started after this read is newer than it.
            if entry.listed.is_some_and(|t| t > started) {
                out.insert(id, Reread::Unchanged);
                continue;
            }
            match fresh {
                Fresh::Whole(records) => {
                    whole.push(id.clone());
                    entry.records = Arc::new(records);
                    entry.listed = Some(started);
                    entry.last_ok = Some(SystemTime::now());
                    entry.last_error = None;
                }
                Fresh::Sets(sets) => {
                    // Only the sets read are replaced; each read's name is parsed once and
                    // the records are compared with it as text.
                    let mut owners = BTreeSet::new();
                    for ((name, t), read) in sets {
                        match parse_route53_name(&name).map(|n| n.to_lowercase()) {
                            Ok(owner) => {
                                let one = [owner];
                                let texts = owner_texts(&one);
                                Arc::make_mut(&mut entry.records)
                                    .retain(|r| !(r.rtype.eq_ignore_ascii_case(&t) && owner_in(&r.name, &one, &texts)));
                                let [owner] = one;
                                owners.insert(owner);
                            }
                            Err(_) => {
                                let k = key(&name, &t);
                                Arc::make_mut(&mut entry.records).retain(|r| key(&r.name, &r.rtype) != k);
                                whole.push(id.clone());
                            }
                        }
                        Arc::make_mut(&mut entry.records).extend(read);
                    }
                    by_name.insert(id.clone(), owners);
                }
            }
            entry.updated = Some(Instant::now());
            before.insert(id.clone(), entry.hash);
            touched.push(id);
        }
        if touched.is_empty() {
            return out;
        }
        // Zones read whole are converted whole, and so are zones whose aliases point into
        // them; zones read by name are patched for those names and the aliases reaching them.
        let mut ids = whole.clone();
        for (id, z) in &st.zones {
            let aliases_in = !whole.is_empty()
                && z.records.iter().any(|r| {
                    r.alias_target.as_ref().is_some_and(|a| {
                        whole.iter().any(|t| r53dns_route53::model::bare_zone_id(&a.hosted_zone_id) == t)
                    })
                });
            if aliases_in && !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        by_name.retain(|id, _| !ids.contains(id));
        if !ids.is_empty() {
            self.convert_all(&mut st, &ids, &mut Vec::new());
        }
        self.convert_names(&mut st, by_name);
        let changed: Vec<String> = touched
            .into_iter()
            .filter(|id| st.zones.get(id).is_some_and(|z| before.get(id) != Some(&z.hash)))
            .collect();
        let published = changed.is_empty() || self.publish(&mut st).await;
        for id in before.keys() {
            let r = match (changed.contains(id), published) {
                (false, _) => Reread::Unchanged,
                (true, true) => Reread::Changed,
                (true, false) => Reread::Failed("the change could not be published".into()),
            };
            out.insert(id.clone(), r);
        }
        out
    }

    /// Lists the hosted zones again after an event said one came, went or changed VPCs:
    /// new zones and those named in `named` are read whole, zones gone are dropped, and the
    /// result is published. Returns whether what is served changed.
    pub(crate) async fn relist(&self, named: &BTreeSet<String>) -> Result<bool, String> {
        let started = Instant::now();
        let mut discovered: Vec<(usize, HostedZone)> = Vec::new();
        for (i, c) in self.clients.iter().enumerate() {
            let zones = c.list_zones(!self.cfg.vpcs.is_empty()).await.map_err(|e| e.to_string())?;
            discovered.extend(zones.into_iter().filter(|z| self.wanted(z)).map(|z| (i, z)));
        }
        let known: HashMap<String, HostedZone> = {
            let st = self.state.lock().await;
            st.zones.iter().filter(|(_, z)| z.built.is_some()).map(|(id, z)| (id.clone(), z.hz.clone())).collect()
        };
        let mut fetched: HashMap<String, Result<Vec<RecordSet>, String>> = HashMap::new();
        for (i, hz) in &discovered {
            if known.get(&hz.id).is_none_or(|k| k != hz) || named.contains(&hz.id) {
                let r = self.clients[*i].list_records(&hz.id).await.map_err(|e| e.to_string());
                fetched.insert(hz.id.clone(), r);
            }
        }
        let mut st = self.state.lock().await;
        let ids: BTreeSet<String> = discovered.iter().map(|(_, z)| z.id.clone()).collect();
        let now = Instant::now();
        st.gone.retain(|_, t| now.duration_since(*t) < Duration::from_secs(3600));
        let gone: Vec<String> = st
            .zones
            .iter()
            .filter(|(id, z)| !ids.contains(*id) && z.added <= started)
            .map(|(id, _)| id.clone())
            .collect();
        let mut changed = !gone.is_empty();
        for id in &gone {
            st.zones.remove(id);
            st.gone.insert(id.clone(), now);
        }
        let mut convert = Vec::new();
        for (_, hz) in discovered {
            let id = hz.id.clone();
            let entry = st.zones.entry(id.clone()).or_insert_with(|| ZoneEntry::new(hz.clone()));
            if entry.hz != hz {
                changed = true;
                entry.hz = hz;
            }
            match fetched.remove(&id) {
                Some(Ok(records)) if entry.updated.is_none_or(|t| t <= started) => {
                    entry.records = Arc::new(records);
                    entry.listed = Some(started);
                    entry.last_ok = Some(SystemTime::now());
                    entry.last_error = None;
                    convert.push(id);
                }
                Some(Err(e)) => {
                    tracing::warn!(zone = %entry.hz.name, error = %e, "fetch after a zone event failed; the next sweep retries");
                    entry.last_error = Some(e);
                }
                _ => {}
            }
        }
        let before: HashMap<String, ([u8; 32], bool)> = convert
            .iter()
            .filter_map(|id| Some((id.clone(), st.zones.get(id).map(|z| (z.hash, z.built.is_some()))?)))
            .collect();
        self.convert_all(&mut st, &convert, &mut Vec::new());
        changed |=
            convert.iter().any(|id| st.zones.get(id).map(|z| (z.hash, z.built.is_some())) != before.get(id).copied());
        if !gone.is_empty() {
            tracing::info!(zones = ?gone, "hosted zones gone, after an event");
        }
        if changed && !self.publish(&mut st).await {
            return Err("the change could not be published".into());
        }
        Ok(changed)
    }

    /// Resolves every AWS endpoint aliases point to; re-converts and publishes on change.
    pub async fn refresh_endpoints(&self) {
        let Some(resolver) = self.cfg.endpoint_resolver.or_else(crate::resolve::system_resolver) else {
            return;
        };
        let names: BTreeSet<String> = {
            let st = self.state.lock().await;
            st.zones.values().flat_map(|z| z.endpoints.iter().cloned()).collect()
        };
        if names.is_empty() {
            return;
        }
        let mut results = HashMap::new();
        for n in &names {
            match crate::resolve::resolve(resolver, n, Duration::from_secs(2)).await {
                Ok(a) => {
                    results.insert(n.clone(), a);
                }
                Err(e) => {
                    tracing::warn!(endpoint = %n, %resolver, error = %e, "cannot resolve alias target; keeping the last addresses")
                }
            }
        }
        let mut st = self.state.lock().await;
        let changed = results.iter().any(|(n, a)| st.endpoints.get(n) != Some(a));
        if !changed {
            return;
        }
        st.endpoints.extend(results);
        let all: Vec<String> = st.zones.keys().cloned().collect();
        self.convert_all(&mut st, &all, &mut Vec::new());
        let _ = self.publish(&mut st).await;
        tracing::info!(endpoints = names.len(), "alias targets re-resolved");
    }

    /// Sweeps every `refresh` (and on [`Syncer::trigger`]) until `shutdown`.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) {
        let me = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                me.status.sweeps.fetch_add(1, Ordering::Relaxed);
                let result = me.sweep().await;
                if let Some(m) = &me.metrics {
                    m.sweep_duration.observe(started.elapsed().as_secs_f64());
                    let outcome = match &result {
                        Ok(r) if r.failed.is_empty() => "ok",
                        Ok(_) => "partial",
                        Err(_) => "failed",
                    };
                    m.sweeps.with_label_values(&[outcome]).inc();
                    if let Ok(r) = &result {
                        for z in &r.failed_labels {
                            m.zone_sync_failures.with_label_values(&[z.as_str()]).inc();
                        }
                    }
                }
                match result {
                    Ok(r) => {
                        tracing::info!(
                            zones = r.zones,
                            changed = ?r.changed,
                            failed = ?r.failed,
                            fetch_ms = r.fetch.as_millis() as u64,
                            convert_ms = r.convert.as_millis() as u64,
                            publish_ms = r.publish.as_millis() as u64,
                            "route53 sweep"
                        );
                        if !r.failed.is_empty() {
                            me.status.failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        me.status.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "route53 sweep failed; serving the last good data");
                    }
                }
                me.refresh_endpoints().await;
                loop {
                    // Sweeps start `refresh` apart; a slow sweep still leaves a tenth of it
                    // idle. The interval is worked out again when the event queue comes or
                    // goes.
                    let refresh = me.sweep_interval();
                    let wait = refresh.saturating_sub(started.elapsed()).max(refresh / 10);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => break,
                        () = me.trigger.notified() => break,
                        () = me.status.events.changed.notified() => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        });
        if let Some(queue) = self.cfg.events.clone().filter(|_| !self.replica) {
            tokio::spawn(crate::events::run(self.clone(), queue, shutdown.clone()));
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(me.cfg.endpoint_refresh) => me.refresh_endpoints().await,
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use arc_swap::ArcSwap;
    use r53dns_zone::{RoutingContext, Snapshot};

    use super::*;
    use crate::zones::FileZones;

    fn cfg() -> Route53Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r53dns.toml");
        std::fs::write(&path, "[route53]\nenabled = true\n").unwrap();
        crate::Spec::from_file(&path).and_then(|s| s.validate()).unwrap().route53.unwrap()
    }

    fn listing(id: &str, addr: u32) -> Vec<RecordSet> {
        let name = format!("{}.example.", id.to_lowercase());
        vec![
            RecordSet::plain(name.clone(), "SOA".into(), 900, vec!["ns.example. h.example. 1 2 3 4 5".into()]),
            RecordSet::plain(name.clone(), "NS".into(), 900, vec!["ns.example.".into()]),
            RecordSet::plain(format!("www.{name}"), "A".into(), 60, vec![format!("192.0.2.{addr}")]),
        ]
    }

    #[tokio::test]
    async fn an_unchanged_sweep_publishes_nothing_and_a_change_journals_one_node() {
        let store: r53dns_server::Store = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let cfg = cfg();
        let publisher = Arc::new(Publisher::new(
            store.clone(),
            FileZones::default(),
            cfg.conflict,
            Vec::new(),
            RoutingContext::default(),
        ));
        let syncer = Syncer::without_api(cfg, publisher);
        let zones: Vec<HostedZone> = ["za", "zb"]
            .iter()
            .map(|id| HostedZone {
                id: (*id).into(),
                name: format!("{id}.example."),
                private: false,
                vpcs: vec![],
                account: String::new(),
            })
            .collect();
        let addr = AtomicU32::new(1);
        let list = |id: &str| listing(id, if id == "za" { addr.load(Ordering::Relaxed) } else { 1 });
        syncer.sweep_listed(zones.clone(), &list).await.unwrap();
        let first = store.load_full();
        assert_eq!(first.internal().zones().count(), 2);
        let r = syncer.sweep_listed(zones.clone(), &list).await.unwrap();
        assert!(r.changed.is_empty());
        assert!(Arc::ptr_eq(&first, &store.load_full()), "an unchanged sweep must not publish");
        addr.store(2, Ordering::Relaxed);
        let r = syncer.sweep_listed(zones.clone(), &list).await.unwrap();
        assert_eq!(r.changed.len(), 1, "{:?}", r.changed);
        let second = store.load_full();
        let apex = |n: &str| n.parse::<r53dns_zone::Name>().unwrap();
        // The unchanged zone is the same zone object; the changed one carries one step.
        let zb = |s: &Snapshot| s.internal().get(&apex("zb.example.")).unwrap().clone();
        assert!(Arc::ptr_eq(&zb(&first), &zb(&second)));
        let j = second.internal().journal(&apex("za.example.")).unwrap();
        assert_eq!(j.len(), 1);
    }

    fn hosted(id: &str) -> HostedZone {
        HostedZone {
            id: id.into(),
            name: format!("{id}.example."),
            private: false,
            vpcs: vec![],
            account: String::new(),
        }
    }

    fn syncer_in(state: &std::path::Path) -> (Arc<Syncer>, r53dns_server::Store) {
        let store: r53dns_server::Store = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let mut cfg = cfg();
        cfg.state_dir = Some(state.to_owned());
        let publisher = Arc::new(Publisher::new(
            store.clone(),
            FileZones::default(),
            cfg.conflict,
            Vec::new(),
            RoutingContext::default(),
        ));
        (Syncer::without_api(cfg, publisher), store)
    }

    /// The zone files in the state directory with their modification times.
    fn zone_files(state: &std::path::Path) -> BTreeMap<String, SystemTime> {
        std::fs::read_dir(state.join("zones"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().modified().unwrap())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_one_zone_change_saves_that_zone_alone_and_a_restart_serves_it() {
        let state = tempfile::tempdir().unwrap();
        let (syncer, _store) = syncer_in(state.path());
        let zones: Vec<HostedZone> = ["za", "zb", "zc"].iter().map(|id| hosted(id)).collect();
        let addr = AtomicU32::new(1);
        let list = |id: &str| listing(id, if id == "za" { addr.load(Ordering::Relaxed) } else { 1 });
        syncer.sweep_listed(zones.clone(), &list).await.unwrap();
        syncer.flush_save(Duration::from_secs(10)).await;
        let first = zone_files(state.path());
        assert_eq!(first.len(), 3, "{first:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        addr.store(2, Ordering::Relaxed);
        let r = syncer.sweep_listed(zones.clone(), &list).await.unwrap();
        assert_eq!(r.changed.len(), 1, "{:?}", r.changed);
        syncer.flush_save(Duration::from_secs(10)).await;
        let second = zone_files(state.path());
        // One new file (za's new version); the others untouched; za's old version kept for
        // the previous manifest.
        let new: Vec<&String> = second.keys().filter(|n| !first.contains_key(*n)).collect();
        assert_eq!(new.len(), 1, "{second:?}");
        assert!(new[0].starts_with("za-"), "{new:?}");
        for (name, at) in &first {
            assert_eq!(second.get(name), Some(at), "{name} rewritten or removed");
        }
        let saved = persist::load(state.path()).unwrap();
        let za = saved.zones.iter().find(|z| z.zone.id == "za").unwrap();
        assert_eq!(*za.records, list("za"));
        // A restart serves what was saved.
        drop(syncer);
        let (again, store) = syncer_in(state.path());
        assert!(again.restore().await);
        let apex: r53dns_zone::Name = "za.example.".parse().unwrap();
        let www: r53dns_zone::Name = "www.za.example.".parse().unwrap();
        let served = store.load_full();
        assert_eq!(served.internal().zones().count(), 3);
        let node = served.internal().get(&apex).and_then(|z| z.node(www.wire()).cloned()).unwrap();
        assert_eq!(node.get(r53dns_zone::rtype::A).and_then(|a| a.rdatas().first()), Some(&[192, 0, 2, 2][..]));
    }

    #[tokio::test]
    async fn saves_handed_over_faster_than_written_coalesce_to_the_latest() {
        let state = tempfile::tempdir().unwrap();
        let saver = Saver::start(state.path().to_owned(), None);
        let saved = |serial| Saved {
            zones: vec![SavedZone {
                zone: hosted("za"),
                records: Arc::new(listing("za", serial)),
                serial,
                hash: hex(&[serial as u8; 32]),
                confirmed: None,
            }],
            ..Saved::default()
        };
        // The writer runs only once this task waits: three saves handed over meanwhile.
        for serial in 1..=3 {
            saver.hand_off(saved(serial), &None);
        }
        let target = *saver.queued.borrow();
        assert_eq!(target, 3);
        let mut done = saver.done.clone();
        tokio::time::timeout(Duration::from_secs(10), done.wait_for(|&g| g >= target)).await.unwrap().unwrap();
        assert_eq!(persist::load(state.path()).unwrap(), saved(3));
        // One save was written: there is no previous manifest.
        assert!(!state.path().join("route53-state.v2.prev").exists());
        // A save that fails (the directory is a file) is flagged for the next publication.
        let blocked = state.path().join("blocked");
        std::fs::write(&blocked, "not a directory").unwrap();
        let failing = Saver::start(blocked, None);
        failing.hand_off(saved(4), &None);
        let mut done = failing.done.clone();
        tokio::time::timeout(Duration::from_secs(10), done.wait_for(|&g| g >= 1)).await.unwrap().unwrap();
        assert!(failing.failed.load(Ordering::Relaxed));
    }

    /// A small deterministic generator for the randomized test below.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const ZONES: [&str; 2] = ["za", "zb"];

    /// Owner names of zone `z`: the apex and names up to two labels below it, wildcards
    /// (`\052`, as Route53 lists them) included.
    fn owners(z: &str) -> Vec<String> {
        let apex = format!("{z}.example.");
        let labels = ["a", "b", "\\052", "ns", "x"];
        let mut out = vec![apex.clone()];
        for l in labels {
            out.push(format!("{l}.{apex}"));
            for m in labels {
                out.push(format!("{m}.{l}.{apex}"));
            }
        }
        out
    }

    /// The record sets of one owner, template `t`: plain data, a delegation with glue
    /// below it, aliases within the zone and into the other one, routed groups of every
    /// kind, or nothing.
    fn sets_of(owner: &str, t: usize, v: usize) -> Vec<RecordSet> {
        let apex = owner.split('.').rev().nth(2).map(|z| z == "example").unwrap_or(false);
        let plain = |t: &str, ttl: i64, vals: Vec<String>| RecordSet::plain(owner.into(), t.into(), ttl, vals);
        let routed = |id: &str, val: String, f: &dyn Fn(&mut RecordSet)| {
            let mut r = plain("A", 60, vec![val]);
            r.set_identifier = Some(id.into());
            f(&mut r);
            r
        };
        let alias = |zone: &str, target: String| {
            let mut r = plain("A", 0, vec![]);
            r.ttl = None;
            r.alias_target = Some(r53dns_route53::model::AliasTarget {
                hosted_zone_id: format!("/hostedzone/{zone}"),
                dns_name: target,
                evaluate_target_health: false,
            });
            r
        };
        match t {
            0 => vec![plain("A", 300, vec![format!("192.0.2.{}", v % 250), format!("192.0.2.{}", 1 + v % 7)])],
            1 => vec![plain("TXT", 60, vec![format!("\"v{v}\"")]), plain("AAAA", 60, vec![format!("2001:db8::{v}")])],
            2 if !apex => vec![plain(
                "CNAME",
                300,
                vec![if v.is_multiple_of(2) { "a.za.example.".into() } else { "elsewhere.test.".into() }],
            )],
            3 if !apex => vec![plain("NS", 3600, vec![format!("ns.{owner}"), "ns.a.zb.example.".into()])],
            4 => vec![plain("MX", 300, vec![format!("{} a.za.example.", v % 20)])],
            5 => {
                let z = ZONES[v % 2];
                let names = owners(z);
                vec![alias(z, names[v % names.len()].clone())]
            }
            6 => vec![
                routed("one", "192.0.2.10".into(), &|r| r.weight = Some((v % 3) as i64)),
                routed("two", "192.0.2.11".into(), &|r| r.weight = Some(2)),
            ],
            7 => vec![
                routed("p", "192.0.2.20".into(), &|r| {
                    r.failover = Some("PRIMARY".into());
                    r.health_check_id = Some(if v.is_multiple_of(2) { "up".into() } else { "down".into() });
                }),
                routed("s", "192.0.2.21".into(), &|r| r.failover = Some("SECONDARY".into())),
            ],
            8 => vec![
                routed("eu", "192.0.2.30".into(), &|r| r.region = Some("eu-west-1".into())),
                routed("us", format!("192.0.2.{}", 31 + v % 3), &|r| r.region = Some("us-east-1".into())),
            ],
            9 => vec![
                routed("de", "192.0.2.40".into(), &|r| {
                    r.geo_location = Some(r53dns_route53::model::GeoLocation {
                        continent_code: None,
                        country_code: Some("DE".into()),
                        subdivision_code: None,
                    })
                }),
                routed("any", "192.0.2.41".into(), &|r| {
                    r.geo_location = Some(r53dns_route53::model::GeoLocation {
                        continent_code: None,
                        country_code: Some("*".into()),
                        subdivision_code: None,
                    })
                }),
            ],
            _ => vec![],
        }
    }

    fn zone_listing(z: &str, content: &BTreeMap<String, (usize, usize)>) -> Vec<RecordSet> {
        let apex = format!("{z}.example.");
        let mut out = vec![
            RecordSet::plain(apex.clone(), "SOA".into(), 900, vec!["ns.example. h.example. 1 2 3 4 5".into()]),
            RecordSet::plain(apex.clone(), "NS".into(), 900, vec!["ns.example.".into()]),
        ];
        for (owner, &(t, v)) in content.iter().filter(|(o, _)| o.ends_with(&apex)) {
            out.extend(sets_of(owner, t, v));
        }
        out
    }

    fn answers(set: &r53dns_zone::ZoneSet, names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for n in names {
            for q in [n.clone(), format!("q.{n}")] {
                let Ok(name) = r53dns_route53::convert::parse_route53_name(&q) else { continue };
                for t in [1, 28, 16, 2, 5, 15, 6, 255] {
                    out.push(format!("{:?}", set.lookup(name.wire(), t, r53dns_zone::LookupOptions::default())));
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn a_zone_patched_by_name_is_the_zone_a_full_conversion_builds() {
        let mut rng = Rng(17);
        let all: Vec<String> = ZONES.iter().flat_map(|z| owners(z)).collect();
        let hz: Vec<HostedZone> = ZONES
            .iter()
            .map(|id| HostedZone {
                id: (*id).into(),
                name: format!("{id}.example."),
                private: false,
                vpcs: vec![],
                account: String::new(),
            })
            .collect();
        let mut patched_any = 0;
        for _ in 0..150 {
            let store: r53dns_server::Store = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
            let cfg = cfg();
            let publisher = Arc::new(Publisher::new(
                store,
                FileZones::default(),
                cfg.conflict,
                Vec::new(),
                RoutingContext::default(),
            ));
            let syncer = Syncer::without_api(cfg, publisher);
            let mut content: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for _ in 0..rng.below(30) {
                content.insert(all[rng.below(all.len())].clone(), (rng.below(11), rng.below(1000)));
            }
            let list = |id: &str| zone_listing(id, &content);
            syncer.state.lock().await.health = HashMap::from([("up".into(), true), ("down".into(), false)]);
            syncer.sweep_listed(hz.clone(), &list).await.unwrap();
            {
                let st = syncer.state.lock().await;
                let inputs = Inputs {
                    zones: st.zones.iter().map(|(id, z)| (id.clone(), (z.hz.clone(), z.records.to_vec()))).collect(),
                    health: st.health.clone(),
                    ..Inputs::default()
                };
                for z in ZONES {
                    let full = convert(z, &inputs, |_| st.zones[z].serial).unwrap();
                    assert_eq!(
                        st.zones[z].built.as_ref().unwrap().to_text(),
                        full.zone.to_text(),
                        "{z} before {:?}",
                        st.health
                    );
                    assert_eq!(st.zones[z].hash, full.content_hash, "{z} before");
                }
            }
            // Some owners change: new data, other data, or none.
            let mut next = content.clone();
            let mut changed: BTreeMap<String, BTreeSet<Name>> = BTreeMap::new();
            for _ in 0..1 + rng.below(4) {
                let owner = all[rng.below(all.len())].clone();
                if owner.starts_with("za.") || owner.starts_with("zb.") || rng.below(3) == 0 {
                    next.remove(&owner);
                } else {
                    next.insert(owner.clone(), (rng.below(11), rng.below(1000)));
                }
                let z = if owner.ends_with("za.example.") { "za" } else { "zb" };
                let name = r53dns_route53::convert::parse_route53_name(&owner).unwrap().to_lowercase();
                changed.entry(z.into()).or_default().insert(name);
            }
            let mut st = syncer.state.lock().await;
            for z in ZONES {
                st.zones.get_mut(z).unwrap().records = Arc::new(zone_listing(z, &next));
            }
            patched_any += syncer.convert_names(&mut st, changed);
            // The same records converted whole, with the serial the patch chose.
            let inputs = Inputs {
                zones: st.zones.iter().map(|(id, z)| (id.clone(), (z.hz.clone(), z.records.to_vec()))).collect(),
                health: st.health.clone(),
                ..Inputs::default()
            };
            let mut got = r53dns_zone::ZoneSet::new();
            let mut want = r53dns_zone::ZoneSet::new();
            for z in ZONES {
                let entry = &st.zones[z];
                let built = entry.built.clone().unwrap();
                let full = convert(z, &inputs, |_| built.serial()).unwrap();
                let mut sum = [0u8; 32];
                for n in full.zone.nodes() {
                    r53dns_route53::convert::digest_add(&mut sum, &r53dns_route53::convert::node_digest(n));
                }
                assert_eq!(sum, full.content_hash, "{z}: node digests add up to the hash\n{}", full.zone.to_text());
                assert_eq!(entry.hash, full.content_hash, "{z}: the patched hash is the full one");
                assert_eq!(built.to_text(), full.zone.to_text(), "{z}");
                assert_eq!(built.record_count(), full.zone.record_count(), "{z}");
                let names = |zone: &Zone| {
                    let mut v: Vec<String> = zone.nodes().map(|n| n.name().to_lowercase().to_text()).collect();
                    v.sort();
                    v
                };
                assert_eq!(names(&built), names(&full.zone), "{z}: names, empty non-terminals included");
                got.insert(built);
                want.insert(full.zone);
            }
            assert_eq!(answers(&got, &all), answers(&want, &all));
        }
        assert!(patched_any > 100, "the patch path was taken ({patched_any} zones)");
    }
}
