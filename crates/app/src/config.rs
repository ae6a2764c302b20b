//! Configuration: a strict TOML [`Spec`] (unknown keys are errors) validated into a plain
//! [`Config`]. Precedence is file < environment (`R53DNS_*`) < command-line flags; the binary
//! applies the last two on top of the spec with [`Spec::merge`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use r53dns_server::{AnswerConfig, ServerConfig};

/// The configuration file as written. Every key is optional; defaults are documented in
/// `docs/config.md`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    /// `[server]`: listeners and answering.
    #[serde(default)]
    pub server: ServerSpec,
    /// `[zones]`: zone files.
    #[serde(default)]
    pub zones: ZonesSpec,
    /// `[log]`: logging.
    #[serde(default)]
    pub log: LogSpec,
    /// `[route53]`: Route53 as a zone source.
    #[serde(default)]
    pub route53: Route53Spec,
    /// `[http]`: metrics, health and admin endpoint.
    #[serde(default)]
    pub http: HttpSpec,
    /// `[tsig]`: shared keys for signed UPDATEs (and transfers).
    #[serde(default)]
    pub tsig: TsigSpec,
    /// `[update]`: who may change which Route53 zones by DNS UPDATE.
    #[serde(default)]
    pub update: UpdateSpec,
    /// `[[secondary]]`: zones pulled from a primary by zone transfer.
    #[serde(default)]
    pub secondary: Vec<SecondarySpec>,
    /// `[rrl]`: response rate limiting.
    #[serde(default)]
    pub rrl: RrlSpec,
    /// `[replication]`: offering this server's Route53 data to replicas.
    #[serde(default)]
    pub replication: ReplicationSpec,
    /// `[follow]`: serving what another r53dns serves (a replica).
    #[serde(default)]
    pub follow: FollowSpec,
    /// `[tls]`: DNS over TLS and over HTTPS.
    #[serde(default)]
    pub tls: TlsSpec,
    /// `[[transfer]]`: who may transfer particular zones (in place of `server.allow-transfer`
    /// and `server.transfer-keys` for them).
    #[serde(default)]
    pub transfer: Vec<TransferSpec>,
}

/// `[[transfer]]`: the zones listed may be transferred by clients of `allow` or with a
/// request signed by one of `keys` — and by nobody else.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TransferSpec {
    /// The zones.
    pub zones: Vec<String>,
    /// Client networks (`0.0.0.0/0` and `::/0` for everyone).
    #[serde(default)]
    pub allow: Vec<String>,
    /// TSIG keys (from `[tsig]`).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// `[tls]`: DNS over TLS (RFC 7858) and over HTTPS (RFC 8484), off unless addresses are
/// given; both need `cert` and `key`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsSpec {
    /// PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Addresses for DNS over TLS (`["0.0.0.0:853"]`).
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Addresses for DNS over HTTPS (`["0.0.0.0:443"]`).
    #[serde(default)]
    pub https_listen: Vec<SocketAddr>,
    /// UDP addresses for DNS over QUIC (`["0.0.0.0:853"]`).
    #[serde(default)]
    pub quic_listen: Vec<SocketAddr>,
    /// HTTP path of DNS over HTTPS (default `/dns-query`).
    pub https_path: Option<String>,
    /// Close a connection with no TLS handshake or request for this long (`"10s"`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl TlsSpec {
    fn validate(&self) -> anyhow::Result<r53dns_server::encrypted::EncryptedConfig> {
        let mut cfg = r53dns_server::encrypted::EncryptedConfig {
            dot: self.listen.clone(),
            doh: self.https_listen.clone(),
            doq: self.quic_listen.clone(),
            doh_path: self.https_path.clone().unwrap_or_else(|| "/dns-query".to_owned()),
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
            ..Default::default()
        };
        if !cfg.doh_path.starts_with('/') {
            bail!("tls.https-path: must start with /");
        }
        if cfg.enabled() {
            let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
                bail!("tls: listen, https-listen or quic-listen needs cert and key");
            };
            cfg.cert = cert.clone();
            cfg.key = key.clone();
        }
        Ok(cfg)
    }
}

/// `[replication]`: `GET /snapshot` on the HTTP endpoint, for replicas (`[follow]`). Off by
/// default: the snapshot holds private zones.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReplicationSpec {
    /// Offer snapshots to replicas.
    pub enabled: Option<bool>,
    /// Client networks allowed to fetch snapshots (empty: any network, then a token is
    /// required).
    #[serde(default)]
    pub allow: Vec<String>,
    /// File holding the bearer token replicas must send (one line).
    pub token_file: Option<PathBuf>,
    /// `s3://BUCKET/PREFIX`: also write every version there, for replicas that follow S3
    /// (and for other syncers: writes are conditional, so two syncers may run at once).
    pub s3: Option<String>,
}

/// `[follow]`: a replica of another r53dns. It serves exactly what its source serves (both
/// views, routed names evaluated per query, the source's serials) with no Route53 access.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FollowSpec {
    /// `http://HOST:PORT` of the source's HTTP endpoint.
    pub source: Option<String>,
    /// File holding the bearer token to send (one line).
    pub token_file: Option<PathBuf>,
    /// Largest manifest or zone object accepted (bytes; default 1 GiB).
    pub max_object_size: Option<u64>,
    /// How long the source may hold a poll open when nothing changed (default 30s).
    #[serde(default, with = "humantime_serde")]
    pub wait: Option<Duration>,
    /// Time between two polls of an S3 source (default 5s).
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
}

/// Validated `[replication]`.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// Who may fetch over HTTP, when `GET /snapshot` is served.
    pub access: Option<crate::replicate::Access>,
    /// Where versions are written in S3.
    pub s3: Option<String>,
    spec: ReplicationSpec,
}

/// Reads a one-line secret file; an empty one is an error.
fn read_token(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{what}: cannot read {}", path.display()))?;
    let token = text.trim().to_owned();
    if token.is_empty() {
        bail!("{what}: {} is empty", path.display());
    }
    Ok(token)
}

