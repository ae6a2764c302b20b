//! r53dns as a secondary (RFC 5936 AXFR, RFC 1995 IXFR, RFC 1996 NOTIFY, RFC 8945 TSIG):
//! following NSD and Knot from Debian and another r53dns, answering as its primary does; and
//! a fleet of followers behind one Route53 syncer that make no Route53 calls themselves.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::route53::eventually;
use crate::support::dns::{Query, ask};
use crate::support::knot::Knot;
use crate::support::moto::{FaultProxy, Moto, Seeder, aws_env, rrset};
use crate::support::nsd::{Nsd, free_port};
use crate::support::server::{Binary, data_dir};

const SECRET: &str = "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY=";

/// Questions covering the corner cases of the test zone.
const QUESTIONS: [(&str, &str); 12] = [
    ("example.com.", "SOA"),
    ("example.com.", "NS"),
    ("www.example.com.", "A"),
    ("alias.example.com.", "A"),
    ("x.wild.ent.example.com.", "A"),
    ("x.dn.example.com.", "A"),
    ("host.sub.example.com.", "A"),
    ("txt.example.com.", "TXT"),
    ("nx.c.ent.example.com.", "A"),
    ("big.example.com.", "A"),
    ("nothing.example.com.", "A"),
    ("www.example.com.", "MX"),
];

fn same_answers(reference: SocketAddr, ours: SocketAddr) {
    for (name, t) in QUESTIONS {
        let q = Query::new(name, t);
        let (a, b) = (ask(reference, &q), ask(ours, &q));
        assert_eq!(a.rcode, b.rcode, "{name} {t}");
        assert_eq!(a.flag("aa"), b.flag("aa"), "{name} {t}: AA");
        assert_eq!(a.section("answer"), b.section("answer"), "{name} {t}");
        assert_eq!(a.section("authority"), b.section("authority"), "{name} {t}");
    }
}

fn zone_copy(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("example.com.zone");
    std::fs::copy(data_dir().join("zones/example.com.zone"), &file).unwrap();
    file
}

/// Bumps the serial and changes www's address; optionally adds a record.
fn edit(file: &Path, serial: u32, addr: &str, extra: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let text: String = set_serial(&text, serial)
        .lines()
        .map(|l| if l.starts_with("www ") { format!("www A {addr}\n") } else { format!("{l}\n") })
        .collect();
    std::fs::write(file, format!("{text}{extra}")).unwrap();
}

fn set_serial(text: &str, serial: u32) -> String {
    let old = text.split_whitespace().skip_while(|w| *w != "hostmaster").nth(1).unwrap().to_owned();
    text.replacen(&old, &serial.to_string(), 1)
}

/// The SOA serial `addr` answers for the test zone.
fn serial(addr: SocketAddr) -> Option<u32> {
    let soa = ask(addr, &Query::new("example.com.", "SOA")).section("answer");
    soa.first()?.split_whitespace().nth(6)?.parse().ok()
}

fn www(addr: SocketAddr) -> Vec<String> {
    ask(addr, &Query::new("www.example.com.", "A")).section("answer")
}

fn follower(primary: SocketAddr, port: u16, extra: &[&str]) -> Binary {
    let (p, l) = (primary.to_string(), format!("127.0.0.1:{port}"));
    let mut args =
        vec!["--primary", &p, "--secondary-zone", "example.com", "--listen", &l, "--allow-transfer", "127.0.0.0/8"];
    args.extend_from_slice(extra);
    Binary::serve(&args)
}

/// Incremental transfers counted by the follower, once the count has settled: the answer
/// changes the moment the zone is published, the counter a moment later.
fn ixfr_count(b: &Binary) -> u64 {
    let metric = || b.metric("r53dns_secondary_refreshes_total{outcome=\"ixfr\",zone=\"example.com.\"}");
    let _ = eventually(Duration::from_secs(5), || metric() >= 2);
    metric()
}

fn wait_loaded(b: &Binary) {
    eventually(Duration::from_secs(20), || b.http_status("/readyz") == 200).expect("the follower never got the zone");
}

