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