impl ReplicationSpec {
    fn validate(&self) -> anyhow::Result<Option<ReplicationConfig>> {
        if let Some(url) = &self.s3 {
            crate::replicate::s3::parse_url(url).map_err(|e| anyhow::anyhow!("replication.s3: {e}"))?;
        }
        if !self.enabled.unwrap_or(false) {
            if !self.allow.is_empty() || self.token_file.is_some() {
                bail!("replication: allow and token-file limit GET /snapshot; set replication.enabled (--replication)");
            }
            return Ok(self.s3.clone().map(|s3| ReplicationConfig { access: None, s3: Some(s3), spec: self.clone() }));
        }
        let networks = self
            .allow
            .iter()
            .map(|n| parse_network(n).context("replication.allow"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let token_sha256 = match &self.token_file {
            Some(p) => {
                use sha2::Digest as _;
                Some(sha2::Sha256::digest(read_token(p, "replication.token-file")?.as_bytes()).into())
            }
            None => None,
        };
        if networks.is_empty() && token_sha256.is_none() {
            bail!(
                "replication: the snapshot holds private zones; limit access with replication.allow (networks) and/or replication.token-file"
            );
        }
        Ok(Some(ReplicationConfig {
            access: Some(crate::replicate::Access { networks, token_sha256 }),
            s3: self.s3.clone(),
            spec: self.clone(),
        }))
    }
}

/// Default largest replication object: room for a zone of several million records.
pub const DEFAULT_FOLLOW_MAX_OBJECT: u64 = 1 << 30;

impl FollowSpec {
    fn validate(&self, route53: &Route53Spec) -> anyhow::Result<Option<crate::replicate::FollowConfig>> {
        let Some(source) = &self.source else {
            if self.token_file.is_some()
                || self.max_object_size.is_some()
                || self.wait.is_some()
                || self.poll_interval.is_some()
            {
                bail!("follow: source is not set (--follow URL)");
            }
            return Ok(None);
        };
        if source.starts_with("s3://") {
            crate::replicate::s3::parse_url(source).map_err(|e| anyhow::anyhow!("follow.source: {e}"))?;
            if self.token_file.is_some() {
                bail!("follow.token-file: an S3 source is read with AWS credentials, not a token");
            }
        } else {
            let uri: hyper::Uri = source.parse().with_context(|| {
                format!("follow.source: '{source}' is not a URL (http://HOST:PORT or s3://BUCKET/PREFIX)")
            })?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                bail!(
                    "follow.source: '{source}' is not http://HOST:PORT (the source's HTTP endpoint) or s3://BUCKET/PREFIX"
                );
            }
        }
        let poll_interval = self.poll_interval.unwrap_or(Duration::from_secs(5));
        if poll_interval < Duration::from_millis(100) {
            bail!("follow.poll-interval: at least 100ms");
        }
        if route53.enabled.unwrap_or(false) {
            bail!(
                "follow: a replica takes its data from its source, not from Route53; drop --route53 (or [route53] enabled)"
            );
        }
        if route53.events.is_some() {
            bail!("route53.events: a replica takes its data from its source; the event queue belongs to the syncer");
        }
        let wait = self.wait.unwrap_or(Duration::from_secs(30));
        if wait < Duration::from_secs(1) || wait > Duration::from_secs(60) {
            bail!("follow.wait: between 1s and 60s");
        }
        let token = match &self.token_file {
            Some(p) => Some(read_token(p, "follow.token-file")?),
            None => None,
        };
        Ok(Some(crate::replicate::FollowConfig {
            source: source.trim_end_matches('/').to_owned(),
            token,
            max_object_bytes: self.max_object_size.unwrap_or(DEFAULT_FOLLOW_MAX_OBJECT).max(1024),
            wait,
            poll_interval,
        }))
    }
}

/// `[rrl]`: response rate limiting of UDP answers (off unless `responses-per-second` is set).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RrlSpec {
    /// Positive answers, referrals and NODATA per second, per client network and name
    /// (0: off).
    pub responses_per_second: Option<u32>,
    /// NXDOMAIN answers per second per client network and zone (default: as responses).
    pub nxdomains_per_second: Option<u32>,
    /// Error answers per second per client network (default: as responses).
    pub errors_per_second: Option<u32>,
    /// Every n-th limited response is sent truncated instead of dropped (default 2; 0 drops
    /// all, 1 truncates all).
    pub slip: Option<u32>,
    /// IPv4 client network size (default 24).
    pub ipv4_prefix_length: Option<u8>,
    /// IPv6 client network size (default 56).
    pub ipv6_prefix_length: Option<u8>,
    /// Client networks never limited.
    #[serde(default)]
    pub exempt: Vec<String>,
    /// Accounts tracked at once (default 65536; fixed memory, 8 octets each).
    pub table_size: Option<usize>,
}

impl RrlSpec {
    fn validate(&self) -> anyhow::Result<r53dns_server::RrlConfig> {
        let d = r53dns_server::RrlConfig::default();
        let rps = self.responses_per_second.unwrap_or(0);
        let v4 = self.ipv4_prefix_length.unwrap_or(d.ipv4_prefix);
        let v6 = self.ipv6_prefix_length.unwrap_or(d.ipv6_prefix);
        if v4 > 32 || v6 > 128 {
            bail!("rrl: prefix lengths are at most 32 (IPv4) and 128 (IPv6)");
        }
        let exempt =
            self.exempt.iter().map(|n| parse_network(n).context("rrl.exempt")).collect::<anyhow::Result<Vec<_>>>()?;
        for (name, v) in [
            ("responses-per-second", Some(rps)),
            ("nxdomains-per-second", self.nxdomains_per_second),
            ("errors-per-second", self.errors_per_second),
        ] {
            if v.is_some_and(|v| v > 65_535) {
                bail!("rrl.{name}: at most 65535");
            }
        }
        Ok(r53dns_server::RrlConfig {
            responses_per_second: rps,
            nxdomains_per_second: self.nxdomains_per_second.unwrap_or(rps),
            errors_per_second: self.errors_per_second.unwrap_or(rps),
            slip: self.slip.unwrap_or(d.slip),
            ipv4_prefix: v4,
            ipv6_prefix: v6,
            exempt,
            table_size: self.table_size.unwrap_or(d.table_size),
        })
    }
}

/// `[[secondary]]`: zones followed from one primary.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecondarySpec {
    /// The primary, `ADDR` or `ADDR:PORT` (port 53 by default).
    pub primary: String,
    /// Zones to pull from it.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Catalog zones (RFC 9432) to pull from it: every zone a catalog lists is followed
    /// too, as members come and go.
    #[serde(default)]
    pub catalogs: Vec<String>,
    /// TSIG key (from `[tsig]`) signing the requests; the primary's answers and NOTIFYs must
    /// then be signed with it too.
    pub key: Option<String>,
    /// Longest time between two checks of the primary, whatever the SOA refresh says (for
    /// followers the primary cannot NOTIFY, e.g. pods behind a Service). Default: the SOA's.
    #[serde(default, with = "humantime_serde")]
    pub refresh: Option<Duration>,
    /// Most records one transfer may bring (default 1 000 000).
    pub max_records: Option<usize>,
    /// Most octets of names and RDATA one transfer may bring (default 268435456, 256 MiB).
    pub max_bytes: Option<u64>,
    /// Most distinct types at one name (default 100).
    pub max_types_per_name: Option<usize>,
    /// Longest one transfer may take (default 10m).
    #[serde(default, with = "humantime_serde")]
    pub transfer_timeout: Option<Duration>,
}

/// A primary as `ADDR:PORT` or `HOST:PORT` (port 53 by default); host names are resolved
/// when used.
fn primary_addr(s: &str) -> anyhow::Result<String> {
    if let Ok(a) = parse_server_addr(s) {
        return Ok(a.to_string());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().with_context(|| format!("secondary.primary: bad port in '{s}'"))?),
        None => (s, 53),
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !name_ok {
        bail!("secondary.primary: '{s}' is not ADDR, ADDR:PORT, HOST or HOST:PORT");
    }
    Ok(format!("{host}:{port}"))
}

/// Parses `ADDR`, `ADDR:PORT` or `[V6]:PORT`; port 53 by default.
pub fn parse_server_addr(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: std::net::IpAddr = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("'{s}' is not ADDR or ADDR:PORT"))?;
    Ok(SocketAddr::new(ip, 53))
}

/// `[tsig]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TsigSpec {
    /// `[[tsig.key]]`: keys written in the config.
    #[serde(default)]
    pub key: Vec<KeySpec>,
    /// Files in BIND `key "name" { algorithm ...; secret "..."; };` syntax (`tsig-keygen`
    /// output), each with one or more keys.
    #[serde(default)]
    pub key_files: Vec<PathBuf>,
}

/// `[[tsig.key]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeySpec {
    /// Key name, as clients send it (`dhcp-updater`).
    pub name: String,
    /// `hmac-sha256` (default), `hmac-sha512`, `hmac-sha384`, `hmac-sha224`, `hmac-sha1`,
    /// `hmac-md5`.
    pub algorithm: Option<String>,
    /// The secret, base64.
    pub secret: String,
}