fn axfr(addr: SocketAddr, key: Option<&str>) -> BTreeSet<String> {
    let mut cmd = Command::new("dig");
    cmd.args(["+nocmd", &format!("@{}", addr.ip()), "-p", &addr.port().to_string()]);
    if let Some(k) = key {
        cmd.args(["-y", k]);
    }
    let out = cmd.args(["example.com", "AXFR"]).output().expect("dig must be installed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("\tTSIG\t"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase())
        .collect()
}

#[test]
fn follows_nsd_and_takes_a_change_on_its_notify() {
    let dir = tempfile::tempdir().unwrap();
    let file = zone_copy(dir.path());
    let port = free_port();
    let nsd = Nsd::primary("example.com.", &file, format!("127.0.0.1:{port}").parse().unwrap(), None);
    let b = follower(nsd.addr, port, &[]);
    wait_loaded(&b);
    same_answers(nsd.addr, b.addr.unwrap());
    assert_eq!(axfr(nsd.addr, None), axfr(b.addr.unwrap(), None), "the same zone, record for record");
    // The SOA refresh is two hours: only NOTIFY brings the change within seconds.
    edit(&file, 2024010102, "192.0.2.33", "new 300 IN TXT \"after\"\n");
    nsd.reload();
    // Judged on the follower alone: during its reload NSD briefly has an old and a new
    // server process, and two queries to it may see two versions.
    let took = eventually(Duration::from_secs(15), || {
        serial(b.addr.unwrap()) == Some(2024010102) && www(b.addr.unwrap()).first().is_some_and(|a| a.ends_with(".33"))
    })
    .expect("the follower did not take the change");
    eventually(Duration::from_secs(5), || (0..3).all(|_| serial(nsd.addr) == Some(2024010102)))
        .expect("NSD still answers with its old serial");
    eprintln!("NSD reload → follower answers: {took:?}");
    same_answers(nsd.addr, b.addr.unwrap());
    assert_eq!(axfr(nsd.addr, None), axfr(b.addr.unwrap(), None));
    // A NOTIFY from anyone else is refused.
    let mut notify = Query::new("example.com.", "SOA");
    notify.opcode = 4;
    let sock = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&notify.to_wire(), b.addr.unwrap()).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).expect("no answer to the NOTIFY");
    assert!(n >= 12 && buf[2] & 0x80 != 0 && (buf[2] >> 3) & 0xf == 4, "a NOTIFY response");
    assert_eq!(buf[3] & 0x0f, 5, "REFUSED");
}

#[test]
fn follows_nsd_with_tsig_and_refuses_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = zone_copy(dir.path());
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    let port = free_port();
    let nsd =
        Nsd::primary("example.com.", &file, format!("127.0.0.1:{port}").parse().unwrap(), Some(("xfr-key", SECRET)));
    let k = keys.display().to_string();
    let b = follower(nsd.addr, port, &["--tsig-key-file", &k, "--primary-key", "xfr-key"]);
    wait_loaded(&b);
    same_answers(nsd.addr, b.addr.unwrap());
    edit(&file, 2024010102, "192.0.2.34", "");
    nsd.reload();
    eventually(Duration::from_secs(15), || www(b.addr.unwrap()).first().is_some_and(|a| a.ends_with(".34")))
        .expect("the signed NOTIFY and transfer did not bring the change");
    // The same key name with another secret: NSD refuses, the follower never serves.
    let wrong_dir = dir.path().join("wrong");
    std::fs::create_dir(&wrong_dir).unwrap();
    let wrong = crate::support::key_file(&wrong_dir, "xfr-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let w = wrong.display().to_string();
    let bad = follower(nsd.addr, free_port(), &["--tsig-key-file", &w, "--primary-key", "xfr-key"]);
    eventually(Duration::from_secs(10), || {
        bad.metric("r53dns_secondary_refreshes_total{outcome=\"failed\",zone=\"example.com.\"}") >= 1
    })
    .expect("the failed transfer was not counted");
    assert_eq!(bad.http_status("/readyz"), 503);
    assert_eq!(ask(bad.addr.unwrap(), &Query::new("www.example.com.", "A")).rcode, 5, "not served: REFUSED");
}

#[test]
fn follows_knot_by_incremental_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let file = zone_copy(dir.path());
    let port = free_port();
    let knot = Knot::primary("example.com.", &file, format!("127.0.0.1:{port}").parse().unwrap());
    let b = follower(knot.addr, port, &[]);
    wait_loaded(&b);
    assert_eq!(axfr(knot.addr, None), axfr(b.addr.unwrap(), None), "the same zone, record for record");
    for (serial, addr) in [(2024010102, "192.0.2.35"), (2024010103, "192.0.2.36")] {
        edit(&file, serial, addr, &format!("n{serial} 300 IN A 198.51.100.7\n"));
        knot.reload("example.com.");
        eventually(Duration::from_secs(15), || www(b.addr.unwrap()).first().is_some_and(|a| a.ends_with(addr)))
            .unwrap_or_else(|| panic!("the follower did not take serial {serial}:\n{}", knot.log()));
    }
    // Both changes came as differences from Knot's journal, not whole zones.
    assert_eq!(ixfr_count(&b), 2);
    assert_eq!(b.metric("r53dns_secondary_refreshes_total{outcome=\"axfr\",zone=\"example.com.\"}"), 1);
    assert_eq!(axfr(knot.addr, None), axfr(b.addr.unwrap(), None));
}

