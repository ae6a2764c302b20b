//! Configuration, each option defined once.
//!
//! A section of the TOML file is one struct (`ServerSpec` for `[server]`, …) that is at once
//! the file's schema (serde: kebab-case keys, unknown keys are errors) and, for the options
//! that have one, the command line (clap: `#[arg(long, env)]` on the field, the field's doc
//! being its help). Every value is optional, so the three layers — the file, the environment
//! (`R53DNS_*`), the flags — are each a [`Spec`] and [`Spec::merge`] lays one over another
//! without knowing the fields: a value set in a later layer replaces the earlier one, and a
//! list is one value (a list given in the environment or by flags replaces the file's, it is
//! not added to). [`Spec::validate`] then checks the values and gives the typed [`Config`]
//! the process runs with, errors naming the key (`section.key`).
//!
//! Adding an option: a field on its section's struct, `Option<T>` (or `Vec<T>` with
//! `#[serde(default, skip_serializing_if = "Vec::is_empty")]`), with its doc comment and
//! either `#[arg(skip)]` (a file-only key) or `#[arg(long, env = "R53DNS_…", value_name =
//! "…")]` (a key with a flag; add `id = "flag-name"` when another section has a field of the
//! same name, `value_delimiter = ','` for a list); its use in `validate`; its row in
//! `docs/config.md`. Merging, printing (`Config::to_toml`) and reading back need nothing
//! more, and the tests run the new flag through file, environment and command line by
//! themselves (a value name they have no sample for is one line in `tests::sample`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use r53dns_server::{AnswerConfig, ServerConfig};

/// The configuration: one layer of it (the file, the environment, the flags), or all of them
/// merged. Every key is optional; defaults are documented in `docs/config.md`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    /// `[server]`: listeners and answering.
    #[serde(default)]
    #[command(flatten, next_help_heading = "Server ([server])")]
    pub server: ServerSpec,
    /// `[zones]`: zone files.
    #[serde(default)]
    #[command(flatten, next_help_heading = "Zones ([zones])")]
    pub zones: ZonesSpec,
    /// `[log]`: logging.
    #[serde(default)]
    #[command(flatten, next_help_heading = "Logging ([log])")]
    pub log: LogSpec,
    /// `[route53]`: Route53 as a zone source.
    #[serde(default)]
    #[command(flatten, next_help_heading = "Route53 ([route53])")]
    pub route53: Route53Spec,
    /// `[http]`: metrics, health and admin endpoint.
    #[serde(default)]
    #[command(flatten, next_help_heading = "HTTP endpoint ([http])")]
    pub http: HttpSpec,
    /// `[tsig]`: shared keys for signed UPDATEs (and transfers).
    #[serde(default)]
    #[command(flatten, next_help_heading = "TSIG ([tsig])")]
    pub tsig: TsigSpec,
    /// `[update]`: who may change which Route53 zones by DNS UPDATE.
    #[serde(default)]
    #[arg(skip)]
    pub update: UpdateSpec,
    /// `[[secondary]]`: zones pulled from a primary by zone transfer (on the command line,
    /// one primary: [`PrimaryFlags`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(skip)]
    pub secondary: Vec<SecondarySpec>,
    /// `[rrl]`: response rate limiting.
    #[serde(default)]
    #[command(flatten, next_help_heading = "Response rate limiting ([rrl])")]
    pub rrl: RrlSpec,
    /// `[replication]`: offering this server's Route53 data to replicas.
    #[serde(default)]
    #[command(flatten, next_help_heading = "Replication ([replication])")]
    pub replication: ReplicationSpec,
    /// `[follow]`: serving what another r53dns serves (a replica).
    #[serde(default)]
    #[command(flatten, next_help_heading = "Replica ([follow])")]
    pub follow: FollowSpec,
    /// `[tls]`: DNS over TLS and over HTTPS.
    #[serde(default)]
    #[command(flatten, next_help_heading = "DNS over TLS, HTTPS and QUIC ([tls])")]
    pub tls: TlsSpec,
    /// `[[transfer]]`: who may transfer particular zones (in place of `server.allow-transfer`
    /// and `server.transfer-keys` for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(skip)]
    pub transfer: Vec<TransferSpec>,
    /// `[dnstap]`: query capture.
    #[serde(default)]
    #[command(flatten, next_help_heading = "Query capture ([dnstap])")]
    pub dnstap: DnstapSpec,
}

/// `[dnstap]`: queries and responses captured in the dnstap format and sent over Frame
/// Streams to a UNIX socket or TCP address (off unless `target` is set).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DnstapSpec {
    /// Send dnstap captures to this Frame Streams receiver: unix:PATH or tcp:ADDRESS:PORT.
    #[arg(id = "dnstap", long = "dnstap", value_name = "TARGET", env = "R53DNS_DNSTAP")]
    pub target: Option<String>,
    /// Capture one query in N with dnstap (default 1: every query).
    #[arg(long = "dnstap-sample", value_name = "N", env = "R53DNS_DNSTAP_SAMPLE")]
    pub sample: Option<u32>,
    /// Capture queries (default true).
    #[arg(skip)]
    pub queries: Option<bool>,
    /// Capture responses (default true).
    #[arg(skip)]
    pub responses: Option<bool>,
    /// Frames waiting for the writer at most (default 4096).
    #[arg(skip)]
    pub buffer: Option<usize>,
}

impl DnstapSpec {
    fn validate(&self) -> anyhow::Result<r53dns_server::DnstapConfig> {
        let d = r53dns_server::DnstapConfig::default();
        let target = match self.target.as_deref() {
            None | Some("" | "off") => None,
            Some(t) => Some(t.parse().map_err(|e: String| anyhow::anyhow!("dnstap.target: {e}"))?),
        };
        let sample = self.sample.unwrap_or(d.sample);
        if sample == 0 {
            bail!("dnstap.sample: at least 1 (one query in N)");
        }
        let buffer = self.buffer.unwrap_or(d.buffer);
        if !(64..=1 << 20).contains(&buffer) {
            bail!("dnstap.buffer: between 64 and 1048576 frames");
        }
        Ok(r53dns_server::DnstapConfig {
            target,
            sample,
            queries: self.queries.unwrap_or(d.queries),
            responses: self.responses.unwrap_or(d.responses),
            buffer,
        })
    }
}

