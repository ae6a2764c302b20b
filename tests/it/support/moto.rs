//! The moto Route53 emulator on loopback, a client to seed it, and a fault-injecting HTTP
//! proxy to put in front of it. Never real AWS: fixed test credentials, IMDS disabled.
//!
//! moto 5.2.5 does not check change batches as Route53 does: it accepts a `DELETE` whose
//! TTL and values match any `CREATE` or `UPSERT` it ever journaled for the name and type
//! (not the set's current values), then deletes the set whatever it holds; and it accepts a
//! `CREATE` of an existing set (adding a second one) unless that very `CREATE` was made
//! before (moto/route53/models.py, `ChangeList.has_insert_or_update` and
//! `change_resource_record_sets`). The proxy can add Route53's checks ([`FaultProxy::strict`]).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, GeoLocation, HostedZoneConfig, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, RrType, Vpc, VpcRegion,
};

/// Where `tests/run-all.sh` installs moto.
pub fn moto_bin() -> PathBuf {
    if let Some(v) = std::env::var_os("R53DNS_MOTO_VENV") {
        return PathBuf::from(v).join("bin/moto_server");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/r53dns/moto-venv/bin/moto_server")
}

/// Environment for anything that talks to the emulator.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_ROUTE_53", endpoint.to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
    ]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}

/// A moto server, stopped on drop.
pub struct Moto {
    pub addr: SocketAddr,
    child: Child,
}

