//! Peak memory of loading a zone file, and of loading it again beside the first copy (what
//! a reload does: the live zone stays until the new one is built), with the allocator the
//! server uses. Prints one line per step: the process's peak (VmHWM) and resident (VmRSS)
//! memory in MiB and the time taken.
//!
//!     cargo run --release -p r53dns-zone --example load_memory -- ZONEFILE
//!
//! `benches/load/memory.sh` measures the server itself, against Knot.

use std::path::Path;
use std::time::Instant;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A field of /proc/self/status, in MiB.
fn status(field: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix(" kB")?.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// Makes VmHWM start again from the resident memory now.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: load_memory ZONEFILE");
        std::process::exit(2);
    };
    let path = Path::new(&path);
    let report = |step: &str, started: Instant, before: f64| {
        let (peak, rss) = (status("VmHWM"), status("VmRSS"));
        println!(
            "{step:<7} peak {peak:7.1} MiB (+{:6.1} over the {before:.1} resident before), resident {rss:7.1} MiB, {:.2} s",
            peak - before,
            started.elapsed().as_secs_f64()
        );
    };
    let before = status("VmRSS");
    let t = Instant::now();
    let (zone, _) = r53dns_zone::load_zone_file(path, None).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    report("load", t, before);
    println!("        {} records", zone.record_count());
    // The allocator gives freed memory back after about ten seconds.
    std::thread::sleep(std::time::Duration::from_secs(12));
    let before = status("VmRSS");
    println!("steady  resident {before:7.1} MiB");
    reset_peak();
    let t = Instant::now();
    let again = r53dns_zone::load_zone_file(path, None).map(|(z, _)| z);
    report("reload", t, before);
    drop(again);
    drop(zone);
}
