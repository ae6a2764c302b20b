//! Wiring of r53dns: configuration ([`config`]), zone sources (files in [`zones`], Route53 in
//! [`sync`]), building and publishing snapshots ([`publish`]), and the process lifecycle
//! ([`run`], [`start`]): load, publish, serve, reload on SIGHUP, stop on SIGTERM/SIGINT.
//!
//! Only this crate spawns long-lived tasks. The snapshot is published through one
//! [`Store`]; every change builds a complete new [`Snapshot`] aside and swaps it in with a
//! single store.
#![warn(missing_docs)]

pub mod bindconf;
pub mod catalog;
pub mod compare;
pub mod config;
mod control;
pub mod events;
pub mod export;
pub mod notify;
pub mod persist;
pub mod publish;
pub mod push;
mod reconfig;
pub mod replicate;
pub mod resolve;
pub mod secondary;
pub mod sync;
mod telemetry;
pub mod update;
pub mod zones;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use r53dns_server::CancellationToken;

pub use config::{Config, LogFormat, Spec};
use publish::Publisher;
pub use r53dns_metrics::{ADMIN_HEADER, REVISION};
pub use r53dns_server::Store;
pub use r53dns_zone::{Snapshot, ZoneSet};
use sync::{SyncStatus, Syncer};
use zones::{FileZones, LoadReport, zone_sources};

/// A failure before serving that is the operator's to fix (bad config or zone): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// Loads every zone file of `config`, all or nothing: any error is a [`StartupError`]
/// listing every problem (startup, `check` and `export` refuse to work with a bad zone).
pub(crate) fn load_files(config: &Config) -> Result<(FileZones, LoadReport), StartupError> {
    let sources = zone_sources(config).map_err(|e| StartupError(e.to_string()))?;
    let (files, report) = FileZones::load(&sources, None);
    if !report.errors.is_empty() {
        let msgs: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        return Err(StartupError(msgs.join("\n")));
    }
    Ok((files, report))
}

/// Validates the zone files of `config` without serving: the `check` command.
pub fn check(config: &Config) -> Result<LoadReport, StartupError> {
    load_files(config).map(|(_, report)| report)
}

/// UPDATE and NOTIFY as the listeners hand them over.
struct Requests {
    updater: Option<Arc<update::Updater>>,
    secondaries: Option<Arc<secondary::Secondaries>>,
}

