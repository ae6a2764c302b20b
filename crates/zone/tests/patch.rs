//! A patched zone (`Zone::patched`: the old version plus a few owners' new records) answers
//! exactly as the zone built again from all its records: every question, the zone text, the
//! record count, the serial, the set of names (empty non-terminals included), and the IXFR
//! delta from the old version.

use std::collections::BTreeMap;

use proptest::prelude::*;
use r53dns_zone::journal::diff;
use r53dns_zone::{
    Client, GeoLocation, LookupOptions, Member, Name, Policy, Routed, RoutingContext, Rrset, Rule, Source, Zone,
    ZoneBuilder, ZoneSet, rtype,
};

const APEX: &str = "example.";
/// Labels of owner names: `*` makes wildcards, `ns` glue below delegations.
const LABELS: [&str; 5] = ["a", "b", "*", "ns", "x"];
/// Templates an owner's data is drawn from (index into `add_owner`).
const TEMPLATES: u8 = 12;

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn wire_of(s: &str) -> Vec<u8> {
    name(s).wire().to_vec()
}

fn txt(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn soa(serial: u32) -> Vec<u8> {
    let mut v = wire_of("ns.example.");
    v.extend(wire_of("hostmaster.example."));
    for n in [serial, 7200, 900, 1_209_600, 300] {
        v.extend(n.to_be_bytes());
    }
    v
}

fn member(id: &str, rule: Rule, healthy: bool, rtype: u16, rdata: Vec<u8>) -> Member {
    Member { id: id.into(), rule, healthy, rrset: Rrset::new(rtype, 60, vec![rdata.into()]) }
}

/// Adds template `t` (variant `v`) at `owner`; every template is valid on its own, so any
/// choice per owner makes a valid zone.
fn add_owner(b: &mut ZoneBuilder, owner: &str, t: u8, v: u8) {
    let o = name(owner);
    let apex = owner == APEX;
    let a = |last: u8| vec![192, 0, 2, last];
    match t {
        0 => {
            b.add(&o, rtype::A, 300, a(v).into(), "").unwrap();
            if v.is_multiple_of(2) {
                b.add(&o, rtype::A, 300, a(v + 1).into(), "").unwrap();
            }
        }
        1 => {
            b.add(&o, rtype::A, 60 + u32::from(v), a(v).into(), "").unwrap();
            b.add(&o, rtype::TXT, 60, txt(&format!("v{v}")).into(), "").unwrap();
        }
        2 if !apex => {
            let target = if v.is_multiple_of(2) { "a.example." } else { "elsewhere.test." };
            b.add(&o, rtype::CNAME, 300, wire_of(target).into(), "").unwrap();
        }
        3 if !apex => {
            // A delegation, with its name server below it (glue, if that owner has an address).
            let ns = if v.is_multiple_of(2) { format!("ns.{owner}") } else { "ns.a.example.".into() };
            b.add(&o, rtype::NS, 3600, wire_of(&ns).into(), "").unwrap();
            if v.is_multiple_of(3) {
                b.add(&o, rtype::DS, 3600, vec![0, 1, 8, 2, v].into(), "").unwrap();
            }
        }
        4 => {
            let mut mx = vec![0, 10];
            mx.extend(wire_of(if v.is_multiple_of(2) { "a.example." } else { "ns.x.example." }));
            b.add(&o, rtype::MX, 300, mx.into(), "").unwrap();
        }
        5 => {
            let g = Routed {
                rtype: rtype::A,
                policy: Policy::Weighted,
                members: vec![
                    member("one", Rule::Weight(u32::from(v % 4)), true, rtype::A, a(10)),
                    member("two", Rule::Weight(3), !v.is_multiple_of(3), rtype::A, a(11)),
                ]
                .into(),
            };
            b.add_routed(&o, g, "").unwrap();
        }
        6 => {
            let g = Routed {
                rtype: rtype::A,
                policy: Policy::Failover,
                members: vec![
                    member("primary", Rule::Primary, v.is_multiple_of(2), rtype::A, a(20)),
                    member("secondary", Rule::Secondary, true, rtype::A, a(21)),
                ]
                .into(),
            };
            b.add_routed(&o, g, "").unwrap();
        }
        7 => {
            let g = Routed {
                rtype: rtype::AAAA,
                policy: Policy::Latency,
                members: vec![
                    member(
                        "eu",
                        Rule::Region("eu-west-1".into()),
                        true,
                        rtype::AAAA,
                        vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, v],
                    ),
                    member(
                        "us",
                        Rule::Region("us-east-1".into()),
                        true,
                        rtype::AAAA,
                        vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, v],
                    ),
                ]
                .into(),
            };
            b.add_routed(&o, g, "").unwrap();
            b.add(&o, rtype::TXT, 60, txt("beside").into(), "").unwrap();
        }
        8 => {
            let geo = |country: Option<&str>| GeoLocation {
                continent: None,
                country: country.map(Into::into),
                subdivision: None,
            };
            let g = Routed {
                rtype: rtype::A,
                policy: Policy::Geolocation,
                members: vec![
                    member("de", Rule::Geo(geo(Some("DE"))), true, rtype::A, a(30)),
                    member("default", Rule::Geo(geo(Some("*"))), true, rtype::A, a(31 + v % 2)),
                ]
                .into(),
            };
            b.add_routed(&o, g, "").unwrap();
        }
        9 => {
            b.add(&o, rtype::AAAA, 300, vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, v].into(), "")
                .unwrap();
            b.add(&o, rtype::TXT, 300, txt("nine").into(), "").unwrap();
        }
        10 if !apex => {
            b.add(
                &o,
                rtype::DNAME,
                300,
                wire_of(if v.is_multiple_of(2) { "other.test." } else { "b.example." }).into(),
                "",
            )
            .unwrap();
        }
        11 => {
            // An alias whose target is not resolved yet.
            b.add_unresolved(&o, rtype::A, 60).unwrap();
        }
        _ => b.add(&o, rtype::TXT, 60, txt("fallback").into(), "").unwrap(),
    }
}

