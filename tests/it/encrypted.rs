//! DNS over TLS (RFC 7858), over HTTPS (RFC 8484) and over QUIC (RFC 9250), asked by
//! kdig, dig, dnspython and aioquic: the same answers as over UDP, a certificate clients verify, the query
//! ACL applied alike, zone transfers, padding, and the limits on connections.

use std::path::Path;
use std::process::Command;

use crate::support::server::{Binary, data_dir};
use crate::support::tls::{addr_of, certificate};

/// A client's view of one answer: status and flags, and the records of every section,
/// TTLs included (sorted).
fn ask(tool: &str, server: std::net::SocketAddr, transport: &[String], name: &str, t: &str) -> (String, Vec<String>) {
    let out = Command::new(tool)
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(transport)
        .args(["+norec", name, t])
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // dig: "status: NOERROR, id" and "flags: qr aa;"; kdig: "status: NOERROR; id" and "Flags: qr aa;".
    let field = |key: &str, end: char| {
        // Only the DNS header lines (kdig also prints the HTTP status of DoH).
        text.lines().filter(|l| l.contains("opcode") || l.to_ascii_lowercase().contains("flags:")).find_map(|l| {
            let i = l.to_ascii_lowercase().find(key)?;
            Some(l[i + key.len()..].split(end).next().unwrap_or("").trim().to_owned())
        })
    };
    let status = match (field("status: ", if tool == "kdig" { ';' } else { ',' }), field("flags: ", ';')) {
        (Some(s), Some(f)) => format!("{s} [{f}]"),
        _ => format!("no answer: {}", String::from_utf8_lossy(&out.stderr)),
    };
    let mut records: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    records.sort();
    (status, records)
}

