//! Record types and RDATA: presentation form ⇄ wire form.
//!
//! RDATA is kept in uncompressed wire form in the snapshot, so answering is a copy. Each type
//! is described once as a list of fields; the same description drives parsing
//! from zone-file tokens and printing back to presentation form, so the two cannot drift.
//! SVCB/HTTPS parameters are parsed by hickory-proto. Anything else, and any type in RFC 3597
//! form (`TYPE65280 \# 3 abcdef`), is carried as opaque octets.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::name::{Name, push_escaped, unescape, wire_len};

mod special;

/// Well-known record type codes used by the lookup.
#[allow(missing_docs)]
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const NAPTR: u16 = 35;
    pub const DNAME: u16 = 39;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const NSEC3: u16 = 50;
    pub const NSEC3PARAM: u16 = 51;
    pub const SVCB: u16 = 64;
    pub const HTTPS: u16 = 65;
    pub const SPF: u16 = 99;
    pub const TKEY: u16 = 249;
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const ANY: u16 = 255;
}

/// One field of a type's RDATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    U8,
    U16,
    U32,
    /// A 32-bit duration that may use units (`1h30m`), as in SOA timers.
    Ttl,
    Ipv4,
    Ipv6,
    /// A domain name that may be compressed on the wire (RFC 3597 §4: RFC 1035 types only).
    CName,
    /// A domain name never compressed.
    Name,
    /// One `<character-string>`.
    CharString,
    /// One or more `<character-string>`s up to the end.
    CharStrings,
    /// Hex octets to the end (`-` or nothing for none where the type allows).
    HexRest,
    /// Base64 octets to the end.
    Base64Rest,
    /// An RR type mnemonic (RRSIG type covered).
    Type,
    /// RRSIG time: `YYYYMMDDHHmmSS` or seconds.
    Time,
    /// NSEC/NSEC3 type bitmap to the end.
    Bitmap,
    /// Hex with a one-octet length prefix, `-` for empty (NSEC3 salt).
    Salt,
    /// Base32hex with a one-octet length prefix (NSEC3 next hashed owner).
    Hash32,
    /// A CAA tag: one-octet length then the tag.
    CaaTag,
    /// Octets to the end with no length prefix (CAA value, URI target).
    Rest,
    /// A last `<character-string>` that may be left out (ISDN subaddress).
    OptCharString,
    /// WKS protocol: `tcp`, `udp` or a number.
    Proto,
    /// WKS services bitmap to the end: names or port numbers.
    Services,
    /// NXT's bitmap of types 1–127 to the end.
    NxtBitmap,
    /// NSAP address: `0x` and hex digits, dots allowed.
    Nsap,
    /// EUI-48 address: six hex pairs joined by `-`.
    Eui48,
    /// EUI-64 address: eight hex pairs joined by `-`.
    Eui64,
    /// ILNP 64-bit node identifier or locator: four hex groups joined by `:`.
    Ilnp64,
    /// IPSECKEY gateway, in the form the gateway type (the second octet) says.
    IpsecGateway,
    /// AMTRELAY discovery bit and relay type: two tokens, one octet.
    AmtType,
    /// AMTRELAY relay, in the form the relay type (second octet, low 7 bits) says.
    AmtRelay,
    /// A6: prefix length, address suffix, prefix name (whole RDATA).
    A6,
    /// ATMA address (whole RDATA).
    Atma,
    /// APL prefix list (whole RDATA, may be empty).
    Apl,
    /// HIP: algorithm, HIT, key and rendezvous servers (whole RDATA).
    Hip,
    /// LOC: coordinates, altitude and precisions (whole RDATA).
    Loc,
    /// CERT type: mnemonic or number, 16 bits.
    CertType,
    /// DNSSEC algorithm: mnemonic or number, 8 bits.
    Algorithm,
    /// DSYNC scheme: `NOTIFY` or a number.
    DsyncScheme,
    /// Base64 octets to the end, `-` for none (DOA data).
    Base64OrDash,
}

use Field as F;

struct TypeInfo {
    code: u16,
    name: &'static str,
    fields: Option<&'static [Field]>,
}

macro_rules! types {
    ($($code:expr, $name:literal, $fields:expr;)*) => {
        const TYPES: &[TypeInfo] = &[$(TypeInfo { code: $code, name: $name, fields: $fields }),*];
    };
}

