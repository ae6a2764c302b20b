//! Which replica answered: CHAOS `id.server`/`hostname.bind`, `version.bind`/
//! `version.server` and NSID (RFC 5001), answered as NSD answers them, and hidden on request.

use std::process::Command;

use crate::support::nsd::Nsd;
use crate::support::server::{Binary, data_dir};

/// dig's view of an answer: status, flags and the answer section, TTL and class included.
fn dig(server: std::net::SocketAddr, args: &[&str]) -> (String, String, Vec<String>, Option<String>) {
    let out = Command::new("dig")
        .args([&format!("@{}", server.ip()), "-p", &server.port().to_string(), "+norec"])
        .args(args)
        .output()
        .expect("dig must be installed (apt-get install bind9-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split("status: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("").to_owned();
    let flags = text.split("flags: ").nth(1).and_then(|s| s.split(';').next()).unwrap_or("").to_owned();
    let answer: Vec<String> = text
        .split(";; ANSWER SECTION:\n")
        .nth(1)
        .map(|a| {
            a.lines()
                .take_while(|l| !l.is_empty())
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default();
    let nsid = text.lines().find(|l| l.starts_with("; NSID:")).map(str::to_owned);
    (status, flags, answer, nsid)
}

#[test]
fn identity_version_and_nsid_are_answered_as_nsd_answers_them() {
    let file = data_dir().join("zones/example.com.zone");
    let nsd = Nsd::start_configured(
        &[("example.com.".to_owned(), file.as_path())],
        "  hide-identity: no\n  hide-version: no\n  identity: \"replica-a\"\n  nsid: \"ascii_replica-a\"\n  version: \"test 1\"\n",
    );
    let ours = Binary::serve(&[
        "--zone",
        &file.display().to_string(),
        "--identity",
        "replica-a",
        "--nsid",
        "replica-a",
        "--server-version",
        "test 1",
    ]);
    let ours = ours.addr.unwrap();
    for args in [
        &["CH", "TXT", "id.server"][..],
        &["CH", "TXT", "ID.Server"],
        &["CH", "TXT", "hostname.bind"],
        &["CH", "TXT", "version.bind"],
        &["CH", "TXT", "version.server"],
        &["CH", "ANY", "id.server"],
        &["CH", "TXT", "authors.bind"],
        &["CH", "A", "id.server"],
        &["CH", "TXT", "x.id.server"],
        &["+noedns", "CH", "TXT", "id.server"],
        &["+nsid", "www.example.com", "A"],
        &["+nsid", "CH", "TXT", "id.server"],
        &["www.example.com", "A"],
    ] {
        let (a, b) = (dig(ours, args), dig(nsd.addr, args));
        assert_eq!(a, b, "{args:?}");
    }
    let (status, _, answer, nsid) = dig(ours, &["+nsid", "CH", "TXT", "id.server"]);
    assert_eq!(status, "NOERROR");
    assert_eq!(answer, ["id.server. 0 CH TXT \"replica-a\""]);
    assert_eq!(nsid.as_deref(), Some("; NSID: 72 65 70 6c 69 63 61 2d 61 (\"replica-a\")"));
}

#[test]
fn identity_and_version_can_be_hidden_and_default_to_host_and_release() {
    let file = data_dir().join("zones/example.com.zone").display().to_string();
    let hidden = Binary::serve(&["--zone", &file, "--identity", "", "--server-version", ""]);
    for name in ["id.server", "hostname.bind", "version.bind", "version.server"] {
        assert_eq!(dig(hidden.addr.unwrap(), &["CH", "TXT", name]).0, "REFUSED", "{name}");
    }
    assert_eq!(dig(hidden.addr.unwrap(), &["+nsid", "www.example.com", "A"]).3, None, "no NSID unless configured");
    let plain = Binary::serve(&["--zone", &file]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    assert_eq!(dig(plain.addr.unwrap(), &["CH", "TXT", "id.server"]).2, [format!("id.server. 0 CH TXT \"{host}\"")]);
    let version = dig(plain.addr.unwrap(), &["CH", "TXT", "version.bind"]).2;
    assert_eq!(version, [format!("version.bind. 0 CH TXT \"r53dns {}\"", env!("CARGO_PKG_VERSION"))]);
}
