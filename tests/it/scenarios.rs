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

use crate::support::dns::{Query, Response, Rr, ask, ask_tcp};
use crate::support::server::{TestServer, data_dir};

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
    let server = TestServer::start_dir(tmp.path());
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut rewritten = header_lines.join("\n").trim_end().to_owned();
    let mut failures = Vec::new();
    for case in &cases {
        let r = if case.tcp { ask_tcp(server.addr, &case.query) } else { ask(server.addr, &case.query) };
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