/// Owner → (template, variant); the apex always has its SOA and NS besides.
type Content = BTreeMap<String, (u8, u8)>;

fn build(content: &Content, serial: u32, only: Option<&[String]>) -> Zone {
    let mut b = ZoneBuilder::new(name(APEX), Source::Other("test".into()));
    b.add(&name(APEX), rtype::SOA, 3600, soa(serial).into(), "").unwrap();
    b.add(&name(APEX), rtype::NS, 3600, wire_of("ns.example.").into(), "").unwrap();
    for (owner, &(t, v)) in content {
        if only.is_none_or(|o| o.contains(owner) || owner == APEX) {
            add_owner(&mut b, owner, t, v);
        }
    }
    b.finish().unwrap().0
}

/// Every owner name the labels make, up to three below the apex.
fn pool() -> Vec<String> {
    let mut out = vec![APEX.to_owned()];
    let mut level = vec![APEX.to_owned()];
    for _ in 0..3 {
        let next: Vec<String> = level.iter().flat_map(|p| LABELS.iter().map(move |l| format!("{l}.{p}"))).collect();
        out.extend(next.iter().cloned());
        level = next;
    }
    out
}

fn answers(zone: &Zone, questions: &[Vec<u8>]) -> Vec<String> {
    let mut set = ZoneSet::new();
    set.set_routing(RoutingContext { home_region: Some("eu-west-1".into()), ..RoutingContext::default() });
    set.insert(zone.clone());
    let mut out = Vec::new();
    for q in questions {
        for t in [
            rtype::A,
            rtype::AAAA,
            rtype::TXT,
            rtype::NS,
            rtype::CNAME,
            rtype::MX,
            rtype::SOA,
            rtype::DS,
            rtype::DNAME,
            255,
        ] {
            for dnssec_ok in [false, true] {
                for random in [0, u64::MAX / 3 * 2] {
                    let opts =
                        LookupOptions { dnssec_ok, client: Client { ip: None, random }, ..LookupOptions::default() };
                    out.push(format!("{:?}", set.lookup(q, t, opts)));
                }
            }
        }
    }
    out
}

fn names_of(zone: &Zone) -> Vec<String> {
    let mut v: Vec<String> = zone.nodes().map(|n| n.name().to_lowercase().to_text()).collect();
    v.sort();
    v
}

fn delta_text(old: &Zone, new: &Zone) -> String {
    let d = diff(old, new, &RoutingContext::default()).unwrap();
    let mut del: Vec<String> = d.deleted.iter().map(|(n, r)| format!("{n} {r:?}")).collect();
    let mut add: Vec<String> = d.added.iter().map(|(n, r)| format!("{n} {r:?}")).collect();
    del.sort();
    add.sort();
    format!("{} {:?} {:?} {del:?} {add:?}", d.records(), d.from_soa, d.to_soa)
}

