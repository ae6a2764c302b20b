//! Route53 end to end: the real binary syncing from the moto emulator, queried over UDP and
//! TCP; changes, deletions, paging, routing policies, aliases, private zones, faults, and the
//! saved snapshot.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use aws_sdk_route53::types::ChangeAction;

use crate::support::dns::{Query, Response, ask, ask_tcp, parse};
use crate::support::moto::{
    Fault, FaultProxy, Moto, Seeder, alias, aws_env, failover, geo, latency, multivalue, rrset, weighted,
};
use crate::support::server::Binary;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Polls until `check` passes, up to `within`; returns how long it took.
pub(crate) fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn answers(addr: SocketAddr, name: &str, t: &str) -> Vec<String> {
    ask(addr, &Query::new(name, t)).section("answer")
}

/// Asks from a chosen loopback source address (views by client network).
pub(crate) fn ask_from(src: &str, addr: SocketAddr, q: &Query) -> Response {
    let sock = UdpSocket::bind(format!("{src}:0")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&q.to_wire(), addr).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    parse(&buf[..n]).unwrap()
}

fn serve(endpoint: &str, extra: &[&str]) -> Binary {
    let mut args = vec!["--route53", "--refresh", "1s"];
    args.extend_from_slice(extra);
    Binary::serve_with(&args, &aws_env(endpoint))
}

