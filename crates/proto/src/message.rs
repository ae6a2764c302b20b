//! Whole-message parsing for the slow paths (UPDATE, TSIG, NOTIFY): every record of every
//! section, names decompressed, including names inside the RDATA of the types that may
//! carry compressed names. Queries never come through here.

use r53dns_zone::Name;
use r53dns_zone::name::MAX_NAME_LEN;
use r53dns_zone::rdata::{Piece, layout};

use crate::wire::{read_name, u16_at};

/// One resource record as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner, case preserved.
    pub name: Name,
    /// Type code.
    pub rtype: u16,
    /// Class code (in UPDATE: the zone class, ANY or NONE).
    pub class: u16,
    /// TTL.
    pub ttl: u32,
    /// RDATA with any compressed names expanded.
    pub rdata: Vec<u8>,
    /// Where the record starts in the message.
    pub offset: usize,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Header ID.
    pub id: u16,
    /// Header flags (second 16-bit word).
    pub flags: u16,
    /// Question (zone) section: name, type, class.
    pub questions: Vec<(Name, u16, u16)>,
    /// Answer (prerequisite) section.
    pub answers: Vec<Record>,
    /// Authority (update) section.
    pub authority: Vec<Record>,
    /// Additional section.
    pub additional: Vec<Record>,
}

