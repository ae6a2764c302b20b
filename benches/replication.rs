//! What one record changed in Route53 costs a fleet: the bytes every replica downloads
//! (the manifest plus the zone objects it does not hold) and the time the syncer spends
//! encoding, for accounts of 10 000 and 1 000 000 records, spread over zones or in one.
//!
//! `cargo bench --bench replication` prints one line per account. This measures the
//! snapshot format itself (the same `Hub` the syncer publishes through); the end-to-end
//! path (moto, syncer, replicas) is in `tests/it/fleet.rs`.

use std::time::Instant;

use r53dns_app::replicate::{Hub, Published, Shared, ZoneRef};
use r53dns_route53::model::{HostedZone, RecordSet};

struct Account {
    zones: Vec<(HostedZone, Vec<RecordSet>, u32)>,
}

impl Account {
    fn new(zones: usize, per_zone: usize) -> Self {
        let zones = (0..zones)
            .map(|z| {
                let name = format!("zone{z}.example.");
                let hz = HostedZone {
                    id: format!("Z{z:08}"),
                    name: name.clone(),
                    private: false,
                    vpcs: vec![],
                    account: String::new(),
                };
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
                    RecordSet::plain(
                        format!("host{i}.{name}"),
                        "A".into(),
                        300,
                        vec![format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)],
                    )
                }));
                (hz, sets, 1)
            })
            .collect();
        Self { zones }
    }

    fn publish(&self, hub: &Hub) -> std::sync::Arc<Published> {
        let refs = self.zones.iter().map(|(hz, sets, serial)| ZoneRef {
            zone: hz,
            records: sets,
            serial: *serial,
            hash: format!("{serial:08x}"),
            stale_since: None,
        });
        hub.prepare(refs, Shared::default())
    }
}

fn size(p: &Published, held: Option<&Published>) -> usize {
    let objects: usize = p
        .objects
        .iter()
        .filter(|(name, _)| held.is_none_or(|h| !h.objects.contains_key(*name)))
        .map(|(_, b)| b.len())
        .sum();
    p.bytes.len() + objects
}

fn mib(n: usize) -> String {
    format!("{:.2} MiB", n as f64 / (1024.0 * 1024.0))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run small then.
    let full = std::env::args().any(|a| a == "--bench");
    let accounts: &[(&str, usize, usize)] = if full {
        &[
            ("10 000 records in 10 zones", 10, 1_000),
            ("10 000 records in one zone", 1, 10_000),
            ("1 000 000 records in 1 000 zones", 1_000, 1_000),
            ("1 000 000 records in one zone", 1, 1_000_000),
        ]
    } else {
        &[("1 000 records in 10 zones", 10, 100)]
    };
    println!("| account | first download | one-record change: bytes per replica | encode (first / change) |");
    println!("|---|---|---|---|");
    for (label, zones, per_zone) in accounts {
        let mut account = Account::new(*zones, *per_zone);
        let hub = Hub::new();
        let t = Instant::now();
        let first = account.publish(&hub);
        let first_time = t.elapsed();
        // One record of the first zone changes: that zone gets a new serial.
        let (_, sets, serial) = &mut account.zones[0];
        sets[2].resource_records[0].value = "192.0.2.99".into();
        *serial += 1;
        let t = Instant::now();
        let second = account.publish(&hub);
        let change_time = t.elapsed();
        let moved = size(&second, Some(&first));
        println!(
            "| {label} | {} | {} ({} B manifest + changed zone) | {:.0} ms / {:.1} ms |",
            mib(size(&first, None)),
            mib(moved),
            second.bytes.len(),
            first_time.as_secs_f64() * 1e3,
            change_time.as_secs_f64() * 1e3
        );
    }
}
