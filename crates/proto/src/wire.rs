//! Reading requests straight from the datagram: header, one question, EDNS. No allocation.

use r53dns_zone::name::{MAX_LABEL_LEN, MAX_NAME_LEN};
use r53dns_zone::rtype;

pub use r53dns_zone::proto::{opcode, rcode};

/// The EDNS(0) view of a request (RFC 6891 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size, as sent (RFC 6891 §6.2.5: below 512 means 512).
    pub udp_size: u16,
    /// EDNS version (only 0 is answered; others get BADVERS).
    pub version: u8,
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
    /// EDNS Client Subnet (RFC 7871), if the client sent one.
    pub client_subnet: Option<ClientSubnet>,
    /// The client asked for the server's NSID (RFC 5001).
    pub nsid: bool,
    /// The client padded its request (RFC 7830): its answer is padded on an encrypted
    /// transport.
    pub padding: bool,
}

/// What went wrong while reading a request, and so how to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Not even a header, or a response: say nothing.
    Drop,
    /// Answer FORMERR; `question` says whether the question was read (it is echoed then).
    FormErr {
        /// The question was read and is echoed.
        question: bool,
    },
}

/// A parsed request. The name is decompressed into `qname`, case preserved.
#[derive(Debug, Clone)]
pub struct Request {
    /// Message ID.
    pub id: u16,
    /// Second header octet pair: opcode, RD, CD and so on, as received.
    pub flags: u16,
    /// The question's name in wire form, decompressed; valid up to `qname_len`.
    pub qname: [u8; MAX_NAME_LEN],
    /// Octets of `qname` in use.
    pub qname_len: usize,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The OPT record, if there is one.
    pub edns: Option<Edns>,
    /// IXFR: the serial of the SOA in the authority section (the client's version).
    pub ixfr_serial: Option<u32>,
    /// The additional section carries a TSIG record (RFC 8945).
    pub tsig: bool,
}

impl Request {
    /// The opcode (RFC 1035 §4.1.1).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The question's name in wire form.
    pub fn qname(&self) -> &[u8] {
        &self.qname[..self.qname_len]
    }
}

/// Header bit: a response.
pub const QR: u16 = 0x8000;
/// Header bit: authoritative answer.
pub const AA: u16 = 0x0400;
/// Header bit: truncated.
pub const TC: u16 = 0x0200;
/// Header bit: recursion desired.
pub const RD: u16 = 0x0100;
/// Header bit: checking disabled.
pub const CD: u16 = 0x0010;
/// The opcode's bits in the flags word.
pub const OPCODE_MASK: u16 = 0x7800;

/// The big-endian `u16` at `at`, if `b` is long enough.
pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

/// Reads a possibly compressed name at `at` into `out`; returns (name length, bytes consumed
/// at `at`). Pointers must point backwards, and at most 127 labels are followed, so a hostile
/// packet costs bounded time.
pub fn read_name(msg: &[u8], at: usize, out: &mut [u8; MAX_NAME_LEN]) -> Option<(usize, usize)> {
    let mut pos = at;
    let mut len = 0;
    let mut consumed = None;
    let mut hops = 0;
    loop {
        let b = *msg.get(pos)?;
        match b & 0xc0 {
            0x00 => {
                let l = usize::from(b);
                if l > MAX_LABEL_LEN || len + 1 + l > MAX_NAME_LEN {
                    return None;
                }
                out[len..len + 1 + l].copy_from_slice(msg.get(pos..pos + 1 + l)?);
                len += 1 + l;
                pos += 1 + l;
                if l == 0 {
                    return Some((len, consumed.unwrap_or_else(|| pos - at)));
                }
            }
            0xc0 => {
                let target = usize::from(u16_at(msg, pos)? & 0x3fff);
                if target >= pos || hops > 127 {
                    return None;
                }
                hops += 1;
                if consumed.is_none() {
                    consumed = Some(pos + 2 - at);
                }
                pos = target;
            }
            _ => return None, // 0x40 and 0x80 label types are obsolete or reserved (RFC 6891 §5)
        }
    }
}

