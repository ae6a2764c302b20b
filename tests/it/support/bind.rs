//! BIND 9 (named) from Debian as a secondary or a primary on a loopback port, stopped on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::nsd::free_port;

pub struct Bind {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Bind {
    /// A secondary of `primary` for `apex` on `port`, transferring with TSIG key `key`
    /// (`name`, `secret`, hmac-sha256) when given; waits until it has the zone. BIND's limit
    /// of 100 records per RRset (9.18.28 on) is lifted: tests transfer larger ones.
    pub fn secondary(apex: &str, primary: SocketAddr, key: Option<(&str, &str)>, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (key_conf, key_ref) = match key {
            Some((name, secret)) => (
                format!("key \"{name}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n"),
                format!(" key \"{name}\""),
            ),
            None => (String::new(), String::new()),
        };
        let zone = apex.trim_end_matches('.');
        let zones = format!(
            "{key_conf}zone \"{zone}\" {{\n  type secondary;\n  primaries {{ {} port {}{key_ref}; }};\n  \
             file \"{d}/{zone}.db\";\n}};\n",
            primary.ip(),
            primary.port()
        );
        Self::run(dir, port, apex, &zones)
    }

    /// Serves `apex` from the zone file `file` as its primary, on a free port.
    pub fn primary(apex: &str, file: &std::path::Path) -> Self {
        let zone = apex.trim_end_matches('.');
        let zones = format!("zone \"{zone}\" {{\n  type primary;\n  file \"{}\";\n}};\n", file.display());
        Self::run(tempfile::tempdir().unwrap(), free_port(), apex, &zones)
    }

    /// Serves `apex` from `file` as its primary with zone transfers over TLS only (XoT, RFC
    /// 9103): DNS over TLS with `cert` and `key` (TLS 1.3) on a second port, and
    /// `allow-transfer` for that port and transport alone, so a transfer over plain TCP is
    /// refused. The TLS port is returned beside.
    pub fn primary_xot(apex: &str, file: &std::path::Path, cert: &str, key: &str) -> (Self, u16) {
        let zone = apex.trim_end_matches('.');
        let tls_port = free_port();
        let zones = format!(
            "tls xot {{ cert-file \"{cert}\"; key-file \"{key}\"; protocols {{ TLSv1.3; }}; }};\n\
             zone \"{zone}\" {{\n  type primary;\n  file \"{}\";\n  \
             allow-transfer port {tls_port} transport tls {{ 127.0.0.1; }};\n}};\n",
            file.display()
        );
        let listen = format!("  listen-on port {tls_port} tls xot {{ 127.0.0.1; }};\n");
        (Self::run_with(tempfile::tempdir().unwrap(), free_port(), apex, &zones, &listen), tls_port)
    }

    /// Re-reads the zone files (SIGHUP).
    pub fn reload(&self) {
        let ok = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Starts named with `zones` on `port` and waits until it answers for `apex`.
    fn run(dir: tempfile::TempDir, port: u16, apex: &str, zones: &str) -> Self {
        Self::run_with(dir, port, apex, zones, "")
    }

    /// Like [`Bind::run`] with `options` added to the `options` block.
    fn run_with(dir: tempfile::TempDir, port: u16, apex: &str, zones: &str, options: &str) -> Self {
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("named.conf"),
            format!(
                "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
                 pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  recursion no;\n  notify no;\n  \
                 dnssec-validation no;\n  minimal-responses no;\n  max-records-per-type 0;\n{options}}};\ncontrols {{ }};\n{zones}"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("named.log")).unwrap();
        let child = Command::new("named")
            .args(["-g", "-c"])
            .arg(dir.path().join("named.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("named must be installed (apt-get install bind9)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let bind = Self { addr, child, dir };
        if super::answers_soa(addr, apex) {
            return bind;
        }
        panic!("BIND did not get the zone:\n{}", bind.log());
    }

    /// A consumer of the catalog zone `catalog` (RFC 9432) of `primary`: it transfers the
    /// catalog and then every member zone from the same primary, with no zone configured.
    pub fn catalog_consumer(catalog: &str, primary: SocketAddr, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let cat = catalog.trim_end_matches('.');
        let (ip, pport) = (primary.ip(), primary.port());
        std::fs::write(
            dir.path().join("named.conf"),
            format!(
                "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
                 pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  recursion no;\n  notify no;\n  \
                 dnssec-validation no;\n  minimal-responses no;\n  allow-new-zones yes;\n  \
                 catalog-zones {{ zone \"{cat}\" default-primaries {{ {ip} port {pport}; }} in-memory yes; }};\n}};\n\
                 controls {{ }};\n\
                 zone \"{cat}\" {{\n  type secondary;\n  primaries {{ {ip} port {pport}; }};\n  file \"{d}/catalog.db\";\n}};\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("named.log")).unwrap();
        let child = Command::new("named")
            .args(["-g", "-c"])
            .arg(dir.path().join("named.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("named must be installed (apt-get install bind9)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // The caller waits for the member zones.
        let _ = catalog;
        Self { addr, child, dir }
    }

    /// A free port for [`Bind::secondary`].
    pub fn port() -> u16 {
        free_port()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        super::stop(&mut self.child);
    }
}
