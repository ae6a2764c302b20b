//! Answering a query, request bytes to response bytes, allocates nothing once the output
//! buffer exists.

use std::alloc::System;
use std::path::Path;

use r53dns_server::{AnswerConfig, Outcome, ResponseCache, Transport, answer, answer_with_cache};
use r53dns_zone::{Name, ZoneSet, load_zone_str};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ZONE: &str = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\n NS ns2.example.net.\n MX 10 mail\n\
ns A 192.0.2.1\n AAAA 2001:db8::1\nmail A 192.0.2.2\nwww A 192.0.2.3\nalias CNAME www\n*.wild A 192.0.2.4\n\
sub NS ns.sub\nns.sub A 192.0.2.6\n";

fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let n: Name = name.parse().unwrap();
    let mut m = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    m.extend_from_slice(n.wire());
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if edns {
        m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    }
    m
}

fn answering_does_not_allocate() {
    let (zone, _) = load_zone_str(ZONE, Path::new("t"), None).unwrap();
    let mut set = ZoneSet::new();
    set.insert(zone);
    let queries = [
        query("www.example.com.", 1, true),
        query("alias.example.com.", 1, false),
        query("example.com.", 15, true),
        query("nx.example.com.", 1, true),
        query("a.wild.example.com.", 1, true),
        query("x.sub.example.com.", 1, false),
        query("www.example.org.", 1, true),
    ];
    let cfg = AnswerConfig::default();
    let mut out = Vec::with_capacity(65535);
    let region = Region::new(GLOBAL);
    for _ in 0..200 {
        for q in &queries {
            assert_eq!(answer(&set, q, Transport::Udp, &cfg, None, &mut out), Outcome::Respond);
        }
    }
    let stats = region.change();
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");

    // Through the response cache: filling it (the first two rounds: an answer is stored on
    // its second miss) and answering from it.
    let cache = ResponseCache::new(1 << 20, cfg);
    let before = r53dns_server::cache::counts();
    let region = Region::new(GLOBAL);
    for _ in 0..200 {
        for q in &queries {
            assert_eq!(answer_with_cache(&cache, &set, q, Transport::Udp, &cfg, None, &mut out), Outcome::Respond);
        }
    }
    let stats = region.change();
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    let after = r53dns_server::cache::counts();
    // Six of the seven are stored (the REFUSED is not) and then found: from the third
    // round on, or a round or so later for two that share a bucket and replaced each
    // other's doorkeeper tag (a one-in-four chance per round).
    assert_eq!(after.inserts - before.inserts, 6, "{after:?}");
    assert!(after.hits - before.hits >= 6 * 190, "{after:?}");
    // The REFUSED is looked up too (a miss, then bypassed).
    assert_eq!((after.hits - before.hits) + (after.misses - before.misses), 7 * 200, "{after:?}");
}

/// With dnstap on, the serving path's capture (sampling, copying each query and response
/// into a preallocated frame, queueing it for the writer) allocates nothing either, and a
/// full buffer drops and counts instead.
fn capturing_does_not_allocate() {
    use r53dns_server::dnstap::{DnstapConfig, DnstapTarget, Dropped, Proto, Tap};
    let (zone, _) = load_zone_str(ZONE, Path::new("t"), None).unwrap();
    let mut set = ZoneSet::new();
    set.insert(zone);
    let q = query("www.example.com.", 1, true);
    let cfg = AnswerConfig::default();
    let target = Some(DnstapTarget::Unix("/nonexistent".into()));
    let tap = Tap::new(DnstapConfig { target, buffer: 1024, ..DnstapConfig::default() }, b"ns1", b"r53dns");
    tap.assume_connected();
    let client = std::net::SocketAddr::from(([192, 0, 2, 7], 40000));
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], 53));
    let mut out = Vec::with_capacity(65535);
    let region = Region::new(GLOBAL);
    for _ in 0..1000 {
        let at = std::time::SystemTime::now();
        if tap.sampled() {
            tap.query(Proto::Udp, client, server, at, &q);
        }
        assert_eq!(answer(&set, &q, Transport::Udp, &cfg, None, &mut out), Outcome::Respond);
        tap.response(Proto::Udp, client, server, at, std::time::SystemTime::now(), &out);
    }
    let stats = region.change();
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    // 1024 small frames and 16 large ones; the other 960 were dropped and counted.
    assert_eq!(tap.queued(), 1040);
    assert_eq!(tap.counts().dropped[Dropped::Full as usize], 960);
}

/// Run without the test harness: its main thread allocates while a test runs, which a
/// process-wide allocation count would blame on the code under test.
fn main() {
    answering_does_not_allocate();
    println!("test answering_does_not_allocate ... ok");
    capturing_does_not_allocate();
    println!("test capturing_does_not_allocate ... ok");
}
