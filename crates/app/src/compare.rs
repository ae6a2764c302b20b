//! `r53dns compare`: the same questions to two servers, and every difference in what they
//! answer. Made for the cut-over from BIND: run r53dns beside it with the same zones, ask
//! both what the clients ask (a dnsperf query file, or the queries of a packet capture), and
//! read what would change for them before it does.
//!
//! What counts: the rcode; the header flags (QR, opcode, AA, TC, RD, RA, AD, CD); the
//! question echoed; EDNS (an OPT at all, its version, the DO bit echoed); and the answer,
//! authority and additional sections, each as a multiset of records compared with owner
//! names in lower case and RDATA in the canonical form of RFC 4034 §6.2 (names in it in
//! lower case too), TTLs included. What does not count: the order of RRsets and of records
//! in them (servers may rotate), the EDNS payload size and options (configuration, not
//! data), and, for ANY, everything but the rcode and whether the answer is empty: RFC 8482
//! lets each server choose what it returns. With [`Options::ignore_serial`] the serial of
//! every SOA record is left out too, for zones whose serial is not the same on both sides
//! (Route53's, to which r53dns gives a serial derived from the content).
//!
//! A question is equal when both servers answered and nothing that counts differs; every
//! other question is a [`Difference`], one where a server did not answer included.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use etherparse::{EtherType, SlicedPacket, TransportSlice};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use r53dns_zone::rdata::{type_from_str, type_to_string};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long to wait for each answer before asking once more.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Questions in flight at once: enough to keep 200 a second going to servers 80 ms away,
/// few enough that a server which stopped answering is not flooded while it times out.
pub const IN_FLIGHT: usize = 16;

/// The EDNS payload size of the questions: the one r53dns, BIND and NSD default to (DNS flag
/// day 2020), so that the same answers fit in UDP on all of them.
const EDNS_PAYLOAD: u16 = 1232;

/// The ANY type, whose answers are compared loosely (RFC 8482).
const ANY: u16 = 255;

/// An input the operator must fix (a bad query-file line, an unreadable capture, a bad
/// address): exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// One question to ask both servers, class IN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name, absolute, spelled as in the input (servers echo its case).
    pub name: Name,
    /// The type code.
    pub qtype: u16,
    /// Whether the EDNS DO bit is set (DNSSEC records wanted).
    pub dnssec_ok: bool,
}

impl fmt::Display for Question {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, type_to_string(self.qtype))?;
        if self.dnssec_ok {
            f.write_str(" +dnssec")?;
        }
        Ok(())
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]`, `[V6]:PORT` or `HOST[:PORT]`; the port defaults to 53.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    let lookup = match s.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| format!("{s}: bad port {port:?}"))?;
            (host, port).to_socket_addrs()
        }
        None => (s, 53).to_socket_addrs(),
    };
    lookup.ok().and_then(|mut a| a.next()).ok_or_else(|| format!("{s}: not an address, nor a host name that resolves"))
}

fn parse_name(s: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(s).map_err(|e| e.to_string())?;
    // dnsperf's files spell names without the final dot; they are absolute all the same.
    name.set_fqdn(true);
    Ok(name)
}

/// Questions in dnsperf's query-file format: `NAME TYPE` a line (`NAME` alone asks for A),
/// class IN; blank lines, and lines or trailing words starting with `#` or `;`, are
/// ignored. `source` names the input in errors, which say `source:line`.
pub fn parse_queries(text: &str, source: &str) -> Result<Vec<Question>, InputError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{source}:{}", i + 1);
        let fields: Vec<&str> =
            line.split_whitespace().take_while(|f| !f.starts_with('#') && !f.starts_with(';')).collect();
        let (name, qtype) = match fields.as_slice() {
            [] => continue,
            [name] => (*name, "A"),
            [name, qtype] => (*name, *qtype),
            _ => return Err(InputError(format!("{}: expected `NAME [TYPE]`, found {:?}", at(), line.trim()))),
        };
        let qtype = type_from_str(qtype).ok_or_else(|| InputError(format!("{}: unknown type {qtype:?}", at())))?;
        let name = parse_name(name).map_err(|e| InputError(format!("{}: bad name {name:?}: {e}", at())))?;
        out.push(Question { name, qtype, dnssec_ok: false });
    }
    Ok(out)
}

