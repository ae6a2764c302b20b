//! Knot DNS from Debian as a primary: serves a zone file on a loopback port, keeps a journal
//! of differences (so it answers IXFR incrementally) and NOTIFYs a secondary. Stopped on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::nsd::free_port;

pub struct Knot {
    pub addr: SocketAddr,
    child: Child,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Knot {
    /// Serves `apex` from `file`, allows transfers from loopback and NOTIFYs `notify`.
    pub fn primary(apex: &str, file: &Path, notify: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = free_port();
        let conf = dir.path().join("knot.conf");
        std::fs::write(
            &conf,
            format!(
                "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    \
                 background-workers: 1\ncontrol:\n    listen: \"{d}/knot.sock\"\ndatabase:\n    storage: \"{d}\"\n\
                 log:\n  - target: \"{d}/knot.log\"\n    any: info\n\
                 remote:\n  - id: follower\n    address: {}@{}\n\
                 acl:\n  - id: loopback\n    address: 127.0.0.0/8\n    action: transfer\n\
                 zone:\n  - domain: {apex}\n    file: \"{}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
                 zonefile-load: difference\n    journal-content: changes\n    semantic-checks: off\n    \
                 notify: follower\n    acl: loopback\n",
                notify.ip(),
                notify.port(),
                file.display()
            ),
        )
        .unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd must be installed (apt-get install knot)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let knot = Self { addr, child, conf, _dir: dir };
        if super::answers_soa(addr, apex) {
            return knot;
        }
        panic!("Knot did not start:\n{}", knot.log());
    }

    /// A consumer of the catalog zone `catalog` (RFC 9432) of `primary`: it transfers the
    /// catalog and then every member zone from the same primary, with no zone configured.
    pub fn catalog_consumer(catalog: &str, primary: SocketAddr, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = dir.path().join("knot.conf");
        std::fs::write(
            &conf,
            format!(
                "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    \
                 background-workers: 1\ncontrol:\n    listen: \"{d}/knot.sock\"\ndatabase:\n    storage: \"{d}\"\n\
                 log:\n  - target: \"{d}/knot.log\"\n    any: info\n\
                 remote:\n  - id: primary\n    address: {}@{}\n\
                 acl:\n  - id: notify-from-primary\n    address: 127.0.0.0/8\n    action: notify\n\
                 template:\n  - id: member\n    master: primary\n    acl: notify-from-primary\n    storage: \"{d}\"\n    \
                 file: \"{d}/%s.zone\"\n    zonefile-sync: -1\n    semantic-checks: off\n\
                 zone:\n  - domain: {catalog}\n    master: primary\n    acl: notify-from-primary\n    \
                 catalog-role: interpret\n    catalog-template: member\n    storage: \"{d}\"\n    \
                 file: \"{d}/catalog.zone\"\n    zonefile-sync: -1\n",
                primary.ip(),
                primary.port()
            ),
        )
        .unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd must be installed (apt-get install knot)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Knot does not answer queries for a catalog it interprets: the caller waits for
        // the member zones.
        Self { addr, child, conf, _dir: dir }
    }

    /// Re-reads the zone file (its difference to the served zone goes to the journal).
    pub fn reload(&self, apex: &str) {
        let out = Command::new("knotc").arg("-c").arg(&self.conf).args(["zone-reload", apex]).output().unwrap();
        assert!(out.status.success(), "knotc zone-reload: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("knot.log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        super::stop(&mut self.child);
    }
}
