//! Zone transfers out (RFC 5936 AXFR, RFC 1995 IXFR) to allowed clients: dig, and NSD from
//! Debian following r53dns as a secondary and answering the same.

use std::collections::BTreeSet;
use std::process::Command;

use crate::support::bind::Bind;
use crate::support::dns::{Query, ask};
use crate::support::nsd::Nsd;
use crate::support::server::{Binary, data_dir};

fn dig(args: &[&str]) -> String {
    let out = Command::new("dig").args(args).output().expect("dig must be installed");
    String::from_utf8(out.stdout).unwrap()
}

fn records(axfr: &str) -> BTreeSet<String> {
    axfr.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase())
        .collect()
}

#[test]
fn axfr_and_ixfr_to_allowed_clients_only() {
    let zones = data_dir().join("zones").display().to_string();
    let b = Binary::serve(&["--zone-dir", &zones, "--allow-transfer", "127.0.0.1/32"]);
    let addr = b.addr.unwrap();
    let (at, port) = (format!("@{}", addr.ip()), addr.port().to_string());
    let axfr = dig(&["+nocmd", &at, "-p", &port, "example.com", "AXFR"]);
    let set = records(&axfr);
    let zone = r53dns_zone::load_zone_file(&data_dir().join("zones/example.com.zone"), None).unwrap().0;
    assert_eq!(set.len(), zone.record_count(), "every record once (the closing SOA repeats the first):\n{axfr}");
    assert!(axfr.lines().filter(|l| l.contains("\tSOA\t")).count() == 2, "SOA first and last");
    assert!(set.iter().any(|l| l.starts_with("big.example.com. 3600 in a 192.0.2.140")));
    // Signatures travel with the data.
    let signed = dig(&[&at, "-p", &port, "signed.example", "AXFR"]);
    assert!(signed.contains("RRSIG"), "{signed}");
    // IXFR from the current serial: one SOA. From an older one: the whole zone.
    let current = dig(&["+nocmd", &at, "-p", &port, "example.com", "IXFR=2024010101"]);
    assert_eq!(records(&current).len(), 1, "{current}");
    let old = dig(&["+nocmd", &at, "-p", &port, "example.com", "IXFR=2020010101"]);
    assert_eq!(records(&old), set);
    // Over UDP: refused.
    let r = ask(addr, &Query::new("example.com.", "AXFR"));
    assert_eq!(r.rcode, 5);
    // Another client network: refused.
    let denied = Binary::serve(&["--zone-dir", &zones, "--allow-transfer", "10.0.0.0/8"]);
    let d = denied.addr.unwrap();
    let out = dig(&[&format!("@{}", d.ip()), "-p", &d.port().to_string(), "example.com", "AXFR"]);
    assert!(out.contains("Transfer failed") || out.contains("REFUSED"), "{out}");
}

#[test]
fn nsd_follows_r53dns_as_a_secondary() {
    // The primary serves this zone alone, so both servers know exactly the same.
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let b = Binary::serve(&["--zone", &zone, "--allow-transfer", "127.0.0.0/8"]);
    let primary = b.addr.unwrap();
    let nsd = Nsd::secondary("example.com.", primary);
    for (name, t) in [
        ("example.com.", "SOA"),
        ("www.example.com.", "A"),
        ("alias.example.com.", "A"),
        ("x.wild.ent.example.com.", "A"),
        ("x.dn.example.com.", "A"),
        ("host.sub.example.com.", "A"),
        ("txt.example.com.", "TXT"),
        ("nx.c.ent.example.com.", "A"),
        ("big.example.com.", "A"),
    ] {
        let q = Query::new(name, t);
        let (ours, theirs) = (ask(primary, &q), ask(nsd.addr, &q));
        assert_eq!(ours.rcode, theirs.rcode, "{name} {t}");
        assert_eq!(ours.section("answer"), theirs.section("answer"), "{name} {t}");
        assert_eq!(ours.section("authority"), theirs.section("authority"), "{name} {t}");
    }
}

