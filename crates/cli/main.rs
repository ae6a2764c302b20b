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
use r53dns_app::config::{LogFormat, Opts};
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

/// The tokio runtime of `serve` and the other commands: two workers (UDP has threads of its
/// own; under UDP load these two sleep). Its threads are named `r53dns-rt` (`ps -L`,
/// `top -H`), beside the `r53dns-udp-N` workers.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().worker_threads(2).thread_name("r53dns-rt").build().map_err(
        |e| {
            eprintln!("r53dns: cannot start the runtime: {e}");
            ExitCode::FAILURE
        },
    )
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
    let config = match opts.config() {
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
                for s in config.bind_mapped.iter().flat_map(|m| &m.secondaries) {
                    eprintln!("secondary: {}", s.describe());
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
    let reread: r53dns_app::Reread = Box::new(move || again.config());
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