/// [`parse_queries`] on a file, or on standard input when `path` is `-`.
pub fn read_queries(path: &Path) -> Result<Vec<Question>, InputError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| InputError(format!("standard input: {e}")))?;
        return parse_queries(&text, "<stdin>");
    }
    let text = std::fs::read_to_string(path).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    parse_queries(&text, &path.display().to_string())
}

/// What a packet capture held.
#[derive(Debug, Default)]
pub struct Capture {
    /// The distinct questions (name case-insensitive, type, DO bit), in the order first seen.
    pub questions: Vec<Question>,
    /// Packets read.
    pub packets: usize,
    /// DNS queries found (QR=0, opcode QUERY, one question of class IN) before de-duplication.
    pub queries: usize,
    /// Whether the capture ended inside a packet (a capture cut short); what came before is kept.
    pub cut_short: bool,
}

/// The queries of a pcap or pcapng capture: UDP datagrams to `port` (Ethernet, Linux
/// cooked v1 and v2, raw IP and BSD loopback links) that hold a DNS query with one question of
/// class IN and opcode QUERY, de-duplicated by (name, type, DO bit). Fragmented datagrams
/// and TCP are left out.
pub fn read_pcap(path: &Path, port: u16) -> Result<Capture, InputError> {
    let bad = |e: &dyn fmt::Display| InputError(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(&e))?;
    let mut input = BufReader::new(file);
    let magic = input.fill_buf().map_err(|e| bad(&e))?.get(..4).map(<[u8]>::to_vec).unwrap_or_default();
    let mut collect = Collector { port, seen: HashSet::new(), capture: Capture::default() };
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut reader = PcapNgReader::new(input).map_err(|e| bad(&format!("not a pcapng capture: {e}")))?;
        // The link type of each interface of the current section, by interface id.
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(block) = reader.next_block() {
            let block = match block {
                Ok(b) => b,
                Err(e) if cut_short(&e) => {
                    collect.capture.cut_short = true;
                    break;
                }
                Err(e) => return Err(bad(&e)),
            };
            let (interface, data) = match block {
                Block::SectionHeader(_) => {
                    links.clear();
                    continue;
                }
                Block::InterfaceDescription(i) => {
                    supported(i.linktype).map_err(|e| bad(&e))?;
                    links.push(i.linktype);
                    continue;
                }
                Block::EnhancedPacket(p) => (p.interface_id, p.data),
                Block::SimplePacket(p) => (0, p.data),
                _ => continue,
            };
            let link = usize::try_from(interface)
                .ok()
                .and_then(|i| links.get(i))
                .ok_or_else(|| bad(&format!("a packet of undescribed interface {interface}")))?;
            collect.packet(*link, &data);
        }
    } else {
        let mut reader = PcapReader::new(input).map_err(|e| bad(&format!("not a pcap or pcapng capture: {e}")))?;
        let link = reader.header().datalink;
        supported(link).map_err(|e| bad(&e))?;
        while let Some(packet) = reader.next_packet() {
            match packet {
                Ok(p) => collect.packet(link, &p.data),
                Err(e) if cut_short(&e) => {
                    collect.capture.cut_short = true;
                    break;
                }
                Err(e) => return Err(bad(&e)),
            }
        }
    }
    Ok(collect.capture)
}

/// A capture whose writer was stopped mid-packet ends in a partial record: what came before
/// is good and worth comparing.
fn cut_short(e: &pcap_file::PcapError) -> bool {
    match e {
        pcap_file::PcapError::IncompleteBuffer => true,
        pcap_file::PcapError::IoError(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

fn supported(link: DataLink) -> Result<(), String> {
    match link {
        DataLink::ETHERNET
        | DataLink::LINUX_SLL
        | DataLink::LINUX_SLL2
        | DataLink::RAW
        | DataLink::IPV4
        | DataLink::IPV6
        | DataLink::NULL
        | DataLink::LOOP => Ok(()),
        other => Err(format!(
            "link type {other:?} is not supported (Ethernet, Linux cooked v1/v2, raw IP and BSD loopback are)"
        )),
    }
}

/// The layers of a captured frame, from its link layer down.
fn slice(link: DataLink, data: &[u8]) -> Option<SlicedPacket<'_>> {
    match link {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data).ok(),
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data).ok(),
        // Linux cooked v2 (`tcpdump -i any` since libpcap 1.10), which the packet crate does
        // not know: a 20-octet header that starts with the EtherType of what follows.
        DataLink::LINUX_SLL2 => {
            let ether_type = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
            SlicedPacket::from_ether_type(EtherType(ether_type), data.get(20..)?).ok()
        }
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data).ok(),
        // BSD loopback: 4 octets of address family in the capturing host's byte order; the IP
        // header after them says its version itself.
        DataLink::NULL | DataLink::LOOP => SlicedPacket::from_ip(data.get(4..)?).ok(),
        _ => None,
    }
}

