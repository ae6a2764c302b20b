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