/// `[update]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpdateSpec {
    /// `[[update.grant]]`: each allows some changes; a zone named by no grant takes none.
    #[serde(default)]
    pub grant: Vec<GrantSpec>,
    /// UPDATEs per second per TSIG key (default 10); beyond, REFUSED.
    pub rate_per_key: Option<f64>,
    /// UPDATEs a key may send at once before `rate-per-key` applies (default 20).
    pub burst_per_key: Option<u32>,
    /// UPDATEs per second per client network, /24 or /56 (default 10); beyond, REFUSED.
    pub rate_per_network: Option<f64>,
    /// UPDATEs a network may send at once before `rate-per-network` applies (default 20).
    pub burst_per_network: Option<u32>,
    /// Most of the Route53 API rate (`route53.rate-limit`) UPDATE's reads and writes may
    /// take, 0.01–1 (default 0.5); the rest is kept for sweeps.
    pub route53_share: Option<f64>,
}

/// `[[update.grant]]`, after BIND's `update-policy`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GrantSpec {
    /// The TSIG key that must sign the UPDATE. Without a key, unsigned UPDATEs from
    /// `networks` are allowed (then `networks` is required).
    pub key: Option<String>,
    /// Client networks the UPDATE must come from (empty: any, when a key is set).
    #[serde(default)]
    pub networks: Vec<String>,
    /// Zones (names or hosted-zone IDs) this grant covers.
    pub zones: Vec<String>,
    /// Owner names allowed: `host.example.com` exactly, or `*.dhcp.example.com` for any name
    /// below (empty: any name in the zone).
    #[serde(default)]
    pub names: Vec<String>,
    /// Record types allowed (empty: any type Route53 stores, except SOA and apex NS).
    #[serde(default)]
    pub types: Vec<String>,
}

/// `[http]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpSpec {
    /// `ADDR:PORT` for `/metrics`, `/healthz`, `/readyz` and admin, or `off`.
    pub listen: Option<String>,
    /// Enable `POST /sync` and `GET /zones` (default: only when `listen` is a loopback address).
    pub admin: Option<bool>,
    /// Label metrics with the names of private hosted zones too (default: they are left out
    /// of per-zone metrics, whose scrapes often leave the network).
    pub private_zone_metrics: Option<bool>,
}

/// Default HTTP listener: loopback only, the CoreDNS metrics port.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9153";

/// `[route53]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Route53Spec {
    /// Serve the hosted zones of the account(s).
    pub enabled: Option<bool>,
    /// Time between sweeps (`"60s"`; `"15m"` with `events`).
    #[serde(default, with = "humantime_serde")]
    pub refresh: Option<Duration>,
    /// SQS queue receiving Route53's change events from EventBridge: changes are read as
    /// they happen, and sweeps become the safety net.
    pub events: Option<crate::events::QueueUrl>,
    /// Time between sweeps while the event queue cannot be read (`"60s"`).
    #[serde(default, with = "humantime_serde")]
    pub fallback_refresh: Option<Duration>,
    /// API requests per second, all calls of the process together.
    pub rate_limit: Option<f64>,
    /// Zone names or IDs to serve (empty: all).
    #[serde(default)]
    pub include: Vec<String>,
    /// Zone names or IDs never to serve.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `all`, `public` or `private`.
    pub kind: Option<ZoneKind>,
    /// Serve only private zones associated with one of these VPC IDs (public zones unaffected).
    #[serde(default)]
    pub vpcs: Vec<String>,
    /// Clients that see private zones; others see public zones only. Empty: everyone.
    #[serde(default)]
    pub internal_networks: Vec<String>,
    /// Region latency routing treats as closest (`eu-west-1`).
    pub home_region: Option<String>,
    /// Location geolocation routing treats as the client's: `EU`, `EU-DE`, `NA-US-CA`.
    pub home_location: Option<String>,
    /// Resolver for alias targets that are AWS endpoints (default: first `nameserver` of
    /// /etc/resolv.conf).
    pub endpoint_resolver: Option<SocketAddr>,
    /// How often AWS endpoints are re-resolved.
    #[serde(default, with = "humantime_serde")]
    pub endpoint_refresh: Option<Duration>,
    /// Not ready (`/readyz`) when the last good sweep is older than this.
    #[serde(default, with = "humantime_serde")]
    pub max_staleness: Option<Duration>,
    /// Which wins when a zone file and Route53 define the same zone: `error`, `files`,
    /// `route53`.
    pub conflict: Option<Conflict>,
    /// Directory for the last good snapshot.
    pub state_dir: Option<PathBuf>,
    /// Accounts reached by assuming a role, in addition to the default credentials' own.
    #[serde(default)]
    pub account: Vec<AccountSpec>,
    /// Skip the default credentials' own account (use only `[[route53.account]]` roles).
    pub only_assumed_roles: Option<bool>,
    /// Answer private zones to every client even on a non-loopback listener without
    /// `internal-networks` (refused at start otherwise).
    pub private_zones_to_everyone: Option<bool>,
}

/// `[[route53.account]]`: another account, through an IAM role.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccountSpec {
    /// `arn:aws:iam::123456789012:role/r53dns-read`.
    pub role_arn: String,
    /// External ID the role's trust policy requires.
    pub external_id: Option<String>,
}

/// Which hosted zones to serve.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ZoneKind {
    /// Public and private.
    #[default]
    All,
    /// Public only.
    Public,
    /// Private only.
    Private,
}

/// Resolution of a zone defined both by a file and by Route53.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Conflict {
    /// Refuse to start; at run time keep the file's zone and log an error.
    #[default]
    Error,
    /// The zone file wins.
    Files,
    /// Route53 wins.
    Route53,
}

/// Time between full sweeps with `[route53] events` on, unless `refresh` says otherwise.
pub const DEFAULT_EVENTS_REFRESH: Duration = Duration::from_secs(15 * 60);

/// Validated `[route53]`.
#[derive(Debug, Clone)]
pub struct Route53Config {
    /// Time between sweeps.
    pub refresh: Duration,
    /// The event queue, if changes are read as they happen.
    pub events: Option<crate::events::QueueUrl>,
    /// Time between sweeps while the event queue cannot be read.
    pub fallback_refresh: Duration,
    /// API requests per second.
    pub rate_limit: f64,
    /// Names or IDs to include (empty: all).
    pub include: Vec<String>,
    /// Names or IDs to exclude.
    pub exclude: Vec<String>,
    /// Public/private filter.
    pub kind: ZoneKind,
    /// VPC filter for private zones.
    pub vpcs: Vec<String>,
    /// Internal networks (empty: everyone is internal).
    pub internal_networks: Vec<r53dns_zone::Prefix>,
    /// Routing context.
    pub routing: r53dns_zone::RoutingContext,
    /// Endpoint resolver.
    pub endpoint_resolver: Option<SocketAddr>,
    /// Endpoint refresh.
    pub endpoint_refresh: Duration,
    /// Max staleness for readiness.
    pub max_staleness: Option<Duration>,
    /// Conflict policy.
    pub conflict: Conflict,
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// Assumed roles.
    pub accounts: Vec<AccountSpec>,
    /// Whether the default credentials' own account is swept.
    pub own_account: bool,
    /// Private zones may be answered to everyone.
    pub private_zones_to_everyone: bool,
    /// Share of `rate_limit` DNS UPDATE may take (`update.route53-share`).
    pub update_share: f64,
}

/// Parses `10.0.0.0/8` or a bare address (a host prefix).
pub fn parse_network(s: &str) -> anyhow::Result<r53dns_zone::Prefix> {
    r53dns_zone::routing::parse_prefix(s).with_context(|| format!("'{s}' is not an address or ADDRESS/LENGTH network"))
}