/// The command line of `serve`, `check` and `export`: the configuration file, and every
/// option that has a flag (each also read from its `R53DNS_*` variable).
#[derive(Debug, Clone, Default, Args)]
pub struct Opts {
    /// TOML configuration file (see docs/config.md).
    #[arg(long, short = 'c', value_name = "FILE", env = "R53DNS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The options given by flags and environment.
    #[command(flatten)]
    pub spec: Spec,
    /// `--primary` and its companions.
    #[command(flatten, next_help_heading = "Secondary zones ([[secondary]])")]
    pub primary: PrimaryFlags,
}

impl Opts {
    /// The configuration file (if any) with the environment and flags laid over it.
    pub fn load(&self) -> anyhow::Result<Spec> {
        self.file()?.merge(self.flags())
    }

    /// The configuration the process runs with. An error about a key says where its value
    /// came from: the file (named), or the command line or environment.
    pub fn config(&self) -> anyhow::Result<Config> {
        let (file, flags) = (self.file()?, self.flags());
        file.clone().merge(flags.clone())?.validate().map_err(|e| {
            let message = e.to_string();
            let key = message.split_once(':').map_or(message.as_str(), |(k, _)| k);
            let known = |spec: &Spec| {
                key.split_once('.').is_some_and(|(section, name)| {
                    let table = toml::Table::try_from(spec).unwrap_or_default();
                    match table.get(section) {
                        Some(toml::Value::Table(t)) => t.contains_key(name),
                        Some(toml::Value::Array(a)) => {
                            a.iter().any(|t| t.as_table().is_some_and(|t| t.contains_key(name)))
                        }
                        _ => false,
                    }
                })
            };
            match &self.config {
                _ if known(&flags) => e.context("command line or environment"),
                Some(path) if known(&file) => e.context(path.display().to_string()),
                _ => e,
            }
        })
    }

    fn file(&self) -> anyhow::Result<Spec> {
        match &self.config {
            Some(path) => Spec::from_file(path),
            None => Ok(Spec::default()),
        }
    }

    fn flags(&self) -> Spec {
        let mut flags = self.spec.clone();
        flags.secondary.extend(self.primary.to_spec());
        flags
    }
}

/// One `[[secondary]]` from the command line: zones followed from `--primary`. Given, it
/// replaces the file's `[[secondary]]` list, as any list given later does.
#[derive(Debug, Clone, Default, Args)]
pub struct PrimaryFlags {
    /// Primary to pull the `--secondary-zone` and `--secondary-catalog` zones from by zone
    /// transfer: ADDR or ADDR:PORT (secondary.primary).
    #[arg(long, value_name = "ADDR[:PORT]", env = "R53DNS_PRIMARY")]
    pub primary: Option<String>,
    /// Zone to follow from `--primary` (repeatable; secondary.zones).
    #[arg(
        long = "secondary-zone",
        value_name = "NAME",
        env = "R53DNS_SECONDARY_ZONES",
        value_delimiter = ',',
        requires = "primary"
    )]
    pub secondary_zones: Vec<String>,
    /// Catalog zone (RFC 9432) to follow from `--primary`: every zone it lists is followed
    /// too (repeatable; secondary.catalogs).
    #[arg(
        long = "secondary-catalog",
        value_name = "NAME",
        env = "R53DNS_SECONDARY_CATALOGS",
        value_delimiter = ',',
        requires = "primary"
    )]
    pub secondary_catalogs: Vec<String>,
    /// TSIG key (by name, from the key files) signing the transfers from `--primary`
    /// (secondary.key).
    #[arg(long, value_name = "NAME", env = "R53DNS_PRIMARY_KEY", requires = "primary")]
    pub primary_key: Option<String>,
    /// Check `--primary` at least this often, whatever the SOA refresh says, e.g. 10s
    /// (secondary.refresh).
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        env = "R53DNS_PRIMARY_REFRESH",
        requires = "primary"
    )]
    pub primary_refresh: Option<Duration>,
    /// Transfer from `--primary` over TLS (XoT, RFC 9103; port 853 by default)
    /// (secondary.tls).
    #[arg(
        long = "primary-tls",
        value_name = "BOOL",
        env = "R53DNS_PRIMARY_TLS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        requires = "primary"
    )]
    pub primary_tls: Option<bool>,
    /// Name (or address) `--primary`'s certificate must carry (secondary.tls-name).
    #[arg(long, value_name = "NAME", env = "R53DNS_PRIMARY_TLS_NAME", requires = "primary")]
    pub primary_tls_name: Option<String>,
    /// PEM file of the trust anchors for `--primary`'s certificate (secondary.tls-ca;
    /// default: the system's).
    #[arg(long, value_name = "FILE", env = "R53DNS_PRIMARY_TLS_CA", requires = "primary")]
    pub primary_tls_ca: Option<PathBuf>,
}

impl PrimaryFlags {
    fn to_spec(&self) -> Option<SecondarySpec> {
        Some(SecondarySpec {
            primary: self.primary.clone()?,
            zones: self.secondary_zones.clone(),
            catalogs: self.secondary_catalogs.clone(),
            key: self.primary_key.clone(),
            refresh: self.primary_refresh,
            tls: self.primary_tls,
            tls_name: self.primary_tls_name.clone(),
            tls_ca: self.primary_tls_ca.clone(),
            ..Default::default()
        })
    }
}

/// `[[transfer]]`: the zones listed may be transferred by clients of `allow` or with a
/// request signed by one of `keys` — and by nobody else.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TransferSpec {
    /// The zones.
    pub zones: Vec<String>,
    /// Client networks (`0.0.0.0/0` and `::/0` for everyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// TSIG keys (from `[tsig]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// `[tls]`: DNS over TLS (RFC 7858) and over HTTPS (RFC 8484), off unless addresses are
