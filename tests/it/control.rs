//! `r53dns ctl`, as an operator of BIND or Knot uses `rndc` and `knotc`: every verb against a
//! running server over its control socket — a zone file reloaded, a secondary zone
//! refreshed and transferred again from NSD, a NOTIFY sent and caught, stats read — and over
//! the HTTP endpoint's admin routes.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::dns::{Query, ask};
use crate::support::nsd::Nsd;
use crate::support::server::{Binary, data_dir};

fn ctl(socket: &Path, args: &[&str]) -> Output {
    Binary::command().arg("ctl").arg("--socket").arg(socket).args(args).output().unwrap()
}

/// The JSON a verb answered; panics unless it succeeded.
fn ok(socket: &Path, args: &[&str]) -> serde_json::Value {
    let out = ctl(socket, args);
    assert!(
        out.status.success(),
        "ctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ctl {args:?}: not JSON ({e})"))
}

fn serial(addr: SocketAddr, zone: &str) -> u64 {
    let soa = ask(addr, &Query::new(zone, "SOA")).section("answer");
    soa.first().and_then(|r| r.split_whitespace().nth(6)?.parse().ok()).unwrap_or(0)
}

fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_verb_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let file_zone = zones.join("files.example.zone");
    let soa = |serial: u32| format!("$TTL 60\n@ SOA ns h {serial} 7200 900 1209600 60\n NS ns\nns A 192.0.2.1\n");
    std::fs::write(&file_zone, soa(1)).unwrap();
    // NSD as the primary of example.com, its NOTIFYs sent where nobody listens: only ctl
    // makes r53dns look again (the SOA refresh is two hours).
    let primary_file = dir.path().join("example.com.zone");
    std::fs::copy(data_dir().join("zones/example.com.zone"), &primary_file).unwrap();
    let nowhere = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let nsd = Nsd::primary("example.com.", &primary_file, nowhere, None);
    // A NOTIFY target the test reads itself.
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let socket = dir.path().join("control.sock");
    let (p, n) = (nsd.addr.to_string(), target.local_addr().unwrap().to_string());
    let mut server = Binary::serve(&[
        "--zone-dir",
        zones.to_str().unwrap(),
        "--primary",
        &p,
        "--secondary-zone",
        "example.com",
        "--notify",
        &n,
        "--control-socket",
        socket.to_str().unwrap(),
    ]);
    let dns = server.addr.unwrap();
    until("the secondary zone is loaded", Duration::from_secs(10), || serial(dns, "example.com.") == 2024010101);
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o660);

    // status
    let st = ok(&socket, &["status"]);
    assert_eq!(st["zones"], 2, "{st}");
    assert_eq!(st["ready"], true, "{st}");
    assert_eq!(st["zones_by_source"]["file"], 1, "{st}");
    assert_eq!(st["zones_by_source"]["secondary"], 1, "{st}");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    // Each secondary zone: how its primary is reached and how the last refresh ended.
    let followed = &st["secondaries"][0];
    assert_eq!(
        (followed["name"].as_str(), followed["transport"].as_str()),
        (Some("example.com."), Some("tcp")),
        "{st}"
    );
    assert_eq!(followed["tls_name"], serde_json::Value::Null, "{st}");
    assert_eq!(followed["last_outcome"], "axfr", "{st}");
    assert!(followed["last_outcome_secs_ago"].as_u64().is_some_and(|s| s < 60), "{st}");

    // zone-status
    let zs = ok(&socket, &["zone-status", "example.com"]);
    assert_eq!(zs["views"][0]["serial"], 2024010101u64, "{zs}");
    assert!(zs["views"][0]["source"].as_str().unwrap().starts_with("secondary:"), "{zs}");
    assert_eq!(zs["secondary"]["primary"], p.as_str(), "{zs}");
    assert_eq!(zs["secondary"]["transport"], "tcp", "{zs}");
    assert_eq!(zs["views"][0]["transport"], "tcp", "{zs}");
    let missing = ctl(&socket, &["zone-status", "nothing.example"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("not served here"));
    assert_eq!(ctl(&socket, &["zone-status"]).status.code(), Some(2), "a zone is required");

    // reload ZONE: the edited file, reported and served.
    std::fs::write(&file_zone, soa(2)).unwrap();
    let r = ok(&socket, &["reload", "files.example"]);
    assert_eq!(r["loaded"][0]["serial"], 2, "{r}");
    assert_eq!(serial(dns, "files.example."), 2);
    let wrong = ctl(&socket, &["reload", "example.com"]);
    assert_eq!(wrong.status.code(), Some(1), "a secondary zone is refreshed, not reloaded");
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("use refresh"));
    // A broken file: reported, the last good version stays.
    std::fs::write(&file_zone, "$TTL 60\n@ SOA ns h 3 7200 900 1209600 60\n NS ns\nns A 999.0.2.1\n").unwrap();
    let bad = ctl(&socket, &["reload"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("files.example.zone:4"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    assert_eq!(serial(dns, "files.example."), 2);
    std::fs::write(&file_zone, soa(3)).unwrap();
    ok(&socket, &["reload"]);

    // refresh: the primary's new serial, without waiting for the SOA refresh.
    let text = std::fs::read_to_string(&primary_file).unwrap().replacen("2024010101", "2024010102", 1);
    std::fs::write(&primary_file, text).unwrap();
    nsd.reload();
    until("NSD serves the new serial", Duration::from_secs(10), || serial(nsd.addr, "example.com.") == 2024010102);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(serial(dns, "example.com."), 2024010101, "nothing but ctl makes r53dns look");
    let rf = ok(&socket, &["refresh", "example.com"]);
    assert_eq!(rf["zone"], "example.com.", "{rf}");
    until("refresh transfers the new serial", Duration::from_secs(10), || serial(dns, "example.com.") == 2024010102);

    // retransfer: a whole transfer although the serial is current.
    server.wait_for("serial=2024010102", Duration::from_secs(5)).expect("the refresh's transfer is logged");
    ok(&socket, &["retransfer", "example.com"]);
    let line = server.wait_for("serial=2024010102", Duration::from_secs(10)).expect("a transfer after retransfer");
    assert!(line.contains("zone loaded") && line.contains("transfer=\"axfr\""), "{line}");
    assert_eq!(ctl(&socket, &["retransfer", "files.example"]).status.code(), Some(1), "not a secondary zone");

    // notify: the NOTIFYs of every change so far (reloads, transfers) are acknowledged until
    // the target has been quiet for a second; then ctl sends one more, for the zone asked.
    let mut buf = [0u8; 512];
    let mut answer = |wait: Duration| -> Option<Vec<u8>> {
        target.set_read_timeout(Some(wait)).unwrap();
        let (len, from) = target.recv_from(&mut buf).ok()?;
        let mut ack = buf[..len].to_vec();
        ack[2] |= 0x80;
        target.send_to(&ack, from).unwrap();
        Some(buf[..len].to_vec())
    };
    while answer(Duration::from_secs(1)).is_some() {}
    let nt = ok(&socket, &["notify", "files.example"]);
    assert_eq!(nt["serial"], 3, "{nt}");
    let got = answer(Duration::from_secs(5)).expect("a NOTIFY");
    assert_eq!((got[2] >> 3) & 0x0f, 4, "opcode NOTIFY");
    assert!(
        got[12..].windows(6).any(|w| w == b"\x05files"),
        "for files.example: {:?}",
        String::from_utf8_lossy(&got[12..])
    );

    // stats: every metric, as JSON.
    let stats = ok(&socket, &["stats"]);
    let queries: f64 =
        stats["r53dns_queries_total"].as_array().unwrap().iter().filter_map(|s| s["value"].as_f64()).sum();
    assert!(queries >= 5.0, "the test's own queries are counted: {queries}");

    // zones and sync, and the same verbs over the HTTP admin routes.
    let listed = ok(&socket, &["zones"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let entry = |name: &str| listed.as_array().unwrap().iter().find(|z| z["name"] == name).cloned().unwrap();
    let (secondary, file) = (entry("example.com."), entry("files.example."));
    assert_eq!((&secondary["transport"], &secondary["last_outcome"]), (&"tcp".into(), &"axfr".into()), "{listed}");
    assert!(file.get("transport").is_none() && file.get("last_outcome").is_none(), "only secondaries: {listed}");
    assert_eq!(ctl(&socket, &["sync"]).status.code(), Some(1), "no Route53 here");
    let http = server.http.unwrap().to_string();
    let over_http = Binary::command().args(["ctl", "--http", &http, "zone-status", "files.example"]).output().unwrap();
    assert!(over_http.status.success(), "{}", String::from_utf8_lossy(&over_http.stderr));
    assert!(String::from_utf8_lossy(&over_http.stdout).contains("\"serial\": 3"));

    // A second server cannot take the socket; SIGTERM removes it.
    let mut second = Binary::command()
        .args(["serve", "--zone-dir", zones.to_str().unwrap(), "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .arg("--control-socket")
        .arg(&socket)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let code = second.wait().unwrap().code();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("in use"), "{err}");
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).is_some());
    assert!(!socket.exists(), "the socket file is removed on the way out");
    assert_eq!(ctl(&socket, &["status"]).status.code(), Some(1), "nothing to talk to");
}

#[test]
fn reload_reads_the_configuration_again_and_names_what_takes_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let zone = |name: &str| {
        let path = dir.path().join(format!("{name}.zone"));
        std::fs::write(&path, format!("$ORIGIN {name}.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n"))
            .unwrap();
        path
    };
    let (a, b) = (zone("a.example"), zone("b.example"));
    let socket = dir.path().join("control.sock");
    let config = dir.path().join("r53dns.toml");
    let write = |files: &[&Path], extra: &str| {
        let list: Vec<String> = files.iter().map(|f| format!("{:?}", f.display().to_string())).collect();
        std::fs::write(&config, format!("[zones]\nfiles = [{}]\n{extra}", list.join(", "))).unwrap();
    };
    write(&[&a], "");
    let mut server =
        Binary::serve(&["--config", config.to_str().unwrap(), "--control-socket", socket.to_str().unwrap()]);
    let dns = server.addr.unwrap();
    let rcode = |name: &str| ask(dns, &Query::new(name, "SOA")).rcode_text();
    assert_eq!(rcode("b.example."), "REFUSED");

    // A zone file added and a rate limit set: the zone is served, the limit is named as
    // taking a restart — by ctl reload and by SIGHUP alike.
    write(&[&a, &b], "[rrl]\nresponses-per-second = 5\n");
    let r = ok(&socket, &["reload"]);
    assert_eq!(rcode("b.example."), "NOERROR");
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("restart to apply") && warnings.contains("rrl.responses-per-second"), "{r}");
    assert!(!warnings.contains("zones.files"), "applied, not reported: {r}");
    server.signal("HUP");
    assert!(server.wait_for("rrl.responses-per-second", Duration::from_secs(10)).is_some());

    // A configuration that no longer validates: the reload says so, the running one stays.
    std::fs::write(&config, "[zones]\nfiles = [\"x.zone\"]\n[server]\nmax-udp-payload = 100\n").unwrap();
    let bad = ctl(&socket, &["reload"]);
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("configuration not re-read") && text.contains("server.max-udp-payload"), "{text}");
    assert_eq!(rcode("a.example."), "NOERROR");
    assert_eq!(rcode("b.example."), "NOERROR");
}
