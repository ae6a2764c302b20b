//! The lookup allocates nothing: hits, CNAME chains, NXDOMAIN, NODATA, wildcards, referrals.

use std::alloc::System;
use std::path::Path;

use r53dns_zone::{LookupOptions, Name, ZoneSet, load_zone_str, rtype};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ZONE: &str = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\n NS ns2.example.net.\n MX 10 mail\n\
ns A 192.0.2.1\n AAAA 2001:db8::1\nmail A 192.0.2.2\nwww A 192.0.2.3\nalias CNAME www\n*.wild A 192.0.2.4\n\
a.b.ent A 192.0.2.5\nsub NS ns.sub\nns.sub A 192.0.2.6\n";

fn lookups_do_not_allocate() {
    let (zone, _) = load_zone_str(ZONE, Path::new("t"), None).unwrap();
    let mut set = ZoneSet::new();
    set.insert(zone);
    let questions: Vec<(Name, u16)> = [
        ("www.example.com.", rtype::A),
        ("WWW.EXAMPLE.COM.", rtype::A),
        ("example.com.", rtype::MX),
        ("alias.example.com.", rtype::A),
        ("nx.example.com.", rtype::A),
        ("www.example.com.", rtype::TXT),
        ("b.ent.example.com.", rtype::A),
        ("x.y.wild.example.com.", rtype::A),
        ("host.sub.example.com.", rtype::A),
        ("sub.example.com.", rtype::DS),
        ("www.example.org.", rtype::A),
    ]
    .into_iter()
    .map(|(n, t)| (n.parse().unwrap(), t))
    .collect();
    for opts in
        [LookupOptions::default(), LookupOptions { minimal_responses: true, dnssec_ok: true, ..Default::default() }]
    {
        let region = Region::new(GLOBAL);
        let mut answered = 0;
        for _ in 0..100 {
            for (name, t) in &questions {
                let ans = set.lookup(name.wire(), *t, opts);
                answered += ans.answer.len() + ans.authority.len();
            }
        }
        let stats = region.change();
        assert!(answered > 0);
        assert_eq!(stats.allocations, 0, "{stats:?}");
        assert_eq!(stats.reallocations, 0, "{stats:?}");
    }
}

/// Run without the test harness: its main thread allocates while a test runs, which a
/// process-wide allocation count would blame on the code under test.
fn main() {
    lookups_do_not_allocate();
    println!("test lookups_do_not_allocate ... ok");
}
