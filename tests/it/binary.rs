//! The real `r53dns` binary: startup errors, `check`, SIGHUP reloads, SIGTERM, and real
//! clients (`dig`, `kdig`) against it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::dns::{Query, ask};
use crate::support::server::{Binary, data_dir};

fn example_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["example.com.zone", "example.net.zone"] {
        std::fs::copy(data_dir().join("zones").join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn a_record(addr: std::net::SocketAddr, name: &str) -> Vec<String> {
    ask(addr, &Query::new(name, "A")).section("answer")
}

#[test]
fn a_broken_zone_file_stops_startup_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.example.zone"),
        "$TTL 60\n@ SOA ns h 1 2 3 4 5\n  NS ns\nns A 192.0.2.1\nwww A 192.0.2.300\n",
    )
    .unwrap();
    for cmd in ["serve", "check"] {
        let out = Binary::command()
            .args([cmd, "--zone-dir"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.example.zone:5: A: bad IPv4 address '192.0.2.300'"), "{cmd}: {err}");
    }
}

#[test]
fn invalid_zones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nosoa.example.zone"), "$TTL 60\n@ NS ns\nns A 192.0.2.1\n").unwrap();
    std::fs::write(
        dir.path().join("cname.example.zone"),
        "$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nx CNAME y\nx A 192.0.2.1\n",
    )
    .unwrap();
    let out = Binary::command().args(["check", "--zone-dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosoa.example.: needs exactly one SOA"), "{err}");
    assert!(
        err.contains("cname.example.zone:4: CNAME at x.cname.example. cannot coexist with other data (A)"),
        "{err}"
    );
}

#[test]
fn check_prints_the_resolved_configuration() {
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        format!("[zones]\ndirs = [\"{}\"]\n[server]\nworkers = 3\n", data_dir().join("zones").display()),
    )
    .unwrap();
    let out = Binary::command().args(["check", "--config"]).arg(cfg.path()).args(["--workers", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("workers = 2"), "flags override the file: {stdout}");
    let out =
        Binary::command().args(["check", "--config"]).arg(cfg.path()).env("R53DNS_WORKERS", "4").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("workers = 4"), "environment overrides the file");
    std::fs::write(cfg.path(), "[server]\nwrokers = 3\n").unwrap();
    let out = Binary::command().args(["check", "--config"]).arg(cfg.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrokers"));
}

#[test]
fn sighup_reloads_and_a_broken_edit_keeps_the_old_zone() {
    let dir = example_dir();
    let mut b = Binary::serve(&["--zone-dir", &dir.path().display().to_string()]);
    let addr = b.addr.unwrap();
    assert_eq!(a_record(addr, "www.example.com."), vec!["www.example.com. 3600 IN A 192.0.2.3"]);

    let file = dir.path().join("example.com.zone");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("192.0.2.3", "192.0.2.99")).unwrap();
    b.signal("HUP");
    b.wait_for("zone files reloaded", Duration::from_secs(10)).expect("no reload");
    assert_eq!(a_record(addr, "www.example.com."), vec!["www.example.com. 3600 IN A 192.0.2.99"]);

    std::fs::write(&file, "$TTL 60\n@ SOA ns h 1 2 3 4 5\n  NS ns\nwww A not-an-address\n").unwrap();
    b.signal("HUP");
    let err = b.wait_for("zone not updated", Duration::from_secs(10)).expect("no error logged");
    assert!(err.contains("example.com.zone:4"), "{err}");
    assert_eq!(a_record(addr, "www.example.com."), vec!["www.example.com. 3600 IN A 192.0.2.99"]);
    // The other zone is untouched.
    assert_eq!(a_record(addr, "www.example.net."), vec!["www.example.net. 600 IN A 198.51.100.1"]);

    b.signal("TERM");
    let status = b.wait_exit(Duration::from_secs(15)).expect("did not stop on SIGTERM");
    assert!(status.success(), "{status:?}");
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd} must be installed: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dig_and_kdig_get_answers_over_udp_and_tcp() {
    let dir = example_dir();
    let b = Binary::serve(&["--zone-dir", &dir.path().display().to_string()]);
    let addr = b.addr.unwrap();
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let at = format!("@{ip}");
    let dig = run("dig", &["+short", "+norec", &at, "-p", &port, "alias.example.com", "A"]);
    assert_eq!(dig, "www.example.com.\n192.0.2.3\n");
    let dig_tcp = run("dig", &["+short", "+tcp", &at, "-p", &port, "big.example.com", "A"]);
    assert_eq!(dig_tcp.lines().count(), 40);
    // dig over UDP without EDNS retries over TCP after TC and gets all 40.
    let dig_tc = run("dig", &["+noedns", "+short", &at, "-p", &port, "big.example.com", "A"]);
    assert_eq!(dig_tc.lines().count(), 40);
    let kdig = run("kdig", &["+short", &at, "-p", &port, "example.com", "MX"]);
    assert_eq!(kdig, "10 mail.example.com.\n");
    let kdig_tcp = run("kdig", &["+tcp", &at, "-p", &port, "nx.example.net", "A"]);
    assert!(kdig_tcp.contains("status: NXDOMAIN"), "{kdig_tcp}");
    assert!(Path::new(env!("CARGO_BIN_EXE_r53dns")).exists());
}

#[test]
fn private_zones_are_not_answered_to_the_world_by_default() {
    let check = |extra: &[&str]| {
        Binary::command()
            .args(["check", "--route53", "--listen", "0.0.0.0:5353"])
            .args(extra)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    };
    let refused = check(&[]);
    assert_eq!(refused.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(
        msg.contains("private hosted zones would be answered to every client") && msg.contains("0.0.0.0:5353"),
        "{msg}"
    );
    assert_eq!(msg.trim().lines().count(), 1, "one line: {msg}");
    let out = check(&["--internal-network", "10.0.0.0/8"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Loopback only, or public zones only, or said explicitly: fine.
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("public.toml", "[route53]\nenabled = true\nkind = \"public\"\n[server]\nlisten = [\"0.0.0.0:5353\"]\n"),
        (
            "optin.toml",
            "[route53]\nenabled = true\nprivate-zones-to-everyone = true\n[server]\nlisten = [\"0.0.0.0:5353\"]\n",
        ),
        ("loopback.toml", "[route53]\nenabled = true\n[server]\nlisten = [\"127.0.0.1:5353\", \"[::1]:5353\"]\n"),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
        let out = Binary::check_config(&dir.path().join(name));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