#[test]
fn every_record_type_public_and_private_over_udp_and_tcp() {
    let moto = Moto::start();
    let rt = rt();
    let (public, private) = rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let public = s.zone("corp.example.", false).await;
        let private = s.zone("corp.example.", true).await;
        s.upsert(
            &public,
            vec![
                rrset("www.corp.example.", "A", 60, &["192.0.2.1", "192.0.2.2"]),
                rrset("www.corp.example.", "AAAA", 60, &["2001:db8::1"]),
                rrset("corp.example.", "MX", 300, &["10 mail.corp.example."]),
                rrset("corp.example.", "TXT", 300, &["\"v=spf1 -all\"", "\"a\" \"b\""]),
                rrset("corp.example.", "CAA", 300, &["0 issue \"amazon.com\""]),
                rrset("corp.example.", "SPF", 300, &["\"v=spf1 -all\""]),
                rrset("alias.corp.example.", "CNAME", 300, &["www.corp.example."]),
                rrset("_sip._tcp.corp.example.", "SRV", 300, &["10 5 5060 sip.corp.example."]),
                rrset("naptr.corp.example.", "NAPTR", 300, &["100 10 \"S\" \"SIP+D2T\" \"\" _sip._tcp.corp.example."]),
                rrset("1.2.0.192.in-addr.corp.example.", "PTR", 300, &["www.corp.example."]),
                rrset("ssh.corp.example.", "SSHFP", 300, &["1 1 123456789abcdef67890123456789abcdef67890"]),
                rrset(
                    "_443._tcp.www.corp.example.",
                    "TLSA",
                    300,
                    &["3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6"],
                ),
                rrset("svc.corp.example.", "HTTPS", 300, &["1 . alpn=\"h2,h3\""]),
                rrset("_dns.corp.example.", "SVCB", 300, &["1 dns.corp.example. alpn=\"dot\" port=853"]),
                rrset("lab.corp.example.", "NS", 300, &["ns.lab.corp.example."]),
                rrset(
                    "lab.corp.example.",
                    "DS",
                    300,
                    &["12345 13 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE7C0A4C9A3A85C9B9D5B3BC2B"],
                ),
                rrset("ns.lab.corp.example.", "A", 300, &["192.0.2.53"]),
                rrset("\\052.wild.corp.example.", "A", 60, &["192.0.2.9"]),
                rrset("odd\\100name.corp.example.", "A", 60, &["192.0.2.10"]),
            ],
        )
        .await;
        s.upsert(
            &private,
            vec![
                rrset("www.corp.example.", "A", 60, &["10.0.0.1"]),
                rrset("intranet.corp.example.", "A", 60, &["10.0.0.2"]),
            ],
        )
        .await;
        (public, private)
    });
    let _ = (public, private);
    // 127.0.0.2 is an internal client; 127.0.0.1 is not.
    let b = serve(&moto.endpoint(), &["--internal-network", "127.0.0.2/32"]);
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(15), || !answers(addr, "www.corp.example.", "A").is_empty())
        .expect("zone never appeared");
    let expect = [
        ("www.corp.example.", "A", vec!["www.corp.example. 60 IN A 192.0.2.1", "www.corp.example. 60 IN A 192.0.2.2"]),
        ("www.corp.example.", "AAAA", vec!["www.corp.example. 60 IN AAAA 2001:db8::1"]),
        ("corp.example.", "MX", vec!["corp.example. 300 IN MX 10 mail.corp.example."]),
        (
            "corp.example.",
            "TXT",
            vec!["corp.example. 300 IN TXT \"a\" \"b\"", "corp.example. 300 IN TXT \"v=spf1 -all\""],
        ),
        ("corp.example.", "CAA", vec!["corp.example. 300 IN CAA 0 issue \"amazon.com\""]),
        ("corp.example.", "SPF", vec!["corp.example. 300 IN SPF \"v=spf1 -all\""]),
        ("_sip._tcp.corp.example.", "SRV", vec!["_sip._tcp.corp.example. 300 IN SRV 10 5 5060 sip.corp.example."]),
        (
            "naptr.corp.example.",
            "NAPTR",
            vec!["naptr.corp.example. 300 IN NAPTR 100 10 \"S\" \"SIP+D2T\" \"\" _sip._tcp.corp.example."],
        ),
        (
            "1.2.0.192.in-addr.corp.example.",
            "PTR",
            vec!["1.2.0.192.in-addr.corp.example. 300 IN PTR www.corp.example."],
        ),
        (
            "ssh.corp.example.",
            "SSHFP",
            vec!["ssh.corp.example. 300 IN SSHFP 1 1 123456789ABCDEF67890123456789ABCDEF67890"],
        ),
        ("svc.corp.example.", "HTTPS", vec!["svc.corp.example. 300 IN HTTPS 1 . alpn=\"h2,h3\""]),
        (
            "_dns.corp.example.",
            "SVCB",
            vec!["_dns.corp.example. 300 IN SVCB 1 dns.corp.example. alpn=\"dot\" port=853"],
        ),
        (
            "lab.corp.example.",
            "DS",
            vec![
                "lab.corp.example. 300 IN DS 12345 13 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE7C0A4C9A3A85C9B9D5B3BC2B",
            ],
        ),
        ("anything.wild.corp.example.", "A", vec!["anything.wild.corp.example. 60 IN A 192.0.2.9"]),
        ("odd@name.corp.example.", "A", vec!["odd\\@name.corp.example. 60 IN A 192.0.2.10"]),
    ];
    for (name, t, want) in &expect {
        let q = Query::new(name, t);
        let (u, tc) = (ask(addr, &q), ask_tcp(addr, &q));
        assert_eq!(u.section("answer"), *want, "UDP {name} {t}");
        assert_eq!(tc.section("answer"), *want, "TCP {name} {t}");
        assert!(u.flag("aa"), "{name} {t}");
    }
    // TLSA under www (an existing name) and the CNAME chase.
    assert_eq!(answers(addr, "_443._tcp.www.corp.example.", "TLSA").len(), 1);
    assert_eq!(answers(addr, "alias.corp.example.", "A").len(), 3);
    // Delegation: referral with glue.
    let r = ask(addr, &Query::new("host.lab.corp.example.", "A"));
    assert!(!r.flag("aa"));
    assert_eq!(r.section("authority"), vec!["lab.corp.example. 300 IN NS ns.lab.corp.example."]);
    // SOA: Route53 says serial 1; ours is derived.
    let soa = answers(addr, "corp.example.", "SOA");
    assert!(!soa[0].contains(" 1 7200 900"), "serial must not be Route53's 1: {soa:?}");
    // Views: the private zone shadows the public one for internal clients, NXDOMAIN included.
    let q = Query::new("www.corp.example.", "A");
    assert_eq!(ask_from("127.0.0.2", addr, &q).section("answer"), vec!["www.corp.example. 60 IN A 10.0.0.1"]);
    assert_eq!(ask_from("127.0.0.1", addr, &q).answer.len(), 2);
    let private_only = Query::new("intranet.corp.example.", "A");
    assert_eq!(ask_from("127.0.0.2", addr, &private_only).answer.len(), 1);
    assert_eq!(ask_from("127.0.0.1", addr, &private_only).rcode, 3);
    let public_only = Query::new("svc.corp.example.", "HTTPS");
    assert_eq!(ask_from("127.0.0.2", addr, &public_only).rcode, 3, "a private zone's NXDOMAIN does not fall through");
}