struct Collector {
    port: u16,
    seen: HashSet<(Name, u16, bool)>,
    capture: Capture,
}

impl Collector {
    fn packet(&mut self, link: DataLink, data: &[u8]) {
        self.capture.packets += 1;
        let Some(TransportSlice::Udp(udp)) = slice(link, data).and_then(|p| p.transport) else {
            return;
        };
        if udp.destination_port() != self.port {
            return;
        }
        let Ok(msg) = Message::from_vec(udp.payload()) else {
            return;
        };
        let m = &msg.metadata;
        if m.message_type != MessageType::Query || m.op_code != OpCode::Query {
            return;
        }
        let [q] = msg.queries.as_slice() else {
            return;
        };
        if q.query_class != DNSClass::IN {
            return;
        }
        self.capture.queries += 1;
        let dnssec_ok = msg.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let qtype = u16::from(q.query_type);
        // Resolvers randomise the case of names (draft-vixie-dnsext-dns0x20): one question.
        if self.seen.insert((q.name.to_lowercase(), qtype, dnssec_ok)) {
            let mut name = q.name.clone();
            name.set_fqdn(true);
            self.capture.questions.push(Question { name, qtype, dnssec_ok });
        }
    }
}

/// How one comparison is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The reference server (BIND, before the cut-over).
    pub against: SocketAddr,
    /// The server being checked (r53dns).
    pub server: SocketAddr,
    /// Questions per second; each goes to both servers.
    pub rate: u32,
    /// Ask over TCP only (else UDP, and TCP when an answer is truncated).
    pub tcp: bool,
    /// Leave SOA serials out of the comparison.
    pub ignore_serial: bool,
    /// How long to wait for each answer ([`TIMEOUT`]).
    pub timeout: Duration,
}

/// How an answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Over UDP.
    Udp,
    /// Over TCP (asked so, or after a truncated UDP answer).
    Tcp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// What one server made of one question.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An answer.
    Answer {
        /// How it came.
        transport: Transport,
        /// The message.
        msg: Box<Message>,
    },
    /// Something with the question's ID that is not a DNS message the parser can read.
    Malformed {
        /// How it came.
        transport: Transport,
        /// The octets.
        raw: Vec<u8>,
        /// Why it could not be read.
        error: String,
    },
    /// No answer: why.
    Unanswered(String),
}

/// A kind of difference between two answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A server did not answer.
    Unanswered,
    /// An answer could not be read (and the two are not the same octets).
    Malformed,
    /// The rcodes differ.
    Rcode,
    /// The header flags or opcode differ.
    Flags,
    /// The question echoed differs.
    Question,
    /// The OPT record differs (present, version, DO).
    Edns,
    /// The answer sections differ (for ANY: one is empty, the other not).
    Answer,
    /// The authority sections differ.
    Authority,
    /// The additional sections differ.
    Additional,
}

impl Kind {
    /// The kind's name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unanswered => "unanswered",
            Self::Malformed => "malformed",
            Self::Rcode => "rcode",
            Self::Flags => "flags",
            Self::Question => "question",
            Self::Edns => "edns",
            Self::Answer => "answer",
            Self::Authority => "authority",
            Self::Additional => "additional",
        }
    }
}

/// A question whose answers differ.
#[derive(Debug, Clone)]
pub struct Difference {
    /// The question.
    pub question: Question,
    /// What differs.
    pub kinds: Vec<Kind>,
    /// What the `--against` server made of it.
    pub against: Outcome,
    /// What the `--server` server made of it.
    pub server: Outcome,
}

