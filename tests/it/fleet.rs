//! A fleet: one syncer reads Route53 (moto), replicas follow it by snapshot replication
//! (`--follow http://…`) with no AWS access at all. Every replica must serve what the syncer
//! serves — both views, routed names evaluated per query, the syncer's serials — stay ready
//! through an AWS outage and a dead syncer, refuse damaged or hostile snapshots while serving
//! what it had, and drain on SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::route53::{ask_from, eventually};
use crate::support::dns::{Query, ask, parse};
use crate::support::moto::{Fault, FaultProxy, Moto, Seeder, aws_env, create_bucket, rrset, weighted};
use crate::support::server::Binary;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn answers(addr: SocketAddr, name: &str, t: &str) -> Vec<String> {
    ask(addr, &Query::new(name, t)).section("answer")
}

fn soa_serial(addr: SocketAddr, zone: &str) -> Option<u32> {
    answers(addr, zone, "SOA").first()?.split_whitespace().nth(6)?.parse().ok()
}

/// The syncer: Route53 through `endpoint`, snapshots offered to loopback clients.
fn syncer(endpoint: &str, extra: &[&str]) -> Binary {
    let mut args = vec![
        "--route53",
        "--refresh",
        "1s",
        "--internal-network",
        "127.0.0.2/32",
        "--replication",
        "--replication-allow",
        "127.0.0.0/8",
        "--drain",
        "0s",
    ];
    args.extend_from_slice(extra);
    Binary::serve_with(&args, &aws_env(endpoint))
}

/// A replica of the syncer at `http`, with no AWS configuration whatsoever.
fn replica(source: &str, extra: &[&str]) -> Binary {
    let mut args = vec!["--follow", source, "--drain", "0s"];
    args.extend_from_slice(extra);
    Binary::serve(&args)
}

/// A replica following `s3://…` in the emulator at `endpoint`, polling every 200 ms; its
/// AWS access is S3 only (the emulator serves nothing else to it: no Route53 endpoint).
fn s3_replica(endpoint: &str, url: &str, dir: &std::path::Path) -> Binary {
    let config = dir.join(format!("s3-replica-{}.toml", rand::random::<u32>()));
    std::fs::write(&config, format!("[follow]\nsource = \"{url}\"\npoll-interval = \"200ms\"\n")).unwrap();
    let env: Vec<(&str, String)> = aws_env(endpoint)
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ENDPOINT_URL_ROUTE_53" && *k != "AWS_ENDPOINT_URL")
        .collect();
    let mut env = env;
    env.push(("AWS_ENDPOINT_URL_S3", endpoint.to_owned()));
    Binary::serve_with(&["--config", &config.display().to_string(), "--drain", "0s"], &env)
}

fn source_of(b: &Binary) -> String {
    format!("http://{}", b.http.unwrap())
}

