//! What a Route53 sweep costs the syncer for a large account: time and peak memory of the
//! first sweep, CPU of a sweep that finds nothing changed, and what a one-record change
//! costs (listing, conversion, publication with its IXFR journal), against the same change
//! known by name, as an event or an UPDATE knows it (the zone patched for that name).
//!
//! The account is synthetic and its listing is generated in process and handed to
//! `Syncer::sweep_listed`, which runs the same conversion and publication as a sweep of the
//! API (`Syncer::sweep`): moto is far too slow to list a million record sets, and the API
//! itself is paced by the rate budget (5 calls a second, 300 sets a call: 11 minutes for a
//! million, whatever the syncer does), so this measures the syncer's own share. The
//! end-to-end path against moto is in `tests/it/route53.rs` and `tests/it/events.rs`.
//!
//! `cargo bench --bench sweep` prints one line per account; memory is the process's peak
//! resident set during the phase (reset through `/proc/self/clear_refs`), above what it held
//! before.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use r53dns_app::publish::Publisher;
use r53dns_app::sync::Syncer;
use r53dns_app::zones::FileZones;
use r53dns_route53::model::{HostedZone, RecordSet};
use r53dns_route53::write::{Action, Change};
use r53dns_zone::{RoutingContext, Snapshot};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn hosted(z: usize) -> HostedZone {
    HostedZone {
        id: format!("Z{z:08}"),
        name: format!("zone{z}.example."),
        private: false,
        vpcs: vec![],
        account: String::new(),
    }
}

/// The record sets of zone `z`; `changed` alters one record of zone 0.
fn listing(z: usize, per_zone: usize, changed: u32) -> Vec<RecordSet> {
    let name = format!("zone{z}.example.");
    let mut sets = vec![
        RecordSet::plain(
            name.clone(),
            "SOA".into(),
            900,
            vec!["ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400".into()],
        ),
        RecordSet::plain(
            name.clone(),
            "NS".into(),
            172800,
            vec!["ns-1.awsdns-01.org.".into(), "ns-2.awsdns-02.net.".into()],
        ),
    ];
    sets.extend((0..per_zone.saturating_sub(2)).map(|i| {
        let last = if z == 0 && i == 0 && changed > 0 { 1 + changed as usize % 250 } else { i & 255 };
        RecordSet::plain(
            format!("host{i}.{name}"),
            "A".into(),
            300,
            vec![format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, last)],
        )
    }));
    sets
}

/// Kibibytes from /proc/self/status.
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident set to the current one.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time (user + system) of the process.
fn cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn syncer() -> (Arc<Syncer>, r53dns_app::Store) {
    syncer_with("")
}

/// A syncer; `extra` adds lines to its `[route53]` section.
fn syncer_with(extra: &str) -> (Arc<Syncer>, r53dns_app::Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("r53dns.toml");
    std::fs::write(&path, format!("[route53]\nenabled = true\n{extra}")).expect("config");
    let cfg = r53dns_app::Spec::from_file(&path).and_then(|s| s.validate()).expect("config");
    let cfg = cfg.route53.expect("route53");
    let store: r53dns_app::Store = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot::default()));
    let publisher = Arc::new(
        Publisher::new(store.clone(), FileZones::default(), cfg.conflict, Vec::new(), RoutingContext::default())
            .with_journals(true),
    );
    (Syncer::without_api(cfg, publisher), store)
}

