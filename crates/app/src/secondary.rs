//! Secondary zones: pulled from a primary by zone transfer and served from the same snapshot.
//!
//! Each zone has its own task. Without data it asks for the whole zone (AXFR, RFC 5936) and
//! retries with backoff. With data it follows the SOA timers (RFC 1034 §4.3.5): every
//! *refresh* it asks the primary for the SOA and, when the serial moved on (RFC 1982), for
//! the difference (IXFR, RFC 1995) — which the primary may answer with the whole zone. A
//! NOTIFY (RFC 1996) from the primary starts a check at once. A failed check is retried
//! after *retry*; a zone not confirmed for *expire* is withdrawn (answers REFUSED like any
//! zone not served) until the primary answers again.
//!
//! With `tls` the SOA checks and transfers go over TLS 1.3 to the primary's DNS-over-TLS
//! port (XoT, RFC 9103), its certificate checked against the configured trust anchors for
//! the configured name; the length-prefixed messages inside are the same as over TCP. A
//! refresh makes one TLS connection (RFC 9103 §5.2): the SOA query, then the transfer when
//! the serial moved on, over the same session (a new one only when the primary closed it
//! after the SOA answer). Over plain TCP the SOA query goes over UDP (over TCP when the
//! answer is truncated) and the transfer over its own connection.
//!
//! Nothing half-received is served: a transfer is applied only when it ended with the
//! closing SOA, every record was valid and, with a TSIG key, every message was covered by a
//! good signature; the zone is then rebuilt and validated like a zone file before it is
//! published.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use r53dns_proto::frame;
use r53dns_proto::message::{self, Message, Record, Reply};
use r53dns_proto::tsig::{self, Key, KeyRing, Opened, Signer, Transaction};
use r53dns_server::CancellationToken;
use r53dns_server::logs::{Refusal, refused};
use r53dns_zone::proto::{Overflow, put_rdata, rcode, serial};
use r53dns_zone::{Name, Source, Zone, ZoneBuilder, rtype};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::publish::Publisher;

/// One zone to follow, as configured.
#[derive(Debug, Clone)]
pub struct SecondaryZone {
    /// The zone.
    pub apex: Name,
    /// Where it is pulled from (and who may NOTIFY about it): `ADDR:PORT` or `HOST:PORT`,
    /// a host name being resolved again at every check.
    pub primary: String,
    /// TSIG key signing the requests (and required on the primary's answers and NOTIFYs).
    pub key: Option<Key>,
    /// Longest time between checks, whatever the SOA refresh says.
    pub max_refresh: Option<Duration>,
    /// A catalog zone (RFC 9432): not served; its members are followed from the same
    /// primary, with the same key and refresh cap, as they come and go.
    pub catalog: bool,
    /// What one transfer may bring.
    pub limits: TransferLimits,
    /// Over TLS (XoT, RFC 9103): how to reach the primary and check its certificate.
    pub tls: Option<Xot>,
}

/// The TLS side of a primary followed over TLS (XoT, RFC 9103): TLS 1.3 only (§9.3), ALPN
/// `dot` (§7.1), the certificate checked against trust anchors for one name or address.
#[derive(Clone)]
pub struct Xot {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Xot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xot").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Why the TLS side of a secondary cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum XotError {
    /// The CA file cannot be read or is not PEM.
    #[error("cannot read {path}: {reason}")]
    CaUnreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate of the CA file is not a usable trust anchor.
    #[error("{path}: certificate {index} is not a usable trust anchor: {reason}")]
    BadAnchor {
        /// The file.
        path: std::path::PathBuf,
        /// Its place in the file, from 1.
        index: usize,
        /// Why.
        reason: rustls::Error,
    },
    /// The CA file holds no certificate.
    #[error("{0}: no PEM certificate in it")]
    NoCertificate(std::path::PathBuf),
    /// No trust anchor could be loaded from the system's store.
    #[error("no trust anchor in the system's certificate store ({0}); give a CA file")]
    NoSystemAnchors(String),
    /// The name to check is neither a DNS name nor an IP address.
    #[error("'{0}' is not a DNS name or an IP address")]
    BadName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

impl Xot {
    /// A client checking the primary's certificate for `name` (a DNS name, or an IP address
    /// checked against the certificate's IP addresses) against the certificates of `ca`, a
    /// PEM file, or the system's trust anchors without one.
    pub fn new(name: &str, ca: Option<&std::path::Path>) -> Result<Self, XotError> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, ServerName};
        let name = ServerName::try_from(name.trim_end_matches('.').to_owned())
            .map_err(|_| XotError::BadName(name.to_owned()))?;
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let unreadable = |e: &dyn std::fmt::Display| XotError::CaUnreadable {
                    path: path.to_owned(),
                    reason: match std::fs::metadata(path) {
                        Err(io) => io.to_string(),
                        Ok(_) => e.to_string(),
                    },
                };
                for (i, cert) in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))?.enumerate() {
                    let cert = cert.map_err(|e| unreadable(&e))?;
                    roots.add(cert).map_err(|reason| XotError::BadAnchor {
                        path: path.to_owned(),
                        index: i + 1,
                        reason,
                    })?;
                }
                if roots.is_empty() {
                    return Err(XotError::NoCertificate(path.to_owned()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    let why: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                    return Err(XotError::NoSystemAnchors(if why.is_empty() {
                        "empty".to_owned()
                    } else {
                        why.join("; ")
                    }));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"dot".to_vec()];
        Ok(Self { connector: tokio_rustls::TlsConnector::from(Arc::new(config)), name })
    }

    /// The name or address the primary's certificate must carry.
    pub fn name(&self) -> String {
        self.name.to_str().into_owned()
    }
}

/// A connection to the primary: TCP, or TLS over TCP.
enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Connects to `primary` (and makes the TLS handshake, for a zone followed over TLS),
/// within [`IO_TIMEOUT`].
async fn connect(cfg: &SecondaryZone, primary: SocketAddr) -> Result<Conn, String> {
    let within = async {
        let tcp = TcpStream::connect(primary).await.map_err(|e| format!("{primary}: {e}"))?;
        let Some(xot) = &cfg.tls else { return Ok(Conn::Tcp(tcp)) };
        let tls = xot.connector.connect(xot.name.clone(), tcp).await.map_err(|e| {
            format!("{primary}: TLS handshake failed (certificate checked for {}): {e}", xot.name.to_str())
        })?;
        // The configuration offers nothing else; checked all the same (RFC 9103 §9.3).
        if tls.get_ref().1.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return Err(format!("{primary}: TLS below 1.3, which zone transfers require"));
        }
        Ok(Conn::Tls(Box::new(tls)))
    };
    tokio::time::timeout(IO_TIMEOUT, within).await.map_err(|_| format!("{primary}: connection timed out"))?
}