impl Moto {
    pub fn start() -> Self {
        let bin = moto_bin();
        assert!(bin.exists(), "moto is not installed at {} (tests/run-all.sh installs it)", bin.display());
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut m = Self { addr, child };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if http_get_ok(addr, "/moto-api/") {
                    return m;
                }
                if let Ok(Some(_)) = m.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = m.child.kill();
        }
        panic!("moto did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SDK client for seeding the emulator at `endpoint`.
pub async fn client(endpoint: &str) -> Client {
    let creds = aws_credential_types::Credentials::new("test", "test", None, None, "tests");
    let conf = aws_sdk_route53::config::Builder::new()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .http_client(r53dns_route53::fetch::http_client())
        .build();
    Client::from_conf(conf)
}

/// Creates an S3 bucket in the emulator at `endpoint` (snapshots for replicas).
pub async fn create_bucket(endpoint: &str, bucket: &str) {
    let creds = aws_credential_types::Credentials::new("test", "test", None, None, "tests");
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .force_path_style(true)
        .http_client(r53dns_route53::fetch::http_client())
        .build();
    aws_sdk_s3::Client::from_conf(conf).create_bucket().bucket(bucket).send().await.unwrap();
}

/// Seeding helpers.
pub struct Seeder {
    pub client: Client,
}

pub fn rrset(name: &str, t: &str, ttl: i64, values: &[&str]) -> ResourceRecordSet {
    let mut b = ResourceRecordSet::builder().name(name).r#type(RrType::from(t)).ttl(ttl);
    for v in values {
        b = b.resource_records(ResourceRecord::builder().value(*v).build().unwrap());
    }
    b.build().unwrap()
}

pub fn alias(name: &str, t: &str, zone_id: &str, target: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::from(t))
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id(zone_id)
                .dns_name(target)
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

pub fn weighted(name: &str, id: &str, weight: i64, value: &str) -> ResourceRecordSet {
    let mut r = rrset(name, "A", 60, &[value]);
    r.set_identifier = Some(id.into());
    r.weight = Some(weight);
    r
}

pub fn failover(name: &str, id: &str, primary: bool, value: &str) -> ResourceRecordSet {
    let mut r = rrset(name, "A", 60, &[value]);
    r.set_identifier = Some(id.into());
    r.failover = Some(if primary { ResourceRecordSetFailover::Primary } else { ResourceRecordSetFailover::Secondary });
    r
}

pub fn multivalue(name: &str, id: &str, value: &str) -> ResourceRecordSet {
    let mut r = rrset(name, "A", 60, &[value]);
    r.set_identifier = Some(id.into());
    r.multi_value_answer = Some(true);
    r
}

pub fn geo(name: &str, id: &str, continent: Option<&str>, country: Option<&str>, value: &str) -> ResourceRecordSet {
    let mut r = rrset(name, "A", 60, &[value]);
    r.set_identifier = Some(id.into());
    r.geo_location = Some(
        GeoLocation::builder()
            .set_continent_code(continent.map(Into::into))
            .set_country_code(country.map(Into::into))
            .build(),
    );
    r
}

pub fn latency(name: &str, id: &str, region: &str, value: &str) -> ResourceRecordSet {
    let mut r = rrset(name, "A", 60, &[value]);
    r.set_identifier = Some(id.into());
    r.region = Some(region.into());
    r
}

impl Seeder {
    pub async fn new(endpoint: &str) -> Self {
        Self { client: client(endpoint).await }
    }

    /// Creates a zone with sane SOA and NS (moto's own are malformed) and returns its ID.
    pub async fn zone(&self, name: &str, private: bool) -> String {
        self.zone_in(name, private.then_some("vpc-1234")).await
    }

    /// A zone, private to `vpc` when one is given.
    pub async fn zone_in(&self, name: &str, vpc: Option<&str>) -> String {
        let private = vpc.is_some();
        let mut req = self
            .client
            .create_hosted_zone()
            .name(name)
            .caller_reference(format!("{name}-{private}-{}", rand::random::<u32>()));
        if let Some(vpc) = vpc {
            req = req
                .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build())
                .vpc(Vpc::builder().vpc_id(vpc).vpc_region(VpcRegion::UsEast1).build());
        }
        let out = req.send().await.unwrap();
        let id = r53dns_route53::model::bare_zone_id(out.hosted_zone().unwrap().id()).to_owned();
        self.upsert(
            &id,
            vec![
                rrset(
                    name,
                    "SOA",
                    900,
                    &["ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"],
                ),
                rrset(name, "NS", 172800, &["ns-1.awsdns-01.org.", "ns-2.awsdns-02.net."]),
            ],
        )
        .await;
        id
    }

    pub async fn upsert(&self, zone: &str, sets: Vec<ResourceRecordSet>) {
        self.change(zone, ChangeAction::Upsert, sets).await;
    }

    pub async fn change(&self, zone: &str, action: ChangeAction, sets: Vec<ResourceRecordSet>) {
        for chunk in sets.chunks(500) {
            let changes: Vec<Change> = chunk
                .iter()
                .map(|s| Change::builder().action(action.clone()).resource_record_set(s.clone()).build().unwrap())
                .collect();
            self.client
                .change_resource_record_sets()
                .hosted_zone_id(zone)
                .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    /// Deletes every record set but SOA and NS, then the zone.
    pub async fn delete_zone(&self, zone: &str) {
        let out = self.client.list_resource_record_sets().hosted_zone_id(zone).max_items(1000).send().await.unwrap();
        let sets: Vec<ResourceRecordSet> = out
            .resource_record_sets()
            .iter()
            .filter(|r| !matches!(r.r#type(), RrType::Soa | RrType::Ns))
            .cloned()
            .collect();
        if !sets.is_empty() {
            self.change(zone, ChangeAction::Delete, sets).await;
        }
        self.client.delete_hosted_zone().id(zone).send().await.unwrap();
    }
}

/// A fault the proxy injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 400 with the Throttling error code.
    Throttle,
    /// 400 PriorRequestNotComplete.
    PriorRequestNotComplete,
    /// A bare 500.
    Status500,
    /// 503 ServiceUnavailable.
    Status503,
    /// Wait this many ms before forwarding.
    SlowMs(u64),
    /// Close the connection without a response.
    Reset,
    /// 200 with a body that is not XML.
    Garbage,
    /// A GetHealthCheckStatus answer in which every checker reports failure.
    Unhealthy,
    /// A ListHostedZones page listing only this zone ID, marked truncated but with no
    /// NextMarker (a broken or hostile listing).
    TruncatedZoneListing(&'static str),
    /// Forward the request, then close the connection without its response (the work is
    /// done, the answer lost).
    ForwardThenReset,
}

/// When the proxy injects its fault.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub fault: Option<Fault>,
    /// Only for requests whose first line contains this (`/rrset`: record pages).
    pub path: Option<&'static str>,
    /// Let this many matching requests through first (page k of n: k-1).
    pub skip: usize,
    /// Matching requests seen so far.
    pub seen: usize,
    /// Requests the fault was applied to.
    pub injected: usize,
    /// Stop injecting after this many (0: no end).
    pub limit: usize,
    /// Every request that came through, faulty or not.
    pub requests: usize,
}

/// Something done to the emulator directly, as by another writer.
pub type Interference = Box<dyn FnOnce() + Send>;

/// Route53 behaviour added to moto's, and writes of others slipped in.
#[derive(Default)]
pub struct Checks {
    /// Check change batches as Route53 does.
    strict: AtomicBool,
    /// Batches refused by those checks.
    rejected: AtomicUsize,
    /// Run, one each, just before the next change batches are checked and forwarded.
    before_change: Mutex<VecDeque<Interference>>,
}

/// An HTTP/1.1 proxy in front of moto that can break requests on purpose.
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub plan: Arc<Mutex<Plan>>,
    checks: Arc<Checks>,
    upstream: SocketAddr,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let checks = Arc::new(Checks::default());
        let (p, c) = (plan.clone(), checks.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (p, c) = (p.clone(), c.clone());
                std::thread::spawn(move || serve_conn(conn, upstream, &p, &c));
            }
        });
        Self { addr, plan, checks, upstream }
    }

