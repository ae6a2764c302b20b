//! The service manager's protocol as systemd speaks it (`Type=notify`): the server tells a
//! `NOTIFY_SOCKET` when it is ready (only once zones are loaded and it answers), when it
//! reloads and is ready again, when it stops, and pings the watchdog.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dns::{Query, ask};
use crate::support::server::data_dir;

/// The next notification (a datagram of `KEY=value` lines) within `within`.
fn next(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Notifications until one contains `needle`.
fn wait_for(sock: &UnixDatagram, needle: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let m = next(sock, left)?;
        if m.contains(needle) {
            return Some(m);
        }
    }
    None
}

#[test]
fn ready_reloading_stopping_and_the_watchdog_reach_the_service_manager() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let port = crate::support::nsd::free_port();
    let zone = data_dir().join("zones/example.com.zone");
    // systemd sets WATCHDOG_PID to the service's own PID: `exec` keeps the shell's.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "WATCHDOG_PID=$$ exec {} serve --zone {} --listen 127.0.0.1:{port} --http-listen off --drain 0s",
            env!("CARGO_BIN_EXE_r53dns"),
            zone.display()
        ))
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let ready = wait_for(&sock, "READY=1", Duration::from_secs(20)).expect("no READY=1");
    assert!(ready.contains("STATUS=serving 1 zones"), "{ready}");
    // Ready means answering.
    assert_eq!(ask(addr, &Query::new("www.example.com.", "A")).answer.len(), 1);
    // The watchdog is pinged at half its interval.
    let started = Instant::now();
    let mut pings = 0;
    while pings < 3 {
        let m = next(&sock, Duration::from_secs(2)).expect("the watchdog is not pinged");
        pings += usize::from(m.contains("WATCHDOG=1"));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "3 pings took {:?}", started.elapsed());

    let kill = |sig: &str| {
        assert!(Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap().success());
    };
    kill("HUP");
    let reloading = wait_for(&sock, "RELOADING=1", Duration::from_secs(5)).expect("no RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let again = wait_for(&sock, "READY=1", Duration::from_secs(10)).expect("no READY=1 after the reload");
    assert!(again.contains("last reload: 0 errors"), "{again}");

    kill("TERM");
    assert!(wait_for(&sock, "STOPPING=1", Duration::from_secs(5)).is_some(), "no STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}
