//! dnstap: frames captured over UDP, TCP, DoT, DoH and DoQ, received by `fstrm_capture`
//! (fstrm-bin) and decoded by BIND's `dnstap-read` and by the dnstap project's own `dnstap`
//! tool (golang-github-dnstap-golang-dnstap-cli); a receiver that is absent or stalls
//! costs dropped (and counted) frames, never answers. Also the query metrics operators
//! query: size histograms, the DO bit, per-zone counters.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::server::{Binary, data_dir};
use crate::support::tls::{addr_of, certificate};

/// `fstrm_capture` reading dnstap on `args` (`-u PATH` or `-a ADDR -p PORT`) into `file`.
struct Capture(Child);

impl Capture {
    fn start(args: &[&str], file: &Path) -> Self {
        let child = Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap"])
            .args(args)
            .arg("-w")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fstrm_capture must be installed (apt-get install fstrm-bin)");
        Capture(child)
    }

    /// Stops it (SIGTERM: it closes the file) and waits.
    fn finish(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("fstrm_capture did not stop");
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One frame as `dnstap-read -y` prints it.
#[derive(Debug)]
struct Frame {
    identity: String,
    kind: String,
    protocol: String,
    family: String,
    client: String,
    server_port: u16,
    question: String,
    /// The answer section (responses).
    answers: Vec<String>,
}

/// Decodes a capture file with BIND's `dnstap-read`.
fn read_frames(file: &Path) -> Vec<Frame> {
    let out = Command::new("dnstap-read")
        .arg("-y")
        .arg(file)
        .output()
        .expect("dnstap-read must be installed (apt-get install bind9-dnsutils)");
    assert!(out.status.success(), "dnstap-read: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("\n---")
        .filter(|doc| doc.contains("type: MESSAGE"))
        .map(|doc| {
            let field = |key: &str| {
                doc.lines()
                    .find_map(|l| l.trim_start().strip_prefix(key))
                    .map(|v| v.trim().trim_matches('"').to_owned())
                    .unwrap_or_default()
            };
            let section = |name: &str| -> Vec<String> {
                let mut lines = doc.lines().skip_while(|l| !l.trim_start().starts_with(name)).skip(1);
                let mut out = Vec::new();
                for l in lines.by_ref() {
                    match l.trim_start().strip_prefix("- ") {
                        Some(item) => {
                            out.push(item.trim_matches('\'').split_whitespace().collect::<Vec<_>>().join(" "))
                        }
                        None => break,
                    }
                }
                out
            };
            Frame {
                identity: field("identity:"),
                kind: field("type: AUTH_").chars().take(1).collect(),
                protocol: field("socket_protocol:"),
                family: field("socket_family:"),
                client: field("query_address:"),
                server_port: field("response_port:").parse().unwrap_or(0),
                question: section("QUESTION_SECTION:").into_iter().next().unwrap_or_default(),
                answers: section("ANSWER_SECTION:"),
            }
        })
        .collect()
}

/// A question asked: (socket_protocol as `dnstap` names it, server, client tool, options,
/// name, type).
type Ask<'a> = (&'a str, SocketAddr, &'a str, Vec<String>, &'a str, &'a str);

/// (socket_protocol, response_port) of every frame, as the dnstap project's `dnstap` tool
/// decodes them. BIND 9.18's `dnstap-read` tells TCP from the rest only (it prints UDP for
/// DoT, DoH and DoQ); this one names DOT and DOH, and DoQ by its number (7), which its
/// `dnstap.proto` predates.
fn protocols(file: &Path) -> Vec<(String, u16)> {
    let out = Command::new("dnstap")
        .args(["-y", "-r"])
        .arg(file)
        .output()
        .expect("dnstap must be installed (apt-get install golang-github-dnstap-golang-dnstap-cli)");
    assert!(out.status.success(), "dnstap: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("\n---")
        .filter(|doc| doc.contains("type: MESSAGE"))
        .map(|doc| {
            let field = |key: &str| {
                doc.lines()
                    .find_map(|l| l.trim_start().strip_prefix(key))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            (field("socket_protocol:"), field("response_port:").parse().unwrap_or(0))
        })
        .collect()
}

#[test]
fn queries_and_responses_over_every_transport_are_read_back_by_dnstap_read() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let (socket, file) = (dir.path().join("tap.sock"), dir.path().join("out.tap"));
    let capture = Capture::start(&["-u", &socket.display().to_string()], &file);
    wait_for("fstrm_capture's socket", || socket.exists());
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let target = format!("unix:{}", socket.display());
    let mut b = Binary::serve(
        &[
            &["--zone", &zone, "--identity", "ns1.tap.test", "--dnstap", &target][..],
            &crate::support::tls::dot(&cert, &key)[..],
            &["--https-listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"][..],
        ]
        .concat(),
    );
    assert!(connected(&mut b, Duration::from_secs(10)), "the dnstap receiver was never reached");
    let udp = b.addr.unwrap();
    let (dot, doh, doq) = (
        addr_of(&b, "serving DNS over TLS"),
        addr_of(&b, "serving DNS over HTTPS"),
        addr_of(&b, "serving DNS over QUIC"),
    );
    let tls = [format!("+tls-ca={cert}"), "+tls-hostname=dns.test".to_owned()];
    // (socket_protocol as `dnstap` names it, server port, client, options, name, type)
    let asks: [Ask; 5] = [
        ("UDP", udp, "dig", vec![], "www.example.com.", "A"),
        ("TCP", udp, "dig", vec!["+tcp".into()], "example.com.", "SOA"),
        ("DOT", dot, "kdig", [vec!["+tls".into()], tls.to_vec()].concat(), "example.com.", "MX"),
        ("DOH", doh, "kdig", [vec!["+https=/dns-query".into()], tls.to_vec()].concat(), "example.com.", "NS"),
        ("7", doq, "kdig", [tls.to_vec(), vec!["+quic".into()]].concat(), "ns1.example.com.", "AAAA"),
    ];
    for (proto, server, tool, opts, name, t) in &asks {
        let out = Command::new(tool)
            .arg(format!("@{}", server.ip()))
            .args(["-p", &server.port().to_string()])
            .args(opts)
            .args(["+norec", name, t])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NOERROR"), "{proto} {name} {t}: {text}");
    }
    let sent = || b.metric("r53dns_dnstap_frames_sent_total");
    wait_for("ten frames sent", || sent() >= 10);
    // SIGTERM: the writer sends STOP after the listeners stop; fstrm_capture answers FINISH.
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(20)).is_some(), "the server did not stop");
    capture.finish();

    let frames = read_frames(&file);
    assert_eq!(frames.len(), 10, "{frames:#?}");
    let mut protocols = protocols(&file);
    protocols.sort();
    let mut want: Vec<(String, u16)> = asks
        .iter()
        .flat_map(|(p, server, ..)| [((*p).to_owned(), server.port()), ((*p).to_owned(), server.port())])
        .collect();
    want.sort();
    assert_eq!(protocols, want);
    for (proto, server, _, _, name, t) in &asks {
        let question = format!("{name} IN {t}");
        // dnstap-read: TCP, or UDP for the rest.
        let proto = if *proto == "TCP" { "TCP" } else { "UDP" };
        for kind in ["Q", "R"] {
            let f = frames
                .iter()
                .find(|f| f.kind == kind && f.protocol == proto && f.question == question)
                .unwrap_or_else(|| panic!("no AUTH_{kind} {proto} {question} in {frames:#?}"));
            assert_eq!(f.identity, "ns1.tap.test");
            assert_eq!(f.family, "INET");
            assert_eq!(f.client, "127.0.0.1");
            assert_eq!(f.server_port, server.port(), "{f:?}");
            if kind == "R" {
                assert!(!f.answers.is_empty(), "{f:?}");
                assert!(
                    f.answers.iter().all(|a| a.starts_with(&format!("{name} ")) && a.contains(&format!(" IN {t} ")))
                );
            }
        }
    }
    let www = frames.iter().find(|f| f.kind == "R" && f.question == "www.example.com. IN A").unwrap();
    assert!(www.answers.iter().any(|a| a.ends_with("IN A 192.0.2.3")), "{www:?}");
}

/// Responses that are not answers are captured too: a zone transfer over TCP (each of its
/// messages), and the responses to UPDATEs over UDP and over TCP: with a secondary zone
/// configured, UPDATE and NOTIFY leave the answer path for the request handler (which
/// answers NOTIMP here: no UPDATE grant),
/// each after its query, read back by BIND's `dnstap-read`.
#[test]
fn transfers_and_update_responses_are_captured_with_their_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, file) = (dir.path().join("tap.sock"), dir.path().join("out.tap"));
    let capture = Capture::start(&["-u", &socket.display().to_string()], &file);
    wait_for("fstrm_capture's socket", || socket.exists());
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let target = format!("unix:{}", socket.display());
    let mut b = Binary::serve(&[
        "--zone",
        &zone,
        "--dnstap",
        &target,
        "--allow-transfer",
        "127.0.0.0/8",
        // A primary nobody answers on (the discard port): only the handler matters here.
        "--primary",
        "127.0.0.1:9",
        "--secondary-zone",
        "follow.example.",
    ]);
    assert!(connected(&mut b, Duration::from_secs(10)), "the dnstap receiver was never reached");
    let addr = b.addr.unwrap();
    let axfr = Command::new("dig")
        .args([&format!("@{}", addr.ip()), "-p", &addr.port().to_string(), "example.com.", "AXFR"])
        .output()
        .unwrap();
    let axfr = String::from_utf8_lossy(&axfr.stdout).into_owned();
    assert!(axfr.contains("XFR size:"), "{axfr}");
    for tcp in [false, true] {
        let mut child = Command::new("nsupdate")
            .args(if tcp { &["-v", "-t", "10"][..] } else { &["-t", "10"][..] })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsupdate must be installed (apt-get install bind9-dnsutils)");
        let script = format!(
            "server {} {}\nzone example.com\nupdate add tap.example.com 60 A 192.0.2.77\nsend\nquit\n",
            addr.ip(),
            addr.port()
        );
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("NOTIMP"), "UPDATE over {}: {text}", if tcp { "TCP" } else { "UDP" });
    }
    let sent = || b.metric("r53dns_dnstap_frames_sent_total");
    wait_for("six frames sent", || sent() >= 6);
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(20)).is_some(), "the server did not stop");
    capture.finish();
    let frames = read_frames(&file);
    let count = |kind: &str, protocol: &str| frames.iter().filter(|f| f.kind == kind && f.protocol == protocol).count();
    // TCP: the AXFR and an UPDATE; UDP: an UPDATE. One response each (the zone is small).
    assert_eq!(
        [count("Q", "TCP"), count("R", "TCP"), count("Q", "UDP"), count("R", "UDP")],
        [2, 2, 1, 1],
        "{frames:#?}"
    );
    let transfer = frames.iter().find(|f| f.kind == "R" && f.question == "example.com. IN AXFR");
    assert!(transfer.is_some_and(|f| f.answers.len() > 2), "{frames:#?}");
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_tcp_receiver_gets_one_query_in_n_when_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("out.tap");
    let capture = Capture::start(&["-a", "127.0.0.1", "-p", &port.to_string()], &file);
    wait_for("fstrm_capture's port", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let target = format!("tcp:127.0.0.1:{port}");
    let mut b = Binary::serve(&["--zone", &zone, "--dnstap", &target, "--dnstap-sample", "10"]);
    assert!(connected(&mut b, Duration::from_secs(10)), "the dnstap receiver was never reached");
    let q = crate::support::dns::Query::new("www.example.com.", "A").to_wire();
    for _ in 0..400 {
        assert!(crate::support::dns::udp_exchange(b.addr.unwrap(), &q).is_some());
    }
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(20)).is_some());
    capture.finish();
    let frames = read_frames(&file);
    let (queries, responses) =
        (frames.iter().filter(|f| f.kind == "Q").count(), frames.iter().filter(|f| f.kind == "R").count());
    // One in ten of 400, at random: far from 0 and from 400.
    assert!((10..=100).contains(&queries), "{queries} queries captured");
    assert_eq!(queries, responses, "a sampled query's response goes with it");
}

