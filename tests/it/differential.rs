//! Differential test against NSD (Debian's `nsd`): the same zones, a generated corpus of
//! questions, and the rcode, flags and all three sections must match.
//!
//! Deliberate differences are listed in `DIFFERENCES` with the reason; none are needed today.
//!
//! Every question is also put to a second server of ours with the response cache off: the
//! octets must be the same, from the cache's first answers (misses: an answer is stored on
//! its second) and from its third (a hit, asked with the name's case changed, so only the
//! cache can answer it and the case must come from the question).
//! ANY is compared by rcode, flags and answer count only: RFC 8482 lets a server pick which
//! RRset to return.

use std::collections::BTreeSet;
use std::path::PathBuf;

use r53dns_zone::load_zone_file;
use r53dns_zone::name::Name;

use crate::support::dns::{Query, Response, ask, ask_tcp, tcp_exchange, udp_exchange};
use crate::support::nsd::Nsd;
use crate::support::server::{TestServer, data_dir};

/// The types every name of the corpus is asked about.
pub(crate) const TYPES: &[&str] = &[
    "A",
    "AAAA",
    "NS",
    "SOA",
    "MX",
    "TXT",
    "CNAME",
    "DS",
    "SRV",
    "PTR",
    "HINFO",
    "CAA",
    "SSHFP",
    "NAPTR",
    "DNAME",
    "TYPE65280",
    "TYPE999",
    "ANY",
];

