//! DNS UPDATE end to end: `nsupdate` (BIND) with TSIG against the real binary, which writes
//! to the moto Route53 emulator. Every step checks Route53 through its API and r53dns
//! through DNS.
//!
//! moto only deletes a record set whose name was written without the final dot (it matches
//! DELETEs against its change journal), so records these tests delete are seeded that way.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_route53::types::ChangeAction;

use crate::support::dns::{Query, ask, ask_tcp};
use crate::support::moto::{Fault, FaultProxy, Moto, Seeder, aws_env, rrset, weighted};
use crate::support::server::Binary;

const SECRET: &str = "3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    key_file: PathBuf,
    wrong_key_file: PathBuf,
    config: PathBuf,
}

/// A key file in `tsig-keygen` syntax, one with the same name and another secret, and a
/// config granting the key the zone (and unsigned updates to nobody).
fn setup(zone: &str, extra_grant: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dhcp.key");
    std::fs::write(
        &key_file,
        format!("key \"dhcp-updater\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"),
    )
    .unwrap();
    let wrong_key_file = dir.path().join("wrong.key");
    std::fs::write(
        &wrong_key_file,
        "key \"dhcp-updater\" {\n\talgorithm hmac-sha256;\n\tsecret \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\";\n};\n",
    )
    .unwrap();
    let config = dir.path().join("r53dns.toml");
    std::fs::write(
        &config,
        format!(
            "[tsig]\nkey-files = [\"{}\"]\n\n[[update.grant]]\nkey = \"dhcp-updater\"\nzones = [\"{zone}\"]\n{extra_grant}",
            key_file.display()
        ),
    )
    .unwrap();
    Setup { _dir: dir, key_file, wrong_key_file, config }
}

fn serve(endpoint: &str, config: &Path) -> Binary {
    let args = ["--route53", "--refresh", "30s", "--config", config.to_str().unwrap()];
    let mut b = Binary::serve_with(&args, &aws_env(endpoint));
    b.wait_for("route53 sweep", Duration::from_secs(20)).expect("first sweep");
    b
}

/// Runs nsupdate with `commands` (server and zone lines added); returns (success, output).
fn nsupdate(addr: SocketAddr, key: Option<&Path>, zone: &str, commands: &str, tcp: bool) -> (bool, String) {
    let mut cmd = Command::new("nsupdate");
    if let Some(k) = key {
        cmd.arg("-k").arg(k);
    }
    if tcp {
        cmd.arg("-v");
    }
    cmd.args(["-t", "10"]);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let script = format!("server {} {}\nzone {zone}\n{commands}\nsend\nquit\n", addr.ip(), addr.port());
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Route53's values for (name, type), sorted; empty when the set does not exist.
async fn route53_values(s: &Seeder, zone: &str, name: &str, t: &str) -> Vec<String> {
    let out = s.client.list_resource_record_sets().hosted_zone_id(zone).max_items(300).send().await.unwrap();
    let mut v: Vec<String> = out
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.').eq_ignore_ascii_case(name.trim_end_matches('.')))
        .filter(|r| r.r#type().as_str() == t)
        .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_owned()))
        .collect();
    v.sort();
    v
}

