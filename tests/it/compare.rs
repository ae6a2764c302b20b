//! `r53dns compare` between real servers on loopback: NSD, BIND and r53dns serving one zone
//! file answer alike; a changed and a removed record are found and named, and nothing else
//! is; SOA serials count unless `--ignore-serial`; the queries of packet captures (several
//! link types, pcap and pcapng) are taken once per (name, type, DO bit); a bad query-file line
//! stops everything with its file and line.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use etherparse::{LinuxSllPacketType, PacketBuilder};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;

use crate::support::bind::Bind;
use crate::support::nsd::Nsd;
use crate::support::server::{Binary, data_dir};

const APEX: &str = "example.com.";

fn zone_text() -> String {
    std::fs::read_to_string(data_dir().join("zones/example.com.zone")).unwrap()
}

/// The question file of tests/data/compare, covering positive, NXDOMAIN, NODATA, CNAME,
/// wildcard, delegation, DNAME and ANY questions of example.com.
fn queries() -> String {
    data_dir().join("compare/example.com.queries").display().to_string()
}

/// A copy of example.com's zone file in `dir`.
fn original(dir: &Path) -> PathBuf {
    let path = dir.join("example.com.zone");
    std::fs::write(&path, zone_text()).unwrap();
    path
}

/// A copy of example.com's zone file with `from` replaced by `to`, as `dir/file`.
fn edited(dir: &Path, file: &str, from: &str, to: &str) -> PathBuf {
    let text = zone_text();
    assert!(text.contains(from), "{from:?} is not in the zone file");
    let path = dir.join(file);
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path
}