    /// Checks change batches as Route53 does before moto sees them: a `DELETE` must name
    /// a set that exists with exactly that TTL and those values, a `CREATE` one that does
    /// not exist, in batch order; otherwise the batch is refused whole (400
    /// InvalidChangeBatch, Route53's wording).
    pub fn strict(&self) {
        self.checks.strict.store(true, Ordering::SeqCst);
    }

    /// Batches refused by the strict checks so far.
    pub fn rejected(&self) -> usize {
        self.checks.rejected.load(Ordering::SeqCst)
    }

    /// Runs `f` just before the next change batch that reaches the proxy is checked and
    /// forwarded (after the batch was made from what the writer read): a concurrent write.
    pub fn before_next_change(&self, f: impl FnOnce() + Send + 'static) {
        self.checks.before_change.lock().unwrap().push_back(Box::new(f));
    }

    /// Interferences not run yet.
    pub fn pending_interferences(&self) -> usize {
        self.checks.before_change.lock().unwrap().len()
    }

    /// Moto itself, for writes that must not go through the proxy.
    pub fn upstream_endpoint(&self) -> String {
        format!("http://{}", self.upstream)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Option<Fault>, only_record_pages: bool, skip: usize) {
        self.set_path(fault, only_record_pages.then_some("/rrset"), skip);
    }

    pub fn set_path(&self, fault: Option<Fault>, path: Option<&'static str>, skip: usize) {
        let mut p = self.plan.lock().unwrap();
        *p = Plan { fault, path, skip, seen: 0, injected: 0, limit: 0, requests: p.requests };
    }

    /// Like [`FaultProxy::set_path`], for the first `times` matching requests only.
    pub fn set_times(&self, fault: Fault, path: &'static str, times: usize) {
        let mut p = self.plan.lock().unwrap();
        *p = Plan {
            fault: Some(fault),
            path: Some(path),
            skip: 0,
            seen: 0,
            injected: 0,
            limit: times,
            requests: p.requests,
        };
    }

    pub fn injected(&self) -> usize {
        self.plan.lock().unwrap().injected
    }

    /// Every request that came through so far.
    pub fn requests(&self) -> usize {
        self.plan.lock().unwrap().requests
    }
}

fn read_request(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if c.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
        if buf.len() > 1 << 20 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).ok()?;
    buf.extend(body);
    Some(buf)
}

fn error_xml(code: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>injected by the test proxy</Message></Error><RequestId>test</RequestId></ErrorResponse>"
    )
}

fn respond(c: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        c,
        "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nx-amzn-RequestId: test\r\n\r\n{body}",
        body.len()
    );
}

