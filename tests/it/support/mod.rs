pub mod bind;
pub mod dns;
pub mod knot;
pub mod moto;
pub mod nsd;
pub mod server;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Asks a peer server to stop (SIGTERM), waits up to five seconds, then kills it.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits up to 20 s until `addr` answers `apex SOA` with data.
pub fn answers_soa(addr: std::net::SocketAddr, apex: &str) -> bool {
    let probe = dns::Query::new(apex, "SOA");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let reply = dns::udp_exchange(addr, &probe.to_wire()).and_then(|raw| dns::parse(&raw).ok());
        if reply.is_some_and(|r| r.rcode == 0 && !r.answer.is_empty()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Writes a BIND-syntax key file (`tsig-keygen` output) for an hmac-sha256 key.
pub fn key_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, format!("key \"{name}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"))
        .unwrap();
    path
}

/// An HTTP endpoint nothing listens on (AWS unreachable).
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port())
}

/// A TCP relay on loopback to `upstream` that counts the connections it accepts: the
/// connections a client opens towards a server, TLS sessions included (the relay does not
/// look inside). It stops accepting when dropped; relayed connections end with their ends.
pub struct CountingRelay {
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CountingRelay {
    pub fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, stopping) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = std::net::TcpStream::connect(upstream) else { continue };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Self { addr, accepted, stop }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr); // wakes the accept loop
    }
}