/// Sum of every sample of a metric family on a server.
fn metric_sum(b: &Binary, family: &str) -> f64 {
    let mut s = TcpStream::connect(b.http.unwrap()).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

async fn seed(s: &Seeder) {
    let public = s.zone("corp.example.", false).await;
    let private = s.zone("corp.example.", true).await;
    s.upsert(
        &public,
        vec![
            rrset("www.corp.example.", "A", 60, &["192.0.2.10"]),
            weighted("w.corp.example.", "heavy", 3, "192.0.2.1"),
            weighted("w.corp.example.", "light", 1, "192.0.2.2"),
        ],
    )
    .await;
    s.upsert(&private, vec![rrset("www.corp.example.", "A", 60, &["10.0.0.10"])]).await;
}

#[test]
fn replicas_serve_every_route53_semantic_and_find_new_zones_with_no_route53_calls() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    rt.block_on(seed(&s));
    rt.block_on(create_bucket(&moto.endpoint(), "snapshots"));
    // The syncer reaches Route53 through the counting proxy and S3 directly.
    let mut env = aws_env(&proxy.endpoint());
    env.push(("AWS_ENDPOINT_URL_S3", moto.endpoint()));
    let mut args = vec![
        "--route53",
        "--refresh",
        "1s",
        "--internal-network",
        "127.0.0.2/32",
        "--replication",
        "--replication-allow",
        "127.0.0.0/8",
        "--replication-s3",
        "s3://snapshots/fleet",
    ];
    args.extend(["--drain", "0s"]);
    let sync = Binary::serve_with(&args, &env);
    let (sync_dns, source) = (sync.addr.unwrap(), source_of(&sync));
    eventually(Duration::from_secs(20), || answers(sync_dns, "www.corp.example.", "A").len() == 1)
        .expect("the syncer never served");
    let dir = tempfile::tempdir().unwrap();
    // Three replicas by HTTP, three by S3.
    let mut replicas: Vec<Binary> = (0..3).map(|_| replica(&source, &[])).collect();
    replicas.extend((0..3).map(|_| s3_replica(&moto.endpoint(), "s3://snapshots/fleet", dir.path())));
    for r in &replicas {
        let dns = r.addr.unwrap();
        eventually(Duration::from_secs(10), || answers(dns, "w.corp.example.", "A").len() == 1)
            .expect("a replica never served");
        assert_eq!(r.http_status("/readyz"), 200);
        // The syncer's serials.
        assert_eq!(soa_serial(dns, "corp.example."), soa_serial(sync_dns, "corp.example."));
        // Views: internal clients get the private zone, others the public one.
        let internal = ask_from("127.0.0.2", dns, &Query::new("www.corp.example.", "A")).section("answer");
        let external = ask_from("127.0.0.1", dns, &Query::new("www.corp.example.", "A")).section("answer");
        assert_eq!(internal, vec!["www.corp.example. 60 IN A 10.0.0.10"]);
        assert_eq!(external, vec!["www.corp.example. 60 IN A 192.0.2.10"]);
        // Routing evaluated per query at the replica: weighted 3:1 within ±5 % over 4000.
        let heavy = (0..4000).filter(|_| answers(dns, "w.corp.example.", "A")[0].ends_with("192.0.2.1")).count();
        eprintln!("replica {dns}: weighted 3:1 over 4000 queries: {heavy} / {}", 4000 - heavy);
        assert!((2800..=3200).contains(&heavy), "heavy share {heavy} of 4000");
    }
    // A hosted zone created in Route53 reaches every replica within refresh (1 s) + 2 s,
    // with no configuration change anywhere.
    let created = Instant::now();
    rt.block_on(async {
        let id = s.zone("new.example.", false).await;
        s.upsert(&id, vec![rrset("www.new.example.", "A", 60, &["192.0.2.77"])]).await;
    });
    for r in &replicas {
        let dns = r.addr.unwrap();
        eventually(Duration::from_secs(3).saturating_sub(created.elapsed()).max(Duration::from_millis(100)), || {
            answers(dns, "www.new.example.", "A") == vec!["www.new.example. 60 IN A 192.0.2.77"]
        })
        .unwrap_or_else(|| panic!("replica {dns} did not serve the new zone within 3 s"));
    }
    eprintln!("new zone answered by every replica {:?} after its creation", created.elapsed());
    // Only the syncer talks to Route53: every request the API saw is one of the syncer's.
    let syncer_calls = metric_sum(&sync, "r53dns_route53_api_calls_total");
    assert!(syncer_calls > 0.0);
    // The proxy may have seen a call the syncer counts only once it completes.
    let seen = proxy.requests() as f64;
    assert!((seen - syncer_calls).abs() <= 2.0, "proxy saw {seen} requests, the syncer made {syncer_calls}");
    for r in &replicas {
        assert_eq!(metric_sum(r, "r53dns_route53_api_calls_total"), 0.0);
        assert!(metric_sum(r, "r53dns_replication_fetches_total") >= 1.0);
        assert_eq!(metric_sum(r, "r53dns_replication_lag_seconds"), 0.0);
    }
    assert!(metric_sum(&sync, "r53dns_replication_sent_bytes_total") > 0.0);
}