fn dns_values(addr: SocketAddr, name: &str, t: &str) -> Vec<String> {
    let mut v: Vec<String> = ask(addr, &Query::new(name, t))
        .section("answer")
        .iter()
        .map(|rr| rr.splitn(5, ' ').nth(4).unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn nsupdate_adds_replaces_and_deletes_through_route53() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(s.zone("dyn.example.", false));
    let setup = setup("dyn.example", "");
    let b = serve(&moto.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let key = Some(setup.key_file.as_path());
    let r53 = |name: &str, t: &str| rt.block_on(route53_values(&s, &zone, name, t));

    // Add: visible in Route53 and, without waiting, in our own answers.
    let (ok, out) = nsupdate(addr, key, "dyn.example", "update add pc1.dyn.example. 300 A 10.0.0.1", false);
    assert!(ok, "{out}");
    assert_eq!(r53("pc1.dyn.example", "A"), ["10.0.0.1"]);
    assert_eq!(dns_values(addr, "pc1.dyn.example.", "A"), ["10.0.0.1"]);

    // Add to the set, over TCP.
    let (ok, out) = nsupdate(addr, key, "dyn.example", "update add pc1.dyn.example. 300 A 10.0.0.2", true);
    assert!(ok, "{out}");
    assert_eq!(r53("pc1.dyn.example", "A"), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(dns_values(addr, "pc1.dyn.example.", "A"), ["10.0.0.1", "10.0.0.2"]);

    // Replace: delete the RRset and add in one message, applied as one batch.
    let (ok, out) = nsupdate(
        addr,
        key,
        "dyn.example",
        "update delete pc1.dyn.example. A\nupdate add pc1.dyn.example. 600 A 10.0.0.9",
        false,
    );
    assert!(ok, "{out}");
    assert_eq!(r53("pc1.dyn.example", "A"), ["10.0.0.9"]);
    let a = ask(addr, &Query::new("pc1.dyn.example.", "A")).section("answer");
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].contains(" 600 ") && a[0].ends_with("10.0.0.9"), "{a:?}");

    // Delete one RR of a set, then the set.
    let (ok, out) = nsupdate(
        addr,
        key,
        "dyn.example",
        "update add pc1.dyn.example. 300 TXT \"a\" \"b\"\nupdate add pc1.dyn.example. 300 TXT \"c\"",
        false,
    );
    assert!(ok, "{out}");
    assert_eq!(r53("pc1.dyn.example", "TXT"), ["\"a\" \"b\"", "\"c\""]);
    let (ok, out) = nsupdate(addr, key, "dyn.example", "update delete pc1.dyn.example. TXT \"c\"", false);
    assert!(ok, "{out}");
    assert_eq!(r53("pc1.dyn.example", "TXT"), ["\"a\" \"b\""]);
    assert_eq!(ask(addr, &Query::new("pc1.dyn.example.", "TXT")).section("answer").len(), 1);
    let (ok, out) = nsupdate(addr, key, "dyn.example", "update delete pc1.dyn.example. TXT", false);
    assert!(ok, "{out}");
    assert!(r53("pc1.dyn.example", "TXT").is_empty());
    assert!(ask(addr, &Query::new("pc1.dyn.example.", "TXT")).section("answer").is_empty());

    // PTR and AAAA, then delete everything at the name.
    let (ok, out) = nsupdate(
        addr,
        key,
        "dyn.example",
        "update add pc1.dyn.example. 300 AAAA 2001:db8::9\nupdate add 9.0.0.10.dyn.example. 300 PTR pc1.dyn.example.",
        false,
    );
    assert!(ok, "{out}");
    assert_eq!(r53("9.0.0.10.dyn.example", "PTR"), ["pc1.dyn.example."]);
    assert_eq!(dns_values(addr, "9.0.0.10.dyn.example.", "PTR"), ["pc1.dyn.example."]);
    let (ok, out) = nsupdate(addr, key, "dyn.example", "update delete pc1.dyn.example.", false);
    assert!(ok, "{out}");
    assert!(r53("pc1.dyn.example", "A").is_empty() && r53("pc1.dyn.example", "AAAA").is_empty());
    assert_eq!(ask(addr, &Query::new("pc1.dyn.example.", "A")).rcode_text(), "NXDOMAIN");
    // The zone's own records are untouched.
    assert_eq!(r53("dyn.example", "NS").len(), 2);
    assert!(b.metric("r53dns_updates_total{outcome=\"applied\"}") >= 8);

    // The re-fetch after the updates keeps what Route53 has.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(dns_values(addr, "9.0.0.10.dyn.example.", "PTR"), ["pc1.dyn.example."]);
    assert_eq!(ask_tcp(addr, &Query::new("pc1.dyn.example.", "A")).rcode_text(), "NXDOMAIN");
}

#[test]
fn prerequisites_pass_and_fail_with_the_rfc_rcodes() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(s.zone("pre.example.", false));
    rt.block_on(s.upsert(&zone, vec![rrset("host.pre.example", "A", 300, &["10.1.0.1"])]));
    let setup = setup("pre.example", "");
    let b = serve(&moto.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let key = Some(setup.key_file.as_path());
    let r53 = |name: &str, t: &str| rt.block_on(route53_values(&s, &zone, name, t));
    let add = "update add new.pre.example. 300 A 10.1.0.2";
    // (prerequisite, expected rcode on failure or None when it holds)
    let cases = [
        ("prereq yxdomain host.pre.example.", None),
        ("prereq yxdomain nothing.pre.example.", Some("NXDOMAIN")),
        ("prereq nxdomain nothing.pre.example.", None),
        ("prereq nxdomain host.pre.example.", Some("YXDOMAIN")),
        ("prereq yxrrset host.pre.example. A", None),
        ("prereq yxrrset host.pre.example. TXT", Some("NXRRSET")),
        ("prereq nxrrset host.pre.example. TXT", None),
        ("prereq nxrrset host.pre.example. A", Some("YXRRSET")),
        ("prereq yxrrset host.pre.example. A 10.1.0.1", None),
        ("prereq yxrrset host.pre.example. A 10.1.0.99", Some("NXRRSET")),
    ];
    for (prereq, fails) in cases {
        let (ok, out) = nsupdate(addr, key, "pre.example", &format!("{prereq}\n{add}"), false);
        match fails {
            None => {
                assert!(ok, "{prereq}: {out}");
                assert_eq!(r53("new.pre.example", "A"), ["10.1.0.2"], "{prereq}");
                // Undo for the next case.
                let (ok, out) = nsupdate(addr, key, "pre.example", "update delete new.pre.example. A", false);
                assert!(ok, "{out}");
                assert!(r53("new.pre.example", "A").is_empty());
            }
            Some(rcode) => {
                assert!(!ok, "{prereq} should fail");
                assert!(out.contains(rcode), "{prereq}: expected {rcode} in {out}");
                assert!(r53("new.pre.example", "A").is_empty(), "{prereq} changed Route53");
            }
        }
    }
    // The prerequisites read Route53 itself: a record added behind our back counts at once.
    rt.block_on(s.upsert(&zone, vec![rrset("late.pre.example", "TXT", 300, &["\"x\""])]));
    let (ok, out) = nsupdate(addr, key, "pre.example", &format!("prereq nxdomain late.pre.example.\n{add}"), false);
    assert!(!ok && out.contains("YXDOMAIN"), "{out}");
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"prerequisite\"}"), 6);
}

