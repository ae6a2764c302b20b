use super::engine::*;
use super::grants::*;
use super::keys::*;
use super::limits::*;
use crate::config::{GrantSpec, TsigSpec, UpdateSpec};
use r53dns_proto::message::Message;
use r53dns_proto::message::Record;
use r53dns_proto::tsig::{Algorithm, Key, KeyRing};
use r53dns_route53::model::RecordSet;
use r53dns_route53::write::Action;
use r53dns_route53::write::ChangeFailure;
use r53dns_zone::proto::Rcode;
use r53dns_zone::rdata::type_to_string;
use r53dns_zone::{Name, rtype};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

fn rr(name: &str, class: u16, code: u16, ttl: u32, rdata: &[u8]) -> Record {
    Record { name: absolute(name).unwrap(), rtype: code, class, ttl, rdata: rdata.to_vec(), offset: 0 }
}

fn msg(prereqs: Vec<Record>, updates: Vec<Record>) -> Message {
    Message {
        id: 1,
        flags: 0x2800,
        questions: vec![(absolute("example.com").unwrap(), rtype::SOA, 1)],
        answers: prereqs,
        authority: updates,
        additional: Vec::new(),
    }
}

fn set(name: &str, code: u16, ttl: i64, values: &[&str]) -> RecordSet {
    RecordSet::plain(format!("{name}."), type_to_string(code), ttl, values.iter().map(|v| (*v).to_owned()).collect())
}

fn zone() -> Name {
    absolute("example.com").unwrap()
}

fn current() -> Sets {
    let mut s = Sets::new();
    let mut weighted = set("www.example.com", rtype::A, 60, &["192.0.2.9"]);
    weighted.set_identifier = Some("blue".into());
    weighted.weight = Some(1);
    read_sets(
        &[
            set("host.example.com", rtype::A, 300, &["192.0.2.1", "192.0.2.2"]),
            set("host.example.com", rtype::TXT, 300, &["\"hello\""]),
            set("alias.example.com", rtype::CNAME, 300, &["Host.Example.com."]),
            weighted,
        ],
        &mut s,
    );
    s
}

#[test]
fn prerequisites_give_the_rfc_rcodes() {
    let s = current();
    let code = |p: Record| check_prerequisites(&msg(vec![p], vec![]), &s).err().map(|e| e.rcode);
    assert_eq!(code(rr("host.example.com", 255, rtype::ANY, 0, &[])), None);
    assert_eq!(code(rr("nope.example.com", 255, rtype::ANY, 0, &[])), Some(Rcode::NxDomain));
    assert_eq!(code(rr("host.example.com", 255, rtype::AAAA, 0, &[])), Some(Rcode::NxRrset));
    assert_eq!(code(rr("host.example.com", 254, rtype::ANY, 0, &[])), Some(Rcode::YxDomain));
    assert_eq!(code(rr("nope.example.com", 254, rtype::ANY, 0, &[])), None);
    assert_eq!(code(rr("host.example.com", 254, rtype::A, 0, &[])), Some(Rcode::YxRrset));
    assert_eq!(code(rr("www.example.com", 255, rtype::A, 0, &[])), None, "a routed set exists");
    // Value-dependent: the whole set, in any order, names compared without case.
    let both = vec![
        rr("host.example.com", 1, rtype::A, 0, &[192, 0, 2, 2]),
        rr("host.example.com", 1, rtype::A, 0, &[192, 0, 2, 1]),
    ];
    assert!(check_prerequisites(&msg(both, vec![]), &s).is_ok());
    let one = vec![rr("host.example.com", 1, rtype::A, 0, &[192, 0, 2, 1])];
    assert_eq!(check_prerequisites(&msg(one, vec![]), &s).err().map(|e| e.rcode), Some(Rcode::NxRrset));
    let cname = vec![rr("alias.example.com", 1, rtype::CNAME, 0, b"\x04HOST\x07example\x03com\x00")];
    assert!(check_prerequisites(&msg(cname, vec![]), &s).is_ok());
}