#[test]
fn follows_r53dns_incrementally_with_tsig_and_nsd_follows_the_follower() {
    let dir = tempfile::tempdir().unwrap();
    let file = zone_copy(dir.path());
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    let (k, f) = (keys.display().to_string(), file.display().to_string());
    let port = free_port();
    let notify = format!("127.0.0.1:{port}");
    let primary = crate::transfer::signed_primary(&f, &k, &notify);
    let nsd_port = free_port();
    let nsd_notify = format!("127.0.0.1:{nsd_port}");
    let b = follower(
        primary.addr.unwrap(),
        port,
        &["--tsig-key-file", &k, "--primary-key", "xfr-key", "--notify", &nsd_notify],
    );
    wait_loaded(&b);
    // A second tier: NSD follows the follower.
    let nsd = Nsd::secondary_on("example.com.", b.addr.unwrap(), Some(nsd_port));
    let key = format!("hmac-sha256:xfr-key:{SECRET}");
    assert_eq!(axfr(primary.addr.unwrap(), Some(&key)), axfr(b.addr.unwrap(), None));
    for (serial, addr) in [(2024010102, "192.0.2.37"), (2024010103, "192.0.2.38")] {
        edit(&file, serial, addr, &format!("n{serial} 300 IN A 198.51.100.8\n"));
        primary.signal("HUP");
        eventually(Duration::from_secs(15), || {
            www(b.addr.unwrap()).first().is_some_and(|a| a.ends_with(addr))
                && www(nsd.addr).first().is_some_and(|a| a.ends_with(addr))
        })
        .unwrap_or_else(|| panic!("serial {serial} did not reach both tiers"));
    }
    assert_eq!(ixfr_count(&b), 2);
    assert_eq!(axfr(primary.addr.unwrap(), Some(&key)), axfr(b.addr.unwrap(), None));
    same_answers(primary.addr.unwrap(), b.addr.unwrap());
    same_answers(b.addr.unwrap(), nsd.addr);
}

#[test]
fn followers_of_a_route53_syncer_make_no_route53_calls() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(async {
        let id = s.zone("fleet.example.", false).await;
        s.upsert(&id, vec![rrset("www.fleet.example.", "A", 60, &["192.0.2.1"])]).await;
        id
    });
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // The third follower is not NOTIFYed (as pods behind a Service are not): it polls.
    let notify: Vec<String> = ports[..2].iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let syncer = Binary::serve_with(
        &["--route53", "--refresh", "1s", "--allow-transfer", "127.0.0.0/8", "--notify", &notify.join(",")],
        &aws_env(&proxy.endpoint()),
    );
    let sa = syncer.addr.unwrap();
    eventually(Duration::from_secs(20), || www_of(sa) == ["192.0.2.1"]).expect("the syncer never served the zone");
    let followers: Vec<Binary> = ports
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let l = format!("127.0.0.1:{p}");
            // The primary by host name, as a Service name would be.
            let primary = format!("localhost:{}", sa.port());
            let mut args = vec!["--primary", &primary, "--secondary-zone", "fleet.example", "--listen", &l];
            if i == 2 {
                args.extend(["--primary-refresh", "1s"]);
            }
            // Credentials and the endpoint are in their environment too: any Route53 call a
            // follower made would reach the counting proxy.
            Binary::serve_with(&args, &aws_env(&proxy.endpoint()))
        })
        .collect();
    for f in &followers {
        wait_loaded(f);
    }
    rt.block_on(s.upsert(&zone, vec![rrset("www.fleet.example.", "A", 60, &["192.0.2.99"])]));
    eventually(Duration::from_secs(20), || followers.iter().all(|f| www_of(f.addr.unwrap()) == ["192.0.2.99"]))
        .expect("the change did not reach every follower");
    let soa = ask(sa, &Query::new("fleet.example.", "SOA")).section("answer");
    for f in &followers {
        assert_eq!(ask(f.addr.unwrap(), &Query::new("fleet.example.", "SOA")).section("answer"), soa, "same serial");
        assert_eq!(f.metric("r53dns_route53_api_calls_total"), 0);
    }
    // Every request the API saw came from the syncer: between two of its sweeps, its own
    // count of calls accounts for all of them.
    let mut seen = (0, 0);
    eventually(Duration::from_secs(15), || {
        let before = proxy.requests() as u64;
        let calls = syncer_calls(&syncer);
        seen = (before, calls);
        calls > 0 && before == calls && proxy.requests() as u64 == calls
    })
    .unwrap_or_else(|| panic!("requests at the API vs the syncer's calls: {seen:?}"));
}