impl r53dns_server::RequestHandler for Requests {
    fn handle(
        self: Arc<Self>,
        msg: Vec<u8>,
        peer: SocketAddr,
        transport: r53dns_server::Transport,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<u8>>> + Send + 'static>> {
        Box::pin(async move {
            let opcode = msg.get(2).map(|b| (b >> 3) & 0x0f);
            use r53dns_zone::proto::opcode::{NOTIFY, UPDATE};
            match (opcode, &self.updater, &self.secondaries) {
                (Some(UPDATE), Some(u), _) => u.handle(&msg, peer, transport).await,
                (Some(NOTIFY), _, Some(s)) => s.notify(&msg, peer),
                _ => {
                    let parsed = r53dns_proto::message::parse(&msg);
                    Some(update::response(&msg, parsed.as_ref(), r53dns_zone::proto::rcode::NOTIMP))
                }
            }
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// Bound DNS addresses (UDP and TCP share each).
    pub dns_addrs: Vec<SocketAddr>,
    /// The published snapshot.
    pub store: Store,
    /// The HTTP endpoint's address, unless it is off.
    pub http_addr: Option<SocketAddr>,
    reloader: Arc<Reloader>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// Set when shutting down: `/readyz` fails while DNS is still answered.
    draining: Arc<AtomicBool>,
    drain: std::time::Duration,
    /// The Route53 data's holder (a syncer's or a replica's): its pending save is waited
    /// for at stop.
    saver: Option<Arc<Syncer>>,
}

/// How long stopping waits for the state directory's pending save.
pub const SAVE_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the configuration again (its file, the environment and the command line), for a
/// reload.
pub type Reread = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

struct Reloader {
    /// The configuration running; a reload replaces what it can apply of a new one.
    config: arc_swap::ArcSwap<Config>,
    reread: std::sync::OnceLock<Reread>,
    publisher: Arc<Publisher>,
    syncer: Option<Arc<Syncer>>,
    /// The encrypted listeners' certificate and key, read again on reload.
    certs: Option<Arc<r53dns_server::encrypted::Certificates>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Reloader {
    /// With `reread` set: the configuration read again, what a reload can apply of it taken,
    /// the settings that changed otherwise named (restart to apply). Returns the warnings
    /// and the error to report.
    fn reread_config(&self) -> (Vec<String>, Option<zones::SourceError>) {
        let Some(reread) = self.reread.get() else { return (Vec::new(), None) };
        match reread() {
            Ok(new) => {
                let running = self.config.load_full();
                let changed = reconfig::differences(&running, &new);
                let (applied, restart): (Vec<String>, Vec<String>) =
                    changed.into_iter().partition(|k| reconfig::APPLIED.contains(&k.as_str()));
                if !applied.is_empty() {
                    tracing::info!(settings = %applied.join(", "), "reload: configuration changes applied");
                    self.config.store(Arc::new(reconfig::apply(&running, &new)));
                }
                if restart.is_empty() {
                    return (Vec::new(), None);
                }
                let w = format!(
                    "configuration changed where a reload cannot apply it (restart to apply): {}",
                    restart.join(", ")
                );
                tracing::warn!("reload: {w}");
                (vec![w], None)
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "reload: configuration not re-read; the running one stays");
                (Vec::new(), Some(zones::SourceError::Config(format!("{e:#}"))))
            }
        }
    }

    /// One line for the service manager: zones served and when the data was last confirmed.
    fn status_line(&self) -> String {
        let snapshot = self.publisher.store().load();
        let zones = snapshot.internal().len();
        match self.syncer.as_ref().map(|s| s.status()).map(|st| st.age()) {
            Some(Some(age)) => format!("serving {zones} zones; Route53 confirmed {}s ago", age.as_secs()),
            Some(None) => format!("serving {zones} zones; Route53 not confirmed yet"),
            None => format!("serving {zones} zones"),
        }
    }

    /// Re-reads the zone files and publishes the result; failed files keep their old zone.
    /// Also asks for a Route53 sweep.
    async fn reload(&self) -> LoadReport {
        if let Some(s) = &self.syncer {
            s.trigger();
        }
        if let Some(c) = &self.certs {
            match c.reload() {
                Ok(()) => tracing::info!("TLS certificate and key reloaded"),
                Err(e) => tracing::error!(error = %e, "reload: cannot read the TLS certificate; the current one stays"),
            }
        }
        let (config_warnings, config_error) = self.reread_config();
        let config = self.config.load_full();
        let old = self.publisher.files().await;
        if let (Some(before), Ok(Some(now))) = (&config.bind_mapped, zones::bind_config(&config))
            && before.settings_differ(&now)
        {
            tracing::warn!(
                "reload: named.conf changed beyond its zone list (keys, views, transfer, NOTIFY or UPDATE rules); zones are reloaded, the rest takes a restart"
            );
        }
        let paths = match zone_sources(&config) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reload: cannot list zones; keeping the current snapshot");
                let errors = config_error.into_iter().chain([e]).collect();
                return LoadReport { errors, warnings: config_warnings, ..Default::default() };
            }
        };
        let (new, mut report) = FileZones::load(&paths, Some(&old));
        report.warnings.extend(config_warnings);
        report.errors.extend(config_error);
        for e in &report.errors {
            tracing::error!(error = %e, "reload: zone not updated; the previous version stays");
        }
        for w in &report.warnings {
            tracing::warn!("{w}");
        }
        self.publisher.set_files(new).await;
        tracing::info!(zones = report.loaded.len(), errors = report.errors.len(), "zone files reloaded");
        report
    }
}

impl Running {
    /// Re-reads zone files and triggers a Route53 sweep now (what SIGHUP does).
    pub async fn reload(&self) -> LoadReport {
        self.reloader.reload().await
    }

    /// Triggers a Route53 sweep now (`POST /sync`); false without Route53.
    pub fn trigger_sync(&self) -> bool {
        self.reloader.syncer.as_ref().map(|s| s.trigger()).is_some()
    }

