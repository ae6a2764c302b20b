//! NSD from Debian as the reference server, on a loopback port, stopped on drop.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::dns::{Query, parse, udp_exchange};

pub struct Nsd {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A loopback port free for both UDP and TCP, for a server started later (a peer's NOTIFY
/// target, say). Taken outside the kernel's ephemeral range (32768–60999), so no outgoing
/// connection of another test can grab it in between, and never handed out twice.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..1000 {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        let mut given = GIVEN.lock().unwrap();
        if given.contains(&port) {
            continue;
        }
        let free =
            UdpSocket::bind(("127.0.0.1", port)).is_ok() && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

impl Nsd {
    /// Serves `zones` (apex, path to the zone file) and waits until NSD answers for the first.
    pub fn start(zones: &[(String, &Path)]) -> Self {
        let extra: Vec<String> = zones
            .iter()
            .map(|(apex, path)| format!("zone:\n  name: \"{apex}\"\n  zonefile: \"{}\"\n", path.display()))
            .collect();
        Self::start_with(&zones[0].0, &extra.concat(), None)
    }

    /// A secondary of `primary` for `apex` (AXFR/IXFR over TCP, NOTIFY accepted from it).
    pub fn secondary(apex: &str, primary: SocketAddr) -> Self {
        Self::secondary_on(apex, primary, None)
    }

    /// Like [`Nsd::secondary`], on a chosen port.
    pub fn secondary_on(apex: &str, primary: SocketAddr, port: Option<u16>) -> Self {
        let p = format!("{}@{}", primary.ip(), primary.port());
        let conf = format!(
            "zone:\n  name: \"{apex}\"\n  zonefile: \"{apex}zone\"\n  request-xfr: {p} NOKEY\n  allow-notify: {} NOKEY\n",
            primary.ip()
        );
        Self::start_with(apex, &conf, port)
    }

    /// A secondary that transfers with TSIG key `key` (`name`, `secret`, hmac-sha256).
    pub fn secondary_signed(apex: &str, primary: SocketAddr, key: (&str, &str)) -> Self {
        let p = format!("{}@{}", primary.ip(), primary.port());
        let conf = format!(
            "key:\n  name: \"{0}\"\n  algorithm: hmac-sha256\n  secret: \"{1}\"\nzone:\n  name: \"{apex}\"\n  zonefile: \"{apex}zone\"\n  request-xfr: {p} {0}\n  allow-notify: {2} {0}\n",
            key.0,
            key.1,
            primary.ip()
        );
        Self::start_with(apex, &conf, None)
    }

    /// A secondary that transfers over TLS (RFC 9103), checking the primary's certificate
    /// against `ca` for `hostname`; `key` signs the transfers when given.
    pub fn secondary_tls(
        apex: &str,
        primary: SocketAddr,
        ca: &Path,
        hostname: &str,
        key: Option<(&str, &str)>,
    ) -> Self {
        let p = format!("{}@{}", primary.ip(), primary.port());
        let (key_conf, key_name) = match key {
            Some((name, secret)) => {
                (format!("key:\n  name: \"{name}\"\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\n"), name)
            }
            None => (String::new(), "NOKEY"),
        };
        let conf = format!(
            "{key_conf}tls-auth:\n  name: \"primary\"\n  auth-domain-name: \"{hostname}\"\nzone:\n  name: \"{apex}\"\n  zonefile: \"{apex}zone\"\n  request-xfr: {p} {key_name} primary\n"
        );
        Self::start_inner(apex, &conf, None, &format!("  tls-cert-bundle: \"{}\"\n", ca.display()))
    }

    /// A primary for `apex` from `file`: transfers to loopback and NOTIFY to `notify`, both
    /// signed with `key` (`name`, `secret`, hmac-sha256) when one is given.
    pub fn primary(apex: &str, file: &Path, notify: SocketAddr, key: Option<(&str, &str)>) -> Self {
        let (key_conf, key_name) = match key {
            Some((name, secret)) => {
                (format!("key:\n  name: \"{name}\"\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\n"), name)
            }
            None => (String::new(), "NOKEY"),
        };
        let conf = format!(
            "{key_conf}zone:\n  name: \"{apex}\"\n  zonefile: \"{}\"\n  provide-xfr: 127.0.0.0/8 {key_name}\n  notify: {}@{} {key_name}\n",
            file.display(),
            notify.ip(),
            notify.port()
        );
        Self::start_with(apex, &conf, None)
    }

    /// Re-reads changed zone files (SIGHUP), which NSD follows with NOTIFYs.
    pub fn reload(&self) {
        let ok = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Like [`Nsd::start`] with extra `server:` settings (`identity: "x"` and so on), which
    /// override the defaults above them.
    pub fn start_configured(zones: &[(String, &Path)], server: &str) -> Self {
        let extra: Vec<String> = zones
            .iter()
            .map(|(apex, path)| format!("zone:\n  name: \"{apex}\"\n  zonefile: \"{}\"\n", path.display()))
            .collect();
        Self::start_inner(&zones[0].0, &extra.concat(), None, server)
    }

    fn start_with(probe_zone: &str, zone_conf: &str, fixed_port: Option<u16>) -> Self {
        Self::start_inner(probe_zone, zone_conf, fixed_port, "")
    }

    fn start_inner(probe_zone: &str, zone_conf: &str, fixed_port: Option<u16>, server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        for attempt in 0..5 {
            let port = fixed_port.unwrap_or_else(free_port);
            let mut conf = format!(
                "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
                 zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
                 zonelistfile: \"{d}/zone.list\"\n  hide-version: yes\n  hide-identity: yes\n  server-count: 1\n  \
                 verbosity: 1\n  logfile: \"{d}/nsd.log\"\n  reuseport: no\n  tcp-count: 64\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n{server}\
                 remote-control:\n  control-enable: no\n"
            );
            conf.push_str(zone_conf);
            std::fs::write(dir.path().join("nsd.conf"), conf).unwrap();
            let child = Command::new("nsd")
                .args(["-d", "-c"])
                .arg(dir.path().join("nsd.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nsd must be installed (apt-get install nsd)");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let probe = Query::new(probe_zone, "SOA");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut nsd = Some(Self { addr, child, _dir: tempfile::tempdir().unwrap() });
            while Instant::now() < deadline {
                let reply = udp_exchange(addr, &probe.to_wire()).and_then(|raw| parse(&raw).ok());
                if reply.is_some_and(|r| r.rcode == 0 && !r.answer.is_empty()) {
                    let mut n = nsd.take().unwrap();
                    n._dir = dir;
                    return n;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let log = std::fs::read_to_string(dir.path().join("nsd.log")).unwrap_or_default();
            eprintln!("NSD attempt {attempt} did not come up:\n{log}");
            drop(nsd);
        }
        panic!("NSD did not start");
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        super::stop(&mut self.child);
    }
}
