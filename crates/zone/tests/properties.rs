//! Property tests of the snapshot: every record placed in a zone is found by lookup, and the
//! same input always builds the same zone.

use proptest::prelude::*;
use r53dns_zone::{Data, LookupOptions, Name, Rcode, Source, ZoneBuilder, ZoneSet, rtype};

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
}

fn record() -> impl Strategy<Value = (Vec<String>, u16, Vec<u8>)> {
    let rdata = prop_oneof![
        any::<[u8; 4]>().prop_map(|a| (rtype::A, a.to_vec())),
        any::<[u8; 16]>().prop_map(|a| (rtype::AAAA, a.to_vec())),
        "[ -~]{0,40}".prop_map(|s| {
            let mut v = vec![s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            (rtype::TXT, v)
        }),
    ];
    (proptest::collection::vec(label(), 1..4), rdata).prop_map(|(labels, (t, rd))| (labels, t, rd))
}

fn soa() -> Vec<u8> {
    let ns: Name = "ns.zone.example.".parse().unwrap();
    let mut v = ns.wire().to_vec();
    v.extend_from_slice(ns.wire());
    v.extend_from_slice(&[0; 20]);
    v
}

fn build(records: &[(Vec<String>, u16, Vec<u8>)]) -> ZoneSet {
    let apex: Name = "zone.example.".parse().unwrap();
    let mut b = ZoneBuilder::new(apex.clone(), Source::Other("proptest".into()));
    b.add(&apex, rtype::SOA, 300, soa().into(), "").unwrap();
    let ns: Name = "ns.zone.example.".parse().unwrap();
    b.add(&apex, rtype::NS, 300, ns.wire().into(), "").unwrap();
    for (labels, t, rd) in records {
        let owner = Name::parse(&labels.join("."), Some(&apex)).unwrap();
        b.add(&owner, *t, 60, rd.clone().into(), "").unwrap();
    }
    let (zone, _) = b.finish().unwrap();
    let mut set = ZoneSet::new();
    set.insert(zone);
    set
}

proptest! {
    #[test]
    fn every_record_is_found(records in proptest::collection::vec(record(), 1..60)) {
        let set = build(&records);
        let apex: Name = "zone.example.".parse().unwrap();
        for (labels, t, rd) in &records {
            // Asked in upper case: names compare case-insensitively.
            let owner = Name::parse(&labels.join(".").to_uppercase(), Some(&apex)).unwrap();
            let ans = set.lookup(owner.wire(), *t, LookupOptions::default());
            prop_assert_eq!(ans.rcode, Rcode::NoError);
            prop_assert!(ans.authoritative);
            let found = ans.answer.iter().any(|i| match i.data {
                Data::Rrset(r) => r.rtype() == *t && r.rdatas().iter().any(|x| x[..] == rd[..]),
                Data::Synth(_) => false,
            });
            prop_assert!(found, "{} {} not found", owner, t);
        }
    }

    #[test]
    fn building_twice_gives_the_same_zone(records in proptest::collection::vec(record(), 1..40)) {
        let a = build(&records);
        let b = build(&records);
        let za = a.zones().next().unwrap();
        let zb = b.zones().next().unwrap();
        prop_assert_eq!(za.to_text(), zb.to_text());
        prop_assert_eq!(za.record_count(), zb.record_count());
    }

    #[test]
    fn names_below_existing_ones_are_nxdomain(records in proptest::collection::vec(record(), 1..20)) {
        let set = build(&records);
        let apex: Name = "zone.example.".parse().unwrap();
        for (labels, _, _) in &records {
            let below = Name::parse(&format!("zz-not-there.{}", labels.join(".")), Some(&apex)).unwrap();
            let ans = set.lookup(below.wire(), rtype::A, LookupOptions::default());
            prop_assert_eq!(ans.rcode, Rcode::NxDomain);
            prop_assert_eq!(ans.authority.len(), 1);
        }
    }
}