#[test]
fn changes_appear_within_a_refresh_and_deleted_zones_disappear() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let id = rt.block_on(async {
        let id = s.zone("change.example.", false).await;
        s.upsert(&id, vec![rrset("www.change.example.", "A", 60, &["192.0.2.1"])]).await;
        id
    });
    let b = serve(&moto.endpoint(), &[]);
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(15), || answers(addr, "www.change.example.", "A").len() == 1).expect("never served");
    let serial_before = answers(addr, "change.example.", "SOA");
    rt.block_on(s.upsert(&id, vec![rrset("www.change.example.", "A", 60, &["192.0.2.99"])]));
    let took = eventually(Duration::from_secs(10), || {
        answers(addr, "www.change.example.", "A") == vec!["www.change.example. 60 IN A 192.0.2.99"]
    })
    .expect("change never served");
    eprintln!("change in moto → new answer: {took:?} (refresh 1s)");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let serial_after = answers(addr, "change.example.", "SOA");
    assert_ne!(serial_before, serial_after, "serial must change with the content");
    let serial_of = |v: &[String]| v[0].split_whitespace().nth(6).unwrap().parse::<u32>().unwrap();
    assert!(serial_of(&serial_after) > serial_of(&serial_before));
    // Same content: same serial on the next sweeps.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(answers(addr, "change.example.", "SOA"), serial_after);
    rt.block_on(s.delete_zone(&id));
    eventually(Duration::from_secs(10), || ask(addr, &Query::new("www.change.example.", "A")).rcode == 5)
        .expect("a deleted zone must be REFUSED");
}

#[test]
fn zones_over_a_thousand_records_are_paged_completely() {
    let moto = Moto::start();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let id = s.zone("big.example.", false).await;
        let sets: Vec<_> = (0..1200)
            .map(|i| rrset(&format!("h{i}.big.example."), "A", 60, &[&format!("10.0.{}.{}", i / 250, i % 250)]))
            .collect();
        s.upsert(&id, sets).await;
        // A routed group larger than nothing at a page edge: weighted sets share a name.
        let w: Vec<_> =
            (0..20).map(|i| weighted("w.big.example.", &format!("s{i}"), 1, &format!("192.0.2.{i}"))).collect();
        s.upsert(&id, w).await;
    });
    let b = serve(&moto.endpoint(), &[]);
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(30), || answers(addr, "h1199.big.example.", "A").len() == 1)
        .expect("last page never served");
    for i in (0..1200).step_by(7) {
        assert_eq!(answers(addr, &format!("h{i}.big.example."), "A").len(), 1, "h{i}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..400 {
        seen.extend(answers(addr, "w.big.example.", "A"));
    }
    assert_eq!(seen.len(), 20, "every weighted member must be reachable");
}