fn www_of(addr: SocketAddr) -> Vec<String> {
    ask(addr, &Query::new("www.fleet.example.", "A"))
        .section("answer")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect()
}

/// The sum of `r53dns_route53_api_calls_total` over every operation and outcome.
fn syncer_calls(b: &Binary) -> u64 {
    let mut s = std::net::TcpStream::connect(b.http.unwrap()).unwrap();
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with("r53dns_route53_api_calls_total{"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A primary written for the test: `small.example.` at serial 1 (SOA, NS, two A records);
/// once told, serial 2 and a transfer of `big` records that it streams as fast as the
/// follower reads — a hostile or broken primary.
struct HostilePrimary {
    addr: SocketAddr,
    serial: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// Answers over UDP truncated (TC, no records), counting them.
    truncate_udp: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

fn hostile_message(question: &[u8], id: [u8; 2], records: &[Vec<u8>]) -> Vec<u8> {
    let mut m = id.to_vec();
    m.extend_from_slice(&[0x84, 0, 0, 1]);
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(question);
    for r in records {
        m.extend_from_slice(r);
    }
    m
}

/// An RR owned by `label` under the apex (the question name at offset 12), or by the apex.
fn hostile_rr(label: Option<&str>, t: u16, rdata: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    if let Some(l) = label {
        r.push(l.len() as u8);
        r.extend_from_slice(l.as_bytes());
    }
    r.extend_from_slice(&[0xc0, 12]);
    r.extend_from_slice(&t.to_be_bytes());
    r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

fn hostile_soa(serial: u32) -> Vec<u8> {
    let mut rd = b"\x02ns\xc0\x0c\x02hm\xc0\x0c".to_vec();
    for v in [serial, 2, 1, 100_000, 60] {
        rd.extend_from_slice(&v.to_be_bytes());
    }
    hostile_rr(None, 6, &rd)
}

impl HostilePrimary {
    fn start(big: usize) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let port = free_port();
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let serial = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1));
        let question_of = |m: &[u8]| -> Option<Vec<u8>> {
            let end = 12 + r53dns_zone::name::wire_len(m.get(12..)?)? + 4;
            m.get(12..end).map(<[u8]>::to_vec)
        };
        let s = serial.clone();
        let truncate_udp = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let truncating = truncate_udp.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                let Some(q) = question_of(&buf[..n]) else { continue };
                let mut reply = hostile_message(&q, [buf[0], buf[1]], &[hostile_soa(s.load(Ordering::Relaxed))]);
                if truncating.load(Ordering::Relaxed) > 0 {
                    reply = hostile_message(&q, [buf[0], buf[1]], &[]);
                    reply[2] |= 0x02;
                    truncating.fetch_add(1, Ordering::Relaxed);
                }
                let _ = udp.send_to(&reply, peer);
            }
        });
        let s = serial.clone();
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                let Ok(mut c) = conn else { continue };
                let serial = s.load(Ordering::Relaxed);
                std::thread::spawn(move || {
                    let mut len = [0u8; 2];
                    if c.read_exact(&mut len).is_err() {
                        return;
                    }
                    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if c.read_exact(&mut msg).is_err() {
                        return;
                    }
                    let Some(q) = question_of(&msg) else { return };
                    let id = [msg[0], msg[1]];
                    let send = |c: &mut std::net::TcpStream, records: &[Vec<u8>]| {
                        let m = hostile_message(&q, id, records);
                        c.write_all(&(m.len() as u16).to_be_bytes()).is_ok() && c.write_all(&m).is_ok()
                    };
                    if serial == 1 {
                        let records = [
                            hostile_soa(1),
                            hostile_rr(None, 2, b"\x02ns\xc0\x0c"),
                            hostile_rr(Some("ns"), 1, &[192, 0, 2, 1]),
                            hostile_rr(Some("www"), 1, &[192, 0, 2, 80]),
                            hostile_soa(1),
                        ];
                        send(&mut c, &records);
                        return;
                    }
                    let mut batch = vec![hostile_soa(serial)];
                    for i in 0..big {
                        batch.push(hostile_rr(Some(&format!("h{i}")), 1, &(i as u32).to_be_bytes()));
                        if batch.len() == 500 {
                            if !send(&mut c, &batch) {
                                return; // the follower hung up
                            }
                            batch.clear();
                        }
                    }
                    batch.push(hostile_soa(serial));
                    send(&mut c, &batch);
                });
            }
        });
        Self { addr: format!("127.0.0.1:{port}").parse().unwrap(), serial, truncate_udp }
    }
}