/// Whether the server logged that it reached the dnstap receiver, before it was listening (the
/// writer starts when the listeners are bound and may win that race) or within `within` after.
fn connected(b: &mut Binary, within: Duration) -> bool {
    b.startup.iter().any(|l| l.contains("dnstap receiver connected"))
        || b.wait_for("dnstap receiver connected", within).is_some()
}

/// dnsperf against `addr` for `secs` seconds at most `qps`; the share of queries answered.
fn dnsperf(addr: SocketAddr, secs: u32, qps: u32, dir: &Path) -> f64 {
    let input = dir.join("queries.txt");
    std::fs::write(&input, "www.example.com A\nexample.com MX\nnothere.example.com A\nexample.com SOA\n").unwrap();
    let out = Command::new("dnsperf")
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string(), "-d"])
        .arg(&input)
        .args(["-l", &secs.to_string(), "-Q", &qps.to_string(), "-c", "4"])
        .output()
        .expect("dnsperf must be installed (apt-get install dnsperf)");
    let text = String::from_utf8_lossy(&out.stdout);
    let completed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries completed:"))
        .and_then(|v| v.split('(').nth(1)?.split('%').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("dnsperf: {text}"));
    completed / 100.0
}

#[test]
fn an_absent_receiver_costs_counted_frames_not_answers() {
    let dir = tempfile::tempdir().unwrap();
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let target = format!("unix:{}", dir.path().join("nobody.sock").display());
    let b = Binary::serve(&["--zone", &zone, "--dnstap", &target]);
    let answered = dnsperf(b.addr.unwrap(), 2, 5000, dir.path());
    assert!(answered > 0.99, "{answered}");
    let down = b.metric("r53dns_dnstap_frames_dropped_total{reason=\"receiver_down\"}");
    assert!(down >= 2 * 5000, "{down} frames counted dropped");
    assert_eq!(b.metric("r53dns_dnstap_frames_sent_total"), 0);
    assert_eq!(b.metric("r53dns_dnstap_connected"), 0);
}

