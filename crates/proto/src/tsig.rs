//! TSIG (RFC 8945): verifying signed requests and signing responses, single and multi-message
//! (zone transfers), with HMAC-MD5, -SHA1, -SHA224, -SHA256, -SHA384 and -SHA512.
//!
//! A [`KeyRing`] holds the keys; [`verify`] checks a request and hands back a [`Signer`] for
//! its response(s). Errors follow §5.2: an unknown key or algorithm is BADKEY, a wrong MAC
//! BADSIG (both answered unsigned), a clock outside the fudge BADTIME (answered signed, with
//! our time in Other Data).

use hmac::{Hmac, Mac};
use r53dns_zone::Name;
use r53dns_zone::proto::{Overflow, bump_count, len16};

use crate::message::{self, Record};

pub use r53dns_zone::proto::rcode::{BADKEY, BADSIG, BADTIME, BADTRUNC};
use r53dns_zone::rtype::TSIG;

/// Fudge we put in our signatures (seconds either way).
pub const FUDGE: u16 = 300;

/// A TSIG algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `hmac-md5.sig-alg.reg.int` (legacy clients only).
    HmacMd5,
    /// `hmac-sha1`.
    HmacSha1,
    /// `hmac-sha224`.
    HmacSha224,
    /// `hmac-sha256`: use this.
    HmacSha256,
    /// `hmac-sha384`.
    HmacSha384,
    /// `hmac-sha512`.
    HmacSha512,
}

impl Algorithm {
    /// Every algorithm with its on-the-wire name.
    const ALL: [(Algorithm, &'static str); 6] = [
        (Algorithm::HmacMd5, "hmac-md5.sig-alg.reg.int"),
        (Algorithm::HmacSha1, "hmac-sha1"),
        (Algorithm::HmacSha224, "hmac-sha224"),
        (Algorithm::HmacSha256, "hmac-sha256"),
        (Algorithm::HmacSha384, "hmac-sha384"),
        (Algorithm::HmacSha512, "hmac-sha512"),
    ];

    /// From a configuration name (`hmac-sha256`, `HMAC-MD5.SIG-ALG.REG.INT`, `hmac-md5`),
    /// case-insensitive, trailing dot allowed.
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.trim_end_matches('.').to_ascii_lowercase();
        let s = if s == "hmac-md5" { "hmac-md5.sig-alg.reg.int".to_owned() } else { s };
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(a, _)| *a)
    }

    /// The algorithm's name as text.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(a, _)| *a == self).map_or("hmac-sha256", |(_, n)| n)
    }

    fn wire_name(self) -> Vec<u8> {
        Name::parse(&format!("{}.", self.name()), None).map(|n| n.wire().to_vec()).unwrap_or_default()
    }

    /// Octets of the MAC.
    fn mac_len(self) -> usize {
        match self {
            Self::HmacMd5 => 16,
            Self::HmacSha1 => 20,
            Self::HmacSha224 => 28,
            Self::HmacSha256 => 32,
            Self::HmacSha384 => 48,
            Self::HmacSha512 => 64,
        }
    }

    fn from_wire(wire: &[u8]) -> Option<Self> {
        let lower = wire.to_ascii_lowercase();
        Self::ALL.iter().map(|(a, _)| *a).find(|a| a.wire_name() == lower)
    }

    fn mac(self, secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let Ok(mut m) = <M as hmac::digest::KeyInit>::new_from_slice(secret) else {
                return Vec::new(); // HMAC takes keys of any length; not reached
            };
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Self::HmacMd5 => run::<Hmac<md5::Md5>>(secret, parts),
            Self::HmacSha1 => run::<Hmac<sha1::Sha1>>(secret, parts),
            Self::HmacSha224 => run::<Hmac<sha2::Sha224>>(secret, parts),
            Self::HmacSha256 => run::<Hmac<sha2::Sha256>>(secret, parts),
            Self::HmacSha384 => run::<Hmac<sha2::Sha384>>(secret, parts),
            Self::HmacSha512 => run::<Hmac<sha2::Sha512>>(secret, parts),
        }
    }
}

/// A shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// Key name (compared case-insensitively).
    pub name: Name,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// The secret (decoded from base64).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("name", &self.name.to_text()).field("algorithm", &self.algorithm).finish()
    }
}

impl Key {
    /// The key name as text, without the trailing dot (as operators write it).
    pub fn label(&self) -> String {
        let t = self.name.to_text();
        t.strip_suffix('.').map(str::to_owned).unwrap_or(t)
    }
}