    /// Route53 sync state, when Route53 is a source.
    pub fn sync_status(&self) -> Option<Arc<SyncStatus>> {
        self.reloader.syncer.as_ref().map(|s| s.status())
    }

    /// Lame duck: `/readyz` answers 503 from now on while DNS keeps being answered for the
    /// configured drain time (interrupted by `cut_short`), then the server stops.
    pub async fn drain_and_stop(self, cut_short: impl std::future::Future<Output = ()>) {
        self.draining.store(true, Ordering::Relaxed);
        if !self.drain.is_zero() {
            tracing::info!(drain = ?self.drain, "draining: /readyz fails, DNS is still answered");
            tokio::select! {
                () = tokio::time::sleep(self.drain) => {}
                () = cut_short => tracing::info!("drain cut short"),
            }
        }
        self.stop().await;
    }

    /// Asks the server to stop and waits until it has, and for the state directory's
    /// pending save (at most [`SAVE_FLUSH_LIMIT`]).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        if let Some(s) = &self.saver {
            s.flush_save(SAVE_FLUSH_LIMIT).await;
        }
    }

    /// Waits until the server stops (after its shutdown token is cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Loads zones, binds listeners and starts serving in the background; with Route53, serves
/// the saved snapshot at once and starts sweeping. Zone or listener problems are
/// [`StartupError`]s. Call inside a tokio runtime.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let (files, report) = load_files(&config)?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    for (file, apex, serial, records, audience) in &report.loaded {
        tracing::info!(zone = %apex, serial, records, file = %file.display(), ?audience, "zone loaded");
    }
    let store: Store = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let metrics = Arc::new(r53dns_metrics::Metrics::new(env!("CARGO_PKG_VERSION")));
    let (conflict, mut networks, routing) = match config.route53.as_ref().or(config.replica_route53.as_ref()) {
        Some(r) => (r.conflict, r.internal_networks.clone(), r.routing.clone()),
        None => Default::default(),
    };
    // The first of two named.conf views: its clients see its zones.
    for n in &config.view_networks {
        if !networks.contains(n) {
            networks.push(*n);
        }
    }
    let publisher = Arc::new(
        Publisher::new(store.clone(), FileZones::default(), conflict, networks, routing)
            .with_notify(config.notify.clone(), config.notify_key.clone())
            .with_journals(
                !config.server.transfer_acl.is_empty()
                    || !config.server.transfer_keys.is_empty()
                    || !config.server.zone_transfer.is_empty(),
            )
            .with_catalog(config.catalog_zone.clone().map(catalog::Catalog::new)),
    );
    publisher.set_files(files).await;
    let hub = config.replication.as_ref().map(|_| Arc::new(replicate::Hub::new()));
    let s3_writer = match config.replication.as_ref().and_then(|r| r.s3.as_ref()) {
        Some(url) => Some(Arc::new(
            replicate::s3::Writer::new(url, config::DEFAULT_FOLLOW_MAX_OBJECT)
                .await
                .map_err(|e| anyhow::anyhow!("replication.s3: {e}"))?,
        )),
        None => None,
    };
    let replica = match (&config.follow, &config.replica_route53) {
        (Some(f), Some(r)) => Some((f, r)),
        _ => None,
    };
    let syncer = match (&config.route53, replica) {
        (Some(r), _) => Some(
            Syncer::new(r.clone(), publisher.clone(), Some(metrics.clone()))
                .await
                .context("cannot set up Route53 access")?
                .with_private_zone_metrics(config.private_zone_metrics),
        ),
        (None, Some((_, r))) => Some(Syncer::replica(r.clone(), publisher.clone(), Some(metrics.clone()))),
        (None, None) => None,
    };
    let syncer = match (syncer, &hub) {
        (Some(s), Some(h)) => Some(s.with_hub(h.clone(), s3_writer.clone())),
        (s, _) => s,
    };
    let syncer = match syncer {
        Some(s) => {
            // With S3, the fleet's last version wins over this host's saved copy: serials
            // continue from it.
            if !s.restore_from_s3().await {
                s.restore().await;
            }
            let clashes = publisher.conflicts().await;
            if conflict == config::Conflict::Error && !clashes.is_empty() {
                return Err(StartupError(format!(
                    "zones defined both by a zone file and by Route53: {}; set route53.conflict to \"files\" or \"route53\"",
                    clashes.join(", ")
                ))
                .into());
            }
            Some(s)
        }
        None => None,
    };
    let bound = r53dns_server::bind(config.server.clone())
        .map_err(|e| StartupError(format!("cannot listen on {:?}: {e}", config.server.listen)))?;
    let updater = match &syncer {
        Some(s) if !config.update_grants.is_empty() => Some(Arc::new(update::Updater::new(
            config.tsig_keys.clone(),
            config.update_grants.clone(),
            s.clone(),
            Some(metrics.clone()),
            config.update_limits,
        ))),
        _ => None,
    };
    let secondaries = (!config.secondaries.is_empty()).then(|| {
        Arc::new(secondary::Secondaries::new(
            config.secondaries.clone(),
            publisher.clone(),
            config.tsig_keys.clone(),
            Some(metrics.clone()),
        ))
    });
    let bound = if updater.is_some() || secondaries.is_some() {
        bound.with_handler(Arc::new(Requests { updater, secondaries: secondaries.clone() }))
    } else {
        bound
    };
    let dns_addrs = bound.local_addrs().to_vec();
    let (dot_addrs, doh_addrs) = bound.encrypted_addrs();
    for a in &dot_addrs {
        tracing::info!(addr = %a, "serving DNS over TLS");
    }
    for a in &doh_addrs {
        tracing::info!(addr = %a, path = %config.server.encrypted.doh_path, "serving DNS over HTTPS");
    }
    for a in bound.quic_addrs() {
        tracing::info!(addr = %a, "serving DNS over QUIC");
    }
    metrics.add_queries(Arc::new(telemetry::StatsSource(bound.stats())));
    let follower = match (replica, &syncer) {
        (Some((f, _)), Some(s)) => Some(Arc::new(
            replicate::Follower::new(f.clone(), s.clone(), Some(metrics.clone()))
                .await
                .map_err(|e| StartupError(format!("follow.source: {e}")))?,
        )),
        _ => None,
    };
    let draining = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(telemetry::AppProbes {
        store: store.clone(),
        syncer: syncer.clone().filter(|_| config.route53.is_some()),
        status: syncer.as_ref().map(|s| s.status()),
        secondaries: secondaries.clone(),
        follower: follower.as_ref().map(|f| f.status()),
        draining: draining.clone(),
        metrics: metrics.clone(),
        private_zone_metrics: config.private_zone_metrics,
    });
    let control = Arc::new(control::Control {
        started: std::time::Instant::now(),
        probes: probes.clone(),
        secondaries: secondaries.clone(),
        metrics: metrics.clone(),
        reloader: std::sync::OnceLock::new(),
    });
    // Bound now, so a socket in use is a startup error; served once the server is up.
    let control_socket = match &config.control_socket {
        Some(path) => Some((
            control::bind(path)
                .map_err(|e| StartupError(format!("cannot open the control socket {}: {e}", path.display())))?,
            path.clone(),
        )),
        None => None,
    };
    let http_addr = match config.http_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| StartupError(format!("cannot listen for HTTP on {addr}: {e}")))?;
            let got = l.local_addr()?;
            let replication = match (&hub, config.replication.as_ref().and_then(|r| r.access.as_ref())) {
                (Some(h), Some(access)) => {
                    Some(replicate::router(h.clone(), access.clone(), Some(metrics.clone()), shutdown.clone()))
                }
                _ => None,
            };
            // The control verbs under /ctl/, with the admin routes' checks.
            let ctl = config.http_admin.then(|| {
                axum::Router::new().nest("/ctl", control::router(control.clone())).layer(axum::middleware::from_fn(
                    |req: axum::extract::Request, next: axum::middleware::Next| async move {
                        match r53dns_metrics::admin_request_refusal(req.headers()) {
                            Some(refused) => refused,
                            None => next.run(req).await,
                        }
                    },
                ))
            });
            let extra = match (replication, ctl) {
                (Some(a), Some(b)) => Some(a.merge(b)),
                (a, b) => a.or(b),
            };
            tokio::spawn(r53dns_metrics::serve(l, metrics.clone(), probes, config.http_admin, extra, shutdown.clone()));
            Some(got)
        }
        None => None,
    };
    for a in &dns_addrs {
        tracing::info!(addr = %a, "serving DNS on UDP and TCP");
    }
    match (&follower, &syncer) {
        (Some(f), _) => f.spawn(shutdown.clone()),
        (None, Some(s)) => s.spawn(shutdown.clone()),
        (None, None) => {}
    }
    if let Some(s) = &secondaries {
        s.spawn(shutdown.clone());
    }
    let drain = config.drain;
    let saver = syncer.clone();
    // SIGHUP and `POST /sync` sweep Route53; a replica has nothing to sweep.
    let syncer = syncer.filter(|_| config.route53.is_some());
    let certs = bound.certificates();
    let reloader = Arc::new(Reloader {
        config: arc_swap::ArcSwap::from_pointee(config),
        reread: std::sync::OnceLock::new(),
        publisher,
        syncer,
        certs,
    });
    let _ = control.reloader.set(reloader.clone());
    if let Some((listener, path)) = control_socket {
        tokio::spawn(control::serve(listener, path, control, shutdown.clone()));
    }
    let task = tokio::spawn(bound.serve(store.clone(), shutdown.clone()));
    Ok(Running { dns_addrs, store, http_addr, reloader, shutdown, task, draining, drain, saver })
}