#[test]
fn routing_policies_are_evaluated_per_query() {
    let moto = Moto::start();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let id = s.zone("route.example.", false).await;
        s.upsert(
            &id,
            vec![
                weighted("w.route.example.", "heavy", 3, "192.0.2.1"),
                weighted("w.route.example.", "light", 1, "192.0.2.2"),
                failover("f.route.example.", "p", true, "192.0.2.11"),
                failover("f.route.example.", "s", false, "192.0.2.12"),
                latency("l.route.example.", "use1", "us-east-1", "192.0.2.21"),
                latency("l.route.example.", "euw1", "eu-west-1", "192.0.2.22"),
                geo("g.route.example.", "default", None, Some("*"), "192.0.2.31"),
                geo("g.route.example.", "eu", Some("EU"), None, "192.0.2.32"),
                multivalue("m.route.example.", "m1", "192.0.2.41"),
                multivalue("m.route.example.", "m2", "192.0.2.42"),
                multivalue("m.route.example.", "m3", "192.0.2.43"),
            ],
        )
        .await;
    });
    let b = serve(&moto.endpoint(), &["--home-region", "eu-west-1"]);
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(15), || !answers(addr, "w.route.example.", "A").is_empty()).expect("never served");
    // Weighted 3:1 over 4000 queries, within ±5% of the expected share.
    let heavy = (0..4000).filter(|_| answers(addr, "w.route.example.", "A")[0].ends_with("192.0.2.1")).count();
    eprintln!("weighted 3:1 over 4000 queries: {heavy} / {}", 4000 - heavy);
    assert!((2800..=3200).contains(&heavy), "heavy share {heavy} of 4000");
    // Failover without health checks: the primary.
    for _ in 0..20 {
        assert_eq!(answers(addr, "f.route.example.", "A"), vec!["f.route.example. 60 IN A 192.0.2.11"]);
    }
    // Latency: the home region.
    assert_eq!(answers(addr, "l.route.example.", "A"), vec!["l.route.example. 60 IN A 192.0.2.22"]);
    // Geolocation without a home location: the default record.
    assert_eq!(answers(addr, "g.route.example.", "A"), vec!["g.route.example. 60 IN A 192.0.2.31"]);
    // Multivalue: all three healthy values, never merged into one record set.
    assert_eq!(answers(addr, "m.route.example.", "A").len(), 3);
}

#[test]
fn aliases_follow_targets_and_aws_endpoints_resolve_through_the_resolver() {
    // A resolver that knows the AWS endpoint: r53dns itself serving a zone file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("elb.amazonaws.com.zone"),
        "$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.250\nmy-lb.us-east-1 A 203.0.113.10\n A 203.0.113.11\n AAAA 2001:db8::10\n",
    )
    .unwrap();
    let resolver = Binary::serve(&["--zone-dir", &dir.path().display().to_string()]);
    let moto = Moto::start();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let id = s.zone("alias.example.", false).await;
        s.upsert(
            &id,
            vec![
                rrset("www.alias.example.", "A", 120, &["198.51.100.1"]),
                alias("alias.example.", "A", &id, "www.alias.example."),
                alias("chain.alias.example.", "A", &id, "alias.example."),
                alias("lb.alias.example.", "A", "Z35SXDOTRQ7X7K", "my-lb.us-east-1.elb.amazonaws.com."),
                alias("lb.alias.example.", "AAAA", "Z35SXDOTRQ7X7K", "my-lb.us-east-1.elb.amazonaws.com."),
                alias("gone.alias.example.", "A", "Z2FDTNDATAQYW2", "d111111abcdef8.cloudfront.net."),
            ],
        )
        .await;
    });
    let resolver_addr = resolver.addr.unwrap().to_string();
    let b = serve(&moto.endpoint(), &["--endpoint-resolver", &resolver_addr]);
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(15), || answers(addr, "lb.alias.example.", "A").len() == 2)
        .expect("endpoint alias never resolved");
    assert_eq!(
        answers(addr, "alias.example.", "A"),
        vec!["alias.example. 120 IN A 198.51.100.1"],
        "apex alias, target TTL"
    );
    assert_eq!(answers(addr, "chain.alias.example.", "A"), vec!["chain.alias.example. 120 IN A 198.51.100.1"]);
    assert_eq!(
        answers(addr, "lb.alias.example.", "A"),
        vec!["lb.alias.example. 60 IN A 203.0.113.10", "lb.alias.example. 60 IN A 203.0.113.11"]
    );
    assert_eq!(answers(addr, "lb.alias.example.", "AAAA"), vec!["lb.alias.example. 60 IN AAAA 2001:db8::10"]);
    // Never a CNAME in place of an alias.
    assert!(answers(addr, "lb.alias.example.", "CNAME").is_empty());
    // An endpoint that does not resolve: SERVFAIL for that name only.
    assert_eq!(ask(addr, &Query::new("gone.alias.example.", "A")).rcode, 2);
    assert_eq!(ask(addr, &Query::new("www.alias.example.", "A")).rcode, 0);
}