#[test]
fn updates_become_one_minimal_batch() {
    let before = current();
    let updates = vec![
        rr("host.example.com", 1, rtype::A, 300, &[192, 0, 2, 3]), // add to a set
        rr("host.example.com", 254, rtype::A, 0, &[192, 0, 2, 1]), // delete one RR
        rr("host.example.com", 255, rtype::TXT, 0, &[]),           // delete a set
        rr("new.example.com", 1, rtype::AAAA, 60, &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        rr("alias.example.com", 1, rtype::A, 60, &[192, 0, 2, 7]), // ignored: a CNAME is there
    ];
    let mut after = before.clone();
    apply(&msg(vec![], updates), &zone(), &mut after).map_err(|s| s.why).unwrap();
    let changes = diff(&before, &after);
    let got: Vec<(Action, &str, &str, Vec<&str>)> = changes
        .iter()
        .map(|c| {
            let v = c.set.resource_records.iter().map(|r| r.value.as_str()).collect();
            (c.action, c.set.name.as_str(), c.set.rtype.as_str(), v)
        })
        .collect();
    // A changed set is replaced by deleting it as read and creating the new one, so that
    // Route53 refuses the batch if it changed since.
    assert_eq!(
        got,
        vec![
            (Action::Create, "new.example.com.", "AAAA", vec!["2001:db8::1"]),
            (Action::Delete, "host.example.com.", "A", vec!["192.0.2.1", "192.0.2.2"]),
            (Action::Create, "host.example.com.", "A", vec!["192.0.2.2", "192.0.2.3"]),
            (Action::Delete, "host.example.com.", "TXT", vec!["\"hello\""]),
        ]
    );
    assert_eq!(changes[1].set.ttl, Some(300), "the DELETE carries the TTL read");
    // Deleting the last RR deletes the set with its exact old values.
    let mut after = before.clone();
    let del = vec![
        rr("host.example.com", 254, rtype::A, 0, &[192, 0, 2, 1]),
        rr("host.example.com", 254, rtype::A, 0, &[192, 0, 2, 2]),
    ];
    apply(&msg(vec![], del), &zone(), &mut after).map_err(|s| s.why).unwrap();
    let changes = diff(&before, &after);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, Action::Delete);
    assert_eq!(changes[0].set.ttl, Some(300));
    // Adding what is there already changes nothing.
    let mut after = before.clone();
    apply(&msg(vec![], vec![rr("host.example.com", 1, rtype::A, 300, &[192, 0, 2, 1])]), &zone(), &mut after)
        .map_err(|s| s.why)
        .unwrap();
    assert!(diff(&before, &after).is_empty());
    // A TTL change alone replaces the set too.
    let mut after = before.clone();
    apply(&msg(vec![], vec![rr("host.example.com", 1, rtype::A, 60, &[192, 0, 2, 1])]), &zone(), &mut after)
        .map_err(|s| s.why)
        .unwrap();
    let actions: Vec<(Action, Option<i64>)> = diff(&before, &after).iter().map(|c| (c.action, c.set.ttl)).collect();
    assert_eq!(actions, [(Action::Delete, Some(300)), (Action::Create, Some(60))]);
}

fn failure(rejected: bool, uncertain: bool) -> ChangeFailure {
    let error = r53dns_route53::FetchError {
        op: "ChangeResourceRecordSets",
        zone: "Z1".into(),
        message: "test".into(),
        throttled: false,
    };
    ChangeFailure { error, rejected, uncertain }
}