types! {
    1, "A", Some(&[F::Ipv4]);
    2, "NS", Some(&[F::CName]);
    3, "MD", Some(&[F::CName]);
    4, "MF", Some(&[F::CName]);
    5, "CNAME", Some(&[F::CName]);
    6, "SOA", Some(&[F::CName, F::CName, F::U32, F::Ttl, F::Ttl, F::Ttl, F::Ttl]);
    7, "MB", Some(&[F::CName]);
    8, "MG", Some(&[F::CName]);
    9, "MR", Some(&[F::CName]);
    10, "NULL", None;
    11, "WKS", Some(&[F::Ipv4, F::Proto, F::Services]);
    12, "PTR", Some(&[F::CName]);
    13, "HINFO", Some(&[F::CharString, F::CharString]);
    14, "MINFO", Some(&[F::CName, F::CName]);
    15, "MX", Some(&[F::U16, F::CName]);
    16, "TXT", Some(&[F::CharStrings]);
    17, "RP", Some(&[F::Name, F::Name]);
    18, "AFSDB", Some(&[F::U16, F::Name]);
    19, "X25", Some(&[F::CharString]);
    20, "ISDN", Some(&[F::CharString, F::OptCharString]);
    21, "RT", Some(&[F::U16, F::Name]);
    22, "NSAP", Some(&[F::Nsap]);
    23, "NSAP-PTR", Some(&[F::Name]);
    24, "SIG", Some(&[F::Type, F::U8, F::U8, F::U32, F::Time, F::Time, F::U16, F::Name, F::Base64Rest]);
    25, "KEY", Some(&[F::U16, F::U8, F::U8, F::Base64Rest]);
    26, "PX", Some(&[F::U16, F::Name, F::Name]);
    27, "GPOS", Some(&[F::CharString, F::CharString, F::CharString]);
    28, "AAAA", Some(&[F::Ipv6]);
    29, "LOC", Some(&[F::Loc]);
    30, "NXT", Some(&[F::Name, F::NxtBitmap]);
    31, "EID", Some(&[F::HexRest]);
    32, "NIMLOC", Some(&[F::HexRest]);
    33, "SRV", Some(&[F::U16, F::U16, F::U16, F::Name]);
    34, "ATMA", Some(&[F::Atma]);
    35, "NAPTR", Some(&[F::U16, F::U16, F::CharString, F::CharString, F::CharString, F::Name]);
    36, "KX", Some(&[F::U16, F::Name]);
    37, "CERT", Some(&[F::CertType, F::U16, F::Algorithm, F::Base64Rest]);
    38, "A6", Some(&[F::A6]);
    39, "DNAME", Some(&[F::Name]);
    40, "SINK", Some(&[F::U8, F::U8, F::U8, F::Base64Rest]);
    41, "OPT", None;
    42, "APL", Some(&[F::Apl]);
    43, "DS", Some(&[F::U16, F::U8, F::U8, F::HexRest]);
    44, "SSHFP", Some(&[F::U8, F::U8, F::HexRest]);
    45, "IPSECKEY", Some(&[F::U8, F::U8, F::U8, F::IpsecGateway, F::Base64Rest]);
    46, "RRSIG", Some(&[F::Type, F::U8, F::U8, F::U32, F::Time, F::Time, F::U16, F::Name, F::Base64Rest]);
    47, "NSEC", Some(&[F::Name, F::Bitmap]);
    48, "DNSKEY", Some(&[F::U16, F::U8, F::U8, F::Base64Rest]);
    49, "DHCID", Some(&[F::Base64Rest]);
    50, "NSEC3", Some(&[F::U8, F::U8, F::U16, F::Salt, F::Hash32, F::Bitmap]);
    51, "NSEC3PARAM", Some(&[F::U8, F::U8, F::U16, F::Salt]);
    52, "TLSA", Some(&[F::U8, F::U8, F::U8, F::HexRest]);
    53, "SMIMEA", Some(&[F::U8, F::U8, F::U8, F::HexRest]);
    55, "HIP", Some(&[F::Hip]);
    56, "NINFO", Some(&[F::CharStrings]);
    57, "RKEY", Some(&[F::U16, F::U8, F::U8, F::Base64Rest]);
    58, "TALINK", Some(&[F::Name, F::Name]);
    59, "CDS", Some(&[F::U16, F::U8, F::U8, F::HexRest]);
    60, "CDNSKEY", Some(&[F::U16, F::U8, F::U8, F::Base64Rest]);
    61, "OPENPGPKEY", Some(&[F::Base64Rest]);
    62, "CSYNC", Some(&[F::U32, F::U16, F::Bitmap]);
    63, "ZONEMD", Some(&[F::U32, F::U8, F::U8, F::HexRest]);
    64, "SVCB", None;
    65, "HTTPS", None;
    66, "DSYNC", Some(&[F::Type, F::DsyncScheme, F::U16, F::Name]);
    99, "SPF", Some(&[F::CharStrings]);
    104, "NID", Some(&[F::U16, F::Ilnp64]);
    105, "L32", Some(&[F::U16, F::Ipv4]);
    106, "L64", Some(&[F::U16, F::Ilnp64]);
    107, "LP", Some(&[F::U16, F::Name]);
    108, "EUI48", Some(&[F::Eui48]);
    109, "EUI64", Some(&[F::Eui64]);
    249, "TKEY", None;
    250, "TSIG", None;
    251, "IXFR", None;
    252, "AXFR", None;
    253, "MAILB", None;
    254, "MAILA", None;
    255, "ANY", None;
    256, "URI", Some(&[F::U16, F::U16, F::Rest]);
    257, "CAA", Some(&[F::U8, F::CaaTag, F::Rest]);
    258, "AVC", Some(&[F::CharStrings]);
    259, "DOA", Some(&[F::U32, F::U32, F::U8, F::CharString, F::Base64OrDash]);
    260, "AMTRELAY", Some(&[F::U8, F::AmtType, F::AmtRelay]);
    261, "RESINFO", Some(&[F::CharStrings]);
    262, "WALLET", Some(&[F::CharStrings]);
    32768, "TA", Some(&[F::U16, F::U8, F::U8, F::HexRest]);
    32769, "DLV", Some(&[F::U16, F::U8, F::U8, F::HexRest]);
}

fn info(code: u16) -> Option<&'static TypeInfo> {
    TYPES.iter().find(|t| t.code == code)
}

/// Mnemonic or `TYPEnnn` → type code (case-insensitive).
pub fn type_from_str(s: &str) -> Option<u16> {
    if let Some(t) = TYPES.iter().find(|t| t.name.eq_ignore_ascii_case(s)) {
        return Some(t.code);
    }
    let digits = s.get(..4).filter(|p| p.eq_ignore_ascii_case("TYPE")).map(|_| &s[4..])?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Type code → mnemonic, or `TYPEnnn` for types without one.
pub fn type_to_string(code: u16) -> String {
    match info(code) {
        Some(t) => t.name.to_owned(),
        None => format!("TYPE{code}"),
    }
}

/// Whether a type is a query-only meta type that can never be stored (RFC 6895 §3.1).
pub fn is_meta_type(code: u16) -> bool {
    matches!(code, rtype::OPT | 128..=255)
}

/// One piece of an RDATA as the `types!` table lays it out: enough to find the domain names
/// in it without parsing the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Octets of a fixed width.
    Fixed(usize),
    /// A length octet and that many octets (a `<character-string>`).
    Counted,
    /// A domain name; `compressible` for the RFC 1035 types whose names senders may
    /// compress (RFC 3597 §4).
    Name {
        /// Whether it may be compressed on the wire.
        compressible: bool,
    },
    /// The rest of the RDATA, holding no name this table places (a name behind a field
    /// of variable form, as IPSECKEY's gateway or A6's prefix name, is not placed).
    Rest,
}

impl Field {
    const fn piece(self) -> Piece {
        match self {
            F::U8 | F::Algorithm | F::DsyncScheme => Piece::Fixed(1),
            F::U16 | F::Type | F::CertType => Piece::Fixed(2),
            F::U32 | F::Ttl | F::Time | F::Ipv4 => Piece::Fixed(4),
            F::Ipv6 => Piece::Fixed(16),
            F::CharString => Piece::Counted,
            F::CName => Piece::Name { compressible: true },
            F::Name => Piece::Name { compressible: false },
            _ => Piece::Rest,
        }
    }
}

/// The pieces of an RDATA of type `code` up to its last placed name (nothing for types
/// without names, or unknown to the table).
pub fn layout(code: u16) -> impl Iterator<Item = Piece> {
    let fields = info(code).and_then(|t| t.fields).unwrap_or(&[]);
    let last_name = fields.iter().rposition(|f| matches!(f.piece(), Piece::Name { .. }));
    let upto = match last_name {
        // Up to the first piece of unknown width before it: names behind one are not placed.
        Some(n) => fields[..=n].iter().position(|f| f.piece() == Piece::Rest).unwrap_or(n + 1),
        None => 0,
    };
    fields[..upto].iter().map(|f| f.piece())
}