fn fault_case(fault: Fault, only_pages: bool, skip: usize) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let id = rt.block_on(async {
        let id = s.zone("fault.example.", false).await;
        let sets: Vec<_> = (0..700).map(|i| rrset(&format!("h{i}.fault.example."), "A", 60, &["192.0.2.1"])).collect();
        s.upsert(&id, sets).await;
        id
    });
    let b = serve(&proxy.endpoint(), &["--rate-limit", "50"]);
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(20), || answers(addr, "h699.fault.example.", "A").len() == 1).expect("never served");
    // Break the API, then change the data: the old answers must stay, whole.
    proxy.set(Some(fault), only_pages, skip);
    rt.block_on(async {
        let sets: Vec<_> = (0..700).map(|i| rrset(&format!("h{i}.fault.example."), "A", 60, &["192.0.2.2"])).collect();
        s.change(&id, ChangeAction::Upsert, sets).await;
    });
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        for i in [0, 350, 699] {
            let a = answers(addr, &format!("h{i}.fault.example."), "A");
            assert_eq!(
                a,
                vec![format!("h{i}.fault.example. 60 IN A 192.0.2.1")],
                "{fault:?}: partial or new data served"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(proxy.injected() > 0, "{fault:?} was never injected");
    proxy.set(None, false, 0);
    eventually(Duration::from_secs(20), || {
        [0, 350, 699].iter().all(|i| {
            answers(addr, &format!("h{i}.fault.example."), "A")
                == vec![format!("h{i}.fault.example. 60 IN A 192.0.2.2")]
        })
    })
    .unwrap_or_else(|| panic!("{fault:?}: the sync did not recover"));
}

#[test]
fn throttling_keeps_old_answers_and_recovers() {
    fault_case(Fault::Throttle, false, 0);
}

#[test]
fn prior_request_not_complete_and_5xx_keep_old_answers() {
    fault_case(Fault::PriorRequestNotComplete, true, 0);
    fault_case(Fault::Status503, false, 0);
    fault_case(Fault::Status500, true, 0);
}

#[test]
fn resets_and_garbage_keep_old_answers() {
    fault_case(Fault::Reset, false, 0);
    fault_case(Fault::Garbage, true, 0);
}

#[test]
fn a_failure_at_page_k_of_n_publishes_nothing_partial() {
    // 700 records at 300 a page: 3 pages; the second fails every time.
    fault_case(Fault::Status503, true, 1);
    fault_case(Fault::Garbage, true, 2);
}

#[test]
fn slow_responses_only_slow_the_sync() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    proxy.set(Some(Fault::SlowMs(400)), false, 0);
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let id = s.zone("slow.example.", false).await;
        s.upsert(&id, vec![rrset("www.slow.example.", "A", 60, &["192.0.2.1"])]).await;
    });
    let b = serve(&proxy.endpoint(), &[]);
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(20), || answers(addr, "www.slow.example.", "A").len() == 1)
        .expect("slow API never synced");
}

#[test]
fn the_saved_snapshot_is_served_at_once_when_aws_is_unreachable() {
    let moto = Moto::start();
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().display().to_string();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let id = s.zone("saved.example.", false).await;
        s.upsert(&id, vec![rrset("www.saved.example.", "A", 60, &["192.0.2.7"])]).await;
    });
    let serial;
    {
        let mut b = serve(&moto.endpoint(), &["--state-dir", &state_arg, "--drain", "0s"]);
        let addr = b.addr.unwrap();
        eventually(Duration::from_secs(15), || answers(addr, "www.saved.example.", "A").len() == 1)
            .expect("never served");
        std::thread::sleep(Duration::from_millis(500));
        serial = answers(addr, "saved.example.", "SOA");
        b.signal("TERM");
        b.wait_exit(Duration::from_secs(10)).expect("did not stop");
    }
    // AWS unreachable: nothing listens on this port.
    let dead = crate::support::dead_endpoint();
    let b = serve(&dead, &["--state-dir", &state_arg]);
    let addr = b.addr.unwrap();
    assert_eq!(
        answers(addr, "www.saved.example.", "A"),
        vec!["www.saved.example. 60 IN A 192.0.2.7"],
        "served at once"
    );
    assert_eq!(answers(addr, "saved.example.", "SOA"), serial, "same content, same serial");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(answers(addr, "www.saved.example.", "A").len(), 1, "still served while AWS is down");
}