/// Ends a connection once its exchange is over: TLS says `close_notify`, so the primary
/// sees a clean end. Best effort, briefly.
async fn close<S: AsyncWrite + Unpin>(stream: &mut S) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// What a transfer may bring before it is refused (as Knot's `zone-max-size` and BIND's
/// `max-records`, `max-types-per-name`): a primary, hostile or broken, cannot exhaust the
/// follower's memory or hold it forever. Over a limit the transfer is refused, logged and
/// counted (`outcome="too_large"`), and the zone held stays served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferLimits {
    /// Records in one transfer.
    pub max_records: usize,
    /// Octets of names and RDATA in one transfer.
    pub max_bytes: u64,
    /// Distinct types at one name.
    pub max_types_per_name: usize,
    /// Time for the whole transfer.
    pub deadline: Duration,
}

impl Default for TransferLimits {
    fn default() -> Self {
        Self {
            max_records: 1_000_000,
            max_bytes: 256 << 20,
            max_types_per_name: 100,
            deadline: Duration::from_secs(600),
        }
    }
}

/// Shortest refresh and retry honoured, whatever the SOA says (as Knot's
/// `refresh-min-interval`): keeps a zone with tiny timers from hammering its primary.
const MIN_INTERVAL: Duration = Duration::from_secs(2);
/// Longest wait between checks, whatever the SOA says.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// Time allowed to connect, and between two messages of a transfer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for a SOA query (per attempt).
const SOA_TIMEOUT: Duration = Duration::from_secs(3);

/// A record of a transferred zone, keyed for IXFR deletions: (lower-case owner, type, RDATA).
type Key3 = (Box<[u8]>, u16, Box<[u8]>);
/// The records of a zone as last transferred: key → (owner as sent, TTL).
type Records = HashMap<Key3, (Name, u32)>;

fn key_of(r: &Record) -> Key3 {
    (r.name.to_lowercase().wire().into(), r.rtype, r.rdata.clone().into_boxed_slice())
}

fn soa_serial(r: &Record) -> Option<u32> {
    (r.rtype == rtype::SOA).then(|| r53dns_zone::soa_numbers(&r.rdata)).flatten().map(|n| n[0])
}

fn clamp(secs: u32) -> Duration {
    Duration::from_secs(u64::from(secs)).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// One difference of an IXFR: the records removed and added between two serials, SOAs
/// included.
#[derive(Debug, Default)]
struct Diff {
    from: u32,
    to: u32,
    deleted: Vec<Record>,
    added: Vec<Record>,
}

/// What a transfer brought.
#[derive(Debug)]
enum Pulled {
    /// The primary has nothing newer (IXFR answered with its SOA alone).
    Current,
    /// The whole zone (AXFR, or IXFR answered AXFR-style).
    Full(Vec<Record>),
    /// Differences from the serial we hold, in order.
    Incremental(Vec<Diff>),
}

#[derive(Debug)]
enum Phase {
    Start,
    /// One SOA seen: IXFR "current", or the start of either form.
    Opened,
    Full,
    Deleting,
    Adding,
    Done,
}

/// Reassembles the record stream of an AXFR or IXFR response (RFC 5936 §2.2, RFC 1995 §4).
#[derive(Debug)]
struct Stream {
    apex: Name,
    ixfr: bool,
    serial: u32,
    phase: Phase,
    full: Vec<Record>,
    diffs: Vec<Diff>,
    count: usize,
    bytes: u64,
    limits: TransferLimits,
}

/// Why a transfer failed.
#[derive(Debug)]
enum XferError {
    /// Over one of the [`TransferLimits`].
    OverLimit(String),
    /// The connection ended before the first answer.
    Closed(String),
    Failed(String),
}

impl From<String> for XferError {
    fn from(s: String) -> Self {
        Self::Failed(s)
    }
}

impl Stream {
    fn new(apex: Name, ixfr: bool, limits: TransferLimits) -> Self {
        Self {
            apex,
            ixfr,
            serial: 0,
            phase: Phase::Start,
            full: Vec::new(),
            diffs: Vec::new(),
            count: 0,
            bytes: 0,
            limits,
        }
    }

    fn push(&mut self, r: Record) -> Result<(), XferError> {
        if matches!(self.phase, Phase::Done) {
            return Err(XferError::Failed("records after the closing SOA".into()));
        }
        if r.class != 1 {
            return Err(XferError::Failed(format!("record of class {} in the transfer", r.class)));
        }
        self.count += 1;
        self.bytes += (r.name.wire().len() + r.rdata.len() + 10) as u64;
        if self.count > self.limits.max_records {
            return Err(XferError::OverLimit(format!(
                "more than {} records (secondary max-records)",
                self.limits.max_records
            )));
        }
        if self.bytes > self.limits.max_bytes {
            return Err(XferError::OverLimit(format!(
                "more than {} octets (secondary max-bytes)",
                self.limits.max_bytes
            )));
        }
        self.step(r).map_err(XferError::Failed)
    }

    fn step(&mut self, r: Record) -> Result<(), String> {
        let soa = soa_serial(&r);
        if soa.is_some() && r.name.to_lowercase() != self.apex.to_lowercase() {
            return Err(format!("SOA at {} is not at the apex", r.name));
        }
        match (&self.phase, soa) {
            (Phase::Start, Some(s)) => {
                self.serial = s;
                self.full.push(r);
                self.phase = Phase::Opened;
            }
            (Phase::Start, None) => return Err("the transfer does not start with the SOA".into()),
            (Phase::Opened, Some(s)) if self.ixfr => {
                self.diffs.push(Diff { from: s, deleted: vec![r], ..Default::default() });
                self.phase = Phase::Deleting;
            }
            (Phase::Opened | Phase::Full, Some(s)) => {
                if s != self.serial {
                    return Err(format!("closing SOA serial {s} differs from the opening {}", self.serial));
                }
                self.phase = Phase::Done;
            }
            (Phase::Opened | Phase::Full, None) => {
                self.full.push(r);
                self.phase = Phase::Full;
            }
            (Phase::Deleting, Some(s)) => {
                let d = self.diffs.last_mut().ok_or("difference without its start")?;
                d.to = s;
                d.added.push(r);
                self.phase = Phase::Adding;
            }
            (Phase::Adding, Some(s)) => {
                let to = self.diffs.last().map_or(0, |d| d.to);
                if to == self.serial {
                    if s != self.serial {
                        return Err(format!("closing SOA serial {s} differs from the opening {}", self.serial));
                    }
                    self.phase = Phase::Done;
                } else {
                    self.diffs.push(Diff { from: s, deleted: vec![r], ..Default::default() });
                    self.phase = Phase::Deleting;
                }
            }
            (Phase::Deleting, None) => self.diffs.last_mut().ok_or("difference without its start")?.deleted.push(r),
            (Phase::Adding, None) => self.diffs.last_mut().ok_or("difference without its start")?.added.push(r),
            (Phase::Done, _) => return Err("records after the closing SOA".into()),
        }
        Ok(())
    }

    /// Called at the end of each message: `Some` once the response is complete.
    fn end_of_message(&mut self, held: Option<u32>) -> Option<Pulled> {
        match self.phase {
            // IXFR: a lone SOA no newer than ours says we are current (RFC 1995 §2).
            Phase::Opened if self.ixfr && held.is_some_and(|h| !serial::is_after(self.serial, h)) => {
                Some(Pulled::Current)
            }
            Phase::Done if self.diffs.is_empty() => Some(Pulled::Full(std::mem::take(&mut self.full))),
            Phase::Done => Some(Pulled::Incremental(std::mem::take(&mut self.diffs))),
            _ => None,
        }
    }
}

/// The zone as last received. Its records, keyed for IXFR, are rebuilt from the zone when
/// a difference arrives rather than kept beside it.
#[derive(Debug)]
struct Held {
    serial: u32,
    soa: Record,
    zone: Arc<Zone>,
}

#[derive(Debug, Default)]
struct State {
    held: Option<Held>,
    /// Last time the primary confirmed our version (a transfer, or a SOA with our serial).
    confirmed: Option<Instant>,
    /// Whether the zone is being served.
    published: bool,
    /// The next transfer must be a whole one (an IXFR did not apply).
    force_axfr: bool,
    /// The next check transfers the whole zone whatever the serials (`ctl retransfer`).
    retransfer: bool,
    /// The last transfer went over a limit (counted as `too_large`).
    over_limit: bool,
    /// The primary's addresses as last resolved (NOTIFYs are accepted from these).
    primary_ips: Vec<std::net::IpAddr>,
    last_error: Option<String>,
    /// The last refresh's outcome (as counted) and when it ended.
    last_outcome: Option<(&'static str, Instant)>,
}

/// One followed zone.
#[derive(Debug)]
struct Follow {
    cfg: SecondaryZone,
    poke: Notify,
    state: StdMutex<State>,
    /// Stops this zone's task (a member dropped from its catalog).
    stop: CancellationToken,
    /// For a member of a catalog: the catalog's apex.
    member_of: Option<Name>,
}

impl Follow {
    fn new(cfg: SecondaryZone, member_of: Option<Name>) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            poke: Notify::new(),
            state: StdMutex::default(),
            stop: CancellationToken::new(),
            member_of,
        })
    }
}