/// The keys a server knows, and the latest Time Signed accepted for each (replays).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<Key>,
    latest: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, u64>>>,
}

/// Largest fudge honoured, whatever the request says (RFC 8945 §10 recommends 300 s).
pub const MAX_FUDGE: u64 = 300;
/// How far behind the latest Time Signed of its key a request may be: clients sharing a key
/// (several DHCP servers) have clocks a little apart, and a UDP client retransmits the very
/// same message (same time, same MAC) when an answer is slow — a retransmission is not
/// refused, a message replayed later is.
pub const CLOCK_SPREAD: u64 = 5;

impl KeyRing {
    /// Notes that `key` signed at `time`; false for a replay: a time well behind the latest
    /// accepted for the key.
    fn fresh(&self, key: &[u8], time: u64) -> bool {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let l = latest.entry(key.to_ascii_lowercase()).or_default();
        if time + CLOCK_SPREAD < *l {
            return false;
        }
        *l = (*l).max(time);
        true
    }
}

impl KeyRing {
    /// A ring of `keys`; a later key with the same name replaces an earlier one.
    pub fn new(keys: Vec<Key>) -> Self {
        let mut ring = Self::default();
        for k in keys {
            ring.keys.retain(|o| o.name.to_lowercase() != k.name.to_lowercase());
            ring.keys.push(k);
        }
        ring
    }

    /// The key called `name` (wire form, any case).
    pub fn get(&self, name: &[u8]) -> Option<&Key> {
        let lower = name.to_ascii_lowercase();
        self.keys.iter().find(|k| k.name.to_lowercase().wire() == lower.as_slice())
    }

    /// The key called `label` (text, trailing dot optional).
    pub fn by_label(&self, label: &str) -> Option<&Key> {
        let text = if label.ends_with('.') { label.to_owned() } else { format!("{label}.") };
        let name = Name::parse(&text, None).ok()?;
        self.get(name.wire())
    }

    /// Whether both rings hold the same keys (names, algorithms and secrets).
    pub fn same_keys(&self, other: &KeyRing) -> bool {
        self.keys == other.keys
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The fields of a TSIG RR (RFC 8945 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    algorithm: Vec<u8>,
    time_signed: u64,
    fudge: u16,
    mac: Vec<u8>,
    original_id: u16,
    error: u16,
    other: Vec<u8>,
}

fn fields(rdata: &[u8]) -> Option<Fields> {
    let alen = r53dns_zone::name::wire_len(rdata)?;
    let algorithm = rdata.get(..alen)?.to_vec();
    let mut at = alen;
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let s = rdata.get(*at..*at + n)?;
        *at += n;
        Some(s)
    };
    let t = take(&mut at, 6)?;
    let time_signed = t.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let fudge = u16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?);
    let mac_len = usize::from(u16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?));
    let mac = take(&mut at, mac_len)?.to_vec();
    let original_id = u16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?);
    let error = u16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?);
    let other_len = usize::from(u16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?));
    let other = take(&mut at, other_len)?.to_vec();
    (at == rdata.len()).then_some(Fields { algorithm, time_signed, fudge, mac, original_id, error, other })
}

fn time48(t: u64) -> [u8; 6] {
    let b = t.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// The TSIG variables digested with a whole signature (§4.3.3).
fn variables(
    key_name: &[u8],
    alg: &[u8],
    time: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
) -> Result<Vec<u8>, Overflow> {
    let mut v = Vec::with_capacity(key_name.len() + alg.len() + 20 + other.len());
    v.extend_from_slice(&key_name.to_ascii_lowercase());
    v.extend_from_slice(&255u16.to_be_bytes()); // class ANY
    v.extend_from_slice(&0u32.to_be_bytes()); // TTL
    v.extend_from_slice(&alg.to_ascii_lowercase());
    v.extend_from_slice(&time48(time));
    v.extend_from_slice(&fudge.to_be_bytes());
    v.extend_from_slice(&error.to_be_bytes());
    v.extend_from_slice(&len16("TSIG other data", other.len())?.to_be_bytes());
    v.extend_from_slice(other);
    Ok(v)
}

/// The message as it was before the TSIG RR was added: original ID, ARCOUNT one less.
fn unsigned_part(msg: &[u8], tsig_at: usize, original_id: u16) -> Option<Vec<u8>> {
    let mut m = msg.get(..tsig_at)?.to_vec();
    if m.len() < 12 {
        return None;
    }
    m[0..2].copy_from_slice(&original_id.to_be_bytes());
    let ar = u16::from_be_bytes([m[10], m[11]]).checked_sub(1)?;
    m[10..12].copy_from_slice(&ar.to_be_bytes());
    Some(m)
}

/// A response that passed [`Signer::verify_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Signed, and the signature (covering any held messages) verified.
    Signed,
    /// An unsigned message of a multi-message response, held for the next signature.
    Held,
}