#[test]
fn sigkill_at_any_moment_leaves_a_snapshot_that_loads() {
    let moto = Moto::start();
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().display().to_string();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let id = s.zone("kill.example.", false).await;
        // Big enough (a few pages, ~100 KiB on disk) that a kill often lands mid-write.
        for chunk in 0..4 {
            let sets = (0..250)
                .map(|i| rrset(&format!("h{chunk}-{i}.kill.example."), "TXT", 60, &["\"padding padding padding\""]))
                .collect();
            s.upsert(&id, sets).await;
        }
    });
    // Sweeps as fast as the API allows, each ending with a save.
    let fast = ["--route53", "--state-dir", &state_arg, "--refresh", "100ms", "--rate-limit", "100"];
    let mut kills = 0;
    let mut mid_write = 0;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..12 {
        let mut b = Binary::serve_with(&fast, &aws_env(&moto.endpoint()));
        eventually(Duration::from_secs(20), || answers(b.addr.unwrap(), "h3-249.kill.example.", "TXT").len() == 1)
            .expect("never served");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 700));
        b.signal("KILL");
        b.wait_exit(Duration::from_secs(5)).expect("did not die");
        kills += 1;
        // A temporary file left behind means the kill landed mid-write.
        let tmp = |d: &std::path::Path| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        };
        mid_write += usize::from(tmp(state.path()) || tmp(&state.path().join("zones")));
        let saved = r53dns_app::persist::load(state.path())
            .unwrap_or_else(|| panic!("round {round}: no loadable snapshot after SIGKILL"));
        let records: usize = saved.zones.iter().map(|z| z.records.len()).sum();
        assert!(records >= 1000, "round {round}: {records} record sets");
    }
    assert_eq!(kills, 12);
    eprintln!("{kills} kills, {mid_write} of them during a write");
    // And with AWS gone, the last snapshot is served at once.
    let dead = crate::support::dead_endpoint();
    let b = serve(&dead, &["--state-dir", &state_arg]);
    assert_eq!(answers(b.addr.unwrap(), "h0-0.kill.example.", "TXT").len(), 1);
}

#[test]
fn export_writes_zone_files_that_bind_loads() {
    let moto = Moto::start();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let id = s.zone("export.example.", false).await;
        let private = s.zone("export.example.", true).await;
        s.upsert(
            &id,
            vec![
                rrset("www.export.example.", "A", 60, &["192.0.2.1"]),
                rrset("export.example.", "MX", 300, &["10 mail.export.example."]),
                rrset("mail.export.example.", "A", 300, &["192.0.2.25"]),
                rrset("export.example.", "TXT", 300, &["\"v=spf1 -all\""]),
                rrset("\\052.dyn.export.example.", "A", 60, &["192.0.2.9"]),
                alias("export.example.", "A", &id, "www.export.example."),
                weighted("w.export.example.", "a", 3, "192.0.2.11"),
                weighted("w.export.example.", "b", 1, "192.0.2.12"),
                rrset("svc.export.example.", "HTTPS", 300, &["1 . alpn=\"h2\""]),
            ],
        )
        .await;
        s.upsert(&private, vec![rrset("db.export.example.", "A", 60, &["10.0.0.5"])]).await;
    });
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Binary::command();
    for (k, v) in aws_env(&moto.endpoint()) {
        cmd.env(k, v);
    }
    let result = cmd.args(["export", "--route53", "--out"]).arg(out.path()).output().unwrap();
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let public = out.path().join("export.example.zone");
    let private = out.path().join("export.example.private.zone");
    let text = std::fs::read_to_string(&public).unwrap();
    assert!(
        text.contains("export.example. 60 IN A 192.0.2.1"),
        "the apex alias is written as its target's data:\n{text}"
    );
    assert!(text.contains("weighted set \"a\""), "{text}");
    assert!(std::fs::read_to_string(&private).unwrap().contains("db.export.example. 60 IN A 10.0.0.5"));
    for f in [&public, &private] {
        let check = std::process::Command::new("named-checkzone")
            .args(["export.example."])
            .arg(f)
            .output()
            .expect("named-checkzone must be installed (bind9-utils)");
        assert!(check.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&check.stdout));
    }
}

