//! EDNS Client Subnet (RFC 7871): the option is echoed with a scope, so a resolver that
//! caches by subnet caches an answer chosen by the client's address for that subnet only
//! and every other answer for everyone; malformed options are format errors, as BIND says.

use std::collections::HashMap;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use r53dns_route53::convert::{Inputs, convert};
use r53dns_route53::model::{CidrRoutingConfig, HostedZone, RecordSet};
use r53dns_server::{AnswerConfig, Outcome, Transport, answer};
use r53dns_zone::ZoneSet;

use crate::support::bind::Bind;
use crate::support::dns::{Query, parse, udp_exchange};
use crate::support::server::{Binary, data_dir};

/// A query for `name` A with an ECS option of `family`, `source` prefix, `scope` and the
/// address octets `addr` exactly as given.
fn with_ecs(name: &str, family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
    let mut m = Query::new(name, "A").no_edns().to_wire();
    m[11] = 1;
    let mut opt = Vec::new();
    opt.extend_from_slice(&8u16.to_be_bytes());
    opt.extend_from_slice(&(4 + addr.len() as u16).to_be_bytes());
    opt.extend_from_slice(&family.to_be_bytes());
    opt.extend_from_slice(&[source, scope]);
    opt.extend_from_slice(addr);
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    m.extend_from_slice(&(opt.len() as u16).to_be_bytes());
    m.extend_from_slice(&opt);
    m
}

/// (answer addresses, ECS source prefix, ECS scope) of a response, read by hickory.
fn read(response: &[u8]) -> (Vec<String>, Option<(u8, u8)>) {
    let m = Message::from_vec(response).expect("hickory reads the response");
    let answers = m.answers.iter().map(|r| r.data.to_string()).collect();
    let ecs = m.edns.as_ref().and_then(|e| match e.option(EdnsCode::Subnet) {
        Some(EdnsOption::Subnet(s)) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    });
    (answers, ecs)
}

fn set(name: &str, t: &str, values: &[&str]) -> RecordSet {
    RecordSet::plain(name.into(), t.into(), 300, values.iter().map(|v| (*v).to_owned()).collect())
}

fn ip_based(id: &str, location: &str, value: &str) -> RecordSet {
    let mut r = set("office.example.com.", "A", &[value]);
    r.set_identifier = Some(id.into());
    r.cidr_routing_config = Some(CidrRoutingConfig { collection_id: "c1".into(), location_name: location.into() });
    r
}

/// A Route53 zone with an IP-based routed name: 198.51.100.0/24 and 2001:db8:1::/48 get
/// 192.0.2.10, everyone else the default location's 192.0.2.99.
fn routed_zones() -> ZoneSet {
    let hz = HostedZone {
        id: "Z1".into(),
        name: "example.com.".into(),
        private: false,
        vpcs: vec![],
        account: String::new(),
    };
    let records = vec![
        set("example.com.", "SOA", &["ns.example.com. hostmaster.example.com. 1 7200 900 1209600 86400"]),
        set("example.com.", "NS", &["ns.example.com."]),
        set("www.example.com.", "A", &["192.0.2.1"]),
        ip_based("office", "hq", "192.0.2.10"),
        ip_based("rest", "*", "192.0.2.99"),
    ];
    let mut inputs = Inputs { zones: HashMap::from([("Z1".to_owned(), (hz, records))]), ..Default::default() };
    inputs.cidr_blocks.insert(
        ("c1".into(), "hq".into()),
        vec![("198.51.100.0".parse().unwrap(), 24), ("2001:db8:1::".parse().unwrap(), 48)],
    );
    let converted = convert("Z1", &inputs, |_| 1).expect("the zone converts");
    let mut zones = ZoneSet::new();
    zones.insert(converted.zone);
    zones
}

fn ask_zones(zones: &ZoneSet, query: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let o =
        answer(zones, query, Transport::Udp, &AnswerConfig::default(), Some("127.0.0.1".parse().unwrap()), &mut out);
    assert_eq!(o, Outcome::Respond);
    out
}