/// Status of one secondary zone, for `/zones` and readiness.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecondaryStatus {
    /// Zone name.
    pub name: String,
    /// Primary.
    pub primary: String,
    /// Serial served, if any.
    pub serial: Option<u32>,
    /// Seconds since the primary last confirmed our version.
    pub confirmed_secs_ago: Option<u64>,
    /// Seconds left before the zone expires (is withdrawn) if the primary stays silent; 0
    /// once expired.
    pub expires_in: Option<u64>,
    /// The last error, if the last check failed.
    pub last_error: Option<String>,
    /// How the primary is reached: `tcp` (SOA checks over UDP, transfers over TCP) or
    /// `tls` (both over TLS, XoT).
    pub transport: &'static str,
    /// Over TLS: the name (or address) the primary's certificate is checked for.
    pub tls_name: Option<String>,
    /// The last refresh's outcome, as `r53dns_secondary_refreshes_total` counts it: `axfr`
    /// or `ixfr` (a transfer applied), `current` (nothing newer), `failed`, `too_large`.
    pub last_outcome: Option<&'static str>,
    /// Seconds since that refresh ended.
    pub last_outcome_secs_ago: Option<u64>,
}

/// The secondary zones of this process: those configured, and the members of configured
/// catalogs as they come and go.
pub struct Secondaries {
    zones: StdMutex<Vec<Arc<Follow>>>,
    /// The process's shutdown and this value itself, for tasks started later (catalog
    /// members).
    running: std::sync::OnceLock<(CancellationToken, std::sync::Weak<Secondaries>)>,
    publisher: Arc<Publisher>,
    keys: KeyRing,
    metrics: Option<Arc<r53dns_metrics::Metrics>>,
}

impl std::fmt::Debug for Secondaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secondaries").field("zones", &self.list().len()).finish_non_exhaustive()
    }
}

impl Secondaries {
    /// Followers for `zones`, publishing through `publisher`. `keys` checks NOTIFYs.
    pub fn new(
        zones: Vec<SecondaryZone>,
        publisher: Arc<Publisher>,
        keys: KeyRing,
        metrics: Option<Arc<r53dns_metrics::Metrics>>,
    ) -> Self {
        let zones = zones.into_iter().map(|cfg| Follow::new(cfg, None)).collect();
        Self { zones: StdMutex::new(zones), running: std::sync::OnceLock::new(), publisher, keys, metrics }
    }

    fn list(&self) -> Vec<Arc<Follow>> {
        self.zones.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts one task per zone; they stop with `shutdown`.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) {
        let _ = self.running.set((shutdown, Arc::downgrade(self)));
        for z in self.list() {
            self.start(z);
        }
    }

    fn start(&self, z: Arc<Follow>) {
        let Some((shutdown, me)) = self.running.get() else { return };
        let (Some(me), shutdown) = (me.upgrade(), shutdown.clone()) else { return };
        tokio::spawn(async move { me.follow(z, shutdown).await });
    }

    /// Ready once every zone has been loaded at least once, unless every zone has expired
    /// since (then nothing is served at all: every answer would be REFUSED).
    pub fn ready(&self) -> bool {
        let zones = self.list();
        let all_loaded = zones.iter().all(|z| z.lock().held.is_some());
        let any_served = zones.iter().any(|z| z.lock().published);
        all_loaded && any_served
    }