/// Bytes the process has passed to `write` so far (`/proc/self/io`).
fn written() -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix("wchar:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// With a state directory: what a one-record change known by name (an event's read) costs
/// the sync loop, the memory it takes and the bytes written for it.
fn state_dir_case(
    rt: &tokio::runtime::Runtime,
    label: &str,
    hz: &[HostedZone],
    list: &(dyn Fn(&str) -> Vec<RecordSet> + Sync),
    change: &AtomicU32,
) -> String {
    let state = tempfile::tempdir().expect("temp dir");
    let (syncer, _store) = syncer_with(&format!("state-dir = \"{}\"\n", state.path().display()));
    change.store(0, Ordering::Relaxed);
    rt.block_on(syncer.sweep_listed(hz.to_vec(), list)).expect("sweep");
    rt.block_on(syncer.flush_save(Duration::from_secs(600)));
    let set = RecordSet::plain("host1.zone0.example.".into(), "A".into(), 300, vec!["10.0.0.98".into()]);
    let upsert = Change { action: Action::Upsert, set };
    let before = status_kib("VmRSS:");
    let w = written();
    reset_peak();
    let t = Instant::now();
    rt.block_on(syncer.apply_local("Z00000000", &[upsert]));
    let held = t.elapsed();
    rt.block_on(syncer.flush_save(Duration::from_secs(600)));
    let peak = status_kib("VmHWM:").saturating_sub(before);
    let bytes = written() - w;
    format!("| {label} | {} | +{} MiB | {:.1} MiB |", ms(held), peak / 1024, bytes as f64 / 1048576.0)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run small then.
    let full = std::env::args().any(|a| a == "--bench");
    let accounts: &[(&str, usize, usize)] = if full {
        &[("1 000 000 records in 1 000 zones", 1_000, 1_000), ("1 000 000 records in one zone", 1, 1_000_000)]
    } else {
        &[("1 000 records in 10 zones", 10, 100)]
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    println!(
        "| account | first sweep (peak memory) | unchanged sweep: CPU | one-record change: sweep (convert / publish+journal; peak memory) | one-record change by name: patch+publish+journal (peak memory) | held after |"
    );
    println!("|---|---|---|---|---|---|");
    let mut saves = Vec::new();
    for &(label, zones, per_zone) in accounts {
        let (syncer, store) = syncer();
        let hz: Vec<HostedZone> = (0..zones).map(hosted).collect();
        let change = AtomicU32::new(0);
        let list = |id: &str| {
            let z: usize = id[1..].parse().unwrap_or(0);
            listing(z, per_zone, change.load(Ordering::Relaxed))
        };
        let base = status_kib("VmRSS:");
        reset_peak();
        let t = Instant::now();
        let first = rt.block_on(syncer.sweep_listed(hz.clone(), &list)).expect("sweep");
        let first_time = t.elapsed();
        let peak = status_kib("VmHWM:").saturating_sub(base);
        assert_eq!(store.load().internal().zones().count(), zones, "{:?}", first.failed);
        let c = cpu();
        let t = Instant::now();
        let unchanged = rt.block_on(syncer.sweep_listed(hz.clone(), &list)).expect("sweep");
        let (unchanged_cpu, unchanged_wall) = (cpu() - c, t.elapsed());
        assert!(unchanged.changed.is_empty());
        change.store(1, Ordering::Relaxed);
        let before = status_kib("VmRSS:");
        reset_peak();
        let t = Instant::now();
        let changed = rt.block_on(syncer.sweep_listed(hz.clone(), &list)).expect("sweep");
        let change_time = t.elapsed();
        let change_peak = status_kib("VmHWM:").saturating_sub(before);
        assert_eq!(changed.changed.len(), 1, "{:?}", changed.changed);
        // The same one-record change known by name (an event's read, UPDATE's write): the
        // zone is patched, not converted again.
        let set = RecordSet::plain("host1.zone0.example.".into(), "A".into(), 300, vec!["10.0.0.99".into()]);
        let upsert = Change { action: Action::Upsert, set };
        let before = status_kib("VmRSS:");
        reset_peak();
        let t = Instant::now();
        rt.block_on(syncer.apply_local("Z00000000", &[upsert]));
        let patch_time = t.elapsed();
        let patch_peak = status_kib("VmHWM:").saturating_sub(before);
        let apex: r53dns_zone::Name = "zone0.example.".parse().expect("name");
        let host: r53dns_zone::Name = "host1.zone0.example.".parse().expect("name");
        let served = store.load_full();
        let node = served.internal().get(&apex).and_then(|z| z.node(host.wire()).cloned()).expect("served");
        assert_eq!(node.get(r53dns_zone::rtype::A).and_then(|a| a.rdatas().first()), Some(&[10, 0, 0, 99][..]));
        assert_eq!(served.internal().journal(&apex).map(|j| j.len()), Some(2), "the patch is journalled");
        let held = status_kib("VmRSS:").saturating_sub(base);
        println!(
            "| {label} | {} ({} MiB) | {} ({} wall) | {} ({} / {}; +{} MiB) | {} (+{} MiB) | {} MiB |",
            ms(first_time),
            peak / 1024,
            ms(unchanged_cpu),
            ms(unchanged_wall),
            ms(change_time),
            ms(changed.convert),
            ms(changed.publish),
            change_peak / 1024,
            ms(patch_time),
            patch_peak / 1024,
            held / 1024,
        );
        drop(syncer);
        drop(store);
        saves.push(state_dir_case(&rt, label, &hz, &list, &change));
    }
    println!();
    println!(
        "| account (state-dir set) | one-record change by name: holds the sync loop | peak memory | written to the state directory |"
    );
    println!("|---|---|---|---|");
    for line in saves {
        println!("{line}");
    }
}