/// The outcome of a comparison.
#[derive(Debug, Default)]
pub struct Report {
    /// Questions asked (of each server).
    pub asked: usize,
    /// Questions answered alike.
    pub equal: usize,
    /// Questions answered differently, or not answered by one or both, in input order.
    pub differences: Vec<Difference>,
    /// Questions the `--against` server did not answer.
    pub unanswered_against: usize,
    /// Questions the `--server` server did not answer.
    pub unanswered_server: usize,
}

/// Asks every question of both servers at `opts.rate` a second, a few at a time, and
/// compares. `progress(done, total)` follows the answers.
pub async fn compare(opts: &Options, questions: &[Question], mut progress: impl FnMut(usize, usize)) -> Report {
    let total = questions.len();
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    // A zero period would panic: rates beyond a billion a second are as good as unlimited.
    let period = Duration::from_secs_f64(1.0 / f64::from(opts.rate.max(1))).max(Duration::from_nanos(1));
    let mut tick = tokio::time::interval(period);
    let mut tasks = JoinSet::new();
    let mut results: Vec<Option<(Outcome, Outcome)>> = vec![None; total];
    let mut done = 0;
    let mut store = |joined: Result<(usize, Outcome, Outcome), tokio::task::JoinError>| {
        if let Ok((i, a, b)) = joined
            && let Some(slot) = results.get_mut(i)
        {
            *slot = Some((a, b));
        }
        done += 1;
        progress(done, total);
    };
    for (i, q) in questions.iter().enumerate() {
        tick.tick().await;
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        while let Some(joined) = tasks.try_join_next() {
            store(joined);
        }
        let (q, o) = (q.clone(), opts.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let (a, b) = tokio::join!(ask(o.against, &q, o.tcp, o.timeout), ask(o.server, &q, o.tcp, o.timeout));
            (i, a, b)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        store(joined);
    }
    let mut report = Report { asked: total, ..Report::default() };
    for (q, result) in questions.iter().zip(results) {
        // A task that died is a bug here, not the servers': both are shown as unanswered.
        let (a, b) = result.unwrap_or_else(|| {
            (Outcome::Unanswered("not asked (internal error)".into()), Outcome::Unanswered("not asked".into()))
        });
        report.unanswered_against += usize::from(matches!(a, Outcome::Unanswered(_)));
        report.unanswered_server += usize::from(matches!(b, Outcome::Unanswered(_)));
        let kinds = differences(q, &a, &b, opts.ignore_serial);
        if kinds.is_empty() {
            report.equal += 1;
        } else {
            report.differences.push(Difference { question: q.clone(), kinds, against: a, server: b });
        }
    }
    report
}

/// The question on the wire, with a random ID; RD clear, as resolvers ask authoritative
/// servers, and EDNS with the question's DO bit.
fn encode(q: &Question) -> Result<(u16, Vec<u8>), String> {
    let id: u16 = rand::random();
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(q.name.clone(), RecordType::from(q.qtype)));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(q.dnssec_ok);
    msg.set_edns(edns);
    Ok((id, msg.to_vec().map_err(|e| e.to_string())?))
}

async fn ask(addr: SocketAddr, q: &Question, tcp_only: bool, timeout: Duration) -> Outcome {
    let (id, wire) = match encode(q) {
        Ok(x) => x,
        Err(e) => return Outcome::Unanswered(format!("cannot encode the question: {e}")),
    };
    if !tcp_only {
        match udp(addr, id, &wire, timeout).await {
            Ok(raw) => {
                let outcome = decode(raw, Transport::Udp);
                let truncated = matches!(&outcome, Outcome::Answer { msg, .. } if msg.metadata.truncation);
                if !truncated {
                    return outcome;
                }
            }
            Err(e) => return Outcome::Unanswered(e),
        }
    }
    match tcp(addr, id, &wire, timeout).await {
        Ok(raw) => decode(raw, Transport::Tcp),
        Err(e) => Outcome::Unanswered(e),
    }
}

fn decode(raw: Vec<u8>, transport: Transport) -> Outcome {
    match Message::from_vec(&raw) {
        Ok(msg) => Outcome::Answer { transport, msg: Box::new(msg) },
        Err(e) => Outcome::Malformed { transport, raw, error: e.to_string() },
    }
}

fn same_id(raw: &[u8], id: u16) -> bool {
    raw.get(..2) == Some(&id.to_be_bytes()[..])
}

