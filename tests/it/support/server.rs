//! Starting r53dns for tests: in-process on 127.0.0.1:0, or the real binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use r53dns_app::config::{ServerSpec, Spec, ZonesSpec};
use r53dns_app::{Running, start};
use r53dns_server::CancellationToken;

/// Writes zone files into a fresh temporary directory.
pub fn zone_dir(zones: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in zones {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    dir
}

/// The repository's `tests/data` folder.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// r53dns running inside the test process, with its own runtime.
pub struct TestServer {
    pub addr: SocketAddr,
    pub running: Option<Running>,
    pub rt: tokio::runtime::Runtime,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Serves the given zone files (file name, text).
    pub fn start(zones: &[(&str, &str)]) -> Self {
        let tmp = zone_dir(zones);
        let dir = tmp.path().to_owned();
        let mut s = Self::with_spec(Spec {
            zones: ZonesSpec { dirs: vec![dir], files: vec![], ..Default::default() },
            ..Default::default()
        });
        s._tmp = Some(tmp);
        s
    }

    /// Serves every zone of a directory.
    pub fn start_dir(dir: &Path) -> Self {
        Self::with_spec(Spec {
            zones: ZonesSpec { dirs: vec![dir.to_owned()], files: vec![], ..Default::default() },
            ..Default::default()
        })
    }

    /// Serves with a full spec; the listener is forced to 127.0.0.1:0.
    pub fn with_spec(mut spec: Spec) -> Self {
        spec.server =
            ServerSpec { listen: Some(vec!["127.0.0.1:0".parse().unwrap()]), workers: Some(2), ..spec.server };
        spec.http.listen = Some("127.0.0.1:0".into());
        let dir = spec.zones.dirs.first().cloned().unwrap_or_default();
        let config = spec.validate().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let running = rt.block_on(start(config, CancellationToken::new())).unwrap();
        Self { addr: running.dns_addrs[0], running: Some(running), rt, dir, _tmp: None }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.stop());
        }
    }
}

/// The real `r53dns` binary, killed on drop.
pub struct Binary {
    pub child: Child,
    pub addr: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub lines: mpsc::Receiver<String>,
    /// The log lines up to the moment it listened.
    pub startup: Vec<String>,
}

impl Binary {
    pub fn command() -> Command {
        Command::new(env!("CARGO_BIN_EXE_r53dns"))
    }

    /// `r53dns check --config FILE` with no AWS reachable; its output.
    pub fn check_config(file: &Path) -> std::process::Output {
        Self::command().args(["check", "--config"]).arg(file).env("AWS_EC2_METADATA_DISABLED", "true").output().unwrap()
    }

    /// `r53dns check --bind-config FILE` with no AWS reachable; its output.
    pub fn check_bind_config(file: &Path) -> std::process::Output {
        Self::command()
            .args(["check", "--bind-config"])
            .arg(file)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    }

    /// Starts `r53dns serve ARGS --listen 127.0.0.1:0` and waits until it listens.
    pub fn serve(args: &[&str]) -> Self {
        Self::serve_with(args, &[])
    }

    /// Like [`Binary::serve`] with extra environment variables.
    pub fn serve_with(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = Self::command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--workers", "1", "--http-listen", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = Self { child, addr: None, http: None, lines: rx, startup: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while b.addr.is_none() || b.http.is_none() {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            let line = b
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("server did not start ({e}); it said:\n{}", seen.join("\n")));
            seen.push(line.clone());
            let addr = || line.split("addr=").nth(1)?.split_whitespace().next()?.parse().ok();
            if line.contains("serving DNS on UDP and TCP") {
                b.addr = addr();
            } else if line.contains("serving HTTP") {
                b.http = addr();
            }
        }
        b.startup = seen;
        b
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The value of the first `/metrics` line starting with `needle` (0 if none).
    pub fn metric(&self, needle: &str) -> u64 {
        let http = self.http.unwrap();
        let mut s = std::net::TcpStream::connect(http).unwrap();
        std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut s, &mut text).unwrap();
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// The status code of `GET path` on the HTTP endpoint.
    pub fn http_status(&self, path: &str) -> u16 {
        let mut s = std::net::TcpStream::connect(self.http.unwrap()).unwrap();
        std::io::Write::write_all(&mut s, format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut s, &mut text).unwrap();
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