#[test]
fn zone_filters_and_assumed_roles() {
    let moto = Moto::start();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        for (name, private) in [("keep.example.", false), ("skip.example.", false), ("keep.example.", true)] {
            let id = s.zone(name, private).await;
            s.upsert(
                &id,
                vec![rrset(&format!("www.{name}"), "A", 60, &[if private { "10.0.0.1" } else { "192.0.2.1" }])],
            )
            .await;
        }
    });
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        "[route53]\nenabled = true\nrefresh = \"1s\"\ninclude = [\"keep.example\"]\nkind = \"public\"\n\
         only-assumed-roles = true\n[[route53.account]]\nrole-arn = \"arn:aws:iam::123456789012:role/r53dns-read\"\n",
    )
    .unwrap();
    let b = Binary::serve_with(&["--config", &cfg.path().display().to_string()], &aws_env(&moto.endpoint()));
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(15), || answers(addr, "www.keep.example.", "A").len() == 1)
        .expect("included zone never served");
    assert_eq!(answers(addr, "www.keep.example.", "A"), vec!["www.keep.example. 60 IN A 192.0.2.1"], "public only");
    assert_eq!(ask(addr, &Query::new("www.skip.example.", "A")).rcode, 5, "excluded by include");
}

#[test]
fn failover_follows_health_check_status() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let hc = s
            .client
            .create_health_check()
            .caller_reference("primary-check")
            .health_check_config(
                aws_sdk_route53::types::HealthCheckConfig::builder()
                    .ip_address("192.0.2.11")
                    .port(80)
                    .r#type(aws_sdk_route53::types::HealthCheckType::Http)
                    .resource_path("/")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let id = s.zone("hc.example.", false).await;
        let mut primary = failover("www.hc.example.", "p", true, "192.0.2.11");
        primary.health_check_id = Some(hc.health_check().unwrap().id().to_owned());
        s.upsert(&id, vec![primary, failover("www.hc.example.", "s", false, "192.0.2.12")]).await;
    });
    let b = serve(&proxy.endpoint(), &[]);
    let addr = b.addr.unwrap();
    let is =
        |v: &'static str| move || answers(addr, "www.hc.example.", "A") == vec![format!("www.hc.example. 60 IN A {v}")];
    eventually(Duration::from_secs(15), is("192.0.2.11")).expect("healthy primary never served");
    proxy.set_path(Some(Fault::Unhealthy), Some("/status"), 0);
    eventually(Duration::from_secs(10), is("192.0.2.12")).expect("no failover to the secondary");
    proxy.set(None, false, 0);
    eventually(Duration::from_secs(10), is("192.0.2.11")).expect("no failback to the primary");
}

#[test]
fn private_zones_are_filtered_by_vpc() {
    let moto = Moto::start();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        for (name, vpc) in [("ours.internal.", "vpc-1234"), ("theirs.internal.", "vpc-9999")] {
            let id = s.zone_in(name, Some(vpc)).await;
            s.upsert(&id, vec![rrset(&format!("db.{name}"), "A", 60, &["10.0.0.5"])]).await;
        }
        let public = s.zone("public.example.", false).await;
        s.upsert(&public, vec![rrset("www.public.example.", "A", 60, &["192.0.2.1"])]).await;
    });
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), "[route53]\nenabled = true\nrefresh = \"1s\"\nvpcs = [\"vpc-1234\"]\n").unwrap();
    let b = Binary::serve_with(&["--config", &cfg.path().display().to_string()], &aws_env(&moto.endpoint()));
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(15), || answers(addr, "db.ours.internal.", "A").len() == 1)
        .expect("our VPC's zone never served");
    assert_eq!(answers(addr, "www.public.example.", "A").len(), 1, "public zones are not filtered by VPC");
    assert_eq!(ask(addr, &Query::new("db.theirs.internal.", "A")).rcode, 5, "another VPC's private zone is not served");
}

