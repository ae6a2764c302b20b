//! BIND's zone directories as Debian (`db.<zone>`) and RHEL (`<zone>.db`) lay them out, served
//! by the real binary: the zone comes from the file name, backups and journals beside the
//! zone files are passed over, and a file named after a network must say its zone.

use crate::support::dns::{Query, ask};
use crate::support::server::Binary;

/// A zone with no `$ORIGIN`: every name in it is relative to what the file name gives.
fn zone(address: &str) -> String {
    format!("$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n  NS ns\nns A 192.0.2.53\nwww A {address}\n")
}

#[test]
fn debian_and_rhel_file_names_give_the_zone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("db.example.com"), zone("192.0.2.10")).unwrap();
    std::fs::write(d.join("example.org.db"), zone("192.0.2.20")).unwrap();
    // What an editor, BIND and the package manager leave beside them: loaded, each would be
    // a second example.com or a zone that does not parse.
    std::fs::write(d.join("db.example.com~"), zone("192.0.2.99")).unwrap();
    std::fs::write(d.join(".db.example.com.swp"), [0u8, 159, 146, 150]).unwrap();
    std::fs::write(d.join("db.example.com.jnl"), [0u8, 159, 146, 150]).unwrap();
    std::fs::write(d.join("example.org.db.bak"), "not a zone\n").unwrap();
    std::fs::write(d.join("named.conf"), "zone \"example.com\" { type primary; file \"db.example.com\"; };\n").unwrap();

    let b = Binary::serve(&["--zone-dir", &d.display().to_string(), "--log-level", "r53dns_app::zones=debug,info"]);
    let addr = b.addr.unwrap();
    assert_eq!(
        ask(addr, &Query::new("www.example.com.", "A")).section("answer"),
        ["www.example.com. 300 IN A 192.0.2.10"]
    );
    assert_eq!(
        ask(addr, &Query::new("www.example.org.", "A")).section("answer"),
        ["www.example.org. 300 IN A 192.0.2.20"]
    );
    let soa = ask(addr, &Query::new("example.org.", "SOA")).section("answer");
    assert_eq!(soa, ["example.org. 300 IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 60"]);
    // Nothing is served under the names the files would have had before.
    let old = ask(addr, &Query::new("www.db.example.com.", "A"));
    assert!(old.answer.is_empty() && old.rcode != 0, "{}", old.rcode_text());

    let skipped: Vec<&String> = b.startup.iter().filter(|l| l.contains("zone directory: skipped")).collect();
    for f in ["db.example.com~", ".db.example.com.swp", "db.example.com.jnl", "example.org.db.bak", "named.conf"] {
        assert!(skipped.iter().any(|l| l.contains(f)), "{f} is not logged as skipped: {skipped:#?}");
    }
}

#[test]
fn a_reverse_file_named_after_its_network_must_name_its_zone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.192.168.1");
    let text = "$TTL 300\n@ SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60\n  \
                NS ns.example.com.\n$GENERATE 1-254 $ PTR host-$.example.com.\n";
    std::fs::write(&file, text).unwrap();
    let check = || Binary::command().args(["check", "--zone-dir"]).arg(dir.path()).output().unwrap();

    let out = check();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}: no $ORIGIN, and the file name 'db.192.168.1' names a network", file.display())),
        "{err}"
    );
    assert!(err.contains("that zone is 1.168.192.in-addr.arpa."), "{err}");
    assert!(err.contains("add `$ORIGIN <zone>.` at the top of the file"), "{err}");

    std::fs::write(&file, format!("$ORIGIN 1.168.192.in-addr.arpa.\n{text}")).unwrap();
    let out = check();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b = Binary::serve(&["--zone-dir", &dir.path().display().to_string()]);
    let ptr = ask(b.addr.unwrap(), &Query::new("7.1.168.192.in-addr.arpa.", "PTR")).section("answer");
    assert_eq!(ptr, ["7.1.168.192.in-addr.arpa. 300 IN PTR host-7.example.com."]);
}
