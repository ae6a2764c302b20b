//! Lookup and whole-handler micro-benchmarks on a generated 10,000-record zone.
//!
//! `cargo bench --bench lookup` — figures per question kind: hit, CNAME, NXDOMAIN, wildcard,
//! referral; then the same through `answer()` (request bytes to response bytes), uncached
//! (`answer`) and from the response cache (`answer_cached`: every question found there);
//! last `cold`: 100,000 distinct questions in rotation, more than the cache holds, answered
//! uncached and through the cache (nearly every question a miss: what a miss costs).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use r53dns_server::{AnswerConfig, ResponseCache, Transport, answer, answer_with_cache};
use r53dns_zone::{LookupOptions, Name, ZoneSet, load_zone_str, rtype};

/// A zone of about 10,000 records: hosts, CNAMEs, delegations with glue, a wildcard.
fn zone_text() -> String {
    let mut z = String::from(
        "$ORIGIN bench.example.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n  NS ns1\n  NS ns2\n\
         ns1 A 192.0.2.1\nns2 A 192.0.2.2\n*.wild A 192.0.2.9\n",
    );
    for i in 0..8500 {
        z.push_str(&format!("host{i} A 10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255));
    }
    for i in 0..500 {
        z.push_str(&format!("alias{i} CNAME host{i}\n"));
    }
    for i in 0..500 {
        z.push_str(&format!("dept{i} NS ns.dept{i}\nns.dept{i} A 10.200.{}.{}\n", i >> 8, i & 255));
    }
    z
}

fn query(name: &str, qtype: u16) -> Vec<u8> {
    let n: Name = name.parse().unwrap();
    let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    m.extend_from_slice(n.wire());
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    m
}

fn benches(c: &mut Criterion) {
    let (zone, _) = load_zone_str(&zone_text(), Path::new("bench.example.zone"), None).unwrap();
    assert!(zone.record_count() >= 10_000);
    let mut set = ZoneSet::new();
    set.insert(zone);
    let cases = [
        ("hit", "host4242.bench.example.", rtype::A),
        ("cname", "alias42.bench.example.", rtype::A),
        ("nxdomain", "nothere.bench.example.", rtype::A),
        ("nodata", "host4242.bench.example.", rtype::AAAA),
        ("wildcard", "a.b.wild.bench.example.", rtype::A),
        ("referral", "www.dept42.bench.example.", rtype::A),
    ];
    let mut g = c.benchmark_group("lookup");
    for (label, name, t) in cases {
        let n: Name = name.parse().unwrap();
        g.bench_function(label, |b| b.iter(|| black_box(set.lookup(black_box(n.wire()), t, LookupOptions::default()))));
    }
    g.finish();
    let mut g = c.benchmark_group("answer");
    let cfg = AnswerConfig::default();
    let mut out = Vec::with_capacity(65535);
    for (label, name, t) in cases {
        let q = query(name, t);
        g.bench_function(label, |b| b.iter(|| answer(&set, black_box(&q), Transport::Udp, &cfg, None, &mut out)));
    }
    g.finish();
    let mut g = c.benchmark_group("answer_cached");
    let cache = ResponseCache::new(16 << 20, cfg);
    for (label, name, t) in cases {
        let q = query(name, t);
        g.bench_function(label, |b| {
            b.iter(|| answer_with_cache(&cache, &set, black_box(&q), Transport::Udp, &cfg, None, &mut out))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("cold");
    let questions: Vec<Vec<u8>> = (0..100_000)
        .map(|i| match i % 4 {
            0 => query(&format!("host{}.bench.example.", i % 8500), rtype::A),
            1 => query(&format!("host{}.bench.example.", i % 8500), rtype::AAAA),
            _ => query(&format!("nx{i}.bench.example."), rtype::A),
        })
        .collect();
    let mut next = questions.iter().cycle();
    g.bench_function("uncached", |b| {
        b.iter(|| answer(&set, black_box(next.next().unwrap()), Transport::Udp, &cfg, None, &mut out))
    });
    let cache = ResponseCache::new(16 << 20, cfg);
    g.bench_function("cached", |b| {
        b.iter(|| {
            answer_with_cache(&cache, &set, black_box(next.next().unwrap()), Transport::Udp, &cfg, None, &mut out)
        })
    });
    g.finish();
}

criterion_group! {
    name = lookup;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = benches
}
criterion_main!(lookup);
