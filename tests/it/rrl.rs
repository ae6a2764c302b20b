//! Response rate limiting against spoofed-source style floods from loopback addresses:
//! answers per client network and name are capped, the excess is dropped or "slipped"
//! (truncated, so a real client retries over TCP), other networks, other names and exempt
//! networks are unaffected, TCP is never limited, and dig gets through by TCP.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::dns::{Query, parse, tcp_exchange};
use crate::support::server::{Binary, data_dir};

#[derive(Debug, Default)]
struct Tally {
    full: usize,
    slipped: usize,
    lost: usize,
}

/// Sends `n` copies of `q` (fresh IDs) from `src` as fast as possible and sorts the replies.
fn flood(src: &str, server: SocketAddr, q: &Query, n: usize) -> Tally {
    let sock = UdpSocket::bind(format!("{src}:0")).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut q = q.clone();
    for i in 0..n {
        q.id = i as u16;
        sock.send_to(&q.to_wire(), server).unwrap();
    }
    let mut t = Tally::default();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = 0;
    while got < n && Instant::now() < deadline {
        let Ok((len, _)) = sock.recv_from(&mut buf) else { break };
        got += 1;
        let r = parse(&buf[..len]).unwrap();
        if r.flag("tc") {
            assert!(r.answer.is_empty() && r.authority.is_empty(), "a slipped answer is empty");
            t.slipped += 1;
        } else {
            t.full += 1;
        }
    }
    t.lost = n - got;
    t
}

#[test]
fn floods_are_capped_per_client_network_and_name_and_tcp_gets_through() {
    let zones = data_dir().join("zones").display().to_string();
    let b = Binary::serve(&["--zone-dir", &zones, "--rrl", "10", "--rrl-slip", "2", "--rrl-exempt", "127.0.2.0/24"]);
    let addr = b.addr.unwrap();
    let www = Query::new("www.example.com.", "A");

    // 200 identical queries from one address: about one second's allowance is answered,
    // half of the rest slipped, half dropped.
    let t = flood("127.0.0.2", addr, &www, 200);
    eprintln!("127.0.0.2 flood: {t:?}");
    assert!((10..=25).contains(&t.full), "{t:?}");
    assert!(t.slipped >= 70 && t.lost >= 70, "{t:?}");
    // Another address of the same /24 shares the account; another /24 does not.
    let same_net = flood("127.0.0.3", addr, &www, 5);
    assert_eq!(same_net.full, 0, "{same_net:?}");
    let other_net = flood("127.0.1.2", addr, &www, 5);
    assert_eq!(other_net.full, 5, "{other_net:?}");
    // Another name from the limited network has its own account.
    let other_name = flood("127.0.0.2", addr, &Query::new("mail.example.com.", "A"), 5);
    assert_eq!(other_name.full, 5, "{other_name:?}");
    // NXDOMAIN for random names counts per zone: varying the name does not escape.
    let sock = UdpSocket::bind("127.0.3.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    for i in 0..100 {
        let q = Query::new(&format!("r{i}.nowhere.example.net."), "A");
        sock.send_to(&q.to_wire(), addr).unwrap();
    }
    let mut nx_full = 0;
    let mut buf = [0u8; 4096];
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let r = parse(&buf[..len]).unwrap();
        if !r.flag("tc") {
            assert_eq!(r.rcode, 3);
            nx_full += 1;
        }
    }
    assert!((10..=25).contains(&nx_full), "NXDOMAIN answers: {nx_full}");
    // An exempt network is never limited.
    let exempt = flood("127.0.2.2", addr, &www, 100);
    assert_eq!(exempt.full, 100, "{exempt:?}");
    // TCP from the limited network is answered (TCP cannot be spoofed).
    for _ in 0..20 {
        let r = parse(&tcp_exchange(addr, &www.to_wire()).expect("TCP answer")).unwrap();
        assert_eq!(r.answer.len(), 1);
    }
    // A real client in the limited network: every other limited answer slips, so within two
    // tries dig gets TC and retries over TCP.
    flood("127.0.0.2", addr, &www, 50);
    let out = Command::new("dig")
        .args(["-b", "127.0.0.2", &format!("@{}", addr.ip()), "-p", &addr.port().to_string()])
        .args(["+tries=3", "+time=1", "www.example.com", "A"])
        .output()
        .expect("dig must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("192.0.2.3"), "dig got the answer:\n{text}");
    assert!(b.metric("r53dns_rrl_responses_total{action=\"dropped\"}") >= 70);
    assert!(b.metric("r53dns_rrl_responses_total{action=\"slipped\"}") >= 70);
}

#[test]
fn without_rrl_nothing_is_limited() {
    let zones = data_dir().join("zones").display().to_string();
    let b = Binary::serve(&["--zone-dir", &zones]);
    let t = flood("127.0.0.2", b.addr.unwrap(), &Query::new("www.example.com.", "A"), 100);
    assert_eq!((t.full, t.slipped, t.lost), (100, 0, 0));
}

/// Sends one query each for `n` different names made by `name(i)` from `src`, and counts
/// the answers that came back whole.
fn flood_names(src: &str, server: SocketAddr, n: usize, name: impl Fn(usize) -> String, qtype: &str) -> Tally {
    let sock = UdpSocket::bind(format!("{src}:0")).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    for i in 0..n {
        let mut q = Query::new(&name(i), qtype);
        q.id = i as u16;
        sock.send_to(&q.to_wire(), server).unwrap();
    }
    let mut t = Tally::default();
    let mut buf = [0u8; 4096];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while got < n && Instant::now() < deadline {
        let Ok((len, _)) = sock.recv_from(&mut buf) else { break };
        got += 1;
        if parse(&buf[..len]).unwrap().flag("tc") {
            t.slipped += 1;
        } else {
            t.full += 1;
        }
    }
    t.lost = n - got;
    t
}

#[test]
fn random_names_under_a_wildcard_or_a_delegation_share_one_allowance() {
    let zones = data_dir().join("zones").display().to_string();
    let b = Binary::serve(&["--zone-dir", &zones, "--rrl", "5", "--rrl-slip", "0"]);
    let addr = b.addr.unwrap();
    let wild = flood_names("127.0.0.5", addr, 200, |i| format!("r{i}x.wild.ent.example.com."), "A");
    let deleg = flood_names("127.0.0.6", addr, 200, |i| format!("r{i}x.sub.example.com."), "A");
    eprintln!("200 random names at 5/s: under a wildcard {wild:?}; under a delegation {deleg:?}");
    // About one second's allowance (5, plus whatever the next second adds) for each.
    assert!(wild.full <= 15, "wildcard: {wild:?}");
    assert!(deleg.full <= 15, "delegation: {deleg:?}");
    assert!(wild.full >= 1 && deleg.full >= 1);
    // Names that exist on their own still have their own allowance.
    let own = flood_names("127.0.0.5", addr, 3, |_| "www.example.com.".into(), "A");
    assert_eq!(own.full, 3, "{own:?}");
}