#[test]
fn a_truncated_zone_listing_without_a_marker_deletes_nothing() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let rt = rt();
    let a = rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let a = s.zone("a.example.", false).await;
        s.upsert(&a, vec![rrset("www.a.example.", "A", 60, &["192.0.2.1"])]).await;
        let b = s.zone("b.example.", false).await;
        s.upsert(&b, vec![rrset("www.b.example.", "A", 60, &["192.0.2.2"])]).await;
        a
    });
    let b = serve(&proxy.endpoint(), &[]);
    let addr = b.addr.unwrap();
    eventually(Duration::from_secs(20), || {
        answers(addr, "www.a.example.", "A").len() == 1 && answers(addr, "www.b.example.", "A").len() == 1
    })
    .expect("never served");
    // The listing now names only a.example. and claims to go on, with nowhere to go on from.
    let id: &'static str = Box::leak(a.into_boxed_str());
    proxy.set_path(Some(Fault::TruncatedZoneListing(id)), Some("/hostedzone?"), 0);
    eventually(Duration::from_secs(20), || proxy.injected() >= 3).expect("no sweep saw the broken listing");
    assert_eq!(answers(addr, "www.b.example.", "A"), vec!["www.b.example. 60 IN A 192.0.2.2"], "b.example. deleted");
    assert!(
        b.metric("r53dns_sync_sweeps_total{outcome=\"failed\"}") >= 1,
        "the broken listing must count as a failed sweep"
    );
}

#[test]
fn the_saved_snapshot_is_restored_through_todays_zone_filters() {
    let moto = Moto::start();
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().display().to_string();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        for z in ["keep.example.", "drop.example."] {
            let id = s.zone(z, false).await;
            s.upsert(&id, vec![rrset(&format!("www.{z}"), "A", 60, &["192.0.2.7"])]).await;
        }
    });
    {
        let mut b = serve(&moto.endpoint(), &["--state-dir", &state_arg, "--drain", "0s"]);
        let addr = b.addr.unwrap();
        eventually(Duration::from_secs(15), || answers(addr, "www.drop.example.", "A").len() == 1)
            .expect("never served");
        std::thread::sleep(Duration::from_millis(500));
        b.signal("TERM");
        b.wait_exit(Duration::from_secs(10)).expect("did not stop");
    }
    // Restarted with AWS unreachable and a filter that excludes one zone: the saved copy of
    // the excluded zone is not served.
    let config = state.path().join("r53dns.toml");
    std::fs::write(&config, "[route53]\nexclude = [\"drop.example\"]\n").unwrap();
    let b = serve(
        &crate::support::dead_endpoint(),
        &["--state-dir", &state_arg, "--config", &config.display().to_string()],
    );
    let addr = b.addr.unwrap();
    assert_eq!(answers(addr, "www.keep.example.", "A").len(), 1);
    assert_eq!(ask(addr, &Query::new("www.drop.example.", "A")).rcode_text(), "REFUSED");
}

#[test]
fn private_zone_names_stay_out_of_metrics_unless_allowed() {
    let moto = Moto::start();
    let rt = rt();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let public = s.zone("open.example.", false).await;
        s.upsert(&public, vec![rrset("www.open.example.", "A", 60, &["192.0.2.1"])]).await;
        let private = s.zone("secret.example.", true).await;
        s.upsert(&private, vec![rrset("www.secret.example.", "A", 60, &["10.0.0.1"])]).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    std::fs::write(&allow, "[http]\nprivate-zone-metrics = true\n").unwrap();
    for (allowed, extra) in [(false, vec![]), (true, vec!["--config", allow.to_str().unwrap()])] {
        let b = serve(&moto.endpoint(), &extra);
        let addr = b.addr.unwrap();
        eventually(Duration::from_secs(15), || answers(addr, "www.secret.example.", "A").len() == 1)
            .expect("never served");
        let text = {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(b.http.unwrap()).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut t = String::new();
            s.read_to_string(&mut t).unwrap();
            t
        };
        let open = text.lines().find(|l| l.starts_with("r53dns_zone_serial{") && l.contains("zone=\"open.example.\""));
        assert!(open.is_some_and(|l| l.contains("hosted_zone=\"") && !l.contains("hosted_zone=\"\"")), "{text}");
        assert_eq!(text.contains("secret.example."), allowed, "private zone name in metrics: {allowed}");
    }
}