/// Why a response to a signed request failed its TSIG check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The message or its TSIG record cannot be read.
    #[error("the message or its TSIG record is malformed")]
    Malformed,
    /// The first response carries no signature.
    #[error("the response is not signed")]
    Unsigned,
    /// More than 99 unsigned messages in a row (RFC 8945 §5.3.1 allows 99).
    #[error("more than 99 unsigned messages in a row")]
    TooManyUnsigned,
    /// The server answered with a TSIG error (BADKEY, BADSIG, BADTIME, BADTRUNC).
    #[error("the server reports TSIG error {}", r53dns_zone::proto::rcode::name(*.0).unwrap_or("unknown"))]
    Refused(u16),
    /// The MAC does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// A field cannot be encoded for the digest.
    #[error(transparent)]
    Overflow(#[from] Overflow),
}

/// Signs a message or a run of messages with one key.
#[derive(Debug, Clone)]
pub struct Signer<'k> {
    key: &'k Key,
    /// The MAC the next signature chains to (request MAC, or the previous message's).
    prior: Vec<u8>,
    /// Whether the next signature is the first of its run (full variables) or a later one
    /// of a multi-message response (timers only, §5.3.1).
    first: bool,
    /// Client side: responses verified so far (the first is digested with all variables,
    /// later ones with the timers only).
    verified: u32,
    /// Client side: unsigned messages received since the last signed one, digested with the
    /// next signed message (§5.3.1 lets a server sign only every few messages).
    pending: Vec<u8>,
    pending_count: u32,
}

impl<'k> Signer<'k> {
    /// Signs a request (no prior MAC).
    pub fn request(key: &'k Key) -> Self {
        Self { key, prior: Vec::new(), first: true, verified: 0, pending: Vec::new(), pending_count: 0 }
    }

    /// Client side: signs the request `msg` with `key` when there is one, and returns the
    /// signer that checks the responses ([`Signer::verify_response`]).
    pub fn sign_request(key: Option<&'k Key>, msg: &mut Vec<u8>, now: u64) -> Result<Option<Self>, Overflow> {
        let Some(key) = key else { return Ok(None) };
        let mut s = Self::request(key);
        s.sign(msg, now)?;
        Ok(Some(s))
    }

