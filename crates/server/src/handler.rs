//! The one answer function: request bytes in, response bytes out. UDP and TCP both call it,
//! so they can never answer differently.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use r53dns_zone::{Client, LookupOptions, Rcode, ZoneSet, rtype};

use crate::cache::{Entry, Key, ResponseCache};
use crate::encode::{Encoder, Full, OPT_LEN};
use r53dns_proto::wire::{self, AA, CD, OPCODE_MASK, QR, RD, ReadError, Request, TC, opcode, rcode};

/// How the request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Datagram: the response must fit the client's advertised size.
    Udp,
    /// Stream: up to 65535 octets.
    Tcp,
}

/// Settings for answering, fixed for the life of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerConfig {
    /// The largest UDP response we send and advertise in OPT (RFC 6891 §6.2.5; 1232 is the
    /// DNS Flag Day 2020 value that avoids IP fragmentation).
    pub max_udp_payload: u16,
    /// Leave optional NS/addresses out of positive answers.
    pub minimal_responses: bool,
    /// Octets kept free under every size limit (512, the client's EDNS size, 65 535 on
    /// TCP) for a record appended afterwards: the TSIG signature of a signed answer
    /// (RFC 8945 §5.3). 0 for ordinary answers.
    pub reserve: u16,
    /// Answer to CHAOS `id.server` and `hostname.bind` (empty: REFUSED, as for any other
    /// CHAOS name).
    pub identity: &'static str,
    /// Answer to CHAOS `version.bind` and `version.server` (empty: REFUSED).
    pub version: &'static str,
    /// Sent in an NSID option (RFC 5001) to clients that ask for one (empty: none; at
    /// most 512 octets, longer is not sent).
    pub nsid: &'static [u8],
}

impl Default for AnswerConfig {
    fn default() -> Self {
        Self { max_udp_payload: 1232, minimal_responses: false, reserve: 0, identity: "", version: "", nsid: &[] }
    }
}

/// What the caller should do with `out` after [`answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send `out`.
    Respond,
    /// Send nothing (not a query, or too broken to answer).
    Drop,
}

/// Answers one DNS message from `zones`, writing the response into `out` (cleared first).
/// `client` is the source address (routing policies may depend on it). Never panics,
/// whatever the input.
pub fn answer(
    zones: &ZoneSet,
    msg: &[u8],
    transport: Transport,
    cfg: &AnswerConfig,
    client: Option<IpAddr>,
    out: &mut Vec<u8>,
) -> Outcome {
    answer_noting(zones, msg, transport, cfg, client, out, &mut Note::default())
}

/// [`answer`] through `cache`: the same octets, copied from the cache when it holds the
/// answer and stored there when it does not (see [`crate::cache`]). Allocates nothing once
/// `out` has room for the answer.
pub fn answer_with_cache(
    cache: &ResponseCache,
    zones: &ZoneSet,
    msg: &[u8],
    transport: Transport,
    cfg: &AnswerConfig,
    client: Option<IpAddr>,
    out: &mut Vec<u8>,
) -> Outcome {
    answer_cached(Some(cache), zones, msg, transport, cfg, client, out, &mut Note::default())
}

/// REFUSED for a client the query ACL does not allow (question and OPT echoed); responses
/// and runts are still dropped.
pub(crate) fn refuse(msg: &[u8], cfg: &AnswerConfig, out: &mut Vec<u8>, note: &mut Note) -> Outcome {
    out.clear();
    let mut req = Request::empty();
    match wire::read_request(msg, &mut req) {
        Ok(()) => {
            note.qtype = req.qtype;
            error(out, &req, cfg, rcode::REFUSED, true);
            Outcome::Respond
        }
        Err(ReadError::Drop) => Outcome::Drop,
        Err(ReadError::FormErr { question }) => {
            error(out, &req, cfg, rcode::FORMERR, question);
            Outcome::Respond
        }
    }
}

/// What [`answer_noting`] tells the caller besides the bytes, for counting.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Note {
    /// The question's type (0 if none was read).
    pub(crate) qtype: u16,
    /// Extended rcode bits beyond the header's four.
    pub(crate) ext_rcode: u16,
    /// The request is signed (TSIG): the caller must verify it and sign the response
    /// ([`crate::signed::answer`]); `out` holds an unsigned answer.
    pub(crate) tsig: bool,
    /// Set by the caller: response rate limiting is on, so note the response's account.
    pub(crate) want_rrl: bool,
    /// The response's rate-limiting account (`None`: an error answered before any lookup).
    pub(crate) rrl: Option<crate::rrl::Account>,
    /// The query set the DO bit (RFC 3225).
    pub(crate) dnssec_ok: bool,
    /// The query carried an EDNS Padding option (RFC 7830): on an encrypted transport the
    /// caller pads the answer ([`pad`]).
    pub(crate) padding: bool,
}