    /// Per-zone state.
    pub fn status(&self) -> Vec<SecondaryStatus> {
        self.list()
            .iter()
            .map(|z| {
                let s = z.lock();
                SecondaryStatus {
                    name: z.cfg.apex.to_text(),
                    primary: z.cfg.primary.clone(),
                    serial: s.held.as_ref().filter(|_| s.published).map(|h| h.serial),
                    confirmed_secs_ago: s.confirmed.map(|t| t.elapsed().as_secs()),
                    expires_in: z.timers_of(&s).zip(s.confirmed).map(|((_, _, expire), at)| {
                        if s.published { expire.saturating_sub(at.elapsed()).as_secs() } else { 0 }
                    }),
                    last_error: s.last_error.clone(),
                    transport: if z.cfg.tls.is_some() { "tls" } else { "tcp" },
                    tls_name: z.cfg.tls.as_ref().map(Xot::name),
                    last_outcome: s.last_outcome.map(|(o, _)| o),
                    last_outcome_secs_ago: s.last_outcome.map(|(_, at)| at.elapsed().as_secs()),
                }
            })
            .collect()
    }

    /// The followed zone named `apex`, if any.
    fn find(&self, apex: &Name) -> Option<Arc<Follow>> {
        let apex = apex.to_lowercase();
        self.list().into_iter().find(|z| z.cfg.apex.to_lowercase() == apex)
    }

    /// Checks the primary now (`ctl refresh`): a transfer follows if its serial is newer.
    /// False when `apex` is not followed here.
    pub fn refresh(&self, apex: &Name) -> bool {
        self.find(apex).map(|z| z.poke.notify_one()).is_some()
    }

    /// Transfers the whole zone now, whatever the serials (`ctl retransfer`, as `rndc
    /// retransfer`). False when `apex` is not followed here.
    pub fn retransfer(&self, apex: &Name) -> bool {
        self.find(apex)
            .map(|z| {
                z.lock().retransfer = true;
                z.poke.notify_one();
            })
            .is_some()
    }

    /// Counts a refresh's outcome and keeps it for the status.
    fn count(&self, z: &Follow, outcome: &'static str) {
        z.lock().last_outcome = Some((outcome, Instant::now()));
        if let Some(m) = &self.metrics {
            m.transfers_in.with_label_values(&[&z.cfg.apex.to_text(), outcome]).inc();
        }
    }

