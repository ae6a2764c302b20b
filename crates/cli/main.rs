//! The `r53dns` command: `serve`, `check`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// jemalloc: zones are built from many small allocations and replaced whole on every change;
/// it returns the old zone's memory to the system and fragments less than the system
/// allocator, which keeps resident memory near one copy of the data. Its background thread
/// does the returning (after ten seconds) even when nothing else allocates — and the
/// serving path allocates nothing — so the garbage of building a zone does not stay
/// resident.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use r53dns_app::config::{LogFormat, ServerSpec, Spec, ZonesSpec};
use r53dns_app::{StartupError, check, run_with_reread};

/// Authoritative DNS server for Route53 hosted zones and RFC 1035 zone files.
#[derive(Debug, Parser)]
#[command(name = "r53dns", version = version_line(), about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve zones over UDP and TCP until SIGTERM/SIGINT; SIGHUP reloads zone files.
    Serve(Opts),
    /// Validate the configuration and every zone, print the resolved configuration, exit.
    Check(Opts),
    /// Control a running server, as rndc or knotc do; every verb answers JSON. status: version,
    /// uptime, readiness, zones. reload, reload ZONE: re-read zone files (and named.conf's zone
    /// list). zone-status ZONE: source, serial, records, views. retransfer ZONE: transfer a
    /// secondary zone whole. notify ZONE: send NOTIFY to the configured targets. refresh ZONE:
    /// check a secondary's primary, or sweep Route53. stats: every metric. sync: sweep
    /// Route53. zones: every zone served. Exit status 1 when the server refuses or fails.
    Ctl {
        /// The server's control socket (server.control-socket); the default when --http is
        /// not given.
        #[arg(long, value_name = "PATH", env = "R53DNS_CTL_SOCKET", default_value = DEFAULT_CONTROL_SOCKET)]
        socket: PathBuf,
        /// Talk to the HTTP endpoint at this address instead (its admin routes must be on).
        #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_CTL_HTTP")]
        http: Option<SocketAddr>,
        /// What to do.
        #[arg(value_parser = CTL_VERBS)]
        verb: String,
        /// The zone: required by zone-status, retransfer, notify and refresh; reload takes one.
        zone: Option<String>,
    },
    /// Make a Route53 hosted zone hold what a zone file holds: print the plan, then apply it
    /// in batches within Route53's limits (apex SOA and NS are never touched).
    Push {
        /// The zone file.
        #[arg(long, value_name = "FILE")]
        zone: PathBuf,
        /// The zone's name, when neither $ORIGIN nor the file name gives it.
        #[arg(long, value_name = "NAME")]
        origin: Option<String>,
        /// The hosted zone to push into (default: the one hosted zone with the zone's name).
        #[arg(long, value_name = "ID", conflicts_with = "create")]
        hosted_zone: Option<String>,
        /// Create the hosted zone first.
        #[arg(long)]
        create: bool,
        /// A private zone associated with this VPC (VPC-ID:REGION, repeatable).
        #[arg(long, value_name = "VPC-ID:REGION")]
        private: Vec<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Route53 requests per second (the account allows about 5 in all).
        #[arg(long, value_name = "N", default_value_t = 2.0)]
        rate: f64,
    },
    /// Ask two servers the same questions and report every difference in their answers.
    ///
    /// Exit status 0: none, 1: some, 2: bad input. For the cut-over from BIND: see
    /// docs/migrating-from-bind.md.
    Compare(CompareArgs),
    /// Print the manual page (roff), as packages install it: `r53dns manual > r53dns.1`.
    #[command(hide = true)]
    Manual,
    /// Write every zone (zone files and Route53) as BIND-loadable master files, then exit.
    Export {
        /// Directory to write `<zone>.zone` files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        opts: Opts,
    },
}

