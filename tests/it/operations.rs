//! Operating the real binary: /metrics (checked by promtool), /healthz, /readyz, the admin
//! routes and `r53dns ctl`, and graceful shutdown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::dns::{Query, ask};
use crate::support::moto::{Moto, Seeder, aws_env, rrset};
use crate::support::server::{Binary, data_dir};

/// A request as `r53dns ctl` makes it (the admin header, the address as Host).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    http_with(addr, method, path, &format!("Host: {addr}\r\nx-r53dns-ctl: 1\r\n"))
}

fn http_with(addr: SocketAddr, method: &str, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

/// The value of a sample line `name{labels} value` in Prometheus text.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn zone_dir() -> String {
    data_dir().join("zones").display().to_string()
}

#[test]
fn metrics_move_and_pass_promtool() {
    let b = Binary::serve(&["--zone-dir", &zone_dir()]);
    let (dns, web) = (b.addr.unwrap(), b.http.unwrap());
    let (code, before) = http(web, "GET", "/metrics");
    assert_eq!(code, 200);
    let key = "r53dns_queries_total{qtype=\"A\",rcode=\"NOERROR\",transport=\"udp\"}";
    let n0 = sample(&before, key).unwrap_or(0.0);
    for _ in 0..5 {
        ask(dns, &Query::new("www.example.com.", "A"));
    }
    ask(dns, &Query::new("big.example.com.", "A").no_edns());
    let mut chaos = Query::new("www.example.com.", "A");
    chaos.qclass = 3;
    ask(dns, &chaos);
    // A UDP answer is counted once it has been sent, so a scrape may come a moment before the
    // last count lands: wait (briefly) until it has.
    let refused = "r53dns_queries_total{qtype=\"A\",rcode=\"REFUSED\",transport=\"udp\"}";
    let mut after = String::new();
    for _ in 0..50 {
        after = http(web, "GET", "/metrics").1;
        if sample(&after, key) >= Some(n0 + 6.0) && sample(&after, refused).is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(sample(&after, key), Some(n0 + 6.0), "{after}");
    assert!(sample(&after, "r53dns_responses_truncated_total{transport=\"udp\"}").unwrap() >= 1.0);
    assert!(sample(&after, refused).unwrap() >= 1.0);
    assert!(sample(&after, "r53dns_response_duration_seconds_count{transport=\"udp\"}").unwrap() >= 7.0);
    assert_eq!(sample(&after, "r53dns_zone_serial{hosted_zone=\"\",zone=\"example.com.\"}"), Some(2024010101.0));
    // The build: version, the revision it was built from, what it serves.
    let version = Binary::command().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let revision = version.split(['(', ')']).nth(1).unwrap_or_default().to_owned();
    assert!(!revision.is_empty(), "{version}");
    let build = after.lines().find(|l| l.starts_with("r53dns_build_info{")).unwrap_or_default();
    assert!(build.contains(&format!("revision=\"{revision}\"")) && build.contains("dot,doh,doq"), "{build}");
    assert!(after.contains("process_resident_memory_bytes"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (Debian package prometheus)");
    promtool.stdin.take().unwrap().write_all(after.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(http(web, "GET", "/healthz").0, 200);
    assert_eq!(http(web, "GET", "/readyz").0, 200, "zone files loaded: ready");
    // Admin is on for a loopback listener.
    let (code, zones) = http(web, "GET", "/zones");
    assert_eq!(code, 200);
    assert!(zones.contains("\"name\": \"example.com.\""), "{zones}");
    assert_eq!(http(web, "POST", "/sync").0, 409, "no Route53 source");
    // What a web page could send (a simple request, no custom header), or a request to a
    // name rebound to this address, is refused.
    for headers in [format!("Host: {web}\r\n"), "Host: evil.example:9153\r\nx-r53dns-ctl: 1\r\n".to_owned()] {
        assert_eq!(http_with(web, "POST", "/sync", &headers).0, 403, "{headers}");
        assert_eq!(http_with(web, "GET", "/zones", &headers).0, 403, "{headers}");
    }
    assert_eq!(http_with(web, "GET", "/zones", "Host: localhost:9153\r\nx-r53dns-ctl: 1\r\n").0, 200);
}

#[test]
fn readiness_follows_the_first_sweep_and_failures_are_counted() {
    let moto = Moto::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    rt.block_on(async {
        let id = s.zone("ops.example.", false).await;
        s.upsert(&id, vec![rrset("www.ops.example.", "A", 60, &["192.0.2.1"])]).await;
    });
    let b = Binary::serve_with(&["--route53", "--refresh", "30s"], &aws_env(&moto.endpoint()));
    let (dns, web) = (b.addr.unwrap(), b.http.unwrap());
    let mut ready_at = None;
    for i in 0..100 {
        if http(web, "GET", "/readyz").0 == 200 {
            ready_at = Some(i);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ready_at.is_some(), "never ready");
    assert_eq!(ask(dns, &Query::new("www.ops.example.", "A")).answer.len(), 1, "ready means served");
    let (_, m) = http(web, "GET", "/metrics");
    assert!(
        sample(&m, "r53dns_route53_api_calls_total{operation=\"ListHostedZones\",outcome=\"ok\"}").unwrap() >= 1.0,
        "{m}"
    );
    assert_eq!(sample(&m, "r53dns_sync_sweeps_total{outcome=\"ok\"}"), Some(1.0));
    // A change, then POST /sync through `r53dns ctl`: served without waiting for the 30s timer.
    rt.block_on(async {
        let zones = s.client.list_hosted_zones().send().await.unwrap();
        let id = r53dns_route53::model::bare_zone_id(zones.hosted_zones()[0].id()).to_owned();
        s.upsert(&id, vec![rrset("www.ops.example.", "A", 60, &["192.0.2.2"])]).await;
    });
    let ctl = Binary::command().args(["ctl", "--http", &web.to_string(), "sync"]).output().unwrap();
    assert!(ctl.status.success(), "{}", String::from_utf8_lossy(&ctl.stderr));
    let mut updated = false;
    for _ in 0..50 {
        if ask(dns, &Query::new("www.ops.example.", "A")).section("answer")
            == vec!["www.ops.example. 60 IN A 192.0.2.2"]
        {
            updated = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(updated, "POST /sync did not sweep");
    let zones = Binary::command().args(["ctl", "--http", &web.to_string(), "zones"]).output().unwrap();
    assert!(String::from_utf8_lossy(&zones.stdout).contains("ops.example."));
    // Kill the API: the next sweep fails and is counted; the data and readiness stay.
    drop(moto);
    assert_eq!(http(web, "POST", "/sync").0, 202);
    let mut failed = None;
    for _ in 0..100 {
        let (_, m) = http(web, "GET", "/metrics");
        failed = sample(&m, "r53dns_sync_sweeps_total{outcome=\"failed\"}");
        if failed.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(failed, Some(1.0), "a failed sweep must be counted");
    assert_eq!(http(web, "GET", "/readyz").0, 200, "stays ready while the API is unreachable");
    assert_eq!(ask(dns, &Query::new("www.ops.example.", "A")).answer.len(), 1);
}

#[test]
fn sigterm_closes_idle_connections_and_exits_zero_quickly() {
    // No drain: the stop itself must be quick (the drain is tested in fleet.rs).
    let mut b = Binary::serve(&["--zone-dir", &zone_dir(), "--drain", "0s"]);
    let dns = b.addr.unwrap();
    // An idle TCP client must not hold the shutdown up for the idle timeout.
    let _idle = TcpStream::connect(dns).unwrap();
    let started = std::time::Instant::now();
    b.signal("TERM");
    let status = b.wait_exit(Duration::from_secs(15)).expect("did not exit");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn query_log_is_off_by_default_and_samples_when_asked() {
    let mut quiet = Binary::serve(&["--zone-dir", &zone_dir()]);
    ask(quiet.addr.unwrap(), &Query::new("www.example.com.", "A"));
    assert!(quiet.wait_for("qname=", Duration::from_millis(500)).is_none(), "no per-query logs by default");
    let mut all = Binary::serve(&["--zone-dir", &zone_dir(), "--query-log", "1"]);
    ask(all.addr.unwrap(), &Query::new("wWw.example.com.", "AAAA"));
    let line = all.wait_for("qname=", Duration::from_secs(5)).expect("query not logged");
    assert!(line.contains("qname=\"wWw.example.com.\"") && line.contains("qtype=AAAA"), "{line}");
}

#[test]
fn a_real_prometheus_scrapes_the_endpoint() {
    let b = Binary::serve(&["--zone-dir", &zone_dir()]);
    let (dns, web) = (b.addr.unwrap(), b.http.unwrap());
    ask(dns, &Query::new("www.example.com.", "A"));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: r53dns\n    static_configs:\n      - targets: ['{web}']\n"),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus must be installed (Debian package prometheus)");
    let api: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut found = String::new();
    for _ in 0..150 {
        std::thread::sleep(Duration::from_millis(200));
        if TcpStream::connect(api).is_err() {
            continue;
        }
        let (code, body) = http(api, "GET", "/api/v1/query?query=r53dns_queries_total%7Bqtype%3D%22A%22%7D");
        if code == 200 && body.contains("\"transport\":\"udp\"") {
            found = body;
            break;
        }
    }
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(found.contains("\"rcode\":\"NOERROR\""), "Prometheus never stored r53dns_queries_total: {found}");
}
