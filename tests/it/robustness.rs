//! Hostile and odd input: the answer function never panics, never answers a response, and
//! never exceeds the size the client allows; the live server keeps answering after garbage.

use std::path::Path;

use proptest::prelude::*;
use r53dns_server::{AnswerConfig, Outcome, Transport, answer};
use r53dns_zone::{ZoneSet, load_zone_file};

use crate::support::dns::{Query, ask, parse, udp_exchange};
use crate::support::server::{TestServer, data_dir};

fn zones() -> ZoneSet {
    let mut set = ZoneSet::new();
    for f in ["example.com.zone", "example.net.zone", "signed.example.zone"] {
        let (z, _) = load_zone_file(&data_dir().join("zones").join(f), None).unwrap();
        set.insert(z);
    }
    set
}

/// The size limit a response must respect for this request, if it asks for one.
fn limit(msg: &[u8], transport: Transport) -> usize {
    if transport == Transport::Tcp {
        return 65535;
    }
    // Only well-formed requests get more than 512 (via EDNS); error responses are tiny.
    let edns = parse(msg).ok().and_then(|r| r.opt).map(|(udp, _, _)| udp);
    usize::from(edns.unwrap_or(512).clamp(512, 1232))
}

fn check(set: &ZoneSet, msg: &[u8], transport: Transport) {
    let mut out = Vec::new();
    match answer(set, msg, transport, &AnswerConfig::default(), None, &mut out) {
        Outcome::Drop => {}
        Outcome::Respond => {
            assert!(out.len() >= 12, "response shorter than a header");
            assert!(msg.len() >= 12 && msg[2] & 0x80 == 0, "answered a response or a stub");
            assert_eq!(out[..2], msg[..2], "ID not echoed");
            assert!(out[2] & 0x80 != 0, "QR not set");
            assert!(out.len() <= limit(msg, transport), "{} octets over the limit", out.len());
            parse(&out).unwrap_or_else(|e| panic!("unparsable response ({e}) to {msg:?}"));
        }
    }
}

fn valid_queries() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for (n, t) in
        [("www.example.com.", "A"), ("big.example.com.", "A"), ("x.dn.example.com.", "A"), ("nx.example.com.", "MX")]
    {
        v.push(Query::new(n, t).to_wire());
        v.push(Query::new(n, t).no_edns().to_wire());
        v.push(Query::new(n, t).dnssec_ok().to_wire());
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_break_the_handler(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
        let set = zones();
        check(&set, &msg, Transport::Udp);
        check(&set, &msg, Transport::Tcp);
    }

    #[test]
    fn mutated_queries_never_break_the_handler(
        which in 0usize..12,
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8),
        cut in any::<u16>(),
    ) {
        let set = zones();
        let mut msg = valid_queries()[which].clone();
        for (at, byte) in flips {
            let i = usize::from(at) % msg.len();
            msg[i] = byte;
        }
        msg[2] &= 0x7f; // keep it a query so it gets all the way in
        let keep = usize::from(cut) % (msg.len() + 1);
        check(&set, &msg[..keep.max(12.min(msg.len()))], Transport::Udp);
        check(&set, &msg, Transport::Udp);
    }
}

#[test]
fn compression_pointer_loops_are_rejected() {
    let set = zones();
    // A question name that points at itself, directly or after a label.
    // Also a forward pointer (to the type field).
    for name in [&[0xc0u8, 12][..], &[0xc0, 14][..], &[3, b'w', b'w', b'w', 0xc0, 12][..]] {
        let mut msg = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(name);
        msg.extend_from_slice(&[0, 1, 0, 1]);
        let mut out = Vec::new();
        assert_eq!(answer(&set, &msg, Transport::Udp, &AnswerConfig::default(), None, &mut out), Outcome::Respond);
        assert_eq!(out[3] & 0xf, 1, "FORMERR expected");
    }
}

