//! A BIND administrator's named.conf, served as it is: the same file read by BIND 9 and by
//! r53dns (`--bind-config`), every name asked from both views, every answer compared; zone
//! transfers allowed and refused alike; Debian's own named.conf checked; what cannot be
//! taken over refused with its file and line.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::dns::{self, Query};
use crate::support::nsd::free_port;
use crate::support::server::{Binary, data_dir};

const KEY: &str = "hmac-sha256:xfr-key:3TuxSu9IKFkT0nlxYaEPmOVVqEpdfEUeiYZXjgvwnYw=";

/// The corpus copied to a temporary directory with `@DIR@` and `@PORT@` written in.
fn corpus(port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(data_dir().join("bind")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("@DIR@", &dir.path().display().to_string())
            .replace("@PORT@", &port.to_string());
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

/// named from Debian on `port` with the corpus's named.conf; killed on drop.
struct Named(std::process::Child);

impl Drop for Named {
    fn drop(&mut self) {
        crate::support::stop(&mut self.0);
    }
}

fn named(conf: &Path, port: u16) -> (Named, SocketAddr) {
    let log = std::fs::File::create(conf.with_file_name("named.log")).unwrap();
    let child = Command::new("named")
        .args(["-g", "-c"])
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("named must be installed (apt-get install bind9)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let named = Named(child);
    assert!(
        crate::support::answers_soa(addr, "shared.example."),
        "BIND did not start:\n{}",
        std::fs::read_to_string(conf.with_file_name("named.log")).unwrap_or_default()
    );
    (named, addr)
}

/// rcode, AA and the three sections, RRsets in a stable order.
fn answer(server: SocketAddr, from: IpAddr, name: &str, qtype: &str) -> String {
    let q = Query::new(name, qtype);
    let raw = dns::udp_exchange_from(from, server, &q.to_wire())
        .unwrap_or_else(|| panic!("no answer from {server} to {name} {qtype} from {from}"));
    let r = dns::parse(&raw).unwrap();
    let mut out = format!("{} aa={}\n", r.rcode_text(), r.flag("aa"));
    for section in ["answer", "authority", "additional"] {
        let mut rrs = r.section(section);
        rrs.retain(|rr| !rr.contains(" OPT "));
        rrs.sort();
        out.push_str(&format!("{section}: {}\n", rrs.join(" | ")));
    }
    out
}

/// A zone transfer with dig (signed with the corpus key when `signed`), from `from`: the
/// records sorted, or the failure as dig prints it.
fn axfr(server: SocketAddr, from: &str, zone: &str, signed: bool) -> String {
    let mut cmd = Command::new("dig");
    cmd.args(["-b", from, "-p", &server.port().to_string(), &format!("@{}", server.ip()), zone, "AXFR"]);
    cmd.args(["+noall", "+answer", "+tries=1", "+time=3"]);
    if signed {
        cmd.args(["-y", KEY]);
    }
    let out = cmd.output().expect("dig must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("TSIG"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if lines.is_empty() || lines.iter().any(|l| l.starts_with("; Transfer failed")) {
        return "refused".to_owned();
    }
    lines.sort();
    lines.dedup(); // the SOA opens and closes a transfer
    lines.join("\n")
}

#[test]
fn bind_and_r53dns_answer_alike_from_the_same_named_conf() {
    let port = free_port();
    let dir = corpus(port);
    let conf = dir.path().join("named.conf");
    let (_bind, bind) = named(&conf, port);
    let ours = Binary::serve(&["--bind-config", conf.to_str().unwrap()]);
    let r53dns = ours.addr.unwrap();

    let office: IpAddr = "127.0.0.1".parse().unwrap();
    let world: IpAddr = "127.0.0.2".parse().unwrap();
    let questions = [
        ("corp.example", "SOA"),
        ("corp.example", "NS"),
        ("www.corp.example", "A"),
        ("intranet.corp.example", "AAAA"),
        ("intranet.corp.example", "A"),
        ("mail.corp.example", "MX"),
        ("x.dev.corp.example", "A"),
        ("nothing.corp.example", "A"),
        ("www.corp.example", "TXT"),
        ("53.0.0.10.in-addr.arpa", "PTR"),
        ("100.0.0.10.in-addr.arpa", "PTR"),
        ("120.0.0.10.in-addr.arpa", "PTR"),
        ("121.0.0.10.in-addr.arpa", "PTR"),
        ("shared.example", "TXT"),
        ("docs.shared.example", "AAAA"),
        ("www.shared.example", "A"),
    ];
    let mut differences = Vec::new();
    let mut internal_only = 0;
    for from in [office, world] {
        for (name, qtype) in questions {
            let (b, o) = (answer(bind, from, name, qtype), answer(r53dns, from, name, qtype));
            if b != o {
                differences.push(format!("{name} {qtype} from {from}:\n BIND:   {b}\n r53dns: {o}"));
            }
            if from == world && b.starts_with("REFUSED") {
                internal_only += 1;
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // The views did split: the reverse zone is the office's only, and corp.example differs.
    assert_eq!(internal_only, 4, "the reverse zone's four questions are refused outside the office");
    assert_ne!(answer(r53dns, office, "www.corp.example", "A"), answer(r53dns, world, "www.corp.example", "A"));
    assert!(answer(r53dns, office, "120.0.0.10.in-addr.arpa", "PTR").contains("dhcp-120.corp.example."));

    // Transfers: shared.example to 127.0.0.2 unsigned or to anyone with the key; corp.example
    // (the options' rule) only with the key.
    for (from, zone, signed, allowed) in [
        ("127.0.0.2", "shared.example", false, true),
        ("127.0.0.1", "shared.example", false, false),
        ("127.0.0.1", "shared.example", true, true),
        ("127.0.0.2", "corp.example", false, false),
        ("127.0.0.1", "corp.example", true, true),
        ("127.0.0.2", "corp.example", true, true),
    ] {
        let (b, o) = (axfr(bind, from, zone, signed), axfr(r53dns, from, zone, signed));
        assert_eq!(b, o, "AXFR {zone} from {from}, signed: {signed}");
        assert_eq!(o != "refused", allowed, "AXFR {zone} from {from}, signed: {signed}: {o}");
    }
}

#[test]
fn debian_named_conf_is_checked_as_installed() {
    // bind9's own /etc/bind/named.conf: the default zones load, the root hints and BIND's
    // options are listed as not needed, each with its file and line.
    let out = Binary::check_bind_config(Path::new("/etc/bind/named.conf"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for zone in ["localhost.", "127.in-addr.arpa.", "0.in-addr.arpa.", "255.in-addr.arpa."] {
        assert!(err.lines().any(|l| l.starts_with("ok: ") && l.contains(&format!(" {zone} "))), "{zone}: {err}");
    }
    assert!(
        err.lines().any(|l| l.starts_with("ignored: /etc/bind/named.conf.default-zones:") && l.contains("type hint")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with("ignored: /etc/bind/named.conf.options:")), "{err}");
}

#[test]
fn what_cannot_be_taken_over_stops_the_server_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db.a"), "$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n").unwrap();
    let conf = dir.path().join("named.conf");
    for (text, needle) in [
        (
            "options { directory \"DIR\"; };\n\nzone \"a.example\" {\n type primary; file \"db.a\";\n allow-update { 10/8; };\n};\n",
            "named.conf:3: zone a.example.: allow-update/update-policy: r53dns writes UPDATEs to Route53",
        ),
        (
            "view a { match-clients { 10/8; }; zone \"a.example\" { type primary; file \"DIR/db.a\"; }; };\nview b { match-clients { key k; }; };\n",
            "named.conf:1: views a and b",
        ),
        (
            "zone \"a.example\" {\n type primary; file \"DIR/db.a\";\n allow-transfer { !10/8; any; };\n};\n",
            "named.conf:1: zone a.example.: allow-transfer: !10/8",
        ),
    ] {
        std::fs::write(&conf, text.replace("DIR", &dir.path().display().to_string())).unwrap();
        let out = Binary::check_bind_config(&conf);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "want {needle:?} in:\n{err}");
    }
}

#[test]
fn sighup_takes_zones_added_to_named_conf_and_says_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    for zone in ["a", "b"] {
        std::fs::write(
            dir.path().join(format!("db.{zone}")),
            "$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\nwww A 192.0.2.80\n",
        )
        .unwrap();
    }
    let conf = dir.path().join("named.conf");
    let a = format!("zone \"a.example\" {{ type primary; file \"{d}/db.a\"; }};\n");
    std::fs::write(&conf, &a).unwrap();
    let mut ours = Binary::serve(&["--bind-config", conf.to_str().unwrap()]);
    let addr = ours.addr.unwrap();
    let rcode = |name: &str| dns::ask(addr, &Query::new(name, "A")).rcode_text();
    assert_eq!(rcode("www.a.example"), "NOERROR");
    assert_eq!(rcode("www.b.example"), "REFUSED");

    let key = "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0LWZvci10ZXN0cy1vbmx5LTEyMzQ1Njc4OTA=\"; };\n";
    std::fs::write(&conf, format!("{a}{key}zone \"b.example\" {{ type primary; file \"{d}/db.b\"; }};\n")).unwrap();
    ours.signal("HUP");
    let warned = ours.wait_for("named.conf changed beyond its zone list", std::time::Duration::from_secs(10));
    assert!(warned.is_some(), "a new key is reported as needing a restart");
    assert!(ours.wait_for("zone files reloaded", std::time::Duration::from_secs(10)).is_some());
    assert_eq!(rcode("www.b.example"), "NOERROR");
    assert_eq!(rcode("www.a.example"), "NOERROR");
}

/// The cutover as a BIND administrator lives it: named.conf's zone that took DHCP's UPDATEs
/// is served from its file until it is in Route53, then from Route53, and the same key
/// (written in named.conf) updates it there within the rule `update-policy` gave.
#[test]
fn a_zone_that_takes_updates_moves_to_route53_with_its_policy() {
    use crate::support::moto::{Moto, Seeder, aws_env, rrset};
    use std::io::Write as _;
    const SECRET: &str = "c2VjcmV0LWZvci1kaGNwLXVwZGF0ZXMtMTIzNDU2Nzg=";
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("db.moved"),
        "$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\nwww A 192.0.2.80\n",
    )
    .unwrap();
    let conf = dir.path().join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "key \"dhcp\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n\
             zone \"moved.example\" {{\n type primary;\n file \"{d}/db.moved\";\n update-policy {{ grant dhcp zonesub A TXT; }};\n}};\n"
        ),
    )
    .unwrap();
    let key_file = dir.path().join("dhcp.key");
    std::fs::write(&key_file, format!("key \"dhcp\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n")).unwrap();

    let args = ["--route53", "--refresh", "300ms", "--bind-config", conf.to_str().unwrap()];
    let ours = Binary::serve_with(&args, &aws_env(&moto.endpoint()));
    let addr = ours.addr.unwrap();
    let www = || dns::ask(addr, &Query::new("www.moved.example", "A")).section("answer").join(" | ");
    assert!(www().ends_with("192.0.2.80"), "from the file while Route53 has no such zone: {}", www());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let s = Seeder::new(&moto.endpoint()).await;
        let id = s.zone("moved.example.", false).await;
        s.upsert(&id, vec![rrset("www.moved.example.", "A", 60, &["198.51.100.80"])]).await;
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !www().ends_with("198.51.100.80") {
        assert!(std::time::Instant::now() < deadline, "Route53's zone never replaced the file's: {}", www());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let nsupdate = |commands: &str| {
        let mut child = Command::new("nsupdate")
            .arg("-k")
            .arg(&key_file)
            .args(["-t", "10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let script = format!("server {} {}\nzone moved.example\n{commands}\nsend\nquit\n", addr.ip(), addr.port());
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = nsupdate("update add laptop.moved.example 60 A 198.51.100.7");
    assert!(ok, "{text}");
    let laptop = dns::ask(addr, &Query::new("laptop.moved.example", "A")).section("answer").join(" | ");
    assert!(laptop.ends_with("198.51.100.7"), "{laptop}");
    // update-policy grants A and TXT only.
    let (ok, text) = nsupdate("update add moved.example 60 MX 10 mx.moved.example.");
    assert!(!ok && text.contains("REFUSED"), "{text}");
}
