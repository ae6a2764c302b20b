//! Serving behaviour beyond single answers: several listeners (IPv4 and IPv6), `$INCLUDE`,
//! required glue that does not fit, EDNS options, duplicate zones, snapshot swaps.

use std::sync::Arc;

use r53dns_app::config::{HttpSpec, ServerSpec, Spec, ZonesSpec};
use r53dns_zone::{ZoneSet, load_zone_str};

use crate::support::dns::{Query, ask, ask_tcp, parse, udp_exchange};
use crate::support::server::{TestServer, zone_dir};

const SMALL: &str = "$ORIGIN small.example.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\n";

#[test]
fn listens_on_ipv4_and_ipv6() {
    let dir = zone_dir(&[("small.example.zone", SMALL)]);
    let spec = Spec {
        zones: ZonesSpec { dirs: vec![dir.path().to_owned()], files: vec![], ..Default::default() },
        ..Default::default()
    };
    let config = Spec {
        server: ServerSpec {
            listen: Some(vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()]),
            workers: Some(1),
            ..Default::default()
        },
        http: HttpSpec { listen: Some("off".into()), ..Default::default() },
        ..spec
    }
    .validate()
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(r53dns_app::start(config, r53dns_server::CancellationToken::new())).unwrap();
    assert_eq!(running.dns_addrs.len(), 2);
    for addr in &running.dns_addrs {
        let q = Query::new("www.small.example.", "A");
        assert_eq!(ask(*addr, &q).answer.len(), 1, "UDP {addr}");
        assert_eq!(ask_tcp(*addr, &q).answer.len(), 1, "TCP {addr}");
    }
    assert!(running.dns_addrs[1].is_ipv6());
    rt.block_on(running.stop());
}

#[test]
fn include_files_with_their_own_origin() {
    let main = "$ORIGIN inc.example.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n\
                $INCLUDE hosts.inc\n$INCLUDE lab.inc lab.inc.example.\nafter A 192.0.2.9\n";
    let s = TestServer::start(&[
        ("inc.example.zone", main),
        ("hosts.inc", "www A 192.0.2.2\n"),
        ("lab.inc", "$TTL 60\nbox A 192.0.2.3\n@ TXT \"lab\"\n"),
    ]);
    let a = |n: &str| ask(s.addr, &Query::new(n, "A")).section("answer");
    assert_eq!(a("www.inc.example."), vec!["www.inc.example. 300 IN A 192.0.2.2"]);
    assert_eq!(a("box.lab.inc.example."), vec!["box.lab.inc.example. 60 IN A 192.0.2.3"]);
    // The include's origin and $TTL do not leak back into the including file.
    assert_eq!(a("after.inc.example."), vec!["after.inc.example. 300 IN A 192.0.2.9"]);
}

#[test]
fn escaped_owner_names_are_served() {
    let z = "$ORIGIN esc.example.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n\
             a\\.b A 192.0.2.2\n\\065bc A 192.0.2.3\n";
    let s = TestServer::start(&[("esc.example.zone", z)]);
    let mut q = Query::new("x.esc.example.", "A");
    q.name = b"\x03a.b\x03esc\x07example\x00".to_vec();
    assert_eq!(ask(s.addr, &q).answer.len(), 1, "label with a dot");
    assert_eq!(ask(s.addr, &Query::new("abc.esc.example.", "A")).answer.len(), 1, "\\065 is A");
}

#[test]
fn referral_whose_required_glue_does_not_fit_is_truncated() {
    // 13 in-domain name servers with long names, each with A and AAAA glue: far over 512.
    let mut z = String::from("$ORIGIN glue.example.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n");
    for i in 0..13 {
        z.push_str(&format!("child NS a-rather-long-name-server-label-{i}.child\n"));
        z.push_str(&format!("a-rather-long-name-server-label-{i}.child A 192.0.2.{}\n", 10 + i));
        z.push_str(&format!("a-rather-long-name-server-label-{i}.child AAAA 2001:db8::{}\n", 10 + i));
    }
    let s = TestServer::start(&[("glue.example.zone", &z)]);
    let udp = ask(s.addr, &Query::new("www.child.glue.example.", "A").no_edns());
    assert!(udp.flag("tc"), "required glue did not fit: TC expected");
    assert!(!udp.flag("aa"));
    assert!(udp.size <= 512);
    let tcp = ask_tcp(s.addr, &Query::new("www.child.glue.example.", "A"));
    assert!(!tcp.flag("tc"));
    assert_eq!(tcp.authority.len(), 13);
    assert_eq!(tcp.additional.len(), 26);
}