#[test]
fn an_aws_outage_or_a_dead_syncer_keeps_every_replica_ready_and_the_age_tells_the_truth() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    rt.block_on(seed(&s));
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().display().to_string();
    let mut sync = syncer(&proxy.endpoint(), &[]);
    let sync_dns = sync.addr.unwrap();
    eventually(Duration::from_secs(20), || answers(sync_dns, "www.corp.example.", "A").len() == 1)
        .expect("the syncer never served");
    let mut r = replica(&source_of(&sync), &["--state-dir", &state_arg]);
    let dns = r.addr.unwrap();
    eventually(Duration::from_secs(10), || answers(dns, "www.corp.example.", "A").len() == 1).expect("never served");
    // AWS unreachable: sweeps fail, everyone stays ready and answering, the age grows.
    proxy.set(Some(Fault::Reset), false, 0);
    std::thread::sleep(Duration::from_secs(4));
    for b in [&sync, &r] {
        assert_eq!(b.http_status("/readyz"), 200, "ready while AWS is down");
        assert_eq!(answers(b.addr.unwrap(), "www.corp.example.", "A").len(), 1);
        let age = metric_sum(b, "r53dns_snapshot_age_seconds");
        assert!(age >= 3.0, "snapshot age {age} s must grow while AWS is down");
    }
    eventually(Duration::from_secs(60), || metric_sum(&sync, "r53dns_sync_sweeps_total{outcome=\"failed\"}") >= 1.0)
        .expect("the failing sweep was never counted");
    assert_eq!(sync.http_status("/readyz"), 200, "ready after a failed sweep");
    // The syncer dies: the replica keeps answering and stays ready; its lag grows.
    sync.signal("KILL");
    sync.wait_exit(Duration::from_secs(5)).expect("syncer did not die");
    eventually(Duration::from_secs(20), || metric_sum(&r, "r53dns_replication_lag_seconds") >= 2.0)
        .expect("the replication lag never grew");
    assert_eq!(r.http_status("/readyz"), 200);
    assert_eq!(answers(dns, "www.corp.example.", "A").len(), 1);
    let age_before = metric_sum(&r, "r53dns_snapshot_age_seconds");
    // Restarted from its saved snapshot with no source at all: ready and answering at once,
    // with its views, and the age counts from the last confirmation, not from the restart.
    r.signal("TERM");
    r.wait_exit(Duration::from_secs(10)).expect("replica did not stop");
    let r = replica(&crate::support::dead_endpoint(), &["--state-dir", &state_arg]);
    let dns = r.addr.unwrap();
    assert_eq!(r.http_status("/readyz"), 200, "a replica restored from its saved snapshot is ready");
    assert_eq!(
        ask_from("127.0.0.2", dns, &Query::new("www.corp.example.", "A")).section("answer"),
        vec!["www.corp.example. 60 IN A 10.0.0.10"],
        "the source's views survive the restart"
    );
    assert_eq!(answers(dns, "www.corp.example.", "A"), vec!["www.corp.example. 60 IN A 192.0.2.10"]);
    let age_after = metric_sum(&r, "r53dns_snapshot_age_seconds");
    assert!(age_after >= age_before, "age after restore {age_after} < before {age_before}");
}

/// What the tampering relay does to manifests.
#[derive(Debug, Clone, PartialEq)]
enum Tamper {
    Pass,
    /// Cut the body in half.
    Truncate,
    /// Flip one byte of the body.
    Flip,
    /// Claim a later format version.
    FutureVersion,
    /// A correct checksum over nonsense.
    ValidChecksumGarbage,
    /// A body over the replica's size limit.
    Huge,
    /// An old manifest replayed (its serials go back).
    Replay(Vec<u8>),
}