/// given; both need `cert` and `key`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsSpec {
    /// PEM certificate chain, leaf first, for DNS over TLS, HTTPS and QUIC.
    #[arg(long = "tls-cert", value_name = "FILE", env = "R53DNS_TLS_CERT")]
    pub cert: Option<PathBuf>,
    /// PEM private key for DNS over TLS, HTTPS and QUIC.
    #[arg(id = "tls-key", long = "tls-key", value_name = "FILE", env = "R53DNS_TLS_KEY")]
    pub key: Option<PathBuf>,
    /// Address for DNS over TLS, e.g. 0.0.0.0:853 (repeatable; needs --tls-cert and --tls-key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(
        id = "tls-listen",
        long = "tls-listen",
        value_name = "ADDR:PORT",
        env = "R53DNS_TLS_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<SocketAddr>,
    /// Address for DNS over HTTPS, e.g. 0.0.0.0:443 (repeatable; needs --tls-cert and --tls-key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_HTTPS_LISTEN", value_delimiter = ',')]
    pub https_listen: Vec<SocketAddr>,
    /// UDP address for DNS over QUIC, e.g. 0.0.0.0:853 (repeatable; needs --tls-cert and --tls-
    /// key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_QUIC_LISTEN", value_delimiter = ',')]
    pub quic_listen: Vec<SocketAddr>,
    /// HTTP path of DNS over HTTPS (default `/dns-query`).
    #[arg(skip)]
    pub https_path: Option<String>,
    /// Close a connection with no TLS handshake or request for this long (`"10s"`).
    #[serde(default, with = "humantime_serde")]
    #[arg(skip)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReplicationSpec {
    /// Offer this server's Route53 data to replicas at GET /snapshot on the HTTP endpoint.
    #[arg(id = "replication", long = "replication", value_name = "BOOL", env = "R53DNS_REPLICATION", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enabled: Option<bool>,
    /// Client network allowed to fetch snapshots (repeatable; none: any network, then a token is
    /// required).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "replication-allow", value_name = "CIDR", env = "R53DNS_REPLICATION_ALLOW", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// File holding the bearer token replicas must send (one line).
    #[arg(
        id = "replication-token-file",
        long = "replication-token-file",
        value_name = "FILE",
        env = "R53DNS_REPLICATION_TOKEN_FILE"
    )]
    pub token_file: Option<PathBuf>,
    /// `s3://BUCKET/PREFIX`: also write every version there, for replicas that follow S3
    /// (and for other syncers: writes are conditional, so two syncers may run at once).
    #[arg(long = "replication-s3", value_name = "URL", env = "R53DNS_REPLICATION_S3")]
    pub s3: Option<String>,
}

/// `[follow]`: a replica of another r53dns. It serves exactly what its source serves (both
/// views, routed names evaluated per query, the source's serials) with no Route53 access.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FollowSpec {
    /// Be a replica: serve exactly what this source serves (http://HOST:PORT of its HTTP endpoint,
    /// or s3://BUCKET/PREFIX).
    #[arg(long = "follow", value_name = "URL", env = "R53DNS_FOLLOW")]
    pub source: Option<String>,
    /// File holding the bearer token to send to --follow (one line).
    #[arg(
        id = "follow-token-file",
        long = "follow-token-file",
        value_name = "FILE",
        env = "R53DNS_FOLLOW_TOKEN_FILE",
        requires = "source"
    )]
    pub token_file: Option<PathBuf>,
    /// Largest manifest or zone object accepted (bytes; default 1 GiB).
    #[arg(skip)]
    pub max_object_size: Option<u64>,
    /// How long the source may hold a poll open when nothing changed (default 30s).
    #[serde(default, with = "humantime_serde")]
    #[arg(skip)]
    pub wait: Option<Duration>,
    /// Time between two polls of an S3 source (default 5s).
    #[serde(default, with = "humantime_serde")]
    #[arg(skip)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RrlSpec {
    /// Response rate limiting: positive answers, referrals and NODATA per second, per client
    /// network and name (0: off).
    #[arg(long = "rrl", value_name = "N", env = "R53DNS_RRL")]
    pub responses_per_second: Option<u32>,
    /// NXDOMAIN answers per second per client network and zone (default: as responses).
    #[arg(skip)]
    pub nxdomains_per_second: Option<u32>,
    /// Error answers per second per client network (default: as responses).
    #[arg(skip)]
    pub errors_per_second: Option<u32>,
    /// Every n-th limited response is sent truncated instead of dropped (default 2; 0 drops
    /// all, 1 truncates all).
    #[arg(long = "rrl-slip", value_name = "N", env = "R53DNS_RRL_SLIP")]
    pub slip: Option<u32>,
    /// IPv4 client network size (default 24).
    #[arg(skip)]
    pub ipv4_prefix_length: Option<u8>,
    /// IPv6 client network size (default 56).
    #[arg(skip)]
    pub ipv6_prefix_length: Option<u8>,
    /// Client network never rate limited (repeatable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "rrl-exempt", value_name = "CIDR", env = "R53DNS_RRL_EXEMPT", value_delimiter = ',')]
    pub exempt: Vec<String>,
    /// Accounts tracked at once (default 65536; fixed memory, 8 octets each).
    #[arg(skip)]
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
    /// The primary, `ADDR` or `ADDR:PORT` (port 53 by default, 853 with `tls`).
    pub primary: String,
    /// Zones to pull from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Catalog zones (RFC 9432) to pull from it: every zone a catalog lists is followed
    /// too, as members come and go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    /// SOA checks and transfers over TLS 1.3 (XoT, RFC 9103), the primary's certificate
    /// checked (default false).
    pub tls: Option<bool>,
    /// The name the primary's certificate must carry (default: the primary's host name, or
    /// its address, then checked against the certificate's IP addresses).
    pub tls_name: Option<String>,
    /// PEM file of the trust anchors the primary's certificate must chain to (default: the
    /// system's).
    pub tls_ca: Option<PathBuf>,
}