    async fn follow(self: Arc<Self>, z: Arc<Follow>, shutdown: CancellationToken) {
        let z = &z;
        let mut backoff = Duration::from_secs(1);
        loop {
            let result = tokio::select! {
                r = self.check(z) => r,
                () = shutdown.cancelled() => return,
                () = z.stop.cancelled() => return,
            };
            let wait = match result {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    z.timers().map_or(MIN_INTERVAL, |t| t.0)
                }
                Err(e) => {
                    let over = std::mem::take(&mut z.lock().over_limit);
                    self.count(z, if over { "too_large" } else { "failed" });
                    tracing::warn!(zone = %z.cfg.apex, primary = %z.cfg.primary, error = %e, "secondary: refresh failed");
                    z.lock().last_error = Some(e);
                    self.expire(z).await;
                    match z.timers() {
                        Some(t) => t.1,
                        None => {
                            let w = backoff;
                            backoff = (backoff * 2).min(Duration::from_secs(60));
                            w
                        }
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = z.poke.notified() => {}
                () = shutdown.cancelled() => return,
                () = z.stop.cancelled() => return,
            }
        }
    }

    /// Follows the members a catalog zone lists (RFC 9432 version 2): new members start
    /// being followed from the catalog's primary, members gone are withdrawn.
    fn catalog_updated(&self, catalog: &Follow, zone: &Zone) {
        let apex = catalog.cfg.apex.to_lowercase();
        let records = records_of(zone);
        let version_owner = apex.prepend(b"version").ok().map(|n| n.wire().to_vec());
        let version_ok = records.keys().any(|(owner, t, rd)| {
            *t == rtype::TXT && Some(owner.as_ref()) == version_owner.as_deref() && rd.as_ref() == b"\x012"
        });
        if !version_ok {
            tracing::error!(zone = %apex, "secondary: catalog zone without version \"2\" (RFC 9432); its members are left as they are");
            return;
        }
        let Ok(zones_label) = apex.prepend(b"zones") else { return };
        let mut members: Vec<Name> = records
            .keys()
            .filter(|(owner, t, _)| {
                *t == rtype::PTR
                    && Name::from_wire(owner)
                        .is_some_and(|o| o.parent().is_some_and(|p| p.to_lowercase() == zones_label))
            })
            .filter_map(|(_, _, rd)| Name::from_wire(rd))
            .collect();
        members.sort_by_key(|m| m.to_lowercase().to_text());
        members.dedup_by_key(|m| m.to_lowercase());
        let (added, removed) = {
            let mut zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
            let mine = |z: &Arc<Follow>| z.member_of.as_ref().is_some_and(|c| c.to_lowercase() == apex);
            let removed: Vec<Arc<Follow>> = zones
                .iter()
                .filter(|z| mine(z) && !members.iter().any(|m| m.to_lowercase() == z.cfg.apex.to_lowercase()))
                .cloned()
                .collect();
            zones.retain(|z| !removed.iter().any(|r| Arc::ptr_eq(r, z)));
            let mut added = Vec::new();
            for m in &members {
                if zones.iter().any(|z| z.cfg.apex.to_lowercase() == m.to_lowercase()) {
                    continue; // followed already (as a member, or configured on its own)
                }
                let f = Follow::new(
                    SecondaryZone {
                        apex: m.clone(),
                        primary: catalog.cfg.primary.clone(),
                        key: catalog.cfg.key.clone(),
                        max_refresh: catalog.cfg.max_refresh,
                        catalog: false,
                        limits: catalog.cfg.limits,
                        tls: catalog.cfg.tls.clone(),
                    },
                    Some(apex.clone()),
                );
                zones.push(f.clone());
                added.push(f);
            }
            (added, removed)
        };
        for f in added {
            tracing::info!(zone = %f.cfg.apex, catalog = %apex, "secondary: catalog member added; following it");
            self.start(f);
        }
        for f in removed {
            tracing::info!(zone = %f.cfg.apex, catalog = %apex, "secondary: catalog member removed; no longer served");
            f.stop.cancel();
            let publisher = self.publisher.clone();
            tokio::spawn(async move { publisher.set_secondary(&f.cfg.apex, None).await });
        }
    }

    /// Withdraws the zone once it has not been confirmed for its SOA expire time.
    async fn expire(&self, z: &Follow) {
        let expired = {
            let mut s = z.lock();
            let Some((_, _, expire)) = z.timers_of(&s) else { return };
            let stale = s.published && s.confirmed.is_some_and(|t| t.elapsed() >= expire);
            if stale {
                s.published = false;
            }
            stale
        };
        if expired && !z.cfg.catalog {
            tracing::error!(zone = %z.cfg.apex, primary = %z.cfg.primary, "secondary: zone expired; no longer served");
            self.publisher.set_secondary(&z.cfg.apex, None).await;
        }
    }

    /// One refresh: SOA check, then a transfer if needed, then publish.
    async fn check(&self, z: &Follow) -> Result<(), String> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(z.cfg.primary.as_str())
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", z.cfg.primary))?
            .collect();
        z.lock().primary_ips = addrs.iter().map(SocketAddr::ip).collect();
        // A name may have several addresses (IPv4 and IPv6): the first that works.
        let mut last = format!("{} has no address", z.cfg.primary);
        for addr in addrs {
            match self.check_at(z, addr).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn check_at(&self, z: &Follow, addr: SocketAddr) -> Result<(), String> {
        let (held_serial, force_axfr, retransfer) = {
            let s = z.lock();
            (s.held.as_ref().map(|h| h.serial), s.force_axfr || s.retransfer, s.retransfer)
        };
        // Over TLS the SOA check and the transfer share one connection (RFC 9103 §5.2: one
        // TLS handshake per refresh); over plain TCP the check is a UDP query.
        let mut conn = None;
        if let Some(ours) = held_serial.filter(|_| !retransfer) {
            let theirs = if z.cfg.tls.is_some() {
                let mut c = connect(&z.cfg, addr).await?;
                let theirs = soa_over(&mut c, &z.cfg, addr).await?;
                conn = Some(c);
                theirs
            } else {
                soa_query(&z.cfg, addr).await?
            };
            if !serial::is_after(theirs, ours) {
                if let Some(mut c) = conn.take() {
                    close(&mut c).await;
                }
                let republish = {
                    let mut s = z.lock();
                    s.confirmed = Some(Instant::now());
                    s.last_error = None;
                    !s.published
                };
                if republish {
                    self.republish(z).await;
                }
                self.count(z, "current");
                return Ok(());
            }
        }
        let ixfr = if force_axfr {
            None
        } else {
            let s = z.lock();
            s.held.as_ref().map(|h| (h.serial, h.soa.clone()))
        };
        let started = Instant::now();
        let pulled = match transfer(&z.cfg, addr, ixfr.as_ref().map(|(_, soa)| soa), conn).await {
            Ok(p) => p,
            Err(XferError::Failed(e) | XferError::Closed(e)) => return Err(e),
            Err(XferError::OverLimit(e)) => {
                z.lock().over_limit = true;
                return Err(format!("transfer refused: {e}"));
            }
        };
        let (records, kind) = match pulled {
            Pulled::Current => {
                z.lock().confirmed = Some(Instant::now());
                self.count(z, "current");
                return Ok(());
            }
            Pulled::Full(records) => {
                let mut map = Records::with_capacity(records.len());
                for r in records {
                    map.insert(key_of(&r), (r.name, r.ttl));
                }
                (map, "axfr")
            }
            Pulled::Incremental(diffs) => {
                let base = {
                    let s = z.lock();
                    s.held.as_ref().map(|h| (h.serial, h.zone.clone()))
                };
                let Some((serial, zone)) = base else { return Err("incremental answer without a zone".into()) };
                let mut records = records_of(&zone);
                if let Err(e) = apply(&mut records, serial, &diffs) {
                    z.lock().force_axfr = true;
                    return Err(format!("IXFR does not apply ({e}); the next transfer is a full one"));
                }
                (records, "ixfr")
            }
        };
        let zone = build(&z.cfg, &records)?;
        let soa = records
            .iter()
            .find(|(k, _)| k.1 == rtype::SOA)
            .map(|((_, t, rd), (name, ttl))| Record {
                name: name.clone(),
                rtype: *t,
                class: 1,
                ttl: *ttl,
                rdata: rd.to_vec(),
                offset: 0,
            })
            .ok_or("no SOA")?;
        let serial = zone.serial();
        let count = zone.record_count();
        let zone = Arc::new(zone);
        {
            let mut s = z.lock();
            s.held = Some(Held { serial, soa, zone: zone.clone() });
            s.confirmed = Some(Instant::now());
            s.published = true;
            s.force_axfr = false;
            s.retransfer = false;
            s.last_error = None;
        }
        if z.cfg.catalog {
            // A catalog is read, not served.
            self.catalog_updated(z, &zone);
        } else {
            self.publisher.set_secondary(&z.cfg.apex, Some(zone)).await;
        }
        self.count(z, kind);
        tracing::info!(
            zone = %z.cfg.apex, primary = %z.cfg.primary, serial, records = count, transfer = kind,
            transport = if z.cfg.tls.is_some() { "tls" } else { "tcp" },
            ms = started.elapsed().as_millis() as u64, "secondary: zone loaded"
        );
        Ok(())
    }

    async fn republish(&self, z: &Follow) {
        let zone = {
            let mut s = z.lock();
            s.published = s.held.is_some();
            s.held.as_ref().map(|h| h.zone.clone())
        };
        if let Some(zone) = zone.filter(|_| !z.cfg.catalog) {
            tracing::info!(zone = %z.cfg.apex, "secondary: primary reachable again; serving the zone");
            self.publisher.set_secondary(&z.cfg.apex, Some(zone)).await;
        }
    }

    /// Answers a NOTIFY (RFC 1996 §3.7): accepted from the zone's primary (signed with its
    /// key, when it has one), and starts a refresh at once.
    pub fn notify(&self, msg: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let parsed = message::parse(msg)?;
        let reply_to = Reply::to(msg, Some(&parsed));
        let mut tx = match Transaction::open(&self.keys, msg, &parsed, tsig::now(), |rc| reply_to.with(rc, false)) {
            Opened::Go(tx) => tx,
            Opened::Malformed(reply) => return Some(reply),
            Opened::Failed { reply, key, error: _ } => {
                refused(Refusal::NotifyTsig, |skipped| {
                    tracing::warn!(%peer, %key, skipped, "NOTIFY refused: TSIG check failed");
                });
                return Some(reply);
            }
        };
        let reply = |rc: u8, tx: &mut Transaction<'_>| {
            let mut out = reply_to.with(rc, rc == rcode::NOERROR);
            tx.seal(&mut out, || reply_to.with(rcode::SERVFAIL, false));
            Some(out)
        };
        let Some((apex, qtype, _)) = parsed.questions.first().filter(|_| parsed.questions.len() == 1) else {
            return reply(rcode::FORMERR, &mut tx);
        };
        if *qtype != rtype::SOA {
            return reply(rcode::FORMERR, &mut tx);
        }
        let apex = apex.to_lowercase();
        let zones = self.list();
        let Some(z) = zones.iter().find(|z| z.cfg.apex.to_lowercase() == apex) else {
            refused(Refusal::NotifyNotAllowed, |skipped| {
                tracing::info!(%peer, zone = %apex, skipped, "NOTIFY for a zone not followed here");
            });
            return reply(rcode::NOTAUTH, &mut tx);
        };
        let key_ok = match (&z.cfg.key, tx.key()) {
            (Some(k), Some(signed)) => signed.name.to_lowercase() == k.name.to_lowercase(),
            (Some(_), None) => false,
            (None, _) => true,
        };
        let from_primary = {
            let s = z.lock();
            s.primary_ips.contains(&peer.ip()) || z.cfg.primary.parse::<SocketAddr>().is_ok_and(|a| a.ip() == peer.ip())
        };
        if !from_primary || !key_ok {
            refused(Refusal::NotifyNotAllowed, |skipped| {
                tracing::warn!(%peer, zone = %apex, skipped, "NOTIFY refused: not from the zone's primary (or not signed with its key)");
            });
            return reply(rcode::REFUSED, &mut tx);
        }
        tracing::debug!(%peer, zone = %apex, "NOTIFY: checking the primary");
        z.poke.notify_one();
        reply(rcode::NOERROR, &mut tx)
    }
}

impl Follow {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn timers_of(&self, s: &State) -> Option<(Duration, Duration, Duration)> {
        let h = s.held.as_ref()?;
        let [_, refresh, retry, expire, _] = r53dns_zone::soa_numbers(&h.soa.rdata)?;
        let cap = |d: Duration| self.cfg.max_refresh.map_or(d, |m| d.min(m));
        Some((cap(clamp(refresh)), cap(clamp(retry)), Duration::from_secs(u64::from(expire))))
    }