/// The domain names in the uncompressed RDATA `rdata` of type `code`, as `(offset, length)`
/// in order, as [`layout`] places them; stops at the first that does not parse.
pub fn names(code: u16, rdata: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0usize;
    layout(code)
        .map_while(move |p| {
            let here = at;
            match p {
                Piece::Fixed(n) => at = at.checked_add(n)?,
                Piece::Counted => at = at.checked_add(1 + usize::from(*rdata.get(at)?))?,
                Piece::Name { .. } => {
                    let len = wire_len(rdata.get(at..)?)?;
                    at += len;
                    return Some(Some((here, len)));
                }
                Piece::Rest => return None,
            }
            (at <= rdata.len()).then_some(None)
        })
        .flatten()
}

/// RDATA `rdata` of type `code` with every name it holds lower-cased: the canonical form
/// of RFC 4034 §6.2, for comparing records.
pub fn canonical(code: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = rdata.to_vec();
    for (at, len) in names(code, rdata) {
        out[at..at + len].make_ascii_lowercase();
    }
    out
}

/// Per type code below 16 (the RFC 1035 types, the only ones with compressible names):
/// the offset of the first compressible name and how many follow it back to back, from
/// the `types!` table at compile time — the answer path finds them with one index.
const COMPRESSIBLE: [(u8, u8); 16] = {
    let mut table = [(0u8, 0u8); 16];
    let mut i = 0;
    while i < TYPES.len() {
        let t = &TYPES[i];
        i += 1;
        let Some(fields) = t.fields else { continue };
        // Offset of the next field while every field so far has a fixed width.
        let (mut at, mut fixed) = (0usize, true);
        let (mut first, mut count, mut j) = (0usize, 0usize, 0usize);
        while j < fields.len() {
            match fields[j].piece() {
                Piece::Name { compressible: true } => {
                    assert!(fixed, "a compressible name must be at a fixed offset");
                    assert!(count == 0 || matches!(fields[j - 1], F::CName), "compressible names must be adjacent");
                    if count == 0 {
                        first = at;
                    }
                    count += 1;
                }
                Piece::Fixed(n) => at += n,
                _ => fixed = false,
            }
            j += 1;
        }
        if count > 0 {
            assert!(t.code < 16, "only RFC 1035 types have compressible names");
            table[t.code as usize] = (first as u8, count as u8);
        }
    }
    table
};

/// The offsets of names inside an RDATA that may be compressed when sent (RFC 3597 §4: NS,
/// CNAME, SOA, PTR, MX and the other RFC 1035 types with names). Names are returned as
/// `(offset, len)`.
pub fn compressible_names(code: u16, rdata: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let (first, count) = COMPRESSIBLE.get(usize::from(code)).copied().unwrap_or((0, 0));
    let mut at = usize::from(first);
    (0..count).map_while(move |_| {
        let len = wire_len(rdata.get(at..)?)?;
        let item = (at, len);
        at += len;
        Some(item)
    })
}

/// The target name of an NS, MX, SRV, CNAME or DNAME RDATA (wire form), for additional-section
/// processing and chasing.
pub fn target_name(code: u16, rdata: &[u8]) -> Option<&[u8]> {
    let at = match code {
        rtype::NS | rtype::CNAME | rtype::DNAME | rtype::PTR => 0,
        rtype::MX => 2,
        rtype::SRV => 6,
        _ => return None,
    };
    let rest = rdata.get(at..)?;
    Some(&rest[..wire_len(rest)?])
}

/// A token of RDATA in presentation form. `text` keeps its backslash escapes; quotes are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token's characters with escapes still in place.
    pub text: String,
    /// Whether it was written in double quotes.
    pub quoted: bool,
}

impl Token {
    /// An unquoted token.
    pub fn bare(text: impl Into<String>) -> Self {
        Self { text: text.into(), quoted: false }
    }
}

/// Parses RDATA tokens of `code` into wire form. `origin` completes relative names.
pub fn parse_rdata(code: u16, tokens: &[Token], origin: Option<&Name>) -> Result<Vec<u8>, String> {
    if tokens.first().is_some_and(|t| !t.quoted && t.text == "\\#") {
        let data = parse_generic(&tokens[1..])?;
        // RFC 3597 §5: a known type in generic form must still be valid data of that type.
        if !is_valid_rdata(code, &data) {
            return Err(format!("\\# data is not valid {} RDATA", type_to_string(code)));
        }
        return Ok(data);
    }
    if is_meta_type(code) {
        return Err(format!("{} cannot be used in a zone", type_to_string(code)));
    }
    match code {
        rtype::SVCB | rtype::HTTPS => return parse_svcb(code, tokens, origin),
        _ => {}
    }
    let Some(fields) = info(code).and_then(|i| i.fields) else {
        return Err(format!(
            "no presentation format known for {}; write it as {} \\# <length> <hex>",
            type_to_string(code),
            type_to_string(code)
        ));
    };
    let mut out = Vec::new();
    let mut rest = tokens;
    for field in fields {
        rest = parse_field(*field, rest, origin, &mut out)?;
    }
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected '{}' after the RDATA", extra.text));
    }
    if out.len() > usize::from(u16::MAX) {
        return Err("RDATA longer than 65535 octets".into());
    }
    Ok(out)
}

fn parse_generic(tokens: &[Token]) -> Result<Vec<u8>, String> {
    let (len, hex) = tokens.split_first().ok_or("\\# needs a length")?;
    let len: usize = len.text.parse().map_err(|_| format!("bad \\# length '{}'", len.text))?;
    let hex: String = hex.iter().map(|t| t.text.as_str()).collect();
    let data = decode_hex(&hex)?;
    if data.len() != len {
        return Err(format!("\\# length {len} but {} octets of data", data.len()));
    }
    if len > usize::from(u16::MAX) {
        return Err("RDATA longer than 65535 octets".into());
    }
    Ok(data)
}

fn parse_svcb(code: u16, tokens: &[Token], origin: Option<&Name>) -> Result<Vec<u8>, String> {
    let out = parse_svcb_once(code, tokens, origin)?;
    // The parameters are parsed by hickory-proto, whose idea of tokens and escapes is not
    // ours: accept only what reads back the same once written in presentation form.
    let text = svcb_to_text(code, &out).ok_or("SVCB parameters do not decode")?;
    let again = crate::zonefile::tokenize(&text).and_then(|t| parse_svcb_once(code, &t, None));
    if again.as_deref() != Ok(&out[..]) {
        return Err(format!("SVCB value does not read back as written ({text})"));
    }
    Ok(out)
}