/// One UDP exchange on a socket of its own: asked again once after `timeout` of silence;
/// datagrams with another ID (late answers to someone else) are passed over.
async fn udp(addr: SocketAddr, id: u16, wire: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let sock = crate::resolve::udp_client(addr).await.map_err(|e| format!("UDP: {e}"))?;
    let mut buf = vec![0u8; 65_535];
    for _ in 0..2 {
        sock.send(wire).await.map_err(|e| format!("UDP: {e}"))?;
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                // An ICMP port unreachable shows here: nothing listens, no point in asking again.
                Ok(Err(e)) => return Err(format!("UDP: {e}")),
                Ok(Ok(n)) => {
                    if let Some(raw) = buf.get(..n).filter(|r| same_id(r, id)) {
                        return Ok(raw.to_vec());
                    }
                }
            }
        }
    }
    Err(format!("no answer over UDP, asked twice, {} s each", timeout.as_secs_f64()))
}

/// One TCP exchange (RFC 1035 §4.2.2 framing) on a connection of its own, tried twice.
async fn tcp(addr: SocketAddr, id: u16, wire: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let mut why = String::new();
    for _ in 0..2 {
        why = match tokio::time::timeout(timeout, tcp_once(addr, wire)).await {
            Ok(Ok(raw)) if same_id(&raw, id) => return Ok(raw),
            Ok(Ok(_)) => "an answer over TCP with another ID".into(),
            Ok(Err(e)) => format!("TCP: {e}"),
            Err(_) => format!("no answer over TCP, asked twice, {} s each", timeout.as_secs_f64()),
        };
    }
    Err(why)
}

async fn tcp_once(addr: SocketAddr, wire: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    r53dns_proto::frame::write(&mut s, wire).await?;
    r53dns_proto::frame::read(&mut s).await
}

/// What differs between two servers' outcomes for `q`; empty when they are alike.
pub fn differences(q: &Question, a: &Outcome, b: &Outcome, ignore_serial: bool) -> Vec<Kind> {
    match (a, b) {
        (Outcome::Unanswered(_), _) | (_, Outcome::Unanswered(_)) => vec![Kind::Unanswered],
        // Two answers the parser cannot read are alike when they are the same octets.
        (Outcome::Malformed { raw: x, .. }, Outcome::Malformed { raw: y, .. }) if x.get(2..) == y.get(2..) => {
            Vec::new()
        }
        (Outcome::Malformed { .. }, _) | (_, Outcome::Malformed { .. }) => vec![Kind::Malformed],
        (Outcome::Answer { msg: x, .. }, Outcome::Answer { msg: y, .. }) => compare_messages(q, x, y, ignore_serial),
    }
}

fn compare_messages(q: &Question, x: &Message, y: &Message, ignore_serial: bool) -> Vec<Kind> {
    let mut kinds = Vec::new();
    if x.metadata.response_code != y.metadata.response_code {
        kinds.push(Kind::Rcode);
    }
    if q.qtype == ANY {
        if x.answers.is_empty() != y.answers.is_empty() {
            kinds.push(Kind::Answer);
        }
        return kinds;
    }
    if flags(x) != flags(y) {
        kinds.push(Kind::Flags);
    }
    if questions(x) != questions(y) {
        kinds.push(Kind::Question);
    }
    if edns(x) != edns(y) {
        kinds.push(Kind::Edns);
    }
    for (kind, a, b) in [
        (Kind::Answer, &x.answers, &y.answers),
        (Kind::Authority, &x.authorities, &y.authorities),
        (Kind::Additional, &x.additionals, &y.additionals),
    ] {
        let key = |r: &Record| record_key(r, ignore_serial);
        let (mut ka, mut kb): (Vec<_>, Vec<_>) = (a.iter().map(key).collect(), b.iter().map(key).collect());
        ka.sort();
        kb.sort();
        if ka != kb {
            kinds.push(kind);
        }
    }
    kinds
}

/// A record as compared: owner in lower case, the wire form in canonical form (RFC 4034
/// §6.2: uncompressed, names in RDATA of the older types in lower case), the SOA serial zeroed
/// when serials are ignored.
fn record_key(r: &Record, ignore_serial: bool) -> Vec<u8> {
    let mut r = r.clone();
    r.name = r.name.to_lowercase();
    if ignore_serial && let RData::SOA(soa) = &mut r.data {
        soa.serial = 0;
    }
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_canonical_form(true);
    if r.emit(&mut enc).is_ok() {
        return buf;
    }
    // What cannot be encoded again is compared by its text.
    r.to_string().into_bytes()
}