fn parse_location(s: &str) -> anyhow::Result<r53dns_zone::GeoLocation> {
    let parts: Vec<&str> = s.split('-').collect();
    let continents = ["AF", "AN", "AS", "EU", "OC", "NA", "SA"];
    let mut g = r53dns_zone::GeoLocation::default();
    match parts.as_slice() {
        [c] if continents.contains(c) => g.continent = Some((*c).into()),
        [k] if k.len() == 2 => g.country = Some((*k).into()),
        [c, k] if continents.contains(c) => {
            g.continent = Some((*c).into());
            g.country = Some((*k).into());
        }
        [k, sub] if k.len() == 2 => {
            g.country = Some((*k).into());
            g.subdivision = Some((*sub).into());
        }
        [c, k, sub] => {
            g.continent = Some((*c).into());
            g.country = Some((*k).into());
            g.subdivision = Some((*sub).into());
        }
        _ => bail!(
            "route53.home-location: '{s}' is not CONTINENT, COUNTRY, CONTINENT-COUNTRY or CONTINENT-COUNTRY-SUBDIVISION"
        ),
    }
    Ok(g)
}

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerSpec {
    /// Addresses for UDP and TCP (`["127.0.0.1:53", "[::1]:53"]`).
    pub listen: Option<Vec<SocketAddr>>,
    /// UDP worker threads per address.
    pub workers: Option<usize>,
    /// Largest UDP response sent and advertised (512–4096).
    pub max_udp_payload: Option<u16>,
    /// Leave the zone's NS and their addresses out of positive answers.
    pub minimal_responses: Option<bool>,
    /// Answer to CHAOS `id.server`/`hostname.bind` (default: the host name; `""` hides it).
    pub identity: Option<String>,
    /// Answer to CHAOS `version.bind`/`version.server` (default: `r53dns VERSION`; `""`
    /// hides it).
    pub version: Option<String>,
    /// NSID (RFC 5001) sent to clients that ask: text, or `hex:` and hex digits (default:
    /// none).
    pub nsid: Option<String>,
    /// Close TCP connections idle this long (`"10s"`).
    #[serde(default, with = "humantime_serde")]
    pub tcp_idle_timeout: Option<Duration>,
    /// Most concurrent TCP connections.
    pub tcp_max_connections: Option<usize>,
    /// Client networks allowed to transfer zones (AXFR/IXFR over TCP); default nobody.
    #[serde(default)]
    pub allow_transfer: Vec<String>,
    /// TSIG keys (from `[tsig]`) whose signed transfer requests are allowed from any network.
    #[serde(default)]
    pub transfer_keys: Vec<String>,
    /// Secondaries to send NOTIFY to when a zone's serial changes (`ADDR:PORT`).
    #[serde(default)]
    pub notify: Vec<SocketAddr>,
    /// TSIG key (from `[tsig]`) signing the NOTIFYs (secondaries that follow with a key
    /// usually accept only signed NOTIFYs).
    pub notify_key: Option<String>,
    /// Client networks allowed to query (default: everyone); others get REFUSED.
    pub allow_query: Option<Vec<String>>,
    /// Most TCP connections from one client network (/24 IPv4, /56 IPv6). The former name
    /// `tcp-max-connections-per-client` is still read.
    #[serde(alias = "tcp-max-connections-per-client")]
    pub tcp_max_connections_per_network: Option<usize>,
    /// Time to receive the rest of a TCP message once its length arrived (`"2s"`).
    #[serde(default, with = "humantime_serde")]
    pub tcp_message_timeout: Option<Duration>,
    /// On SIGTERM, keep answering this long with `/readyz` failing, so load balancers stop
    /// sending first (`"5s"`; `"0s"` stops at once).
    #[serde(default, with = "humantime_serde")]
    pub drain: Option<Duration>,
    /// Publish a catalog zone (RFC 9432) of this name listing every served zone, for
    /// secondaries that follow whatever is served (`"catalog.invalid"`).
    pub catalog_zone: Option<String>,
    /// UNIX socket for `r53dns ctl` (mode 0660: the owner and group may use it).
    pub control_socket: Option<PathBuf>,
}

/// Default lame-duck time on SIGTERM: longer than a load balancer's readiness probe period
/// and a kube-proxy update, shorter than Kubernetes' 30 s grace period.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// `[zones]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ZonesSpec {
    /// Directories whose zone files are served (`*.zone`, `db.*`, `*.db`).
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Single zone files.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// A BIND `named.conf`: its zones, keys, transfer and NOTIFY lists, UPDATE permissions
    /// and views are taken over (docs/migrating-from-bind.md).
    pub bind_config: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogSpec {
    /// `tracing` filter (`"info"`, `"r53dns=debug"`).
    pub level: Option<String>,
    /// `human` or `json`.
    pub format: Option<LogFormat>,
    /// Share of queries to log (0.0–1.0; default 0: no per-query logs).
    pub query_log: Option<f64>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown log format '{s}' (human or json)")),
        }
    }
}

/// The validated configuration the process runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners and answering.
    pub server: ServerConfig,
    /// Zone directories.
    pub zone_dirs: Vec<PathBuf>,
    /// Zone files.
    pub zone_files: Vec<PathBuf>,
    /// A BIND `named.conf` read as a zone source.
    pub bind_config: Option<PathBuf>,
    /// What the `named.conf` says that only tunes BIND, with its place (printed by `check`).
    pub bind_ignored: Vec<String>,
    /// Clients that see the zones of the first of two `named.conf` views.
    pub view_networks: Vec<r53dns_zone::Prefix>,
    /// The `named.conf` as read at startup (a reload takes new zone lists only).
    pub bind_mapped: Option<crate::bindconf::Mapped>,
    /// Log filter.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Route53 source, when enabled.
    pub route53: Option<Route53Config>,
    /// HTTP endpoint address, unless off.
    pub http_listen: Option<SocketAddr>,
    /// Secondaries to NOTIFY.
    pub notify: Vec<SocketAddr>,
    /// The key signing NOTIFYs.
    pub notify_key: Option<r53dns_server::tsig::Key>,
    /// Admin routes enabled.
    pub http_admin: bool,
    /// Private zone names may label metrics.
    pub private_zone_metrics: bool,
    /// TSIG keys.
    pub tsig_keys: r53dns_server::tsig::KeyRing,
    /// UPDATE grants (empty: UPDATE is not accepted).
    pub update_grants: Vec<crate::update::Grant>,
    /// UPDATE rate limits.
    pub update_limits: crate::update::Limits,
    /// Secondary zones.
    pub secondaries: Vec<crate::secondary::SecondaryZone>,
    /// Lame-duck time on SIGTERM.
    pub drain: Duration,
    /// The `r53dns ctl` socket, if any.
    pub control_socket: Option<PathBuf>,
    /// The catalog zone published, if any.
    pub catalog_zone: Option<r53dns_zone::Name>,
    /// Things worth telling the operator that do not stop the server.
    pub warnings: Vec<String>,
    /// Snapshots offered to replicas, when enabled.
    pub replication: Option<ReplicationConfig>,
    /// The source followed, on a replica.
    pub follow: Option<crate::replicate::FollowConfig>,
    /// `[route53]` as given, for a replica (routing, views and state directory apply).
    pub replica_route53: Option<Route53Config>,
    follow_spec: FollowSpec,
    /// The `[tsig]` and `[update]` sections as given (printed back with secrets hidden).
    tsig_spec: TsigSpec,
    secondary_spec: Vec<SecondarySpec>,
    update_spec: UpdateSpec,
    transfer_spec: Vec<TransferSpec>,
}

/// Default DNS listener: loopback on an unprivileged port, safe on a laptop.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5353";