fn parse_svcb_once(code: u16, tokens: &[Token], origin: Option<&Name>) -> Result<Vec<u8>, String> {
    use hickory_proto::rr::{RData, RecordType};
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
    let mut text = String::new();
    for (i, t) in tokens.iter().enumerate() {
        // The parameter parser takes text, not octets, splits on any white space and knows
        // no escapes: tokens with octets outside printable ASCII, or parameters with `\DDD`
        // escapes or quotes inside, could not be read back as written, so they are refused.
        let digit_escape = t.text.as_bytes().windows(2).any(|w| w[0] == b'\\' && w[1].is_ascii_digit());
        let printable = t.text.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !printable || (i >= 2 && (digit_escape || t.text.contains('"'))) {
            return Err(format!(
                "SVCB parameter '{}': octets outside printable ASCII are not supported",
                t.text.escape_default()
            ));
        }
        if i == 1 {
            // The target is a name: hickory parses it without an origin, so complete it here.
            let target = Name::parse(&t.text, origin).map_err(|e| format!("target: {e}"))?;
            text.push_str(&target.to_text());
        } else if t.quoted {
            let _ = write!(text, "\"{}\"", t.text);
        } else {
            text.push_str(&t.text);
        }
        text.push(' ');
    }
    let rtype = RecordType::from(code);
    let rdata = RData::try_from_str(rtype, &text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut enc = BinEncoder::new(&mut out);
    rdata.emit(&mut enc).map_err(|e| e.to_string())?;
    Ok(out)
}

fn take<'t>(tokens: &'t [Token], what: &str) -> Result<(&'t Token, &'t [Token]), String> {
    tokens.split_first().ok_or_else(|| format!("missing {what}"))
}

fn parse_int<T: TryFrom<u64>>(t: &Token, what: &str) -> Result<T, String> {
    t.text.parse::<u64>().ok().and_then(|v| T::try_from(v).ok()).ok_or_else(|| format!("bad {what} '{}'", t.text))
}

fn parse_field<'t>(
    field: Field,
    tokens: &'t [Token],
    origin: Option<&Name>,
    out: &mut Vec<u8>,
) -> Result<&'t [Token], String> {
    Ok(match field {
        F::U8 => {
            let (t, rest) = take(tokens, "number")?;
            out.push(parse_int::<u8>(t, "8-bit number")?);
            rest
        }
        F::U16 => {
            let (t, rest) = take(tokens, "number")?;
            out.extend_from_slice(&parse_int::<u16>(t, "16-bit number")?.to_be_bytes());
            rest
        }
        F::U32 => {
            let (t, rest) = take(tokens, "number")?;
            out.extend_from_slice(&parse_int::<u32>(t, "32-bit number")?.to_be_bytes());
            rest
        }
        F::Ttl => {
            let (t, rest) = take(tokens, "time value")?;
            out.extend_from_slice(&parse_ttl(&t.text)?.to_be_bytes());
            rest
        }
        F::Ipv4 => {
            let (t, rest) = take(tokens, "IPv4 address")?;
            let a: Ipv4Addr = t.text.parse().map_err(|_| format!("bad IPv4 address '{}'", t.text))?;
            out.extend_from_slice(&a.octets());
            rest
        }
        F::Ipv6 => {
            let (t, rest) = take(tokens, "IPv6 address")?;
            let a: Ipv6Addr = t.text.parse().map_err(|_| format!("bad IPv6 address '{}'", t.text))?;
            out.extend_from_slice(&a.octets());
            rest
        }
        F::CName | F::Name => {
            let (t, rest) = take(tokens, "domain name")?;
            let n = Name::parse(&t.text, origin).map_err(|e| format!("bad name '{}': {e}", t.text))?;
            out.extend_from_slice(n.wire());
            rest
        }
        F::CharString => {
            let (t, rest) = take(tokens, "character string")?;
            push_char_string(out, &t.text)?;
            rest
        }
        F::CharStrings => {
            if tokens.is_empty() {
                return Err("missing character string".into());
            }
            for t in tokens {
                push_char_string(out, &t.text)?;
            }
            &[]
        }
        F::HexRest => {
            let hex: String = tokens.iter().map(|t| t.text.as_str()).collect();
            if hex.is_empty() {
                return Err("missing hex data".into());
            }
            out.extend(decode_hex(&hex)?);
            &[]
        }
        F::Base64Rest => {
            let b64: String = tokens.iter().map(|t| t.text.as_str()).collect();
            out.extend(decode_base64(&b64)?);
            &[]
        }
        F::Type => {
            let (t, rest) = take(tokens, "type")?;
            let code = type_from_str(&t.text).ok_or_else(|| format!("unknown type '{}'", t.text))?;
            out.extend_from_slice(&code.to_be_bytes());
            rest
        }
        F::Time => {
            let (t, rest) = take(tokens, "time")?;
            out.extend_from_slice(&parse_sig_time(&t.text)?.to_be_bytes());
            rest
        }
        F::Bitmap => {
            let mut types = Vec::new();
            for t in tokens {
                types.push(type_from_str(&t.text).ok_or_else(|| format!("unknown type '{}'", t.text))?);
            }
            out.extend(encode_bitmap(&mut types));
            &[]
        }
        F::Salt => {
            let (t, rest) = take(tokens, "salt")?;
            let salt = if t.text == "-" { Vec::new() } else { decode_hex(&t.text)? };
            out.push(u8::try_from(salt.len()).map_err(|_| "salt longer than 255 octets")?);
            out.extend(salt);
            rest
        }
        F::Hash32 => {
            let (t, rest) = take(tokens, "hashed owner")?;
            let h = decode_base32hex(&t.text)?;
            if h.is_empty() {
                return Err(format!("hashed owner '{}' is empty", t.text));
            }
            out.push(u8::try_from(h.len()).map_err(|_| "hash longer than 255 octets")?);
            out.extend(h);
            rest
        }
        F::CaaTag => {
            let (t, rest) = take(tokens, "tag")?;
            if t.text.is_empty() || !t.text.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("bad CAA tag '{}'", t.text));
            }
            push_char_string(out, &t.text)?;
            rest
        }
        F::Rest => {
            let (t, rest) = take(tokens, "value")?;
            out.extend(unescape_text(&t.text)?);
            rest
        }
        F::OptCharString => match tokens.split_first() {
            Some((t, rest)) => {
                push_char_string(out, &t.text)?;
                rest
            }
            None => tokens,
        },
        F::Proto => special::parse_proto(tokens, out)?,
        F::Services => special::parse_services(tokens, out)?,
        F::NxtBitmap => special::parse_nxt_bitmap(tokens, out)?,
        F::Nsap => special::parse_nsap(tokens, out)?,
        F::Eui48 => special::parse_eui(tokens, 6, out)?,
        F::Eui64 => special::parse_eui(tokens, 8, out)?,
        F::Ilnp64 => special::parse_ilnp64(tokens, out)?,
        F::IpsecGateway => special::parse_gateway(out.get(1).copied().unwrap_or(0xff), tokens, out)?,
        F::AmtType => special::parse_amt_type(tokens, out)?,
        F::AmtRelay => special::parse_gateway(out.get(1).map_or(0xff, |t| t & 0x7f), tokens, out)?,
        F::A6 => special::parse_a6(tokens, origin, out)?,
        F::Atma => special::parse_atma(tokens, out)?,
        F::Apl => special::parse_apl(tokens, out)?,
        F::Hip => special::parse_hip(tokens, origin, out)?,
        F::Loc => special::parse_loc(tokens, out)?,
        F::CertType => special::parse_cert_type(tokens, out)?,
        F::Algorithm => special::parse_algorithm(tokens, out)?,
        F::DsyncScheme => special::parse_dsync_scheme(tokens, out)?,
        F::Base64OrDash => {
            if tokens.len() == 1 && tokens[0].text == "-" {
                &[]
            } else {
                let b64: String = tokens.iter().map(|t| t.text.as_str()).collect();
                if b64.is_empty() {
                    return Err("missing data (write - for none)".into());
                }
                out.extend(decode_base64(&b64)?);
                &[]
            }
        }
    })
}