/// Options of `compare`.
#[derive(Debug, Args)]
struct CompareArgs {
    /// The reference server (BIND, say): ADDR or ADDR:PORT (port 53 if none).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = r53dns_app::compare::parse_addr)]
    against: SocketAddr,
    /// The server being checked (r53dns): ADDR or ADDR:PORT (port 53 if none).
    #[arg(
        long,
        value_name = "ADDR[:PORT]",
        default_value = "127.0.0.1:53",
        value_parser = r53dns_app::compare::parse_addr
    )]
    server: SocketAddr,
    /// Questions in dnsperf's format, `NAME [TYPE]` a line (default: standard input; `-` too).
    #[arg(long, value_name = "FILE", conflicts_with = "pcap")]
    queries: Option<PathBuf>,
    /// The questions of the DNS queries in a pcap or pcapng capture (UDP to --pcap-port).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// The server port whose queries --pcap takes.
    #[arg(long, value_name = "PORT", default_value_t = 53, requires = "pcap")]
    pcap_port: u16,
    /// Questions per second (each goes to both servers).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,
    /// Ask over TCP only (default: UDP, and TCP when an answer is truncated).
    #[arg(long)]
    tcp: bool,
    /// Leave SOA serials out of the comparison (zones whose serials differ, as Route53's).
    #[arg(long)]
    ignore_serial: bool,
    /// One JSON object per difference on stdout; the summary goes to stderr.
    #[arg(long)]
    json: bool,
}

