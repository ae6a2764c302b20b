//! The moto Route53 emulator on loopback, a client to seed it, and a fault-injecting HTTP
//! proxy to put in front of it. Never real AWS: fixed test credentials, IMDS disabled.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
    /// Every request that came through, faulty or not.
    pub requests: usize,
}

/// An HTTP/1.1 proxy in front of moto that can break requests on purpose.
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub plan: Arc<Mutex<Plan>>,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let p = plan.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let p = p.clone();
                std::thread::spawn(move || serve_conn(conn, upstream, &p));
            }
        });
        Self { addr, plan }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Option<Fault>, only_record_pages: bool, skip: usize) {
        self.set_path(fault, only_record_pages.then_some("/rrset"), skip);
    }

    pub fn set_path(&self, fault: Option<Fault>, path: Option<&'static str>, skip: usize) {
        let mut p = self.plan.lock().unwrap();
        *p = Plan { fault, path, skip, seen: 0, injected: 0, requests: p.requests };
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

fn serve_conn(mut c: TcpStream, upstream: SocketAddr, plan: &Mutex<Plan>) {
    while let Some(req) = read_request(&mut c) {
        let first_line =
            String::from_utf8_lossy(&req[..req.iter().position(|&b| b == b'\r').unwrap_or(0)]).into_owned();
        let fault = {
            let mut p = plan.lock().unwrap();
            p.requests += 1;
            let matches = p.fault.is_some() && p.path.is_none_or(|f| first_line.contains(f));
            if matches {
                p.seen += 1;
            }
            if matches && p.seen > p.skip {
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