/// An HTTP relay between a replica and its source that can damage manifests on the way.
struct Relay {
    addr: SocketAddr,
    tamper: Arc<Mutex<Tamper>>,
    last: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tamper = Arc::new(Mutex::new(Tamper::Pass));
        let last = Arc::new(Mutex::new(None));
        let (t, l) = (tamper.clone(), last.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (t, l) = (t.clone(), l.clone());
                std::thread::spawn(move || relay_one(conn, upstream, &t, &l));
            }
        });
        Self { addr, tamper, last }
    }

    fn set(&self, t: Tamper) {
        *self.tamper.lock().unwrap() = t;
    }
}

fn relay_one(mut c: TcpStream, upstream: SocketAddr, tamper: &Mutex<Tamper>, last: &Mutex<Option<Vec<u8>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mode = tamper.lock().unwrap().clone();
    let manifest = text.starts_with("GET /snapshot?") || text.starts_with("GET /snapshot ");
    let mut lines: Vec<String> = text
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(str::to_owned)
        .collect();
    if manifest && mode != Tamper::Pass {
        // Ask for the whole manifest at once, to have something to damage.
        lines.retain(|l| !l.to_ascii_lowercase().starts_with("if-none-match:"));
    }
    let Ok(mut u) = TcpStream::connect(upstream) else { return };
    let request = format!("{}\r\nConnection: close\r\n\r\n", lines.join("\r\n"));
    if u.write_all(request.as_bytes()).is_err() {
        return;
    }
    let mut resp = Vec::new();
    let _ = u.read_to_end(&mut resp);
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else { return };
    let (rhead, body) = (String::from_utf8_lossy(&resp[..split]).into_owned(), resp[split + 4..].to_vec());
    let ok = rhead.starts_with("HTTP/1.1 200");
    let body = if manifest && ok {
        if mode == Tamper::Pass {
            *last.lock().unwrap() = Some(body.clone());
        }
        match mode {
            Tamper::Pass => body,
            Tamper::Truncate => body[..body.len() / 2].to_vec(),
            Tamper::Flip => {
                let mut b = body;
                let n = b.len();
                b[n - 5] ^= 0x20;
                b
            }
            Tamper::FutureVersion => {
                let text = String::from_utf8_lossy(&body).replacen("r53dns-manifest v2 ", "r53dns-manifest v3 ", 1);
                text.into_bytes()
            }
            Tamper::ValidChecksumGarbage => {
                use sha2::Digest as _;
                let junk = br#"{"format":2,"zones":[{"id":"Z1","name":"evil.","private":false,"serial":1,"object":"00","size":99}],"health":"no"}"#;
                let sum: String = sha2::Sha256::digest(junk).iter().map(|b| format!("{b:02x}")).collect();
                let mut out = format!("r53dns-manifest v2 sha256={sum}\n").into_bytes();
                out.extend_from_slice(junk);
                out
            }
            Tamper::Huge => vec![b'x'; 300_000],
            Tamper::Replay(old) => old,
        }
    } else {
        body
    };
    let rhead: Vec<&str> = rhead
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("content-length:") && !l.starts_with("connection:") && !l.starts_with("transfer-encoding:")
        })
        .collect();
    let _ = write!(c, "{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", rhead.join("\r\n"), body.len());
    let _ = c.write_all(&body);
}