#[test]
fn a_stalled_receiver_fills_the_buffer_drops_are_counted_and_answers_flow() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stalled.sock");
    // A receiver that completes the handshake, then reads nothing more. The server may give
    // up on a handshake that a loaded machine makes slow and connect again, so each
    // connection is taken in turn until one completes it.
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let receiver = std::thread::spawn(move || {
        fn control(s: &mut std::os::unix::net::UnixStream) -> std::io::Result<u32> {
            let mut head = [0u8; 8];
            s.read_exact(&mut head)?;
            assert_eq!(&head[..4], &[0, 0, 0, 0], "a control frame");
            let mut body = vec![0; u32::from_be_bytes(head[4..8].try_into().unwrap()) as usize];
            s.read_exact(&mut body)?;
            Ok(u32::from_be_bytes(body[..4].try_into().unwrap()))
        }
        let handshake = |s: &mut std::os::unix::net::UnixStream| -> std::io::Result<()> {
            assert_eq!(control(s)?, 4, "READY");
            let ct = b"protobuf:dnstap.Dnstap";
            let mut accept = vec![0, 0, 0, 0];
            accept.extend_from_slice(&(12 + ct.len() as u32).to_be_bytes());
            accept.extend_from_slice(&1u32.to_be_bytes());
            accept.extend_from_slice(&1u32.to_be_bytes());
            accept.extend_from_slice(&(ct.len() as u32).to_be_bytes());
            accept.extend_from_slice(ct);
            s.write_all(&accept)?;
            assert_eq!(control(s)?, 2, "START");
            Ok(())
        };
        for _ in 0..10 {
            let (mut s, _) = listener.accept().unwrap();
            if handshake(&mut s).is_ok() {
                return s; // held, unread, until the test ends
            }
        }
        panic!("no handshake completed in 10 connections");
    });
    let config = dir.path().join("r53dns.toml");
    std::fs::write(&config, format!("[dnstap]\ntarget = \"unix:{}\"\nbuffer = 64\n", socket.display())).unwrap();
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let mut b = Binary::serve(&["--zone", &zone, "--config", &config.display().to_string()]);
    assert!(connected(&mut b, Duration::from_secs(30)), "the dnstap receiver was never reached");
    let held = receiver.join().unwrap();
    let answered = dnsperf(b.addr.unwrap(), 3, 10_000, dir.path());
    assert!(answered > 0.99, "{answered}");
    let full = b.metric("r53dns_dnstap_frames_dropped_total{reason=\"buffer_full\"}");
    let sent = b.metric("r53dns_dnstap_frames_sent_total");
    assert!(full > 1000, "{full} frames dropped for a full buffer, {sent} sent");
    assert!(b.wait_for("dnstap frames dropped", Duration::from_secs(5)).is_some(), "drops are logged");
    drop(held);
}