    /// The key in use.
    pub fn key(&self) -> &'k Key {
        self.key
    }

    /// Octets the TSIG record [`Signer::sign`] appends takes, with `other_len` octets of
    /// other data: owner (key name), type, class, TTL, length, then algorithm name, time
    /// (6), fudge, MAC size, MAC, original ID, error and other length (2 each).
    pub fn len(&self, other_len: usize) -> usize {
        self.key.name.wire().len()
            + 10
            + self.key.algorithm.wire_name().len()
            + 6
            + 2
            + 2
            + self.key.algorithm.mac_len()
            + 2
            + 2
            + 2
            + other_len
    }

    /// Appends a TSIG RR signing `msg` (whose ARCOUNT is bumped) at time `now` (Unix
    /// seconds). Later calls chain to this one's MAC. A message whose additional section
    /// is full cannot be signed (and is left as it was).
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: u64) -> Result<(), Overflow> {
        self.sign_with(msg, now, 0, &[])
    }

    /// [`Signer::sign`] with a TSIG `error` and `other` data (BADTIME's time).
    fn sign_with(&mut self, msg: &mut Vec<u8>, now: u64, error: u16, other: &[u8]) -> Result<(), Overflow> {
        let alg = self.key.algorithm.wire_name();
        let key_name = self.key.name.wire().to_ascii_lowercase();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(4);
        let prior_len = len16("TSIG prior MAC", self.prior.len())?.to_be_bytes();
        if !self.prior.is_empty() {
            parts.push(&prior_len);
            parts.push(&self.prior);
        }
        parts.push(msg);
        let vars;
        let mut timers = [0u8; 8];
        if self.first {
            vars = variables(&key_name, &alg, now, FUDGE, error, other)?;
            parts.push(&vars);
        } else {
            timers[..6].copy_from_slice(&time48(now));
            timers[6..].copy_from_slice(&FUDGE.to_be_bytes());
            parts.push(&timers);
        }
        let mac = self.key.algorithm.mac(&self.key.secret, &parts);
        let id = u16::from_be_bytes([msg.first().copied().unwrap_or(0), msg.get(1).copied().unwrap_or(0)]);
        append(msg, &key_name, &alg, now, &mac, id, error, other)?;
        self.prior = mac;
        self.first = false;
        Ok(())
    }

    /// Checks one response to our request (client side: NOTIFY replies, SOA queries, zone
    /// transfers in). The first response must be signed; later messages of a multi-message
    /// response may come unsigned (at most 99 in a row) and are then digested with the next
    /// signed one. After the last message, [`Signer::settled`] must hold.
    pub fn verify_response(&mut self, msg: &[u8]) -> Result<Checked, ResponseError> {
        let parsed = message::parse(msg).ok_or(ResponseError::Malformed)?;
        let Some(tsig) = parsed.additional.last().filter(|r| r.rtype == TSIG) else {
            if self.verified == 0 {
                return Err(ResponseError::Unsigned);
            }
            if self.pending_count >= 99 {
                return Err(ResponseError::TooManyUnsigned);
            }
            self.pending.extend_from_slice(msg);
            self.pending_count += 1;
            return Ok(Checked::Held);
        };
        let f = fields(&tsig.rdata).ok_or(ResponseError::Malformed)?;
        if f.error != 0 {
            return Err(ResponseError::Refused(f.error));
        }
        let body = unsigned_part(msg, tsig.offset, f.original_id).ok_or(ResponseError::Malformed)?;
        // The prior MAC is one this algorithm made (at most 64 octets), and the other data
        // was read behind a 16-bit length: neither can overflow.
        let prior_len = len16("TSIG prior MAC", self.prior.len())?.to_be_bytes();
        let vars = if self.verified == 0 {
            variables(tsig.name.wire(), &f.algorithm, f.time_signed, f.fudge, f.error, &f.other)?
        } else {
            let mut t = time48(f.time_signed).to_vec();
            t.extend_from_slice(&f.fudge.to_be_bytes());
            t
        };
        let parts: [&[u8]; 5] = [&prior_len, &self.prior, &self.pending, &body, &vars];
        let want = self.key.algorithm.mac(&self.key.secret, &parts);
        if !constant_time_eq(&want, &f.mac) {
            return Err(ResponseError::BadSignature);
        }
        self.prior = f.mac;
        self.pending.clear();
        self.pending_count = 0;
        self.verified += 1;
        Ok(Checked::Signed)
    }

    /// Whether every response received so far is covered by a verified signature.
    pub fn settled(&self) -> bool {
        self.verified > 0 && self.pending_count == 0
    }
}

/// Appends the TSIG RR to `msg` and counts it in ARCOUNT; nothing is written when a field
/// would overflow.
#[allow(clippy::too_many_arguments)]
fn append(
    msg: &mut Vec<u8>,
    key_name: &[u8],
    alg: &[u8],
    time: u64,
    mac: &[u8],
    id: u16,
    error: u16,
    other: &[u8],
) -> Result<(), Overflow> {
    let rdlen = len16("TSIG RDATA", alg.len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2 + other.len())?;
    let mac_len = len16("TSIG MAC", mac.len())?;
    let other_len = len16("TSIG other data", other.len())?;
    bump_count(msg, 10)?;
    msg.extend_from_slice(key_name);
    msg.extend_from_slice(&TSIG.to_be_bytes());
    msg.extend_from_slice(&255u16.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&rdlen.to_be_bytes());
    msg.extend_from_slice(alg);
    msg.extend_from_slice(&time48(time));
    msg.extend_from_slice(&FUDGE.to_be_bytes());
    msg.extend_from_slice(&mac_len.to_be_bytes());
    msg.extend_from_slice(mac);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&error.to_be_bytes());
    msg.extend_from_slice(&other_len.to_be_bytes());
    msg.extend_from_slice(other);
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What [`verify`] found.
#[derive(Debug)]
pub enum Verified<'k> {
    /// No TSIG record.
    Unsigned,
    /// A good signature: sign the response(s) with this.
    Signed(Signer<'k>),
    /// A TSIG record that failed. Answer NOTAUTH with [`Failure::append_to`].
    Failed(Failure<'k>),
    /// A TSIG record that is not the last record, or cannot be read: FORMERR.
    Malformed,
}

/// A failed TSIG check and what the error response needs.
#[derive(Debug)]
pub struct Failure<'k> {
    /// BADKEY, BADSIG, BADTIME or BADTRUNC.
    pub error: u16,
    /// Key name as sent.
    pub key_name: Vec<u8>,
    algorithm: Vec<u8>,
    time_signed: u64,
    /// BADTIME responses are signed (§5.2.3); the others are not.
    signer: Option<Signer<'k>>,
}