/// Options shared by `serve` and `check`. Each may also come from the environment
/// (`R53DNS_*`), which a flag overrides and which overrides the config file.
#[derive(Debug, Clone, Args)]
struct Opts {
    /// TOML configuration file (see docs/config.md).
    #[arg(long, short = 'c', env = "R53DNS_CONFIG")]
    config: Option<PathBuf>,
    /// Serve every zone file in DIR: *.zone, db.* and *.db (origin from $ORIGIN, else the file
    /// name: example.com.zone, db.example.com, example.com.db).
    #[arg(long = "zone-dir", value_name = "DIR", env = "R53DNS_ZONE_DIR", value_delimiter = ',')]
    zone_dirs: Vec<PathBuf>,
    /// UNIX socket for `r53dns ctl` (mode 0660; the packaged service uses
    /// /run/r53dns/control.sock).
    #[arg(long, value_name = "PATH", env = "R53DNS_CONTROL_SOCKET")]
    control_socket: Option<PathBuf>,
    /// Serve one zone file (repeatable).
    #[arg(long = "zone", value_name = "FILE", env = "R53DNS_ZONE", value_delimiter = ',')]
    zones: Vec<PathBuf>,
    /// Take zones, keys, transfer and NOTIFY lists, UPDATE permissions and views from a BIND
    /// named.conf (see docs/migrating-from-bind.md; `check` lists what is not taken over).
    #[arg(long = "bind-config", value_name = "FILE", env = "R53DNS_BIND_CONFIG")]
    bind_config: Option<PathBuf>,
    /// Address for DNS over UDP and TCP (repeatable; default 127.0.0.1:5353).
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_LISTEN", value_delimiter = ',')]
    listen: Vec<SocketAddr>,
    /// UDP worker threads per address (default: number of CPUs).
    #[arg(long, env = "R53DNS_WORKERS")]
    workers: Option<usize>,
    /// Largest UDP response, also advertised in EDNS (default 1232).
    #[arg(long, env = "R53DNS_MAX_UDP_PAYLOAD")]
    max_udp_payload: Option<u16>,
    /// Leave the zone's NS and their addresses out of positive answers.
    #[arg(long, env = "R53DNS_MINIMAL_RESPONSES")]
    minimal_responses: bool,
    /// Answer to CHAOS id.server/hostname.bind (default: the host name; "" hides it).
    #[arg(long, value_name = "TEXT", env = "R53DNS_IDENTITY")]
    identity: Option<String>,
    /// Answer to CHAOS version.bind/version.server (default: r53dns VERSION; "" hides it).
    #[arg(long = "server-version", value_name = "TEXT", env = "R53DNS_SERVER_VERSION")]
    server_version: Option<String>,
    /// NSID (RFC 5001) for clients that ask: text, or hex:DIGITS (default: none).
    #[arg(long, value_name = "TEXT", env = "R53DNS_NSID")]
    nsid: Option<String>,
    /// Client network allowed to query (repeatable; default everyone; others get REFUSED).
    #[arg(long = "allow-query", value_name = "CIDR", env = "R53DNS_ALLOW_QUERY", value_delimiter = ',')]
    allow_query: Vec<String>,
    /// Client network allowed to transfer zones by AXFR/IXFR (repeatable; default nobody).
    #[arg(long = "allow-transfer", value_name = "CIDR", env = "R53DNS_ALLOW_TRANSFER", value_delimiter = ',')]
    allow_transfer: Vec<String>,
    /// Secondary to NOTIFY when a zone's serial changes (repeatable).
    #[arg(long = "notify", value_name = "ADDR:PORT", env = "R53DNS_NOTIFY", value_delimiter = ',')]
    notify: Vec<SocketAddr>,
    /// TSIG key (by name, from the key files) signing the NOTIFYs.
    #[arg(long, value_name = "NAME", env = "R53DNS_NOTIFY_KEY")]
    notify_key: Option<String>,
    /// Close idle TCP connections after this long (default 10s).
    #[arg(long, value_parser = humantime::parse_duration, env = "R53DNS_TCP_IDLE_TIMEOUT")]
    tcp_idle_timeout: Option<Duration>,
    /// Log filter, e.g. `info` or `r53dns=debug` (default info).
    #[arg(long, env = "R53DNS_LOG")]
    log_level: Option<String>,
    /// Log format: human or json.
    #[arg(long, env = "R53DNS_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Log this share of queries (0.0–1.0; default none).
    #[arg(long, value_name = "SHARE", env = "R53DNS_QUERY_LOG")]
    query_log: Option<f64>,
    /// Serve the account's Route53 hosted zones (credentials from the standard AWS chain).
    #[arg(long, env = "R53DNS_ROUTE53")]
    route53: bool,
    /// Time between Route53 sweeps, e.g. 2s, 1m (default 60s).
    #[arg(long, value_parser = humantime::parse_duration, env = "R53DNS_REFRESH")]
    refresh: Option<Duration>,
    /// Route53 API requests per second for the whole process (default 5).
    #[arg(long, env = "R53DNS_RATE_LIMIT")]
    rate_limit: Option<f64>,
    /// Keep the last good Route53 snapshot here and serve it at once on start.
    #[arg(long, value_name = "DIR", env = "R53DNS_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Clients that see private zones (repeatable; default: everyone).
    #[arg(long = "internal-network", value_name = "CIDR", env = "R53DNS_INTERNAL_NETWORKS", value_delimiter = ',')]
    internal_networks: Vec<String>,
    /// Region latency routing treats as closest, e.g. eu-west-1.
    #[arg(long, env = "R53DNS_HOME_REGION")]
    home_region: Option<String>,
    /// Resolver for aliases to AWS endpoints (default: /etc/resolv.conf).
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_ENDPOINT_RESOLVER")]
    endpoint_resolver: Option<SocketAddr>,
    /// Address for DNS over TLS (repeatable; needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_TLS_LISTEN", value_delimiter = ',')]
    tls_listen: Vec<SocketAddr>,
    /// Address for DNS over HTTPS at /dns-query (repeatable; needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_HTTPS_LISTEN", value_delimiter = ',')]
    https_listen: Vec<SocketAddr>,
    /// UDP address for DNS over QUIC (repeatable; needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR:PORT", env = "R53DNS_QUIC_LISTEN", value_delimiter = ',')]
    quic_listen: Vec<SocketAddr>,
    /// PEM certificate chain for DNS over TLS and HTTPS.
    #[arg(long, value_name = "FILE", env = "R53DNS_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for DNS over TLS and HTTPS.
    #[arg(long, value_name = "FILE", env = "R53DNS_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Address for /metrics, /healthz, /readyz and admin, or `off` (default 127.0.0.1:9153).
    #[arg(long, value_name = "ADDR:PORT|off", env = "R53DNS_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Enable the admin routes (POST /sync, GET /zones) even on a non-loopback address.
    #[arg(long, env = "R53DNS_ADMIN")]
    admin: bool,
    /// TSIG key(s) (by name, from the key files) whose signed AXFR/IXFR requests are allowed.
    #[arg(long = "transfer-key", value_name = "NAME", env = "R53DNS_TRANSFER_KEYS", value_delimiter = ',')]
    transfer_keys: Vec<String>,
    /// TSIG key file(s) in BIND syntax (`tsig-keygen` output), added to `[tsig] key-files`.
    #[arg(long = "tsig-key-file", value_name = "FILE", env = "R53DNS_TSIG_KEY_FILES", value_delimiter = ',')]
    tsig_key_files: Vec<PathBuf>,
    /// Primary to pull the `--secondary-zone` and `--secondary-catalog` zones from by zone
    /// transfer: ADDR or ADDR:PORT.
    #[arg(long, value_name = "ADDR[:PORT]", env = "R53DNS_PRIMARY")]
    primary: Option<String>,
    /// Zone to follow from `--primary` (repeatable).
    #[arg(
        long = "secondary-zone",
        value_name = "NAME",
        env = "R53DNS_SECONDARY_ZONES",
        value_delimiter = ',',
        requires = "primary"
    )]
    secondary_zones: Vec<String>,
    /// Catalog zone (RFC 9432) to follow from `--primary`: every zone it lists is followed
    /// too (repeatable).
    #[arg(
        long = "secondary-catalog",
        value_name = "NAME",
        env = "R53DNS_SECONDARY_CATALOGS",
        value_delimiter = ',',
        requires = "primary"
    )]
    secondary_catalogs: Vec<String>,
    /// TSIG key (by name, from the key files) signing the transfers from `--primary`.
    #[arg(long, value_name = "NAME", env = "R53DNS_PRIMARY_KEY", requires = "primary")]
    primary_key: Option<String>,
    /// Check `--primary` at least this often, whatever the SOA refresh says (e.g. 10s).
    #[arg(long, value_parser = humantime::parse_duration, env = "R53DNS_PRIMARY_REFRESH", requires = "primary")]
    primary_refresh: Option<Duration>,
    /// Response rate limiting: identical UDP answers per second per client network (0: off).
    #[arg(long = "rrl", value_name = "PER_SECOND", env = "R53DNS_RRL")]
    rrl: Option<u32>,
    /// Client network never rate limited (repeatable).
    #[arg(long = "rrl-exempt", value_name = "CIDR", env = "R53DNS_RRL_EXEMPT", value_delimiter = ',')]
    rrl_exempt: Vec<String>,
    /// Every n-th rate-limited answer is sent truncated instead of dropped (default 2).
    #[arg(long = "rrl-slip", value_name = "N", env = "R53DNS_RRL_SLIP")]
    rrl_slip: Option<u32>,
    /// Publish a catalog zone (RFC 9432) of this name listing every served zone.
    #[arg(long, value_name = "NAME", env = "R53DNS_CATALOG_ZONE")]
    catalog_zone: Option<String>,
    /// On SIGTERM, keep answering this long while /readyz fails (default 5s; 0s: stop at once).
    #[arg(long, value_parser = humantime::parse_duration, env = "R53DNS_DRAIN")]
    drain: Option<Duration>,
    /// Be a replica: serve exactly what this source serves (http://HOST:PORT of its HTTP
    /// endpoint, or s3://BUCKET/PREFIX).
    #[arg(long, value_name = "URL", env = "R53DNS_FOLLOW")]
    follow: Option<String>,
    /// File with the bearer token for `--follow`.
    #[arg(long, value_name = "FILE", env = "R53DNS_FOLLOW_TOKEN_FILE", requires = "follow")]
    follow_token_file: Option<PathBuf>,
    /// Offer this server's Route53 data to replicas at GET /snapshot on the HTTP endpoint.
    #[arg(long, env = "R53DNS_REPLICATION")]
    replication: bool,
    /// Client network allowed to fetch snapshots (repeatable).
    #[arg(long = "replication-allow", value_name = "CIDR", env = "R53DNS_REPLICATION_ALLOW", value_delimiter = ',')]
    replication_allow: Vec<String>,
    /// File with the bearer token replicas must send.
    #[arg(long, value_name = "FILE", env = "R53DNS_REPLICATION_TOKEN_FILE")]
    replication_token_file: Option<PathBuf>,
    /// Also write every version to S3 (s3://BUCKET/PREFIX), for replicas and other syncers.
    #[arg(long, value_name = "URL", env = "R53DNS_REPLICATION_S3")]
    replication_s3: Option<String>,
}