#[test]
fn size_histograms_the_do_bit_and_per_zone_queries_move() {
    let dir = tempfile::tempdir().unwrap();
    let zone = data_dir().join("zones/example.com.zone").display().to_string();
    let other = dir.path().join("example.org.zone");
    std::fs::write(&other, "$ORIGIN example.org.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.9\n").unwrap();
    let b = Binary::serve(&["--zone", &zone, "--zone", &other.display().to_string(), "--zone-query-metrics", "10"]);
    let addr = b.addr.unwrap();
    let dig = |args: &[&str]| {
        let out = Command::new("dig")
            .arg(format!("@{}", addr.ip()))
            .args(["-p", &addr.port().to_string()])
            .args(args)
            .output();
        assert!(out.unwrap().status.success());
    };
    dig(&["+dnssec", "www.example.com.", "A"]);
    dig(&["+dnssec", "+tcp", "example.com.", "SOA"]);
    dig(&["ns.example.org.", "A"]);
    dig(&["ns.example.org.", "AAAA"]);
    dig(&["www.example.net.", "A"]); // no zone: REFUSED, counted in no zone
    assert_eq!(b.metric("r53dns_queries_dnssec_ok_total{transport=\"udp\"}"), 1);
    assert_eq!(b.metric("r53dns_queries_dnssec_ok_total{transport=\"tcp\"}"), 1);
    assert_eq!(b.metric("r53dns_request_size_bytes_count{transport=\"udp\"}"), 4);
    assert_eq!(b.metric("r53dns_response_size_bytes_count{transport=\"tcp\"}"), 1);
    // dig's queries are under 128 octets; the buckets are cumulative up to +Inf.
    assert_eq!(b.metric("r53dns_request_size_bytes_bucket{transport=\"udp\",le=\"128\"}"), 4);
    assert_eq!(b.metric("r53dns_request_size_bytes_bucket{transport=\"tcp\",le=\"+Inf\"}"), 1);
    assert!(b.metric("r53dns_response_size_bytes_sum{transport=\"udp\"}") > 4 * 40);
    assert_eq!(b.metric("r53dns_zone_queries_total{view=\"internal\",zone=\"example.com.\"}"), 2);
    assert_eq!(b.metric("r53dns_zone_queries_total{view=\"internal\",zone=\"example.org.\"}"), 2);
    assert_eq!(b.metric("r53dns_zone_queries_total{view=\"internal\",zone=\"example.net.\"}"), 0);

    // Off by default: no per-zone series at all.
    let plain = Binary::serve(&["--zone", &zone]);
    let a = plain.addr.unwrap();
    let q = crate::support::dns::Query::new("www.example.com.", "A").to_wire();
    assert!(crate::support::dns::udp_exchange(a, &q).is_some());
    assert_eq!(plain.metric("r53dns_zone_queries_total"), 0);
    assert_eq!(plain.metric("r53dns_request_size_bytes_count{transport=\"udp\"}"), 1);
}