    fn timers(&self) -> Option<(Duration, Duration, Duration)> {
        self.timers_of(&self.lock())
    }
}

/// The records of a zone, keyed as transfers carry them (signatures included).
fn records_of(zone: &Zone) -> Records {
    let mut out = Records::with_capacity(zone.record_count());
    for node in zone.nodes() {
        let lower: Box<[u8]> = node.name().to_lowercase().wire().into();
        for set in node.rrsets() {
            for s in std::iter::once(set).chain(set.sigs()) {
                for rd in s.rdatas() {
                    out.insert((lower.clone(), s.rtype(), rd.into()), (node.name().clone(), s.ttl()));
                }
            }
        }
    }
    out
}

/// Applies IXFR differences to `records`, which hold serial `serial`.
fn apply(records: &mut Records, serial: u32, diffs: &[Diff]) -> Result<(), String> {
    let mut at = serial;
    for d in diffs {
        if d.from != at {
            return Err(format!("difference starts at serial {} but we hold {at}", d.from));
        }
        for r in &d.deleted {
            if records.remove(&key_of(r)).is_none() {
                return Err(format!(
                    "{} {} to delete is not in the zone",
                    r.name,
                    r53dns_zone::rdata::type_to_string(r.rtype)
                ));
            }
        }
        for r in &d.added {
            records.insert(key_of(r), (r.name.clone(), r.ttl));
        }
        at = d.to;
    }
    Ok(())
}

/// Builds and validates the zone from transferred records.
fn build(cfg: &SecondaryZone, records: &Records) -> Result<Zone, String> {
    let mut b = ZoneBuilder::new(cfg.apex.clone(), Source::Other(format!("secondary:{}", cfg.primary)));
    // Sorted, so RRsets keep a stable order across rebuilds.
    let mut sorted: Vec<_> = records.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    // Types per name (CVE-2024-1737: many types at one name make lookups slow).
    let mut owner: Option<&[u8]> = None;
    let mut last_type = None;
    let mut types = 0;
    for ((o, t, _), (name, _)) in &sorted {
        if owner != Some(o.as_ref()) {
            (owner, last_type, types) = (Some(o.as_ref()), None, 0);
        }
        if last_type != Some(*t) {
            last_type = Some(*t);
            types += 1;
            if types > cfg.limits.max_types_per_name {
                return Err(format!(
                    "{name}: more than {} types at one name (secondary max-types-per-name)",
                    cfg.limits.max_types_per_name
                ));
            }
        }
    }
    for ((_, t, rd), (name, ttl)) in sorted {
        if !r53dns_zone::rdata::is_valid_rdata(*t, rd) {
            return Err(format!("{name} {}: malformed RDATA", r53dns_zone::rdata::type_to_string(*t)));
        }
        b.add(name, *t, *ttl, rd.clone(), "").map_err(|e| e.to_string())?;
    }
    b.finish().map(|(z, _)| z).map_err(|e| e.to_string())
}

/// A query for `apex` (`qtype`), with `soa` in the authority section for IXFR, signed with
/// the zone's key if it has one.
fn request<'k>(
    cfg: &'k SecondaryZone,
    id: u16,
    qtype: u16,
    soa: Option<&Record>,
) -> Result<(Vec<u8>, Option<Signer<'k>>), Overflow> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, u8::from(soa.is_some()), 0, 0]);
    m.extend_from_slice(cfg.apex.wire());
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if let Some(soa) = soa {
        m.extend_from_slice(cfg.apex.wire());
        m.extend_from_slice(&rtype::SOA.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&soa.ttl.to_be_bytes());
        put_rdata(&mut m, &soa.rdata)?;
    }
    let signer = Signer::sign_request(cfg.key.as_ref(), &mut m, tsig::now())?;
    Ok((m, signer))
}

/// Checks one response message's header against the request.
fn check_header(msg: &[u8], id: u16, primary: SocketAddr) -> Result<(), String> {
    if msg.len() < 12 || msg[..2] != id.to_be_bytes() || msg[2] & 0x80 == 0 || (msg[2] >> 3) & 0xf != 0 {
        return Err(format!("{primary} sent a message that is not our answer"));
    }
    if msg[2] & 0x02 != 0 {
        return Err(format!("{primary} sent a truncated answer"));
    }
    match msg[3] & 0x0f {
        0 => Ok(()),
        rc => Err(format!("{primary} answered {}", rcode_name(rc))),
    }
}

fn rcode_name(rc: u8) -> String {
    rcode::name(u16::from(rc)).map_or_else(|| format!("RCODE {rc}"), str::to_owned)
}

fn verify(signer: &mut Option<Signer<'_>>, msg: &[u8], primary: SocketAddr) -> Result<(), String> {
    if let Some(s) = signer.as_mut() {
        s.verify_response(msg).map_err(|e| format!("{primary}: TSIG check of the answer failed: {e}"))?;
    }
    Ok(())
}