/// Runs until SIGTERM (after the drain time) or SIGINT (at once); SIGHUP reloads zone files
/// and triggers a Route53 sweep.
pub async fn run(config: Config) -> anyhow::Result<()> {
    run_with_reread(config, None).await
}

/// [`run`], with SIGHUP (and `ctl reload`) also reading the configuration again through
/// `reread`: the zone sources it names are applied, other changes are reported as needing
/// a restart.
pub async fn run_with_reread(config: Config, reread: Option<Reread>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = CancellationToken::new();
    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let running = start(config, shutdown.clone()).await?;
    let reloader = running.reloader.clone();
    if let Some(r) = reread {
        let _ = reloader.reread.set(r);
    }
    systemd::ready(&reloader.status_line());
    let watchdog = systemd::watchdog();
    let hup_task = tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading zone files");
            systemd::reloading();
            let report = reloader.reload().await;
            systemd::ready(&format!("{}; last reload: {} errors", reloader.status_line(), report.errors.len()));
        }
    });
    let drain = tokio::select! {
        _ = term.recv() => {
            tracing::info!("SIGTERM: shutting down");
            true
        }
        _ = int.recv() => {
            tracing::info!("SIGINT: shutting down");
            false
        }
    };
    hup_task.abort();
    systemd::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    if drain {
        // A second SIGTERM, or SIGINT, ends the drain early.
        running
            .drain_and_stop(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            })
            .await;
    } else {
        running.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The service manager's notification protocol (`Type=notify`): `READY=1` once zones are
/// loaded and the listeners bound, `RELOADING=1` then `READY=1` around a reload, `STOPPING=1`
/// on the way out, `STATUS=` lines, and the watchdog when `WatchdogSec=` is set. Without
/// `NOTIFY_SOCKET` (not under systemd) each call does nothing.
mod systemd {
    use sd_notify::NotifyState;

    fn send(states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::debug!(error = %e, "cannot notify the service manager");
        }
    }

    pub(crate) fn ready(status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub(crate) fn reloading() {
        // MONOTONIC_USEC lets `Type=notify-reload` managers match the reload to its request.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status("reloading zone files")]),
            Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading zone files")]),
        }
    }

    pub(crate) fn stopping() {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// Pings the watchdog at half its interval from the runtime, so a stuck runtime is
    /// restarted by the service manager.
    pub(crate) fn watchdog() -> Option<tokio::task::JoinHandle<()>> {
        let mut usec = 0;
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return None;
        }
        let every = std::time::Duration::from_micros(usec / 2);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                send(&[NotifyState::Watchdog]);
            }
        }))
    }
}