impl Failure<'_> {
    /// The key name as text (for logs).
    pub fn key_label(&self) -> String {
        r53dns_zone::name::wire_to_text(&self.key_name)
    }

    /// Appends the TSIG RR of the error response to `msg`.
    pub fn append_to(&mut self, msg: &mut Vec<u8>, now: u64) -> Result<(), Overflow> {
        match &mut self.signer {
            Some(s) => s.sign_with(msg, self.time_signed, self.error, &time48(now)),
            None => {
                let id = u16::from_be_bytes([msg.first().copied().unwrap_or(0), msg.get(1).copied().unwrap_or(0)]);
                append(msg, &self.key_name, &self.algorithm, self.time_signed, &[], id, self.error, &[])
            }
        }
    }
}

/// The record in `parsed` that must be the TSIG, if any (the last additional one).
fn tsig_record(parsed: &message::Message) -> Result<Option<&Record>, ()> {
    let others = parsed
        .answers
        .iter()
        .chain(&parsed.authority)
        .chain(parsed.additional.iter().rev().skip(1))
        .any(|r| r.rtype == TSIG);
    if others {
        return Err(());
    }
    Ok(parsed.additional.last().filter(|r| r.rtype == TSIG))
}

/// Checks the TSIG of a request against `keys` at time `now` (Unix seconds).
pub fn verify<'k>(keys: &'k KeyRing, msg: &[u8], parsed: &message::Message, now: u64) -> Verified<'k> {
    let rr = match tsig_record(parsed) {
        Ok(Some(rr)) => rr,
        Ok(None) => return Verified::Unsigned,
        Err(()) => return Verified::Malformed,
    };
    let Some(f) = fields(&rr.rdata) else {
        return Verified::Malformed;
    };
    if rr.class != 255 || rr.ttl != 0 {
        return Verified::Malformed;
    }
    let fail = |error, signer| {
        Verified::Failed(Failure {
            error,
            key_name: rr.name.wire().to_vec(),
            algorithm: f.algorithm.clone(),
            time_signed: f.time_signed,
            signer,
        })
    };
    let key = keys.get(rr.name.wire()).filter(|k| Algorithm::from_wire(&f.algorithm) == Some(k.algorithm));
    let Some(key) = key else {
        return fail(BADKEY, None);
    };
    let Some(body) = unsigned_part(msg, rr.offset, f.original_id) else {
        return Verified::Malformed;
    };
    // The other data was read behind a 16-bit length, so it fits one again.
    let Ok(vars) = variables(rr.name.wire(), &f.algorithm, f.time_signed, f.fudge, f.error, &f.other) else {
        return Verified::Malformed;
    };
    let full = key.algorithm.mac(&key.secret, &[&body, &vars]);
    // §5.2.2.1: a MAC longer than the algorithm's, or truncated below half of it or below
    // 10 octets, is a format error.
    let min = (full.len() / 2).max(10).min(full.len());
    if f.mac.len() > full.len() || (f.mac.len() < min && !f.mac.is_empty()) {
        return Verified::Malformed;
    }
    if f.mac.is_empty() || !constant_time_eq(&full[..f.mac.len()], &f.mac) {
        return fail(BADSIG, None);
    }
    let signer = Signer { key, prior: f.mac.clone(), first: true, verified: 0, pending: Vec::new(), pending_count: 0 };
    // The request's fudge is honoured up to MAX_FUDGE: a signature cannot be made to live
    // for hours by asking for it.
    if now.abs_diff(f.time_signed) > u64::from(f.fudge).min(MAX_FUDGE) {
        return fail(BADTIME, Some(signer));
    }
    // A request seen before (or well older than the key's latest) is a replay.
    if !keys.fresh(rr.name.wire(), f.time_signed) {
        return fail(BADTIME, Some(signer));
    }
    Verified::Signed(signer)
}