/// [`answer`], also noting the question type and extended rcode.
pub(crate) fn answer_noting(
    zones: &ZoneSet,
    msg: &[u8],
    transport: Transport,
    cfg: &AnswerConfig,
    client: Option<IpAddr>,
    out: &mut Vec<u8>,
    note: &mut Note,
) -> Outcome {
    answer_cached(None, zones, msg, transport, cfg, client, out, note)
}

/// [`answer_noting`] through a response cache (`None`: none). The octets are the same
/// either way (see the `cache` module for why).
#[allow(clippy::too_many_arguments)] // answer_noting's arguments and the cache
pub(crate) fn answer_cached(
    cache: Option<&ResponseCache>,
    zones: &ZoneSet,
    msg: &[u8],
    transport: Transport,
    cfg: &AnswerConfig,
    client: Option<IpAddr>,
    out: &mut Vec<u8>,
    note: &mut Note,
) -> Outcome {
    out.clear();
    let mut req = Request::empty();
    match wire::read_request(msg, &mut req) {
        Ok(()) => {}
        Err(ReadError::Drop) => return Outcome::Drop,
        Err(ReadError::FormErr { question }) => {
            error(out, &req, cfg, rcode::FORMERR, question);
            note.qtype = req.qtype;
            return Outcome::Respond;
        }
    }
    note.qtype = req.qtype;
    note.tsig = req.tsig;
    note.dnssec_ok = req.edns.is_some_and(|e| e.dnssec_ok);
    note.padding = req.edns.is_some_and(|e| e.padding);
    if req.opcode() != opcode::QUERY {
        error(out, &req, cfg, rcode::NOTIMP, true);
        return Outcome::Respond;
    }
    let limit = match (transport, req.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, Some(e)) => usize::from(e.udp_size.clamp(512, cfg.max_udp_payload.max(512))),
        (Transport::Udp, None) => 512,
    }
    .saturating_sub(usize::from(cfg.reserve));
    if req.edns.is_some_and(|e| e.version != 0) {
        {
            // RFC 6891 §6.1.3: BADVERS, no question data.
            header(out, &req, 0);
            question(out, &req);
            opt(out, &req, cfg, rcode::BADVERS, 0);
            note.ext_rcode = rcode::BADVERS;
            set_counts(out, 1, 0, 0, 1);
            return Outcome::Respond;
        }
    }
    if req.qclass == CHAOS {
        chaos(out, &req, cfg);
        return Outcome::Respond;
    }
    if req.qclass != 1 {
        error(out, &req, cfg, rcode::REFUSED, true);
        return Outcome::Respond;
    }
    // Transfers are answered over TCP by the listener (xfr.rs), to allowed clients only; here
    // (UDP, or TCP not allowed) they are refused, as NSD does. Other meta types are ordinary
    // unknown types and get NODATA, as NSD and Knot answer.
    if matches!(req.qtype, rtype::AXFR | rtype::IXFR) {
        error(out, &req, cfg, rcode::REFUSED, true);
        return Outcome::Respond;
    }
    let dnssec_ok = req.edns.is_some_and(|e| e.dnssec_ok);
    // RFC 7871: the EDNS client subnet, when given, stands for the client.
    let ecs = req.edns.and_then(|e| e.client_subnet);
    header(out, &req, 0);
    question(out, &req);
    let question_end = out.len();
    // Signed requests are answered again by the caller, and an answer for a client
    // subnet holds for that subnet only: neither is cached.
    let cache = cache.filter(|c| c.serves(cfg));
    let key = match cache {
        Some(_) if req.tsig || ecs.is_some() => {
            crate::cache::count_bypass();
            None
        }
        Some(c) => {
            let bits = req.edns.map_or(0, |e| {
                crate::cache::EDNS
                    | if e.dnssec_ok { crate::cache::DO } else { 0 }
                    | if e.nsid { crate::cache::NSID } else { 0 }
            });
            Some((c, Key::new(c, zones.id(), req.qname(), req.qtype, limit, bits)))
        }
        None => None,
    };
    if let Some((c, key)) = &key {
        if let Some(hit) = c.get(key, out) {
            crate::cache::count_hit();
            let f = u16::from_be_bytes([out[2], out[3]]) | hit.flags;
            out[2..4].copy_from_slice(&f.to_be_bytes());
            set_counts(out, 1, hit.counts[0], hit.counts[1], hit.counts[2]);
            if note.want_rrl {
                note.rrl = Some(hit.account);
            }
            return Outcome::Respond;
        }
        crate::cache::count_miss();
    }
    let ip = ecs.map(|c| c.ip()).or(client);
    let opts = LookupOptions {
        minimal_responses: cfg.minimal_responses,
        dnssec_ok,
        client: Client { ip, random: next_random() },
    };
    let ans = zones.lookup(req.qname(), req.qtype, opts);
    if note.want_rrl {
        note.rrl = Some(crate::rrl::account(req.qname(), req.qtype, &ans));
    }
    if ans.rcode == Rcode::FormErr {
        error(out, &req, cfg, rcode::FORMERR, false);
        return Outcome::Respond;
    }
    let mut flags = u16::from(ans.rcode.to_u8());
    if ans.authoritative {
        flags |= AA;
    }
    let f = u16::from_be_bytes([out[2], out[3]]) | flags;
    out[2..4].copy_from_slice(&f.to_be_bytes());
    let opt_room =
        if req.edns.is_some() { OPT_LEN + ecs.map_or(0, |c| c.option(0).1) + nsid_len(&req, cfg) } else { 0 };
    let mut enc = Encoder::new(out, limit.saturating_sub(opt_room));
    let mut counts = [0u16; 3];
    let mut truncated = false;
    // RFC 2181 §9: a missing answer RRset, or authority needed for a negative answer or a
    // referral, sets TC. Additional data is dropped silently unless it is required glue
    // (RFC 9471).
    let authority_required = ans.answer.is_empty();
    'sections: for (i, section) in [&ans.answer, &ans.authority, &ans.additional].into_iter().enumerate() {
        for item in section.iter() {
            match enc.item(item, &ans, dnssec_ok) {
                Ok(n) => counts[i] += n,
                Err(Full) => {
                    let required = match i {
                        0 => true,
                        1 => authority_required,
                        _ => item.required,
                    };
                    if required {
                        truncated = true;
                        break 'sections;
                    }
                    if i == 1 {
                        continue 'sections;
                    }
                }
            }
        }
    }
    drop(enc);
    if req.edns.is_some() {
        // RFC 7871 §7.2.1: an answer chosen by the client's address holds for the subnet
        // the client gave (scope = source prefix); any other holds for everyone (scope 0).
        let scope = match ecs {
            Some(c) if ans.by_client => c.source,
            _ => 0,
        };
        opt(out, &req, cfg, 0, scope);
        counts[2] += 1;
    }
    set_counts(out, 1, counts[0], counts[1], counts[2]);
    if truncated {
        out[2] |= (TC >> 8) as u8;
    }
    if let Some((c, key)) = &key {
        // Routed answers are chosen per query, and a REFUSED for a name we do not serve
        // is cheap and would let anyone fill the table.
        if ans.per_query || ans.by_client || ans.rcode == Rcode::Refused {
            crate::cache::count_bypass();
        } else {
            let header = u16::from_be_bytes([out[2], out[3]]) & !(QR | OPCODE_MASK | RD | CD);
            let entry = Entry {
                flags: header,
                counts: [counts[0], counts[1], counts[2]],
                account: crate::rrl::account(req.qname(), req.qtype, &ans),
            };
            c.put(key, entry, &out[question_end..], next_random());
        }
    }
    Outcome::Respond
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(std::collections::hash_map::RandomState::new().build_hasher().finish() | 1);
}

