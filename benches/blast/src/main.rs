//! `blast`: the load generator and echo responder of `benches/load/compare.sh`.
//!
//! ```text
//! blast udp  SERVER QUERIES [--duration S] [--rate QPS] [--sockets N] [--window N]
//! blast tcp  SERVER QUERIES [--duration S] [--rate QPS] [--sockets N]
//! blast echo LISTEN
//! blast echo-batch LISTEN
//! ```
//!
//! `udp` and `tcp` send the questions of QUERIES (dnsperf format: `name TYPE` per line) in
//! a loop for the duration, as fast as answers come back (`--rate 0`) or at a fixed rate,
//! from one thread that polls non-blocking sockets — meant to be pinned to a core of its
//! own. UDP keeps up to `--window` queries outstanding per socket (a query unanswered for
//! a second is lost); TCP keeps one query in flight per connection. It prints one line:
//!
//! ```text
//! sent=… answered=… lost=… qps=… p50_us=… p99_us=… max_us=…
//! ```
//!
//! `echo` answers every datagram with itself, QR set, one `recvfrom` and one `sendto` per
//! datagram: the ceiling of a server that does no DNS work and no batching. `echo-batch`
//! does the same with up to 32 datagrams per `recvmmsg` and `sendmmsg`, as r53dns's UDP
//! workers do: the ceiling of the kernel's socket path itself.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use r53dns_zone::{Name, rdata};

const TIMEOUT: Duration = Duration::from_secs(1);
/// Latency histogram: one bucket per microsecond up to this, the rest in the last.
const HIST_US: usize = 200_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("echo") if args.len() == 2 => echo(&args[1]),
        Some("echo-batch") if args.len() == 2 => echo_batch(&args[1]),
        Some(mode @ ("udp" | "tcp")) if args.len() >= 3 => Options::parse(&args[3..])
            .and_then(|o| Ok((o, load_queries(&args[2])?, parse_addr(&args[1])?)))
            .and_then(|(o, q, server)| if mode == "udp" { udp(server, &q, &o) } else { tcp(server, &q, &o) }),
        _ => Err("usage: blast udp|tcp SERVER QUERIES [--duration S] [--rate QPS] [--sockets N] [--window N]\n       blast echo|echo-batch LISTEN".into()),
    };
    if let Err(e) = result {
        eprintln!("blast: {e}");
        std::process::exit(2);
    }
}

#[derive(Debug)]
struct Options {
    duration: Duration,
    rate: u64,
    sockets: usize,
    window: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self { duration: Duration::from_secs(10), rate: 0, sockets: 8, window: 64 };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let n: u64 = value.parse().map_err(|_| format!("{flag}: {value:?} is not a number"))?;
            match flag.as_str() {
                "--duration" => o.duration = Duration::from_secs(n),
                "--rate" => o.rate = n,
                "--sockets" => o.sockets = n.clamp(1, 1024) as usize,
                "--window" => o.window = n.clamp(1, 60_000) as usize,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(o)
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not an address:port"))
}

/// Reads `name TYPE` lines into query messages (ID zero, RD clear, no EDNS — as dnsperf).
fn load_queries(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(qtype)) = (words.next(), words.next()) else { continue };
        let at = || format!("{path}:{}", n + 1);
        let name = Name::parse(name, Some(&Name::root())).map_err(|e| format!("{}: {name}: {e}", at()))?;
        let code = rdata::type_from_str(qtype).ok_or_else(|| format!("{}: unknown type {qtype}", at()))?;
        let mut m = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(name.wire());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        out.push(m);
    }
    if out.is_empty() {
        return Err(format!("{path}: no queries"));
    }
    Ok(out)
}

/// Answers and latencies so far.
struct Tally {
    sent: u64,
    answered: u64,
    lost: u64,
    hist: Vec<u64>,
}

impl Tally {
    fn new() -> Self {
        Self { sent: 0, answered: 0, lost: 0, hist: vec![0; HIST_US + 1] }
    }

    fn answer(&mut self, latency: Duration) {
        self.answered += 1;
        self.hist[(latency.as_micros() as usize).min(HIST_US)] += 1;
    }