impl SecondarySpec {
    /// One line saying what is followed, from where and how (as `check` prints the
    /// secondaries a `named.conf` gives).
    pub fn describe(&self) -> String {
        let mut zones = self.zones.clone();
        zones.extend(self.catalogs.iter().map(|c| format!("{c} (catalog)")));
        let how = if self.tls.unwrap_or(false) {
            format!(
                "over TLS, the certificate checked for {} against {}",
                self.tls_name.as_deref().unwrap_or("the primary's host name or address"),
                self.tls_ca
                    .as_ref()
                    .map_or_else(|| "the system's trust anchors".to_owned(), |p| p.display().to_string())
            )
        } else {
            "over TCP".to_owned()
        };
        let key = self.key.as_ref().map(|k| format!(", TSIG key {k}")).unwrap_or_default();
        format!("{} from {} {how}{key}", zones.join(", "), self.primary)
    }
}

/// A primary as `ADDR:PORT` or `HOST:PORT` (port `default_port` when none is given); host
/// names are resolved when used.
fn primary_addr(s: &str, default_port: u16) -> anyhow::Result<String> {
    if let Ok(a) = parse_server_addr(s) {
        let port = if s.parse::<SocketAddr>().is_ok() { a.port() } else { default_port };
        return Ok(SocketAddr::new(a.ip(), port).to_string());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().with_context(|| format!("secondary.primary: bad port in '{s}'"))?),
        None => (s, default_port),
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TsigSpec {
    /// `[[tsig.key]]`: keys written in the config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(skip)]
    pub key: Vec<KeySpec>,
    /// Files in BIND `key "name" { algorithm ...; secret "..."; };` syntax (`tsig-keygen`
    /// output), each with one or more keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "tsig-key-file", value_name = "FILE", env = "R53DNS_TSIG_KEY_FILES", value_delimiter = ',')]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Zones (names or hosted-zone IDs) this grant covers.
    pub zones: Vec<String>,
    /// Owner names allowed: `host.example.com` exactly, or `*.dhcp.example.com` for any name
    /// below (empty: any name in the zone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Record types allowed (empty: any type Route53 stores, except SOA and apex NS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
}

/// `[http]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpSpec {
    /// Address for /metrics, /healthz, /readyz and admin, or `off` (default 127.0.0.1:9153).
    #[arg(id = "http-listen", long = "http-listen", value_name = "ADDR:PORT|off", env = "R53DNS_HTTP_LISTEN")]
    pub listen: Option<String>,
    /// Enable the admin routes (POST /sync, GET /zones, /ctl/) even on a non-loopback address
    /// (default: only on a loopback `listen`).
    #[arg(long, value_name = "BOOL", env = "R53DNS_ADMIN", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub admin: Option<bool>,
    /// Label metrics with the names of private hosted zones too (default: they are left out
    /// of per-zone metrics, whose scrapes often leave the network).
    #[arg(skip)]
    pub private_zone_metrics: Option<bool>,
    /// Count queries per zone in the metrics, for up to N zones (default 0: off).
    #[arg(long, value_name = "N", env = "R53DNS_ZONE_QUERY_METRICS")]
    pub zone_query_metrics: Option<usize>,
}

/// Default HTTP listener: loopback only, the CoreDNS metrics port.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9153";