#[test]
fn answers_chosen_by_the_client_subnet_carry_its_prefix_as_scope() {
    let zones = routed_zones();
    // In the office block: the office answer, valid for the /24 the resolver gave.
    let r = ask_zones(&zones, &with_ecs("office.example.com.", 1, 24, 0, &[198, 51, 100]));
    assert_eq!(read(&r), (vec!["192.0.2.10".to_owned()], Some((24, 24))));
    // Elsewhere: the default answer, which also depends on the subnet (another /24 gets
    // another answer), so it is scoped too.
    let r = ask_zones(&zones, &with_ecs("office.example.com.", 1, 24, 0, &[203, 0, 113]));
    assert_eq!(read(&r), (vec!["192.0.2.99".to_owned()], Some((24, 24))));
    // IPv6 /56 inside 2001:db8:1::/48.
    let r = ask_zones(&zones, &with_ecs("office.example.com.", 2, 56, 0, &[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0]));
    assert_eq!(read(&r), (vec!["192.0.2.10".to_owned()], Some((56, 56))));
    // A plain name holds for everyone: scope 0.
    let r = ask_zones(&zones, &with_ecs("www.example.com.", 1, 24, 0, &[198, 51, 100]));
    assert_eq!(read(&r), (vec!["192.0.2.1".to_owned()], Some((24, 0))));
    // No ECS: no option in the answer, and the resolver's own address decides.
    let mut q = Query::new("office.example.com.", "A");
    q.id = 7;
    let r = ask_zones(&zones, &q.to_wire());
    assert_eq!(read(&r), (vec!["192.0.2.99".to_owned()], None));
}

#[test]
fn dig_sees_its_subnet_echoed_with_scope_zero() {
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let b = Binary::serve(&["--zone", &zone]);
    let addr = b.addr.unwrap();
    let out = std::process::Command::new("dig")
        .args([&format!("@{}", addr.ip()), "-p", &addr.port().to_string(), "+subnet=198.51.100.0/24"])
        .args(["www.example.com", "A"])
        .output()
        .expect("dig must be installed (apt-get install bind9-dnsutils)");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("CLIENT-SUBNET: 198.51.100.0/24/0"), "{out}");
}

#[test]
fn malformed_client_subnets_are_format_errors_as_bind_answers() {
    let file = data_dir().join("zones/example.com.zone");
    // BIND checks the option (Knot and NSD ignore it unless configured for it).
    let bind = Bind::primary("example.com.", &file);
    let b = Binary::serve(&["--zone", &file.display().to_string()]);
    let name = "www.example.com.";
    let cases: [(&str, Vec<u8>); 7] = [
        ("valid /24", with_ecs(name, 1, 24, 0, &[198, 51, 100])),
        ("valid /0 (opted out)", with_ecs(name, 1, 0, 0, &[])),
        ("IPv4 prefix over 32", with_ecs(name, 1, 33, 0, &[198, 51, 100, 1, 0])),
        ("more address octets than the prefix needs", with_ecs(name, 1, 16, 0, &[198, 51, 100])),
        ("bits set past the prefix", with_ecs(name, 1, 23, 0, &[198, 51, 101])),
        ("a scope in a query", with_ecs(name, 1, 24, 24, &[198, 51, 100])),
        ("unknown family", with_ecs(name, 3, 8, 0, &[1])),
    ];
    for (what, q) in cases {
        let ours = parse(&udp_exchange(b.addr.unwrap(), &q).expect("r53dns answers")).unwrap();
        let theirs = parse(&udp_exchange(bind.addr, &q).expect("BIND answers")).unwrap();
        assert_eq!(ours.rcode, theirs.rcode, "{what}");
        assert_eq!(ours.answer, theirs.answer, "{what}");
    }
    // And the rcode itself: FORMERR for each malformed case.
    let bad = parse(&udp_exchange(b.addr.unwrap(), &with_ecs(name, 1, 33, 0, &[198, 51, 100, 1, 0])).unwrap()).unwrap();
    assert_eq!(bad.rcode, 1);
}
