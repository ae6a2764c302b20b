//! Conversion golden files: `tests/data/route53/<case>.json` (a hosted zone and its record
//! sets in the AWS CLI's JSON shape, plus health, endpoint addresses and CIDR blocks) must
//! convert to `<case>.zone`. `UPDATE_GOLDEN=1` rewrites the expected files; review the diff.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use r53dns_route53::convert::{EndpointAddrs, Inputs, convert};
use r53dns_route53::fetch::parse_prefix;
use r53dns_route53::model::{HostedZone, RecordSet};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Endpoint {
    #[serde(default, rename = "A")]
    a: Vec<std::net::Ipv4Addr>,
    #[serde(default, rename = "AAAA")]
    aaaa: Vec<std::net::Ipv6Addr>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Cidr {
    collection_id: String,
    location_name: String,
    blocks: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Case {
    hosted_zone: HostedZone,
    resource_record_sets: Vec<RecordSet>,
    #[serde(default)]
    other_zones: Vec<OtherZone>,
    #[serde(default)]
    health: HashMap<String, bool>,
    #[serde(default)]
    endpoints: HashMap<String, Endpoint>,
    #[serde(default)]
    cidr_blocks: Vec<Cidr>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OtherZone {
    hosted_zone: HostedZone,
    resource_record_sets: Vec<RecordSet>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/route53")
}

fn run(json: &Path) {
    let case: Case = serde_json::from_str(&std::fs::read_to_string(json).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", json.display()));
    let mut inputs = Inputs { health: case.health, ..Default::default() };
    for (name, e) in case.endpoints {
        inputs.endpoints.insert(name, EndpointAddrs { a: e.a, aaaa: e.aaaa });
    }
    for c in case.cidr_blocks {
        let blocks = c.blocks.iter().map(|b| parse_prefix(b).unwrap()).collect();
        inputs.cidr_blocks.insert((c.collection_id, c.location_name), blocks);
    }
    let id = case.hosted_zone.id.clone();
    inputs.zones.insert(id.clone(), (case.hosted_zone, case.resource_record_sets));
    for z in case.other_zones {
        inputs.zones.insert(z.hosted_zone.id.clone(), (z.hosted_zone, z.resource_record_sets));
    }
    let got = match convert(&id, &inputs, |_| 2024010101) {
        Ok(c) => {
            let mut text = c.zone.to_text();
            for w in &c.warnings {
                text.push_str(&format!(";; warning: {w}\n"));
            }
            for e in &c.endpoints {
                text.push_str(&format!(";; endpoint: {e}\n"));
            }
            text
        }
        Err(e) => format!(";; error: {e}\n"),
    };
    let expected_path = json.with_extension("zone");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(&expected_path).unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
    assert_eq!(got, expected, "{} (UPDATE_GOLDEN=1 to rewrite)", json.display());
}

#[test]
fn conversions_match_golden_files() {
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(data_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files.iter().filter(|p| p.extension().is_some_and(|x| x == "json")) {
        run(f);
        n += 1;
    }
    assert!(n >= 4, "only {n} golden cases");
}

#[test]
fn same_content_same_hash_and_serial_input() {
    let json = data_dir().join("basic.json");
    let case: Case = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let mut a = Inputs::default();
    a.zones.insert(case.hosted_zone.id.clone(), (case.hosted_zone.clone(), case.resource_record_sets.clone()));
    let mut reversed = case.resource_record_sets.clone();
    reversed.reverse();
    let mut b = Inputs::default();
    b.zones.insert(case.hosted_zone.id.clone(), (case.hosted_zone.clone(), reversed));
    let ha = convert(&case.hosted_zone.id, &a, |_| 1).unwrap().content_hash;
    let hb = convert(&case.hosted_zone.id, &b, |_| 1).unwrap().content_hash;
    assert_eq!(ha, hb, "order of record sets must not matter");
    let mut changed = case.resource_record_sets.clone();
    changed.retain(|r| r.rtype != "TXT");
    let mut c = Inputs::default();
    c.zones.insert(case.hosted_zone.id.clone(), (case.hosted_zone, changed));
    let hc = convert("Z1BASIC", &c, |_| 1).unwrap().content_hash;
    assert_ne!(ha, hc);
}

/// Found by the `route53_value` fuzz target: a name whose last label ends in an escaped
/// backslash was taken for one ending in an escaped dot, and gained an empty label.
#[test]
fn names_ending_in_escaped_backslashes_round_trip() {
    use r53dns_route53::convert::{parse_route53_name, route53_name};
    for text in [r"\\\\", r"a\\.example.", r"a\..example.", r"\\.", r"x\\\\\..example"] {
        let name = parse_route53_name(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let back = parse_route53_name(&route53_name(&name)).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(back.wire(), name.wire(), "{text}");
    }
    // An escaped final dot is part of the label: the name is made absolute after it.
    assert_eq!(parse_route53_name(r"a\.").unwrap().label_count(), 1);
    assert_eq!(parse_route53_name(r"a\\.").unwrap().label_count(), 1);
}

/// Found by the `route53_value` fuzz target: a backslash before a non-ASCII character split
/// the character and panicked.
#[test]
fn escapes_of_non_ascii_characters_do_not_split_them() {
    use r53dns_route53::convert::{octal_escapes_to_decimal, parse_route53_name, parse_value};
    assert_eq!(octal_escapes_to_decimal(r"a\éb\101").unwrap(), r"a\éb\065");
    assert!(parse_value(16, "\"x\\ΐ\"").is_ok());
    let _ = parse_route53_name(r"\ΐ.example.");
    let _ = parse_value(0x110, "/\u{1}\0\\/\u{1}\0\\\0\u{10}\\\0\\ΐ");
}