fn rcode_text(m: &Message) -> String {
    let code = u16::from(m.metadata.response_code);
    r53dns_zone::proto::rcode::name(code).map_or_else(|| format!("RCODE{code}"), str::to_owned)
}

/// The header flags as dig shows them, the opcode first when it is not QUERY.
fn flags(m: &Message) -> String {
    let h = &m.metadata;
    let mut out = Vec::new();
    if h.op_code != OpCode::Query {
        out.push(format!("opcode {}", u8::from(h.op_code)));
    }
    for (set, name) in [
        (h.message_type == MessageType::Response, "qr"),
        (h.authoritative, "aa"),
        (h.truncation, "tc"),
        (h.recursion_desired, "rd"),
        (h.recursion_available, "ra"),
        (h.authentic_data, "ad"),
        (h.checking_disabled, "cd"),
    ] {
        if set {
            out.push(name.to_owned());
        }
    }
    out.join(" ")
}

fn questions(m: &Message) -> Vec<String> {
    m.queries
        .iter()
        .map(|q| format!("{} {} {}", q.name, q.query_class, type_to_string(u16::from(q.query_type))))
        .collect()
}

fn edns(m: &Message) -> String {
    match &m.edns {
        None => "none".into(),
        Some(e) => format!("version {}{}", e.version(), if e.flags().dnssec_ok { ", do" } else { "" }),
    }
}

fn texts(records: &[Record]) -> Vec<String> {
    let mut t: Vec<String> = records.iter().map(ToString::to_string).collect();
    t.sort();
    t
}

/// Records of `a` not in `b` and of `b` not in `a`, as multisets by comparison key.
fn only(a: &[Record], b: &[Record], ignore_serial: bool) -> (Vec<String>, Vec<String>) {
    let keyed = |rs: &[Record]| {
        let mut v: Vec<(Vec<u8>, String)> = rs.iter().map(|r| (record_key(r, ignore_serial), r.to_string())).collect();
        v.sort();
        v
    };
    let (ka, kb) = (keyed(a), keyed(b));
    let (mut i, mut j) = (0, 0);
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    while i < ka.len() || j < kb.len() {
        match (ka.get(i), kb.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                oa.push(x.1.clone());
                i += 1;
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                ob.push(y.1.clone());
                j += 1;
            }
            (Some(x), None) => {
                oa.push(x.1.clone());
                i += 1;
            }
            (None, None) => break,
        }
    }
    (oa, ob)
}

/// A one-line account of an outcome, for the lines of a difference that are not records.
fn brief(o: &Outcome) -> String {
    match o {
        Outcome::Unanswered(why) => why.clone(),
        Outcome::Malformed { error, raw, .. } => format!("unreadable answer of {} octets: {error}", raw.len()),
        Outcome::Answer { msg, .. } => {
            format!("answered {} with {} answer records", rcode_text(msg), msg.answers.len())
        }
    }
}