/// The primary's SOA serial over UDP (three tries); an answer truncated (TC) is asked
/// again over TCP, as RFC 1035 §4.2.1 has it (a SOA with a large TSIG, or a primary
/// answering small UDP sizes). Zones followed over TLS never come here: their check goes
/// over the connection of the transfer ([`Secondaries::check_at`]).
async fn soa_query(cfg: &SecondaryZone, primary: SocketAddr) -> Result<u32, String> {
    let sock = crate::resolve::udp_client(primary).await.map_err(|e| format!("{primary}: {e}"))?;
    let mut last = format!("{primary} did not answer the SOA query");
    for _ in 0..3 {
        let id: u16 = rand::random();
        let (q, mut signer) = request(cfg, id, rtype::SOA, None).map_err(|e| format!("SOA query: {e}"))?;
        sock.send(&q).await.map_err(|e| format!("{primary}: {e}"))?;
        let mut buf = vec![0u8; 65_535];
        let deadline = tokio::time::Instant::now() + SOA_TIMEOUT;
        loop {
            let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    last = format!("{primary}: {e}");
                    break;
                }
                Err(_) => break,
            };
            let msg = &buf[..n];
            if n < 2 || msg[..2] != id.to_be_bytes() {
                continue; // a late answer to an earlier try
            }
            if n >= 12 && msg[2] & 0x80 != 0 && msg[2] & 0x02 != 0 {
                tracing::debug!(zone = %cfg.apex, %primary, "secondary: SOA answer truncated; asking over TCP");
                let mut tcp = connect(cfg, primary).await?;
                let serial = soa_over(&mut tcp, cfg, primary).await;
                close(&mut tcp).await;
                return serial;
            }
            check_header(msg, id, primary)?;
            verify(&mut signer, msg, primary)?;
            let parsed = message::parse(msg).ok_or_else(|| format!("{primary} sent a malformed answer"))?;
            return soa_in(&parsed, &cfg.apex).ok_or_else(|| format!("{primary} sent no SOA for {}", cfg.apex));
        }
    }
    Err(last)
}