/// Decodes `\DDD` and `\X` in a character string.
pub fn unescape_text(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let (o, used) = unescape(&b[i + 1..]).map_err(|e| format!("{e} in '{s}'"))?;
            out.push(o);
            i += 1 + used;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn push_char_string(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let octets = unescape_text(s)?;
    let len = u8::try_from(octets.len()).map_err(|_| "character string longer than 255 octets")?;
    out.push(len);
    out.extend(octets);
    Ok(())
}

/// Parses a TTL in seconds or with BIND units (`1w2d3h4m5s`).
pub fn parse_ttl(s: &str) -> Result<u32, String> {
    let bad = || format!("bad TTL '{s}'");
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(u64::from(d))).ok_or_else(bad)?);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let part = num.take().ok_or_else(bad)?.checked_mul(unit).ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    if num.is_some() {
        return Err(bad());
    }
    u32::try_from(total).map_err(|_| bad())
}

fn parse_sig_time(s: &str) -> Result<u32, String> {
    if s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()) {
        let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap_or(0);
        let (y, mo, d, h, mi, se) = (n(0..4), n(4..6), n(6..8), n(8..10), n(10..12), n(12..14));
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return Err(format!("bad time '{s}'"));
        }
        let days = days_from_civil(y, mo, d);
        let secs = days * 86400 + h * 3600 + mi * 60 + se;
        // RFC 4034 §3.2: serial number arithmetic, so the value wraps modulo 2^32.
        return Ok(secs.rem_euclid(1 << 32) as u32);
    }
    s.parse().map_err(|_| format!("bad time '{s}'"))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn encode_bitmap(types: &mut Vec<u16>) -> Vec<u8> {
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < types.len() {
        let window = types[i] >> 8;
        let mut bits = [0u8; 32];
        let mut last = 0;
        while i < types.len() && types[i] >> 8 == window {
            let low = (types[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            last = low / 8;
            i += 1;
        }
        // Lossless: `window` is a type's upper octet, `last` a position in 32 octets.
        out.push(window as u8);
        out.push(last as u8 + 1);
        out.extend_from_slice(&bits[..=last]);
    }
    out
}

fn decode_bitmap(mut b: &[u8]) -> Option<Vec<u16>> {
    let mut types = Vec::new();
    while !b.is_empty() {
        let (&window, rest) = b.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len);
        if len == 0 || len > 32 || rest.len() < len {
            return None;
        }
        for (i, byte) in rest[..len].iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    types.push(u16::from(window) << 8 | (i * 8 + bit) as u16);
                }
            }
        }
        b = &rest[len..];
    }
    Some(types)
}

/// Hex digits (either case) as octets. The codecs below are data-encoding's (RFC 4648,
/// strict: an odd digit, bad padding or stray bits are errors).
pub fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    data_encoding::HEXUPPER_PERMISSIVE.decode(s.as_bytes()).map_err(|e| format!("bad hex '{s}': {e}"))
}

fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    data_encoding::BASE64.decode(s.as_bytes()).map_err(|e| format!("bad base64 '{s}': {e}"))
}

fn encode_base64(b: &[u8]) -> String {
    data_encoding::BASE64.encode(b)
}

/// Base32hex without padding (RFC 4648 §7, NSEC3), either case.
pub(crate) fn decode_base32hex(s: &str) -> Result<Vec<u8>, String> {
    data_encoding::BASE32HEX_NOPAD
        .decode(s.trim_end_matches('=').to_ascii_uppercase().as_bytes())
        .map_err(|e| format!("bad base32hex '{s}': {e}"))
}

fn encode_base32hex(b: &[u8]) -> String {
    data_encoding::BASE32HEX_NOPAD.encode(b)
}

fn hex(b: &[u8]) -> String {
    data_encoding::HEXUPPER.encode(b)
}

fn push_quoted(s: &mut String, octets: &[u8]) {
    s.push('"');
    for &b in octets {
        push_escaped(s, b, b"\"\\");
    }
    s.push('"');
}

/// RFC 3597 generic presentation of RDATA.
pub fn generic_text(rdata: &[u8]) -> String {
    if rdata.is_empty() { "\\# 0".to_owned() } else { format!("\\# {} {}", rdata.len(), hex(rdata)) }
}

/// Whether wire RDATA follows the layout of its type (always true for opaque types).
pub fn is_valid_rdata(code: u16, rdata: &[u8]) -> bool {
    if matches!(code, rtype::SVCB | rtype::HTTPS) {
        return svcb_to_text(code, rdata).is_some();
    }
    let Some(fields) = info(code).and_then(|i| i.fields) else {
        return true;
    };
    let mut parts = Vec::new();
    let mut at = 0;
    fields.iter().all(|f| print_field(*f, rdata, &mut at, &mut parts).is_some()) && at == rdata.len()
}

/// Prints wire RDATA in presentation form; falls back to RFC 3597 form when the type has no
/// known layout or the data does not follow it.
pub fn rdata_to_text(code: u16, rdata: &[u8]) -> String {
    if matches!(code, rtype::SVCB | rtype::HTTPS) {
        return svcb_to_text(code, rdata).unwrap_or_else(|| generic_text(rdata));
    }
    let Some(fields) = info(code).and_then(|i| i.fields) else {
        return generic_text(rdata);
    };
    let mut parts: Vec<String> = Vec::new();
    let mut at = 0;
    for field in fields {
        // Empty trailing hex has no presentation form that reads back ("DS 0 0 0" is a
        // missing digest to every parser), so such data is printed in RFC 3597 form.
        if *field == F::HexRest && at == rdata.len() {
            return generic_text(rdata);
        }
        match print_field(*field, rdata, &mut at, &mut parts) {
            Some(()) => {}
            None => return generic_text(rdata),
        }
    }
    if at != rdata.len() {
        return generic_text(rdata);
    }
    parts.join(" ")
}