#[test]
fn damaged_hostile_and_replayed_snapshots_are_refused_and_the_replica_keeps_serving() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(async {
        seed(&s).await;
        let zones = s.client.list_hosted_zones().send().await.unwrap();
        let public = zones.hosted_zones().iter().find(|z| !z.config().is_some_and(|c| c.private_zone())).unwrap();
        r53dns_route53::model::bare_zone_id(public.id()).to_owned()
    });
    let sync = syncer(&moto.endpoint(), &[]);
    let sync_dns = sync.addr.unwrap();
    eventually(Duration::from_secs(20), || answers(sync_dns, "www.corp.example.", "A").len() == 1)
        .expect("the syncer never served");
    let relay = Relay::start(sync.http.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("replica.toml");
    std::fs::write(
        &config,
        format!("[follow]\nsource = \"http://{}\"\nwait = \"1s\"\nmax-object-size = 200000\n", relay.addr),
    )
    .unwrap();
    let r = replica(&format!("http://{}", relay.addr), &["--config", &config.display().to_string()]);
    let dns = r.addr.unwrap();
    eventually(Duration::from_secs(10), || answers(dns, "www.corp.example.", "A").len() == 1).expect("never served");
    let old_manifest = relay.last.lock().unwrap().clone().expect("a manifest went through");
    // A change moves every serial forward; the old manifest is now a replay.
    rt.block_on(s.upsert(&zone, vec![rrset("www.corp.example.", "A", 60, &["192.0.2.11"])]));
    let want = vec!["www.corp.example. 60 IN A 192.0.2.11".to_owned()];
    eventually(Duration::from_secs(10), || answers(dns, "www.corp.example.", "A") == want)
        .expect("change not followed");
    let serial = soa_serial(dns, "corp.example.");
    for (tamper, reason) in [
        (Tamper::Truncate, "damaged"),
        (Tamper::Flip, "damaged"),
        (Tamper::ValidChecksumGarbage, "damaged"),
        (Tamper::FutureVersion, "version"),
        (Tamper::Huge, "too_large"),
        (Tamper::Replay(old_manifest.clone()), "serial_back"),
    ] {
        let label = format!("r53dns_replication_refused_total{{reason=\"{reason}\"}}");
        let before = metric_sum(&r, &label);
        relay.set(tamper.clone());
        eventually(Duration::from_secs(10), || metric_sum(&r, &label) > before)
            .unwrap_or_else(|| panic!("{reason} snapshot not refused"));
        // Still serving what it had, and still ready.
        assert_eq!(answers(dns, "www.corp.example.", "A"), want, "{reason}");
        assert_eq!(soa_serial(dns, "corp.example."), serial, "{reason}");
        assert_eq!(r.http_status("/readyz"), 200, "{reason}");
        // Back to normal before the next case (a good round also resets the backoff).
        relay.set(Tamper::Pass);
        let good = metric_sum(&r, "r53dns_replication_fetches_total{outcome=\"unchanged\"}")
            + metric_sum(&r, "r53dns_replication_fetches_total{outcome=\"applied\"}");
        eventually(Duration::from_secs(40), || {
            metric_sum(&r, "r53dns_replication_fetches_total{outcome=\"unchanged\"}")
                + metric_sum(&r, "r53dns_replication_fetches_total{outcome=\"applied\"}")
                > good
        })
        .expect("never followed again");
    }
    // Snapshot access is limited: a client outside the allowed networks is refused; with a
    // token, a request without it is refused and a replica holding it follows.
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let token = token.display().to_string();
    let fenced = Binary::serve_with(
        &["--route53", "--replication", "--replication-allow", "192.0.2.0/24", "--drain", "0s"],
        &aws_env(&moto.endpoint()),
    );
    assert_eq!(fenced.http_status("/snapshot"), 403);
    let keyed = Binary::serve_with(
        &["--route53", "--replication", "--replication-token-file", &token, "--drain", "0s"],
        &aws_env(&moto.endpoint()),
    );
    assert_eq!(keyed.http_status("/snapshot"), 403);
    let holder = replica(&source_of(&keyed), &["--follow-token-file", &token]);
    let dns = holder.addr.unwrap();
    // (No internal networks there: everyone sees the private zone.)
    eventually(Duration::from_secs(20), || {
        answers(dns, "www.corp.example.", "A") == vec!["www.corp.example. 60 IN A 10.0.0.10"]
    })
    .expect("a replica with the token never followed");
}