#[test]
fn a_failed_batch_is_judged_by_a_fresh_read() {
    let before = current();
    let mut after = before.clone();
    let add = vec![rr("host.example.com", 1, rtype::A, 300, &[192, 0, 2, 3])];
    apply(&msg(vec![], add), &zone(), &mut after).map_err(|s| s.why).unwrap();
    // What Route53 holds once the batch went through: the update's result, read back
    // in another order (values are a set).
    let mut applied = Sets::new();
    read_sets(
        &[
            set("host.example.com", rtype::A, 300, &["192.0.2.3", "192.0.2.2", "192.0.2.1"]),
            set("host.example.com", rtype::TXT, 300, &["\"hello\""]),
        ],
        &mut applied,
    );
    // Someone else's change to the same set.
    let mut theirs = Sets::new();
    read_sets(
        &[
            set("host.example.com", rtype::A, 300, &["192.0.2.1", "192.0.2.2", "192.0.2.7"]),
            set("host.example.com", rtype::TXT, 300, &["\"hello\""]),
        ],
        &mut theirs,
    );
    let unchanged = before.clone();
    use AfterFailure::*;
    // (rejected, uncertain, what a fresh read shows, what to do)
    let cases = [
        // A timeout or 5xx after which Route53 holds the result: it was applied.
        (false, true, &applied, Applied),
        // The same, the resent copy rejected because the first had been applied.
        (true, true, &applied, Applied),
        // A timeout that changed nothing: SERVFAIL, the client may send it again.
        (false, true, &unchanged, Fail),
        // A timeout, and the set now holds something else: not ours to guess.
        (false, true, &theirs, Fail),
        // Rejected because the set changed meanwhile: again, from the new data.
        (true, false, &theirs, Again),
        (true, true, &theirs, Again),
        // Rejected with the data unchanged: not a race, and would be rejected again.
        (true, false, &unchanged, Fail),
        // Rejected, and someone else made the very same change: the prerequisites must
        // be checked against it, so again (a clean rejection applied nothing of ours).
        (true, false, &applied, Again),
    ];
    for (rejected, uncertain, now, want) in cases {
        assert_eq!(
            after_failure(&failure(rejected, uncertain), &before, &after, now),
            want,
            "rejected {rejected}, uncertain {uncertain}"
        );
    }
    // A deletion holds once the set is gone, and only then.
    let mut deleted = before.clone();
    apply(&msg(vec![], vec![rr("host.example.com", 255, rtype::TXT, 0, &[])]), &zone(), &mut deleted)
        .map_err(|s| s.why)
        .unwrap();
    let mut gone = Sets::new();
    read_sets(&[set("host.example.com", rtype::A, 300, &["192.0.2.1", "192.0.2.2"])], &mut gone);
    assert!(holds(&before, &deleted, &gone));
    assert!(!holds(&before, &deleted, &before));
    // Sets the update does not touch may change meanwhile without making it fail.
    let mut elsewhere = applied.clone();
    read_sets(&[set("host.example.com", rtype::AAAA, 300, &["2001:db8::5"])], &mut elsewhere);
    assert!(holds(&before, &after, &elsewhere));
}

#[test]
fn rate_limits_per_key_and_per_network() {
    let limits = Limits { per_key: (1.0, 3), per_network: (2.0, 5), route53_share: 0.5 };
    let l = RateLimits::new(limits);
    let t0 = Instant::now();
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    // A key's burst, then refused, whatever address it comes from.
    for i in 0..3 {
        assert_eq!(l.admit(Some("dhcp"), ip(&format!("10.0.{i}.1")), t0), Ok(()));
    }
    assert_eq!(l.admit(Some("dhcp"), ip("10.9.9.9"), t0), Err(Limited::Key("dhcp".into())));
    // One second brings one token back.
    assert_eq!(l.admit(Some("dhcp"), ip("10.9.9.9"), t0 + Duration::from_secs(1)), Ok(()));
    // Addresses of one /24 share a bucket; the refusal by the network spends no key token.
    for i in 0..5 {
        assert_eq!(l.admit(None, ip(&format!("192.0.2.{i}")), t0), Ok(()));
    }
    assert_eq!(l.admit(Some("other"), ip("192.0.2.200"), t0), Err(Limited::Network(ip("192.0.2.0"))));
    for _ in 0..3 {
        assert_eq!(l.admit(Some("other"), ip("192.0.3.1"), t0), Ok(()), "the key kept its burst");
    }
    // IPv6 by /56; an IPv4-mapped address counts as IPv4.
    assert_eq!(client_network(ip("2001:db8:aa:bbcc::1")), ip("2001:db8:aa:bb00::"));
    assert_eq!(client_network(ip("::ffff:192.0.2.9")), ip("192.0.2.0"));
    // Beyond MAX_NETWORKS busy networks, the rest share one bucket instead of growing
    // the table.
    let l = RateLimits::new(Limits { per_network: (1.0, 1), ..limits });
    for i in 0..MAX_NETWORKS as u32 {
        assert_eq!(l.admit(None, IpAddr::V4(Ipv4Addr::from((i + 1) << 8)), t0), Ok(()));
    }
    assert_eq!(l.admit(None, ip("203.0.113.1"), t0), Ok(()));
    assert!(l.admit(None, ip("198.51.100.1"), t0).is_err(), "the shared bucket is spent");
    assert_eq!(l.state.lock().unwrap().networks.len(), MAX_NETWORKS + 1);
    // Once they are full again, they are forgotten to make room.
    assert_eq!(l.admit(None, ip("198.51.100.1"), t0 + Duration::from_secs(2)), Ok(()));
    assert!(l.state.lock().unwrap().networks.len() <= 2);
}

