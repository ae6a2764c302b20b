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
        zones: ZonesSpec { dirs: vec![], files: vec![data_dir().join("zones/example.com.zone")], ..Default::default() },
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
            tcp_max_connections_per_network: Some(per_client),
            tcp_message_timeout: Some(Duration::from_millis(500)),
            ..Default::default()
        },
        zones: ZonesSpec { dirs: vec![], files: vec![data_dir().join("zones/example.com.zone")], ..Default::default() },
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
            tcp_max_connections_per_network: Some(1),
            ..Default::default()
        },
        zones: ZonesSpec { dirs: vec![], files: vec![data_dir().join("zones/example.com.zone")], ..Default::default() },
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

/// A TCP connection to `to` from the loopback address `from` (any of 127/8).
fn connect_from(from: &str, to: std::net::SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::new(from.parse().unwrap(), 0).into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn asks(c: &mut TcpStream, name: &str) -> bool {
    c.write_all(&framed(&Query::new(name, "A"))).is_ok()
        && read_frame(c).is_some_and(|m| parse(&m).is_ok_and(|r| r.answer.len() == 1))
}

/// Whether the server closed `c` (a read returns end of stream or a reset), without waiting.
fn closed(mut c: &TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let gone = match c.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    c.set_nonblocking(false).unwrap();
    gone
}

#[test]
fn held_connections_do_not_lock_out_a_new_client() {
    // The default cap (1 024) and per-network share (64), held by 16 networks of 64 each,
    // idle and then kept alive with queries: a new client is answered on its first try.
    let s = TestServer::with_spec(Spec {
        server: ServerSpec { tcp_idle_timeout: Some(Duration::from_secs(60)), ..Default::default() },
        zones: ZonesSpec { dirs: vec![], files: vec![data_dir().join("zones/example.com.zone")], ..Default::default() },
        ..Default::default()
    });
    let mut held: Vec<TcpStream> = (1..=16)
        .flat_map(|net| (0..64).map(move |_| format!("127.0.{net}.1")))
        .map(|a| connect_from(&a, s.addr))
        .collect();
    // Every held connection is served (1 024 slots, none refused).
    for c in held.iter_mut().step_by(97) {
        assert!(asks(c, "www.example.com."), "a held connection is not served");
    }
    let started = Instant::now();
    let mut newcomer = connect_from("127.0.200.1", s.addr);
    assert!(asks(&mut newcomer, "www.example.com."), "the new client got no answer while 1 024 connections are held");
    eprintln!("new client answered {:?} after connecting (1 024 idle connections held)", started.elapsed());
    // Exactly one held connection made room, and not one that was asked since.
    let gone = crate::route53::eventually(Duration::from_secs(3), || held.iter().filter(|c| closed(c)).count() == 1);
    assert!(gone.is_some(), "no held connection was closed to make room");
    let gone: Vec<usize> = (0..held.len()).filter(|&i| closed(&held[i])).collect();
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(!gone[0].is_multiple_of(97), "a connection used since was closed instead of an idle one: {gone:?}");
    held.remove(gone[0]);

    // Kept alive: every held connection asks again, then a new client still gets in.
    for c in held.iter_mut().chain([&mut newcomer]) {
        assert!(asks(c, "www.example.com."), "a held connection is not served");
    }
    let started = Instant::now();
    let mut another = connect_from("127.0.201.1", s.addr);
    assert!(asks(&mut another, "www.example.com."), "a new client is locked out by kept-alive connections");
    eprintln!("new client answered {:?} after connecting (1 024 kept-alive connections held)", started.elapsed());
    assert!(asks(&mut newcomer, "www.example.com."), "the most recently active connection was closed");
}

#[test]
fn tcp_clients_are_counted_by_network() {
    let s = limited(4);
    // Four addresses of 127.0.5.0/24 take the network's share; a fifth address of the same
    // network is closed at once, another network is served.
    let mut held: Vec<TcpStream> = (2..6).map(|h| connect_from(&format!("127.0.5.{h}"), s.addr)).collect();
    for c in &mut held {
        assert!(asks(c, "www.example.com."));
    }
    let mut fifth = connect_from("127.0.5.77", s.addr);
    let mut b = [0u8; 1];
    assert_eq!(fifth.read(&mut b).unwrap_or(0), 0, "a fifth connection from the /24 must be closed");
    let mut other = connect_from("127.0.6.1", s.addr);
    assert!(asks(&mut other, "www.example.com."), "another network is served");
    drop(held.pop());
    let again = crate::route53::eventually(Duration::from_secs(3), || {
        asks(&mut connect_from("127.0.5.77", s.addr), "www.example.com.")
    });
    assert!(again.is_some(), "a closed connection gives its network's slot back");
}