#[test]
fn sigterm_drains_before_closing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("drain.example.zone"),
        "$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\n",
    )
    .unwrap();
    let mut b = Binary::serve(&["--zone-dir", &dir.path().display().to_string(), "--drain", "2s"]);
    let dns = b.addr.unwrap();
    assert_eq!(b.http_status("/readyz"), 200);
    let started = Instant::now();
    b.signal("TERM");
    // Lame duck: not ready at once, and still answering.
    eventually(Duration::from_millis(500), || b.http_status("/readyz") == 503).expect("/readyz did not fail at once");
    let mut answered = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        answered += usize::from(answers(dns, "www.drain.example.", "A").len() == 1);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered >= 10, "only {answered} answers during the drain");
    let status = b.wait_exit(Duration::from_secs(10)).expect("did not exit after the drain");
    assert!(status.success(), "{status:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(6), "exit after {took:?}");
}

/// The SOA serial and the `www` answer of `zone`, seen in one snapshot: the SOA asked before
/// and after the same, else `None` (a swap happened in between).
/// A server being killed may not answer: that is no observation.
fn observe(addr: SocketAddr, zone: &str) -> Option<(u32, Vec<String>)> {
    let ask = |name: &str, t: &str| {
        let raw = crate::support::dns::udp_exchange(addr, &Query::new(name, t).to_wire())?;
        Some(parse(&raw).ok()?.section("answer"))
    };
    let serial = |a: Vec<String>| a.first()?.split_whitespace().nth(6)?.parse::<u32>().ok();
    let before = serial(ask(zone, "SOA")?)?;
    let www = ask(&format!("www.{zone}"), "A")?;
    let after = serial(ask(zone, "SOA")?)?;
    (before == after).then_some((before, www))
}