#[test]
fn unsigned_badly_signed_and_out_of_policy_updates_are_refused() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(s.zone("pol.example.", false));
    let other = rt.block_on(s.zone("other.example.", false));
    rt.block_on(s.upsert(&zone, vec![weighted("w.pol.example.", "blue", 1, "10.2.0.1")]));
    let setup = setup("pol.example", "names = [\"*.pol.example\"]\ntypes = [\"A\", \"AAAA\", \"PTR\", \"TXT\"]\n");
    let b = serve(&moto.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let key = Some(setup.key_file.as_path());
    let r53 = |z: &str, name: &str, t: &str| rt.block_on(route53_values(&s, z, name, t));
    let add = "update add pc.pol.example. 300 A 10.2.0.9";

    let (ok, out) = nsupdate(addr, None, "pol.example", add, false);
    assert!(!ok && out.contains("REFUSED"), "unsigned: {out}");
    let (ok, out) = nsupdate(addr, Some(&setup.wrong_key_file), "pol.example", add, false);
    assert!(!ok, "bad signature accepted: {out}");
    assert!(out.contains("NOTAUTH") || out.contains("tsig"), "{out}");
    // A key the server does not know.
    let unknown = setup.key_file.with_file_name("unknown.key");
    std::fs::write(&unknown, format!("key \"stranger\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n")).unwrap();
    let (ok, out) = nsupdate(addr, Some(&unknown), "pol.example", add, false);
    assert!(!ok && (out.contains("NOTAUTH") || out.contains("tsig")), "{out}");
    assert!(r53(&zone, "pc.pol.example", "A").is_empty());
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"notauth\"}"), 2);

    // Policy: type, name, SOA, apex NS, a routed set, a zone without grant, a zone not served.
    for (zone_name, cmd, want) in [
        ("pol.example", "update add pc.pol.example. 300 MX 10 mail.pol.example.", "REFUSED"),
        ("pol.example", "update add pol.example. 300 A 10.2.0.3", "REFUSED"),
        ("pol.example", "update delete pol.example. SOA", "REFUSED"),
        ("pol.example", "update add pol.example. 300 NS ns9.pol.example.", "REFUSED"),
        ("pol.example", "update add w.pol.example. 60 A 10.2.0.2", "REFUSED"),
        ("other.example", "update add pc.other.example. 300 A 10.2.0.4", "REFUSED"),
        ("nowhere.example", "update add pc.nowhere.example. 300 A 10.2.0.5", "REFUSED"),
    ] {
        let (ok, out) = nsupdate(addr, key, zone_name, cmd, false);
        assert!(!ok && out.contains(want), "{cmd}: expected {want}: {out}");
    }
    // No oracle: to a client without a grant, a zone that exists (private or not) and one
    // that does not are refused alike.
    for zone_name in ["pol.example", "other.example", "nowhere.example"] {
        let (ok, out) = nsupdate(addr, None, zone_name, &format!("update add x.{zone_name}. 300 A 10.2.0.6"), false);
        assert!(!ok && out.contains("REFUSED"), "{zone_name}: {out}");
    }
    assert_eq!(r53(&zone, "w.pol.example", "A"), ["10.2.0.1"], "routed set clobbered");
    assert!(r53(&other, "pc.other.example", "A").is_empty());
    assert_eq!(dns_values(addr, "w.pol.example.", "A"), ["10.2.0.1"]);
    // Within policy it works, signed.
    let (ok, out) = nsupdate(addr, key, "pol.example", add, false);
    assert!(ok, "{out}");
    assert_eq!(r53(&zone, "pc.pol.example", "A"), ["10.2.0.9"]);
}