fn compare(against: SocketAddr, server: SocketAddr, args: &[&str]) -> (Output, String) {
    let out = Binary::command()
        .args(["compare", "--against", &against.to_string(), "--server", &server.to_string()])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The JSON lines of `--json`: (name, type, DO bit) → the line.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn questions_of(lines: &[serde_json::Value]) -> BTreeSet<(String, String, bool)> {
    lines
        .iter()
        .map(|l| {
            let q = &l["question"];
            (q["name"].as_str().unwrap().to_owned(), q["type"].as_str().unwrap().to_owned(), q["do"].as_bool().unwrap())
        })
        .collect()
}

fn question(name: &str, qtype: &str, dnssec_ok: bool) -> (String, String, bool) {
    (name.to_owned(), qtype.to_owned(), dnssec_ok)
}

fn serve(zone: &Path) -> Binary {
    Binary::serve(&["--zone", zone.to_str().unwrap()])
}

#[test]
fn peers_serving_one_file_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    let zone = original(dir.path());
    let nsd = Nsd::start(&[(APEX.into(), zone.as_path())]);
    let bind = Bind::primary(APEX, &zone);
    let ours = serve(&zone);
    let ours_addr = ours.addr.unwrap();
    // 40 addresses do not fit in 512 octets: the truncated UDP answer is asked again over TCP.
    let small = Binary::serve(&["--zone", zone.to_str().unwrap(), "--max-udp-payload", "512"]);
    let asked = queries();
    for (against, server, extra) in [
        (nsd.addr, bind.addr, None),
        (bind.addr, ours_addr, None),
        (nsd.addr, ours_addr, None),
        (bind.addr, ours_addr, Some("--tcp")),
        (nsd.addr, small.addr.unwrap(), None),
    ] {
        let mut args = vec!["--queries", &asked];
        args.extend(extra);
        let (out, text) = compare(against, server, &args);
        assert_eq!(out.status.code(), Some(0), "{against} vs {server} {extra:?}:\n{text}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("questions 48, equal 48, different 0;"), "{text}");
        assert!(stdout.contains(&format!("unanswered by --against {against}: 0, by --server {server}: 0")), "{text}");
    }
}

#[test]
fn planted_differences_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let zone = original(dir.path());
    let changed = edited(dir.path(), "changed.zone", "WWW2        A     192.0.2.4", "WWW2 A 192.0.2.44");
    let removed = edited(dir.path(), "removed.zone", "            TXT   \"second string set\"\n", "");
    let nsd = Nsd::start(&[(APEX.into(), zone.as_path())]);
    let with_change = serve(&changed);
    let with_removal = serve(&removed);
    let asked = queries();

    let (out, text) = compare(nsd.addr, with_change.addr.unwrap(), &["--queries", &asked, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines = json_lines(&out);
    assert_eq!(questions_of(&lines), BTreeSet::from([question("www2.example.com.", "A", false)]), "{text}");
    assert_eq!(lines[0]["kinds"], serde_json::json!(["answer"]), "{text}");
    let answer = |side: &str| lines[0][side]["answer"].to_string().to_ascii_lowercase();
    assert!(answer("against").contains("www2.example.com. 3600 in a 192.0.2.4\""), "{text}");
    assert!(answer("server").contains("www2.example.com. 3600 in a 192.0.2.44\""), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("questions 48, equal 47, different 1;"), "{text}");

    // The same in words: one block, the old address after `-`, the new after `+`.
    let (out, text) = compare(nsd.addr, with_change.addr.unwrap(), &["--queries", &asked]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(stdout.contains("www2.example.com. a: answer\n"), "{text}");
    assert!(stdout.contains("    - www2.example.com. 3600 in a 192.0.2.4\n"), "{text}");
    assert!(stdout.contains("    + www2.example.com. 3600 in a 192.0.2.44\n"), "{text}");

    let (out, text) = compare(nsd.addr, with_removal.addr.unwrap(), &["--queries", &asked, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines = json_lines(&out);
    assert_eq!(questions_of(&lines), BTreeSet::from([question("txt.example.com.", "TXT", false)]), "{text}");
    assert_eq!(lines[0]["kinds"], serde_json::json!(["answer"]), "{text}");
    assert_eq!(lines[0]["against"]["answer"].as_array().unwrap().len(), 2, "{text}");
    assert_eq!(lines[0]["server"]["answer"].as_array().unwrap().len(), 1, "{text}");
}

#[test]
fn serials_count_unless_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let zone = original(dir.path());
    let bumped = edited(dir.path(), "bumped.zone", " 2024010101 ", " 2024010102 ");
    let nsd = Nsd::start(&[(APEX.into(), zone.as_path())]);
    let ours = serve(&bumped);
    let asked = queries();

    let (out, text) = compare(nsd.addr, ours.addr.unwrap(), &["--queries", &asked, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines = json_lines(&out);
    let found = questions_of(&lines);
    // The SOA itself, and the negative answers, which carry it.
    for q in [
        question("example.com.", "SOA", false),
        question("nx.www.example.com.", "A", false),
        question("www.example.com.", "AAAA", false),
        question("anything.example.com.", "A", false),
    ] {
        assert!(found.contains(&q), "{q:?} not reported:\n{text}");
    }
    assert!(!found.contains(&question("www.example.com.", "A", false)), "{text}");
    for l in &lines {
        let kinds = l["kinds"].as_array().unwrap();
        assert!(kinds.iter().all(|k| k == "answer" || k == "authority"), "{text}");
    }

    let (out, text) = compare(nsd.addr, ours.addr.unwrap(), &["--queries", &asked, "--ignore-serial"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
}

/// A DNS query for `name` `qtype` as a client sends it, encoded with hickory-proto.
fn query(name: &str, qtype: RecordType, dnssec_ok: bool) -> Vec<u8> {
    let mut msg = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if dnssec_ok {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(true);
        msg.set_edns(edns);
    }
    msg.to_vec().unwrap()
}

/// What a capture holds, as (IPv6?, destination port, UDP payload): the questions
/// www2 A (twice, in two spellings), www2 A with DO, and txt TXT over IPv6; then what must be
/// passed over: an answer, a NOTIFY, a query to another port and a datagram that is no DNS.
fn traffic(port: u16) -> Vec<(bool, u16, Vec<u8>)> {
    let mut answer = Message::new(7, MessageType::Response, OpCode::Query);
    answer.add_query(Query::query(Name::from_ascii("www.example.com.").unwrap(), RecordType::A));
    let mut notify = Message::new(8, MessageType::Query, OpCode::Notify);
    notify.add_query(Query::query(Name::from_ascii("example.com.").unwrap(), RecordType::SOA));
    vec![
        (false, port, query("www2.example.com.", RecordType::A, false)),
        (false, port, query("WWW2.Example.COM.", RecordType::A, false)),
        (false, port, query("www2.example.com.", RecordType::A, true)),
        (true, port, query("txt.example.com.", RecordType::TXT, false)),
        (false, port, answer.to_vec().unwrap()),
        (false, port, notify.to_vec().unwrap()),
        (false, port + 1, query("mail.example.com.", RecordType::A, false)),
        (false, port, b"not a DNS message".to_vec()),
    ]
}

/// One frame of `link` carrying a UDP datagram from a client to `port` on loopback.
fn frame(link: DataLink, v6: bool, port: u16, payload: &[u8]) -> Vec<u8> {
    let (v4, v6addr) = ([127, 0, 0, 1], std::net::Ipv6Addr::LOCALHOST.octets());
    let mut out = Vec::new();
    macro_rules! udp {
        ($step:expr) => {{
            let b = if v6 {
                $step.ipv6(v6addr, v6addr, 64).udp(40_000, port)
            } else {
                $step.ipv4(v4, v4, 64).udp(40_000, port)
            };
            b.write(&mut out, payload).unwrap();
        }};
    }
    match link {
        DataLink::ETHERNET => udp!(PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])),
        DataLink::LINUX_SLL => udp!(PacketBuilder::linux_sll(LinuxSllPacketType::HOST, 6, [2, 0, 0, 0, 0, 1, 0, 0])),
        DataLink::RAW => {
            let b = if v6 {
                PacketBuilder::ipv6(v6addr, v6addr, 64).udp(40_000, port)
            } else {
                PacketBuilder::ipv4(v4, v4, 64).udp(40_000, port)
            };
            b.write(&mut out, payload).unwrap();
        }
        other => panic!("no frames for {other:?}"),
    }
    out
}

/// Writes `traffic(port)` as a pcap capture of `link`, or as pcapng.
fn capture(path: &Path, link: DataLink, pcapng: bool, port: u16) {
    let file = std::fs::File::create(path).unwrap();
    let frames: Vec<Vec<u8>> = traffic(port).iter().map(|(v6, p, payload)| frame(link, *v6, *p, payload)).collect();
    if pcapng {
        let mut w = PcapNgWriter::new(file).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(link, 65_535)).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let block = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_millis(i as u64),
                original_len: f.len() as u32,
                data: f.as_slice().into(),
                options: Vec::new(),
            };
            w.write_pcapng_block(block).unwrap();
        }
    } else {
        let header = PcapHeader { datalink: link, ..Default::default() };
        let mut w = PcapWriter::with_header(file, header).unwrap();
        for (i, f) in frames.iter().enumerate() {
            w.write_packet(&PcapPacket::new(Duration::from_millis(i as u64), f.len() as u32, f)).unwrap();
        }
    }
}

#[test]
fn capture_questions_deduplicated_with_do_bit() {
    let dir = tempfile::tempdir().unwrap();
    let zone = original(dir.path());
    let changed = edited(dir.path(), "changed.zone", "WWW2        A     192.0.2.4", "WWW2 A 192.0.2.44");
    let nsd = Nsd::start(&[(APEX.into(), zone.as_path())]);
    let ours = serve(&changed);
    let expected =
        BTreeSet::from([question("www2.example.com.", "A", false), question("www2.example.com.", "A", true)]);
    for (link, pcapng, port) in [
        (DataLink::ETHERNET, false, 53),
        (DataLink::LINUX_SLL, false, 53),
        (DataLink::RAW, false, 5300),
        (DataLink::ETHERNET, true, 53),
    ] {
        let path = dir.path().join(format!("{link:?}-{pcapng}.cap"));
        capture(&path, link, pcapng, port);
        let mut args = vec!["--pcap", path.to_str().unwrap(), "--json"];
        let port_text = port.to_string();
        if port != 53 {
            args.extend(["--pcap-port", &port_text]);
        }
        let (out, text) = compare(nsd.addr, ours.addr.unwrap(), &args);
        let what = format!("{link:?} pcapng={pcapng} port {port}:\n{text}");
        assert_eq!(out.status.code(), Some(1), "{what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(": 8 packets, 4 DNS queries to port"), "{what}");
        assert!(stderr.contains(", 3 distinct questions"), "{what}");
        assert!(stderr.contains("questions 3, equal 1, different 2;"), "{what}");
        assert_eq!(questions_of(&json_lines(&out)), expected, "{what}");
    }
}

#[test]
fn bad_input_exits_2_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("questions.txt");
    std::fs::write(&file, "# fine so far\nwww.example.com A\nwww.example.com NOTATYPE\n").unwrap();
    // Nothing is asked: no server needed.
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (out, text) = compare(nowhere, nowhere, &["--queries", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:3: unknown type \"NOTATYPE\"", file.display())), "{text}");
    assert!(out.stdout.is_empty(), "{text}");

    std::fs::write(&file, "www.example.com A extra\n").unwrap();
    let (out, text) = compare(nowhere, nowhere, &["--queries", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:1: expected", file.display())), "{text}");

    // No question at all: a wrong file, not a clean comparison.
    std::fs::write(&file, "# nothing but comments\n\n").unwrap();
    let (out, text) = compare(nowhere, nowhere, &["--queries", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no questions"), "{text}");

    let cap = dir.path().join("garbage.pcap");
    std::fs::write(&cap, b"this is no capture at all").unwrap();
    let (out, text) = compare(nowhere, nowhere, &["--pcap", cap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{text}");

    let (out, text) = compare(nowhere, nowhere, &["--queries", file.to_str().unwrap(), "--rate", "0"]);
    assert_eq!(out.status.code(), Some(2), "{text}");
}