#[test]
fn update_limits_have_defaults_and_ranges() {
    let spec: UpdateSpec = toml::from_str("").unwrap();
    assert_eq!(limits(&spec).unwrap(), Limits::default());
    let spec: UpdateSpec = toml::from_str(
        "rate-per-key = 2.5\nburst-per-key = 5\nrate-per-network = 1\nburst-per-network = 3\nroute53-share = 0.2\n",
    )
    .unwrap();
    assert_eq!(limits(&spec).unwrap(), Limits { per_key: (2.5, 5), per_network: (1.0, 3), route53_share: 0.2 });
    for bad in ["rate-per-key = 0", "burst-per-network = 0", "route53-share = 0", "route53-share = 1.5"] {
        let spec: UpdateSpec = toml::from_str(bad).unwrap();
        let e = limits(&spec).unwrap_err().to_string();
        assert!(e.starts_with("update."), "{bad}: {e}");
    }
}

#[test]
fn routed_and_alias_sets_are_not_clobbered() {
    let before = current();
    for u in [rr("www.example.com", 1, rtype::A, 60, &[192, 0, 2, 1]), rr("www.example.com", 255, rtype::ANY, 0, &[])] {
        let mut after = before.clone();
        let e = apply(&msg(vec![], vec![u]), &zone(), &mut after).err().unwrap();
        assert_eq!(e.rcode, Rcode::Refused);
        assert!(e.why.contains("routing policy"), "{}", e.why);
    }
}