/// RFC 9460 presentation of SVCB/HTTPS: priority, target, then `key=value` parameters.
fn svcb_to_text(code: u16, rdata: &[u8]) -> Option<String> {
    let _ = code;
    let priority = u16::from_be_bytes(rdata.get(..2)?.try_into().ok()?);
    let tlen = wire_len(rdata.get(2..)?)?;
    let mut out = format!("{priority} {}", crate::name::wire_to_text(&rdata[2..2 + tlen]));
    let mut at = 2 + tlen;
    let key_name = |k: u16| match k {
        0 => "mandatory".to_owned(),
        1 => "alpn".to_owned(),
        2 => "no-default-alpn".to_owned(),
        3 => "port".to_owned(),
        4 => "ipv4hint".to_owned(),
        5 => "ech".to_owned(),
        6 => "ipv6hint".to_owned(),
        7 => "dohpath".to_owned(),
        k => format!("key{k}"),
    };
    while at < rdata.len() {
        let key = u16::from_be_bytes(rdata.get(at..at + 2)?.try_into().ok()?);
        let len = usize::from(u16::from_be_bytes(rdata.get(at + 2..at + 4)?.try_into().ok()?));
        let v = rdata.get(at + 4..at + 4 + len)?;
        at += 4 + len;
        out.push(' ');
        out.push_str(&key_name(key));
        let value = match key {
            0 => {
                let keys: Option<Vec<String>> =
                    v.chunks(2).map(|c| Some(key_name(u16::from_be_bytes(c.try_into().ok()?)))).collect();
                keys?.join(",")
            }
            1 => {
                let mut ids = Vec::new();
                let mut i = 0;
                while i < v.len() {
                    let l = usize::from(v[i]);
                    let id = v.get(i + 1..i + 1 + l)?;
                    let mut s = String::new();
                    for &b in id {
                        push_escaped(&mut s, b, b",\\\" ");
                    }
                    ids.push(s);
                    i += 1 + l;
                }
                format!("\"{}\"", ids.join(","))
            }
            2 if v.is_empty() => continue,
            3 => u16::from_be_bytes(v.try_into().ok()?).to_string(),
            4 => {
                let a: Option<Vec<String>> =
                    v.chunks(4).map(|c| Some(Ipv4Addr::from(<[u8; 4]>::try_from(c).ok()?).to_string())).collect();
                a?.join(",")
            }
            6 => {
                let a: Option<Vec<String>> =
                    v.chunks(16).map(|c| Some(Ipv6Addr::from(<[u8; 16]>::try_from(c).ok()?).to_string())).collect();
                a?.join(",")
            }
            5 => encode_base64(v),
            _ => {
                let mut s = String::from("\"");
                for &b in v {
                    push_escaped(&mut s, b, b"\"\\");
                }
                s.push('"');
                s
            }
        };
        out.push('=');
        out.push_str(&value);
    }
    Some(out)
}