/// `[route53]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Route53Spec {
    /// Serve the account's Route53 hosted zones (credentials from the standard AWS chain).
    #[arg(id = "route53", long = "route53", value_name = "BOOL", env = "R53DNS_ROUTE53", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enabled: Option<bool>,
    /// Time between Route53 sweeps, e.g. 2s, 1m (default 60s; 15m with `events`).
    #[serde(default, with = "humantime_serde")]
    #[arg(long, env = "R53DNS_REFRESH", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub refresh: Option<Duration>,
    /// SQS queue receiving Route53's change events from EventBridge: changes are read as
    /// they happen, and sweeps become the safety net.
    #[arg(long, value_name = "QUEUE-URL", env = "R53DNS_EVENTS")]
    pub events: Option<crate::events::QueueUrl>,
    /// Time between sweeps while the event queue cannot be read (`"60s"`).
    #[serde(default, with = "humantime_serde")]
    #[arg(skip)]
    pub fallback_refresh: Option<Duration>,
    /// Route53 API requests per second for the whole process (default 5).
    #[arg(long, value_name = "N", env = "R53DNS_RATE_LIMIT")]
    pub rate_limit: Option<f64>,
    /// Zone names or IDs to serve (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(skip)]
    pub include: Vec<String>,
    /// Zone names or IDs never to serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(skip)]
    pub exclude: Vec<String>,
    /// `all`, `public` or `private`.
    #[arg(skip)]
    pub kind: Option<ZoneKind>,
    /// Serve only private zones associated with one of these VPC IDs (public zones unaffected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(skip)]
    pub vpcs: Vec<String>,
    /// Clients that see private zones (repeatable); others see public zones only. None: everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "internal-network", value_name = "CIDR", env = "R53DNS_INTERNAL_NETWORKS", value_delimiter = ',')]
    pub internal_networks: Vec<String>,
    /// Region latency routing treats as closest (`eu-west-1`).
    #[arg(long, value_name = "REGION", env = "R53DNS_HOME_REGION")]
    pub home_region: Option<String>,
    /// Location geolocation routing treats as the client's: `EU`, `EU-DE`, `NA-US-CA`.
    #[arg(skip)]
    pub home_location: Option<String>,
    /// Resolver for alias targets that are AWS endpoints (default: first `nameserver` of
    /// /etc/resolv.conf).
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_ENDPOINT_RESOLVER")]
    pub endpoint_resolver: Option<SocketAddr>,
    /// How often AWS endpoints are re-resolved.
    #[serde(default, with = "humantime_serde")]
    #[arg(skip)]
    pub endpoint_refresh: Option<Duration>,
    /// Not ready (`/readyz`) when the last good sweep is older than this.
    #[serde(default, with = "humantime_serde")]
    #[arg(skip)]
    pub max_staleness: Option<Duration>,
    /// Which wins when a zone file and Route53 define the same zone: `error`, `files`,
    /// `route53`.
    #[arg(skip)]
    pub conflict: Option<Conflict>,
    /// Keep the last good Route53 snapshot here and serve it at once on start.
    #[arg(long, value_name = "DIR", env = "R53DNS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Accounts reached by assuming a role, in addition to the default credentials' own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(skip)]
    pub account: Vec<AccountSpec>,
    /// Skip the default credentials' own account (use only `[[route53.account]]` roles).
    #[arg(skip)]
    pub only_assumed_roles: Option<bool>,
    /// Answer private zones to every client even on a non-loopback listener without
    /// `internal-networks` (refused at start otherwise).
    #[arg(skip)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerSpec {
    /// Address for DNS over UDP and TCP (repeatable; default 127.0.0.1:5353).
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_LISTEN", value_delimiter = ',')]
    pub listen: Option<Vec<SocketAddr>>,
    /// UDP worker threads per address (default: number of CPUs).
    #[arg(long, value_name = "N", env = "R53DNS_WORKERS")]
    pub workers: Option<usize>,
    /// Largest UDP response, also advertised in EDNS (512–4096; default 1232).
    #[arg(long, value_name = "N", env = "R53DNS_MAX_UDP_PAYLOAD")]
    pub max_udp_payload: Option<u16>,
    /// Leave the zone's NS and their addresses out of positive answers.
    #[arg(long, value_name = "BOOL", env = "R53DNS_MINIMAL_RESPONSES", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub minimal_responses: Option<bool>,
    /// Answer to CHAOS `id.server`/`hostname.bind` (default: the host name; `""` hides it).
    #[arg(long, value_name = "TEXT", env = "R53DNS_IDENTITY")]
    pub identity: Option<String>,
    /// Answer to CHAOS `version.bind`/`version.server` (default: `r53dns VERSION`; `""`
    /// hides it).
    #[arg(long = "server-version", value_name = "TEXT", env = "R53DNS_SERVER_VERSION")]
    pub version: Option<String>,
    /// NSID (RFC 5001) sent to clients that ask: text, or `hex:` and hex digits (default:
    /// none).
    #[arg(long, value_name = "TEXT", env = "R53DNS_NSID")]
    pub nsid: Option<String>,
    /// Octets of memory for the response cache (default 16 MiB; 0 turns it off).
    #[arg(long, value_name = "N", env = "R53DNS_RESPONSE_CACHE_SIZE")]
    pub response_cache_size: Option<usize>,
    /// Close TCP connections idle this long (default 10s).
    #[serde(default, with = "humantime_serde")]
    #[arg(long, env = "R53DNS_TCP_IDLE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub tcp_idle_timeout: Option<Duration>,
    /// Most concurrent TCP connections.
    #[arg(skip)]
    pub tcp_max_connections: Option<usize>,
    /// Client network allowed to transfer zones by AXFR/IXFR (repeatable; default nobody).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long, value_name = "CIDR", env = "R53DNS_ALLOW_TRANSFER", value_delimiter = ',')]
    pub allow_transfer: Vec<String>,
    /// TSIG key (from `[tsig]` or the key files) whose signed AXFR/IXFR requests are allowed from
    /// any network (repeatable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "transfer-key", value_name = "NAME", env = "R53DNS_TRANSFER_KEYS", value_delimiter = ',')]
    pub transfer_keys: Vec<String>,
    /// Secondary to NOTIFY when a zone's serial changes (repeatable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_NOTIFY", value_delimiter = ',')]
    pub notify: Vec<SocketAddr>,
    /// TSIG key (from `[tsig]`) signing the NOTIFYs (secondaries that follow with a key
    /// usually accept only signed NOTIFYs).
    #[arg(long, value_name = "NAME", env = "R53DNS_NOTIFY_KEY")]
    pub notify_key: Option<String>,
    /// Client network allowed to query (repeatable; default everyone; others get REFUSED).
    #[arg(long, value_name = "CIDR", env = "R53DNS_ALLOW_QUERY", value_delimiter = ',')]
    pub allow_query: Option<Vec<String>>,
    /// Most TCP connections from one client network (/24 IPv4, /56 IPv6). The former name
    /// `tcp-max-connections-per-client` is still read.
    #[serde(alias = "tcp-max-connections-per-client")]
    #[arg(skip)]
    pub tcp_max_connections_per_network: Option<usize>,
    /// Time to receive the rest of a TCP message once its length arrived (`"2s"`).
    #[serde(default, with = "humantime_serde")]
    #[arg(skip)]
    pub tcp_message_timeout: Option<Duration>,
    /// On SIGTERM, keep answering this long while /readyz fails, so load balancers stop sending
    /// first (default 5s; 0s: stop at once).
    #[serde(default, with = "humantime_serde")]
    #[arg(long, env = "R53DNS_DRAIN", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub drain: Option<Duration>,
    /// Publish a catalog zone (RFC 9432) of this name listing every served zone, for
    /// secondaries that follow whatever is served (`"catalog.invalid"`).
    #[arg(long, value_name = "NAME", env = "R53DNS_CATALOG_ZONE")]
    pub catalog_zone: Option<String>,
    /// UNIX socket for `r53dns ctl`, mode 0660 (the packaged service uses
    /// /run/r53dns/control.sock).
    #[arg(long, value_name = "PATH", env = "R53DNS_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,
}

/// Default lame-duck time on SIGTERM: longer than a load balancer's readiness probe period
/// and a kube-proxy update, shorter than Kubernetes' 30 s grace period.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// `[zones]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ZonesSpec {
    /// Serve every zone file in DIR: *.zone, db.* and *.db (origin from $ORIGIN, else the file
    /// name: example.com.zone, db.example.com, example.com.db; repeatable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "zone-dir", value_name = "DIR", env = "R53DNS_ZONE_DIR", value_delimiter = ',')]
    pub dirs: Vec<PathBuf>,
    /// Serve one zone file (repeatable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "zone", value_name = "FILE", env = "R53DNS_ZONE", value_delimiter = ',')]
    pub files: Vec<PathBuf>,
    /// Take zones, keys, transfer and NOTIFY lists, UPDATE permissions and views from a BIND
    /// named.conf (see docs/migrating-from-bind.md; `check` lists what is not taken over).
    #[arg(long, value_name = "FILE", env = "R53DNS_BIND_CONFIG")]
    pub bind_config: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogSpec {
    /// Log filter, e.g. `info` or `r53dns=debug` (default info).
    #[arg(long = "log-level", value_name = "FILTER", env = "R53DNS_LOG")]
    pub level: Option<String>,
    /// Log format: human (default) or json.
    #[arg(long = "log-format", value_name = "FORMAT", env = "R53DNS_LOG_FORMAT")]
    pub format: Option<LogFormat>,
    /// Share of queries to log (0.0–1.0; default 0: no per-query logs).
    #[arg(long, value_name = "SHARE", env = "R53DNS_QUERY_LOG")]
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
    pub notify_key: Option<r53dns_proto::tsig::Key>,
    /// Admin routes enabled.
    pub http_admin: bool,
    /// Private zone names may label metrics.
    pub private_zone_metrics: bool,
    /// TSIG keys.
    pub tsig_keys: r53dns_proto::tsig::KeyRing,
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
    /// The configuration as given (all layers merged), printed back over the values in
    /// effect (secrets hidden).
    given: Spec,
}