#[test]
fn responses_and_runts_are_dropped() {
    let set = zones();
    let mut q = Query::new("www.example.com.", "A").to_wire();
    q[2] |= 0x80;
    let mut out = Vec::new();
    assert_eq!(answer(&set, &q, Transport::Udp, &AnswerConfig::default(), None, &mut out), Outcome::Drop);
    assert_eq!(answer(&set, &[0u8; 5], Transport::Udp, &AnswerConfig::default(), None, &mut out), Outcome::Drop);
}

#[test]
fn two_questions_are_a_format_error() {
    let set = zones();
    let mut q = Query::new("www.example.com.", "A").no_edns().to_wire();
    q[5] = 2;
    let mut out = Vec::new();
    answer(&set, &q, Transport::Udp, &AnswerConfig::default(), None, &mut out);
    let r = parse(&out).unwrap();
    assert_eq!(r.rcode, 1);
    assert!(r.question.is_empty());
}

#[test]
fn garbage_flood_leaves_the_server_answering() {
    let server = TestServer::start_dir(&copy_zones());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..3000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 300) as usize;
        let mut pkt: Vec<u8> = (0..len).map(|j| (seed >> (j % 56)) as u8 ^ i as u8).collect();
        if pkt.len() > 2 {
            pkt[2] &= 0x7f;
        }
        let _ = sock.send_to(&pkt, server.addr);
    }
    let r = ask(server.addr, &Query::new("www.example.com.", "A"));
    assert_eq!(r.rcode, 0);
    assert_eq!(r.answer.len(), 1);
    // A response-shaped packet gets no reply at all.
    let mut resp = Query::new("www.example.com.", "A").to_wire();
    resp[2] |= 0x80;
    let reply = udp_exchange(server.addr, &resp);
    assert!(reply.is_none(), "{:?}", reply.map(|r| parse(&r)));
}

fn copy_zones() -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::copy(data_dir().join("zones/example.com.zone"), Path::new(&dir).join("example.com.zone")).unwrap();
    dir
}

/// A query signed with a key the server does not know (any MAC will do: BADKEY).
fn signed_by_stranger(id: u16) -> Vec<u8> {
    let mut q = Query::new("www.example.com.", "A").no_edns();
    q.id = id;
    let mut m = q.to_wire();
    m[11] = 1; // ARCOUNT
    m.extend_from_slice(b"\x08stranger\x00");
    m.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
    let mut rd = b"\x0bhmac-sha256\x00".to_vec();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    rd.extend_from_slice(&now.to_be_bytes()[2..]);
    rd.extend_from_slice(&300u16.to_be_bytes());
    rd.extend_from_slice(&32u16.to_be_bytes());
    rd.extend_from_slice(&[0x5a; 32]);
    rd.extend_from_slice(&id.to_be_bytes());
    rd.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
    m.extend_from_slice(&rd);
    m
}

#[test]
fn a_flood_of_forged_signatures_is_counted_each_and_logged_once_a_second() {
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let mut b = crate::support::server::Binary::serve(&["--zone", &zone]);
    let addr = b.addr.unwrap();
    let started = std::time::Instant::now();
    for i in 0..500u16 {
        let r = parse(&udp_exchange(addr, &signed_by_stranger(i)).expect("an answer")).unwrap();
        assert_eq!(r.rcode, 9, "NOTAUTH (BADKEY)");
    }
    let secs = started.elapsed().as_secs();
    // One more, a second later, reports how many lines were left out.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    udp_exchange(addr, &signed_by_stranger(500)).expect("an answer");
    assert_eq!(b.metric("r53dns_requests_refused_total{reason=\"query_tsig\"}"), 501);
    let mut lines = Vec::new();
    while let Some(l) = b.wait_for("signed query refused", std::time::Duration::from_millis(500)) {
        lines.push(l);
    }
    assert!(lines.len() >= 2 && lines.len() as u64 <= secs + 3, "{} lines for 501 refusals: {lines:#?}", lines.len());
    let skipped: u64 =
        lines.iter().filter_map(|l| l.split("skipped=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok()).sum();
    assert_eq!(skipped + lines.len() as u64, 501, "every refusal is logged or counted as left out: {lines:#?}");
}