fn serve_conn(mut c: TcpStream, upstream: SocketAddr, plan: &Mutex<Plan>, checks: &Checks) {
    while let Some(req) = read_request(&mut c) {
        let first_line =
            String::from_utf8_lossy(&req[..req.iter().position(|&b| b == b'\r').unwrap_or(0)]).into_owned();
        let is_change = first_line.starts_with("POST ") && first_line.contains("/rrset");
        if is_change {
            let next = checks.before_change.lock().unwrap().pop_front();
            if let Some(f) = next {
                f();
            }
            if checks.strict.load(Ordering::SeqCst)
                && let Some(refusal) = route53_refusal(upstream, &first_line, &req)
            {
                checks.rejected.fetch_add(1, Ordering::SeqCst);
                respond(&mut c, "400 Bad Request", &error_xml_message("InvalidChangeBatch", &refusal));
                continue;
            }
        }
        let fault = {
            let mut p = plan.lock().unwrap();
            p.requests += 1;
            let matches = p.fault.is_some() && p.path.is_none_or(|f| first_line.contains(f));
            if matches {
                p.seen += 1;
            }
            if matches && p.seen > p.skip && (p.limit == 0 || p.injected < p.limit) {
                p.injected += 1;
                p.fault
            } else {
                None
            }
        };
        match fault {
            Some(Fault::Throttle) => respond(&mut c, "400 Bad Request", &error_xml("Throttling")),
            Some(Fault::PriorRequestNotComplete) => {
                respond(&mut c, "400 Bad Request", &error_xml("PriorRequestNotComplete"))
            }
            Some(Fault::Status500) => respond(&mut c, "500 Internal Server Error", ""),
            Some(Fault::Status503) => respond(&mut c, "503 Service Unavailable", &error_xml("ServiceUnavailable")),
            Some(Fault::Reset) => {
                let _ = c.shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(Fault::Garbage) => respond(&mut c, "200 OK", "<<<this is not xml"),
            Some(Fault::TruncatedZoneListing(id)) => respond(
                &mut c,
                "200 OK",
                &format!(
                    "<?xml version=\"1.0\"?>\n<ListHostedZonesResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
                     <HostedZones><HostedZone><Id>/hostedzone/{id}</Id><Name>a.example.</Name><CallerReference>x</CallerReference>\
                     <Config><PrivateZone>false</PrivateZone></Config><ResourceRecordSetCount>3</ResourceRecordSetCount></HostedZone>\
                     </HostedZones><IsTruncated>true</IsTruncated><MaxItems>100</MaxItems></ListHostedZonesResponse>"
                ),
            ),
            Some(Fault::Unhealthy) => respond(
                &mut c,
                "200 OK",
                "<?xml version=\"1.0\"?>\n<GetHealthCheckStatusResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
                 <HealthCheckObservations><HealthCheckObservation><Region>us-east-1</Region><IPAddress>192.0.2.1</IPAddress>\
                 <StatusReport><Status>Failure: Connection timed out.</Status><CheckedTime>2026-01-01T00:00:00Z</CheckedTime>\
                 </StatusReport></HealthCheckObservation></HealthCheckObservations></GetHealthCheckStatusResponse>",
            ),
            Some(Fault::ForwardThenReset) => {
                let mut sink = Vec::new();
                let _ = forward_into(&mut sink, upstream, &req);
                let _ = c.shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(Fault::SlowMs(ms)) => {
                std::thread::sleep(Duration::from_millis(ms));
                if !forward(&mut c, upstream, &req) {
                    return;
                }
            }
            None => {
                if !forward(&mut c, upstream, &req) {
                    return;
                }
            }
        }
    }
}

/// Sends the request upstream on a fresh connection and copies the whole response back.
fn forward(c: &mut TcpStream, upstream: SocketAddr, req: &[u8]) -> bool {
    forward_into(c, upstream, req)
}

fn forward_into(c: &mut impl Write, upstream: SocketAddr, req: &[u8]) -> bool {
    let Ok(mut u) = TcpStream::connect(upstream) else {
        return false;
    };
    // One request per upstream connection: ask it to close so the response ends at EOF.
    let text = String::from_utf8_lossy(req).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let new = format!("{}\r\nConnection: close\r\n\r\n", head.join("\r\n"));
    if u.write_all(new.as_bytes()).is_err() || u.write_all(body.as_bytes()).is_err() {
        return false;
    }
    let mut resp = Vec::new();
    if u.read_to_end(&mut resp).is_err() {
        return false;
    }
    // Keep the client connection alive: drop upstream's Connection: close.
    let text = String::from_utf8_lossy(&resp).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let head: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let has_len = head.iter().any(|l| l.to_ascii_lowercase().starts_with("content-length:"));
    let mut out = head.join("\r\n");
    if !has_len {
        out.push_str(&format!("\r\nContent-Length: {}", body.len()));
    }
    out.push_str("\r\n\r\n");
    c.write_all(out.as_bytes()).is_ok() && c.write_all(body.as_bytes()).is_ok()
}

fn error_xml_message(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{}</Message></Error><RequestId>test</RequestId></ErrorResponse>",
        message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    )
}

/// The inner texts of every `<tag>…</tag>` in `xml` (the tags used here do not nest).
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// What Route53 would say against the change batch in `req`, from moto's current data:
/// `None` when it would take it.
fn route53_refusal(upstream: SocketAddr, first_line: &str, req: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(req).into_owned();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let zone = first_line.split("/hostedzone/").nth(1)?.split('/').next()?.to_owned();
    // (action, name, type, TTL, values); sets with a SetIdentifier or an alias are left to moto.
    let mut changes = Vec::new();
    for change in elements(body, "Change") {
        if change.contains("<SetIdentifier>") || change.contains("<AliasTarget>") {
            return None;
        }
        let one = |tag: &str| elements(change, tag).first().map(|v| unescape(v)).unwrap_or_default();
        let ttl = one("TTL").parse::<i64>().ok();
        let mut values: Vec<String> = elements(change, "Value").into_iter().map(unescape).collect();
        values.sort();
        changes.push((one("Action"), one("Name"), one("Type"), ttl, values));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(client(&format!("http://{upstream}")));
    // Every (name, type) the batch touches, as moto holds it now.
    // (name, type, (TTL, sorted values) if the set exists)
    type Current = Option<(Option<i64>, Vec<String>)>;
    let mut state: Vec<(String, String, Current)> = Vec::new();
    for (_, name, t, _, _) in &changes {
        if state.iter().any(|(n, ty, _)| same_name(n, name) && ty == t) {
            continue;
        }
        let out = rt
            .block_on(
                client
                    .list_resource_record_sets()
                    .hosted_zone_id(&zone)
                    .start_record_name(name)
                    .start_record_type(RrType::from(t.as_str()))
                    .max_items(10)
                    .send(),
            )
            .ok()?;
        let found = out
            .resource_record_sets()
            .iter()
            .find(|r| same_name(r.name(), name) && r.r#type().as_str() == t && r.set_identifier().is_none())
            .map(|r| {
                let mut v: Vec<String> = r.resource_records().iter().map(|v| v.value().to_owned()).collect();
                v.sort();
                (r.ttl(), v)
            });
        state.push((name.clone(), t.clone(), found));
    }
    for (action, name, t, ttl, values) in changes {
        let slot = &mut state.iter_mut().find(|(n, ty, _)| same_name(n, &name) && *ty == t)?.2;
        let name = format!("{}.", name.trim_end_matches('.'));
        match action.as_str() {
            "DELETE" => match slot {
                None => {
                    return Some(format!(
                        "[Tried to delete resource record set [name='{name}', type='{t}'] but it was not found]"
                    ));
                }
                Some((have_ttl, have)) if *have_ttl != ttl || *have != values => {
                    return Some(format!(
                        "[Tried to delete resource record set [name='{name}', type='{t}'] but the values provided do not match the current values]"
                    ));
                }
                Some(_) => *slot = None,
            },
            "CREATE" if slot.is_some() => {
                return Some(format!(
                    "[Tried to create resource record set [name='{name}', type='{t}'] but it already exists]"
                ));
            }
            _ => *slot = Some((ttl, values)),
        }
    }
    None
}