#[test]
fn form_and_policy_checks() {
    let z = zone();
    let outside = msg(vec![], vec![rr("host.example.org", 1, rtype::A, 60, &[192, 0, 2, 1])]);
    assert_eq!(check_form(&outside, &z).err().map(|e| e.rcode), Some(Rcode::NotZone));
    let ttl = msg(vec![rr("host.example.com", 255, rtype::ANY, 5, &[])], vec![]);
    assert_eq!(check_form(&ttl, &z).err().map(|e| e.rcode), Some(Rcode::FormErr));
    let any_add = msg(vec![], vec![rr("host.example.com", 1, rtype::ANY, 60, &[])]);
    assert_eq!(check_form(&any_add, &z).err().map(|e| e.rcode), Some(Rcode::FormErr));

    let keys = KeyRing::new(vec![Key {
        name: absolute("dhcp").unwrap(),
        algorithm: Algorithm::HmacSha256,
        secret: vec![1; 32],
    }]);
    let g = grant(
        &GrantSpec {
            key: Some("dhcp".into()),
            zones: vec!["example.com.".into()],
            names: vec!["*.dhcp.example.com".into()],
            types: vec!["a".into(), "PTR".into()],
            ..Default::default()
        },
        &keys,
    )
    .unwrap();
    let (udp, tcp) = (r53dns_server::Transport::Udp, r53dns_server::Transport::Tcp);
    assert!(g.admits(Some("dhcp"), "10.1.2.3".parse().unwrap(), udp));
    assert!(!g.admits(None, "10.1.2.3".parse().unwrap(), tcp));
    // A grant without a key trusts addresses: over TCP only, which cannot be spoofed.
    let keyless = Grant { key: None, networks: vec![("10.0.0.0".parse().unwrap(), 8)], ..g.clone() };
    assert!(keyless.admits(None, "10.1.2.3".parse().unwrap(), tcp));
    assert!(!keyless.admits(None, "10.1.2.3".parse().unwrap(), udp));
    assert!(!keyless.admits(None, "192.0.2.1".parse().unwrap(), tcp));
    let ok = msg(vec![], vec![rr("pc1.dhcp.example.com", 1, rtype::A, 60, &[10, 0, 0, 1])]);
    assert!(check_policy(&ok, &z, &[&g]).is_ok());
    for (name, code) in [("dhcp.example.com", rtype::A), ("pc1.dhcp.example.com", rtype::TXT)] {
        let m = msg(vec![], vec![rr(name, 1, code, 60, &[10, 0, 0, 1])]);
        assert_eq!(check_policy(&m, &z, &[&g]).err().map(|e| e.rcode), Some(Rcode::Refused), "{name}");
    }
    let open = Grant { names: vec![], types: vec![], ..g.clone() };
    let soa = msg(vec![], vec![rr("example.com", 255, rtype::SOA, 0, &[])]);
    let apex_ns = msg(vec![], vec![rr("example.com", 1, rtype::NS, 60, b"\x02ns\x00")]);
    let hinfo = msg(vec![], vec![rr("pc.example.com", 1, rtype::HINFO, 60, b"\x01a\x01b")]);
    for m in [soa, apex_ns, hinfo] {
        assert_eq!(check_policy(&m, &z, &[&open]).err().map(|e| e.rcode), Some(Rcode::Refused));
    }
    assert!(grant(&GrantSpec { zones: vec!["example.com".into()], ..Default::default() }, &keys).is_err());
    assert!(
        grant(&GrantSpec { key: Some("nope".into()), zones: vec!["x".into()], ..Default::default() }, &keys).is_err()
    );
}

#[test]
fn bind_key_files_are_read_with_line_numbers_in_errors() {
    let text = "# tsig-keygen output\nkey \"dhcp-updater\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0\";\n};\n/* another */ key legacy { algorithm hmac-md5; secret \"YWJj\"; };\n";
    let keys = crate::bindconf::read_keys(text, Path::new("k.conf")).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].name, "dhcp-updater");
    assert_eq!(keys[0].secret, "c2VjcmV0c2VjcmV0");
    assert_eq!(keys[1].algorithm.as_deref(), Some("hmac-md5"));
    let ring = load_keys(&TsigSpec { key: keys, key_files: vec![] }).unwrap();
    assert_eq!(ring.by_label("LEGACY").map(|k| k.algorithm), Some(Algorithm::HmacMd5));
    let e =
        crate::bindconf::read_keys("key \"x\" {\n algorithm hmac-sha256;\n colour blue;\n};\n", Path::new("k.conf"))
            .unwrap_err()
            .to_string();
    assert!(e.starts_with("k.conf:3:"), "{e}");
}

/// NAPTR's replacement name is compared without case, as every name the type table places.
#[test]
fn naptr_replacements_are_compared_without_case() {
    let mut s = Sets::new();
    read_sets(&[set("sip.example.com", rtype::NAPTR, 300, &[r#"10 20 "U" "E2U+sip" "" Proxy.Example.com."#])], &mut s);
    let mut rdata = vec![0, 10, 0, 20, 1, b'U', 7];
    rdata.extend_from_slice(b"E2U+sip");
    rdata.push(0);
    rdata.extend_from_slice(b"\x05PROXY\x07EXAMPLE\x03com\x00");
    let exact = vec![rr("sip.example.com", 1, rtype::NAPTR, 0, &rdata)];
    assert!(check_prerequisites(&msg(exact, vec![]), &s).is_ok());
    // A deletion of that record by its upper-case spelling empties the set.
    let mut after = s.clone();
    apply(&msg(vec![], vec![rr("sip.example.com", 254, rtype::NAPTR, 0, &rdata)]), &zone(), &mut after).unwrap();
    let changes = diff(&s, &after);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].action, Action::Delete);
}