#[test]
fn notify_brings_a_change_to_the_secondary_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.com.zone");
    std::fs::copy(data_dir().join("zones/example.com.zone"), &file).unwrap();
    let nsd_port = crate::support::nsd::free_port();
    let notify = format!("127.0.0.1:{nsd_port}");
    let b =
        Binary::serve(&["--zone", &file.display().to_string(), "--allow-transfer", "127.0.0.0/8", "--notify", &notify]);
    let nsd = Nsd::secondary_on("example.com.", b.addr.unwrap(), Some(nsd_port));
    let q = Query::new("www.example.com.", "A");
    assert_eq!(ask(nsd.addr, &q).section("answer"), vec!["www.example.com. 3600 IN A 192.0.2.3"]);
    // New data and a new serial; SIGHUP; the SOA refresh is 2 hours, so only NOTIFY can
    // bring it over within seconds.
    let text =
        std::fs::read_to_string(&file).unwrap().replace("192.0.2.3", "192.0.2.33").replace("2024010101", "2024010102");
    std::fs::write(&file, text).unwrap();
    b.signal("HUP");
    let mut got = Vec::new();
    for _ in 0..100 {
        got = ask(nsd.addr, &q).section("answer");
        if got == vec!["www.example.com. 3600 IN A 192.0.2.33"] {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the secondary did not follow the NOTIFY: {got:?}");
}

#[test]
fn transfers_signed_with_a_transfer_key_are_allowed_and_signed() {
    const SECRET: &str = "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY=";
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    // No network may transfer; only the key.
    let b = Binary::serve(&["--zone", &zone, "--tsig-key-file", keys.to_str().unwrap(), "--transfer-key", "xfr-key"]);
    let addr = b.addr.unwrap();
    let (at, port) = (format!("@{}", addr.ip()), addr.port().to_string());
    let unsigned = dig(&["+nocmd", &at, "-p", &port, "example.com", "AXFR"]);
    assert!(unsigned.contains("Transfer failed"), "{unsigned}");
    // dig checks the signature of every message it receives.
    let key = format!("hmac-sha256:xfr-key:{SECRET}");
    let signed = dig(&["+nocmd", &at, "-p", &port, "-y", &key, "example.com", "AXFR"]);
    assert!(!signed.contains("Transfer failed") && !signed.contains("TSIG error"), "{signed}");
    let file = r53dns_zone::load_zone_file(&data_dir().join("zones/example.com.zone"), None).unwrap().0;
    assert_eq!(records(&signed).iter().filter(|l| !l.contains(" tsig ")).count(), file.record_count());
    assert!(signed.contains("TSIG"), "the response carries TSIG records: {signed}");
    // An ordinary signed query (a secondary's SOA check) gets a signed answer dig accepts.
    let soa = dig(&[&at, "-p", &port, "-y", &key, "example.com", "SOA"]);
    assert!(soa.contains("status: NOERROR") && soa.contains("TSIG") && !soa.contains("verify"), "{soa}");
    let ixfr = dig(&["+nocmd", &at, "-p", &port, "-y", &key, "example.com", "IXFR=2024010101"]);
    assert!(!ixfr.contains("TSIG error") && ixfr.contains("SOA"), "{ixfr}");
    // The wrong secret: NOTAUTH (BADSIG); an unknown key: NOTAUTH (BADKEY).
    let bad = dig(&[
        "+nocmd",
        &at,
        "-p",
        &port,
        "-y",
        "hmac-sha256:xfr-key:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "example.com",
        "AXFR",
    ]);
    assert!(bad.contains("Transfer failed") || bad.contains("NOTAUTH") || bad.contains("tsig"), "{bad}");
    let stranger =
        dig(&["+nocmd", &at, "-p", &port, "-y", &format!("hmac-sha256:stranger:{SECRET}"), "example.com", "AXFR"]);
    assert!(!stranger.contains("192.0.2.3"), "{stranger}");
    // NSD follows with the key, and answers the same.
    let nsd = Nsd::secondary_signed("example.com.", addr, ("xfr-key", SECRET));
    for (name, t) in [("www.example.com.", "A"), ("example.com.", "SOA"), ("big.example.com.", "A")] {
        let q = Query::new(name, t);
        assert_eq!(ask(addr, &q).section("answer"), ask(nsd.addr, &q).section("answer"), "{name} {t}");
    }
}

#[test]
fn bind_follows_r53dns_incrementally_with_tsig_and_signed_notify() {
    const SECRET: &str = "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY=";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.com.zone");
    std::fs::copy(data_dir().join("zones/example.com.zone"), &file).unwrap();
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    let port = Bind::port();
    let notify = format!("127.0.0.1:{port}");
    let (f, k) = (file.display().to_string(), keys.display().to_string());
    let b = signed_primary(&f, &k, &notify);
    let primary = b.addr.unwrap();
    let bind = Bind::secondary("example.com.", primary, Some(("xfr-key", SECRET)), port);
    let questions = [
        ("example.com.", "SOA"),
        ("www.example.com.", "A"),
        ("alias.example.com.", "A"),
        ("x.wild.ent.example.com.", "A"),
        ("host.sub.example.com.", "A"),
        ("big.example.com.", "A"),
        ("nx.c.ent.example.com.", "A"),
    ];
    let same = |bind: &Bind| {
        for (name, t) in questions {
            let q = Query::new(name, t);
            let (ours, theirs) = (ask(primary, &q), ask(bind.addr, &q));
            assert_eq!(ours.rcode, theirs.rcode, "{name} {t}");
            assert_eq!(ours.section("answer"), theirs.section("answer"), "{name} {t}");
        }
    };
    same(&bind);
    // Two changes, each with a new serial; the SOA refresh is two hours, so only the signed
    // NOTIFY brings them, and BIND asks for (and gets) the differences.
    for (serial, addr) in [("2024010102", "192.0.2.41"), ("2024010103", "192.0.2.42")] {
        let text = std::fs::read_to_string(&file).unwrap();
        let old = text.split_whitespace().skip_while(|w| *w != "hostmaster").nth(1).unwrap().to_owned();
        let text: String = text
            .replacen(&old, serial, 1)
            .lines()
            .map(|l| if l.starts_with("www ") { format!("www A {addr}\n") } else { format!("{l}\n") })
            .collect();
        std::fs::write(&file, text).unwrap();
        b.signal("HUP");
        let want = format!("www.example.com. 3600 IN A {addr}");
        crate::route53::eventually(std::time::Duration::from_secs(15), || {
            ask(bind.addr, &Query::new("www.example.com.", "A")).section("answer") == [want.clone()]
        })
        .unwrap_or_else(|| panic!("BIND did not take serial {serial}:\n{}", bind.log()));
    }
    same(&bind);
    let log = bind.log();
    assert!(log.contains("Transfer status: success"), "{log}");
    // The first transfer is the whole zone; the next two carry only the differences (old
    // and new SOA around one deletion and one addition, closing SOA: 6 records).
    let sizes: Vec<usize> = log
        .lines()
        .filter_map(|l| {
            l.split("Transfer completed: ").nth(1)?.split(" records").next()?.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    assert_eq!(sizes.len(), 3, "{log}");
    assert!(sizes[0] > 50 && sizes[1] == 6 && sizes[2] == 6, "{sizes:?}\n{log}");
    assert!(log.contains("received notify for zone 'example.com': TSIG 'xfr-key'"), "{log}");
}

/// r53dns serving the zone file `zone` whose transfers need the key `xfr-key` from `keys`
/// (no network may transfer otherwise), NOTIFYing `notify` signed with the same key.
pub(crate) fn signed_primary(zone: &str, keys: &str, notify: &str) -> Binary {
    Binary::serve(&[
        "--zone",
        zone,
        "--tsig-key-file",
        keys,
        "--transfer-key",
        "xfr-key",
        "--notify",
        notify,
        "--notify-key",
        "xfr-key",
    ])
}

/// A zone with RRsets too large for one transfer message (800 and 1 200 TXT records at one
/// name, about 40 and 60 KB on the wire) and one record of about 30 KB on its own.
fn big_rrsets_zone(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::from("$TTL 300\n@ SOA ns h 1 7200 900 1209600 300\n NS ns\nns A 192.0.2.1\n");
    for i in 0..800 {
        text.push_str(&format!("big40 TXT \"record {i:04} of the forty-kilobyte set\"\n"));
    }
    for i in 0..1200 {
        text.push_str(&format!("big60 TXT \"record {i:04} of the sixty-kilobyte set\"\n"));
    }
    let strings: Vec<String> = (0..120).map(|i| format!("\"{}\"", format!("{i:03}").repeat(84))).collect();
    text.push_str(&format!("huge TXT {}\nwww A 192.0.2.80\n", strings.join(" ")));
    let file = dir.join("bigsets.example.zone");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn rrsets_larger_than_a_message_reach_nsd_and_bind_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = big_rrsets_zone(dir.path());
    let b = Binary::serve(&["--zone", &file.display().to_string(), "--allow-transfer", "127.0.0.0/8", "--drain", "0s"]);
    let primary = b.addr.unwrap();
    let nsd = Nsd::secondary("bigsets.example.", primary);
    let bind = Bind::secondary("bigsets.example.", primary, None, Bind::port());
    for (who, addr) in [("nsd", nsd.addr), ("bind", bind.addr)] {
        for (name, want) in
            [("big40.bigsets.example.", 800), ("big60.bigsets.example.", 1200), ("huge.bigsets.example.", 1)]
        {
            let theirs = crate::support::dns::ask_tcp(addr, &Query::new(name, "TXT"));
            let ours = crate::support::dns::ask_tcp(primary, &Query::new(name, "TXT"));
            assert_eq!(theirs.answer.len(), want, "{who}: {name}");
            let (mut a, mut b) = (ours.section("answer"), theirs.section("answer"));
            a.sort();
            b.sort();
            assert_eq!(a, b, "{who}: {name}");
        }
        assert_eq!(ask(addr, &Query::new("www.bigsets.example.", "A")).answer.len(), 1, "{who}");
    }
    // dig's own count of the transfer: every record, the closing SOA included.
    let out = Command::new("dig")
        .args(["+tcp", "-p", &primary.port().to_string(), "@127.0.0.1", "bigsets.example.", "AXFR"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let records = text.lines().filter(|l| !l.starts_with(';') && !l.trim().is_empty()).count();
    assert_eq!(records, 2 + 1 + 1 + 800 + 1200 + 1 + 1, "{text}");
}

#[test]
fn a_signed_answer_and_its_signature_fit_in_512_octets_without_edns() {
    const SECRET: &str = "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY=";
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    // A TXT answer of 480 octets: it fits in 512 alone, not with an 80-octet signature.
    let zone = dir.path().join("example.com.zone");
    std::fs::write(
        &zone,
        format!(
            "$ORIGIN example.com.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\nt TXT \"{}\" \"{}\"\n",
            "a".repeat(255),
            "b".repeat(180)
        ),
    )
    .unwrap();
    let b = Binary::serve(&["--zone", &zone.display().to_string(), "--tsig-key-file", keys.to_str().unwrap()]);
    let addr = b.addr.unwrap();
    let (at, port) = (format!("@{}", addr.ip()), addr.port().to_string());
    let key = format!("hmac-sha256:xfr-key:{SECRET}");
    let size = |out: &str| -> usize {
        out.lines().find_map(|l| l.split("MSG SIZE  rcvd: ").nth(1)?.trim().parse().ok()).unwrap_or(0)
    };
    let unsigned = dig(&[&at, "-p", &port, "+noedns", "+ignore", "t.example.com", "TXT"]);
    assert!(size(&unsigned) > 432 && size(&unsigned) <= 512 && !unsigned.contains(" tc"), "{unsigned}");
    let signed = dig(&[&at, "-p", &port, "+noedns", "+ignore", "-y", &key, "t.example.com", "TXT"]);
    assert!(size(&signed) <= 512, "a signed UDP answer without EDNS is over 512 octets: {signed}");
    assert!(signed.contains(" tc"), "the answer that no longer fits sets TC: {signed}");
    assert!(signed.contains("TSIG") && !signed.contains("verify") && !signed.contains("failure"), "{signed}");
    // Over TCP the same question is answered whole and signed.
    let tcp = dig(&[&at, "-p", &port, "+noedns", "+tcp", "-y", &key, "t.example.com", "TXT"]);
    assert!(tcp.contains("ANSWER: 1,") && tcp.contains("TSIG") && !tcp.contains("failure"), "{tcp}");
}