    fn percentile(&self, p: f64) -> usize {
        let want = ((self.answered as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (us, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= want {
                return us;
            }
        }
        HIST_US
    }

    fn report(&self, elapsed: Duration) {
        let max = self.hist.iter().rposition(|n| *n > 0).unwrap_or(0);
        println!(
            "sent={} answered={} lost={} qps={:.0} p50_us={} p99_us={} max_us={}",
            self.sent,
            self.answered,
            self.lost,
            self.answered as f64 / elapsed.as_secs_f64(),
            self.percentile(0.50),
            self.percentile(0.99),
            max
        );
    }
}

/// How many queries the rate allows by now (everything when the rate is open).
fn allowed(rate: u64, start: Instant, sent: u64) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    ((start.elapsed().as_secs_f64() * rate as f64) as u64).saturating_sub(sent)
}

/// One UDP socket's queries in flight: send time by message ID, and IDs in send order.
struct Flight {
    sock: UdpSocket,
    sent_at: Vec<Option<Instant>>,
    order: VecDeque<u16>,
    next_id: u16,
    outstanding: usize,
}

fn udp(server: SocketAddr, queries: &[Vec<u8>], o: &Options) -> Result<(), String> {
    let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|_| "bind")?;
    let mut flights = Vec::with_capacity(o.sockets);
    for _ in 0..o.sockets {
        let sock = UdpSocket::bind(local).map_err(|e| format!("bind: {e}"))?;
        sock.connect(server).map_err(|e| format!("connect {server}: {e}"))?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        flights.push(Flight { sock, sent_at: vec![None; 65536], order: VecDeque::new(), next_id: 0, outstanding: 0 });
    }
    let mut t = Tally::new();
    let mut q = 0usize;
    let mut buf = [0u8; 65535];
    let start = Instant::now();
    while start.elapsed() < o.duration {
        for f in &mut flights {
            // Send while the window and the rate allow.
            let mut budget = allowed(o.rate, start, t.sent).min((o.window - f.outstanding.min(o.window)) as u64);
            while budget > 0 {
                let mut msg = queries[q % queries.len()].clone();
                let id = f.next_id;
                if f.sent_at[usize::from(id)].is_some() {
                    break; // every ID is in flight
                }
                msg[..2].copy_from_slice(&id.to_be_bytes());
                match f.sock.send(&msg) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("send: {e}")),
                }
                f.sent_at[usize::from(id)] = Some(Instant::now());
                f.order.push_back(id);
                f.next_id = id.wrapping_add(1);
                f.outstanding += 1;
                t.sent += 1;
                q += 1;
                budget -= 1;
            }
            // Take every answer that has arrived.
            loop {
                match f.sock.recv(&mut buf) {
                    Ok(n) if n >= 12 => {
                        let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                        if let Some(at) = f.sent_at[id].take() {
                            f.outstanding -= 1;
                            t.answer(at.elapsed());
                        }
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("receive: {e}")),
                }
            }
            // Forget answered IDs at the front; count the ones that timed out as lost.
            while let Some(&id) = f.order.front() {
                match f.sent_at[usize::from(id)] {
                    None => {
                        f.order.pop_front();
                    }
                    Some(at) if at.elapsed() > TIMEOUT => {
                        f.sent_at[usize::from(id)] = None;
                        f.order.pop_front();
                        f.outstanding -= 1;
                        t.lost += 1;
                    }
                    Some(_) => break,
                }
            }
        }
    }
    let elapsed = start.elapsed();
    // What is still in flight gets its second to arrive.
    let drain = Instant::now();
    while flights.iter().any(|f| f.outstanding > 0) && drain.elapsed() < TIMEOUT {
        for f in &mut flights {
            while let Ok(n) = f.sock.recv(&mut buf) {
                let id = if n >= 12 { usize::from(u16::from_be_bytes([buf[0], buf[1]])) } else { continue };
                if let Some(at) = f.sent_at[id].take() {
                    f.outstanding -= 1;
                    t.answer(at.elapsed());
                }
            }
        }
    }
    t.lost += flights.iter().map(|f| f.outstanding as u64).sum::<u64>();
    t.report(elapsed);
    Ok(())
}

/// One TCP connection: one query in flight, the answer read as it comes.
struct Conn {
    stream: TcpStream,
    sent_at: Option<Instant>,
    inbuf: Vec<u8>,
}