fn print_field(field: Field, b: &[u8], at: &mut usize, parts: &mut Vec<String>) -> Option<()> {
    let rest = b.get(*at..)?;
    let mut used = 0;
    let text = match field {
        F::U8 => {
            used = 1;
            rest.first()?.to_string()
        }
        F::U16 => {
            used = 2;
            u16::from_be_bytes(rest.get(..2)?.try_into().ok()?).to_string()
        }
        F::U32 | F::Ttl => {
            used = 4;
            u32::from_be_bytes(rest.get(..4)?.try_into().ok()?).to_string()
        }
        F::Time => {
            used = 4;
            let t = i64::from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?));
            let (y, m, d) = civil_from_days(t.div_euclid(86400));
            let s = t.rem_euclid(86400);
            format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60)
        }
        F::Ipv4 => {
            used = 4;
            Ipv4Addr::from(<[u8; 4]>::try_from(rest.get(..4)?).ok()?).to_string()
        }
        F::Ipv6 => {
            used = 16;
            Ipv6Addr::from(<[u8; 16]>::try_from(rest.get(..16)?).ok()?).to_string()
        }
        F::CName | F::Name => {
            used = wire_len(rest)?;
            crate::name::wire_to_text(&rest[..used])
        }
        F::CharString | F::CaaTag => {
            let len = usize::from(*rest.first()?);
            used = 1 + len;
            let mut s = String::new();
            if field == F::CaaTag {
                // RFC 8659 §4.1: one or more ASCII letters and digits — what the parser
                // takes, so printed data always reads back.
                let tag = rest.get(1..used)?;
                if tag.is_empty() || !tag.iter().all(u8::is_ascii_alphanumeric) {
                    return None;
                }
                s.push_str(std::str::from_utf8(tag).ok()?);
            } else {
                push_quoted(&mut s, rest.get(1..used)?);
            }
            s
        }
        F::CharStrings => {
            let mut strs = Vec::new();
            while used < rest.len() {
                let len = usize::from(rest[used]);
                let mut s = String::new();
                push_quoted(&mut s, rest.get(used + 1..used + 1 + len)?);
                strs.push(s);
                used += 1 + len;
            }
            if strs.is_empty() {
                return None;
            }
            strs.join(" ")
        }
        F::HexRest => {
            used = rest.len();
            hex(rest)
        }
        F::Base64Rest => {
            used = rest.len();
            encode_base64(rest)
        }
        F::Type => {
            used = 2;
            type_to_string(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?))
        }
        F::Bitmap => {
            used = rest.len();
            let types = decode_bitmap(rest)?;
            types.into_iter().map(type_to_string).collect::<Vec<_>>().join(" ")
        }
        F::Salt => {
            let len = usize::from(*rest.first()?);
            used = 1 + len;
            if len == 0 { "-".to_owned() } else { hex(rest.get(1..used)?) }
        }
        F::Hash32 => {
            let len = usize::from(*rest.first()?);
            used = 1 + len;
            encode_base32hex(rest.get(1..used)?)
        }
        F::Rest => {
            used = rest.len();
            let mut s = String::new();
            push_quoted(&mut s, rest);
            s
        }
        F::OptCharString => {
            if rest.is_empty() {
                String::new()
            } else {
                let len = usize::from(rest[0]);
                used = 1 + len;
                let mut s = String::new();
                push_quoted(&mut s, rest.get(1..used)?);
                s
            }
        }
        F::Proto => {
            used = 1;
            rest.first()?.to_string()
        }
        F::Services => {
            used = rest.len();
            special::print_services(rest)
        }
        F::NxtBitmap => {
            used = rest.len();
            special::print_nxt_bitmap(rest)?
        }
        F::Nsap => {
            used = rest.len();
            if rest.is_empty() {
                return None;
            }
            format!("0x{}", hex(rest).to_ascii_lowercase())
        }
        F::Eui48 => {
            used = 6;
            special::print_eui(rest.get(..6)?)
        }
        F::Eui64 => {
            used = 8;
            special::print_eui(rest.get(..8)?)
        }
        F::Ilnp64 => {
            used = 8;
            special::print_ilnp64(rest.get(..8)?)
        }
        F::IpsecGateway | F::AmtRelay => {
            let kind = *b.get(1)?;
            let kind = if field == F::AmtRelay { kind & 0x7f } else { kind };
            let (t, n) = special::print_gateway(kind, rest)?;
            used = n;
            t
        }
        F::AmtType => {
            used = 1;
            let v = *rest.first()?;
            format!("{} {}", v >> 7, v & 0x7f)
        }
        F::A6 => {
            let (t, n) = special::print_a6(rest)?;
            used = n;
            t
        }
        F::Atma => {
            used = rest.len();
            special::print_atma(rest)?
        }
        F::Apl => {
            used = rest.len();
            special::print_apl(rest)?
        }
        F::Hip => {
            used = rest.len();
            special::print_hip(rest)?
        }
        F::Loc => {
            used = rest.len();
            special::print_loc(rest)?
        }
        F::CertType => {
            used = 2;
            special::cert_type_text(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?))
        }
        F::Algorithm => {
            used = 1;
            special::algorithm_text(*rest.first()?)
        }
        F::DsyncScheme => {
            used = 1;
            special::dsync_scheme_text(*rest.first()?)
        }
        F::Base64OrDash => {
            used = rest.len();
            if rest.is_empty() { "-".to_owned() } else { encode_base64(rest) }
        }
    };
    if !text.is_empty() {
        parts.push(text);
    }
    *at += used;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `zonefile` fuzz target: a TTL with units whose value overflows.
    #[test]
    fn ttls_that_overflow_are_errors_not_panics() {
        assert!(parse_ttl("96696666666666666666w").is_err());
        assert!(parse_ttl("9999999999999d9999999999999w").is_err());
        assert!(parse_ttl("4294967296s").is_err());
        assert_eq!(parse_ttl("1w2d3h4m5s"), Ok(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5));
        let text = "$ORIGIN example.\n@ 96696666666666666666w SOA ns h 1 2 3 4 5\n";
        assert!(crate::load_zone_str(text, std::path::Path::new("t"), None).is_err());
    }

    /// Found by the `zonefile` fuzz target: a non-ASCII character in a hex field was sliced
    /// through.
    #[test]
    fn non_ascii_in_hex_fields_is_an_error() {
        assert!(decode_hex("ùF").is_err());
        assert!(decode_hex("FFù").is_err());
        assert_eq!(decode_hex("0aFf"), Ok(vec![0x0a, 0xff]));
        let text = "$ORIGIN example.\n@ SOA ns h 1 2 3 4 5\n NS ns\nx DS 0 0 0 FFFù\n";
        assert!(crate::load_zone_str(text, std::path::Path::new("t"), None).is_err());
    }

    /// Found by the `route53_value` fuzz target: a non-ASCII ALPN ID was accepted but, once
    /// written with escapes, read back differently.
    #[test]
    fn svcb_values_with_non_ascii_octets_are_refused() {
        assert!(parse_rdata(65, &toks("1 . alpn=μ1h3"), None).is_err());
        assert!(parse_rdata(65, &toks("1 . alpn=\\206\\1881h3"), None).is_err());
        assert!(parse_rdata(65, &toks("1 . alpn=h2,h3 port=443"), None).is_ok());
        let nul = [Token::bare("1"), Token::bare("."), Token { quoted: true, ..Token::bare("alpn=h\0x") }];
        assert!(parse_rdata(65, &nul, None).is_err());
        // A vertical tab is not white space to the zone-file tokenizer: one token here.
        assert!(parse_rdata(65, &toks("1 . alpn=\"h2,h3!apn=(,((\"h1,h3\"\""), None).is_err());
        let vt = [Token::bare("262\u{b}\u{b}o."), Token::bare("alpn=h2")];
        assert!(parse_rdata(65, &vt, None).is_err());
    }

    /// Found by the `route53_value` fuzz target: an NSEC3 hashed owner of one base32hex
    /// character decoded to nothing and could not be written back.
    #[test]
    fn nsec3_hashed_owners_must_be_whole_octets() {
        assert!(decode_base32hex("2").is_err());
        assert!(decode_base32hex("22").is_err(), "leftover bits must be zero");
        assert_eq!(decode_base32hex("CPNMUOJ1E8======"), Ok(b"foobar".to_vec()));
        assert_eq!(decode_base32hex(""), Ok(vec![]));
        assert!(parse_rdata(50, &toks("1 0 1 - 2 A"), None).is_err());
        assert!(parse_rdata(50, &toks("1 0 1 - - A"), None).is_err());
    }

    fn toks(s: &str) -> Vec<Token> {
        s.split_whitespace().map(Token::bare).collect()
    }

    fn round_trip(t: &str, text: &str) {
        let origin: Name = "example.com.".parse().unwrap();
        let line = format!("x 60 IN {t} {text}\n");
        let recs = crate::zonefile::read_str(&line, std::path::Path::new("t"), Some(&origin)).unwrap();
        let code = type_from_str(t).unwrap();
        assert_eq!(rdata_to_text(code, &recs[0].rdata), text, "{t}");
    }

    #[test]
    fn round_trips_presentation_form() {
        round_trip("A", "192.0.2.1");
        round_trip("AAAA", "2001:db8::1");
        round_trip("MX", "10 mail.example.com.");
        round_trip("SOA", "ns1.example.com. hostmaster.example.com. 2024010101 3600 900 604800 300");
        round_trip("SRV", "0 5 5060 sip.example.com.");
        round_trip("DS", "60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118");
        round_trip("NSEC", "host.example.com. A MX RRSIG NSEC TYPE1234");
        round_trip(
            "RRSIG",
            "A 5 3 86400 20030322173103 20030220173103 2642 example.com. oJB1W6WNGv+ldvQ3WDG0MQkg5IEhjRip8WTrPYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6oB9wfuh3DTJXUAfI/M0zmO/zz8bW0Rznl8O3tGNazPwQKkRN20XPXV6nwwfoXmJQbsLNrLfkGJ5D6fwFm8nN+6pBzeDQfsS3Ap3o=",
        );
        round_trip("NSEC3", "1 1 12 AABBCCDD 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR A RRSIG");
        round_trip("CAA", "0 issue \"letsencrypt.org\"");
        // A tag that is not letters and digits cannot be written as CAA: refused in
        // generic form too, and printed generically.
        let bad = [0u8, 2, 0, 1, b'x'];
        assert!(!is_valid_rdata(257, &bad));
        assert!(parse_rdata(257, &toks("\\# 5 0002000178"), None).is_err());
        assert_eq!(rdata_to_text(257, &bad), "\\# 5 0002000178");
        assert!(parse_rdata(257, &toks("\\# 5 0002697378"), None).is_ok(), "tag 'is', value 'x'");
        // A DS/CDS with no digest octets is valid wire data but has no readable text
        // form: it is printed in generic form, which loads back to the same octets.
        let cds = parse_rdata(59, &toks("\\# 4 0A000001"), None).unwrap();
        assert_eq!(rdata_to_text(59, &cds), "\\# 4 0A000001");
        assert_eq!(parse_rdata(59, &toks(&rdata_to_text(59, &cds)), None).unwrap(), cds);
        round_trip("TXT", "\"v=spf1 -all\" \"second\"");
        round_trip("SSHFP", "1 1 123456789ABCDEF67890123456789ABCDEF67890");
        round_trip("HTTPS", "1 . alpn=\"h2,h3\" ipv4hint=192.0.2.1,192.0.2.2");
        round_trip("SVCB", "16 foo.example.com. port=853 ipv6hint=2001:db8::1");
    }

    #[test]
    fn codecs_are_strict() {
        assert!(decode_base64("A").is_err(), "one base64 digit is not an octet");
        assert!(decode_base64("AQ").is_err(), "padding is required");
        assert_eq!(decode_base64("AQ==").unwrap(), [1]);
        assert!(decode_base64("AR==").is_err(), "stray bits");
        assert!(decode_hex("abc").is_err());
        assert_eq!(decode_hex("0aFF").unwrap(), [10, 255]);
        assert_eq!(decode_base32hex("vvvvvvvv").unwrap(), [0xff; 5]);
        assert!(decode_base32hex("1").is_err());
        assert_eq!(encode_base32hex(&[0xff; 5]), "VVVVVVVV");
    }

    #[test]
    fn generic_form_and_units() {
        let wire = parse_rdata(65280, &toks("\\# 3 abcdef"), None).unwrap();
        assert_eq!(wire, vec![0xab, 0xcd, 0xef]);
        assert!(parse_rdata(65280, &toks("\\# 2 abcdef"), None).is_err());
        assert!(parse_rdata(65280, &toks("abc"), None).is_err());
        // Generic form of a known type must be valid for that type.
        assert!(parse_rdata(rtype::A, &toks("\\# 3 C00002"), None).is_err());
        assert!(parse_rdata(rtype::SOA, &toks("\\# 2 0000"), None).is_err());
        // A known type may be given in generic form too (RFC 3597 §5).
        let a = parse_rdata(rtype::A, &toks("\\# 4 C0000201"), None).unwrap();
        assert_eq!(rdata_to_text(rtype::A, &a), "192.0.2.1");
        assert_eq!(parse_ttl("1h30m").unwrap(), 5400);
        assert_eq!(parse_ttl("1W").unwrap(), 604_800);
        assert!(parse_ttl("1x").is_err());
        assert_eq!(type_from_str("type99"), Some(99));
        assert_eq!(type_to_string(65280), "TYPE65280");
    }

    fn names_of(code: u16, text: &str) -> Vec<String> {
        let rdata = parse_rdata(code, &toks(text), None).unwrap();
        names(code, &rdata).map(|(at, len)| crate::name::wire_to_text(&rdata[at..at + len])).collect()
    }

    #[test]
    fn the_type_table_places_every_name_of_the_common_types() {
        assert_eq!(names_of(rtype::MX, "10 Mail.Example."), ["Mail.Example."]);
        assert_eq!(names_of(rtype::SOA, "ns. h. 1 2 3 4 5"), ["ns.", "h."]);
        assert_eq!(names_of(rtype::SRV, "1 2 3 t.example."), ["t.example."]);
        assert_eq!(names_of(rtype::NAPTR, "1 2 u E2U+sip X Rep.Example."), ["Rep.Example."]);
        assert_eq!(names_of(rtype::RRSIG, "A 8 2 300 20300101000000 20200101000000 1 Signer. AAAA"), ["Signer."]);
        assert_eq!(names_of(rtype::NSEC, "Next. A"), ["Next."]);
        assert_eq!(names_of(26, "1 a. b."), ["a.", "b."], "PX");
        assert!(names_of(rtype::A, "192.0.2.1").is_empty());
        assert!(names_of(rtype::TXT, "\"x.\"").is_empty());
        // IPSECKEY's gateway name sits behind a field of variable form: not placed.
        assert!(names_of(45, "1 3 2 gw.example. AQID").is_empty());
        // Truncated RDATA yields the names before the cut, never a panic.
        assert_eq!(names(rtype::SOA, b"\x02ns\x00\x01").count(), 1);
        assert_eq!(names(rtype::NAPTR, &[0, 1, 0, 2, 9]).count(), 0);
    }

    #[test]
    fn canonical_rdata_lower_cases_names_only() {
        let rdata = parse_rdata(rtype::NAPTR, &toks("1 2 U E2U+sip X Rep.Example."), None).unwrap();
        let c = canonical(rtype::NAPTR, &rdata);
        assert_eq!(rdata_to_text(rtype::NAPTR, &c), r#"1 2 "U" "E2U+sip" "X" rep.example."#);
    }

    #[test]
    fn compressible_names_are_those_of_the_rfc_1035_types() {
        let table: Vec<(u16, (u8, u8))> = (0..16u16)
            .filter(|&c| COMPRESSIBLE[usize::from(c)].1 > 0)
            .map(|c| (c, COMPRESSIBLE[usize::from(c)]))
            .collect();
        // NS, MD, MF, CNAME, SOA, MB, MG, MR, PTR, MINFO, MX.
        let want = [(2, (0, 1)), (3, (0, 1)), (4, (0, 1)), (5, (0, 1)), (6, (0, 2)), (7, (0, 1)), (8, (0, 1))];
        let want2 = [(9, (0, 1)), (12, (0, 1)), (14, (0, 2)), (15, (2, 1))];
        assert_eq!(table, [&want[..], &want2[..]].concat());
        let mx = parse_rdata(rtype::MX, &toks("10 mx.example."), None).unwrap();
        assert_eq!(compressible_names(rtype::MX, &mx).collect::<Vec<_>>(), [(2, 12)]);
        assert_eq!(compressible_names(rtype::SRV, &mx).count(), 0, "SRV names are never compressed");
    }
}