/// The question type of a request, read without parsing the rest (cheap pre-checks).
pub fn question_type(msg: &[u8]) -> Option<u16> {
    let used = skip_name(msg, 12)?;
    u16_at(msg, 12 + used)
}

/// Skips a name without copying it; returns bytes consumed.
pub fn skip_name(msg: &[u8], at: usize) -> Option<usize> {
    let mut pos = at;
    loop {
        let b = *msg.get(pos)?;
        match b & 0xc0 {
            0x00 if b == 0 => return Some(pos + 1 - at),
            0x00 => pos += 1 + usize::from(b),
            0xc0 => {
                msg.get(pos + 1)?;
                return Some(pos + 2 - at);
            }
            _ => return None,
        }
    }
}

impl Request {
    /// A request with nothing read yet.
    pub fn empty() -> Self {
        Self {
            id: 0,
            flags: 0,
            qname: [0; MAX_NAME_LEN],
            qname_len: 0,
            qtype: 0,
            qclass: 0,
            edns: None,
            ixfr_serial: None,
            tsig: false,
        }
    }
}

/// An EDNS Client Subnet option (RFC 7871 §6) as the client sent it, to route by and to
/// echo with a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// 1 (IPv4), 2 (IPv6) or 0 (no address: the client opted out).
    pub family: u16,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
    /// The address octets sent (`(source + 7) / 8` of them), zero-padded.
    addr: [u8; 16],
}

impl ClientSubnet {
    /// The address routing sees: the subnet's first address (0.0.0.0 for family 0, which
    /// tells the server not to route by the resolver's address either).
    pub fn ip(&self) -> std::net::IpAddr {
        if self.family == 2 {
            std::net::IpAddr::from(self.addr)
        } else {
            std::net::IpAddr::from([self.addr[0], self.addr[1], self.addr[2], self.addr[3]])
        }
    }

    /// The option's wire form with `scope` (code, length, data).
    pub fn option(&self, scope: u8) -> ([u8; 24], usize) {
        let n = usize::from(self.source).div_ceil(8);
        let mut o = [0u8; 24];
        o[..2].copy_from_slice(&8u16.to_be_bytes());
        o[2..4].copy_from_slice(&u16::try_from(4 + n).unwrap_or(4).to_be_bytes());
        o[4..6].copy_from_slice(&self.family.to_be_bytes());
        o[6] = self.source;
        o[7] = scope;
        o[8..8 + n].copy_from_slice(&self.addr[..n]);
        (o, 8 + n)
    }
}

/// The EDNS Client Subnet option (code 8) among the OPT options, `Err` when it is malformed
/// (RFC 7871 §7.1: unknown family, a prefix longer than the family's address, address
/// octets that do not match the prefix, bits set past it, or a scope in a query: FORMERR,
/// as BIND and Knot answer). Unknown options are skipped (RFC 6891 §6.1.2).
fn client_subnet(mut opts: &[u8]) -> Result<Option<ClientSubnet>, ()> {
    while opts.len() >= 4 {
        let code = u16::from_be_bytes([opts[0], opts[1]]);
        let len = usize::from(u16::from_be_bytes([opts[2], opts[3]]));
        let data = opts.get(4..4 + len).ok_or(())?;
        if code == 8 {
            let [f0, f1, source, scope, addr @ ..] = data else { return Err(()) };
            let family = u16::from_be_bytes([*f0, *f1]);
            let max = match family {
                0 => 0,
                1 => 32,
                2 => 128,
                _ => return Err(()),
            };
            let n = usize::from(*source).div_ceil(8);
            if *scope != 0 || *source > max || addr.len() != n {
                return Err(());
            }
            if let Some(last) = addr.last()
                && source % 8 != 0
                && last & (0xff >> (source % 8)) != 0
            {
                return Err(());
            }
            let mut a = [0u8; 16];
            a[..n].copy_from_slice(addr);
            return Ok(Some(ClientSubnet { family, source: *source, addr: a }));
        }
        opts = &opts[4 + len..];
    }
    Ok(None)
}

/// Whether the OPT options carry one with this code.
/// The EDNS Padding option's code (RFC 7830).
pub const PADDING: u16 = 12;