fn tcp(server: SocketAddr, queries: &[Vec<u8>], o: &Options) -> Result<(), String> {
    let mut conns = Vec::with_capacity(o.sockets);
    for _ in 0..o.sockets {
        let stream = TcpStream::connect(server).map_err(|e| format!("connect {server}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        conns.push(Conn { stream, sent_at: None, inbuf: Vec::with_capacity(4096) });
    }
    let mut t = Tally::new();
    let mut q = 0usize;
    let mut buf = [0u8; 65535];
    let start = Instant::now();
    while start.elapsed() < o.duration {
        for c in &mut conns {
            if c.sent_at.is_none() && allowed(o.rate, start, t.sent) > 0 {
                let msg = &queries[q % queries.len()];
                let mut framed = Vec::with_capacity(msg.len() + 2);
                framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
                framed.extend_from_slice(msg);
                framed[2..4].copy_from_slice(&(q as u16).to_be_bytes());
                // Small writes to a fresh socket buffer complete at once.
                c.stream.write_all(&framed).map_err(|e| format!("send: {e}"))?;
                c.sent_at = Some(Instant::now());
                t.sent += 1;
                q += 1;
            }
            match c.stream.read(&mut buf) {
                Ok(0) => return Err("the server closed a connection".into()),
                Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("receive: {e}")),
            }
            if c.inbuf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([c.inbuf[0], c.inbuf[1]]));
                if c.inbuf.len() >= len + 2 {
                    c.inbuf.drain(..len + 2);
                    if let Some(at) = c.sent_at.take() {
                        t.answer(at.elapsed());
                    }
                }
            }
            if c.sent_at.is_some_and(|at| at.elapsed() > TIMEOUT) {
                return Err("a TCP answer took more than a second".into());
            }
        }
    }
    let elapsed = start.elapsed();
    // Answers still on their way get their second to arrive.
    let drain = Instant::now();
    while conns.iter().any(|c| c.sent_at.is_some()) && drain.elapsed() < TIMEOUT {
        for c in conns.iter_mut().filter(|c| c.sent_at.is_some()) {
            if let Ok(n) = c.stream.read(&mut buf) {
                c.inbuf.extend_from_slice(&buf[..n]);
            }
            let len = c.inbuf.get(..2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            if let (Some(len), Some(at)) = (len, c.sent_at)
                && c.inbuf.len() >= len + 2
            {
                c.inbuf.drain(..len + 2);
                c.sent_at = None;
                t.answer(at.elapsed());
            }
        }
    }
    t.lost = conns.iter().filter(|c| c.sent_at.is_some()).count() as u64;
    t.report(elapsed);
    Ok(())
}

/// Sends every datagram back with QR set, one at a time.
fn echo(listen: &str) -> Result<(), String> {
    let sock = UdpSocket::bind(parse_addr(listen)?).map_err(|e| format!("bind {listen}: {e}"))?;
    let mut buf = [0u8; 65535];
    loop {
        let (n, peer) = sock.recv_from(&mut buf).map_err(|e| format!("receive: {e}"))?;
        if n >= 12 {
            buf[2] |= 0x80;
            let _ = sock.send_to(&buf[..n], peer);
        }
    }
}

/// [`echo`] in batches: up to 32 datagrams per `recvmmsg`, all sent back with one `sendmmsg`.
fn echo_batch(listen: &str) -> Result<(), String> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;
    const BATCH: usize = 32;
    let sock = UdpSocket::bind(parse_addr(listen)?).map_err(|e| format!("bind {listen}: {e}"))?;
    let fd = sock.as_raw_fd();
    let mut bufs = vec![[0u8; 4096]; BATCH];
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut got: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    loop {
        got.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
            let results = recvmmsg(fd, &mut recv_headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None)
                .map_err(|e| format!("receive: {e}"))?;
            got.extend(results.map(|r| (r.bytes, r.address)));
        }
        let mut n = 0;
        for (i, (len, _)) in got.iter().enumerate() {
            if *len >= 12 {
                bufs[i][2] |= 0x80;
                n += 1;
            }
        }
        if n == 0 {
            continue;
        }
        let slices: Vec<[IoSlice<'_>; 1]> = got
            .iter()
            .enumerate()
            .filter(|(_, (len, _))| *len >= 12)
            .map(|(i, (len, _))| [IoSlice::new(&bufs[i][..*len])])
            .collect();
        let addrs: Vec<Option<SockaddrStorage>> = got.iter().filter(|(len, _)| *len >= 12).map(|(_, a)| *a).collect();
        let _ = sendmmsg(fd, &mut send_headers, slices.iter(), &addrs, [], MsgFlags::empty());
    }
}