fn flip_case(name: &str, seed: usize) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| if (i + seed).is_multiple_of(3) { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

/// The groups of zone files (in `tests/data/zones`) served together, each with the names
/// outside them that are asked about too; a test per group below.
pub(crate) const GROUPS: &[(&[&str], &[&str])] = &[
    (
        &["example.com.zone", "example.net.zone", "sub.example.com.zone"],
        &["example.org.", "com.", "net.", "org.", "nx.example.org.", "."],
    ),
    (&["rfc1034-root.zone"], &[]),
    (&["signed.example.zone"], &[]),
    (&["nsec3.example.zone", "optout.example.zone"], &[]),
];

/// Names worth asking about: every owner, a child and a grandchild of each (NXDOMAIN or
/// wildcard), case-flipped spellings, and some names outside every zone.
pub(crate) fn corpus_names(files: &[PathBuf], outside: &[&str]) -> Vec<String> {
    let mut names = BTreeSet::new();
    for f in files {
        let (zone, _) = load_zone_file(f, None).unwrap();
        for node in zone.nodes() {
            let n = node.name().to_text();
            let under = if n == "." { String::new() } else { n.clone() };
            names.insert(n.clone());
            names.insert(format!("nx.{under}"));
            names.insert(format!("a.b.{under}"));
            names.insert(flip_case(&n, names.len()));
        }
    }
    names.extend(outside.iter().map(|s| s.to_string()));
    names.into_iter().collect()
}

/// The questions of the corpus about the `i`-th name of [`corpus_names`]: every type of
/// [`TYPES`]; every fourth name also without EDNS (512-octet limit) and with a small buffer;
/// with DO for every fourth name (offset by one) and every name of the signed zone (RRSIGs
/// with the data, NSEC proofs in negative and wildcard answers, nothing more elsewhere).
pub(crate) fn questions(i: usize, name: &str) -> Vec<Query> {
    let mut all = Vec::new();
    for t in TYPES {
        all.push(Query::new(name, t));
        if i.is_multiple_of(4) {
            all.push(Query::new(name, t).no_edns());
            all.push(Query::new(name, t).bufsize(512));
        }
        if i % 4 == 1 || name.to_ascii_lowercase().contains("signed.example") {
            all.push(Query::new(name, t).dnssec_ok());
        }
    }
    all
}

/// Copies `zone_files` from `tests/data/zones` into `dir`: the copies and their apexes.
pub(crate) fn copy_zones(dir: &std::path::Path, zone_files: &[&str]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut apexes = Vec::new();
    for f in zone_files {
        let dst = dir.join(f);
        std::fs::copy(data_dir().join("zones").join(f), &dst).unwrap();
        let (zone, _) = load_zone_file(&dst, None).unwrap();
        apexes.push(zone.apex().to_text());
        files.push(dst);
    }
    (files, apexes)
}

fn compare(q: &Query, ours: &Response, theirs: &Response) -> Option<String> {
    let any = q.qtype == 255;
    let mut diffs = Vec::new();
    if ours.rcode != theirs.rcode {
        diffs.push(format!("rcode {} vs NSD {}", ours.rcode_text(), theirs.rcode_text()));
    }
    if ours.flags_text() != theirs.flags_text() {
        diffs.push(format!("flags '{}' vs NSD '{}'", ours.flags_text(), theirs.flags_text()));
    }
    if ours.opt.is_some() != theirs.opt.is_some() {
        diffs.push("OPT presence differs".into());
    }
    for s in ["answer", "authority", "additional"] {
        let (a, b) = (ours.section(s), theirs.section(s));
        if any && s == "answer" {
            if a.len() != b.len() && !a.is_empty() && !b.is_empty() {
                // Both answered with one RRset; sizes may differ by which set was chosen.
                continue;
            }
            if a.is_empty() != b.is_empty() {
                diffs.push(format!("ANY answer {a:?} vs NSD {b:?}"));
            }
            continue;
        }
        if any {
            continue;
        }
        if a != b {
            diffs.push(format!("{s}:\n      ours {a:#?}\n      NSD  {b:#?}"));
        }
    }
    (!diffs.is_empty()).then(|| {
        let name = Name::from_wire(&q.name).map(|n| n.to_text()).unwrap_or_default();
        format!("{name} {} edns={:?}: {}", r53dns_zone::rdata::type_to_string(q.qtype), q.edns, diffs.join("; "))
    })
}

/// One of our servers on `dir` with a response cache of `size` octets (0: none).
fn ours(dir: &std::path::Path, size: usize) -> TestServer {
    TestServer::with_spec(r53dns_app::config::Spec {
        server: r53dns_app::config::ServerSpec { response_cache_size: Some(size), ..Default::default() },
        zones: r53dns_app::config::ZonesSpec { dirs: vec![dir.to_owned()], files: vec![], ..Default::default() },
        ..Default::default()
    })
}

/// `q` with the case of every letter of its name swapped.
fn swapped(q: &Query) -> Query {
    let mut q = q.clone();
    for b in &mut q.name {
        if b.is_ascii_alphabetic() {
            *b ^= 0x20;
        }
    }
    q
}

/// The octets of the cached server `c` and the uncached `u` for `q` twice and for `q` with
/// the case swapped (the third time, from the cache), or what differs.
fn same_octets(c: &TestServer, u: &TestServer, q: &Query, tcp: bool) -> Option<String> {
    let exchange = |addr, q: &Query| {
        let raw = if tcp { tcp_exchange(addr, &q.to_wire()) } else { udp_exchange(addr, &q.to_wire()) };
        raw.unwrap_or_else(|| panic!("no answer from {addr} for {q:?}"))
    };
    for q in [q.clone(), q.clone(), swapped(q)] {
        let (cached, uncached) = (exchange(c.addr, &q), exchange(u.addr, &q));
        if cached != uncached {
            return Some(format!("cache on and off differ for {q:?} (tcp {tcp}):\n{cached:?}\n{uncached:?}"));
        }
    }
    None
}

fn run_group((zone_files, outside): (&[&str], &[&str])) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let (files, nsd_zones) = copy_zones(dir.path(), zone_files);
    let nsd_args: Vec<(String, &std::path::Path)> =
        nsd_zones.iter().cloned().zip(files.iter().map(PathBuf::as_path)).collect();
    let nsd = Nsd::start(&nsd_args);
    let ours_cached = ours(dir.path(), 1 << 20);
    let uncached = ours(dir.path(), 0);
    let ours = &ours_cached;
    let hits = r53dns_server::cache::counts().hits;
    let names = corpus_names(&files, outside);
    let mut failures = Vec::new();
    let mut asked = 0;
    for (i, name) in names.iter().enumerate() {
        for q in questions(i, name) {
            if let Some(d) = same_octets(ours, &uncached, &q, false) {
                failures.push(d);
            }
            let a = ask(ours.addr, &q);
            let b = ask(nsd.addr, &q);
            asked += 1;
            if let Some(d) = compare(&q, &a, &b) {
                failures.push(d);
            }
        }
        // TCP for a sample: the same answers without a size limit.
        if i % 8 == 0 {
            let q = Query::new(name, "A");
            if let Some(d) = compare(&q, &ask_tcp(ours.addr, &q), &ask_tcp(nsd.addr, &q)) {
                failures.push(format!("TCP {d}"));
            }
            if let Some(d) = same_octets(ours, &uncached, &q, true) {
                failures.push(format!("TCP {d}"));
            }
            asked += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {asked} answers differ from NSD:\n{}", failures.len(), failures.join("\n"));
    // The cache answered (every question was asked again in another case).
    assert!(r53dns_server::cache::counts().hits - hits >= asked as u64 / 2, "the response cache was not used");
    asked
}

#[test]
fn same_answers_as_nsd_for_example_zones() {
    let n = run_group(GROUPS[0]);
    assert!(n > 1000, "only {n} questions asked");
}

#[test]
fn same_answers_as_nsd_for_rfc1034_root() {
    let n = run_group(GROUPS[1]);
    assert!(n > 300, "only {n} questions asked");
}

#[test]
fn same_answers_as_nsd_for_a_presigned_zone() {
    // With DO: RRSIGs with their TTL lowered with the SOA's in negative answers (RFC 4034
    // §3), NSEC proofs, DS at delegations.
    let n = run_group(GROUPS[2]);
    assert!(n > 100, "only {n} questions asked");
}

#[test]
fn same_answers_as_nsd_for_nsec3_zones_with_and_without_opt_out() {
    // RFC 5155 §7.2 proofs with DO: closest encloser, next closer and wildcard for
    // NXDOMAIN; the name's own NSEC3 for NODATA; the cut's (or, with opt-out, the closest
    // provable encloser's) at an insecure delegation; the next closer for a wildcard answer.
    let n = run_group(GROUPS[3]);
    assert!(n > 100, "only {n} questions asked");
}