#[test]
fn a_failing_route53_answers_servfail_and_changes_nothing() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(s.zone("fail.example.", false));
    rt.block_on(s.change(&zone, ChangeAction::Upsert, vec![rrset("keep.fail.example", "A", 300, &["10.3.0.1"])]));
    let setup = setup("fail.example", "");
    let b = serve(&proxy.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let key = Some(setup.key_file.as_path());
    let r53 = |name: &str, t: &str| rt.block_on(route53_values(&s, &zone, name, t));

    // The change call fails for good (500 on every attempt).
    proxy.set_path(Some(Fault::Status500), Some("POST "), 0);
    let (ok, out) = nsupdate(
        addr,
        key,
        "fail.example",
        "update delete keep.fail.example. A\nupdate add new.fail.example. 300 A 10.3.0.2",
        false,
    );
    assert!(!ok && out.contains("SERVFAIL"), "{out}");
    assert!(proxy.injected() >= 2, "the change was not retried");
    assert_eq!(r53("keep.fail.example", "A"), ["10.3.0.1"]);
    assert!(r53("new.fail.example", "A").is_empty());
    assert_eq!(dns_values(addr, "keep.fail.example.", "A"), ["10.3.0.1"]);
    assert_eq!(ask(addr, &Query::new("new.fail.example.", "A")).rcode_text(), "NXDOMAIN");

    // PriorRequestNotComplete twice, then through: retried within the budget.
    proxy.set_path(Some(Fault::PriorRequestNotComplete), Some("POST "), 0);
    {
        let p = proxy.plan.clone();
        std::thread::spawn(move || {
            // Let two attempts fail, then stop injecting.
            for _ in 0..200 {
                if p.lock().unwrap().injected >= 2 {
                    p.lock().unwrap().fault = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
    }
    let (ok, out) = nsupdate(addr, key, "fail.example", "update add new.fail.example. 300 A 10.3.0.2", false);
    assert!(ok, "{out}");
    assert_eq!(r53("new.fail.example", "A"), ["10.3.0.2"]);
    assert_eq!(dns_values(addr, "new.fail.example.", "A"), ["10.3.0.2"]);
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"failed\"}"), 1);
}

/// Kea's DHCP-DDNS daemon (D2), configured with r53dns as its DNS server for a forward and
/// a reverse zone, turns NameChangeRequests into signed UPDATEs; r53dns writes them to
/// Route53. The requests are what kea-dhcp4 sends on a lease (JSON over UDP).
#[test]
fn kea_dhcp_ddns_registers_and_removes_a_lease() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let fwd = rt.block_on(s.zone("kea.example.", true));
    let rev = rt.block_on(s.zone("2.0.10.in-addr.arpa.", true));
    let setup = setup(
        "kea.example",
        "\n[[update.grant]]\nkey = \"dhcp-updater\"\nzones = [\"2.0.10.in-addr.arpa\"]\ntypes = [\"PTR\"]\n",
    );
    let b = serve(&moto.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let r53 = |z: &str, name: &str, t: &str| rt.block_on(route53_values(&s, z, name, t));

    let dir = tempfile::tempdir().unwrap();
    let ncr_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let domain = |name: &str| {
        format!(
            "{{ \"name\": \"{name}\", \"key-name\": \"dhcp-updater\", \"dns-servers\": [ {{ \"ip-address\": \"127.0.0.1\", \"port\": {} }} ] }}",
            addr.port()
        )
    };
    let config = format!(
        r#"{{ "DhcpDdns": {{
  "ip-address": "127.0.0.1", "port": {ncr_port}, "dns-server-timeout": 3000,
  "ncr-protocol": "UDP", "ncr-format": "JSON",
  "tsig-keys": [ {{ "name": "dhcp-updater", "algorithm": "HMAC-SHA256", "secret": "{SECRET}" }} ],
  "forward-ddns": {{ "ddns-domains": [ {} ] }},
  "reverse-ddns": {{ "ddns-domains": [ {} ] }},
  "loggers": [ {{ "name": "kea-dhcp-ddns", "output_options": [ {{ "output": "stdout" }} ], "severity": "INFO" }} ]
}} }}"#,
        domain("kea.example."),
        domain("2.0.10.in-addr.arpa.")
    );
    let conf_path = dir.path().join("kea-dhcp-ddns.conf");
    std::fs::write(&conf_path, config).unwrap();
    let mut kea = Command::new("kea-dhcp-ddns")
        .arg("-c")
        .arg(&conf_path)
        .env("KEA_PIDFILE_DIR", dir.path())
        .env("KEA_LOCKFILE_DIR", dir.path())
        .env("KEA_LOGGER_DESTINATION", dir.path().join("kea.log"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kea-dhcp-ddns (Debian kea-dhcp-ddns-server) must be installed");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut out = kea.stdout.take().unwrap();
    let kea = Kill(kea);
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
                if n == 0 {
                    break;
                }
                log.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let started =
        crate::route53::eventually(Duration::from_secs(15), || log.lock().unwrap().contains("DHCP_DDNS_STARTED"));
    assert!(started.is_some(), "kea-dhcp-ddns did not start: {}", log.lock().unwrap());

    // A NameChangeRequest as kea-dhcp4 sends it: JSON with a 16-bit length in front.
    let send_ncr = |change_type: u8, host: &str, ip: &str, conflict_resolution: bool| {
        let json = format!(
            r#"{{"change-type":{change_type},"forward-change":true,"reverse-change":true,"fqdn":"{host}.kea.example.","ip-address":"{ip}","dhcid":"000102030405060708090A0B0C0D0E0F","lease-expires-on":"20991231000000","lease-length":3600,"use-conflict-resolution":{conflict_resolution}}}"#
        );
        let mut msg = (json.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(json.as_bytes());
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(&msg, ("127.0.0.1", ncr_port)).unwrap();
    };
    send_ncr(0, "pc1", "10.0.2.5", false);
    let added = crate::route53::eventually(Duration::from_secs(20), || {
        r53(&fwd, "pc1.kea.example", "A") == ["10.0.2.5"]
            && r53(&rev, "5.2.0.10.in-addr.arpa", "PTR") == ["pc1.kea.example."]
    });
    assert!(added.is_some(), "lease not registered; kea said:\n{}", log.lock().unwrap());
    // Route53 holds the change once the write returns; the answer follows with the
    // publication right after it.
    let served = crate::route53::eventually(Duration::from_secs(5), || {
        dns_values(addr, "pc1.kea.example.", "A") == ["10.0.2.5"]
            && dns_values(addr, "5.2.0.10.in-addr.arpa.", "PTR") == ["pc1.kea.example."]
    });
    assert!(served.is_some(), "the registered lease is not answered");

    // Kea's default, with conflict resolution (DHCID prerequisites), works too.
    send_ncr(0, "pc2", "10.0.2.6", true);
    let added = crate::route53::eventually(Duration::from_secs(20), || {
        r53(&fwd, "pc2.kea.example", "A") == ["10.0.2.6"]
            && r53(&rev, "6.2.0.10.in-addr.arpa", "PTR") == ["pc2.kea.example."]
    });
    assert!(added.is_some(), "lease with conflict resolution not registered; kea said:\n{}", log.lock().unwrap());

    send_ncr(1, "pc1", "10.0.2.5", false);
    let removed = crate::route53::eventually(Duration::from_secs(20), || {
        r53(&fwd, "pc1.kea.example", "A").is_empty() && r53(&rev, "5.2.0.10.in-addr.arpa", "PTR").is_empty()
    });
    assert!(removed.is_some(), "lease not removed; kea said:\n{}", log.lock().unwrap());
    let gone = crate::route53::eventually(Duration::from_secs(5), || {
        ask(addr, &Query::new("pc1.kea.example.", "A")).rcode_text() == "NXDOMAIN"
    });
    assert!(gone.is_some(), "the removed lease is still answered");
    drop(kea);
}

#[test]
fn unsigned_grants_trust_tcp_only() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(s.zone("open.example.", false));
    let setup =
        setup("signed.example", "\n[[update.grant]]\nnetworks = [\"127.0.0.0/8\"]\nzones = [\"open.example\"]\n");
    let b = serve(&moto.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let add = "update add pc.open.example. 300 A 10.4.0.1";
    // A UDP source address can be forged: an unsigned UPDATE over UDP is refused...
    let (ok, out) = nsupdate(addr, None, "open.example", add, false);
    assert!(!ok && out.contains("REFUSED"), "unsigned over UDP: {out}");
    assert!(rt.block_on(route53_values(&s, &zone, "pc.open.example", "A")).is_empty());
    // ...over TCP the handshake proves it.
    let (ok, out) = nsupdate(addr, None, "open.example", add, true);
    assert!(ok, "unsigned over TCP from a granted network: {out}");
    assert_eq!(rt.block_on(route53_values(&s, &zone, "pc.open.example", "A")), ["10.4.0.1"]);
}

/// A set changed in Route53 by another writer after r53dns read it and before its batch
/// arrives: the batch, made from the stale read, is refused by Route53 (here by the proxy's
/// checks, which moto lacks), and the update is done again on top of the other change
/// instead of overwriting it. A set that keeps changing gets SERVFAIL after three rounds.
#[test]
fn a_set_changed_between_read_and_write_is_not_overwritten() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    proxy.strict();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(s.zone("race.example.", false));
    rt.block_on(s.upsert(&zone, vec![rrset("host.race.example", "A", 300, &["10.5.0.1"])]));
    let setup = setup("race.example", "");
    let b = serve(&proxy.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let key = Some(setup.key_file.as_path());
    let r53 = |name: &str, t: &str| rt.block_on(route53_values(&s, &zone, name, t));
    // Another writer (the console, another replica) sets host's A RRset, straight into the
    // emulator.
    let other_writer = |values: &'static [&'static str]| {
        let (endpoint, zone) = (moto.endpoint(), zone.clone());
        move || {
            let rt = self::rt();
            rt.block_on(async {
                Seeder::new(&endpoint).await.upsert(&zone, vec![rrset("host.race.example", "A", 300, values)]).await;
            });
        }
    };

    proxy.before_next_change(other_writer(&["10.5.0.1", "10.5.0.7"]));
    let (ok, out) = nsupdate(addr, key, "race.example", "update add host.race.example. 300 A 10.5.0.2", false);
    assert!(ok, "{out}");
    assert_eq!(proxy.pending_interferences(), 0);
    assert_eq!(proxy.rejected(), 1, "the batch made from the stale read was not refused");
    assert_eq!(r53("host.race.example", "A"), ["10.5.0.1", "10.5.0.2", "10.5.0.7"], "a change was lost");
    assert_eq!(dns_values(addr, "host.race.example.", "A"), ["10.5.0.1", "10.5.0.2", "10.5.0.7"]);
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"applied\"}"), 1);

    // Changed again before every round: given up, nothing of the update written.
    for values in [&["10.5.0.8"][..], &["10.5.0.9"], &["10.5.0.10"]] {
        proxy.before_next_change(other_writer(values));
    }
    let (ok, out) = nsupdate(addr, key, "race.example", "update add host.race.example. 300 A 10.5.0.3", false);
    assert!(!ok && out.contains("SERVFAIL"), "{out}");
    assert_eq!(proxy.rejected(), 4);
    assert_eq!(r53("host.race.example", "A"), ["10.5.0.10"]);
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"conflict\"}"), 1);
}