/// A fast per-thread xorshift for weighted and multivalue choices (not for anything secret).
pub(crate) fn next_random() -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    })
}

fn header(out: &mut Vec<u8>, req: &Request, flags: u16) {
    let f = QR | (req.flags & (OPCODE_MASK | RD | CD)) | flags;
    out.extend_from_slice(&req.id.to_be_bytes());
    out.extend_from_slice(&f.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
}

fn question(out: &mut Vec<u8>, req: &Request) {
    out.extend_from_slice(req.qname());
    out.extend_from_slice(&req.qtype.to_be_bytes());
    out.extend_from_slice(&req.qclass.to_be_bytes());
}

fn set_counts(out: &mut [u8], qd: u16, an: u16, ns: u16, ar: u16) {
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..8].copy_from_slice(&an.to_be_bytes());
    out[8..10].copy_from_slice(&ns.to_be_bytes());
    out[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// OPT RR: our payload size, extended rcode, version 0, DO echoed (RFC 3225 §3), and the
/// client's ECS option echoed with `scope` (RFC 7871 §7.2.1).
fn opt(out: &mut Vec<u8>, req: &Request, cfg: &AnswerConfig, ext_rcode: u16, scope: u8) {
    let dnssec_ok = req.edns.is_some_and(|e| e.dnssec_ok);
    out.push(0);
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&cfg.max_udp_payload.max(512).to_be_bytes());
    let ttl: u32 = (u32::from(ext_rcode >> 4) << 24) | if dnssec_ok { 0x8000 } else { 0 };
    out.extend_from_slice(&ttl.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some(ecs) = req.edns.and_then(|e| e.client_subnet).filter(|_| ext_rcode == 0) {
        let (o, n) = ecs.option(scope);
        out.extend_from_slice(&o[..n]);
    }
    if nsid_len(req, cfg) > 0 {
        out.extend_from_slice(&3u16.to_be_bytes());
        // Lossless: nsid_len is 0 for an NSID over MAX_NSID octets.
        out.extend_from_slice(&(cfg.nsid.len() as u16).to_be_bytes());
        out.extend_from_slice(cfg.nsid);
    }
    // Lossless: a client subnet option (at most 24 octets) and an NSID (MAX_NSID + 4).
    let rdlen = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}

/// Octets the NSID option takes in this response: the client asked (RFC 5001 §2.1) and
/// the server has one.
fn nsid_len(req: &Request, cfg: &AnswerConfig) -> usize {
    let sent = !cfg.nsid.is_empty() && cfg.nsid.len() <= MAX_NSID;
    if req.edns.is_some_and(|e| e.nsid) && sent { 4 + cfg.nsid.len() } else { 0 }
}

/// The longest NSID sent (the configuration refuses longer).
pub(crate) const MAX_NSID: usize = 512;

/// The longest CHAOS identity or version answered (the configuration refuses longer).
pub(crate) const MAX_CHAOS_TEXT: usize = 1024;

/// Class CHAOS (3).
const CHAOS: u16 = 3;

/// CHAOS TXT (or ANY) for `id.server`/`hostname.bind` and `version.bind`/`version.server`,
/// answered as NSD does (TTL 0, no AA, the name as asked); REFUSED for anything else or
/// when the operator hid the value.
fn chaos(out: &mut Vec<u8>, req: &Request, cfg: &AnswerConfig) {
    const IDENTITY: [&[u8]; 2] = [b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00"];
    const VERSION: [&[u8]; 2] = [b"\x07version\x04bind\x00", b"\x07version\x06server\x00"];
    let name = req.qname();
    let is = |set: [&[u8]; 2]| set.iter().any(|n| n.eq_ignore_ascii_case(name));
    let text = if is(IDENTITY) {
        cfg.identity
    } else if is(VERSION) {
        cfg.version
    } else {
        ""
    };
    if text.is_empty() || text.len() > MAX_CHAOS_TEXT || !matches!(req.qtype, rtype::TXT | rtype::ANY) {
        error(out, req, cfg, rcode::REFUSED, true);
        return;
    }
    header(out, req, 0);
    question(out, req);
    out.extend_from_slice(&[0xc0, 12]);
    out.extend_from_slice(&rtype::TXT.to_be_bytes());
    out.extend_from_slice(&CHAOS.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    let chunks = text.as_bytes().chunks(255);
    let rdlen = chunks.clone().map(|c| c.len() + 1).sum::<usize>();
    // Lossless: at most MAX_CHAOS_TEXT octets in chunks of at most 255.
    out.extend_from_slice(&(rdlen as u16).to_be_bytes());
    for c in chunks {
        out.push(c.len() as u8);
        out.extend_from_slice(c);
    }
    let ar = if req.edns.is_some() {
        opt(out, req, cfg, 0, 0);
        1
    } else {
        0
    };
    set_counts(out, 1, 1, 0, ar);
}

/// The block size responses are padded to (RFC 8467 §4.1, the recommended block-length
/// policy for responses).
pub(crate) const PADDING_BLOCK: usize = 468;

/// Pads `out`, a response whose last record is its OPT, with an EDNS Padding option
/// (RFC 7830) to the next multiple of [`PADDING_BLOCK`] octets. For answers over encrypted
/// transports to padded queries only: padding in clear text hides nothing (and over UDP
/// would only amplify). A response without an OPT last (none was asked for, or it is
/// signed: TSIG follows OPT and covers it), or one the padding would take past 65 535
/// octets, is left as it is. Allocates only if `out` has no room.
pub(crate) fn pad(out: &mut Vec<u8>) {
    let Some(opt_at) = last_record(out) else { return };
    // OPT: the root name (one octet), type 41, class, TTL, then RDLENGTH.
    if out.get(opt_at) != Some(&0) || wire::u16_at(out, opt_at + 1) != Some(rtype::OPT) {
        return;
    }
    let rdlen_at = opt_at + 9;
    let Some(rdlen) = wire::u16_at(out, rdlen_at) else { return };
    if rdlen_at + 2 + usize::from(rdlen) != out.len() {
        return;
    }
    let target = (out.len() + 4).div_ceil(PADDING_BLOCK) * PADDING_BLOCK;
    let fill = target - out.len() - 4;
    let (Ok(fill16), Ok(rdlen)) = (u16::try_from(fill), u16::try_from(usize::from(rdlen) + 4 + fill)) else { return };
    if target > usize::from(u16::MAX) {
        return;
    }
    out.extend_from_slice(&wire::PADDING.to_be_bytes());
    out.extend_from_slice(&fill16.to_be_bytes());
    out.resize(target, 0);
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}

/// Where the last record of `msg` starts, walking every section; `None` if it has none or
/// does not parse.
fn last_record(msg: &[u8]) -> Option<usize> {
    let count = |i: usize| wire::u16_at(msg, i).map(usize::from);
    let (qd, records) = (count(4)?, count(6)? + count(8)? + count(10)?);
    let mut at = 12;
    for _ in 0..qd {
        at += wire::skip_name(msg, at)? + 4;
    }
    let mut last = None;
    for _ in 0..records {
        last = Some(at);
        at += wire::skip_name(msg, at)?;
        at += 10 + usize::from(wire::u16_at(msg, at + 8)?);
    }
    (at == msg.len()).then_some(last).flatten()
}

/// An error response: header, the question if it was read, OPT if the client sent one.
fn error(out: &mut Vec<u8>, req: &Request, cfg: &AnswerConfig, rcode: u8, with_question: bool) {
    let reply = r53dns_proto::message::Reply::to_request(req, with_question);
    reply.write(out, rcode, false);
    if with_question && req.edns.is_some() {
        opt(out, req, cfg, 0, 0);
        out[11] = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response with one question and `extra` as its only additional record.
    fn response(extra: &[u8]) -> Vec<u8> {
        let mut m = vec![0, 1, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        m.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        m.extend_from_slice(extra);
        m
    }

    /// An OPT record with `options` as its RDATA.
    fn opt_with(options: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
        o.extend_from_slice(&u16::try_from(options.len()).unwrap().to_be_bytes());
        o.extend_from_slice(options);
        o
    }

    #[test]
    fn padding_fills_the_opt_to_the_next_block_and_leaves_other_responses_alone() {
        let mut m = response(&opt_with(&[0, 3, 0, 2, b'n', b's']));
        let before = m.clone();
        pad(&mut m);
        assert_eq!(m.len(), PADDING_BLOCK);
        // The NSID option stays; the Padding option follows it, filled with zeros.
        let rd = before.len() - 6;
        assert_eq!(m[rd..rd + 6], before[rd..]);
        assert_eq!(m[rd + 6..rd + 8], [0, 12]);
        let fill = usize::from(u16::from_be_bytes([m[rd + 8], m[rd + 9]]));
        assert_eq!(rd + 10 + fill, PADDING_BLOCK);
        assert!(m[rd + 10..].iter().all(|&b| b == 0));
        assert_eq!(u16::from_be_bytes([m[rd - 2], m[rd - 1]]), u16::try_from(6 + 4 + fill).unwrap());
        // Exactly one block already: nothing to add but the option itself, so the next block.
        let mut full = response(&opt_with(&vec![0; PADDING_BLOCK - 4 - response(&opt_with(&[])).len()]));
        assert_eq!(full.len() + 4, PADDING_BLOCK);
        pad(&mut full);
        assert_eq!(full.len(), PADDING_BLOCK);
        // Not an OPT last (a signed response ends with its TSIG), no OPT, a message that
        // does not parse: unchanged.
        let mut tsig = response(b"\x03key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x00");
        let mut none = response(&[]);
        none[11] = 0;
        let mut cut = response(&opt_with(&[]));
        cut.pop();
        for m in [&mut tsig, &mut none, &mut cut] {
            let before = m.clone();
            pad(m);
            assert_eq!(*m, before);
        }
        // Padding that would take the message past 65 535 octets is left out.
        let mut big = response(&opt_with(&vec![0; 65_480]));
        let before = big.clone();
        pad(&mut big);
        assert_eq!(big, before);
    }
}