/// A SOA answer truncated over UDP (TC) is asked again over TCP (RFC 1035 §4.2.1), not
/// taken for a failure: the checks keep finding the zone current.
#[test]
fn a_truncated_soa_answer_is_asked_again_over_tcp() {
    let primary = HostilePrimary::start(0);
    let follower = Binary::serve(&["--primary", &primary.addr.to_string(), "--secondary-zone", "small.example"]);
    let metric = |o: &str| {
        follower.metric(&format!("r53dns_secondary_refreshes_total{{outcome=\"{o}\",zone=\"small.example.\"}}"))
    };
    eventually(Duration::from_secs(10), || metric("axfr") == 1).expect("the small zone never loaded");
    primary.truncate_udp.store(1, std::sync::atomic::Ordering::Relaxed);
    for round in 1..=2 {
        let out = Binary::command()
            .args(["ctl", "--http", &follower.http.unwrap().to_string(), "refresh", "small.example"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        eventually(Duration::from_secs(10), || metric("current") == round)
            .unwrap_or_else(|| panic!("check {round} did not find the zone current (failed: {})", metric("failed")));
    }
    assert!(primary.truncate_udp.load(std::sync::atomic::Ordering::Relaxed) > 2, "the UDP answers were truncated");
    assert_eq!(metric("failed"), 0);
    assert_eq!(metric("axfr"), 1, "a truncated answer does not start a transfer");
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_primary_streaming_millions_of_records_is_cut_off_and_the_zone_held_stays() {
    let primary = HostilePrimary::start(3_000_000);
    let follower = Binary::serve(&[
        "--primary",
        &primary.addr.to_string(),
        "--secondary-zone",
        "small.example",
        "--primary-refresh",
        "1s",
        "--drain",
        "0s",
    ]);
    let dns = follower.addr.unwrap();
    let www = |addr| ask(addr, &Query::new("www.small.example.", "A")).section("answer");
    let serial = |addr| -> Option<u32> {
        ask(addr, &Query::new("small.example.", "SOA"))
            .section("answer")
            .first()?
            .split_whitespace()
            .nth(6)?
            .parse()
            .ok()
    };
    eventually(Duration::from_secs(10), || www(dns).len() == 1).expect("the small zone never loaded");
    let before = peak_rss_kib(follower.child.id());
    primary.serial.store(2, std::sync::atomic::Ordering::Relaxed);
    eventually(Duration::from_secs(60), || {
        follower.metric("r53dns_secondary_refreshes_total{outcome=\"too_large\",zone=\"small.example.\"}") >= 1
    })
    .expect("the stream was never refused");
    let peak = peak_rss_kib(follower.child.id());
    eprintln!("follower peak RSS: {} MiB before, {} MiB after 3 M records were offered", before / 1024, peak / 1024);
    // The limit (1 000 000 records) bit: nothing like 3 M records was held...
    assert!(peak < 512 * 1024, "peak RSS {peak} KiB");
    // ...and the zone held is still served, at its serial.
    assert_eq!(www(dns), vec!["www.small.example. 60 IN A 192.0.2.80"]);
    assert_eq!(serial(dns).unwrap_or(0), 1);
}

/// A test CA and a certificate it signs for `dns.test` and 127.0.0.1, made by openssl in
/// `dir` under `prefix`: (CA certificate, server certificate, server key).
fn signed_certificate(dir: &Path, prefix: &str) -> (String, String, String) {
    let path = |f: &str| dir.join(format!("{prefix}-{f}")).display().to_string();
    let (ca, ca_key, cert, key, csr, ext) =
        (path("ca.crt"), path("ca.key"), path("server.crt"), path("server.key"), path("server.csr"), path("ext"));
    std::fs::write(
        &ext,
        "subjectAltName=DNS:dns.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let subject = format!("/CN={prefix} test CA");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let steps: [Vec<&str>; 3] = [
        [&["req", "-x509"][..], &ec, &["-days", "2", "-subj", &subject]].concat(),
        [&["req"][..], &ec, &["-subj", "/CN=dns.test", "-keyout", &key, "-out", &csr]].concat(),
        vec!["x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key, "-CAcreateserial", "-days", "2"],
    ];
    let ca_args =
        ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", "-keyout"];
    for (i, step) in steps.iter().enumerate() {
        let mut cmd = Command::new("openssl");
        cmd.args(step);
        match i {
            0 => cmd.args(ca_args).args([&ca_key, "-out", &ca]),
            2 => cmd.args(["-extfile", &ext, "-out", &cert]),
            _ => &mut cmd,
        };
        let out = cmd.output().expect("openssl must be installed (apt-get install openssl)");
        assert!(out.status.success(), "openssl {step:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (ca, cert, key)
}

fn tls_follower(primary: SocketAddr, port: u16, ca: &str, extra: &[&str]) -> Binary {
    follower(primary, port, &[&["--primary-tls", "--primary-tls-ca", ca][..], extra].concat())
}

/// XoT (RFC 9103) between two r53dns, with TSIG: the follower reaches the primary only on
/// its DNS-over-TLS port (SOA checks and IXFR alike), and a change there arrives as a
/// difference after the primary's NOTIFY.
#[test]
fn follows_r53dns_over_tls_incrementally_with_tsig() {
    let dir = tempfile::tempdir().unwrap();
    let file = zone_copy(dir.path());
    let (ca, cert, key) = signed_certificate(dir.path(), "good");
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    let (k, f) = (keys.display().to_string(), file.display().to_string());
    let port = free_port();
    let notify = format!("127.0.0.1:{port}");
    let primary = Binary::serve(
        &[
            &["--zone", &f][..],
            &crate::support::tls::dot(&cert, &key)[..],
            &["--tsig-key-file", &k, "--transfer-key", "xfr-key", "--notify", &notify, "--notify-key", "xfr-key"][..],
        ]
        .concat(),
    );
    let dot = crate::support::tls::addr_of(&primary, "serving DNS over TLS");
    let mut b = tls_follower(
        dot,
        port,
        &ca,
        &["--primary-tls-name", "dns.test", "--tsig-key-file", &k, "--primary-key", "xfr-key"],
    );
    wait_loaded(&b);
    let loaded = b.wait_for("secondary: zone loaded", Duration::from_secs(5)).expect("no load logged");
    assert!(loaded.contains("transport=\"tls\"") || loaded.contains("transport=tls"), "{loaded}");
    let key_arg = format!("hmac-sha256:xfr-key:{SECRET}");
    assert_eq!(axfr(primary.addr.unwrap(), Some(&key_arg)), axfr(b.addr.unwrap(), None));
    same_answers(primary.addr.unwrap(), b.addr.unwrap());
    edit(&file, 2024010102, "192.0.2.39", "n2 300 IN A 198.51.100.9\n");
    primary.signal("HUP");
    eventually(Duration::from_secs(15), || www(b.addr.unwrap()).first().is_some_and(|a| a.ends_with(".39")))
        .expect("the change did not reach the follower over TLS");
    assert_eq!(ixfr_count_at_least(&b, 1), 1, "the change came as a difference");
    assert_eq!(axfr(primary.addr.unwrap(), Some(&key_arg)), axfr(b.addr.unwrap(), None));
    assert_eq!(b.metric("r53dns_secondary_refreshes_total{outcome=\"failed\",zone=\"example.com.\"}"), 0);
}

/// XoT makes one TLS connection per refresh (RFC 9103 §5.2): the SOA check and the
/// transfer that follows go over the same session. Counted by a relay in front of the
/// primary's DNS-over-TLS port: the first load (AXFR), a change on NOTIFY (SOA check and
/// IXFR), a check that finds the zone current (`ctl refresh`) and a whole transfer (`ctl
/// retransfer`) each open exactly one connection.
#[test]
fn a_refresh_over_tls_makes_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let file = zone_copy(dir.path());
    let (ca, cert, key) = signed_certificate(dir.path(), "good");
    let f = file.display().to_string();
    let port = free_port();
    let notify = format!("127.0.0.1:{port}");
    let primary = Binary::serve(
        &[
            &["--zone", &f][..],
            &crate::support::tls::dot(&cert, &key)[..],
            &["--allow-transfer", "127.0.0.0/8", "--notify", &notify][..],
        ]
        .concat(),
    );
    let relay = crate::support::CountingRelay::start(crate::support::tls::addr_of(&primary, "serving DNS over TLS"));
    let b = tls_follower(relay.addr, port, &ca, &["--primary-tls-name", "dns.test"]);
    wait_loaded(&b);
    let outcome =
        |o: &str| b.metric(&format!("r53dns_secondary_refreshes_total{{outcome=\"{o}\",zone=\"example.com.\"}}"));
    // Each step ends once its refresh is counted; then no other connection may come.
    let settled = |o: &str, n: u64, connections: usize| {
        eventually(Duration::from_secs(15), || outcome(o) >= n)
            .unwrap_or_else(|| panic!("no {o} refresh counted (connections: {})", relay.accepted()));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(relay.accepted(), connections, "connections after the {o} refresh");
    };
    settled("axfr", 1, 1);
    edit(&file, 2024010102, "192.0.2.41", "");
    primary.signal("HUP");
    settled("ixfr", 1, 2);
    assert!(www(b.addr.unwrap()).first().is_some_and(|a| a.ends_with(".41")));
    let ctl = |verb: &str| {
        let out = Binary::command()
            .args(["ctl", "--http", &b.http.unwrap().to_string(), verb, "example.com"])
            .output()
            .unwrap();
        assert!(out.status.success(), "ctl {verb}: {}", String::from_utf8_lossy(&out.stderr));
    };
    ctl("refresh");
    settled("current", 1, 3);
    ctl("retransfer");
    settled("axfr", 2, 4);
    assert_eq!(outcome("failed"), 0);
    assert_eq!((outcome("axfr"), outcome("ixfr"), outcome("current")), (2, 1, 1));
    // The transport shows in /zones and in `ctl status`.
    let http = b.http.unwrap();
    let mut s = std::net::TcpStream::connect(http).unwrap();
    let get = format!("GET /zones HTTP/1.0\r\nHost: {http}\r\nx-r53dns-ctl: 1\r\n\r\n");
    std::io::Write::write_all(&mut s, get.as_bytes()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let zones: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    let z = &zones[0];
    assert_eq!((z["name"].as_str(), z["transport"].as_str()), (Some("example.com."), Some("tls")), "{zones}");
    assert_eq!((z["tls_name"].as_str(), z["last_outcome"].as_str()), (Some("dns.test"), Some("axfr")), "{zones}");
    let out = Binary::command().args(["ctl", "--http", &http.to_string(), "status"]).output().unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &st["secondaries"][0];
    assert_eq!((f["transport"].as_str(), f["tls_name"].as_str()), (Some("tls"), Some("dns.test")), "{st}");
    assert_eq!(f["last_outcome"], "axfr", "{st}");
}

fn ixfr_count_at_least(b: &Binary, n: u64) -> u64 {
    let metric = || b.metric("r53dns_secondary_refreshes_total{outcome=\"ixfr\",zone=\"example.com.\"}");
    let _ = eventually(Duration::from_secs(5), || metric() >= n);
    metric()
}

/// XoT from BIND 9.18, which allows transfers only on its TLS port: the follower gets the
/// zone there (the certificate checked for the primary's address, the default), where a
/// transfer over plain TCP is refused; a change reaches it at its next check.
#[test]
fn follows_bind_over_tls_where_plain_transfers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = zone_copy(dir.path());
    let (ca, cert, key) = signed_certificate(dir.path(), "bind");
    let (bind, tls_port) = crate::support::bind::Bind::primary_xot("example.com.", &file, &cert, &key);
    assert!(axfr(bind.addr, None).is_empty(), "BIND must refuse transfers over plain TCP");
    let xot: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let b = tls_follower(xot, free_port(), &ca, &["--primary-refresh", "1s"]);
    eventually(Duration::from_secs(20), || b.http_status("/readyz") == 200)
        .unwrap_or_else(|| panic!("the follower never got the zone:\n{}", bind.log()));
    same_answers(bind.addr, b.addr.unwrap());
    // The same follower over plain TCP (port 53 semantics on BIND's plain port): refused.
    let plain = follower(bind.addr, free_port(), &[]);
    eventually(Duration::from_secs(10), || {
        plain.metric("r53dns_secondary_refreshes_total{outcome=\"failed\",zone=\"example.com.\"}") >= 1
    })
    .expect("the plain transfer was not refused");
    assert_eq!(plain.http_status("/readyz"), 503);
    edit(&file, 2024010102, "192.0.2.40", "");
    bind.reload();
    eventually(Duration::from_secs(15), || www(b.addr.unwrap()).first().is_some_and(|a| a.ends_with(".40")))
        .unwrap_or_else(|| panic!("the change did not reach the follower:\n{}", bind.log()));
    same_answers(bind.addr, b.addr.unwrap());
}

/// A certificate for another name, and one not signed by the trusted CA, are refused: the
/// zone is not served, the reason logged and the failure counted. An unreadable CA file
/// is a startup error naming it.
#[test]
fn a_tls_primary_with_the_wrong_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = signed_certificate(dir.path(), "good");
    let (other_ca, _, _) = signed_certificate(dir.path(), "other");
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let primary = Binary::serve(
        &[&["--zone", &zone][..], &crate::support::tls::dot(&cert, &key)[..], &["--allow-transfer", "127.0.0.0/8"][..]]
            .concat(),
    );
    let dot = crate::support::tls::addr_of(&primary, "serving DNS over TLS");
    for (ca, name, reason) in [(&ca, "other.test", "not valid for name"), (&other_ca, "dns.test", "UnknownIssuer")] {
        let mut b = tls_follower(dot, free_port(), ca, &["--primary-tls-name", name]);
        let line = b.wait_for("secondary: refresh failed", Duration::from_secs(10)).expect("no failure logged");
        assert!(line.contains("TLS handshake failed") && line.contains(reason), "{line}");
        assert!(line.contains(&dot.to_string()), "the primary is named: {line}");
        eventually(Duration::from_secs(5), || {
            b.metric("r53dns_secondary_refreshes_total{outcome=\"failed\",zone=\"example.com.\"}") >= 1
        })
        .expect("the failure was not counted");
        assert_eq!(b.http_status("/readyz"), 503);
        assert_eq!(ask(b.addr.unwrap(), &Query::new("www.example.com.", "A")).rcode, 5, "not served: REFUSED");
    }
    // The right name and CA: served (the refusals above were the certificate's).
    let good = tls_follower(dot, free_port(), &ca, &["--primary-tls-name", "dns.test"]);
    wait_loaded(&good);
    same_answers(primary.addr.unwrap(), good.addr.unwrap());
    let out = Binary::command()
        .args(["check", "--zone", &zone, "--primary", "127.0.0.1", "--secondary-zone", "example.com"])
        .args(["--primary-tls", "--primary-tls-ca", "/nonexistent/ca.pem"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/ca.pem") && err.contains("No such file"), "{err}");
}

/// A BIND administrator's named.conf for a secondary zone over XoT — a `tls` statement
/// with `ca-file` and `remote-hostname`, named by the zone's `primaries` — is valid for
/// BIND 9.18 (`named-checkconf`), `r53dns check` says it is followed over TLS with that
/// name and CA, and r53dns serving from it follows BIND over TLS where plain transfers are
/// refused.
#[test]
fn a_named_conf_secondary_over_tls_follows_bind_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let file = zone_copy(dir.path());
    let (ca, cert, key) = signed_certificate(dir.path(), "bind");
    let (bind, tls_port) = crate::support::bind::Bind::primary_xot("example.com.", &file, &cert, &key);
    let conf = dir.path().join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "tls to-primary {{\n  ca-file \"{ca}\";\n  remote-hostname \"dns.test\";\n}};\n\
             zone \"example.com\" {{\n  type secondary;\n  primaries {{ 127.0.0.1 port {tls_port} tls to-primary; }};\n  \
             file \"example.com.db\";\n}};\n"
        ),
    )
    .unwrap();
    let checked = Command::new("named-checkconf").arg(&conf).output().expect("named-checkconf (bind9-utils)");
    assert!(checked.status.success(), "BIND refuses it: {}", String::from_utf8_lossy(&checked.stdout));
    let out = Binary::check_bind_config(&conf);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let want = format!(
        "secondary: example.com. from 127.0.0.1:{tls_port} over TLS, the certificate checked for dns.test against {ca}"
    );
    assert!(err.lines().any(|l| l == want), "want {want:?} in:\n{err}");
    let c = conf.display().to_string();
    let mut b = Binary::serve(&["--bind-config", &c, "--allow-transfer", "127.0.0.0/8"]);
    eventually(Duration::from_secs(20), || b.http_status("/readyz") == 200)
        .unwrap_or_else(|| panic!("the follower never got the zone:\n{}", bind.log()));
    let loaded = b.wait_for("secondary: zone loaded", Duration::from_secs(5)).expect("no load logged");
    assert!(loaded.contains("transport=\"tls\"") || loaded.contains("transport=tls"), "{loaded}");
    same_answers(bind.addr, b.addr.unwrap());
}
