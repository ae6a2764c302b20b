//! Every record type BIND 9.18 or NSD reads in presentation form loads here, prints back in
//! a form BIND reads to the same records, and is served with the same RDATA as BIND and NSD
//! serve it (compared as dig decodes each answer).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::bind::Bind;
use crate::support::nsd::Nsd;
use crate::support::server::{Binary, data_dir};

/// Types NSD 4.6 does not read in presentation form (it serves them from `\#` form only).
const NOT_IN_NSD: &[&str] = &[
    "NSAP-PTR", "GPOS", "EID", "NIMLOC", "ATMA", "A6", "SINK", "HIP", "NINFO", "RKEY", "TALINK", "DOA", "AMTRELAY",
    "RESINFO", "DSYNC", "WALLET", "TA",
];
/// Types BIND refuses as obsolete.
const NOT_IN_BIND: &[&str] = &["MD", "MF"];

fn corpus() -> std::path::PathBuf {
    data_dir().join("types/types.example.zone")
}

/// (owner, type) of every record line of the corpus.
fn questions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(corpus()).unwrap();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 || line.starts_with([';', '$', '@', ' ']) {
            continue;
        }
        out.insert((format!("{}.types.example.", f[0]), f[1].to_owned()));
    }
    out.into_iter().collect()
}

/// The corpus without the lines of `types`.
fn without(types: &[&str], dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(corpus()).unwrap();
    let kept: Vec<&str> =
        text.lines().filter(|l| !l.split_whitespace().nth(1).is_some_and(|t| types.contains(&t))).collect();
    let path = dir.join(format!("without-{}.zone", types.len()));
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    path
}

/// The answer section as dig prints it, normalised (one space between fields).
fn dig(server: std::net::SocketAddr, name: &str, t: &str) -> Vec<String> {
    let out = Command::new("dig")
        .args([&format!("@{}", server.ip()), "-p", &server.port().to_string(), "+norec", "+noall", "+answer"])
        .args([name, t])
        .output()
        .expect("dig must be installed (apt-get install bind9-dnsutils)");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

#[test]
fn every_type_is_served_with_the_rdata_bind_and_nsd_serve() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Binary::serve(&["--zone", &corpus().display().to_string()]);
    let addr = ours.addr.unwrap();
    let bind = Bind::primary("types.example.", &without(NOT_IN_BIND, dir.path()));
    let nsd_file = without(NOT_IN_NSD, dir.path());
    let nsd = Nsd::start(&[("types.example.".to_owned(), nsd_file.as_path())]);
    let qs = questions();
    assert!(qs.len() > 60, "the corpus has a record of every type: {}", qs.len());
    for (name, t) in &qs {
        let got = dig(addr, name, t);
        assert!(!got.is_empty(), "r53dns has no {name} {t}");
        if !NOT_IN_BIND.contains(&t.as_str()) {
            assert_eq!(got, dig(bind.addr, name, t), "{name} {t}: r53dns and BIND differ");
        }
        if !NOT_IN_NSD.contains(&t.as_str()) {
            assert_eq!(got, dig(nsd.addr, name, t), "{name} {t}: r53dns and NSD differ");
        }
    }
}

/// `named-checkzone -D` output: the records as BIND reads them, one per line, sorted.
fn bind_reads(file: &Path) -> Vec<String> {
    let out = Command::new("named-checkzone")
        .args(["-D", "-o", "-", "types.example"])
        .arg(file)
        .output()
        .expect("named-checkzone must be installed (apt-get install bind9-utils)");
    assert!(out.status.success(), "BIND does not load {}: {}", file.display(), String::from_utf8_lossy(&out.stdout));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" IN ") || l.contains("\tIN"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

#[test]
fn what_is_written_back_bind_reads_as_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let original = without(NOT_IN_BIND, dir.path());
    let (zone, warnings) = r53dns_zone::load_zone_file(&original, None).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let written = dir.path().join("written.zone");
    std::fs::write(&written, zone.to_text()).unwrap();
    assert_eq!(bind_reads(&written), bind_reads(&original));
    // And the written text loads here to the same records (text → wire → text → wire).
    let origin = r53dns_zone::Name::parse("types.example.", None).unwrap();
    let (again, _) = r53dns_zone::load_zone_file(&written, Some(&origin)).unwrap();
    assert_eq!(again.to_text(), zone.to_text());
}