/// The primary's SOA serial over a connection (TCP, or TLS): one query, its answer within
/// [`IO_TIMEOUT`], as any message of a transfer. The connection stays open for what
/// follows.
async fn soa_over<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    cfg: &SecondaryZone,
    primary: SocketAddr,
) -> Result<u32, String> {
    let id: u16 = rand::random();
    let (q, mut signer) = request(cfg, id, rtype::SOA, None).map_err(|e| format!("SOA query: {e}"))?;
    tokio::time::timeout(IO_TIMEOUT, frame::write(stream, &q))
        .await
        .map_err(|_| format!("{primary}: the query could not be sent for {}s", IO_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{primary}: {e}"))?;
    let msg = read_message(stream, primary).await?;
    check_header(&msg, id, primary)?;
    verify(&mut signer, &msg, primary)?;
    let parsed = message::parse(&msg).ok_or_else(|| format!("{primary} sent a malformed answer"))?;
    soa_in(&parsed, &cfg.apex).ok_or_else(|| format!("{primary} sent no SOA for {}", cfg.apex))
}

fn soa_in(m: &Message, apex: &Name) -> Option<u32> {
    let apex = apex.to_lowercase();
    m.answers.iter().find(|r| r.name.to_lowercase() == apex).and_then(soa_serial)
}

async fn read_message<S: AsyncRead + Unpin>(stream: &mut S, primary: SocketAddr) -> Result<Vec<u8>, String> {
    tokio::time::timeout(IO_TIMEOUT, frame::read(stream))
        .await
        .map_err(|_| format!("{primary}: no data for {}s", IO_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{primary}: {e}"))
}

/// Pulls the zone over TCP (or TLS): IXFR from `soa`'s serial when given, AXFR otherwise;
/// over `conn` when the SOA check left one open (XoT: one connection per refresh, RFC 9103
/// §5.2), else over a new connection.
async fn transfer(
    cfg: &SecondaryZone,
    primary: SocketAddr,
    soa: Option<&Record>,
    conn: Option<Conn>,
) -> Result<Pulled, XferError> {
    let deadline = cfg.limits.deadline;
    tokio::time::timeout(deadline, transfer_within(cfg, primary, soa, conn)).await.map_err(|_| {
        XferError::OverLimit(format!(
            "{primary}: transfer not finished within {deadline:?} (secondary transfer-timeout)"
        ))
    })?
}

async fn transfer_within(
    cfg: &SecondaryZone,
    primary: SocketAddr,
    soa: Option<&Record>,
    conn: Option<Conn>,
) -> Result<Pulled, XferError> {
    let reused = conn.is_some();
    let mut stream = match conn {
        Some(c) => c,
        None => connect(cfg, primary).await?,
    };
    match exchange(cfg, primary, soa, &mut stream).await {
        // A primary may close a connection after one answer: the transfer goes over a new
        // one (RFC 7766 §6.2.1, RFC 9103 §5.2), once.
        Err(XferError::Closed(e)) if reused => {
            tracing::debug!(zone = %cfg.apex, %primary, error = %e, "secondary: the primary closed the connection after the SOA check; transferring over a new one");
            let mut stream = connect(cfg, primary).await?;
            exchange(cfg, primary, soa, &mut stream).await
        }
        r => r,
    }
}

/// Asks for the transfer over `stream` and reads it.
async fn exchange(
    cfg: &SecondaryZone,
    primary: SocketAddr,
    soa: Option<&Record>,
    stream: &mut Conn,
) -> Result<Pulled, XferError> {
    let held = soa.and_then(soa_serial);
    let id: u16 = rand::random();
    let qtype = if soa.is_some() { rtype::IXFR } else { rtype::AXFR };
    let (q, signer) = request(cfg, id, qtype, soa).map_err(|e| format!("transfer request: {e}"))?;
    let records = Stream::new(cfg.apex.clone(), soa.is_some(), cfg.limits);
    pull(stream, primary, &q, id, signer, records, held).await
}

/// Sends the transfer request `q` over `stream` and reads the response until it is
/// complete, each message within [`IO_TIMEOUT`].
async fn pull<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    primary: SocketAddr,
    q: &[u8],
    id: u16,
    mut signer: Option<Signer<'_>>,
    mut records: Stream,
    held: Option<u32>,
) -> Result<Pulled, XferError> {
    // The connection gone before the first answer (the request not sent, or no answer at
    // all): `Closed`, which a reused connection may retry on a new one.
    let gone = |e: std::io::Error| {
        let closed = matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        );
        let m = format!("{primary}: {e}");
        if closed { XferError::Closed(m) } else { XferError::Failed(m) }
    };
    tokio::time::timeout(IO_TIMEOUT, frame::write(stream, q))
        .await
        .map_err(|_| format!("{primary}: the request could not be sent for {}s", IO_TIMEOUT.as_secs()))?
        .map_err(gone)?;
    let mut first = true;
    loop {
        let msg = if first {
            first = false;
            tokio::time::timeout(IO_TIMEOUT, frame::read(stream))
                .await
                .map_err(|_| format!("{primary}: no data for {}s", IO_TIMEOUT.as_secs()))?
                .map_err(gone)?
        } else {
            read_message(stream, primary).await?
        };
        check_header(&msg, id, primary)?;
        verify(&mut signer, &msg, primary)?;
        let parsed = message::parse(&msg).ok_or_else(|| format!("{primary} sent a malformed message"))?;
        for r in parsed.answers {
            records.push(r).map_err(|e| match e {
                XferError::OverLimit(m) => XferError::OverLimit(format!("{primary}: {m}")),
                XferError::Failed(m) | XferError::Closed(m) => XferError::Failed(format!("{primary}: {m}")),
            })?;
        }
        if let Some(done) = records.end_of_message(held) {
            if signer.as_ref().is_some_and(|s| !s.settled()) {
                return Err(format!("{primary}: the last message of the transfer is not signed").into());
            }
            close(stream).await;
            return Ok(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(name: &str, t: u16, rdata: &[u8]) -> Record {
        Record {
            name: Name::parse(name, None).unwrap(),
            rtype: t,
            class: 1,
            ttl: 300,
            rdata: rdata.to_vec(),
            offset: 0,
        }
    }

    fn soa(serial: u32) -> Record {
        let mut rd = b"\x02ns\x07example\x00\x01h\x07example\x00".to_vec();
        for w in [serial, 3600, 600, 86400, 300] {
            rd.extend_from_slice(&w.to_be_bytes());
        }
        rr("example.", rtype::SOA, &rd)
    }

    fn a(name: &str, last: u8) -> Record {
        rr(name, rtype::A, &[192, 0, 2, last])
    }

    fn feed(s: &mut Stream, msgs: Vec<Vec<Record>>, held: Option<u32>) -> Option<Pulled> {
        for m in msgs {
            for r in m {
                s.push(r).unwrap();
            }
            if let Some(p) = s.end_of_message(held) {
                return Some(p);
            }
        }
        None
    }

    #[test]
    fn a_transfer_over_its_limits_is_refused_as_it_arrives() {
        let apex = Name::parse("example.", None).unwrap();
        let limits = TransferLimits { max_records: 3, ..TransferLimits::default() };
        let mut s = Stream::new(apex.clone(), false, limits);
        for r in [soa(1), a("a.example.", 1), a("b.example.", 2)] {
            s.push(r).unwrap();
        }
        assert!(matches!(s.push(a("c.example.", 3)), Err(XferError::OverLimit(_))));
        let limits = TransferLimits { max_bytes: 90, ..TransferLimits::default() };
        let mut s = Stream::new(apex, false, limits);
        s.push(soa(1)).unwrap();
        assert!(matches!(s.push(a("a-rather-long-name.example.", 1)), Err(XferError::OverLimit(_))));
    }

    #[test]
    fn axfr_ends_at_the_closing_soa_across_messages() {
        let apex = Name::parse("example.", None).unwrap();
        let mut s = Stream::new(apex.clone(), false, TransferLimits::default());
        let got = feed(&mut s, vec![vec![soa(5), a("a.example.", 1)], vec![a("b.example.", 2), soa(5)]], None);
        let Some(Pulled::Full(r)) = got else { panic!("{got:?}") };
        assert_eq!(r.len(), 3);
        let mut s = Stream::new(apex.clone(), false, TransferLimits::default());
        s.push(soa(5)).unwrap();
        s.push(a("a.example.", 1)).unwrap();
        assert!(s.push(soa(6)).is_err(), "closing serial must match");
        let mut s = Stream::new(apex, false, TransferLimits::default());
        assert!(s.push(a("a.example.", 1)).is_err(), "must start with the SOA");
    }

    #[test]
    fn ixfr_current_full_and_incremental_forms_are_told_apart() {
        let apex = Name::parse("example.", None).unwrap();
        let mut s = Stream::new(apex.clone(), true, TransferLimits::default());
        assert!(matches!(feed(&mut s, vec![vec![soa(5)]], Some(5)), Some(Pulled::Current)));
        let mut s = Stream::new(apex.clone(), true, TransferLimits::default());
        let got = feed(&mut s, vec![vec![soa(7), a("a.example.", 1), soa(7)]], Some(5));
        assert!(matches!(got, Some(Pulled::Full(ref r)) if r.len() == 2), "{got:?}");
        // 5 → 6 deletes a, adds b; 6 → 7 adds c.
        let mut s = Stream::new(apex, true, TransferLimits::default());
        let got = feed(
            &mut s,
            vec![
                vec![soa(7), soa(5), a("a.example.", 1), soa(6), a("b.example.", 2)],
                vec![soa(6), soa(7), a("c.example.", 3), soa(7)],
            ],
            Some(5),
        );
        let Some(Pulled::Incremental(d)) = got else { panic!("{got:?}") };
        assert_eq!(d.len(), 2);
        let mut records = Records::new();
        for r in [soa(5), a("a.example.", 1), a("x.example.", 9)] {
            records.insert(key_of(&r), (r.name.clone(), r.ttl));
        }
        apply(&mut records, 5, &d).unwrap();
        let mut names: Vec<String> = records.values().map(|(n, _)| n.to_text()).collect();
        names.sort();
        assert_eq!(names, ["b.example.", "c.example.", "example.", "x.example."]);
        assert_eq!(records.keys().filter(|k| k.1 == rtype::SOA).count(), 1);
        // A difference that does not start at our serial, or deletes what we lack, fails.
        assert!(apply(&mut records.clone(), 4, &d).is_err());
        // The zone built from the records gives the same records back.
        let cfg = SecondaryZone {
            apex: Name::parse("example.", None).unwrap(),
            primary: "127.0.0.1:53".into(),
            key: None,
            max_refresh: None,
            catalog: false,
            limits: TransferLimits::default(),
            tls: None,
        };
        records.insert(
            key_of(&rr("example.", rtype::NS, b"\x02ns\x07example\x00")),
            (Name::parse("example.", None).unwrap(), 300),
        );
        let zone = build(&cfg, &records).unwrap();
        assert_eq!(records_of(&zone), records);
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(serial::is_after(1, u32::MAX));
        assert!(!serial::is_after(u32::MAX, 1));
        assert!(!serial::is_after(5, 5));
    }
}