/// Default DNS listener: loopback on an unprivileged port, safe on a laptop.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5353";

impl Spec {
    /// Reads a TOML file; unknown keys and bad values are errors naming the file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// `other` laid over `self`: every value `other` sets replaces `self`'s, whatever the
    /// section or key; a list is one value, replaced whole (lists of tables too).
    pub fn merge(self, other: Spec) -> anyhow::Result<Spec> {
        let mut base = toml::Table::try_from(&self).context("configuration")?;
        overlay(&mut base, toml::Table::try_from(&other).context("configuration")?);
        toml::Value::Table(base).try_into().context("configuration")
    }

    /// Checks values and fills defaults.
    pub fn validate(mut self) -> anyhow::Result<Config> {
        // Printed back as given; what a named.conf adds is read from it again.
        let given = self.clone();
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
            let tls = sec.tls.unwrap_or(false);
            let primary = primary_addr(&sec.primary, if tls { 853 } else { 53 })?;
            if !tls && (sec.tls_name.is_some() || sec.tls_ca.is_some()) {
                bail!("secondary.tls: tls-name and tls-ca are for a primary followed over TLS; set tls = true");
            }
            let xot = if tls {
                // The primary's host name, or its address (checked against the certificate's
                // IP addresses).
                let host = match primary.parse::<SocketAddr>() {
                    Ok(a) => a.ip().to_string(),
                    Err(_) => primary.rsplit_once(':').map_or(primary.as_str(), |(h, _)| h).to_owned(),
                };
                let (key, name) = match &sec.tls_name {
                    Some(n) => ("secondary.tls-name", n.as_str()),
                    None => ("secondary.tls", host.as_str()),
                };
                let xot = crate::secondary::Xot::new(name, sec.tls_ca.as_deref()).map_err(|e| match e {
                    crate::secondary::XotError::BadName(_) => anyhow::anyhow!("{key}: {e}"),
                    _ if sec.tls_ca.is_some() => anyhow::anyhow!("secondary.tls-ca: {e}"),
                    _ => anyhow::anyhow!("secondary.tls: {e}"),
                })?;
                Some(xot)
            } else {
                None
            };
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
                    tls: xot.clone(),
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
                cache: s
                    .response_cache_size
                    .map_or(defaults.cache, |budget| r53dns_server::CacheConfig { enabled: budget > 0, budget }),
                encrypted: self.tls.validate()?,
                dnstap: self.dnstap.validate()?,
                zone_queries: self.http.zone_query_metrics.unwrap_or(0),
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
            given,
        })
    }
}

impl Route53Config {
    /// The values in effect, for `Config::to_toml`.
    #[allow(clippy::needless_update)]
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
            ..Default::default()
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
    /// The configuration as a TOML document (what `r53dns check` prints): every value given,
    /// over the values in effect where this knows them (defaults filled in); secrets hidden.
    /// Read back, it gives the same configuration. A key missing here is printed as given
    /// (hence `..Default::default()` everywhere: a new key needs no line here).
    #[allow(clippy::needless_update)]
    pub fn to_toml(&self) -> String {
        let effective = Spec {
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
                response_cache_size: Some(if self.server.cache.enabled { self.server.cache.budget } else { 0 }),
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
                ..Default::default()
            },
            zones: ZonesSpec {
                dirs: self.zone_dirs.clone(),
                files: self.zone_files.clone(),
                bind_config: self.bind_config.clone(),
                ..Default::default()
            },
            log: LogSpec {
                level: Some(self.log_level.clone()),
                format: Some(self.log_format),
                query_log: Some(self.server.query_log),
                ..Default::default()
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
                ..Default::default()
            },
            rrl: RrlSpec {
                responses_per_second: Some(self.server.rrl.responses_per_second),
                nxdomains_per_second: Some(self.server.rrl.nxdomains_per_second),
                errors_per_second: Some(self.server.rrl.errors_per_second),
                slip: Some(self.server.rrl.slip),
                ipv4_prefix_length: Some(self.server.rrl.ipv4_prefix),
                ipv6_prefix_length: Some(self.server.rrl.ipv6_prefix),
                exempt: self.server.rrl.exempt.iter().map(|(a, l)| format!("{a}/{l}")).collect(),
                table_size: Some(self.server.rrl.table_size),
                ..Default::default()
            },
            replication: self.replication.as_ref().map(|r| r.spec.clone()).unwrap_or_default(),
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
                    ..Default::default()
                }
            },
            ..Default::default()
        };
        let mut spec = effective.clone().merge(self.given.clone()).unwrap_or(effective);
        for k in &mut spec.tsig.key {
            k.secret = "(hidden)".into();
        }
        toml::to_string_pretty(&spec).unwrap_or_default()
    }
}