/// r53dns on example.com with a fresh certificate and `extra` flags.
fn serve_tls(dir: &Path, extra: &[&str]) -> (Binary, String) {
    let (cert, key) = certificate(dir, "server");
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let mut args = vec!["--zone", &zone, "--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    (Binary::serve(&args), cert)
}

#[test]
fn dot_doh_and_doq_answer_as_udp_does_with_a_certificate_clients_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = serve_tls(
        dir.path(),
        &["--tls-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"],
    );
    let (udp, dot, doh) = (b.addr.unwrap(), addr_of(&b, "serving DNS over TLS"), addr_of(&b, "serving DNS over HTTPS"));
    let doq = addr_of(&b, "serving DNS over QUIC");
    let ca = [format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
    let over = |extra: &str| -> Vec<String> { std::iter::once(extra.to_owned()).chain(ca.iter().cloned()).collect() };
    // kdig takes +quic only after the TLS options.
    let quic: Vec<String> = ca.iter().cloned().chain(["+quic".to_owned()]).collect();
    for (name, t) in [
        ("www.example.com.", "A"),
        ("nothere.example.com.", "A"),
        ("www.example.com.", "TXT"),
        ("alias.example.com.", "A"),
        ("x.sub.example.com.", "A"),
        ("big.example.com.", "A"),
        ("example.com.", "MX"),
    ] {
        let plain = ask("kdig", udp, &["+tcp".to_owned()], name, t);
        assert!(!plain.0.starts_with("no answer") && !plain.1.is_empty(), "{name} {t}: {plain:?}");
        assert_eq!(ask("kdig", dot, &over("+tls"), name, t), plain, "kdig DoT {name} {t}");
        assert_eq!(ask("kdig", doh, &over("+https=/dns-query"), name, t), plain, "kdig DoH {name} {t}");
        assert_eq!(ask("kdig", doq, &quic, name, t), plain, "kdig DoQ {name} {t}");
        assert_eq!(
            ask("dig", dot, &over("+tls"), name, t),
            ask("dig", udp, &["+tcp".to_owned()], name, t),
            "dig DoT {name} {t}"
        );
        assert_eq!(
            ask("dig", doh, &over("+https=/dns-query"), name, t),
            ask("dig", udp, &["+tcp".to_owned()], name, t),
            "dig DoH {name} {t}"
        );
        // RFC 8484 GET: the message base64url-encoded in `?dns=`.
        assert_eq!(
            ask("dig", doh, &over("+https-get=/dns-query"), name, t),
            ask("dig", udp, &["+tcp".to_owned()], name, t),
            "dig DoH GET {name} {t}"
        );
        assert_eq!(ask("kdig", doh, &over("+https-get"), name, t), plain, "kdig DoH GET {name} {t}");
    }
    // Counted apart from TCP, by transport.
    for t in ["dot", "doh", "doq"] {
        let n = b.metric(&format!("r53dns_queries_total{{qtype=\"A\",rcode=\"NOERROR\",transport=\"{t}\"}}"));
        assert!(n >= 4, "{t}: {n}");
    }
    // Another CA: the client refuses the server, so no answer comes back.
    let (other, _) = certificate(dir.path(), "other");
    let refused = ask(
        "kdig",
        dot,
        &["+tls".to_owned(), format!("+tls-ca={other}"), "+tls-hostname=dns.test".to_owned()],
        "www.example.com.",
        "A",
    );
    assert!(refused.0.starts_with("no answer"), "a client with another CA got {refused:?}");
}

#[test]
fn the_query_acl_holds_over_tls_and_a_bad_key_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = serve_tls(dir.path(), &["--allow-query", "10.0.0.0/8", "--tls-listen", "127.0.0.1:0"]);
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let dot = addr_of(&b, "serving DNS over TLS");
    let ca = vec!["+tls".to_owned(), format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
    assert!(ask("kdig", dot, &ca, "www.example.com.", "A").0.starts_with("REFUSED"));
    // The key of another certificate: refused at startup, naming the file.
    let (_, other_key) = certificate(dir.path(), "other");
    let out = Binary::command()
        .args(["serve", "--zone", &zone, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
        .args(["--tls-cert", &cert, "--tls-key", &other_key, "--http-listen", "off"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("other.key") && text.contains("does not match"), "{text}");
}

/// A zone of `n` A records under `big.test.` (a transfer of many messages).
fn big_zone(dir: &Path, n: usize) -> std::path::PathBuf {
    let mut text =
        String::from("$ORIGIN big.test.\n$TTL 300\n@ SOA ns h 1 7200 900 1209600 300\n NS ns\nns A 192.0.2.1\n");
    for i in 0..n {
        text.push_str(&format!("host-{i} A 10.{}.{}.{}\n", i >> 16 & 255, i >> 8 & 255, i & 255));
    }
    let path = dir.join("big.test.zone");
    std::fs::write(&path, text).unwrap();
    path
}

/// `kdig` zone transfer over TLS: (records but the closing SOA, messages, the output).
fn kdig_xfr(addr: std::net::SocketAddr, ca: &[String], extra: &[&str], zone: &str, t: &str) -> (usize, usize, String) {
    let out = Command::new("kdig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+tls"])
        .args(ca)
        .args(extra)
        .args([zone, t])
        .output()
        .expect("kdig must be installed (apt-get install knot-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // kdig: ";; Received 1234 B (56 messages, 30003 records)".
    let summary = text.lines().find(|l| l.starts_with(";; Received")).unwrap_or("");
    let num = |what: &str| -> usize {
        let part = summary.split(['(', ',', ')']).find(|p| p.contains(what));
        part.and_then(|p| p.split_whitespace().next()?.parse().ok()).unwrap_or(0)
    };
    (num("record").saturating_sub(1), num("message"), text)
}

#[test]
fn zone_transfers_over_tls_reach_kdig_and_nsd_whole_and_only_allowed_clients() {
    let dir = tempfile::tempdir().unwrap();
    let zone = big_zone(dir.path(), 30_000);
    let (cert, key) = certificate(dir.path(), "server");
    let tls =
        ["--zone", &zone.display().to_string(), "--tls-cert", &cert, "--tls-key", &key, "--tls-listen", "127.0.0.1:0"]
            .map(str::to_owned);
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let b = Binary::serve(&[tls.as_slice(), &["--allow-transfer", "127.0.0.0/8"]].concat());
    let dot = addr_of(&b, "serving DNS over TLS");
    let ca = vec![format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
    let (records, messages, text) = kdig_xfr(dot, &ca, &[], "big.test.", "AXFR");
    let expect = r53dns_zone::load_zone_file(&zone, None).unwrap().0.record_count();
    assert_eq!(records, expect, "{}", &text[text.len().saturating_sub(600)..]);
    // More messages than a listener that queues 32 responses could send.
    assert!(messages > 40, "{messages} messages");
    let (current, _, text) = kdig_xfr(dot, &ca, &[], "big.test.", "IXFR=1");
    assert_eq!(current, 0, "IXFR from the current serial is one SOA: {text}");
    // NSD follows over TLS (it refuses to send the request unless the certificate checks).
    let nsd = crate::support::nsd::Nsd::secondary_tls("big.test.", dot, Path::new(&cert), "dns.test", None);
    for name in ["host-0.big.test.", "host-29999.big.test.", "big.test."] {
        let q = crate::support::dns::Query::new(name, "A");
        let (ours, theirs) = (crate::support::dns::ask(b.addr.unwrap(), &q), crate::support::dns::ask(nsd.addr, &q));
        assert_eq!(ours.rcode, theirs.rcode, "{name}");
        assert_eq!(ours.section("answer"), theirs.section("answer"), "{name}");
    }
    // Another client network: no transfer over TLS either.
    let denied = Binary::serve(&[tls.as_slice(), &["--allow-transfer", "10.0.0.0/8"]].concat());
    let (records, _, text) = kdig_xfr(addr_of(&denied, "serving DNS over TLS"), &ca, &[], "big.test.", "AXFR");
    assert_eq!(records, 0, "{}", &text[..text.len().min(600)]);
}

#[test]
fn signed_queries_and_transfers_over_tls_are_answered_signed() {
    const SECRET: &str = "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY=";
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    let (b, cert) = serve_tls(
        dir.path(),
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
            "--tsig-key-file",
            keys.to_str().unwrap(),
            "--transfer-key",
            "xfr-key",
        ],
    );
    let dot = addr_of(&b, "serving DNS over TLS");
    let ca = vec![format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
    let key = format!("hmac-sha256:xfr-key:{SECRET}");
    // kdig checks the signature of every message.
    let (records, _, text) = kdig_xfr(dot, &ca, &["-y", &key], "example.com.", "AXFR");
    let file = r53dns_zone::load_zone_file(&data_dir().join("zones/example.com.zone"), None).unwrap().0;
    assert_eq!(records, file.record_count(), "{text}");
    assert!(!text.contains("TSIG") || !text.to_ascii_lowercase().contains("failed"), "{text}");
    // Unsigned: no transfer (only the key may).
    assert_eq!(kdig_xfr(dot, &ca, &[], "example.com.", "AXFR").0, 0);
    // A signed query: a signed answer the client verifies.
    let (_, _, soa) = kdig_xfr(dot, &ca, &["-y", &key], "example.com.", "SOA");
    assert!(soa.contains("status: NOERROR") && soa.contains("TSIG PSEUDOSECTION"), "{soa}");
    assert!(!soa.contains("BADSIG") && !soa.to_ascii_lowercase().contains("failed"), "{soa}");
    // Over HTTPS, POST and GET alike, signed as well.
    let doh = addr_of(&b, "serving DNS over HTTPS");
    for how in ["+https", "+https-get"] {
        let (_, _, soa) = kdig_xfr(doh, &ca, &[how, "-y", &key], "example.com.", "SOA");
        assert!(soa.contains("status: NOERROR") && soa.contains("TSIG PSEUDOSECTION"), "{how}: {soa}");
        assert!(!soa.contains("BADSIG") && !soa.to_ascii_lowercase().contains("failed"), "{how}: {soa}");
    }
    // NSD follows with the key, over TLS.
    let nsd = crate::support::nsd::Nsd::secondary_tls(
        "example.com.",
        dot,
        Path::new(&cert),
        "dns.test",
        Some(("xfr-key", SECRET)),
    );
    let q = crate::support::dns::Query::new("www.example.com.", "A");
    assert_eq!(
        crate::support::dns::ask(b.addr.unwrap(), &q).section("answer"),
        crate::support::dns::ask(nsd.addr, &q).section("answer")
    );
}

/// The Python of the venv the tests install (tests/run-all.sh), with dnspython and aioquic.
pub(crate) fn venv_python() -> std::path::PathBuf {
    let venv = std::env::var_os("R53DNS_MOTO_VENV").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(|| "/root".into());
        home.join(".cache/r53dns/moto-venv")
    });
    venv.join("bin/python")
}

#[test]
fn dnspython_over_quic_gets_the_udp_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = serve_tls(dir.path(), &["--quic-listen", "127.0.0.1:0"]);
    let (udp, doq) = (b.addr.unwrap(), addr_of(&b, "serving DNS over QUIC"));
    // dnspython asks over QUIC (aioquic, checking the certificate against `cert`) and over
    // UDP, and prints each response's rcode, flags and sections.
    let script = r#"
import sys, dns.flags, dns.message, dns.query, dns.rcode
def show(r):
    lines = [dns.rcode.to_text(r.rcode()), dns.flags.to_text(r.flags)]
    for section in (r.answer, r.authority, r.additional):
        lines.append(" | ".join(sorted(rrset.to_text() for rrset in section)))
    return "\n".join(lines)
q = dns.message.make_query(sys.argv[5], sys.argv[6], use_edns=0)
q.flags &= ~dns.flags.RD
quic = dns.query.quic(q, sys.argv[1], port=int(sys.argv[2]), timeout=10, verify=sys.argv[7], server_hostname="dns.test")
udp = dns.query.udp(q, sys.argv[3], port=int(sys.argv[4]), timeout=5)
print(show(quic))
print("--")
print(show(udp))
"#;
    for (name, t) in [("www.example.com.", "A"), ("nothere.example.com.", "A"), ("alias.example.com.", "A")] {
        let out = Command::new(venv_python())
            .args(["-c", script, &doq.ip().to_string(), &doq.port().to_string(), &udp.ip().to_string()])
            .args([&udp.port().to_string(), name, t, &cert])
            .output()
            .expect("dnspython and aioquic must be installed in the test venv (tests/run-all.sh)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (quic, plain) = text.split_once("--\n").unwrap_or_else(|| panic!("{text}"));
        assert!(quic.starts_with("NOERROR") || quic.starts_with("NXDOMAIN"), "{name} {t}: {quic}");
        assert_eq!(quic, plain, "{name} {t}");
    }
}

#[test]
fn sighup_replaces_the_certificate_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, cert) = serve_tls(
        dir.path(),
        &["--tls-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"],
    );
    let listeners = [
        (addr_of(&b, "serving DNS over TLS"), "+tls"),
        (addr_of(&b, "serving DNS over HTTPS"), "+https=/dns-query"),
        (addr_of(&b, "serving DNS over QUIC"), "+quic"),
    ];
    // Clients trusting only `ca`, over each listener: the status they get.
    let status = |ca: &str| -> Vec<String> {
        listeners
            .iter()
            .map(|(addr, how)| {
                let opts = [format!("+tls-ca={ca}"), "+tls-hostname=dns.test".to_owned(), (*how).to_owned()];
                ask("kdig", *addr, &opts, "www.example.com.", "A").0
            })
            .collect()
    };
    assert!(status(&cert).iter().all(|s| s.starts_with("NOERROR")), "{:?}", status(&cert));
    // A new certificate and key in place of the old ones (as certbot renews them).
    let old = dir.path().join("old.crt");
    std::fs::copy(&cert, &old).unwrap();
    certificate(dir.path(), "server");
    // A broken key file on reload: the current certificate stays.
    let key = dir.path().join("server.key");
    let good_key = std::fs::read(&key).unwrap();
    std::fs::write(&key, "not a key").unwrap();
    b.signal("HUP");
    assert!(b.wait_for("cannot read the TLS certificate", std::time::Duration::from_secs(10)).is_some());
    let old = old.display().to_string();
    assert!(status(&old).iter().all(|s| s.starts_with("NOERROR")), "{:?}", status(&old));
    std::fs::write(&key, good_key).unwrap();
    b.signal("HUP");
    assert!(b.wait_for("TLS certificate and key reloaded", std::time::Duration::from_secs(10)).is_some());
    assert!(status(&cert).iter().all(|s| s.starts_with("NOERROR")), "{:?}", status(&cert));
    assert!(status(&old).iter().all(|s| s.starts_with("no answer")), "{:?}", status(&old));
}

#[test]
fn doh_refuses_what_is_not_a_dns_request_with_an_http_status() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = serve_tls(dir.path(), &["--https-listen", "127.0.0.1:0"]);
    let doh = addr_of(&b, "serving DNS over HTTPS");
    // curl over HTTP/2, trusting `cert`; the status code it got.
    let status = |args: &[&str], path: &str| -> String {
        let out = Command::new("curl")
            .args(["-s", "--http2", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", &cert])
            .args(["--resolve", &format!("dns.test:{}:127.0.0.1", doh.port())])
            .args(args)
            .arg(format!("https://dns.test:{}{path}", doh.port()))
            .output()
            .expect("curl must be installed (apt-get install curl)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // www.example.com A, ID 0, base64url without padding (the RFC 8484 §4.1 example form).
    let query = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
    assert_eq!(status(&[], &format!("/dns-query?dns={query}")), "200");
    assert_eq!(status(&[], &format!("/elsewhere?dns={query}")), "404");
    assert_eq!(status(&[], "/dns-query"), "400");
    assert_eq!(status(&[], "/dns-query?dns=%%%"), "400");
    assert_eq!(status(&["-X", "PUT"], "/dns-query"), "405");
    assert_eq!(status(&["-H", "content-type: text/plain", "--data-binary", "x"], "/dns-query"), "415");
    // The server still answers afterwards.
    assert_eq!(status(&[], &format!("/dns-query?dns={query}")), "200");
}

/// Unbound on a loopback port, stopped on drop.
struct Unbound {
    addr: std::net::SocketAddr,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        crate::support::stop(&mut self.child);
    }
}

impl Unbound {
    /// A resolver forwarding `zone` to `upstream` over TLS, checking its certificate against
    /// `ca` for `hostname`.
    fn forwarding_over_tls(zone: &str, upstream: std::net::SocketAddr, ca: &str, hostname: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = crate::support::nsd::free_port();
        let conf = format!(
            "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  \
             chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  \
             logfile: \"{d}/unbound.log\"\n  verbosity: 1\n  num-threads: 1\n  so-reuseport: no\n  do-ip6: no\n  \
             access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  module-config: \"iterator\"\n  \
             qname-minimisation: no\n  tls-cert-bundle: \"{ca}\"\n\
             remote-control:\n  control-enable: no\n\
             forward-zone:\n  name: \"{zone}\"\n  forward-addr: {}@{}#{hostname}\n  forward-tls-upstream: yes\n",
            upstream.ip(),
            upstream.port()
        );
        std::fs::write(dir.path().join("unbound.conf"), conf).unwrap();
        let child = Command::new("unbound")
            .args(["-d", "-c"])
            .arg(dir.path().join("unbound.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("unbound must be installed (apt-get install unbound)");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let u = Self { addr, child, _dir: dir };
        // Up when it answers at all (its own CHAOS id.server: REFUSED or an answer).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut probe = crate::support::dns::Query::new("id.server.", "TXT");
        probe.qclass = 3;
        while std::time::Instant::now() < deadline {
            if crate::support::dns::udp_exchange(addr, &probe.to_wire()).is_some() {
                return u;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(u._dir.path().join("unbound.log")).unwrap_or_default();
        panic!("Unbound did not start:\n{log}");
    }
}

#[test]
fn unbound_forwards_to_r53dns_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = serve_tls(dir.path(), &["--tls-listen", "127.0.0.1:0"]);
    let dot = addr_of(&b, "serving DNS over TLS");
    let unbound = Unbound::forwarding_over_tls("example.com.", dot, &cert, "dns.test");
    // What a resolver passes on: rcode and answer records (TTLs count down in its cache).
    let without_ttl = |rrs: Vec<String>| -> Vec<String> {
        rrs.iter()
            .map(|l| {
                l.split_whitespace().enumerate().filter(|(i, _)| *i != 1).map(|(_, w)| w).collect::<Vec<_>>().join(" ")
            })
            .collect()
    };
    for (name, t) in [("www.example.com.", "A"), ("nothere.example.com.", "A"), ("example.com.", "MX")] {
        let mut q = crate::support::dns::Query::new(name, t);
        q.rd = true;
        let ours = crate::support::dns::ask(b.addr.unwrap(), &crate::support::dns::Query::new(name, t));
        let theirs = crate::support::dns::ask(unbound.addr, &q);
        assert_eq!(theirs.rcode, ours.rcode, "{name} {t}");
        assert_eq!(without_ttl(theirs.section("answer")), without_ttl(ours.section("answer")), "{name} {t}");
    }
    // They came over TLS.
    let n = b.metric("r53dns_queries_total{qtype=\"A\",rcode=\"NOERROR\",transport=\"dot\"}");
    assert!(n >= 1, "{n} DoT queries");
}

/// RFC 9103 §9: zone transfers over TLS need TLS 1.3. A client held to TLS 1.2 (Python's
/// `ssl`, that is OpenSSL, with dnspython) is answered its queries but refused AXFR and IXFR,
/// signed when it signed; over TLS 1.3 the same client, and kdig, transfer the zone.
#[test]
fn zone_transfers_over_tls_need_tls_1_3_but_queries_do_not() {
    const SECRET: &str = "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY=";
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    let (b, cert) = serve_tls(
        dir.path(),
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--allow-transfer",
            "127.0.0.0/8",
            "--tsig-key-file",
            keys.to_str().unwrap(),
            "--transfer-key",
            "xfr-key",
        ],
    );
    let dot = addr_of(&b, "serving DNS over TLS");
    // Prints, for each request on its own connection: the TLS version, the rcode, whether
    // the response was signed (dnspython checks the signature) and the answer records.
    let script = r#"
import socket, ssl, sys, dns.message, dns.rrset, dns.query, dns.rcode, dns.tsigkeyring
ctx = ssl.create_default_context(cafile=sys.argv[3])
if sys.argv[4] == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
keyring = dns.tsigkeyring.from_text({"xfr-key": ("hmac-sha256", sys.argv[5])})
for qtype, signed in (("SOA", False), ("AXFR", False), ("IXFR", False), ("AXFR", True)):
    q = dns.message.make_query("example.com.", qtype)
    if qtype == "IXFR":
        q.authority.append(dns.rrset.from_text("example.com.", 0, "IN", "SOA", ". . 1 0 0 0 0"))
    if signed:
        q.use_tsig(keyring, keyname="xfr-key", algorithm="hmac-sha256")
    raw = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="dns.test")
    r = dns.query.tls(q, sys.argv[1], port=int(sys.argv[2]), timeout=10, sock=s)
    print(s.version(), qtype, "signed" if signed else "plain", dns.rcode.to_text(r.rcode()), r.had_tsig, sum(len(x) for x in r.answer))
    s.close()
"#;
    let run = |version: &str| -> String {
        let out = Command::new(venv_python())
            .args(["-c", script, &dot.ip().to_string(), &dot.port().to_string(), &cert, version, SECRET])
            .output()
            .expect("dnspython must be installed in the test venv (tests/run-all.sh)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let old = run("1.2");
    let lines: Vec<&str> = old.lines().collect();
    assert_eq!(lines.len(), 4, "{old}");
    assert!(lines[0].starts_with("TLSv1.2 SOA plain NOERROR False 1"), "{old}");
    assert!(lines[1].starts_with("TLSv1.2 AXFR plain REFUSED False 0"), "{old}");
    assert!(lines[2].starts_with("TLSv1.2 IXFR plain REFUSED False 0"), "{old}");
    assert!(lines[3].starts_with("TLSv1.2 AXFR signed REFUSED True 0"), "{old}");
    assert_eq!(b.metric("r53dns_requests_refused_total{reason=\"transfer_tls_version\"}"), 3);
    let new = run("1.3");
    let lines: Vec<&str> = new.lines().collect();
    assert!(lines[0].starts_with("TLSv1.3 SOA plain NOERROR False 1"), "{new}");
    for l in &lines[1..] {
        let n: usize = l.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(l.contains(" NOERROR ") && n > 2, "{new}");
    }
    // kdig (GnuTLS, TLS 1.3) transfers the whole zone.
    let ca = vec![format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
    let (records, _, text) = kdig_xfr(dot, &ca, &[], "example.com.", "AXFR");
    let file = r53dns_zone::load_zone_file(&data_dir().join("zones/example.com.zone"), None).unwrap().0;
    assert_eq!(records, file.record_count(), "{text}");
    assert_eq!(b.metric("r53dns_requests_refused_total{reason=\"transfer_tls_version\"}"), 3);
}

/// RFC 8484 §5.1: a DoH response may be cached for the smallest TTL of its answer; a
/// negative answer for its SOA's negative TTL (the lesser of the SOA's TTL and MINIMUM, RFC
/// 2308); an error not at all. Asked by curl over HTTP/2, GET and POST alike.
#[test]
fn doh_responses_carry_cache_control_from_the_answer_ttls() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("ttl.test.zone");
    std::fs::write(
        &zone,
        "$ORIGIN ttl.test.\n@ 3600 SOA ns h 1 7200 900 1209600 120\n@ 3600 NS ns\nns 600 A 192.0.2.1\n\
         www 300 A 192.0.2.3\nwww 300 A 192.0.2.4\nalias 60 CNAME www\nsub 900 NS ns.elsewhere.test.\n",
    )
    .unwrap();
    // A SOA whose TTL (45) is below its MINIMUM (900).
    let short = dir.path().join("short.test.zone");
    std::fs::write(
        &short,
        "$ORIGIN short.test.\n@ 45 SOA ns h 1 7200 900 1209600 900\n@ 3600 NS ns\nns 600 A 192.0.2.1\n",
    )
    .unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let (zone, short) = (zone.display().to_string(), short.display().to_string());
    let b = Binary::serve(&[
        "--zone",
        &zone,
        "--zone",
        &short,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--https-listen",
        "127.0.0.1:0",
    ]);
    let doh = addr_of(&b, "serving DNS over HTTPS");
    // The query (dnspython): base64url for GET, and the wire form for POST's body.
    let script = "import base64, sys, dns.message\n\
                  q = dns.message.make_query(sys.argv[1], sys.argv[2]); q.id = 0; w = q.to_wire()\n\
                  print(base64.urlsafe_b64encode(w).decode().rstrip('='), w.hex())";
    let wire = |name: &str, t: &str| -> (String, Vec<u8>) {
        let out = Command::new(venv_python())
            .args(["-c", script, name, t])
            .output()
            .expect("dnspython must be installed in the test venv (tests/run-all.sh)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (b64, hex) = text.trim().split_once(' ').unwrap();
        let raw = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        (b64.to_owned(), raw)
    };
    // curl's view: (HTTP status, the Cache-Control header if any).
    let curl = |(b64, raw): &(String, Vec<u8>), post: bool| -> (String, Option<String>) {
        let mut c = Command::new("curl");
        c.args(["-s", "--http2", "--max-time", "10", "-o", "/dev/null", "-D", "-", "--cacert", &cert])
            .args(["--resolve", &format!("dns.test:{}:127.0.0.1", doh.port())]);
        let url = format!("https://dns.test:{}/dns-query", doh.port());
        if post {
            let body = dir.path().join("body");
            std::fs::write(&body, raw).unwrap();
            c.args(["-H", "content-type: application/dns-message", "--data-binary"])
                .arg(format!("@{}", body.display()))
                .arg(url);
        } else {
            c.arg(format!("{url}?dns={b64}"));
        }
        let out = c.output().expect("curl must be installed (apt-get install curl)");
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = head.lines().next().unwrap_or("").split_whitespace().nth(1).unwrap_or("").to_owned();
        let cache = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("cache-control").then(|| v.trim().to_owned())
        });
        (status, cache)
    };
    for (name, t, expect) in [
        ("www.ttl.test.", "A", Some("max-age=300")),
        // CNAME 60, then A 300: the least.
        ("alias.ttl.test.", "A", Some("max-age=60")),
        ("ns.ttl.test.", "A", Some("max-age=600")),
        // NXDOMAIN and NODATA: the SOA's MINIMUM (120) below its TTL (3600).
        ("nothere.ttl.test.", "A", Some("max-age=120")),
        ("www.ttl.test.", "TXT", Some("max-age=120")),
        ("nothere.short.test.", "A", Some("max-age=45")),
        // A referral: the delegation's NS TTL.
        ("host.sub.ttl.test.", "A", Some("max-age=900")),
        // Not a zone served here: REFUSED, not to be cached.
        ("www.example.org.", "A", None),
    ] {
        let q = wire(name, t);
        for post in [false, true] {
            let (status, cache) = curl(&q, post);
            assert_eq!(status, "200", "{name} {t} post={post}");
            assert_eq!(cache.as_deref(), expect, "{name} {t} post={post}");
        }
    }
}

/// A TSIG-signed query over QUIC is answered signed: our octets with the Message ID 0, the
/// signature over the query's ID (its Original ID), which dnspython (aioquic) checks. A
/// query signed with a wrong secret gets the TSIG error.
#[test]
fn signed_queries_over_quic_are_answered_signed() {
    const SECRET: &str = "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY=";
    const WRONG: &str = "d3Jvbmctc2VjcmV0LWZvci10cmFuc2ZlcnMtMTIzNDU=";
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::support::key_file(dir.path(), "q-key", SECRET);
    let (b, cert) = serve_tls(dir.path(), &["--quic-listen", "127.0.0.1:0", "--tsig-key-file", keys.to_str().unwrap()]);
    let (udp, doq) = (b.addr.unwrap(), addr_of(&b, "serving DNS over QUIC"));
    let script = r#"
import sys, dns.message, dns.query, dns.rcode, dns.tsigkeyring
def ask(name, qtype, secret, how):
    q = dns.message.make_query(name, qtype, use_edns=0)
    q.use_tsig(dns.tsigkeyring.from_text({"q-key": ("hmac-sha256", secret)}), keyname="q-key", algorithm="hmac-sha256")
    try:
        if how == "quic":
            r = dns.query.quic(q, sys.argv[1], port=int(sys.argv[2]), timeout=10, verify=sys.argv[5], server_hostname="dns.test")
        else:
            r = dns.query.udp(q, sys.argv[3], port=int(sys.argv[4]), timeout=5)
    except Exception as e:
        return type(e).__name__
    return " ".join([dns.rcode.to_text(r.rcode()), str(r.had_tsig), " | ".join(sorted(x.to_text().replace("\n", " / ") for x in r.answer))])
for name, qtype in (("www.example.com.", "A"), ("example.com.", "NS"), ("alias.example.com.", "A"), ("nothere.example.com.", "A")):
    print(ask(name, qtype, sys.argv[6], "quic"))
    print(ask(name, qtype, sys.argv[6], "udp"))
print(ask("www.example.com.", "A", sys.argv[7], "quic"))
"#;
    let out = Command::new(venv_python())
        .args(["-c", script, &doq.ip().to_string(), &doq.port().to_string(), &udp.ip().to_string()])
        .args([&udp.port().to_string(), &cert, SECRET, WRONG])
        .output()
        .expect("dnspython and aioquic must be installed in the test venv (tests/run-all.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9, "{text}");
    for pair in lines[..8].chunks(2) {
        // Verified by dnspython (it raises on a bad or missing signature), and as over UDP.
        assert!(pair[0].starts_with("NOERROR True") || pair[0].starts_with("NXDOMAIN True"), "{text}");
        assert_eq!(pair[0], pair[1], "{text}");
    }
    assert_eq!(lines[8], "PeerBadSignature", "{text}");
}

/// Zone transfers over QUIC (XoQ, RFC 9250 §4.2): every message of the transfer on the
/// request's stream. An aioquic client receives a 30 000-record zone whole, in as many
/// messages as kdig over TLS (kdig 3.2's own QUIC client loses messages of transfers that
/// large, so it is asked for the small zone only); kdig over QUIC gets the small zone as
/// over TLS, signed with the transfer key (every message verified by kdig); unsigned, or
/// from a network not allowed, refused.
#[test]
fn zone_transfers_over_quic_reach_clients_whole_signed_and_only_allowed_clients() {
    const SECRET: &str = "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY=";
    let dir = tempfile::tempdir().unwrap();
    let big = big_zone(dir.path(), 30_000).display().to_string();
    let small = data_dir().join("zones/example.com.zone").display().to_string();
    let (cert, key) = certificate(dir.path(), "server");
    let keys = crate::support::key_file(dir.path(), "xfr-key", SECRET);
    let served = [
        &["--zone", &big, "--zone", &small][..],
        &crate::support::tls::dot(&cert, &key)[..],
        &["--quic-listen", "127.0.0.1:0"][..],
    ]
    .concat();
    let ca = vec![format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
    let b = Binary::serve(&[served.as_slice(), &["--allow-transfer", "127.0.0.0/8"]].concat());
    let (doq, dot) = (addr_of(&b, "serving DNS over QUIC"), addr_of(&b, "serving DNS over TLS"));
    let script = r#"
import asyncio, sys, dns.message, dns.rdatatype
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived

class P(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.data = bytearray()
        self.done = asyncio.Event()
    def quic_event_received(self, e):
        if isinstance(e, StreamDataReceived):
            self.data += e.data
            if e.end_stream:
                self.done.set()

async def main():
    cfg = QuicConfiguration(is_client=True, alpn_protocols=["doq"], server_name="dns.test", cafile=sys.argv[3])
    async with connect(sys.argv[1], int(sys.argv[2]), configuration=cfg, create_protocol=P) as p:
        q = dns.message.make_query(sys.argv[4], "AXFR", id=0).to_wire()
        p._quic.send_stream_data(p._quic.get_next_available_stream_id(), len(q).to_bytes(2, "big") + q, end_stream=True)
        p.transmit()
        await asyncio.wait_for(p.done.wait(), 30)
        d, at, msgs, records = bytes(p.data), 0, 0, 0
        while at < len(d):
            n = int.from_bytes(d[at:at + 2], "big")
            m = dns.message.from_wire(d[at + 2:at + 2 + n], one_rr_per_rrset=True)
            msgs += 1
            records += len(m.answer)
            at += 2 + n
        print(len(d), "octets", msgs, "messages", records, "records")
asyncio.run(main())
"#;
    let out = Command::new(venv_python())
        .args(["-c", script, &doq.ip().to_string(), &doq.port().to_string(), &cert, "big.test."])
        .output()
        .expect("dnspython and aioquic must be installed in the test venv (tests/run-all.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (tls, tls_messages, _) = kdig_xfr(dot, &ca, &[], "big.test.", "AXFR");
    assert_eq!(tls, 30_003);
    // Records counted with both SOAs (kdig_xfr leaves one out).
    assert!(text.trim_end().ends_with(&format!(" octets {tls_messages} messages 30004 records")), "{text}");
    assert!(tls_messages > 1);
    let (quic, _, text) = kdig_xfr(doq, &ca, &["+quic"], "example.com.", "AXFR");
    let file = r53dns_zone::load_zone_file(Path::new(&small), None).unwrap().0;
    assert_eq!(quic, file.record_count(), "{text}");

    // Only the key may transfer: signed, every message checked by kdig; unsigned, refused.
    let signed = Binary::serve(
        &[served.as_slice(), &["--tsig-key-file", keys.to_str().unwrap(), "--transfer-key", "xfr-key"]].concat(),
    );
    let doq = addr_of(&signed, "serving DNS over QUIC");
    let secret = format!("hmac-sha256:xfr-key:{SECRET}");
    let (records, _, text) = kdig_xfr(doq, &ca, &["+quic", "-y", &secret], "example.com.", "AXFR");
    assert_eq!(records, file.record_count(), "{text}");
    assert!(text.contains("TSIG") && !text.to_ascii_lowercase().contains("failed"), "{text}");
    let (records, _, text) = kdig_xfr(doq, &ca, &["+quic"], "example.com.", "AXFR");
    assert!(records == 0 && text.contains("REFUSED"), "{text}");

    // Another client network: no transfer over QUIC either.
    let denied = Binary::serve(&[served.as_slice(), &["--allow-transfer", "10.0.0.0/8"]].concat());
    let (records, _, text) =
        kdig_xfr(addr_of(&denied, "serving DNS over QUIC"), &ca, &["+quic"], "example.com.", "AXFR");
    assert!(records == 0 && text.contains("REFUSED"), "{text}");
}

/// aioquic driven directly, for what a QUIC client sees that dnspython hides (stream
/// resets, connection closes and their codes): runs `main` (Python, an `async def main()`
/// on argv host, port, CA) after a prelude with a protocol `P` that records, in order,
/// "stream N answered", "stream N reset CODE" and "connection closed CODE", `cfg()` for a
/// client configuration, and `ask(p, qid)` that sends a query for www.example.com. A and
/// returns the event it caused (or "nothing for 5 s"). Returns what the script printed.
fn aioquic(doq: std::net::SocketAddr, cert: &str, main: &str) -> String {
    const PRELUDE: &str = r#"
import asyncio, sys, dns.message
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived, StreamReset, ConnectionTerminated

class P(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.events = []
        self.changed = asyncio.Event()
    def quic_event_received(self, e):
        if isinstance(e, StreamDataReceived) and e.end_stream:
            self.events.append("stream %d answered" % e.stream_id)
        elif isinstance(e, StreamReset):
            self.events.append("stream %d reset %d" % (e.stream_id, e.error_code))
        elif isinstance(e, ConnectionTerminated):
            self.events.append("connection closed %d" % e.error_code)
        self.changed.set()

def cfg():
    return QuicConfiguration(is_client=True, alpn_protocols=["doq"], server_name="dns.test", cafile=sys.argv[3])

async def ask(p, qid):
    w = dns.message.make_query("www.example.com.", "A", id=qid).to_wire()
    p._quic.send_stream_data(p._quic.get_next_available_stream_id(), len(w).to_bytes(2, "big") + w, end_stream=True)
    p.transmit()
    n = len(p.events)
    try:
        while len(p.events) == n:
            p.changed.clear()
            await asyncio.wait_for(p.changed.wait(), 5)
        return p.events[n]
    except asyncio.TimeoutError:
        return "nothing for 5 s"
"#;
    let script = format!("{PRELUDE}\n{main}\nasyncio.run(main())\n");
    let out = Command::new(venv_python())
        .args(["-c", &script, &doq.ip().to_string(), &doq.port().to_string(), cert])
        .output()
        .expect("dnspython and aioquic must be installed in the test venv (tests/run-all.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// RFC 9250 §4.2.1: over QUIC the Message ID is 0, and a request with another ID is a
/// protocol error (§4.3.3): no answer, the connection closed with DOQ_PROTOCOL_ERROR (2),
/// the refusal counted. A query with ID 0 on the same connection is answered first.
#[test]
fn a_quic_request_with_a_message_id_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = serve_tls(dir.path(), &["--quic-listen", "127.0.0.1:0"]);
    let main = r#"
async def main():
    async with connect(sys.argv[1], int(sys.argv[2]), configuration=cfg(), create_protocol=P) as p:
        print(await ask(p, 0))
        print(await ask(p, 4660))
"#;
    let text = aioquic(addr_of(&b, "serving DNS over QUIC"), &cert, main);
    assert_eq!(text.lines().collect::<Vec<_>>(), ["stream 0 answered", "connection closed 2"], "{text}");
    assert_eq!(b.metric("r53dns_requests_refused_total{reason=\"doq_message_id\"}"), 1);
}

/// RFC 7830 / RFC 8467: a padded query over TLS, HTTPS or QUIC gets an answer padded to a
/// multiple of 468 octets (kdig pads its queries over these by default and reports the
/// padding it receives); a query without padding, and a padded query over plain TCP (where
/// padding hides nothing), get none. The records are the same either way.
#[test]
fn padded_queries_over_encrypted_transports_get_padded_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = serve_tls(
        dir.path(),
        &["--tls-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"],
    );
    let (tcp, dot, doh, doq) = (
        b.addr.unwrap(),
        addr_of(&b, "serving DNS over TLS"),
        addr_of(&b, "serving DNS over HTTPS"),
        addr_of(&b, "serving DNS over QUIC"),
    );
    let received = |server: std::net::SocketAddr, opts: &[&str], name: &str| -> (usize, bool, String) {
        // kdig takes +tls-ca as +tls: only with an encrypted transport.
        let tls = [format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
        let out = Command::new("kdig")
            .arg(format!("@{}", server.ip()))
            .args(["-p", &server.port().to_string()])
            .args(if opts.contains(&"+tcp") { &[][..] } else { &tls[..] })
            .args(opts)
            .args(["+norec", name, "A"])
            .output()
            .expect("kdig");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let size = text
            .lines()
            .find_map(|l| l.strip_prefix(";; Received ")?.strip_suffix(" B")?.parse().ok())
            .unwrap_or_else(|| panic!("no answer: {text}"));
        let answer: Vec<&str> = text.lines().filter(|l| l.contains("\tIN\t") && !l.starts_with(';')).collect();
        (size, text.contains(";; PADDING:"), answer.join("\n"))
    };
    for name in ["www.example.com.", "nothere.example.com.", "big.example.com."] {
        let (_, plain_padded, plain) = received(tcp, &["+tcp", "+padding"], name);
        assert!(!plain_padded, "{name}: padded over plain TCP");
        for (what, server, opts) in
            [("dot", dot, &["+tls"][..]), ("doh", doh, &["+https"][..]), ("doq", doq, &["+quic"][..])]
        {
            let (size, padded, records) = received(server, opts, name);
            assert!(padded && size % 468 == 0, "{what} {name}: {size} octets, padding {padded}");
            assert_eq!(records, plain, "{what} {name}");
            let unpadded: Vec<&str> = opts.iter().copied().chain(["+nopadding"]).collect();
            let (size, padded, records) = received(server, &unpadded, name);
            assert!(!padded && size % 468 != 0, "{what} {name} +nopadding: {size} octets");
            assert_eq!(records, plain, "{what} {name} +nopadding");
        }
    }
}

/// DNS over QUIC connections hold slots in the connection table TCP, DoT and DoH use: with
/// one connection allowed per client network, a second QUIC connection from the same
/// network is refused in its handshake (counted as `tcp_network_limit`, logged) while the
/// first is still answered, and a new one is taken once the first has closed.
#[test]
fn quic_connections_count_against_the_connection_table() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("r53dns.toml");
    std::fs::write(&config, "[server]\ntcp-max-connections-per-network = 1\n").unwrap();
    let (b, cert) = serve_tls(dir.path(), &["--config", config.to_str().unwrap(), "--quic-listen", "127.0.0.1:0"]);
    let main = r#"
async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    async with connect(host, port, configuration=cfg(), create_protocol=P) as a:
        print("first", await ask(a, 0))
        try:
            async with connect(host, port, configuration=cfg(), create_protocol=P) as b:
                print("second", await ask(b, 0))
        except ConnectionError:
            print("second refused")
        print("first again", await ask(a, 0))
    async with connect(host, port, configuration=cfg(), create_protocol=P) as c:
        print("after the first closed", await ask(c, 0))
"#;
    let text = aioquic(addr_of(&b, "serving DNS over QUIC"), &cert, main);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "first stream 0 answered",
            "second refused",
            "first again stream 4 answered",
            "after the first closed stream 0 answered"
        ],
        "{text}"
    );
    assert_eq!(b.metric("r53dns_requests_refused_total{reason=\"tcp_network_limit\"}"), 1);
}

/// QUIC handshakes run side by side: clients that send their first packet and fall silent
/// (each holding a half-done handshake until `[tls] timeout`, here a minute) do not hold up
/// another client, which gets its answer within dnspython's 10-second timeout. (A server
/// that completes one handshake before taking the next connection answers it only after
/// the stalled handshakes have timed out.)
#[test]
fn stalled_quic_handshakes_do_not_hold_up_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("r53dns.toml");
    std::fs::write(&config, "[tls]\ntimeout = \"60s\"\n").unwrap();
    let (b, cert) = serve_tls(dir.path(), &["--config", config.to_str().unwrap(), "--quic-listen", "127.0.0.1:0"]);
    let doq = addr_of(&b, "serving DNS over QUIC");
    let script = r#"
import socket, sys, time, dns.message, dns.query
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
host, port, cert, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
socks = []
for i in range(n):
    c = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=["doq"], server_name="dns.test"))
    c.connect((host, port), now=time.time())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for data, addr in c.datagrams_to_send(now=time.time()):
        s.sendto(data, addr)
    socks.append(s)  # never read: the handshake stays half-done
time.sleep(0.2)
q = dns.message.make_query("www.example.com.", "A")
t = time.monotonic()
try:
    dns.query.quic(q, host, port=port, timeout=10, verify=cert, server_hostname="dns.test")
    print("answered after %.2f s with %d stalled handshakes ahead" % (time.monotonic() - t, n))
except Exception as e:
    print("failed after %.2f s: %r" % (time.monotonic() - t, e))
"#;
    let out = Command::new(venv_python())
        .args(["-c", script, &doq.ip().to_string(), &doq.port().to_string(), &cert, "5"])
        .output()
        .expect("dnspython and aioquic must be installed in the test venv (tests/run-all.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with("answered after ") && text.trim_end().ends_with("with 5 stalled handshakes ahead"),
        "{text}"
    );
    // The five half-done handshakes hold connection slots until they time out.
    assert!(b.metric("r53dns_tcp_connections") >= 5);
}

/// A connection closed in its handshake is counted by transport and reason, and logged:
/// with a one-second `[tls] timeout`, a TCP client that sends nothing to the DoT and the
/// DoH port and a QUIC client that sends its first packet and falls silent time out, while
/// a client that speaks plain text to the DoT port and one that offers QUIC with the wrong
/// ALPN fail. A client that completes its handshake is not counted.
#[test]
fn handshakes_that_stall_or_fail_are_counted_by_transport_and_reason() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("r53dns.toml");
    std::fs::write(&config, "[tls]\ntimeout = \"1s\"\n").unwrap();
    let (mut b, cert) = serve_tls(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--tls-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
            "--quic-listen",
            "127.0.0.1:0",
        ],
    );
    let (dot, doh) = (addr_of(&b, "serving DNS over TLS"), addr_of(&b, "serving DNS over HTTPS"));
    let doq = addr_of(&b, "serving DNS over QUIC");
    let silent_dot = std::net::TcpStream::connect(dot).unwrap();
    let silent_doh = std::net::TcpStream::connect(doh).unwrap();
    let mut plain = std::net::TcpStream::connect(dot).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\nHost: dns.test\r\n\r\n").unwrap();
    plain.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    // The server answers garbage with a TLS alert or nothing, then closes.
    let mut rest = Vec::new();
    let _ = plain.read_to_end(&mut rest);
    let main = r#"
import socket, time
from aioquic.quic.connection import QuicConnection

async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = QuicConnection(configuration=cfg())
    c.connect((host, port), now=time.time())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for data, addr in c.datagrams_to_send(now=time.time()):
        s.sendto(data, addr)  # never read again: the handshake stays half-done
    wrong = cfg()
    wrong.alpn_protocols = ["h3"]
    try:
        async with connect(host, port, configuration=wrong, create_protocol=P) as a:
            print("wrong ALPN connected")
    except ConnectionError:
        print("wrong ALPN refused")
    async with connect(host, port, configuration=cfg(), create_protocol=P) as a:
        print("right ALPN", await ask(a, 0))
    await asyncio.sleep(2.5)
"#;
    let text = aioquic(doq, &cert, main);
    assert_eq!(text.lines().collect::<Vec<_>>(), ["wrong ALPN refused", "right ALPN stream 0 answered"], "{text}");
    let count = |transport: &str, reason: &str| {
        b.metric(&format!("r53dns_handshakes_failed_total{{reason=\"{reason}\",transport=\"{transport}\"}}"))
    };
    // The silent TCP clients have been waiting longer than the QUIC one.
    assert_eq!(
        [count("dot", "timeout"), count("dot", "failed"), count("doh", "timeout"), count("doh", "failed")],
        [1, 1, 1, 0]
    );
    assert_eq!([count("doq", "timeout"), count("doq", "failed")], [1, 1]);
    let logged = b.wait_for("connection closed in its handshake", std::time::Duration::from_secs(1));
    assert!(logged.is_some_and(|l| l.contains("reason=")), "logged with its reason");
    drop((silent_dot, silent_doh));
}
