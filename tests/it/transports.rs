//! The differential corpus (`differential.rs`: every group's names, types, EDNS on and off,
//! small buffers, DO) put to one r53dns over UDP, TCP, DNS over TLS, DNS over HTTPS (HTTP/2,
//! POST and GET) and DNS over QUIC by another implementation, dnspython (`transports.py`,
//! one process a transport, one connection reused), and the octets compared. One server holds
//! the zones of every group; the corpus (some 20,000 questions) is sampled deterministically
//! to bound the run: every eighth question and the first of each kind of answer.
//!
//! TCP is the reference. DoT, DoH and DoQ must send the very same octets but the message ID
//! (RFC 9250 §4.2.1: 0 over QUIC). r53dns pads nothing (RFC 8467 pads only answers to padded
//! queries, and these are not), so no option is set aside. Over UDP the answer is the TCP one
//! when that fits the client's buffer; when it does not, it is a prefix of it section by
//! section within the limit: TC set when an answer or required authority record is missing
//! (RFC 2181 §9), additional records dropped without it (RFC 9471).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use r53dns_zone::name::Name;
use r53dns_zone::rdata::type_to_string;

use crate::differential::{GROUPS, TYPES, copy_zones, corpus_names, questions};
use crate::encrypted::venv_python;
use crate::support::dns::{Query, Response, Rr, parse};
use crate::support::server::Binary;
use crate::support::tls::{addr_of, certificate};

/// The transports dnspython asks over, as `transports.py` names them; TCP first (the
/// reference).
const TRANSPORTS: &[&str] = &["tcp", "udp", "dot", "doh-post", "doh-get", "doq"];

/// How long all the transports together may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// Every question of every group of the differential corpus, each once.
fn corpus(dir: &Path) -> Vec<Query> {
    let mut seen = std::collections::HashSet::new();
    let mut all = Vec::new();
    for (zone_files, outside) in GROUPS {
        let (files, _) = copy_zones(dir, zone_files);
        for (i, name) in corpus_names(&files, outside).iter().enumerate() {
            all.extend(questions(i, name).into_iter().filter(|q| seen.insert(q.to_wire())));
        }
    }
    all
}

/// Every `STRIDE`-th question of the corpus is put over every transport, and besides those
/// the first of each kind (see [`sample`]).
const STRIDE: usize = 8;

/// A deterministic sample of `all`: every [`STRIDE`]-th question and the first question of
/// each kind of answer `udp` gives it (type, EDNS and DO, rcode, flags, whether the answer
/// holds data, a CNAME or a DNAME, whether it is a referral, a made-up name), so every kind
/// the corpus draws is compared.
fn sample(all: Vec<Query>, udp: std::net::SocketAddr) -> Vec<Query> {
    let mut kinds = std::collections::HashSet::new();
    all.into_iter()
        .enumerate()
        .filter(|(n, q)| {
            let r = crate::support::dns::ask(udp, q);
            let has = |rrs: &[Rr], t: u16| rrs.iter().any(|r| r.rtype == t);
            let name = Name::from_wire(&q.name).map(|n| n.to_lowercase().to_text()).unwrap_or_default();
            let kind = (
                q.qtype,
                q.edns,
                r.rcode,
                r.flags,
                r.answer.is_empty(),
                has(&r.answer, 5),
                has(&r.answer, 39),
                has(&r.authority, 2),
                name.starts_with("nx.") || name.starts_with("a.b."),
            );
            kinds.insert(kind) || n % STRIDE == 0
        })
        .map(|(_, q)| q)
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (s.len().is_multiple_of(2) && s.is_ascii())
        .then(|| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect())
        .flatten()
}