/// Lays `top` over `base`: tables are merged key by key, any other value (lists included)
/// replaces what `base` had.
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => overlay(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
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
        let cfg = file.merge(flags).unwrap().validate().unwrap();
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
        assert_eq!(primary_addr("10.0.0.1", 53).unwrap(), "10.0.0.1:53");
        assert_eq!(primary_addr("10.0.0.1", 853).unwrap(), "10.0.0.1:853");
        assert_eq!(primary_addr("[::1]:5300", 853).unwrap(), "[::1]:5300");
        assert_eq!(primary_addr("::1", 853).unwrap(), "[::1]:853");
        assert_eq!(primary_addr("syncer.dns.svc.cluster.local", 53).unwrap(), "syncer.dns.svc.cluster.local:53");
        assert_eq!(primary_addr("syncer", 853).unwrap(), "syncer:853");
        assert_eq!(primary_addr("syncer:5353", 853).unwrap(), "syncer:5353");
        assert!(primary_addr("bad host", 53).is_err());
        assert!(primary_addr("syncer:99999", 53).is_err());
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
    fn tls_primaries_are_checked_at_startup() {
        let spec = |extra: &str| -> Spec {
            toml::from_str(&format!("[[secondary]]\nprimary = \"10.0.0.1\"\nzones = [\"a.example\"]\n{extra}")).unwrap()
        };
        let e = spec("tls = true\ntls-ca = \"/nonexistent/ca.pem\"\n").validate().unwrap_err().to_string();
        assert!(
            e.contains("secondary.tls-ca") && e.contains("/nonexistent/ca.pem") && e.contains("No such file"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = spec(&format!("tls = true\ntls-ca = \"{}\"\n", empty.display())).validate().unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = spec("tls-name = \"p.example\"\n").validate().unwrap_err().to_string();
        assert!(e.contains("set tls = true"), "{e}");
        let e = spec("tls = true\ntls-name = \"not a name!\"\n").validate().unwrap_err().to_string();
        assert!(e.contains("secondary.tls-name"), "{e}");
    }

    /// The command line of `serve` and `check`, as the binary flattens it.
    #[derive(Debug, clap::Parser)]
    #[command(name = "r53dns")]
    struct Cli {
        #[command(flatten)]
        opts: Opts,
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    /// Every option with a flag: its flag, its environment variable, its value's name and
    /// whether it is a list.
    fn flagged() -> Vec<(String, String, String, bool)> {
        use clap::CommandFactory as _;
        let cmd = Cli::command();
        cmd.get_arguments()
            .filter(|a| !["config", "help"].contains(&a.get_id().as_str()))
            .map(|a| {
                let long = a.get_long().expect("every option has a long flag");
                let env = a.get_env().unwrap_or_else(|| panic!("--{long} has no R53DNS_* variable"));
                let name = a.get_value_names().and_then(|n| n.first()).map(ToString::to_string);
                let name = name.unwrap_or_else(|| panic!("--{long} has no value_name"));
                let list = matches!(a.get_action(), clap::ArgAction::Append);
                (long.to_owned(), env.to_string_lossy().into_owned(), name, list)
            })
            .collect()
    }

    /// A value for an option of this value name, different for each `layer` (1, 2, 3) and,
    /// in lists, each `item`. A new value name needs a line here.
    fn sample(value_name: &str, layer: u8, item: u8) -> String {
        let n = layer * 10 + item;
        match value_name {
            "ADDR:PORT" | "ADDR:PORT|off" => format!("127.0.0.{n}:53"),
            "ADDR[:PORT]" => format!("10.0.0.{n}"),
            "CIDR" => format!("10.{n}.0.0/16"),
            "FILE" | "DIR" | "PATH" => format!("/layer/{n}"),
            "NAME" => format!("n{n}.example"),
            "TEXT" | "FILTER" | "REGION" => format!("t{n}"),
            "URL" => format!("http://h{n}.example:80"),
            "TARGET" => format!("unix:/layer/{n}"),
            "QUEUE-URL" => format!("https://sqs.us-east-1.amazonaws.com/{n}/q"),
            "DURATION" => format!("{n}s"),
            "N" | "SHARE" => n.to_string(),
            "BOOL" => (layer == 2).to_string(),
            "FORMAT" => if layer == 2 { "json" } else { "human" }.to_owned(),
            other => panic!("no sample value for value_name {other}: add one to config::tests::sample"),
        }
    }

    /// Runs `layered_child` in a process of its own (the environment is a process's), with
    /// `argv` and exactly the variables `env`; the merged configuration it printed.
    fn layered(argv: &[String], env: &[(String, String)]) -> toml::Table {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["config::tests::layered_child", "--exact", "--nocapture", "--test-threads=1"])
            .env_clear()
            .env("R53DNS_TEST_LAYERED_ARGV", serde_json::to_string(argv).unwrap())
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let spec = stdout
            .split_once("--- spec\n")
            .and_then(|(_, rest)| rest.split_once("--- end\n"))
            .map(|(spec, _)| spec)
            .unwrap_or_else(|| panic!("{argv:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        toml::from_str(spec).unwrap()
    }

    /// Not a test on its own: `layered` runs it with the command line in
    /// `R53DNS_TEST_LAYERED_ARGV`, and it prints the configuration the layers give.
    #[test]
    fn layered_child() {
        use clap::Parser as _;
        let Ok(argv) = std::env::var("R53DNS_TEST_LAYERED_ARGV") else { return };
        let argv: Vec<String> = serde_json::from_str(&argv).unwrap();
        let cli = Cli::try_parse_from(std::iter::once("r53dns".to_owned()).chain(argv)).unwrap();
        let spec = cli.opts.load().unwrap();
        println!("--- spec\n{}--- end", toml::to_string(&spec).unwrap());
    }

    /// Every leaf of a configuration (`section.key`, lists of tables by index) and its value.
    fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
        for (k, v) in table {
            let path = format!("{prefix}{k}");
            match v {
                toml::Value::Table(t) => leaves(t, &format!("{path}."), out),
                toml::Value::Array(a) if a.iter().all(toml::Value::is_table) && !a.is_empty() => {
                    for (i, t) in a.iter().enumerate() {
                        leaves(t.as_table().unwrap(), &format!("{path}.{i}."), out);
                    }
                }
                v => out.push((path, v.clone())),
            }
        }
    }

    #[test]
    fn every_option_layers_file_then_environment_then_flags() {
        let options = flagged();
        let flags = |layer: u8| -> Vec<String> {
            let mut argv = Vec::new();
            for (long, _, name, list) in &options {
                for item in 1..=if *list { 2 } else { 1 } {
                    argv.push(format!("--{long}={}", sample(name, layer, item)));
                }
            }
            argv
        };
        let env = |layer: u8| -> Vec<(String, String)> {
            let value = |name: &str, list: bool| match list {
                true => format!("{},{}", sample(name, layer, 1), sample(name, layer, 2)),
                false => sample(name, layer, 1),
            };
            options.iter().map(|(_, env, name, list)| (env.clone(), value(name, *list))).collect()
        };
        // What each layer alone gives, every option set.
        let [a, b, c] = [1, 2, 3].map(|layer| layered(&flags(layer), &[]));
        let mut set = [&a, &b, &c].map(|t| {
            let mut out = Vec::new();
            leaves(t, "", &mut out);
            out
        });
        assert_eq!(set[0].len(), options.len(), "every option sets one key of its own: {:?}", set[0]);
        for (x, y) in set[0].iter().zip(&set[1]).chain(set[1].iter().zip(&set[2])) {
            assert_eq!(x.0, y.0);
            assert_ne!(x.1, y.1, "{}: the layers' values must differ for the test to mean anything", x.0);
        }
        set.iter_mut().for_each(Vec::clear);
        assert_eq!(b, layered(&[], &env(2)), "the environment alone");

        let dir = std::env::temp_dir().join(format!("r53dns-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("file.toml");
        std::fs::write(&file, toml::to_string(&a).unwrap()).unwrap();
        let config = vec![format!("--config={}", file.display())];
        let file_only = layered(&config, &[]);
        let over_file = layered(&config, &env(2));
        let over_env = layered(&[config.clone(), flags(3)].concat(), &env(2));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(file_only, a, "every option read back from the file");
        // Lists too: each layer's list replaces the one before, never adds to it.
        assert_eq!(over_file, b, "every option of the environment over the file");
        assert_eq!(over_env, c, "every flag over the environment and the file");
    }

    #[test]
    fn a_bad_value_is_named_with_where_it_came_from() {
        let dir = std::env::temp_dir().join(format!("r53dns-origin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("r53dns.toml");
        std::fs::write(&file, "[server]\nworkers = 0\n[zones]\nfiles = [\"a.zone\"]\n").unwrap();
        let mut opts = Opts { config: Some(file.clone()), ..Default::default() };
        let e = format!("{:#}", opts.config().unwrap_err());
        assert_eq!(e, format!("{}: server.workers: 0 is out of range (1–256)", file.display()));
        opts.spec.server.workers = Some(300);
        let e = format!("{:#}", opts.config().unwrap_err());
        assert_eq!(e, "command line or environment: server.workers: 300 is out of range (1–256)");
        opts.spec.server.workers = Some(2);
        assert_eq!(opts.config().unwrap().server.udp_workers, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_flag_is_documented() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md")).unwrap();
        for (long, env, _, _) in flagged() {
            assert!(docs.contains(&format!("`--{long}")), "docs/config.md does not name --{long}");
            assert!(docs.contains(&env), "docs/config.md does not name {env}");
        }
    }

    #[test]
    fn a_full_printed_config_reads_back_to_itself() {
        let dir = std::env::temp_dir().join(format!("r53dns-printed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("keys.conf");
        std::fs::write(&keys, "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0LWZvci10ZXN0cy1vbmx5\"; };\n")
            .unwrap();
        let text = format!(
            r#"
[server]
listen = ["127.0.0.1:5300", "[::1]:5300"]
workers = 3
max-udp-payload = 1400
minimal-responses = true
identity = "ns1"
version = ""
nsid = "hex:6e73"
tcp-idle-timeout = "7s"
tcp-max-connections = 99
tcp-max-connections-per-client = 9
tcp-message-timeout = "3s"
allow-transfer = ["10.0.0.0/8"]
transfer-keys = ["k"]
notify = ["127.0.0.1:5301"]
notify-key = "k"
allow-query = []
drain = "1s"
catalog-zone = "catalog.invalid"
control-socket = "/run/x.sock"
[zones]
files = ["a.zone"]
dirs = ["zones"]
[log]
level = "debug"
format = "json"
query-log = 0.5
[route53]
enabled = true
refresh = "30s"
rate-limit = 2.0
include = ["a.example"]
exclude = ["b.example"]
kind = "private"
vpcs = ["vpc-1"]
internal-networks = ["10.0.0.0/8"]
home-region = "eu-west-1"
home-location = "EU-DE"
endpoint-refresh = "2m"
conflict = "files"
state-dir = "/var/lib/r53dns"
[http]
listen = "127.0.0.1:9999"
admin = false
private-zone-metrics = true
[tsig]
key-files = ["{}"]
[rrl]
responses-per-second = 5
errors-per-second = 2
slip = 3
exempt = ["192.0.2.0/24"]
table-size = 1024
[replication]
enabled = true
allow = ["10.0.0.0/8"]
[tls]
cert = "c.pem"
key = "k.pem"
listen = ["127.0.0.1:853"]
https-path = "/q"
timeout = "4s"
[[secondary]]
primary = "10.0.0.1"
zones = ["s.example"]
max-records = 10
[[transfer]]
zones = ["a.example"]
allow = ["10.1.0.0/16"]
"#,
            keys.display()
        );
        let spec = toml::from_str::<Spec>(&text).unwrap();
        // Merging knows every key: nothing is lost over or under an empty layer.
        assert_eq!(Spec::default().merge(spec.clone()).unwrap(), spec);
        assert_eq!(spec.clone().merge(Spec::default()).unwrap(), spec);
        let cfg = spec.validate().unwrap();
        let printed = cfg.to_toml();
        let again = toml::from_str::<Spec>(&printed).unwrap().validate().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(again.to_toml(), printed);
        assert_eq!(again.server.tcp_max_connections_per_network, 9);
        assert_eq!(again.server.query_acl, Some(vec![]), "an empty allow-query is nobody, not everyone");
        assert_eq!(again.server.rrl.nxdomains_per_second, 5);
        assert_eq!(again.route53.as_ref().map(|r| r.kind), Some(ZoneKind::Private));
        assert_eq!(again.secondaries.len(), 1);
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