/// A batch Route53 applied but whose answer was lost (the connection closed after the
/// request went through) answers NOERROR: the resent copy is refused, and a fresh read
/// shows the change in place. Without that, the prerequisite `nxdomain` would now fail.
#[test]
fn a_batch_applied_whose_answer_was_lost_answers_noerror() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    proxy.strict();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(s.zone("lost.example.", false));
    let setup = setup("lost.example", "");
    let b = serve(&proxy.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let key = Some(setup.key_file.as_path());
    let r53 = |name: &str, t: &str| rt.block_on(route53_values(&s, &zone, name, t));

    proxy.set_times(Fault::ForwardThenReset, "POST ", 1);
    let (ok, out) = nsupdate(
        addr,
        key,
        "lost.example",
        "prereq nxdomain pc.lost.example.\nupdate add pc.lost.example. 300 A 10.6.0.1",
        false,
    );
    assert!(ok, "{out}");
    assert_eq!(proxy.injected(), 1);
    assert_eq!(proxy.rejected(), 1, "the resent batch was not refused");
    assert_eq!(r53("pc.lost.example", "A"), ["10.6.0.1"]);
    assert_eq!(dns_values(addr, "pc.lost.example.", "A"), ["10.6.0.1"]);

    // Replacing a set: DELETE and CREATE, the answer lost again.
    proxy.set_times(Fault::ForwardThenReset, "POST ", 1);
    let (ok, out) = nsupdate(
        addr,
        key,
        "lost.example",
        "update delete pc.lost.example. A\nupdate add pc.lost.example. 300 A 10.6.0.2",
        false,
    );
    assert!(ok, "{out}");
    assert_eq!(r53("pc.lost.example", "A"), ["10.6.0.2"]);
    assert_eq!(dns_values(addr, "pc.lost.example.", "A"), ["10.6.0.2"]);
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"applied_after_error\"}"), 2);
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"failed\"}"), 0);
}