#[test]
fn unknown_edns_options_are_ignored_and_small_sizes_mean_512() {
    let s = TestServer::start(&[("small.example.zone", SMALL)]);
    let mut m = Query::new("www.small.example.", "A").no_edns().to_wire();
    m[11] = 1;
    // OPT with a 100-octet size (below 512), DO, and two options: a cookie and an unknown one.
    m.extend_from_slice(&[0, 0, 41, 0, 100, 0, 0, 0x80, 0, 0, 16]);
    m.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    m.extend_from_slice(&[0xfd, 0xe9, 0, 0]);
    let r = parse(&udp_exchange(s.addr, &m).unwrap()).unwrap();
    assert_eq!(r.rcode, 0);
    assert_eq!(r.answer.len(), 1);
    assert_eq!(r.opt, Some((1232, 0, true)));
}

#[test]
fn two_files_for_one_zone_stop_startup() {
    let dir = zone_dir(&[("a.zone", SMALL), ("b.zone", SMALL)]);
    let spec = Spec {
        zones: ZonesSpec { dirs: vec![dir.path().to_owned()], files: vec![], ..Default::default() },
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(r53dns_app::start(spec.validate().unwrap(), r53dns_server::CancellationToken::new()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("b.zone: zone small.example. is already defined by"), "{err}");
}

#[test]
fn a_published_snapshot_is_served_at_once_and_whole() {
    let s = TestServer::start(&[("small.example.zone", SMALL)]);
    let store = s.running.as_ref().unwrap().store.clone();
    let q = Query::new("www.small.example.", "A");
    assert_eq!(ask(s.addr, &q).section("answer"), vec!["www.small.example. 300 IN A 192.0.2.2"]);
    let next = SMALL.replace("192.0.2.2", "192.0.2.200").replace(" 1 2 3 4 5", " 2 2 3 4 5");
    let (zone, _) = load_zone_str(&next, std::path::Path::new("x"), None).unwrap();
    let mut set = ZoneSet::new();
    set.insert(zone);
    store.store(Arc::new(set.into()));
    assert_eq!(ask(s.addr, &q).section("answer"), vec!["www.small.example. 300 IN A 192.0.2.200"]);
    let soa = ask(s.addr, &Query::new("small.example.", "SOA")).section("answer");
    assert!(soa[0].contains(" 2 2 3 4 5"), "{soa:?}");
}

#[test]
fn queries_from_outside_allow_query_are_refused() {
    let dir = zone_dir(&[("small.example.zone", SMALL)]);
    let s = TestServer::with_spec(Spec {
        server: ServerSpec { allow_query: Some(vec!["127.0.0.2/32".into()]), ..Default::default() },
        zones: ZonesSpec { dirs: vec![dir.path().to_owned()], files: vec![], ..Default::default() },
        ..Default::default()
    });
    let q = Query::new("www.small.example.", "A");
    let from = |src: &str| {
        let sock = std::net::UdpSocket::bind(format!("{src}:0")).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 1024];
        // UDP: a client retries; so does this one, on a busy test machine.
        for _ in 0..3 {
            sock.send_to(&q.to_wire(), s.addr).unwrap();
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return parse(&buf[..n]).unwrap();
            }
        }
        panic!("no answer from {} to {src}", s.addr);
    };
    let allowed = from("127.0.0.2");
    assert_eq!((allowed.rcode, allowed.answer.len()), (0, 1));
    let refused = from("127.0.0.1");
    assert_eq!((refused.rcode, refused.answer.len()), (5, 0));
    assert!(refused.opt.is_some(), "OPT echoed on REFUSED");
    assert_eq!(ask_tcp(s.addr, &q).rcode, 5, "TCP from 127.0.0.1 is refused too");
}
