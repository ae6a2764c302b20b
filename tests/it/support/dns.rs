//! A small independent DNS client: builds queries, sends them over UDP or TCP, and parses
//! responses into comparable, canonical text.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use r53dns_zone::Name;
use r53dns_zone::name::wire_len;
use r53dns_zone::rdata::{Piece, canonical, layout, rdata_to_text, type_from_str, type_to_string};

/// A question and how to ask it.
#[derive(Debug, Clone)]
pub struct Query {
    pub id: u16,
    pub name: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
    pub opcode: u8,
    pub rd: bool,
    pub cd: bool,
    /// EDNS: (UDP size, DO, version).
    pub edns: Option<(u16, bool, u8)>,
}

impl Query {
    /// `name` in presentation form (absolute or not), `qtype` a mnemonic or TYPEnnn.
    pub fn new(name: &str, qtype: &str) -> Self {
        let n: Name = name.parse().unwrap_or_else(|e| panic!("bad query name {name}: {e}"));
        Self {
            id: 0x4242,
            name: n.wire().to_vec(),
            qtype: type_from_str(qtype).unwrap_or_else(|| panic!("bad type {qtype}")),
            qclass: 1,
            opcode: 0,
            rd: false,
            cd: false,
            edns: Some((1232, false, 0)),
        }
    }

    pub fn no_edns(mut self) -> Self {
        self.edns = None;
        self
    }

    pub fn bufsize(mut self, size: u16) -> Self {
        let e = self.edns.unwrap_or((size, false, 0));
        self.edns = Some((size, e.1, e.2));
        self
    }

    pub fn dnssec_ok(mut self) -> Self {
        let e = self.edns.unwrap_or((1232, true, 0));
        self.edns = Some((e.0, true, e.2));
        self
    }

    pub fn to_wire(&self) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&self.id.to_be_bytes());
        let mut flags: u16 = u16::from(self.opcode) << 11;
        if self.rd {
            flags |= 0x0100;
        }
        if self.cd {
            flags |= 0x0010;
        }
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(self.edns.is_some())]);
        m.extend_from_slice(&self.name);
        m.extend_from_slice(&self.qtype.to_be_bytes());
        m.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some((size, dnssec_ok, version)) = self.edns {
            m.push(0);
            m.extend_from_slice(&41u16.to_be_bytes());
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&[0, version, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        }
        m
    }
}

/// One resource record with names decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    pub owner: Vec<u8>,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

impl Rr {
    /// `owner ttl IN TYPE rdata`, names lower-cased so that case differences do not count.
    pub fn canonical(&self) -> String {
        let rdata = canonical(self.rtype, &self.rdata);
        let owner = Name::from_wire(&self.owner).map(|n| n.to_lowercase().to_text()).unwrap_or_default();
        format!("{owner} {} IN {} {}", self.ttl, type_to_string(self.rtype), rdata_to_text(self.rtype, &rdata))
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub id: u16,
    pub flags: u16,
    /// Full rcode: header bits plus the OPT extension.
    pub rcode: u16,
    pub question: Vec<(Vec<u8>, u16, u16)>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
    /// (UDP size, version, DO).
    pub opt: Option<(u16, u8, bool)>,
    pub size: usize,
}

impl Response {
    pub fn flag(&self, name: &str) -> bool {
        let bit = match name {
            "qr" => 0x8000,
            "aa" => 0x0400,
            "tc" => 0x0200,
            "rd" => 0x0100,
            "ra" => 0x0080,
            "ad" => 0x0020,
            "cd" => 0x0010,
            _ => panic!("unknown flag {name}"),
        };
        self.flags & bit != 0
    }

    /// Flags as dig prints them: `qr aa rd`.
    pub fn flags_text(&self) -> String {
        ["qr", "aa", "tc", "rd", "ra", "ad", "cd"]
            .iter()
            .filter(|f| self.flag(f))
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn rcode_text(&self) -> String {
        match self.rcode {
            0 => "NOERROR".into(),
            1 => "FORMERR".into(),
            2 => "SERVFAIL".into(),
            3 => "NXDOMAIN".into(),
            4 => "NOTIMP".into(),
            5 => "REFUSED".into(),
            6 => "YXDOMAIN".into(),
            9 => "NOTAUTH".into(),
            16 => "BADVERS".into(),
            n => format!("RCODE{n}"),
        }
    }

    /// A section as sorted canonical lines.
    pub fn section(&self, which: &str) -> Vec<String> {
        let rrs = match which {
            "answer" => &self.answer,
            "authority" => &self.authority,
            "additional" => &self.additional,
            _ => panic!("unknown section {which}"),
        };
        let mut v: Vec<String> = rrs.iter().map(Rr::canonical).collect();
        v.sort();
        v
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]])).ok_or_else(|| format!("short message at {at}"))
}