fn check(content: Content, changes: Vec<(usize, Option<(u8, u8)>)>) {
    let pool = pool();
    let old = build(&content, 1, None);
    let mut next = content.clone();
    let mut names: Vec<String> = Vec::new();
    for (i, data) in changes {
        let owner = pool[i % pool.len()].clone();
        match data {
            Some(d) => {
                next.insert(owner.clone(), d);
            }
            None => {
                next.remove(&owner);
            }
        }
        if !names.contains(&owner) {
            names.push(owner);
        }
    }
    let rebuilt = build(&next, 2, None);
    let from = build(&next, 2, Some(&names));
    let changed: Vec<Name> = names.iter().map(|n| name(n)).collect();
    let patched = old.patched(&from, &changed).expect("an unsigned zone can be patched");
    assert_eq!(patched.serial(), 2);
    assert_eq!(patched.record_count(), rebuilt.record_count());
    assert_eq!(patched.negative_soa(), rebuilt.negative_soa());
    assert_eq!(names_of(&patched), names_of(&rebuilt), "names, empty non-terminals included");
    assert_eq!(patched.to_text(), rebuilt.to_text());
    let mut questions: Vec<Vec<u8>> = pool.iter().map(|n| wire_of(n)).collect();
    questions.extend(pool.iter().map(|n| wire_of(&format!("zz.{n}"))));
    questions.extend(pool.iter().map(|n| wire_of(&format!("q.zz.{n}"))));
    assert_eq!(answers(&patched, &questions), answers(&rebuilt, &questions));
    assert_eq!(delta_text(&old, &patched), delta_text(&old, &rebuilt), "the IXFR delta");
    // A patch of the patched version still agrees.
    let again = rebuilt.clone();
    let repatched = patched.patched(&build(&next, 3, Some(&names)), &changed).unwrap();
    assert_eq!(repatched.to_text().replace(" 3 7200 ", " 2 7200 "), again.to_text());
}

fn content() -> impl Strategy<Value = Content> {
    let n = pool().len();
    proptest::collection::btree_map(0..n, (0..TEMPLATES, any::<u8>()), 0..40)
        .prop_map(|m| m.into_iter().map(|(i, d)| (pool()[i].clone(), d)).collect())
}

fn changes() -> impl Strategy<Value = Vec<(usize, Option<(u8, u8)>)>> {
    proptest::collection::vec((any::<usize>(), proptest::option::weighted(0.6, (0..TEMPLATES, any::<u8>()))), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

    #[test]
    fn a_patched_zone_answers_as_the_rebuilt_one(content in content(), changes in changes()) {
        check(content, changes);
    }
}

#[test]
fn names_come_and_go_with_their_empty_non_terminals() {
    let mut c = Content::new();
    c.insert("a.b.x.example.".into(), (0, 1));
    c.insert("b.example.".into(), (3, 0)); // a delegation
    c.insert("ns.b.example.".into(), (0, 2)); // its glue
    c.insert("*.a.example.".into(), (1, 3)); // a wildcard
    let pool = pool();
    let at = |n: &str| pool.iter().position(|p| p == n).unwrap();
    // The deep name goes: b.x and x go with it. A name under the wildcard appears.
    check(c.clone(), vec![(at("a.b.x.example."), None), (at("x.*.a.example."), Some((0, 9)))]);
    // The glue changes, the delegation goes, the apex gets an address.
    check(c.clone(), vec![(at("ns.b.example."), Some((9, 1))), (at("b.example."), None), (at(APEX), Some((0, 4)))]);
    // A name in the middle of an empty non-terminal chain gets data, then loses it.
    check(c.clone(), vec![(at("x.example."), Some((5, 1)))]);
    check(c, vec![(at("b.x.example."), Some((6, 0))), (at("a.b.x.example."), None)]);
}

#[test]
fn a_one_name_patch_in_a_large_zone_journals_that_name() {
    let mut c = Content::new();
    for i in 0..5000u32 {
        c.insert(format!("h{i}.example."), (0, (i % 200) as u8));
    }
    let old = build(&c, 1, None);
    let mut next = c.clone();
    next.insert("h7.example.".into(), (1, 1));
    let names = vec!["h7.example.".to_owned()];
    let patched = old.patched(&build(&next, 2, Some(&names)), &[name("h7.example.")]).unwrap();
    let d = diff(&old, &patched, &RoutingContext::default()).unwrap();
    assert_eq!((d.deleted.len(), d.added.len()), (1, 2));
    assert_eq!(patched.to_text(), build(&next, 2, None).to_text());
}