/// What a TSIG error code means, for logs.
pub fn describe(error: u16) -> &'static str {
    match error {
        BADKEY => "unknown key or algorithm (BADKEY)",
        BADTIME => "clock outside the fudge (BADTIME)",
        BADTRUNC => "MAC truncated too far (BADTRUNC)",
        BADSIG => "bad signature (BADSIG)",
        _ => "TSIG error",
    }
}

/// The server's side of one exchange (RFC 8945 §5), signed or not: the request checked by
/// [`Transaction::open`], then every reply passed to [`Transaction::sign`] — signed with
/// the request's key and chained to the request (or to the reply before, in a
/// multi-message answer) when the request was signed, left alone when it was not. Queries,
/// zone transfers, UPDATE and NOTIFY all go through it.
#[derive(Debug)]
pub struct Transaction<'k> {
    signer: Option<Signer<'k>>,
    now: u64,
}

/// What [`Transaction::open`] found.
#[derive(Debug)]
pub enum Opened<'k> {
    /// Unsigned, or signed and verified: answer, signing each reply.
    Go(Transaction<'k>),
    /// The TSIG record is misplaced or cannot be read: this FORMERR goes out as it is.
    Malformed(Vec<u8>),
    /// The check failed: this NOTAUTH, carrying the TSIG error (signed for BADTIME, RFC 8945
    /// §5.2.3), goes out as it is.
    Failed {
        /// The reply.
        reply: Vec<u8>,
        /// The key name as sent (for logs).
        key: String,
        /// BADKEY, BADSIG, BADTIME or BADTRUNC.
        error: u16,
    },
}

impl<'k> Transaction<'k> {
    /// Checks the TSIG of the request `msg` (parsed as `parsed`) against `keys` at `now`
    /// (Unix seconds). `reply` makes the bare reply with a given rcode, for a failed check.
    pub fn open(
        keys: &'k KeyRing,
        msg: &[u8],
        parsed: &message::Message,
        now: u64,
        reply: impl FnOnce(u8) -> Vec<u8>,
    ) -> Opened<'k> {
        match verify(keys, msg, parsed, now) {
            Verified::Unsigned => Opened::Go(Transaction { signer: None, now }),
            Verified::Signed(s) => Opened::Go(Transaction { signer: Some(s), now }),
            Verified::Malformed => Opened::Malformed(reply(r53dns_zone::proto::rcode::FORMERR)),
            Verified::Failed(mut f) => {
                let mut out = reply(r53dns_zone::proto::rcode::NOTAUTH);
                // The reply is a bare header and question: the TSIG record always fits.
                if let Err(e) = f.append_to(&mut out, now) {
                    tracing::error!("TSIG: the error cannot be added to the reply: {e}");
                }
                Opened::Failed { reply: out, key: f.key_label(), error: f.error }
            }
        }
    }

    /// The transaction of a request known to carry no signature.
    pub fn unsigned() -> Self {
        Transaction { signer: None, now: now() }
    }

    /// The key the request was signed with (`None`: unsigned).
    pub fn key(&self) -> Option<&'k Key> {
        self.signer.as_ref().map(Signer::key)
    }

    /// Whether the request was signed (and verified).
    pub fn is_signed(&self) -> bool {
        self.signer.is_some()
    }

    /// Octets each reply must keep free for its signature (0 when unsigned).
    pub fn reserve(&self) -> usize {
        self.signer.as_ref().map_or(0, |s| s.len(0))
    }

    /// Signs `reply` when the request was signed, chained to what was signed before.
    pub fn sign(&mut self, reply: &mut Vec<u8>) -> Result<(), Overflow> {
        match self.signer.as_mut() {
            Some(s) => s.sign(reply, self.now),
            None => Ok(()),
        }
    }

    /// [`Transaction::sign`] for a single reply: one that cannot be signed is replaced by
    /// `servfail()` (unsigned, and logged) rather than sent without its signature.
    pub fn seal(&mut self, reply: &mut Vec<u8>, servfail: impl FnOnce() -> Vec<u8>) {
        if let Err(e) = self.sign(reply) {
            tracing::error!(key = %self.key().map(Key::label).unwrap_or_default(), "TSIG: the reply cannot be signed ({e}); SERVFAIL instead");
            *reply = servfail();
        }
    }
}