impl Spec {
    /// Reads a TOML file; unknown keys and bad values are errors naming the file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Overlays `other`'s set values on `self` (later sources win; lists replace).
    pub fn merge(mut self, other: Spec) -> Self {
        let s = &mut self.server;
        let o = other.server;
        s.listen = o.listen.or(s.listen.take());
        s.workers = o.workers.or(s.workers);
        s.max_udp_payload = o.max_udp_payload.or(s.max_udp_payload);
        s.minimal_responses = o.minimal_responses.or(s.minimal_responses);
        s.identity = o.identity.or(s.identity.take());
        s.version = o.version.or(s.version.take());
        s.nsid = o.nsid.or(s.nsid.take());
        s.tcp_idle_timeout = o.tcp_idle_timeout.or(s.tcp_idle_timeout);
        s.tcp_max_connections = o.tcp_max_connections.or(s.tcp_max_connections);
        if !o.allow_transfer.is_empty() {
            s.allow_transfer = o.allow_transfer;
        }
        if !o.transfer_keys.is_empty() {
            s.transfer_keys = o.transfer_keys;
        }
        if !o.notify.is_empty() {
            s.notify = o.notify;
        }
        s.notify_key = o.notify_key.or(s.notify_key.take());
        s.tcp_max_connections_per_network = o.tcp_max_connections_per_network.or(s.tcp_max_connections_per_network);
        s.allow_query = o.allow_query.or(s.allow_query.take());
        s.tcp_message_timeout = o.tcp_message_timeout.or(s.tcp_message_timeout);
        s.drain = o.drain.or(s.drain);
        s.catalog_zone = o.catalog_zone.or(s.catalog_zone.take());
        s.control_socket = o.control_socket.or(s.control_socket.take());
        let (rp, ro) = (&mut self.replication, other.replication);
        rp.enabled = ro.enabled.or(rp.enabled);
        rp.token_file = ro.token_file.or(rp.token_file.take());
        if !ro.allow.is_empty() {
            rp.allow = ro.allow;
        }
        let (f, fo) = (&mut self.follow, other.follow);
        f.source = fo.source.or(f.source.take());
        f.token_file = fo.token_file.or(f.token_file.take());
        f.max_object_size = fo.max_object_size.or(f.max_object_size);
        f.wait = fo.wait.or(f.wait);
        f.poll_interval = fo.poll_interval.or(f.poll_interval);
        rp.s3 = ro.s3.or(rp.s3.take());
        if !other.zones.dirs.is_empty() {
            self.zones.dirs = other.zones.dirs;
        }
        if !other.zones.files.is_empty() {
            self.zones.files = other.zones.files;
        }
        self.zones.bind_config = other.zones.bind_config.or(self.zones.bind_config.take());
        if !other.transfer.is_empty() {
            self.transfer = other.transfer;
        }
        self.log.level = other.log.level.or(self.log.level.take());
        self.log.format = other.log.format.or(self.log.format);
        self.log.query_log = other.log.query_log.or(self.log.query_log);
        let r = &mut self.route53;
        let o = other.route53;
        r.enabled = o.enabled.or(r.enabled);
        r.refresh = o.refresh.or(r.refresh);
        r.events = o.events.or(r.events.take());
        r.fallback_refresh = o.fallback_refresh.or(r.fallback_refresh);
        r.rate_limit = o.rate_limit.or(r.rate_limit);
        r.state_dir = o.state_dir.or(r.state_dir.take());
        r.home_region = o.home_region.or(r.home_region.take());
        r.home_location = o.home_location.or(r.home_location.take());
        r.endpoint_resolver = o.endpoint_resolver.or(r.endpoint_resolver);
        r.max_staleness = o.max_staleness.or(r.max_staleness);
        r.conflict = o.conflict.or(r.conflict);
        r.private_zones_to_everyone = o.private_zones_to_everyone.or(r.private_zones_to_everyone);
        self.http.listen = other.http.listen.or(self.http.listen.take());
        self.http.admin = other.http.admin.or(self.http.admin);
        self.http.private_zone_metrics = other.http.private_zone_metrics.or(self.http.private_zone_metrics);
        self.tsig.key.extend(other.tsig.key);
        self.tsig.key_files.extend(other.tsig.key_files);
        let (u, uo) = (&mut self.update, other.update);
        u.grant.extend(uo.grant);
        u.rate_per_key = uo.rate_per_key.or(u.rate_per_key);
        u.burst_per_key = uo.burst_per_key.or(u.burst_per_key);
        u.rate_per_network = uo.rate_per_network.or(u.rate_per_network);
        u.burst_per_network = uo.burst_per_network.or(u.burst_per_network);
        u.route53_share = uo.route53_share.or(u.route53_share);
        self.secondary.extend(other.secondary);
        if !o.include.is_empty() {
            r.include = o.include;
        }
        if !o.internal_networks.is_empty() {
            r.internal_networks = o.internal_networks;
        }
        let (t, to) = (&mut self.tls, other.tls);
        t.cert = to.cert.or(t.cert.take());
        t.key = to.key.or(t.key.take());
        t.https_path = to.https_path.or(t.https_path.take());
        t.timeout = to.timeout.or(t.timeout);
        if !to.listen.is_empty() {
            t.listen = to.listen;
        }
        if !to.https_listen.is_empty() {
            t.https_listen = to.https_listen;
        }
        if !to.quic_listen.is_empty() {
            t.quic_listen = to.quic_listen;
        }
        let (rr, ro) = (&mut self.rrl, other.rrl);
        rr.responses_per_second = ro.responses_per_second.or(rr.responses_per_second);
        rr.nxdomains_per_second = ro.nxdomains_per_second.or(rr.nxdomains_per_second);
        rr.errors_per_second = ro.errors_per_second.or(rr.errors_per_second);
        rr.slip = ro.slip.or(rr.slip);
        rr.ipv4_prefix_length = ro.ipv4_prefix_length.or(rr.ipv4_prefix_length);
        rr.ipv6_prefix_length = ro.ipv6_prefix_length.or(rr.ipv6_prefix_length);
        rr.table_size = ro.table_size.or(rr.table_size);
        if !ro.exempt.is_empty() {
            rr.exempt = ro.exempt;
        }
        self
    }