fn has_option(mut opts: &[u8], want: u16) -> bool {
    while opts.len() >= 4 {
        let code = u16::from_be_bytes([opts[0], opts[1]]);
        let len = usize::from(u16::from_be_bytes([opts[2], opts[3]]));
        if code == want {
            return true;
        }
        let Some(rest) = opts.get(4 + len..) else { return false };
        opts = rest;
    }
    false
}

/// Parses a request into `req`. Every index is checked; hostile input yields an error, never
/// a panic. On a FORMERR, `req` holds what was read (ID and flags at least) for the reply.
pub fn read_request(msg: &[u8], req: &mut Request) -> Result<(), ReadError> {
    let (Some(id), Some(flags)) = (u16_at(msg, 0), u16_at(msg, 2)) else {
        return Err(ReadError::Drop);
    };
    if msg.len() < 12 || flags & QR != 0 {
        return Err(ReadError::Drop);
    }
    let counts = [u16_at(msg, 4), u16_at(msg, 6), u16_at(msg, 8), u16_at(msg, 10)];
    let [Some(qd), Some(an), Some(ns), Some(ar)] = counts else {
        return Err(ReadError::Drop);
    };
    *req = Request::empty();
    req.id = id;
    req.flags = flags;
    let formerr = |question| ReadError::FormErr { question };
    if qd != 1 {
        return Err(formerr(false));
    }
    let Some((nlen, used)) = read_name(msg, 12, &mut req.qname) else {
        return Err(formerr(false));
    };
    req.qname_len = nlen;
    let mut pos = 12 + used;
    let (Some(qtype), Some(qclass)) = (u16_at(msg, pos), u16_at(msg, pos + 2)) else {
        return Err(formerr(false));
    };
    req.qtype = qtype;
    req.qclass = qclass;
    pos += 4;
    // Skip answer and authority records to reach the OPT record.
    for i in 0..u32::from(an) + u32::from(ns) {
        let Some(n) = skip_name(msg, pos) else {
            return Err(formerr(true));
        };
        pos += n;
        let (Some(t), Some(rdlen)) = (u16_at(msg, pos), u16_at(msg, pos + 8)) else {
            return Err(formerr(true));
        };
        // RFC 1995 §3: an IXFR carries the client's SOA in the authority section.
        if i >= u32::from(an) && t == rtype::SOA {
            let at = pos + 10;
            let mname = skip_name(msg, at);
            let rname = mname.and_then(|m| skip_name(msg, at + m).map(|r| m + r));
            req.ixfr_serial = rname.and_then(|r| u32_at(msg, at + r));
        }
        pos += 10 + usize::from(rdlen);
    }
    for _ in 0..ar {
        let Some(n) = skip_name(msg, pos) else {
            return Err(formerr(true));
        };
        let name_at = pos;
        pos += n;
        let (Some(t), Some(class), Some(ttl), Some(rdlen)) =
            (u16_at(msg, pos), u16_at(msg, pos + 2), u32_at(msg, pos + 4), u16_at(msg, pos + 8))
        else {
            return Err(formerr(true));
        };
        pos += 10 + usize::from(rdlen);
        if pos > msg.len() {
            return Err(formerr(true));
        }
        if t == rtype::TSIG {
            req.tsig = true;
        }
        if t == rtype::OPT {
            // RFC 6891 §6.1.1: one OPT, owned by the root.
            if req.edns.is_some() || n != 1 || msg[name_at] != 0 {
                return Err(formerr(true));
            }
            let rdata = &msg[pos - usize::from(rdlen)..pos];
            let version = (ttl >> 16) as u8;
            // An unknown EDNS version gets BADVERS whatever its options say.
            let ecs = client_subnet(rdata);
            let client_subnet = ecs.unwrap_or(None);
            let nsid = has_option(rdata, 3);
            let padding = has_option(rdata, PADDING);
            req.edns =
                Some(Edns { udp_size: class, version, dnssec_ok: ttl & 0x8000 != 0, client_subnet, nsid, padding });
            if ecs.is_err() && version == 0 {
                return Err(formerr(true));
            }
        }
    }
    if pos > msg.len() {
        return Err(formerr(true));
    }
    Ok(())
}