#[test]
fn two_syncers_killed_at_random_never_move_a_serial_back_or_give_one_serial_two_contents() {
    use std::collections::HashMap;
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    let zone = rt.block_on(async {
        create_bucket(&moto.endpoint(), "snapshots").await;
        let id = s.zone("ha.example.", false).await;
        s.upsert(&id, vec![rrset("www.ha.example.", "A", 60, &["192.0.2.1"])]).await;
        id
    });
    // Different sweep intervals: the two see a change in different seconds, so left to
    // themselves they would give it different serials (as skewed clocks would).
    let start_syncer = |which: usize| {
        let mut env = aws_env(&moto.endpoint());
        env.push(("AWS_ENDPOINT_URL_S3", moto.endpoint()));
        let refresh = ["300ms", "1700ms"][which];
        Binary::serve_with(
            &["--route53", "--refresh", refresh, "--replication-s3", "s3://snapshots/ha", "--drain", "0s"],
            &env,
        )
    };
    let mut syncers = [start_syncer(0), start_syncer(1)];
    let dir = tempfile::tempdir().unwrap();
    let replica = s3_replica(&moto.endpoint(), "s3://snapshots/ha", dir.path());
    let rdns = replica.addr.unwrap();
    eventually(Duration::from_secs(20), || observe(rdns, "ha.example.").is_some_and(|(_, w)| !w.is_empty()))
        .expect("the replica never served");
    // Watch the replica (serials must never go back) and every server (one serial, one
    // content) while the syncers are killed and restarted and Route53 changes.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let targets = Arc::new(Mutex::new(vec![rdns, syncers[0].addr.unwrap(), syncers[1].addr.unwrap()]));
    let watcher = {
        let (stop, targets) = (stop.clone(), targets.clone());
        std::thread::spawn(move || {
            let mut last = None::<u32>;
            let mut contents: HashMap<u32, Vec<String>> = HashMap::new();
            let mut errors = Vec::new();
            let mut seen = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let addrs = targets.lock().unwrap().clone();
                for (i, addr) in addrs.iter().enumerate() {
                    let Some((serial, www)) = observe(*addr, "ha.example.") else { continue };
                    seen += 1;
                    if i == 0 {
                        if let Some(prev) = last
                            && (serial.wrapping_sub(prev) as i32) < 0
                        {
                            errors.push(format!("replica serial went back: {prev} → {serial}"));
                        }
                        last = Some(serial);
                    }
                    match contents.get(&serial) {
                        Some(c) if *c != www => errors.push(format!("serial {serial}: {c:?} and {www:?}")),
                        Some(_) => {}
                        None => {
                            contents.insert(serial, www);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (errors, contents.len(), seen)
        })
    };
    for round in 0..20u32 {
        // A change in Route53 at a random moment, then a kill at another.
        std::thread::sleep(Duration::from_millis(u64::from(rand::random::<u32>() % 700)));
        let addr = format!("192.0.2.{}", 10 + round);
        rt.block_on(s.upsert(&zone, vec![rrset("www.ha.example.", "A", 60, &[addr.as_str()])]));
        std::thread::sleep(Duration::from_millis(u64::from(rand::random::<u32>() % 700)));
        let victim = (rand::random::<u32>() % 2) as usize;
        syncers[victim].signal("KILL");
        syncers[victim].wait_exit(Duration::from_secs(5)).expect("did not die");
        syncers[victim] = start_syncer(victim);
        targets.lock().unwrap()[1 + victim] = syncers[victim].addr.unwrap();
    }
    // The last change reaches the replica.
    let want = vec!["www.ha.example. 60 IN A 192.0.2.29".to_owned()];
    eventually(Duration::from_secs(20), || observe(rdns, "ha.example.").is_some_and(|(_, w)| w == want))
        .expect("the last change never reached the replica");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (errors, serials, seen) = watcher.join().unwrap();
    let conflicts: f64 =
        syncers.iter().map(|b| metric_sum(b, "r53dns_replication_s3_writes_total{outcome=\"conflict\"}")).sum();
    eprintln!("{seen} observations, {serials} serials, {conflicts:.0} write conflicts in the last two syncer lives");
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(serials >= 10, "only {serials} serials seen: the changes did not go through");
    assert_eq!(metric_sum(&replica, "r53dns_replication_refused_total"), 0.0);
}

/// A UDP load balancer on loopback that honours `/readyz`, as kube-proxy behind a Service or
/// an LB health check does: each query goes to the first ready backend; answers come back
/// whatever the backend's state.
struct ReadyRelay {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    sent: Arc<Mutex<Vec<usize>>>,
}

impl ReadyRelay {
    fn start(backends: Vec<(SocketAddr, SocketAddr)>) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        front.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(vec![0; backends.len()]));
        // Readiness, polled every 100 ms (kube-proxy is slower; the drain covers that).
        let chosen = Arc::new(AtomicUsize::new(0));
        {
            let (stop, chosen, http): (_, _, Vec<SocketAddr>) =
                (stop.clone(), chosen.clone(), backends.iter().map(|b| b.1).collect());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ready = http.iter().position(|h| http_ready(*h)).unwrap_or(usize::MAX);
                    chosen.store(ready, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let clients: Arc<Mutex<std::collections::HashMap<u16, SocketAddr>>> = Arc::default();
        let mut upstream = Vec::new();
        for (dns, _) in &backends {
            let s = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            s.connect(dns).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let (s2, front, clients, stop) = (s.clone(), front.clone(), clients.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = s2.recv(&mut buf) else { continue };
                    if n < 2 {
                        continue;
                    }
                    let id = u16::from_be_bytes([buf[0], buf[1]]);
                    if let Some(c) = clients.lock().unwrap().remove(&id) {
                        let _ = front.send_to(&buf[..n], c);
                    }
                }
            });
            upstream.push(s);
        }
        {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, client)) = front.recv_from(&mut buf) else { continue };
                    let i = chosen.load(Ordering::Relaxed);
                    if n < 2 || i >= upstream.len() {
                        continue; // nobody ready: lost, and dnsperf will say so
                    }
                    clients.lock().unwrap().insert(u16::from_be_bytes([buf[0], buf[1]]), client);
                    let _ = upstream[i].send(&buf[..n]);
                    sent.lock().unwrap()[i] += 1;
                }
            });
        }
        Self { addr, stop, sent }
    }
}

