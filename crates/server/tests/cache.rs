//! The response cache gives the octets `answer` gives, question by question, whatever the
//! case of the name, the header bits, EDNS, DO, NSID, the size limit or the transport.

use std::path::Path;

use r53dns_server::{AnswerConfig, Outcome, ResponseCache, Transport, answer, answer_with_cache, cache};
use r53dns_zone::{Name, ZoneSet, load_zone_str};

const ZONE: &str = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\n NS ns2.example.net.\n MX 10 mail\n\
ns A 192.0.2.1\n AAAA 2001:db8::1\nmail A 192.0.2.2\nwww A 192.0.2.3\nalias CNAME www\n*.wild A 192.0.2.4\n\
sub NS ns.sub\nns.sub A 192.0.2.6\nold DNAME example.net.\nchain CNAME alias\n";

/// A query: `flags` is the second header word (RD, CD...), `edns` the UDP size and DO and
/// NSID bits when EDNS is sent.
fn query(id: u16, flags: u16, name: &str, qtype: u16, edns: Option<(u16, bool, bool)>) -> Vec<u8> {
    let n: Name = name.parse().unwrap();
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    m.extend_from_slice(n.wire());
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if let Some((size, dnssec_ok, nsid)) = edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
        if nsid {
            m.extend_from_slice(&[0, 4, 0, 3, 0, 0]);
        } else {
            m.extend_from_slice(&[0, 0]);
        }
    }
    m
}

fn zones() -> ZoneSet {
    let mut text = ZONE.to_owned();
    // A name whose answer needs TCP or a large EDNS size.
    for i in 0..40 {
        text.push_str(&format!("big TXT \"{i:03} {}\"\n", "x".repeat(40)));
    }
    let (zone, _) = load_zone_str(&text, Path::new("t"), None).unwrap();
    let mut set = ZoneSet::new();
    set.insert(zone);
    set
}

#[test]
fn cached_answers_are_the_answers() {
    let set = zones();
    let cfg = AnswerConfig { nsid: b"ns-a", ..AnswerConfig::default() };
    // 16 MiB: 7 943 buckets of eight slots for the 770 answers, so a bucket that overflows
    // (the hash is seeded at random) is rare; an overflow evicts, which is allowed for below.
    let c = ResponseCache::new(16 << 20, cfg);
    let (evictions_before, first_before) = (cache::counts().evictions, cache::counts().first_sighting);
    let names = [
        "www.example.com.",
        "WwW.ExAmPlE.CoM.",
        "alias.example.com.",
        "chain.EXAMPLE.com.",
        "example.com.",
        "nx.example.com.",
        "x.Wild.example.com.",
        "host.sub.example.com.",
        "a.old.example.com.",
        "big.example.com.",
        "ns.example.com.",
        "www.example.org.",
    ];
    let edns = [
        None,
        Some((512, false, false)),
        Some((1232, true, false)),
        Some((4096, false, true)),
        Some((700, true, true)),
    ];
    let mut want = Vec::with_capacity(65535);
    let mut got = Vec::with_capacity(65535);
    let mut hits = 0;
    let mut id = 1u16;
    for round in 0..4 {
        for name in names {
            for qtype in [1, 28, 15, 16, 255, 2, 6] {
                for e in edns {
                    for transport in [Transport::Udp, Transport::Tcp] {
                        // Header bits and ID change from query to query; the answer keeps them.
                        let flags = [0x0100, 0x0110, 0x0000][(usize::from(id) + round) % 3];
                        id = id.wrapping_add(7919);
                        let q = query(id, flags, name, qtype, e);
                        assert_eq!(answer(&set, &q, transport, &cfg, None, &mut want), Outcome::Respond);
                        let before = cache::counts().hits;
                        let o = answer_with_cache(&c, &set, &q, transport, &cfg, None, &mut got);
                        assert_eq!(o, Outcome::Respond);
                        assert_eq!(got, want, "{name} {qtype} {e:?} {transport:?} round {round}");
                        hits += cache::counts().hits - before;
                    }
                }
            }
        }
    }
    // Every question but the REFUSED ones is stored on its second miss and found from the
    // third round on (other tests in this process may add hits, never remove them), but for
    // answers evicted from a full bucket (each costs at most the two later rounds' hits of
    // one answer) and questions whose doorkeeper tag another of their bucket replaced (each
    // such first sighting after the first costs one round's hit).
    let questions = 11 * 7 * 5 * 2;
    let evictions = cache::counts().evictions - evictions_before;
    let again = (cache::counts().first_sighting - first_before).saturating_sub(questions);
    assert!(hits + 2 * evictions + again >= 2 * questions, "{hits} hits, {evictions} evictions, {again} tags lost");
    assert!(hits >= questions, "{hits} hits of {questions} questions");
}

#[test]
fn another_zone_set_or_other_settings_are_not_answered_from_the_cache() {
    let set = zones();
    let cfg = AnswerConfig::default();
    let c = ResponseCache::new(1 << 20, cfg);
    let q = query(1, 0, "www.example.com.", 1, None);
    let mut out = Vec::with_capacity(4096);
    answer_with_cache(&c, &set, &q, Transport::Udp, &cfg, None, &mut out);
    // The same zones changed: another id, another answer.
    let mut changed = set.clone();
    let (zone, _) = load_zone_str(&ZONE.replace("192.0.2.3", "192.0.2.99"), Path::new("t"), None).unwrap();
    changed.insert(zone);
    assert_ne!(changed.id(), set.id());
    answer_with_cache(&c, &changed, &q, Transport::Udp, &cfg, None, &mut out);
    assert!(out.windows(4).any(|w| w == [192, 0, 2, 99]));
    // Other settings: answered afresh.
    let minimal = AnswerConfig { minimal_responses: true, ..cfg };
    let mut want = Vec::new();
    answer(&set, &q, Transport::Udp, &minimal, None, &mut want);
    answer_with_cache(&c, &set, &q, Transport::Udp, &minimal, None, &mut out);
    assert_eq!(out, want);
    assert_eq!(u16::from_be_bytes([out[8], out[9]]), 0, "no authority with minimal responses");
}