impl Opts {
    fn spec(&self) -> anyhow::Result<Spec> {
        let file = match &self.config {
            Some(path) => Spec::from_file(path)?,
            None => Spec::default(),
        };
        let flags = Spec {
            server: ServerSpec {
                listen: (!self.listen.is_empty()).then(|| self.listen.clone()),
                workers: self.workers,
                max_udp_payload: self.max_udp_payload,
                minimal_responses: self.minimal_responses.then_some(true),
                identity: self.identity.clone(),
                version: self.server_version.clone(),
                nsid: self.nsid.clone(),
                tcp_idle_timeout: self.tcp_idle_timeout,
                tcp_max_connections: None,
                allow_transfer: self.allow_transfer.clone(),
                transfer_keys: self.transfer_keys.clone(),
                notify: self.notify.clone(),
                notify_key: self.notify_key.clone(),
                tcp_max_connections_per_network: None,
                allow_query: (!self.allow_query.is_empty()).then(|| self.allow_query.clone()),
                tcp_message_timeout: None,
                drain: self.drain,
                catalog_zone: self.catalog_zone.clone(),
                control_socket: self.control_socket.clone(),
            },
            zones: ZonesSpec {
                dirs: self.zone_dirs.clone(),
                files: self.zones.clone(),
                bind_config: self.bind_config.clone(),
            },
            log: r53dns_app::config::LogSpec {
                level: self.log_level.clone(),
                format: self.log_format,
                query_log: self.query_log,
            },
            http: r53dns_app::config::HttpSpec {
                listen: self.http_listen.clone(),
                admin: self.admin.then_some(true),
                ..Default::default()
            },
            route53: r53dns_app::config::Route53Spec {
                enabled: self.route53.then_some(true),
                refresh: self.refresh,
                rate_limit: self.rate_limit,
                state_dir: self.state_dir.clone(),
                internal_networks: self.internal_networks.clone(),
                home_region: self.home_region.clone(),
                endpoint_resolver: self.endpoint_resolver,
                ..Default::default()
            },
            tsig: r53dns_app::config::TsigSpec { key: Vec::new(), key_files: self.tsig_key_files.clone() },
            update: Default::default(),
            rrl: r53dns_app::config::RrlSpec {
                responses_per_second: self.rrl,
                slip: self.rrl_slip,
                exempt: self.rrl_exempt.clone(),
                ..Default::default()
            },
            replication: r53dns_app::config::ReplicationSpec {
                enabled: self.replication.then_some(true),
                allow: self.replication_allow.clone(),
                token_file: self.replication_token_file.clone(),
                s3: self.replication_s3.clone(),
            },
            follow: r53dns_app::config::FollowSpec {
                source: self.follow.clone(),
                token_file: self.follow_token_file.clone(),
                ..Default::default()
            },
            secondary: match &self.primary {
                Some(p) => vec![r53dns_app::config::SecondarySpec {
                    primary: p.clone(),
                    zones: self.secondary_zones.clone(),
                    catalogs: self.secondary_catalogs.clone(),
                    key: self.primary_key.clone(),
                    refresh: self.primary_refresh,
                    ..Default::default()
                }],
                None => Vec::new(),
            },
            tls: r53dns_app::config::TlsSpec {
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
                listen: self.tls_listen.clone(),
                https_listen: self.https_listen.clone(),
                quic_listen: self.quic_listen.clone(),
                ..Default::default()
            },
            transfer: Vec::new(),
        };
        Ok(file.merge(flags))
    }
}

fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The tokio runtime of `serve` and `export`: two workers (UDP has threads of its own).
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().worker_threads(2).build().map_err(|e| {
        eprintln!("r53dns: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn export(config: &r53dns_app::Config, out: &std::path::Path) -> ExitCode {
    init_logging(&config.log_level, config.log_format);
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} zones written")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let progress = |done: usize, total: usize| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    };
    match runtime.block_on(r53dns_app::export::export(config, out, progress)) {
        Ok(files) => {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            for f in &files {
                println!("{}", f.display());
            }
            eprintln!("r53dns: wrote {} zone files to {}", files.len(), out.display());
            ExitCode::SUCCESS
        }
        Err(e) if e.is::<StartupError>() => {
            eprintln!("r53dns: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("r53dns: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A minimal HTTP/1.1 request to the admin endpoint.
/// `r53dns manual`: the manual page, from the same definitions as `--help` (clap_mangen), with
/// a section per subcommand.
fn manual() -> ExitCode {
    use clap::CommandFactory as _;
    let cmd = Cli::command();
    let mut out = Vec::new();
    let page = clap_mangen::Man::new(cmd.clone());
    let mut ok = page.render_title(&mut out).is_ok()
        && page.render_name_section(&mut out).is_ok()
        && page.render_synopsis_section(&mut out).is_ok()
        && page.render_description_section(&mut out).is_ok();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_owned();
        out.extend_from_slice(format!(".SH \"r53dns {name}\"\n").as_bytes());
        let sub = sub.clone().bin_name(format!("r53dns {name}"));
        let page = clap_mangen::Man::new(sub);
        ok &= page.render_synopsis_section(&mut out).is_ok()
            && page.render_description_section(&mut out).is_ok()
            && page.render_options_section(&mut out).is_ok();
    }
    ok &= page.render_version_section(&mut out).is_ok();
    out.extend_from_slice(
        b".SH \"SEE ALSO\"\nThe documentation in /usr/share/doc/r53dns: config.md (every setting), operations.md, migrating-from-bind.md, zonefiles.md, update.md, security.md, metrics.md.\n",
    );
    if ok && std::io::Write::write_all(&mut std::io::stdout(), &out).is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `r53dns --version`: the release and the git revision it was built from.
fn version_line() -> &'static str {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| format!("{} ({})", env!("CARGO_PKG_VERSION"), r53dns_app::REVISION))
}

/// Where `r53dns ctl` looks for the control socket unless told.
const DEFAULT_CONTROL_SOCKET: &str = "/run/r53dns/control.sock";

/// The verbs of `r53dns ctl`.
const CTL_VERBS: [&str; 9] =
    ["status", "reload", "zone-status", "retransfer", "notify", "refresh", "stats", "sync", "zones"];

/// `r53dns ctl`: one HTTP/1.1 request over the control socket (or to the HTTP endpoint's
/// `/ctl/` routes), the JSON answer printed. A request this small needs no HTTP client crate.
fn ctl(socket: &std::path::Path, http: Option<SocketAddr>, verb: &str, zone: Option<&str>) -> ExitCode {
    use std::io::{Read, Write};
    let needs_zone = ["zone-status", "retransfer", "notify", "refresh"].contains(&verb);
    let path = match (zone, needs_zone) {
        (None, true) => {
            eprintln!("r53dns: ctl {verb} needs a zone");
            return ExitCode::from(2);
        }
        (Some(_), false) if verb != "reload" => {
            eprintln!("r53dns: ctl {verb} takes no zone");
            return ExitCode::from(2);
        }
        (Some(z), _) if z.is_empty() || z.contains(['/', '?', '#', ' ', '%']) => {
            eprintln!("r53dns: '{z}' is not a zone name");
            return ExitCode::from(2);
        }
        (Some(z), _) => format!("/{verb}/{z}"),
        (None, _) => format!("/{verb}"),
    };
    let method = if ["status", "zone-status", "stats", "zones"].contains(&verb) { "GET" } else { "POST" };
    let (host, path) = match http {
        Some(a) => (a.to_string(), format!("/ctl{path}")),
        None => ("localhost".to_owned(), path),
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{}: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        r53dns_app::ADMIN_HEADER
    );
    let where_ = http.map_or_else(|| socket.display().to_string(), |a| a.to_string());
    let result = (|| -> std::io::Result<String> {
        let mut buf = String::new();
        match http {
            Some(addr) => {
                let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                s.write_all(request.as_bytes())?;
                s.read_to_string(&mut buf)?;
            }
            None => {
                let mut s = std::os::unix::net::UnixStream::connect(socket)?;
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                s.write_all(request.as_bytes())?;
                s.read_to_string(&mut buf)?;
            }
        }
        Ok(buf)
    })();
    match result {
        Ok(resp) => {
            let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
            let ok = head.split_whitespace().nth(1).is_some_and(|c| c.starts_with('2'));
            print!("{body}");
            if ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("r53dns: {}", head.lines().next().unwrap_or("no response"));
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("r53dns: cannot reach {where_}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `r53dns push`: exit 0 when done (or planned), 2 when refused before sending anything,
/// 1 when Route53 failed part-way.
fn push(cmd: &Command) -> ExitCode {
    let Command::Push { zone, origin, hosted_zone, create, private, dry_run, rate } = cmd else {
        return ExitCode::FAILURE;
    };
    let mut vpcs = Vec::new();
    for p in private {
        let Some((vpc, region)) = p.split_once(':').filter(|(v, r)| !v.is_empty() && !r.is_empty()) else {
            eprintln!("r53dns: --private {p}: expected VPC-ID:REGION");
            return ExitCode::from(2);
        };
        vpcs.push((vpc.to_owned(), region.to_owned()));
    }
    let opts = r53dns_app::push::PushOptions {
        file: zone.clone(),
        origin: origin.clone(),
        hosted_zone: hosted_zone.clone(),
        create: *create,
        private: vpcs,
        dry_run: *dry_run,
        rate: *rate,
    };
    init_logging("warn", r53dns_app::config::LogFormat::Human);
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut out = std::io::stdout();
    match runtime.block_on(r53dns_app::push::push(&opts, &mut out)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if e.is::<r53dns_app::push::Refused>() => {
            eprintln!("r53dns: nothing sent: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("r53dns: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `r53dns compare`: exit 0 when every answer is alike, 1 when some differ (or a server did
/// not answer), 2 when the input is bad and nothing was asked.
fn compare(args: &CompareArgs) -> ExitCode {
    use r53dns_app::compare;
    let questions = match &args.pcap {
        Some(path) => match compare::read_pcap(path, args.pcap_port) {
            Ok(c) => {
                eprintln!(
                    "r53dns: {}: {} packets, {} DNS queries to port {}, {} distinct questions{}",
                    path.display(),
                    c.packets,
                    c.queries,
                    args.pcap_port,
                    c.questions.len(),
                    if c.cut_short { " (the capture ends inside a packet)" } else { "" }
                );
                c.questions
            }
            Err(e) => {
                eprintln!("r53dns: {e}");
                return ExitCode::from(2);
            }
        },
        None if args.queries.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            eprintln!("r53dns: no questions: give --queries FILE or --pcap FILE, or a query list on standard input");
            return ExitCode::from(2);
        }
        None => match compare::read_queries(args.queries.as_deref().unwrap_or(std::path::Path::new("-"))) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("r53dns: {e}");
                return ExitCode::from(2);
            }
        },
    };
    // An empty list is a wrong file or a capture of the wrong port, not a clean comparison.
    if questions.is_empty() {
        eprintln!("r53dns: no questions to ask");
        return ExitCode::from(2);
    }
    let opts = compare::Options {
        against: args.against,
        server: args.server,
        rate: args.rate,
        tcp: args.tcp,
        ignore_serial: args.ignore_serial,
        timeout: compare::TIMEOUT,
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let b = indicatif::ProgressBar::new(questions.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} questions, {eta} left")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let progress = |done: usize, _total: usize| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    };
    let report = runtime.block_on(compare::compare(&opts, &questions, progress));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // Written at once and without print!, which panics when the reader (`| head`) is gone.
    let mut text = String::new();
    if args.json {
        for d in &report.differences {
            text.push_str(&d.to_json(&opts));
            text.push('\n');
        }
        eprint!("{}", report.summary(&opts));
    } else {
        if !report.differences.is_empty() {
            text.push_str(&compare::legend(&opts));
        }
        for d in &report.differences {
            text.push_str(&d.to_text(opts.ignore_serial));
            text.push('\n');
        }
        text.push_str(&report.summary(&opts));
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    if report.different() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Ctl { socket, http, verb, zone } = &cli.command {
        return ctl(socket, *http, verb, zone.as_deref());
    }
    if matches!(cli.command, Command::Push { .. }) {
        return push(&cli.command);
    }
    if let Command::Compare(args) = &cli.command {
        return compare(args);
    }
    if let Command::Manual = &cli.command {
        return manual();
    }
    let (opts, serve, export_to) = match &cli.command {
        Command::Serve(o) => (o, true, None),
        Command::Check(o) => (o, false, None),
        Command::Export { out, opts } => (opts, false, Some(out.clone())),
        Command::Ctl { .. } | Command::Push { .. } | Command::Compare(_) | Command::Manual => {
            return ExitCode::FAILURE;
        }
    };
    let config = match opts.spec().and_then(Spec::validate) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("r53dns: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(out) = export_to {
        return export(&config, &out);
    }
    if !serve {
        return match check(&config) {
            Ok(report) => {
                for w in &config.warnings {
                    eprintln!("warning: {w}");
                }
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
                for i in &config.bind_ignored {
                    eprintln!("ignored: {i}");
                }
                for (file, apex, serial, records, audience) in &report.loaded {
                    let to = match audience {
                        r53dns_app::zones::Audience::All => "",
                        r53dns_app::zones::Audience::Internal => ", internal networks only",
                        r53dns_app::zones::Audience::External => ", outside the internal networks only",
                    };
                    eprintln!("ok: {} {apex} serial {serial}, {records} records{to}", file.display());
                }
                print!("{}", config.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("r53dns: {e}");
                ExitCode::from(2)
            }
        };
    }
    init_logging(&config.log_level, config.log_format);
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    // A reload reads the configuration file again (the command line and environment as given).
    let again = opts.clone();
    let reread: r53dns_app::Reread = Box::new(move || again.spec().and_then(Spec::validate));
    match runtime.block_on(run_with_reread(config, Some(reread))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<StartupError>() => {
            tracing::error!("{e:#}");
            eprintln!("r53dns: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("r53dns: {e:#}");
            ExitCode::FAILURE
        }
    }
}
