//! `r53dns export`: every zone as a BIND-loadable master file (what `route53tobind` did).
//! Aliases are written as the data they resolve to; routed groups as the records a default
//! client gets, the other members commented out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use r53dns_zone::{Snapshot, Zone};

use crate::config::Config;
use crate::publish::Publisher;
use crate::sync::{SweepProgress, Syncer};
use crate::zones::FileZones;

fn file_name(zone: &Zone, private: bool, taken: &mut std::collections::HashSet<String>, id: &str) -> String {
    let apex = zone.apex().to_text();
    let base = match apex.trim_end_matches('.') {
        "" => "root".to_owned(),
        a => a.replace('/', "_"),
    };
    let mut name = if private { format!("{base}.private.zone") } else { format!("{base}.zone") };
    if !taken.insert(name.clone()) {
        name = format!("{base}.{id}.zone");
        taken.insert(name.clone());
    }
    name
}

fn render(zone: &Zone, source: &str) -> String {
    format!(
        "; {} exported by r53dns from {source}\n; serial {}, {} records\n$ORIGIN {}\n{}",
        zone.apex(),
        zone.serial(),
        zone.record_count(),
        zone.apex(),
        zone.to_text()
    )
}

/// What `export` shows while it sweeps Route53 (which for a large account takes minutes, paced
/// by the API budget): a progress bar on a terminal, otherwise a plain line on standard error
/// at most every [`PLAIN_EVERY`] and when the sweep ends.
fn sweep_progress() -> impl Fn(SweepProgress) + Send + Sync + 'static {
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} Route53 zones listed, {msg} record sets, {elapsed} (ETA {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let last: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    move |p: SweepProgress| match &bar {
        Some(b) => {
            b.set_length(p.zones_total as u64);
            b.set_position(p.zones_done as u64);
            b.set_message(p.record_sets.to_string());
            if p.zones_done == p.zones_total {
                b.finish_and_clear();
            }
        }
        None => {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if p.zones_done == p.zones_total || last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                *last = Some(Instant::now());
                eprintln!("{}", plain_line(p));
            }
        }
    }
}

/// How often `export` writes a plain progress line when standard error is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

fn plain_line(p: SweepProgress) -> String {
    format!("r53dns: Route53 sweep: {}/{} zones listed, {} record sets", p.zones_done, p.zones_total, p.record_sets)
}

/// Writes every zone of `config` (zone files and, when enabled, one Route53 sweep) into
/// `out`. `progress(done, total)` is called after each file. Returns the files written.
pub async fn export(config: &Config, out: &Path, progress: impl Fn(usize, usize)) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (files, _) = crate::load_files(config)?;
    let mut zones: Vec<(Arc<Zone>, bool, String, String)> =
        files.zones().map(|z| (z.clone(), false, format!("{:?}", z.source()), String::new())).collect();
    if let Some(r) = &config.route53 {
        let store = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let publisher = Arc::new(Publisher::new(store, FileZones::default(), r.conflict, vec![], r.routing.clone()));
        let mut cfg = r.clone();
        cfg.state_dir = None;
        let syncer = Syncer::new(cfg, publisher, None).await?.with_progress(sweep_progress());
        let report = syncer.sweep().await.map_err(|e| anyhow::anyhow!("Route53: {e}"))?;
        if !report.failed.is_empty() {
            anyhow::bail!("Route53: could not read {}", report.failed.join(", "));
        }
        syncer.refresh_endpoints().await;
        for (hz, z) in syncer.zones().await {
            zones.push((z, hz.private, format!("Route53 hosted zone {}", hz.id), hz.id));
        }
    }
    let total = zones.len();
    let mut taken = std::collections::HashSet::new();
    let mut written = Vec::new();
    for (i, (zone, private, source, id)) in zones.iter().enumerate() {
        let path = out.join(file_name(zone, *private, &mut taken, id));
        let tmp = path.with_extension("zone.tmp");
        std::fs::write(&tmp, render(zone, source)).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)?;
        written.push(path);
        progress(i + 1, total);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_progress_says_how_far_the_sweep_got() {
        let p = SweepProgress { zones_done: 3, zones_total: 1000, record_sets: 900 };
        assert_eq!(plain_line(p), "r53dns: Route53 sweep: 3/1000 zones listed, 900 record sets");
    }
}
