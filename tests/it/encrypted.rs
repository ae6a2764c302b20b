//! DNS over TLS (RFC 7858) and over HTTPS (RFC 8484) on hickory-server's listeners, asked by
//! kdig and dig: the same answers as over UDP, a certificate clients verify, and the query
//! ACL applied alike.

use std::path::Path;
use std::process::Command;

use crate::support::server::{Binary, data_dir};

/// A self-signed certificate for `dns.test` and 127.0.0.1 (cert, key) in `dir`.
fn certificate(dir: &Path, name: &str) -> (String, String) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=dns.test", "-addext", "subjectAltName=DNS:dns.test,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    (cert.display().to_string(), key.display().to_string())
}

fn addr_of(b: &Binary, what: &str) -> std::net::SocketAddr {
    b.startup
        .iter()
        .find(|l| l.contains(what))
        .and_then(|l| l.split("addr=").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no '{what}' line in {:#?}", b.startup))
}

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
fn dot_and_doh_answer_as_udp_does_with_a_certificate_clients_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cert) = serve_tls(dir.path(), &["--tls-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"]);
    let (udp, dot, doh) = (b.addr.unwrap(), addr_of(&b, "serving DNS over TLS"), addr_of(&b, "serving DNS over HTTPS"));
    let ca = [format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
    let over = |extra: &str| -> Vec<String> { std::iter::once(extra.to_owned()).chain(ca.iter().cloned()).collect() };
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
