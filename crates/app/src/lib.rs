//! Wiring of r53dns: configuration ([`config`]), zone sources ([`zones`]), and the process
//! lifecycle ([`run`], [`start`]): load, publish, serve, reload on SIGHUP, stop on
//! SIGTERM/SIGINT.
//!
//! Only this crate spawns long-lived tasks. The snapshot is published through one
//! [`Store`]; a reload builds a complete new [`ZoneSet`] aside and swaps
//! it in with a single store.
#![warn(missing_docs)]

pub mod config;
pub mod zones;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use r53dns_server::CancellationToken;
use tokio::sync::Mutex;

pub use config::{Config, LogFormat, Spec};
pub use r53dns_server::Store;
pub use r53dns_zone::ZoneSet;
use zones::{FileZones, LoadReport, zone_paths};

/// A failure before serving that is the operator's to fix (bad config or zone): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// Validates the zones of `config` without serving: the `check` command.
pub fn check(config: &Config) -> Result<LoadReport, StartupError> {
    let paths = zone_paths(&config.zone_dirs, &config.zone_files)
        .map_err(|e| StartupError(e.to_string()))?;
    let (_, report) = FileZones::load(&paths, None);
    if !report.errors.is_empty() {
        let msgs: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        return Err(StartupError(msgs.join("\n")));
    }
    Ok(report)
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// Bound DNS addresses (UDP and TCP share each).
    pub dns_addrs: Vec<SocketAddr>,
    /// The published snapshot.
    pub store: Store,
    reloader: Arc<Reloader>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Reloader {
    config: Config,
    files: Mutex<FileZones>,
    store: Store,
}

impl Reloader {
    /// Re-reads the zone files and publishes the result; failed files keep their old zone.
    async fn reload(&self) -> LoadReport {
        let mut files = self.files.lock().await;
        let paths = match zone_paths(&self.config.zone_dirs, &self.config.zone_files) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reload: cannot list zones; keeping the current snapshot");
                return LoadReport {
                    errors: vec![e],
                    ..Default::default()
                };
            }
        };
        let (new, report) = FileZones::load(&paths, Some(&files));
        for e in &report.errors {
            tracing::error!(error = %e, "reload: zone not updated; the previous version stays");
        }
        for w in &report.warnings {
            tracing::warn!("{w}");
        }
        self.store.store(Arc::new(new.to_set().into()));
        tracing::info!(
            zones = report.loaded.len(),
            errors = report.errors.len(),
            "zone files reloaded"
        );
        *files = new;
        report
    }
}

impl Running {
    /// Re-reads zone files now (what SIGHUP does).
    pub async fn reload(&self) -> LoadReport {
        self.reloader.reload().await
    }

    /// Asks the server to stop and waits until it has.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server stops (after its shutdown token is cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Loads zones, binds listeners and starts serving in the background. Zone or listener
/// problems are [`StartupError`]s. Call inside a tokio runtime.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let paths = zone_paths(&config.zone_dirs, &config.zone_files)
        .map_err(|e| StartupError(e.to_string()))?;
    let (files, report) = FileZones::load(&paths, None);
    if !report.errors.is_empty() {
        let msgs: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        return Err(StartupError(msgs.join("\n")).into());
    }
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    for (file, apex, serial, records) in &report.loaded {
        tracing::info!(zone = %apex, serial, records, file = %file.display(), "zone loaded");
    }
    let store: Store = Arc::new(ArcSwap::from_pointee(files.to_set().into()));
    let bound = r53dns_server::bind(config.server.clone())
        .map_err(|e| StartupError(format!("cannot listen on {:?}: {e}", config.server.listen)))?;
    let dns_addrs = bound.local_addrs().to_vec();
    for a in &dns_addrs {
        tracing::info!(addr = %a, "serving DNS on UDP and TCP");
    }
    let reloader = Arc::new(Reloader {
        config,
        files: Mutex::new(files),
        store: store.clone(),
    });
    let task = tokio::spawn(bound.serve(store.clone(), shutdown.clone()));
    Ok(Running {
        dns_addrs,
        store,
        reloader,
        shutdown,
        task,
    })
}

/// Runs until SIGTERM or SIGINT; SIGHUP reloads zone files.
pub async fn run(config: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = CancellationToken::new();
    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let running = start(config, shutdown.clone()).await?;
    let reloader = running.reloader.clone();
    let hup_task = tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading zone files");
            reloader.reload().await;
        }
    });
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    hup_task.abort();
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}