impl Difference {
    /// A block for people: the question and what differs, then for each kind the line(s) of
    /// the `--against` server after `-` and of `--server` after `+` (see [`legend`]).
    pub fn to_text(&self, ignore_serial: bool) -> String {
        let mut out =
            format!("{}: {}\n", self.question, self.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "));
        let pair = |out: &mut String, what: &str, a: &str, b: &str| {
            out.push_str(&format!("  {what}:\n    - {a}\n    + {b}\n"));
        };
        let (Outcome::Answer { msg: x, .. }, Outcome::Answer { msg: y, .. }) = (&self.against, &self.server) else {
            let what = self.kinds.first().map_or("outcome", |k| k.as_str());
            pair(&mut out, what, &brief(&self.against), &brief(&self.server));
            return out;
        };
        for kind in &self.kinds {
            match kind {
                Kind::Rcode => pair(&mut out, "rcode", &rcode_text(x), &rcode_text(y)),
                Kind::Flags => pair(&mut out, "flags", &flags(x), &flags(y)),
                Kind::Question => pair(&mut out, "question", &questions(x).join(", "), &questions(y).join(", ")),
                Kind::Edns => pair(&mut out, "edns", &edns(x), &edns(y)),
                Kind::Answer if self.question.qtype == ANY => {
                    let size = |m: &Message| match m.answers.len() {
                        0 => "empty".to_owned(),
                        n => format!("{n} records"),
                    };
                    pair(&mut out, "answer (ANY)", &size(x), &size(y));
                }
                Kind::Answer | Kind::Authority | Kind::Additional => {
                    let (a, b) = match kind {
                        Kind::Answer => (&x.answers, &y.answers),
                        Kind::Authority => (&x.authorities, &y.authorities),
                        _ => (&x.additionals, &y.additionals),
                    };
                    out.push_str(&format!("  {}:\n", kind.as_str()));
                    let (oa, ob) = only(a, b, ignore_serial);
                    for r in oa {
                        out.push_str(&format!("    - {r}\n"));
                    }
                    for r in ob {
                        out.push_str(&format!("    + {r}\n"));
                    }
                }
                Kind::Unanswered | Kind::Malformed => {}
            }
        }
        out
    }

    /// One JSON object (no newline): the question, the kinds of difference, and both sides
    /// in full (records sorted, as their order does not count).
    pub fn to_json(&self, opts: &Options) -> String {
        let line = JsonLine {
            question: JsonQuestion {
                name: self.question.name.to_string(),
                qtype: type_to_string(self.question.qtype),
                dnssec_ok: self.question.dnssec_ok,
            },
            kinds: self.kinds.iter().map(|k| k.as_str()).collect(),
            against: JsonSide::new(opts.against, &self.against),
            server: JsonSide::new(opts.server, &self.server),
        };
        serde_json::to_string(&line).unwrap_or_default()
    }
}

// The JSON lines, as structs so that the fields come in this order (question first).
#[derive(Serialize)]
struct JsonLine {
    question: JsonQuestion,
    kinds: Vec<&'static str>,
    against: JsonSide,
    server: JsonSide,
}

#[derive(Serialize)]
struct JsonQuestion {
    name: String,
    #[serde(rename = "type")]
    qtype: String,
    #[serde(rename = "do")]
    dnssec_ok: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonSide {
    Unanswered {
        addr: String,
        unanswered: String,
    },
    Malformed {
        addr: String,
        transport: &'static str,
        malformed: String,
        length: usize,
    },
    Answer {
        addr: String,
        transport: &'static str,
        rcode: String,
        flags: String,
        edns: String,
        question: Vec<String>,
        answer: Vec<String>,
        authority: Vec<String>,
        additional: Vec<String>,
    },
}

impl JsonSide {
    fn new(addr: SocketAddr, o: &Outcome) -> Self {
        let addr = addr.to_string();
        match o {
            Outcome::Unanswered(why) => Self::Unanswered { addr, unanswered: why.clone() },
            Outcome::Malformed { transport, raw, error } => {
                Self::Malformed { addr, transport: transport.as_str(), malformed: error.clone(), length: raw.len() }
            }
            Outcome::Answer { transport, msg } => Self::Answer {
                addr,
                transport: transport.as_str(),
                rcode: rcode_text(msg),
                flags: flags(msg),
                edns: edns(msg),
                question: questions(msg),
                answer: texts(&msg.answers),
                authority: texts(&msg.authorities),
                additional: texts(&msg.additionals),
            },
        }
    }
}

/// The line that says which side is which in [`Difference::to_text`].
pub fn legend(opts: &Options) -> String {
    format!("# - answered by --against {}, + by --server {}\n", opts.against, opts.server)
}

impl Report {
    /// Questions that differ (unanswered ones included).
    pub fn different(&self) -> usize {
        self.differences.len()
    }