/// The current time in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alg: Algorithm) -> Key {
        Key { name: Name::parse("k1.", None).unwrap(), algorithm: alg, secret: b"0123456789abcdef".to_vec() }
    }

    fn query() -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x06\x00\x01");
        q
    }

    #[test]
    fn rfc4231_test_case_2_hmac_sha256() {
        let mac = Algorithm::HmacSha256.mac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex = data_encoding::HEXLOWER.encode(&mac);
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn every_algorithm_signs_and_verifies_and_tampering_is_caught() {
        for (alg, _) in Algorithm::ALL {
            let k = key(alg);
            let ring = KeyRing::new(vec![k.clone()]);
            let mut msg = query();
            let mut s = Signer::request(&k);
            s.sign(&mut msg, 1_000_000).unwrap();
            assert_eq!(msg.len() - query().len(), s.len(0), "{alg:?}: the room kept is the record's size");
            let parsed = message::parse(&msg).unwrap();
            let Verified::Signed(mut signer) = verify(&ring, &msg, &parsed, 1_000_010) else {
                panic!("{alg:?} did not verify")
            };
            // The response chains to the request MAC and verifies on the client side.
            let mut resp = msg[..msg.len()].to_vec();
            let tsig_at = parsed.additional[0].offset;
            resp.truncate(tsig_at);
            resp[10..12].copy_from_slice(&0u16.to_be_bytes());
            resp[2] |= 0x80;
            signer.sign(&mut resp, 1_000_011).unwrap();
            let mut client = Signer::request(&k);
            client.prior = fields(&parsed.additional[0].rdata).unwrap().mac;
            assert_eq!(client.verify_response(&resp), Ok(Checked::Signed));
            assert!(client.settled());
            // One flipped bit in the signed part fails.
            let mut bad = msg.clone();
            bad[15] ^= 1;
            let parsed = message::parse(&bad).unwrap();
            assert!(matches!(verify(&ring, &bad, &parsed, 1_000_010), Verified::Failed(Failure { error: BADSIG, .. })));
        }
    }

    #[test]
    fn multi_message_responses_verify_in_a_chain_and_order_matters() {
        let k = key(Algorithm::HmacSha256);
        let mut req = query();
        let mut client = Signer::request(&k);
        client.sign(&mut req, 1_000_000).unwrap();
        let ring = KeyRing::new(vec![k.clone()]);
        let parsed = message::parse(&req).unwrap();
        let Verified::Signed(mut server) = verify(&ring, &req, &parsed, 1_000_000) else { panic!() };
        let bodies: Vec<Vec<u8>> = (0..3u8)
            .map(|i| {
                let mut m = query();
                m[2] |= 0x80;
                m[3] = i;
                server.sign(&mut m, 1_000_001).unwrap();
                m
            })
            .collect();
        let mut c = client.clone();
        for b in &bodies {
            assert_eq!(c.verify_response(b), Ok(Checked::Signed));
        }
        assert!(c.settled());
        // Out of order: the chain breaks.
        let mut c = client.clone();
        assert_eq!(c.verify_response(&bodies[0]), Ok(Checked::Signed));
        assert_eq!(c.verify_response(&bodies[2]), Err(ResponseError::BadSignature));
        // An unsigned first response is refused; an unsigned later one is held until the next
        // signed one, and then must have been part of its digest.
        let mut c = client.clone();
        assert_eq!(c.verify_response(&query()), Err(ResponseError::Unsigned));
        assert_eq!(c.verify_response(&bodies[0]), Ok(Checked::Signed));
        let mut plain = query();
        plain[2] |= 0x80;
        assert_eq!(c.verify_response(&plain), Ok(Checked::Held));
        assert!(!c.settled());
        assert_eq!(c.verify_response(&bodies[1]), Err(ResponseError::BadSignature));
    }

    /// `query()` signed with `k` at `time`, asking for `fudge`, its MAC cut to `mac_len`.
    fn signed_with(k: &Key, time: u64, fudge: u16, mac_len: usize) -> Vec<u8> {
        let mut msg = query();
        let alg = k.algorithm.wire_name();
        let name = k.name.wire().to_ascii_lowercase();
        let vars = variables(&name, &alg, time, fudge, 0, &[]).unwrap();
        let mac = k.algorithm.mac(&k.secret, &[&msg, &vars]);
        let mac = &mac[..mac_len.min(mac.len())];
        let mut rdata = alg.to_vec();
        rdata.extend_from_slice(&time48(time));
        rdata.extend_from_slice(&fudge.to_be_bytes());
        rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
        rdata.extend_from_slice(mac);
        rdata.extend_from_slice(&msg[0..2]);
        rdata.extend_from_slice(&[0, 0, 0, 0]);
        msg.extend_from_slice(&name);
        msg.extend_from_slice(&TSIG.to_be_bytes());
        msg.extend_from_slice(&[0, 255, 0, 0, 0, 0]);
        msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        msg.extend_from_slice(&rdata);
        msg[11] = 1;
        msg
    }

    #[test]
    fn mac_sizes_fudge_caps_and_replays() {
        let k = key(Algorithm::HmacSha256);
        let ring = KeyRing::new(vec![k.clone()]);
        let check = |msg: &[u8], now: u64| verify(&ring, msg, &message::parse(msg).unwrap(), now);
        // A MAC of a size no algorithm output allows is a format error (RFC 8945 §5.2.2.1).
        for len in [9, 15] {
            assert!(matches!(check(&signed_with(&k, 1_000_000, 300, len), 1_000_000), Verified::Malformed), "{len}");
        }
        assert!(matches!(check(&signed_with(&k, 1_000_000, 300, 16), 1_000_000), Verified::Signed(_)));
        // A request asking for an hour of fudge gets five minutes.
        let late = signed_with(&k, 2_000_000, 3600, 32);
        assert!(matches!(check(&late, 2_000_000 + 1000), Verified::Failed(Failure { error: BADTIME, .. })));
        // The same request again at once (a UDP retransmission): accepted; replayed after the
        // key has signed something newer: refused.
        let once = signed_with(&k, 3_000_000, 300, 32);
        assert!(matches!(check(&once, 3_000_000), Verified::Signed(_)));
        assert!(matches!(check(&once, 3_000_001), Verified::Signed(_)));
        assert!(matches!(check(&signed_with(&k, 3_000_100, 300, 32), 3_000_100), Verified::Signed(_)));
        assert!(matches!(check(&once, 3_000_101), Verified::Failed(Failure { error: BADTIME, .. })));
        // A little behind the latest (another client's clock): fine; well behind: a replay.
        let spread = signed_with(&k, 3_000_100 - CLOCK_SPREAD, 300, 32);
        assert!(matches!(check(&spread, 3_000_100), Verified::Signed(_)));
        let old = signed_with(&k, 3_000_100 - 60, 300, 32);
        assert!(matches!(check(&old, 3_000_100), Verified::Failed(Failure { error: BADTIME, .. })));
    }

    #[test]
    fn unknown_keys_stale_clocks_and_misplaced_records_are_told_apart() {
        let k = key(Algorithm::HmacSha256);
        let ring = KeyRing::new(vec![k.clone()]);
        let other = Key { name: Name::parse("other.", None).unwrap(), ..k.clone() };
        let mut msg = query();
        Signer::request(&other).sign(&mut msg, 1_000_000).unwrap();
        let parsed = message::parse(&msg).unwrap();
        assert!(matches!(verify(&ring, &msg, &parsed, 1_000_000), Verified::Failed(Failure { error: BADKEY, .. })));

        let mut msg = query();
        Signer::request(&k).sign(&mut msg, 1_000_000).unwrap();
        let parsed = message::parse(&msg).unwrap();
        let Verified::Failed(mut f) = verify(&ring, &msg, &parsed, 1_000_000 + 301) else { panic!() };
        assert_eq!(f.error, BADTIME);
        let mut resp = query();
        resp[2] |= 0x80;
        f.append_to(&mut resp, 1_000_301).unwrap();
        let last = message::parse(&resp).unwrap().additional.pop().unwrap();
        let got = fields(&last.rdata).unwrap();
        assert_eq!((got.error, got.other.len(), got.mac.len()), (BADTIME, 6, 32));

        let mut unsigned = query();
        assert!(matches!(verify(&ring, &unsigned, &message::parse(&unsigned).unwrap(), 0), Verified::Unsigned));
        // A TSIG followed by another additional record is malformed.
        Signer::request(&k).sign(&mut unsigned, 1).unwrap();
        unsigned.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        unsigned[11] += 1;
        assert!(matches!(verify(&ring, &unsigned, &message::parse(&unsigned).unwrap(), 1), Verified::Malformed));
    }

    #[test]
    fn a_message_whose_additional_section_is_full_is_not_signed() {
        let k = key(Algorithm::HmacSha256);
        let mut msg = query();
        msg[10..12].copy_from_slice(&u16::MAX.to_be_bytes());
        let before = msg.clone();
        assert_eq!(Signer::request(&k).sign(&mut msg, 1), Err(Overflow::Count));
        assert_eq!(msg, before, "nothing is appended");
    }
}