    /// Checks values and fills defaults.
    pub fn validate(mut self) -> anyhow::Result<Config> {
        // Printed back as given; what a named.conf adds is read from it again.
        let (tsig_spec, update_spec, secondary_spec, transfer_spec) =
            (self.tsig.clone(), self.update.clone(), self.secondary.clone(), self.transfer.clone());
        let mut bind_ignored = Vec::new();
        let mut bind_warnings = Vec::new();
        let mut view_networks = Vec::new();
        let mut bind_mapped = None;
        if let Some(path) = &self.zones.bind_config {
            let route53 = self.route53.enabled.unwrap_or(false);
            let conf = crate::bindconf::read(path).map_err(|e| anyhow::anyhow!("zones.bind-config: {e}"))?;
            let m = crate::bindconf::map(&conf, route53).map_err(|errs| {
                let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
                anyhow::anyhow!("zones.bind-config: {} cannot be taken over:\n{}", path.display(), lines.join("\n"))
            })?;
            bind_mapped = Some(m.clone());
            self.tsig.key.extend(m.keys);
            self.secondary.extend(m.secondaries);
            self.update.grant.extend(m.grants);
            self.transfer.extend(m.transfers);
            for a in m.notify {
                if !self.server.notify.contains(&a) {
                    self.server.notify.push(a);
                }
            }
            self.server.notify_key = self.server.notify_key.take().or(m.notify_key);
            if self.server.allow_query.is_none() {
                self.server.allow_query = m.allow_query;
            }
            view_networks = m
                .internal_networks
                .iter()
                .map(|n| parse_network(n).context("zones.bind-config: view match-clients"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            bind_warnings = m.not_carried.iter().map(|n| format!("named.conf: not taken over: {n}")).collect();
            bind_ignored = m.ignored;
        }
        let s = self.server;
        let defaults = ServerConfig::default();
        let listen = match s.listen {
            Some(l) if l.is_empty() => bail!("server.listen: at least one address is needed"),
            Some(l) => l,
            None => vec![DEFAULT_LISTEN.parse()?],
        };
        let workers = s.workers.unwrap_or(defaults.udp_workers);
        if workers == 0 || workers > 256 {
            bail!("server.workers: {workers} is out of range (1–256)");
        }
        let max_udp_payload = s.max_udp_payload.unwrap_or(defaults.answer.max_udp_payload);
        let nsid = match s.nsid.as_deref() {
            None | Some("") => Vec::new(),
            Some(h) if h.starts_with("hex:") => {
                r53dns_zone::rdata::decode_hex(&h[4..]).map_err(|e| anyhow::anyhow!("server.nsid: {e}"))?
            }
            Some(t) => t.as_bytes().to_vec(),
        };
        if nsid.len() > 512 {
            bail!("server.nsid: {} octets; at most 512", nsid.len());
        }
        for (what, v) in [("identity", &s.identity), ("version", &s.version)] {
            if v.as_ref().is_some_and(|v| v.len() > 1024) {
                bail!("server.{what}: longer than 1024 characters");
            }
        }
        if !(512..=4096).contains(&max_udp_payload) {
            bail!("server.max-udp-payload: {max_udp_payload} is out of range (512–4096)");
        }
        let tcp_max_connections = s.tcp_max_connections.unwrap_or(defaults.tcp_max_connections);
        if tcp_max_connections == 0 {
            bail!("server.tcp-max-connections: must be at least 1");
        }
        let tcp_idle_timeout = s.tcp_idle_timeout.unwrap_or(defaults.tcp_idle_timeout);
        if tcp_idle_timeout.is_zero() {
            bail!("server.tcp-idle-timeout: must be more than zero");
        }
        let http_listen = match self.http.listen.as_deref().unwrap_or(DEFAULT_HTTP_LISTEN) {
            "off" | "none" | "" => None,
            a => Some(a.parse::<SocketAddr>().with_context(|| format!("http.listen: '{a}' is not ADDR:PORT or off"))?),
        };
        let transfer_acl = s
            .allow_transfer
            .iter()
            .map(|n| parse_network(n).context("server.allow-transfer"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let query_acl = match &s.allow_query {
            Some(nets) => Some(
                nets.iter()
                    .map(|n| parse_network(n).context("server.allow-query"))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let query_log = self.log.query_log.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&query_log) {
            bail!("log.query-log: {query_log} is not a share between 0 and 1");
        }
        // Admin routes change state: never open to the network unless asked.
        let http_admin = self.http.admin.unwrap_or_else(|| http_listen.is_some_and(|a| a.ip().is_loopback()));
        let follow = self.follow.validate(&self.route53)?;
        let replication = self.replication.validate()?;
        let catalog_zone = match &s.catalog_zone {
            Some(z) => {
                let text = if z.ends_with('.') { z.clone() } else { format!("{z}.") };
                Some(
                    r53dns_zone::Name::parse(&text, None)
                        .map_err(|e| anyhow::anyhow!("server.catalog-zone: '{z}' is not a domain name: {e}"))?,
                )
            }
            None => None,
        };
        let mut warnings = bind_warnings;
        if self.route53.max_staleness.is_some() {
            warnings.push(
                "route53.max-staleness no longer makes a server unready: an AWS outage reaches every replica at once, and taking them all out of service would be a DNS outage; alert on r53dns_snapshot_age_seconds instead".to_owned(),
            );
        }
        let replica_route53 = match &follow {
            Some(_) => Some(Route53Spec { enabled: Some(true), ..self.route53.clone() }.validate()?),
            None => None,
        };
        let route53 = if self.route53.enabled.unwrap_or(false) { Some(self.route53.validate()?) } else { None };
        if replication.is_some() && route53.is_none() && follow.is_none() {
            bail!(
                "replication: there is no Route53 data to offer; enable [route53] (or --route53), or follow a source"
            );
        }
        // Private hosted zones are for internal clients; a listener others can reach, with no
        // internal networks named, would answer them to the world.
        if let Some(r) = &route53
            && r.kind != ZoneKind::Public
            && r.internal_networks.is_empty()
            && !r.private_zones_to_everyone
            && let Some(exposed) = listen.iter().find(|a| !a.ip().is_loopback())
        {
            bail!(
                "route53: private hosted zones would be answered to every client that reaches {exposed}; set route53.internal-networks (--internal-network CIDR) to the clients that may see them, route53.kind = \"public\", or route53.private-zones-to-everyone = true"
            );
        }
        if replication.as_ref().is_some_and(|r| r.s3.is_some()) && route53.is_none() {
            bail!("replication.s3: only a syncer ([route53] enabled) writes snapshots to S3");
        }
        let tsig_keys = crate::update::load_keys(&self.tsig)?;
        let update_grants = crate::update::grants(&self.update, &tsig_keys)?;
        let update_limits = crate::update::limits(&self.update)?;
        let route53 = route53.map(|r| Route53Config { update_share: update_limits.route53_share, ..r });
        let mut transfer_keys = Vec::new();
        for k in &s.transfer_keys {
            let Some(key) = tsig_keys.by_label(k) else {
                bail!("server.transfer-keys: key '{k}' is not defined in [tsig] (key or key-files)");
            };
            transfer_keys.push(key.label().to_ascii_lowercase());
        }
        if !update_grants.is_empty() && route53.is_none() {
            bail!("update.grant: DNS UPDATE writes to Route53; enable [route53] (or --route53)");
        }
        let notify_key = match &s.notify_key {
            Some(k) => Some(
                tsig_keys
                    .by_label(k)
                    .with_context(|| {
                        format!("server.notify-key: key '{k}' is not defined in [tsig] (key or key-files)")
                    })?
                    .clone(),
            ),
            None => None,
        };
        let mut secondaries: Vec<crate::secondary::SecondaryZone> = Vec::new();
        for sec in &self.secondary {
            let primary = primary_addr(&sec.primary)?;
            let key = match &sec.key {
                Some(k) => Some(
                    tsig_keys
                        .by_label(k)
                        .with_context(|| {
                            format!("secondary.key: key '{k}' is not defined in [tsig] (key or key-files)")
                        })?
                        .clone(),
                ),
                None => None,
            };
            if sec.zones.is_empty() && sec.catalogs.is_empty() {
                bail!("secondary: primary {primary} has no zones and no catalogs");
            }
            if sec.refresh.is_some_and(|r| r < Duration::from_secs(1)) {
                bail!("secondary.refresh: at least 1s");
            }
            let d = crate::secondary::TransferLimits::default();
            let limits = crate::secondary::TransferLimits {
                max_records: sec.max_records.unwrap_or(d.max_records),
                max_bytes: sec.max_bytes.unwrap_or(d.max_bytes),
                max_types_per_name: sec.max_types_per_name.unwrap_or(d.max_types_per_name),
                deadline: sec.transfer_timeout.unwrap_or(d.deadline),
            };
            if limits.max_records == 0 || limits.max_bytes == 0 || limits.max_types_per_name == 0 {
                bail!("secondary: max-records, max-bytes and max-types-per-name must be at least 1");
            }
            if limits.deadline < Duration::from_secs(1) {
                bail!("secondary.transfer-timeout: at least 1s");
            }
            let listed = sec.zones.iter().map(|z| (z, false)).chain(sec.catalogs.iter().map(|z| (z, true)));
            for (z, catalog) in listed {
                let what = if catalog { "secondary.catalogs" } else { "secondary.zones" };
                let text = if z.ends_with('.') { z.clone() } else { format!("{z}.") };
                let apex = r53dns_zone::Name::parse(&text, None)
                    .map_err(|e| anyhow::anyhow!("{what}: '{z}' is not a domain name: {e}"))?;
                if secondaries.iter().any(|s| s.apex.to_lowercase() == apex.to_lowercase()) {
                    bail!("{what}: zone {apex} is listed twice");
                }
                secondaries.push(crate::secondary::SecondaryZone {
                    apex,
                    primary: primary.clone(),
                    key: key.clone(),
                    max_refresh: sec.refresh,
                    catalog,
                    limits,
                });
            }
        }
        let mut zone_transfer = std::collections::HashMap::new();
        for t in &self.transfer {
            let acl = t
                .allow
                .iter()
                .map(|n| parse_network(n).context("transfer.allow"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut keys = Vec::new();
            for k in &t.keys {
                let Some(key) = tsig_keys.by_label(k) else {
                    bail!("transfer.keys: key '{k}' is not defined in [tsig] (key or key-files)");
                };
                keys.push(key.label().to_ascii_lowercase());
            }
            for z in &t.zones {
                let text = if z.ends_with('.') { z.clone() } else { format!("{z}.") };
                let apex = r53dns_zone::Name::parse(&text, None)
                    .map_err(|e| anyhow::anyhow!("transfer.zones: '{z}' is not a domain name: {e}"))?;
                let rule = r53dns_server::TransferRule { acl: acl.clone(), keys: keys.clone() };
                if zone_transfer.insert(apex.to_lowercase(), rule).is_some() {
                    bail!("transfer.zones: zone {apex} is listed twice");
                }
            }
        }
        if self.zones.dirs.is_empty()
            && self.zones.files.is_empty()
            && self.zones.bind_config.is_none()
            && route53.is_none()
            && secondaries.is_empty()
            && follow.is_none()
        {
            bail!(
                "no zones: give --zone-dir DIR, --zone FILE, --route53, --follow URL or --primary ADDR with --secondary-zone NAME (or [zones] / [route53] / [follow] / [[secondary]] in the config)"
            );
        }
        Ok(Config {
            server: ServerConfig {
                listen,
                udp_workers: workers,
                answer: AnswerConfig {
                    max_udp_payload,
                    minimal_responses: s.minimal_responses.unwrap_or(false),
                    reserve: 0,
                    identity: forever(s.identity.clone().unwrap_or_else(host_name)),
                    version: forever(
                        s.version.clone().unwrap_or_else(|| format!("r53dns {}", env!("CARGO_PKG_VERSION"))),
                    ),
                    nsid: forever_bytes(nsid),
                },
                tcp_idle_timeout,
                tcp_max_connections,
                query_log,
                transfer_acl,
                query_acl,
                tcp_max_connections_per_network: s
                    .tcp_max_connections_per_network
                    .unwrap_or(defaults.tcp_max_connections_per_network)
                    .max(1),
                tcp_message_timeout: s.tcp_message_timeout.unwrap_or(defaults.tcp_message_timeout),
                tsig_keys: tsig_keys.clone(),
                transfer_keys,
                zone_transfer,
                rrl: self.rrl.validate()?,
                encrypted: self.tls.validate()?,
            },
            zone_dirs: self.zones.dirs,
            zone_files: self.zones.files,
            bind_config: self.zones.bind_config,
            bind_ignored,
            view_networks,
            bind_mapped,
            log_level: self.log.level.unwrap_or_else(|| "info".to_owned()),
            log_format: self.log.format.unwrap_or_default(),
            route53,
            notify: s.notify.clone(),
            notify_key,
            http_listen,
            http_admin,
            private_zone_metrics: self.http.private_zone_metrics.unwrap_or(false),
            tsig_keys,
            update_grants,
            update_limits,
            secondaries,
            drain: s.drain.unwrap_or(DEFAULT_DRAIN),
            control_socket: s.control_socket.clone(),
            catalog_zone,
            warnings,
            replication,
            follow,
            replica_route53,
            follow_spec: self.follow,
            tsig_spec,
            update_spec,
            secondary_spec,
            transfer_spec,
        })
    }
}

impl Route53Config {
    fn to_spec(&self) -> Route53Spec {
        let g = &self.routing.home_location;
        let location: Vec<&str> =
            [&g.continent, &g.country, &g.subdivision].into_iter().filter_map(|p| p.as_deref()).collect();
        Route53Spec {
            enabled: Some(true),
            refresh: Some(self.refresh),
            events: self.events.clone(),
            fallback_refresh: Some(self.fallback_refresh),
            rate_limit: Some(self.rate_limit),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            kind: Some(self.kind),
            vpcs: self.vpcs.clone(),
            internal_networks: self.internal_networks.iter().map(|(a, l)| format!("{a}/{l}")).collect(),
            home_region: self.routing.home_region.as_deref().map(str::to_owned),
            home_location: (!location.is_empty()).then(|| location.join("-")),
            endpoint_resolver: self.endpoint_resolver,
            endpoint_refresh: Some(self.endpoint_refresh),
            max_staleness: self.max_staleness,
            conflict: Some(self.conflict),
            state_dir: self.state_dir.clone(),
            account: self.accounts.clone(),
            only_assumed_roles: Some(!self.own_account),
            private_zones_to_everyone: Some(self.private_zones_to_everyone),
        }
    }
}

impl Route53Spec {
    fn validate(self) -> anyhow::Result<Route53Config> {
        // With events, a sweep is the safety net for lost events, not the way changes arrive.
        let refresh = self.refresh.unwrap_or(if self.events.is_some() {
            DEFAULT_EVENTS_REFRESH
        } else {
            Duration::from_secs(60)
        });
        if refresh < Duration::from_millis(100) {
            bail!("route53.refresh: {refresh:?} is too short (at least 100ms)");
        }
        let rate_limit = self.rate_limit.unwrap_or(5.0);
        if !(0.01..=100.0).contains(&rate_limit) {
            bail!("route53.rate-limit: {rate_limit} is out of range (0.01–100 requests/s)");
        }
        let internal_networks = self
            .internal_networks
            .iter()
            .map(|n| parse_network(n).context("route53.internal-networks"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let home_location = match &self.home_location {
            Some(l) => parse_location(l)?,
            None => r53dns_zone::GeoLocation::default(),
        };
        for a in &self.account {
            if !a.role_arn.starts_with("arn:") {
                bail!("route53.account.role-arn: '{}' is not an ARN", a.role_arn);
            }
        }
        let own_account = !self.only_assumed_roles.unwrap_or(false);
        if !own_account && self.account.is_empty() {
            bail!("route53.only-assumed-roles is set but no [[route53.account]] is given");
        }
        let fallback_refresh = self.fallback_refresh.unwrap_or(Duration::from_secs(60));
        if fallback_refresh < Duration::from_millis(100) {
            bail!("route53.fallback-refresh: {fallback_refresh:?} is too short (at least 100ms)");
        }
        Ok(Route53Config {
            refresh,
            events: self.events,
            fallback_refresh,
            rate_limit,
            include: self.include,
            exclude: self.exclude,
            kind: self.kind.unwrap_or_default(),
            vpcs: self.vpcs,
            internal_networks,
            routing: r53dns_zone::RoutingContext { home_region: self.home_region.map(Into::into), home_location },
            endpoint_resolver: self.endpoint_resolver,
            endpoint_refresh: self.endpoint_refresh.unwrap_or(Duration::from_secs(60)),
            max_staleness: self.max_staleness,
            conflict: self.conflict.unwrap_or_default(),
            state_dir: self.state_dir,
            accounts: self.account,
            own_account,
            private_zones_to_everyone: self.private_zones_to_everyone.unwrap_or(false),
            update_share: crate::update::Limits::default().route53_share,
        })
    }
}

impl Config {
    /// The configuration as a TOML document (what `r53dns check` prints).
    pub fn to_toml(&self) -> String {
        let spec = Spec {
            server: ServerSpec {
                listen: Some(self.server.listen.clone()),
                workers: Some(self.server.udp_workers),
                max_udp_payload: Some(self.server.answer.max_udp_payload),
                minimal_responses: Some(self.server.answer.minimal_responses),
                identity: Some(self.server.answer.identity.to_owned()),
                version: Some(self.server.answer.version.to_owned()),
                nsid: (!self.server.answer.nsid.is_empty()).then(|| {
                    let hex: String = self.server.answer.nsid.iter().map(|b| format!("{b:02x}")).collect();
                    format!("hex:{hex}")
                }),
                tcp_idle_timeout: Some(self.server.tcp_idle_timeout),
                tcp_max_connections: Some(self.server.tcp_max_connections),
                allow_transfer: self.server.transfer_acl.iter().map(|(a, l)| format!("{a}/{l}")).collect(),
                transfer_keys: self.server.transfer_keys.clone(),
                notify: self.notify.clone(),
                notify_key: self.notify_key.as_ref().map(|k| k.label()),
                tcp_max_connections_per_network: Some(self.server.tcp_max_connections_per_network),
                allow_query: self
                    .server
                    .query_acl
                    .as_ref()
                    .map(|acl| acl.iter().map(|(a, l)| format!("{a}/{l}")).collect()),
                tcp_message_timeout: Some(self.server.tcp_message_timeout),
                drain: Some(self.drain),
                catalog_zone: self.catalog_zone.as_ref().map(|n| n.to_text()),
                control_socket: self.control_socket.clone(),
            },
            zones: ZonesSpec {
                dirs: self.zone_dirs.clone(),
                files: self.zone_files.clone(),
                bind_config: self.bind_config.clone(),
            },
            transfer: self.transfer_spec.clone(),
            log: LogSpec {
                level: Some(self.log_level.clone()),
                format: Some(self.log_format),
                query_log: Some(self.server.query_log),
            },
            route53: match (&self.route53, &self.replica_route53) {
                (Some(r), _) => r.to_spec(),
                (None, Some(r)) => Route53Spec { enabled: None, ..r.to_spec() },
                (None, None) => Route53Spec::default(),
            },
            http: HttpSpec {
                listen: Some(self.http_listen.map_or_else(|| "off".to_owned(), |a| a.to_string())),
                admin: Some(self.http_admin),
                private_zone_metrics: Some(self.private_zone_metrics),
            },
            tsig: TsigSpec {
                key: self.tsig_spec.key.iter().map(|k| KeySpec { secret: "(hidden)".into(), ..k.clone() }).collect(),
                key_files: self.tsig_spec.key_files.clone(),
            },
            update: self.update_spec.clone(),
            secondary: self.secondary_spec.clone(),
            rrl: RrlSpec {
                responses_per_second: Some(self.server.rrl.responses_per_second),
                nxdomains_per_second: Some(self.server.rrl.nxdomains_per_second),
                errors_per_second: Some(self.server.rrl.errors_per_second),
                slip: Some(self.server.rrl.slip),
                ipv4_prefix_length: Some(self.server.rrl.ipv4_prefix),
                ipv6_prefix_length: Some(self.server.rrl.ipv6_prefix),
                exempt: self.server.rrl.exempt.iter().map(|(a, l)| format!("{a}/{l}")).collect(),
                table_size: Some(self.server.rrl.table_size),
            },
            replication: self.replication.as_ref().map(|r| r.spec.clone()).unwrap_or_default(),
            follow: self.follow_spec.clone(),
            tls: {
                let e = &self.server.encrypted;
                TlsSpec {
                    cert: e.enabled().then(|| e.cert.clone()),
                    key: e.enabled().then(|| e.key.clone()),
                    listen: e.dot.clone(),
                    https_listen: e.doh.clone(),
                    quic_listen: e.doq.clone(),
                    https_path: Some(e.doh_path.clone()),
                    timeout: Some(e.timeout),
                }
            },
        };
        toml::to_string_pretty(&spec).unwrap_or_default()
    }
}

/// The host name, for the CHAOS identity (empty if the system has none).
fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

/// The answer path reads identity, version and NSID through `&'static` references, so its
/// configuration stays `Copy` and answering never touches a reference count. They are set
/// once per configuration load (a reload that changes them keeps a few bytes alive).
fn forever(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn forever_bytes(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<Spec>("[server]\nlisten = []\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn later_sources_win() {
        let file: Spec =
            toml::from_str("[server]\nworkers = 3\nlisten = [\"127.0.0.1:53\"]\n[zones]\ndirs = [\"a\"]\n").unwrap();
        let flags = Spec { server: ServerSpec { workers: Some(1), ..Default::default() }, ..Default::default() };
        let cfg = file.merge(flags).validate().unwrap();
        assert_eq!(cfg.server.udp_workers, 1);
        assert_eq!(cfg.server.listen, vec!["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(cfg.zone_dirs, vec![PathBuf::from("a")]);
    }

    #[test]
    fn bad_values_are_named() {
        let spec: Spec = toml::from_str("[server]\nmax-udp-payload = 100\n[zones]\ndirs=[\"a\"]\n").unwrap();
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("max-udp-payload"), "{e}");
        let e = Spec::default().validate().unwrap_err().to_string();
        assert!(e.contains("no zones"), "{e}");
    }

    #[test]
    fn primaries_are_addresses_or_host_names() {
        assert_eq!(primary_addr("10.0.0.1").unwrap(), "10.0.0.1:53");
        assert_eq!(primary_addr("[::1]:5300").unwrap(), "[::1]:5300");
        assert_eq!(primary_addr("syncer.dns.svc.cluster.local").unwrap(), "syncer.dns.svc.cluster.local:53");
        assert_eq!(primary_addr("syncer:5353").unwrap(), "syncer:5353");
        assert!(primary_addr("bad host").is_err());
        assert!(primary_addr("syncer:99999").is_err());
        let spec: Spec =
            toml::from_str("[[secondary]]\nprimary = \"10.0.0.1\"\nzones = [\"example.com\", \"Example.COM.\"]\n")
                .unwrap();
        assert!(spec.validate().unwrap_err().to_string().contains("listed twice"));
        let spec: Spec =
            toml::from_str("[[secondary]]\nprimary = \"10.0.0.1\"\nzones = [\"a.example\"]\nkey = \"nokey\"\n")
                .unwrap();
        assert!(spec.validate().unwrap_err().to_string().contains("nokey"));
    }

    #[test]
    fn printed_config_reads_back() {
        let spec: Spec =
            toml::from_str("[zones]\nfiles = [\"x.zone\"]\n[server]\ntcp-idle-timeout = \"3s\"\n").unwrap();
        let cfg = spec.validate().unwrap();
        let again: Spec = toml::from_str(&cfg.to_toml()).unwrap();
        let cfg2 = again.validate().unwrap();
        assert_eq!(cfg2.server.tcp_idle_timeout, Duration::from_secs(3));
        assert_eq!(cfg2.zone_files, cfg.zone_files);
    }
}