    /// The counts, for the end of the output.
    pub fn summary(&self, opts: &Options) -> String {
        format!(
            "questions {}, equal {}, different {}; unanswered by --against {}: {}, by --server {}: {}\n",
            self.asked,
            self.equal,
            self.different(),
            opts.against,
            self.unanswered_against,
            opts.server,
            self.unanswered_server
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Record {
        // A zone-file line parsed through a response: owner TTL IN TYPE RDATA.
        let mut f = text.split_whitespace();
        let name = Name::from_ascii(f.next().unwrap()).unwrap();
        let ttl: u32 = f.next().unwrap().parse().unwrap();
        let _class = f.next();
        let rdata = match f.next().unwrap() {
            "A" => RData::A(f.next().unwrap().parse::<std::net::Ipv4Addr>().unwrap().into()),
            "CNAME" => RData::CNAME(hickory_proto::rr::rdata::CNAME(Name::from_ascii(f.next().unwrap()).unwrap())),
            t => panic!("type {t}"),
        };
        Record::from_rdata(name, ttl, rdata)
    }

    fn answer(records: &[&str]) -> Outcome {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        for r in records {
            m.add_answer(record(r));
        }
        Outcome::Answer { transport: Transport::Udp, msg: Box::new(m) }
    }

    fn question(name: &str, t: &str) -> Question {
        Question { name: parse_name(name).unwrap(), qtype: type_from_str(t).unwrap(), dnssec_ok: false }
    }

    #[test]
    fn query_file_lines() {
        let text = "# comment\n\nwww.example.com A\nmail.example.com. aaaa ; trailing\nbare.example.com\n\
                    x.example.com TYPE65280\n";
        let qs = parse_queries(text, "q.txt").unwrap();
        let shown: Vec<String> = qs.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["www.example.com. A", "mail.example.com. AAAA", "bare.example.com. A", "x.example.com. TYPE65280"]
        );
    }

    #[test]
    fn bad_query_line_names_file_and_line() {
        let e = parse_queries("www.example.com A\nwww.example.com BOGUS\n", "q.txt").unwrap_err();
        assert!(e.0.starts_with("q.txt:2: unknown type"), "{e}");
        let e = parse_queries("\n\na b c\n", "q.txt").unwrap_err();
        assert!(e.0.starts_with("q.txt:3: expected"), "{e}");
        let e = parse_queries("a..b A\n", "q.txt").unwrap_err();
        assert!(e.0.starts_with("q.txt:1: bad name"), "{e}");
    }

    #[test]
    fn addresses_default_to_port_53() {
        assert_eq!(parse_addr("192.0.2.1").unwrap(), "192.0.2.1:53".parse().unwrap());
        assert_eq!(parse_addr("192.0.2.1:5300").unwrap(), "192.0.2.1:5300".parse().unwrap());
        assert_eq!(parse_addr("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(parse_addr("[::1]").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(parse_addr("[::1]:5300").unwrap(), "[::1]:5300".parse().unwrap());
        assert!(parse_addr("192.0.2.1:x").is_err());
    }

    #[test]
    fn order_and_name_case_do_not_count() {
        let q = question("www.example.com", "A");
        let a = answer(&["www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"]);
        let b = answer(&["WWW.example.com. 300 IN A 192.0.2.2", "www.example.com. 300 IN A 192.0.2.1"]);
        assert!(differences(&q, &a, &b, false).is_empty());
        let c = answer(&["www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.3"]);
        assert_eq!(differences(&q, &a, &c, false), [Kind::Answer]);
        let ttl = answer(&["www.example.com. 60 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"]);
        assert_eq!(differences(&q, &a, &ttl, false), [Kind::Answer]);
        let alias = answer(&["alias.example.com. 300 IN CNAME WWW.example.com."]);
        let lower = answer(&["alias.example.com. 300 IN CNAME www.example.com."]);
        assert!(differences(&q, &alias, &lower, false).is_empty());
    }

    #[test]
    fn any_compares_rcode_and_emptiness_only() {
        let q = question("example.com", "ANY");
        let a = answer(&["example.com. 300 IN A 192.0.2.1"]);
        let b = answer(&["example.com. 300 IN A 192.0.2.2", "example.com. 300 IN A 192.0.2.3"]);
        assert!(differences(&q, &a, &b, false).is_empty());
        assert_eq!(differences(&q, &a, &answer(&[]), false), [Kind::Answer]);
    }

    #[test]
    fn text_shows_each_side() {
        let q = question("www.example.com", "A");
        let a = answer(&["www.example.com. 300 IN A 192.0.2.1"]);
        let b = answer(&["www.example.com. 300 IN A 192.0.2.9"]);
        let kinds = differences(&q, &a, &b, false);
        let d = Difference { question: q, kinds, against: a, server: b };
        let text = d.to_text(false);
        assert!(text.starts_with("www.example.com. A: answer\n"), "{text}");
        assert!(text.contains("- www.example.com. 300 IN A 192.0.2.1"), "{text}");
        assert!(text.contains("+ www.example.com. 300 IN A 192.0.2.9"), "{text}");
    }
}
