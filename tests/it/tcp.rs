//! DNS over TCP (RFC 7766): pipelining, messages split across segments, idle timeout, and
//! identical answers to UDP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use r53dns_app::config::{ServerSpec, Spec, ZonesSpec};

use crate::support::dns::{Query, ask, ask_tcp, parse, read_frame};
use crate::support::server::{TestServer, data_dir};

fn server(idle: Duration) -> TestServer {
    TestServer::with_spec(Spec {
        server: ServerSpec { tcp_idle_timeout: Some(idle), ..Default::default() },
        zones: ZonesSpec { dirs: vec![], files: vec![data_dir().join("zones/example.com.zone")] },
        ..Default::default()
    })
}

fn framed(q: &Query) -> Vec<u8> {
    let m = q.to_wire();
    let mut f = (m.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(&m);
    f
}

#[test]
fn pipelined_queries_are_all_answered_in_order() {
    let s = server(Duration::from_secs(5));
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let names = ["www.example.com.", "mail.example.com.", "nx.example.com.", "alias.example.com."];
    let mut batch = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let mut q = Query::new(n, "A");
        q.id = 100 + i as u16;
        batch.extend(framed(&q));
    }
    c.write_all(&batch).unwrap();
    for i in 0..names.len() {
        let r = parse(&read_frame(&mut c).unwrap()).unwrap();
        assert_eq!(r.id, 100 + i as u16);
    }
}

#[test]
fn a_message_split_across_segments_is_reassembled() {
    let s = server(Duration::from_secs(5));
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let f = framed(&Query::new("www.example.com.", "A"));
    for chunk in [&f[..1], &f[1..5], &f[5..]] {
        c.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let r = parse(&read_frame(&mut c).unwrap()).unwrap();
    assert_eq!(r.answer.len(), 1);
}

#[test]
fn idle_connections_are_closed() {
    let s = server(Duration::from_millis(300));
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the server to close the idle connection");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn tcp_and_udp_answer_alike_and_tcp_is_not_truncated() {
    let s = server(Duration::from_secs(5));
    for (n, t) in [("www.example.com.", "A"), ("nx.example.com.", "A"), ("x.sub.example.com.", "A")] {
        let q = Query::new(n, t);
        let (u, tc) = (ask(s.addr, &q), ask_tcp(s.addr, &q));
        for sec in ["answer", "authority", "additional"] {
            assert_eq!(u.section(sec), tc.section(sec), "{n} {t} {sec}");
        }
        assert_eq!(u.rcode, tc.rcode);
    }
    let big = ask_tcp(s.addr, &Query::new("big.example.com.", "A").no_edns());
    assert!(!big.flag("tc"));
    assert_eq!(big.answer.len(), 40);
    let small = ask(s.addr, &Query::new("big.example.com.", "A").no_edns());
    assert!(small.flag("tc"));
    assert!(small.size <= 512);
}

fn limited(per_client: usize) -> TestServer {
    TestServer::with_spec(Spec {
        server: ServerSpec {
            tcp_idle_timeout: Some(Duration::from_secs(5)),
            tcp_max_connections_per_client: Some(per_client),
            tcp_message_timeout: Some(Duration::from_millis(500)),
            ..Default::default()
        },
        zones: ZonesSpec { dirs: vec![], files: vec![data_dir().join("zones/example.com.zone")] },
        ..Default::default()
    })
}

#[test]
fn per_client_connection_limit_is_enforced_while_udp_answers() {
    let s = limited(3);
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(s.addr).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(extra.read(&mut buf).unwrap_or(0), 0, "the fourth connection must be closed");
    assert_eq!(ask(s.addr, &Query::new("www.example.com.", "A")).answer.len(), 1, "UDP keeps answering");
    let mut first = held.into_iter().next().unwrap();
    first.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    first.write_all(&framed(&Query::new("www.example.com.", "A"))).unwrap();
    assert_eq!(parse(&read_frame(&mut first).unwrap()).unwrap().answer.len(), 1, "held connections still work");
}

#[test]
fn a_slow_sender_does_not_block_others_and_is_cut_off() {
    let s = limited(64);
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Announce 40 octets, send 3, stall.
    slow.write_all(&[0, 40, 0x12, 0x34, 0]).unwrap();
    let started = Instant::now();
    let r = ask_tcp(s.addr, &Query::new("www.example.com.", "A"));
    assert_eq!(r.answer.len(), 1);
    assert!(started.elapsed() < Duration::from_millis(400), "another client waited {:?}", started.elapsed());
    let mut buf = [0u8; 1];
    assert_eq!(slow.read(&mut buf).unwrap_or(0), 0, "the stalled connection must be closed");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_client_that_never_reads_its_answers_loses_its_connection() {
    let s = TestServer::with_spec(Spec {
        server: ServerSpec {
            tcp_idle_timeout: Some(Duration::from_secs(1)),
            tcp_max_connections_per_client: Some(1),
            ..Default::default()
        },
        zones: ZonesSpec { dirs: vec![], files: vec![data_dir().join("zones/example.com.zone")] },
        ..Default::default()
    });
    // Pipeline far more answers than the socket buffers hold, and read none.
    let mut greedy = TcpStream::connect(s.addr).unwrap();
    greedy.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let q = framed(&Query::new("big.example.com.", "A"));
    let started = Instant::now();
    for _ in 0..50_000 {
        if greedy.write_all(&q).is_err() {
            break; // our own send buffer is full too
        }
    }
    // Its one slot is taken while the server is stuck writing; once the write times out,
    // the connection is dropped and the client can connect again.
    let again = crate::route53::eventually(Duration::from_secs(10), || {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        c.write_all(&framed(&Query::new("www.example.com.", "A"))).is_ok()
            && read_frame(&mut c).is_some_and(|m| parse(&m).unwrap().answer.len() == 1)
    });
    assert!(again.is_some(), "the slot was never freed");
    assert!(started.elapsed() >= Duration::from_millis(900), "freed before the timeout: {:?}", started.elapsed());
    assert_eq!(ask(s.addr, &Query::new("www.example.com.", "A")).answer.len(), 1, "UDP kept answering");
}