/// Beyond its burst, a key is refused, and so is a client network, each on its own
/// bucket; a refusal is logged at most once a second.
#[test]
fn updates_beyond_the_rate_limits_are_refused() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(s.zone("rl.example.", false));
    let setup = setup("rl.example", "\n[[update.grant]]\nnetworks = [\"127.0.0.0/8\"]\nzones = [\"rl.example\"]\n");
    // One token per 100 s: nothing comes back while the test runs.
    let limits = "[update]\nrate-per-key = 0.01\nburst-per-key = 2\nrate-per-network = 0.01\nburst-per-network = 4\n\n";
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{limits}{config}")).unwrap();
    let mut b = serve(&moto.endpoint(), &setup.config);
    let addr = b.addr.unwrap();
    let key = Some(setup.key_file.as_path());
    let r53 = |name: &str, t: &str| rt.block_on(route53_values(&s, &zone, name, t));
    let add = |name: &str| format!("update add {name}.rl.example. 300 A 10.7.0.1");

    // The key: two, then REFUSED (the network has spent two of its four).
    for name in ["k1", "k2"] {
        let (ok, out) = nsupdate(addr, key, "rl.example", &add(name), false);
        assert!(ok, "{name}: {out}");
    }
    let (ok, out) = nsupdate(addr, key, "rl.example", &add("k3"), false);
    assert!(!ok && out.contains("REFUSED"), "{out}");
    let line = b.wait_for("UPDATE refused", Duration::from_secs(5)).expect("a log line");
    assert!(line.contains("over the limit of key dhcp-updater (0.01/s, burst 2)"), "{line}");

    // Unsigned over TCP from the same network: the two it has left, then REFUSED.
    for name in ["n1", "n2"] {
        let (ok, out) = nsupdate(addr, None, "rl.example", &add(name), true);
        assert!(ok, "{name}: {out}");
    }
    // The log line of a refusal is written once a second at most: the next is in another.
    std::thread::sleep(Duration::from_millis(1100));
    let (ok, out) = nsupdate(addr, None, "rl.example", &add("n3"), true);
    assert!(!ok && out.contains("REFUSED"), "{out}");
    let line = b.wait_for("UPDATE refused", Duration::from_secs(5)).expect("a log line");
    assert!(line.contains("over the limit of network 127.0.0.0/24 (0.01/s, burst 4)"), "{line}");

    assert_eq!(r53("k2.rl.example", "A"), ["10.7.0.1"]);
    assert_eq!(r53("n2.rl.example", "A"), ["10.7.0.1"]);
    assert!(r53("k3.rl.example", "A").is_empty() && r53("n3.rl.example", "A").is_empty());
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"rate_limited\"}"), 2);
    assert_eq!(b.metric("r53dns_requests_refused_total{reason=\"update_rate_limited\"}"), 2);
    assert_eq!(b.metric("r53dns_updates_total{outcome=\"applied\"}"), 4);
}