impl Message {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

fn name_at(msg: &[u8], at: usize) -> Option<(Name, usize)> {
    let mut buf = [0u8; MAX_NAME_LEN];
    let (len, used) = read_name(msg, at, &mut buf)?;
    Some((Name::from_wire(&buf[..len])?, used))
}

/// The RDATA at `msg[at..at + len]` with its names expanded: every name the zone crate's
/// type table places (RFC 3597 §4 lets senders compress only the RFC 1035 types' names, but
/// SRV and DNAME targets turn up compressed from some senders too).
fn rdata_at(msg: &[u8], code: u16, at: usize, len: usize) -> Option<Vec<u8>> {
    let end = at.checked_add(len)?;
    let raw = msg.get(at..end)?;
    // Empty RDATA is how UPDATE says "any value" (RFC 2136 §2.5.2), whatever the type.
    if len == 0 {
        return Some(raw.to_vec());
    }
    let mut out = Vec::with_capacity(len + 16);
    let mut pos = at;
    let mut buf = [0u8; MAX_NAME_LEN];
    for piece in layout(code) {
        let next = match piece {
            Piece::Fixed(n) => pos.checked_add(n)?,
            Piece::Counted => pos.checked_add(1 + usize::from(*raw.get(pos - at)?))?,
            Piece::Name { .. } => {
                if pos >= end {
                    return None;
                }
                let (n, used) = read_name(msg, pos, &mut buf)?;
                out.extend_from_slice(&buf[..n]);
                pos += used;
                continue;
            }
            Piece::Rest => break,
        };
        out.extend_from_slice(msg.get(pos..next)?);
        pos = next;
    }
    if pos > end {
        return None;
    }
    out.extend_from_slice(&msg[pos..end]);
    Some(out)
}

fn record_at(msg: &[u8], at: usize) -> Option<(Record, usize)> {
    let (name, used) = name_at(msg, at)?;
    let p = at + used;
    let (rtype, class, ttl, rdlen) = (u16_at(msg, p)?, u16_at(msg, p + 2)?, u32_at(msg, p + 4)?, u16_at(msg, p + 8)?);
    let rdata = rdata_at(msg, rtype, p + 10, usize::from(rdlen))?;
    Some((Record { name, rtype, class, ttl, rdata, offset: at }, p + 10 + usize::from(rdlen)))
}

/// Parses a whole message; `None` if any part is malformed or bytes are left over.
pub fn parse(msg: &[u8]) -> Option<Message> {
    let id = u16_at(msg, 0)?;
    let flags = u16_at(msg, 2)?;
    let counts = [u16_at(msg, 4)?, u16_at(msg, 6)?, u16_at(msg, 8)?, u16_at(msg, 10)?];
    let mut pos = 12;
    let mut questions = Vec::new();
    for _ in 0..counts[0] {
        let (name, used) = name_at(msg, pos)?;
        pos += used;
        questions.push((name, u16_at(msg, pos)?, u16_at(msg, pos + 2)?));
        pos += 4;
    }
    let mut sections: [Vec<Record>; 3] = Default::default();
    for (i, section) in sections.iter_mut().enumerate() {
        for _ in 0..counts[i + 1] {
            let (rr, next) = record_at(msg, pos)?;
            section.push(rr);
            pos = next;
        }
    }
    if pos != msg.len() {
        return None;
    }
    let [answers, authority, additional] = sections;
    Some(Message { id, flags, questions, answers, authority, additional })
}

/// The start of every reply that is not an answer from the zone data (error answers to
/// queries, transfers, signed queries, UPDATE, NOTIFY): the request's ID, opcode, RD and CD
/// (RFC 1035 §4.1.1, RFC 6840 §5.9), QR, AA when authoritative, the rcode, and the question
/// (UPDATE: the zone section) echoed when the request had one. Writing one allocates
/// nothing when `out` has room: the answer path uses it for its error answers.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    id: u16,
    opcode: u8,
    /// The request's RD and CD bits, in place.
    echoed: u16,
    question: Option<(&'a [u8], u16, u16)>,
}

impl<'a> Reply<'a> {
    /// A reply with these fields; `question` is the name in wire form, type and class.
    pub fn new(id: u16, opcode: u8, question: Option<(&'a [u8], u16, u16)>) -> Self {
        Self { id, opcode: opcode & 0xf, echoed: 0, question }
    }

    /// A reply to a request read by [`crate::wire::read_request`], with its question when
    /// `with_question` and one was read.
    pub fn to_request(req: &'a crate::wire::Request, with_question: bool) -> Self {
        let question = (with_question && req.qname_len > 0).then(|| (req.qname(), req.qtype, req.qclass));
        Self { echoed: req.flags & (crate::wire::RD | crate::wire::CD), ..Self::new(req.id, req.opcode(), question) }
    }

    /// A reply to the raw request `msg`, with the first question of `parsed` when it could be
    /// parsed. A request too short for its opcode is taken as an UPDATE's.
    pub fn to(msg: &[u8], parsed: Option<&'a Message>) -> Self {
        let id = u16::from_be_bytes([msg.first().copied().unwrap_or(0), msg.get(1).copied().unwrap_or(0)]);
        let opcode = msg.get(2).map_or(r53dns_zone::proto::opcode::UPDATE, |b| (b >> 3) & 0xf);
        let question = parsed.and_then(|p| p.questions.first()).map(|(n, t, c)| (n.wire(), *t, *c));
        let flags = u16::from_be_bytes([msg.get(2).copied().unwrap_or(0), msg.get(3).copied().unwrap_or(0)]);
        Self { echoed: flags & (crate::wire::RD | crate::wire::CD), ..Self::new(id, opcode, question) }
    }

    /// Writes the header and question of the reply with `rcode` to `out` (emptied first).
    pub fn write(&self, out: &mut Vec<u8>, rcode: u8, authoritative: bool) {
        let aa: u16 = if authoritative { 0x0400 } else { 0 };
        let flags = 0x8000 | u16::from(self.opcode) << 11 | aa | self.echoed | u16::from(rcode & 0xf);
        out.clear();
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0, u8::from(self.question.is_some()), 0, 0, 0, 0, 0, 0]);
        if let Some((name, t, c)) = self.question {
            out.extend_from_slice(name);
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&c.to_be_bytes());
        }
    }

    /// The reply with `rcode`, as a new message.
    pub fn with(&self, rcode: u8, authoritative: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write(&mut out, rcode, authoritative);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r53dns_zone::rtype;

    #[test]
    fn compressed_names_in_owner_and_rdata_are_expanded() {
        // Header: one question, one answer MX pointing back into the question name.
        let mut m = vec![0, 1, 0x28, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x07example\x03com\x00\x00\x06\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 7, 0, 10, 2, b'm', b'x', 0xc0, 12]);
        let parsed = parse(&m).unwrap();
        assert_eq!(parsed.opcode(), 5);
        assert_eq!(parsed.questions[0].0.wire(), b"\x07example\x03com\x00");
        let mx = &parsed.answers[0];
        assert_eq!(mx.rtype, rtype::MX);
        assert_eq!(mx.rdata, b"\x00\x0a\x02mx\x07example\x03com\x00");
    }

    #[test]
    fn trailing_bytes_and_short_records_are_rejected() {
        let mut m = vec![0, 1, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x00\x00\x06\x00\x01");
        assert!(parse(&m).is_some());
        m.push(0);
        assert!(parse(&m).is_none());
        let mut m = vec![0, 1, 0x28, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 9, 1, 2]);
        assert!(parse(&m).is_none());
        // An SOA with empty RDATA (an UPDATE deleting the RRset) is fine.
        let mut m = vec![0, 1, 0x28, 0, 0, 0, 0, 0, 0, 1, 0, 0];
        m.extend_from_slice(&[0, 0, 6, 0, 255, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse(&m).unwrap().authority[0].rdata, b"");
    }

    #[test]
    fn replies_echo_id_opcode_and_question() {
        let mut q = vec![0xab, 0xcd, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x00\x00\x06\x00\x01");
        let parsed = parse(&q).unwrap();
        let r = Reply::to(&q, Some(&parsed)).with(9, false);
        assert_eq!(&r[..12], [0xab, 0xcd, 0xa8, 9, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[12..], &q[12..]);
        let r = Reply::to(&q[..2], None).with(1, true);
        assert_eq!(r, [0xab, 0xcd, 0xac, 1, 0, 0, 0, 0, 0, 0, 0, 0], "too short: an UPDATE's, no question");
    }
}
