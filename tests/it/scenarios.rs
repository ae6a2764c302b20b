//! Query scenarios as data files (`tests/data/scenarios/*.scn`): zones, then cases of
//! question → expected rcode, flags and sections. `UPDATE_EXPECT=1` rewrites the expectations
//! from what the server answers (review the diff before committing it).
//!
//! Format:
//! ```text
//! zone <file under tests/data/zones>
//! query <name> <type> [+noedns] [+do] [+bufsize=N] [+tcp] [+rd] [+cd] [+class=N] [+version=N] [+opcode=N]
//! rcode NOERROR
//! flags qr aa
//! edns udp=1232 version=0 do=0   (or `none`)
//! answer            (then one record per line, absolute names, TTL and class given)
//! authority
//! additional
//! ```
//! A section not listed must be empty. `#` starts a comment line.

use std::fmt::Write as _;
use std::path::Path;

use r53dns_zone::Name;
use r53dns_zone::zonefile::read_str;

use crate::support::dns::{Query, Response, Rr, parse, tcp_exchange, udp_exchange};
use crate::support::server::{Binary, TestServer, data_dir};

struct Case {
    /// Comment lines just above the query, kept when expectations are rewritten.
    comments: Vec<String>,
    query_line: String,
    query: Query,
    tcp: bool,
    expect: Vec<(String, Vec<String>)>,
}

fn parse_query(line: &str) -> (Query, bool) {
    let mut words = line.split_whitespace();
    let name = words.next().expect("query needs a name");
    let qtype = words.next().expect("query needs a type");
    let mut q = Query::new(name, qtype);
    let mut tcp = false;
    for opt in words {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        match k {
            "+noedns" => q = q.no_edns(),
            "+do" => q = q.dnssec_ok(),
            "+bufsize" => q = q.bufsize(v.parse().unwrap()),
            "+tcp" => tcp = true,
            "+rd" => q.rd = true,
            "+cd" => q.cd = true,
            "+class" => q.qclass = v.parse().unwrap(),
            "+opcode" => q.opcode = v.parse().unwrap(),
            "+version" => {
                let e = q.edns.unwrap();
                q.edns = Some((e.0, e.1, v.parse().unwrap()));
            }
            other => panic!("unknown query option {other}"),
        }
    }
    (q, tcp)
}

fn canonical_records(lines: &[String]) -> Vec<String> {
    if lines.is_empty() {
        return vec![];
    }
    let text = lines.join("\n") + "\n";
    let recs = read_str(&text, Path::new("expected"), Some(&Name::root()))
        .unwrap_or_else(|e| panic!("bad expected record: {e}"));
    let mut v: Vec<String> = recs
        .into_iter()
        .map(|r| {
            Rr { owner: r.owner.wire().to_vec(), rtype: r.rtype, class: 1, ttl: r.ttl, rdata: r.rdata }.canonical()
        })
        .collect();
    v.sort();
    v
}

fn observed(r: &Response) -> Vec<(String, Vec<String>)> {
    vec![
        ("rcode".into(), vec![r.rcode_text()]),
        ("flags".into(), vec![r.flags_text()]),
        (
            "edns".into(),
            vec![match r.opt {
                None => "none".to_owned(),
                Some((udp, version, dnssec_ok)) => {
                    format!("udp={udp} version={version} do={}", u8::from(dnssec_ok))
                }
            }],
        ),
        ("answer".into(), r.section("answer")),
        ("authority".into(), r.section("authority")),
        ("additional".into(), r.section("additional")),
    ]
}

