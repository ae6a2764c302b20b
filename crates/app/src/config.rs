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
    /// Close TCP connections idle this long (`"10s"`).
    #[serde(default, with = "humantime_serde")]
    pub tcp_idle_timeout: Option<Duration>,
    /// Most concurrent TCP connections.
    pub tcp_max_connections: Option<usize>,
}

/// `[zones]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ZonesSpec {
    /// Directories whose `*.zone` files are served.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Single zone files.
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogSpec {
    /// `tracing` filter (`"info"`, `"r53dns=debug"`).
    pub level: Option<String>,
    /// `human` or `json`.
    pub format: Option<LogFormat>,
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
    /// Log filter.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
}

/// Default DNS listener: loopback on an unprivileged port, safe on a laptop.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5353";

impl Spec {
    /// Reads a TOML file; unknown keys and bad values are errors naming the file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
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
        s.tcp_idle_timeout = o.tcp_idle_timeout.or(s.tcp_idle_timeout);
        s.tcp_max_connections = o.tcp_max_connections.or(s.tcp_max_connections);
        if !other.zones.dirs.is_empty() {
            self.zones.dirs = other.zones.dirs;
        }
        if !other.zones.files.is_empty() {
            self.zones.files = other.zones.files;
        }
        self.log.level = other.log.level.or(self.log.level.take());
        self.log.format = other.log.format.or(self.log.format);
        self
    }

    /// Checks values and fills defaults.
    pub fn validate(self) -> anyhow::Result<Config> {
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
        if !(512..=4096).contains(&max_udp_payload) {
            bail!("server.max-udp-payload: {max_udp_payload} is out of range (512–4096)");
        }
        let tcp_max_connections = s
            .tcp_max_connections
            .unwrap_or(defaults.tcp_max_connections);
        if tcp_max_connections == 0 {
            bail!("server.tcp-max-connections: must be at least 1");
        }
        let tcp_idle_timeout = s.tcp_idle_timeout.unwrap_or(defaults.tcp_idle_timeout);
        if tcp_idle_timeout.is_zero() {
            bail!("server.tcp-idle-timeout: must be more than zero");
        }
        if self.zones.dirs.is_empty() && self.zones.files.is_empty() {
            bail!("no zones: give --zone-dir DIR or --zone FILE (or [zones] in the config)");
        }
        Ok(Config {
            server: ServerConfig {
                listen,
                udp_workers: workers,
                answer: AnswerConfig {
                    max_udp_payload,
                    minimal_responses: s.minimal_responses.unwrap_or(false),
                },
                tcp_idle_timeout,
                tcp_max_connections,
            },
            zone_dirs: self.zones.dirs,
            zone_files: self.zones.files,
            log_level: self.log.level.unwrap_or_else(|| "info".to_owned()),
            log_format: self.log.format.unwrap_or_default(),
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
                tcp_idle_timeout: Some(self.server.tcp_idle_timeout),
                tcp_max_connections: Some(self.server.tcp_max_connections),
            },
            zones: ZonesSpec {
                dirs: self.zone_dirs.clone(),
                files: self.zone_files.clone(),
            },
            log: LogSpec {
                level: Some(self.log_level.clone()),
                format: Some(self.log_format),
            },
        };
        toml::to_string_pretty(&spec).unwrap_or_default()
    }
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
        let file: Spec = toml::from_str(
            "[server]\nworkers = 3\nlisten = [\"127.0.0.1:53\"]\n[zones]\ndirs = [\"a\"]\n",
        )
        .unwrap();
        let flags = Spec {
            server: ServerSpec {
                workers: Some(1),
                ..Default::default()
            },
            ..Default::default()
        };
        let cfg = file.merge(flags).validate().unwrap();
        assert_eq!(cfg.server.udp_workers, 1);
        assert_eq!(cfg.server.listen, vec!["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(cfg.zone_dirs, vec![PathBuf::from("a")]);
    }

    #[test]
    fn bad_values_are_named() {
        let spec: Spec =
            toml::from_str("[server]\nmax-udp-payload = 100\n[zones]\ndirs=[\"a\"]\n").unwrap();
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("max-udp-payload"), "{e}");
        let e = Spec::default().validate().unwrap_err().to_string();
        assert!(e.contains("no zones"), "{e}");
    }

    #[test]
    fn printed_config_reads_back() {
        let spec: Spec =
            toml::from_str("[zones]\nfiles = [\"x.zone\"]\n[server]\ntcp-idle-timeout = \"3s\"\n")
                .unwrap();
        let cfg = spec.validate().unwrap();
        let again: Spec = toml::from_str(&cfg.to_toml()).unwrap();
        let cfg2 = again.validate().unwrap();
        assert_eq!(cfg2.server.tcp_idle_timeout, Duration::from_secs(3));
        assert_eq!(cfg2.zone_files, cfg.zone_files);
    }
}
