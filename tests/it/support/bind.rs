//! BIND 9 (named) from Debian as a secondary on a loopback port, stopped on drop.

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
    /// (`name`, `secret`, hmac-sha256) when given; waits until it has the zone.
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
        std::fs::write(
            dir.path().join("named.conf"),
            format!(
                "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
                 pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  recursion no;\n  notify no;\n  \
                 dnssec-validation no;\n  minimal-responses no;\n}};\ncontrols {{ }};\n{key_conf}\
                 zone \"{zone}\" {{\n  type secondary;\n  primaries {{ {} port {}{key_ref}; }};\n  file \"{d}/{zone}.db\";\n}};\n",
                primary.ip(),
                primary.port()
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