fn run_file(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let mut zones = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    let mut section: Option<String> = None;
    let mut header_lines = Vec::new();
    let mut pending = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            if t.starts_with('#') {
                pending.push(line.to_owned());
            }
            continue;
        }
        let (word, rest) = t.split_once(' ').unwrap_or((t, ""));
        match word {
            "zone" => {
                zones.push(rest.to_owned());
                header_lines.append(&mut pending);
                header_lines.push(line.to_owned());
            }
            "query" => {
                let (query, tcp) = parse_query(rest);
                let comments = std::mem::take(&mut pending);
                cases.push(Case { comments, query_line: rest.to_owned(), query, tcp, expect: Vec::new() });
                section = None;
            }
            "rcode" | "flags" | "edns" => {
                cases.last_mut().unwrap().expect.push((word.to_owned(), vec![rest.to_owned()]));
            }
            "answer" | "authority" | "additional" => {
                cases.last_mut().unwrap().expect.push((word.to_owned(), Vec::new()));
                section = Some(word.to_owned());
            }
            _ => {
                assert!(section.is_some(), "{}: unexpected line {t}", path.display());
                cases.last_mut().unwrap().expect.last_mut().unwrap().1.push(t.to_owned());
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    for z in &zones {
        std::fs::copy(data_dir().join("zones").join(z), tmp.path().join(z)).unwrap();
    }
    // Answered with the response cache on (the case's answer is the cache's second, a
    // hit) and off: the octets must be the same.
    let with_cache = |size: usize| {
        TestServer::with_spec(r53dns_app::config::Spec {
            server: r53dns_app::config::ServerSpec { response_cache_size: Some(size), ..Default::default() },
            zones: r53dns_app::config::ZonesSpec {
                dirs: vec![tmp.path().to_owned()],
                files: vec![],
                ..Default::default()
            },
            ..Default::default()
        })
    };
    let (server, uncached) = (with_cache(1 << 20), with_cache(0));
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut rewritten = header_lines.join("\n").trim_end().to_owned();
    let mut failures = Vec::new();
    for case in &cases {
        let exchange = |addr| {
            let wire = case.query.to_wire();
            let raw = if case.tcp { tcp_exchange(addr, &wire) } else { udp_exchange(addr, &wire) };
            raw.unwrap_or_else(|| panic!("no answer from {addr} to {}", case.query_line))
        };
        let (first, off, second) = (exchange(server.addr), exchange(uncached.addr), exchange(server.addr));
        assert_eq!(first, off, "cache on and off differ: {}", case.query_line);
        assert_eq!(second, off, "a cached answer differs: {}", case.query_line);
        let r = parse(&second).unwrap_or_else(|e| panic!("unparsable answer to {}: {e}", case.query_line));
        assert_eq!(r.id, case.query.id);
        // The question comes back byte for byte, case included (0x20).
        if r.rcode != 1 {
            assert_eq!(
                r.question,
                vec![(case.query.name.clone(), case.query.qtype, case.query.qclass)],
                "{}",
                case.query_line
            );
        }
        let got = observed(&r);
        if update {
            rewritten.push('\n');
            for c in &case.comments {
                let _ = write!(rewritten, "\n{c}");
            }
            let _ = write!(rewritten, "\nquery {}", case.query_line);
            for (k, v) in &got {
                match k.as_str() {
                    "rcode" | "flags" | "edns" => {
                        let _ = write!(rewritten, "\n{k} {}", v[0]);
                    }
                    _ if v.is_empty() => {}
                    _ => {
                        let _ = write!(rewritten, "\n{k}");
                        for l in v {
                            let _ = write!(rewritten, "\n    {l}");
                        }
                    }
                }
            }
            continue;
        }
        for (k, v) in &got {
            let want = match case.expect.iter().find(|(ek, _)| ek == k) {
                Some((_, lines)) if ["rcode", "flags", "edns"].contains(&k.as_str()) => lines.clone(),
                Some((_, lines)) => canonical_records(lines),
                None if ["rcode", "flags", "edns"].contains(&k.as_str()) => {
                    panic!("{}: case '{}' lacks {k}", path.display(), case.query_line)
                }
                None => vec![],
            };
            if &want != v {
                failures.push(format!("query {}\n  {k}: expected {want:#?}\n  got {v:#?}", case.query_line));
            }
        }
    }
    if update {
        std::fs::write(path, rewritten + "\n").unwrap();
    }
    assert!(failures.is_empty(), "{}:\n{}", path.display(), failures.join("\n"));
    cases.len()
}

#[test]
fn scenario_files() {
    let mut files: Vec<_> = std::fs::read_dir(data_dir().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut total = 0;
    for f in &files {
        total += run_file(f);
    }
    assert!(total > 50, "only {total} scenario cases");
}

#[test]
fn the_response_cache_keeps_to_its_budget_and_is_counted() {
    // 16 KiB: seven buckets of eight 256-octet slots and their tags (2 112 octets a bucket).
    let zones = data_dir().join("zones").display().to_string();
    let b = Binary::serve(&["--zone-dir", &zones, "--response-cache-size", "16384"]);
    let addr = b.addr.unwrap();
    assert_eq!(b.metric("r53dns_response_cache_bytes"), 7 * 2112);
    let www = Query::new("www.example.com.", "A");
    let want = udp_exchange(addr, &www.to_wire()).unwrap();
    for _ in 0..10 {
        assert_eq!(udp_exchange(addr, &www.to_wire()).unwrap(), want);
    }
    // Stored on the second miss, found from the third question on.
    let hits = b.metric("r53dns_response_cache_lookups_total{result=\"hit\"}");
    assert!(hits >= 9, "{hits}");
    assert_eq!(b.metric("r53dns_response_cache_inserts_total"), 1);
    // Under the zone's wildcard (TXT only): a NODATA each.
    let nodata = |i: usize| {
        let q = Query::new(&format!("n{i}.example.com."), "A");
        let r = parse(&udp_exchange(addr, &q.to_wire()).unwrap()).unwrap();
        assert_eq!((r.rcode, r.answer.len(), r.authority.len()), (0, 0, 1));
    };
    // 200 questions asked once each, as in a random-subdomain flood: none is stored, and
    // the answer asked again and again is still found.
    (0..200).for_each(nodata);
    assert!(b.metric("r53dns_response_cache_skipped_total{reason=\"first_sighting\"}") >= 200);
    assert_eq!(b.metric("r53dns_response_cache_inserts_total"), 1);
    assert_eq!(udp_exchange(addr, &www.to_wire()).unwrap(), want);
    assert_eq!(b.metric("r53dns_response_cache_lookups_total{result=\"hit\"}"), hits + 1);
    // 200 other questions asked twice each: far more than 56 slots hold, so stored answers
    // are given up, and the table does not grow.
    for i in 200..400 {
        nodata(i);
        nodata(i);
    }
    assert!(b.metric("r53dns_response_cache_lookups_total{result=\"miss\"}") >= 602);
    assert!(b.metric("r53dns_response_cache_inserts_total") >= 201);
    assert!(b.metric("r53dns_response_cache_evictions_total") >= 201 - 56);
    assert_eq!(b.metric("r53dns_response_cache_bytes"), 7 * 2112);
    // An EDNS client subnet bypasses the cache.
    let mut ecs = Query::new("www.example.com.", "A").no_edns().to_wire();
    ecs[11] = 1;
    ecs.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 11, 0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2]);
    let r = parse(&udp_exchange(addr, &ecs).unwrap()).unwrap();
    assert_eq!((r.rcode, r.answer.len()), (0, 1));
    assert!(b.metric("r53dns_response_cache_skipped_total{reason=\"bypassed\"}") >= 1);
    // Off: no table, nothing counted.
    let off = Binary::serve(&["--zone-dir", &zones, "--response-cache-size", "0"]);
    udp_exchange(off.addr.unwrap(), &www.to_wire()).unwrap();
    udp_exchange(off.addr.unwrap(), &www.to_wire()).unwrap();
    assert_eq!(off.metric("r53dns_response_cache_bytes"), 0);
    assert_eq!(off.metric("r53dns_response_cache_lookups_total{result=\"hit\"}"), 0);
}