/// `transports.py` asking every query of `queries` over `transport` of `server`.
fn client(transport: &str, server: std::net::SocketAddr, ca: &str, queries: &Path, out: &Path) -> Child {
    Command::new(venv_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/transports.py"))
        .args([transport, &server.ip().to_string(), &server.port().to_string(), ca])
        .args([queries, out])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dnspython with aioquic and httpx2 must be installed in the test venv (tests/run-all.sh)")
}

/// The question of `q` as text.
fn question(q: &Query) -> String {
    let name = Name::from_wire(&q.name).map(|n| n.to_text()).unwrap_or_default();
    let edns = match q.edns {
        None => "no EDNS".to_owned(),
        Some((size, dnssec_ok, _)) => format!("EDNS {size}{}", if dnssec_ok { " DO" } else { "" }),
    };
    format!("{name} {} ({edns})", type_to_string(q.qtype))
}

/// One record as text, the owner as written (case kept).
fn record(r: &Rr) -> String {
    let owner = Name::from_wire(&r.owner).map(|n| n.to_text()).unwrap_or_default();
    let rdata = r53dns_zone::rdata::rdata_to_text(r.rtype, &r.rdata);
    format!("{owner} {} {} {rdata}", r.ttl, type_to_string(r.rtype))
}

/// A response decoded for a report: header, OPT and every record in order.
fn decoded(raw: &[u8]) -> String {
    match parse(raw) {
        Err(e) => format!("unparsable ({e}): {}", hex(raw)),
        Ok(r) => {
            let mut s =
                format!("id {} {} [{}] opt {:?} {} octets\n", r.id, r.rcode_text(), r.flags_text(), r.opt, raw.len());
            for (what, rrs) in [("an", &r.answer), ("au", &r.authority), ("ad", &r.additional)] {
                for rr in rrs {
                    s.push_str(&format!("        {what} {}\n", record(rr)));
                }
            }
            s
        }
    }
}

/// What differs between `a` (over `transport`) and the TCP answer `b`, octets and decoded.
fn diff(transport: &str, a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    format!("first differing octet {at}\n      {transport}: {}      tcp: {}", decoded(a), decoded(b))
}

/// The UDP limit of `q` (`handler.rs`: the client's buffer, at least 512, at most 1232).
fn udp_limit(q: &Query) -> usize {
    q.edns.map_or(512, |(size, _, _)| usize::from(size.clamp(512, 1232)))
}

/// Whether the UDP answer `udp` is what RFC 2181 §9 and RFC 9471 allow in place of the TCP
/// answer `tcp` for `q`; `None` when it is.
fn udp_ok(q: &Query, udp: &[u8], tcp: &[u8]) -> Option<String> {
    if udp == tcp {
        return (udp.len() > udp_limit(q)).then(|| format!("{} octets over UDP (limit {})", udp.len(), udp_limit(q)));
    }
    let (Ok(u), Ok(t)) = (parse(udp), parse(tcp)) else { return Some("unparsable".into()) };
    let tc = u.flag("tc");
    let problem = if tcp.len() <= udp_limit(q) {
        Some("differs though the TCP answer fits the UDP limit")
    } else if udp.len() > udp_limit(q) {
        Some("over the UDP limit")
    } else if u.flags & !0x0200 != t.flags || u.rcode != t.rcode || u.opt != t.opt || u.question != t.question {
        Some("header, OPT or question differ beyond TC")
    } else if !(t.answer.starts_with(&u.answer)
        && t.authority.starts_with(&u.authority)
        && t.additional.starts_with(&u.additional))
    {
        Some("a section is not a prefix of the TCP one")
    } else if !tc && (u.answer.len() != t.answer.len() || u.authority.len() != t.authority.len()) {
        Some("answer or authority records missing without TC")
    } else if tc && u.answer.len() == t.answer.len() && u.authority.len() == t.authority.len() {
        Some("TC set with answer and authority whole")
    } else {
        None
    };
    problem.map(|p| format!("{p} (limit {})", udp_limit(q)))
}

/// What kinds of answer the corpus drew, from the TCP answers (and UDP for truncation).
#[derive(Debug, Default)]
struct Kinds {
    noerror: usize,
    nxdomain: usize,
    nodata: usize,
    referral: usize,
    cname: usize,
    dname: usize,
    wildcard: usize,
    signed: usize,
    truncated: usize,
    udp_short: usize,
}

impl Kinds {
    fn add(&mut self, q: &Query, r: &Response) {
        let has = |rrs: &[Rr], t: u16| rrs.iter().any(|r| r.rtype == t);
        let name = Name::from_wire(&q.name).map(|n| n.to_lowercase().to_text()).unwrap_or_default();
        match r.rcode {
            0 if !r.answer.is_empty() => self.noerror += 1,
            0 if r.flag("aa") => self.nodata += 1,
            0 if has(&r.authority, 2) => self.referral += 1,
            3 => self.nxdomain += 1,
            _ => {}
        }
        self.cname += usize::from(has(&r.answer, 5));
        self.dname += usize::from(has(&r.answer, 39));
        self.signed += usize::from(has(&r.answer, 46));
        // A name the zones do not hold, answered with data: a wildcard's.
        let made_up = name.starts_with("nx.") || name.starts_with("a.b.");
        self.wildcard += usize::from(made_up && r.rcode == 0 && !r.answer.is_empty() && !has(&r.answer, 39));
    }
}

/// The address of `b` that serves `transport`.
fn listener(b: &Binary, transport: &str) -> std::net::SocketAddr {
    match transport {
        "tcp" | "udp" => b.addr.unwrap(),
        "dot" => addr_of(b, "serving DNS over TLS"),
        "doq" => addr_of(b, "serving DNS over QUIC"),
        _ => addr_of(b, "serving DNS over HTTPS"),
    }
}

/// `queries` put to `b` over every one of `transports` at once by `transports.py`, each its
/// own process, all bounded together by [`DEADLINE`] from `started`: each transport's
/// answers (a line a query, in the order of `transports`), and when each was done.
fn ask_over(
    b: &Binary,
    cert: &str,
    dir: &Path,
    transports: &[&'static str],
    queries: &[Query],
    started: Instant,
) -> (Vec<(&'static str, Vec<String>)>, Vec<String>) {
    let file = dir.join("queries");
    std::fs::write(&file, queries.iter().map(|q| hex(&q.to_wire()) + "\n").collect::<String>()).unwrap();
    // Every transport at once, each its own process; all bounded together.
    let mut running: Vec<(&'static str, Child, PathBuf)> = transports
        .iter()
        .map(|t| {
            let out = dir.join(format!("{t}.out"));
            (*t, client(t, listener(b, t), cert, &file, &out), out)
        })
        .collect();
    let mut answers: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut took = Vec::new();
    while !running.is_empty() {
        if started.elapsed() > DEADLINE {
            let progress: Vec<String> = running
                .iter_mut()
                .map(|(t, child, out)| {
                    let _ = child.kill();
                    let _ = child.wait();
                    format!("{t}: {} answers", std::fs::read_to_string(out).unwrap_or_default().lines().count())
                })
                .collect();
            panic!(
                "{} questions: not all answered within {DEADLINE:?} ({}; {})",
                queries.len(),
                took.join(", "),
                progress.join(", ")
            );
        }
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].1.try_wait().unwrap() {
                let (t, mut child, out) = running.swap_remove(i);
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "{t}: {err}");
                let lines: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().map(str::to_owned).collect();
                assert_eq!(lines.len(), queries.len(), "{t}: {err}");
                took.push(format!("{t} {:.1}s", started.elapsed().as_secs_f64()));
                answers.push((t, lines));
            } else {
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    answers.sort_by_key(|(t, _)| transports.iter().position(|x| x == t));
    (answers, took)
}

#[test]
fn the_differential_corpus_gets_the_same_octets_over_every_transport() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let queries = corpus(&zones);
    let (cert, key) = certificate(dir.path(), "server");
    let zone_dir = zones.display().to_string();
    let b = Binary::serve(
        &[
            &["--zone-dir", &zone_dir][..],
            &crate::support::tls::dot(&cert, &key)[..],
            &["--https-listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"][..],
        ]
        .concat(),
    );
    let corpus_size = queries.len();
    let queries = sample(queries, b.addr.unwrap());
    let (answers, took) = ask_over(&b, &cert, dir.path(), TRANSPORTS, &queries, started);
    let mut failures = Vec::new();
    let mut kinds = Kinds::default();
    for (n, q) in queries.iter().enumerate() {
        let mut raws = Vec::new();
        for (t, lines) in &answers {
            match unhex(&lines[n]) {
                // The ID set equal (RFC 9250 §4.2.1: 0 over QUIC).
                Some(mut raw) if raw.len() >= 12 => {
                    raw[..2].copy_from_slice(&q.id.to_be_bytes());
                    raws.push((*t, raw));
                }
                _ => failures.push(format!("{} over {t}: {}", question(q), lines[n])),
            }
        }
        if raws.len() != TRANSPORTS.len() {
            continue;
        }
        let tcp = &raws[0].1;
        let Ok(reference) = parse(tcp) else {
            failures.push(format!("{}: unparsable TCP answer {}", question(q), hex(tcp)));
            continue;
        };
        kinds.add(q, &reference);
        for (t, raw) in &raws[1..] {
            if *t == "udp" {
                if raw != tcp {
                    kinds.udp_short += 1;
                    kinds.truncated += usize::from(raw[2] & 0x02 != 0);
                }
                if let Some(p) = udp_ok(q, raw, tcp) {
                    failures.push(format!("{} over UDP: {p}: {}", question(q), diff(t, raw, tcp)));
                }
            } else if raw != tcp {
                failures.push(format!("{} over {t}: {}", question(q), diff(t, raw, tcp)));
            }
        }
    }
    eprintln!(
        "{} questions of {corpus_size} over {} transports in {:.1}s ({}): {kinds:?}",
        queries.len(),
        TRANSPORTS.len(),
        started.elapsed().as_secs_f64(),
        took.join(", ")
    );
    let shown: Vec<&String> = failures.iter().take(20).collect();
    assert!(
        failures.is_empty(),
        "{} of {} answers differ between transports; the first:\n{}",
        failures.len(),
        queries.len() * (TRANSPORTS.len() - 1),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    // Every type, and every kind of answer, was asked and compared.
    for t in TYPES {
        let code = r53dns_zone::rdata::type_from_str(t).unwrap();
        assert!(queries.iter().any(|q| q.qtype == code), "no {t} question");
    }
    // (Nothing is REFUSED: with the root zone served every name is in some zone.)
    let k = &kinds;
    let all = [k.noerror, k.nxdomain, k.nodata, k.referral, k.cname, k.dname, k.wildcard, k.signed, k.truncated];
    assert!(all.iter().all(|n| *n > 0), "a kind of answer is missing: {kinds:?}");
}

/// DNS over QUIC sends our octets, as TCP does, but for the Message ID 0 (RFC 9250 §4.2.1):
/// not an encoding of its own, which compressed fewer names (a wildcard's TXT answer was 177
/// octets over QUIC and 164 over TCP).
#[test]
fn dns_over_quic_sends_the_octets_tcp_sends() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let zone = crate::support::server::data_dir().join("zones/example.com.zone").display().to_string();
    let b = Binary::serve(&["--zone", &zone, "--tls-cert", &cert, "--tls-key", &key, "--quic-listen", "127.0.0.1:0"]);
    let queries = [
        Query::new("*.ExaMplE.cOm.", "TXT").bufsize(512),
        Query::new("www.example.com.", "A"),
        Query::new("alias.example.com.", "A").no_edns(),
        Query::new("example.com.", "MX").dnssec_ok(),
        Query::new("nothere.example.com.", "A"),
    ];
    let (answers, _) = ask_over(&b, &cert, dir.path(), &["tcp", "doq"], &queries, started);
    for (n, q) in queries.iter().enumerate() {
        let tcp = unhex(&answers[0].1[n]).unwrap_or_else(|| panic!("{}: {}", question(q), answers[0].1[n]));
        let doq = unhex(&answers[1].1[n]).unwrap_or_else(|| panic!("{}: {}", question(q), answers[1].1[n]));
        assert_eq!(&doq[..2], &[0, 0], "{}: the Message ID over QUIC", question(q));
        assert_eq!(doq[2..], tcp[2..], "{}: {}", question(q), diff("doq", &doq, &tcp));
    }
}