impl Drop for ReadyRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn http_ready(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.write_all(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200")
}

#[test]
fn a_rollout_under_load_loses_no_query() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("roll.example.zone"),
        "$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\n* TXT \"wild\"\n",
    )
    .unwrap();
    let zones = dir.path().display().to_string();
    let mut old = Binary::serve(&["--zone-dir", &zones, "--drain", "2s"]);
    let new = Binary::serve(&["--zone-dir", &zones, "--drain", "2s"]);
    let relay = ReadyRelay::start(vec![(old.addr.unwrap(), old.http.unwrap()), (new.addr.unwrap(), new.http.unwrap())]);
    eventually(Duration::from_secs(5), || relay.sent.lock().unwrap().len() == 2).unwrap();
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, "www.roll.example A\nroll.example SOA\nx.roll.example TXT\nnone.roll.example AAAA\n")
        .unwrap();
    // Steady load through the relay: 2 000 q/s for 6 s; the old server is told to stop at 2 s.
    let perf = std::process::Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &relay.addr.port().to_string(), "-d"])
        .arg(&queries)
        .args(["-l", "6", "-Q", "2000", "-t", "2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dnsperf must be installed");
    std::thread::sleep(Duration::from_secs(2));
    old.signal("TERM");
    let out = perf.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no '{name}' in dnsperf's output:\n{text}"))
    };
    let (sent, completed, lost) = (field("Queries sent:"), field("Queries completed:"), field("Queries lost:"));
    let per_backend = relay.sent.lock().unwrap().clone();
    eprintln!("dnsperf: {sent} sent, {completed} completed, {lost} lost; relay: {per_backend:?} to old/new");
    assert!(sent >= 10_000, "{text}");
    assert_eq!(lost, 0, "{text}");
    assert!(per_backend[0] > 0 && per_backend[1] > 0, "the load must have moved from the old server: {per_backend:?}");
    let status = old.wait_exit(Duration::from_secs(10)).expect("the old server did not exit after its drain");
    assert!(status.success());
}

#[test]
fn a_follower_shows_its_zone_nearing_expiry_and_is_unready_once_nothing_is_served() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("exp.example.zone"),
        "$TTL 60\n@ SOA ns h 1 2 1 6 5\n NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\n",
    )
    .unwrap();
    let mut primary = Binary::serve(&[
        "--zone-dir",
        &dir.path().display().to_string(),
        "--allow-transfer",
        "127.0.0.0/8",
        "--drain",
        "0s",
    ]);
    let follower = Binary::serve(&[
        "--primary",
        &primary.addr.unwrap().to_string(),
        "--secondary-zone",
        "exp.example",
        "--drain",
        "0s",
    ]);
    let dns = follower.addr.unwrap();
    eventually(Duration::from_secs(10), || answers(dns, "www.exp.example.", "A").len() == 1).expect("never loaded");
    assert_eq!(follower.http_status("/readyz"), 200);
    let left = metric_sum(&follower, "r53dns_secondary_expire_seconds{zone=\"exp.example.\"}");
    assert!((4.0..=6.0).contains(&left), "expire in {left} s");
    // The primary goes away: the time left runs down, then the zone is withdrawn and, with
    // nothing left to serve, the follower says so.
    primary.signal("KILL");
    primary.wait_exit(Duration::from_secs(5)).unwrap();
    eventually(Duration::from_secs(15), || follower.http_status("/readyz") == 503)
        .expect("still ready with every zone expired");
    assert_eq!(ask(dns, &Query::new("www.exp.example.", "A")).rcode_text(), "REFUSED");
    assert_eq!(metric_sum(&follower, "r53dns_secondary_expire_seconds{zone=\"exp.example.\"}"), 0.0);
}