/// Reads a possibly compressed name; returns (wire name, bytes consumed).
pub fn read_name(msg: &[u8], at: usize) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut pos = at;
    let mut consumed = None;
    for _ in 0..256 {
        let b = *msg.get(pos).ok_or("name runs past the end")?;
        if b & 0xc0 == 0xc0 {
            let target = usize::from(u16_at(msg, pos)? & 0x3fff);
            if consumed.is_none() {
                consumed = Some(pos + 2 - at);
            }
            if target >= pos {
                return Err("forward compression pointer".into());
            }
            pos = target;
            continue;
        }
        if b & 0xc0 != 0 {
            return Err("bad label type".into());
        }
        let l = usize::from(b);
        out.extend_from_slice(msg.get(pos..pos + 1 + l).ok_or("label runs past the end")?);
        pos += 1 + l;
        if l == 0 {
            if out.len() > 255 {
                return Err("name too long".into());
            }
            return Ok((out, consumed.unwrap_or_else(|| pos - at)));
        }
    }
    Err("compression loop".into())
}

/// Parses a whole message strictly: any inconsistency is an error.
pub fn parse(msg: &[u8]) -> Result<Response, String> {
    let id = u16_at(msg, 0)?;
    let flags = u16_at(msg, 2)?;
    let counts = [u16_at(msg, 4)?, u16_at(msg, 6)?, u16_at(msg, 8)?, u16_at(msg, 10)?];
    let mut pos = 12;
    let mut question = Vec::new();
    for _ in 0..counts[0] {
        let (n, used) = read_name(msg, pos)?;
        pos += used;
        question.push((n, u16_at(msg, pos)?, u16_at(msg, pos + 2)?));
        pos += 4;
    }
    let mut sections: [Vec<Rr>; 3] = Default::default();
    let mut opt = None;
    let mut rcode = flags & 0xf;
    for (i, count) in counts[1..].iter().enumerate() {
        for _ in 0..*count {
            let (owner, used) = read_name(msg, pos)?;
            pos += used;
            let rtype = u16_at(msg, pos)?;
            let class = u16_at(msg, pos + 2)?;
            let ttl = u32::from(u16_at(msg, pos + 4)?) << 16 | u32::from(u16_at(msg, pos + 6)?);
            let rdlen = usize::from(u16_at(msg, pos + 8)?);
            pos += 10;
            let raw = msg.get(pos..pos + rdlen).ok_or("RDATA runs past the end")?;
            let rdata = decompress_rdata(msg, pos, rtype, raw)?;
            pos += rdlen;
            if rtype == 41 {
                if i != 2 || opt.is_some() {
                    return Err("misplaced or repeated OPT".into());
                }
                rcode |= ((ttl >> 24) as u16) << 4;
                opt = Some((class, (ttl >> 16) as u8, ttl & 0x8000 != 0));
                continue;
            }
            sections[i].push(Rr { owner, rtype, class, ttl, rdata });
        }
    }
    if pos != msg.len() {
        return Err(format!("{} trailing bytes", msg.len() - pos));
    }
    let [answer, authority, additional] = sections;
    Ok(Response { id, flags, rcode, question, answer, authority, additional, opt, size: msg.len() })
}

/// Expands compressed names inside RDATA where RFC 3597 §4 allows them (the RFC 1035
/// types); any other name is taken as it stands, so a compressed one shows.
fn decompress_rdata(msg: &[u8], at: usize, rtype: u16, raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut pos = at;
    for piece in layout(rtype) {
        match piece {
            Piece::Name { compressible: true } => {
                let (n, used) = read_name(msg, pos)?;
                out.extend_from_slice(&n);
                pos += used;
                continue;
            }
            Piece::Rest => break,
            Piece::Fixed(_) | Piece::Counted | Piece::Name { compressible: false } => {}
        }
        // A piece copied as it stands: its width in the original RDATA.
        let rest = msg.get(pos..at + raw.len()).ok_or("bad RDATA")?;
        let n = match piece {
            Piece::Fixed(n) => n,
            Piece::Counted => 1 + usize::from(*rest.first().ok_or("bad RDATA")?),
            _ => wire_len(rest).ok_or("bad name in RDATA")?,
        };
        out.extend_from_slice(rest.get(..n).ok_or("bad RDATA")?);
        pos += n;
    }
    out.extend_from_slice(msg.get(pos..at + raw.len()).ok_or("bad RDATA")?);
    Ok(out)
}

pub fn udp_exchange(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let from: std::net::IpAddr = if addr.is_ipv6() { "::1".parse().unwrap() } else { "127.0.0.1".parse().unwrap() };
    udp_exchange_from(from, addr, msg)
}

/// Like [`udp_exchange`] from a chosen loopback address (127.0.0.2…: another client network).
pub fn udp_exchange_from(from: std::net::IpAddr, addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    sock.send_to(msg, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

pub fn tcp_exchange(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed).ok()?;
    read_frame(&mut s)
}

pub fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Sends `q` over UDP and parses the reply; panics if there is none.
pub fn ask(addr: SocketAddr, q: &Query) -> Response {
    let raw = udp_exchange(addr, &q.to_wire()).unwrap_or_else(|| panic!("no UDP answer from {addr} for {q:?}"));
    parse(&raw).unwrap_or_else(|e| panic!("unparsable response to {q:?}: {e}"))
}

/// Sends `q` over TCP and parses the reply.
pub fn ask_tcp(addr: SocketAddr, q: &Query) -> Response {
    let raw = tcp_exchange(addr, &q.to_wire()).unwrap_or_else(|| panic!("no TCP answer from {addr} for {q:?}"));
    parse(&raw).unwrap_or_else(|e| panic!("unparsable response to {q:?}: {e}"))
}
