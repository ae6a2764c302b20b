//! What the tests of encrypted transports share: a certificate, a listener's address from
//! the startup log, and the arguments that serve DNS over TLS.

use std::path::Path;
use std::process::Command;

use super::server::Binary;

/// A self-signed certificate for `dns.test` and 127.0.0.1 (cert, key) in `dir`, its files
/// named after `name`.
pub fn certificate(dir: &Path, name: &str) -> (String, String) {
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

/// The address of the listener whose startup line contains `what` (`serving DNS over TLS`,
/// `… HTTPS`, `… QUIC`).
pub fn addr_of(b: &Binary, what: &str) -> std::net::SocketAddr {
    b.startup
        .iter()
        .find(|l| l.contains(what))
        .and_then(|l| l.split("addr=").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no '{what}' line in {:#?}", b.startup))
}

/// The arguments serving DNS over TLS on a free loopback port with `cert` and `key`.
pub fn dot<'a>(cert: &'a str, key: &'a str) -> [&'a str; 6] {
    ["--tls-cert", cert, "--tls-key", key, "--tls-listen", "127.0.0.1:0"]
}
