//! Fields whose presentation is more than one number, name or string: LOC's degrees and
//! metres, APL's prefix list, WKS's services, gateways whose form depends on an earlier
//! octet (IPSECKEY, AMTRELAY), HIP, A6, ATMA, NSAP, EUI-48/64 and ILNP locators. Each is a
//! parser (tokens → octets appended to the RDATA built so far) and a printer (octets at an
//! offset → text and the octets used), printing what BIND prints, so `named-checkzone`
//! reads back whatever is written.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Token, decode_base64, decode_hex, encode_base64, hex, take};
use crate::name::{Name, wire_len};

type Parsed<'t> = Result<&'t [Token], String>;

fn number<T: std::str::FromStr>(t: &Token, what: &str) -> Result<T, String> {
    t.text.parse().map_err(|_| format!("bad {what} '{}'", t.text))
}

// ---- WKS (RFC 1035 §3.4.2) ----

/// Protocol by name (`tcp`, `udp`) or number.
pub(super) fn parse_proto<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "protocol")?;
    let p = match t.text.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        s => number::<u8>(t, "protocol").map_err(|_| format!("unknown protocol '{s}'"))?,
    };
    out.push(p);
    Ok(rest)
}

/// Well-known service names BIND finds in `/etc/services` on any system; numbers always work.
const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("time", 37),
    ("whois", 43),
    ("domain", 53),
    ("gopher", 70),
    ("finger", 79),
    ("http", 80),
    ("www", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("auth", 113),
    ("nntp", 119),
    ("ntp", 123),
    ("imap", 143),
    ("snmp", 161),
    ("ldap", 389),
    ("https", 443),
    ("submission", 587),
    ("ldaps", 636),
    ("imaps", 993),
    ("pop3s", 995),
];

/// The services bitmap: bit n for port n (RFC 1035 §3.4.2), from names or numbers.
pub(super) fn parse_services<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let mut bits: Vec<u8> = Vec::new();
    for t in tokens {
        let port = match SERVICES.iter().find(|(n, _)| n.eq_ignore_ascii_case(&t.text)) {
            Some((_, p)) => *p,
            None => number::<u16>(t, "service").map_err(|_| format!("unknown service '{}'", t.text))?,
        };
        let (byte, bit) = (usize::from(port / 8), port % 8);
        if bits.len() <= byte {
            bits.resize(byte + 1, 0);
        }
        bits[byte] |= 0x80 >> bit;
    }
    out.extend(bits);
    Ok(&[])
}

pub(super) fn print_services(rest: &[u8]) -> String {
    let mut ports = Vec::new();
    for (i, b) in rest.iter().enumerate() {
        for bit in 0..8 {
            if b & (0x80 >> bit) != 0 {
                ports.push((i * 8 + bit).to_string());
            }
        }
    }
    ports.join(" ")
}

// ---- NXT (RFC 2535 §5.2): bit n for type n, types 1–127 ----

pub(super) fn parse_nxt_bitmap<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let mut bits: Vec<u8> = Vec::new();
    for t in tokens {
        let code = super::type_from_str(&t.text).ok_or_else(|| format!("unknown type '{}'", t.text))?;
        if code > 127 {
            return Err(format!("type {} does not fit an NXT bitmap (1–127)", t.text));
        }
        let (byte, bit) = (usize::from(code / 8), code % 8);
        if bits.len() <= byte {
            bits.resize(byte + 1, 0);
        }
        bits[byte] |= 0x80 >> bit;
    }
    out.extend(bits);
    Ok(&[])
}

pub(super) fn print_nxt_bitmap(rest: &[u8]) -> Option<String> {
    if rest.len() > 16 {
        return None;
    }
    let mut types = Vec::new();
    for (i, b) in rest.iter().enumerate() {
        for bit in 0..8 {
            if b & (0x80 >> bit) != 0 {
                types.push(super::type_to_string(u16::try_from(i * 8 + bit).ok()?));
            }
        }
    }
    Some(types.join(" "))
}

// ---- NSAP (RFC 1706 §5): "0x" and hex digits, dots allowed between them ----

pub(super) fn parse_nsap<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "NSAP address")?;
    let digits = t
        .text
        .strip_prefix("0x")
        .or_else(|| t.text.strip_prefix("0X"))
        .ok_or_else(|| format!("NSAP address '{}' must start with 0x", t.text))?;
    let digits: String = digits.chars().filter(|c| *c != '.').collect();
    if digits.is_empty() {
        return Err("empty NSAP address".into());
    }
    out.extend(decode_hex(&digits)?);
    Ok(rest)
}

// ---- EUI-48 / EUI-64 (RFC 7043): hex pairs joined by '-' ----

pub(super) fn parse_eui<'t>(tokens: &'t [Token], octets: usize, out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "EUI address")?;
    let parts: Vec<&str> = t.text.split('-').collect();
    if parts.len() != octets || parts.iter().any(|p| p.len() != 2) {
        return Err(format!("bad EUI-{} address '{}'", octets * 8, t.text));
    }
    for p in parts {
        out.push(u8::from_str_radix(p, 16).map_err(|_| format!("bad EUI address '{}'", t.text))?);
    }
    Ok(rest)
}

pub(super) fn print_eui(b: &[u8]) -> String {
    b.iter().map(|o| format!("{o:02x}")).collect::<Vec<_>>().join("-")
}

// ---- ILNP (RFC 6742): a 64-bit value as four groups of hex digits ----

pub(super) fn parse_ilnp64<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "locator")?;
    let groups: Vec<&str> = t.text.split(':').collect();
    if groups.len() != 4 || groups.iter().any(|g| g.is_empty() || g.len() > 4) {
        return Err(format!("bad 64-bit locator '{}'", t.text));
    }
    for g in groups {
        let v = u16::from_str_radix(g, 16).map_err(|_| format!("bad 64-bit locator '{}'", t.text))?;
        out.extend_from_slice(&v.to_be_bytes());
    }
    Ok(rest)
}

pub(super) fn print_ilnp64(b: &[u8]) -> String {
    b.chunks(2).map(|c| format!("{:04x}", u16::from_be_bytes([c[0], c[1]]))).collect::<Vec<_>>().join(":")
}

// ---- Gateways: IPSECKEY (RFC 4025 §2.3) and AMTRELAY (RFC 8777 §4.2) ----

/// A gateway of `kind` 0 (none: `.`), 1 (IPv4), 2 (IPv6) or 3 (a name).
pub(super) fn parse_gateway<'t>(kind: u8, tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "gateway")?;
    match kind {
        0 if t.text == "." => {}
        0 => return Err(format!("gateway type 0 takes '.', not '{}'", t.text)),
        1 => out.extend(number::<Ipv4Addr>(t, "IPv4 gateway")?.octets()),
        2 => out.extend(number::<Ipv6Addr>(t, "IPv6 gateway")?.octets()),
        3 => out.extend_from_slice(Name::parse(&t.text, None).map_err(|e| format!("gateway: {e}"))?.wire()),
        k => return Err(format!("unknown gateway type {k}")),
    }
    Ok(rest)
}

pub(super) fn print_gateway(kind: u8, rest: &[u8]) -> Option<(String, usize)> {
    Some(match kind {
        0 => (".".to_owned(), 0),
        1 => (Ipv4Addr::from(<[u8; 4]>::try_from(rest.get(..4)?).ok()?).to_string(), 4),
        2 => (Ipv6Addr::from(<[u8; 16]>::try_from(rest.get(..16)?).ok()?).to_string(), 16),
        3 => {
            let n = wire_len(rest)?;
            (crate::name::wire_to_text(&rest[..n]), n)
        }
        _ => return None,
    })
}

/// AMTRELAY's D bit and relay type, two tokens in one octet.
pub(super) fn parse_amt_type<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (d, rest) = take(tokens, "discovery optional bit")?;
    let (t, rest) = take(rest, "relay type")?;
    let d: u8 = number(d, "discovery optional bit")?;
    let t: u8 = number(t, "relay type")?;
    if d > 1 || t > 0x7f {
        return Err(format!("bad AMTRELAY D bit {d} or type {t}"));
    }
    out.push(d << 7 | t);
    Ok(rest)
}

// ---- A6 (RFC 2874 §3.1.1) ----

pub(super) fn parse_a6<'t>(tokens: &'t [Token], origin: Option<&Name>, out: &mut Vec<u8>) -> Parsed<'t> {
    let (p, rest) = take(tokens, "prefix length")?;
    let prefix: u8 = number(p, "prefix length")?;
    if prefix > 128 {
        return Err(format!("A6 prefix length {prefix} is over 128"));
    }
    out.push(prefix);
    let mut rest = rest;
    if prefix < 128 {
        let (a, r) = take(rest, "address suffix")?;
        let addr: Ipv6Addr = number(a, "address suffix")?;
        let n = usize::from(128 - prefix).div_ceil(8);
        let octets = addr.octets();
        // Bits of the suffix inside the prefix must be zero.
        let mut suffix = octets[16 - n..].to_vec();
        if !prefix.is_multiple_of(8) {
            suffix[0] &= 0xff >> (prefix % 8);
        }
        out.extend(suffix);
        rest = r;
    }
    if prefix > 0 {
        let (n, r) = take(rest, "prefix name")?;
        out.extend_from_slice(Name::parse(&n.text, origin).map_err(|e| format!("prefix name: {e}"))?.wire());
        rest = r;
    }
    Ok(rest)
}

pub(super) fn print_a6(b: &[u8]) -> Option<(String, usize)> {
    let prefix = *b.first()?;
    if prefix > 128 {
        return None;
    }
    let n = usize::from(128 - prefix).div_ceil(8);
    let mut octets = [0u8; 16];
    octets[16 - n..].copy_from_slice(b.get(1..1 + n)?);
    let mut s = prefix.to_string();
    if prefix < 128 {
        let _ = write!(s, " {}", Ipv6Addr::from(octets));
    }
    let mut used = 1 + n;
    if prefix > 0 {
        let len = wire_len(b.get(used..)?)?;
        let _ = write!(s, " {}", crate::name::wire_to_text(&b[used..used + len]));
        used += len;
    }
    Some((s, used))
}

// ---- ATMA (ATM Forum af-saa-0069.000): AESA in hex, or E.164 as "+digits" ----

pub(super) fn parse_atma<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "ATM address")?;
    if let Some(digits) = t.text.strip_prefix('+') {
        let digits: String = digits.chars().filter(|c| *c != '.').collect();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad E.164 ATM address '{}'", t.text));
        }
        out.push(1);
        out.extend(digits.bytes());
    } else {
        let digits: String = t.text.chars().filter(|c| *c != '.').collect();
        if digits.is_empty() {
            return Err(format!("empty ATM address '{}'", t.text));
        }
        out.push(0);
        out.extend(decode_hex(&digits)?);
    }
    Ok(rest)
}

pub(super) fn print_atma(b: &[u8]) -> Option<String> {
    let (format, addr) = b.split_first()?;
    match format {
        0 if !addr.is_empty() => Some(hex(addr).to_ascii_lowercase()),
        1 if !addr.is_empty() && addr.iter().all(u8::is_ascii_digit) => {
            Some(format!("+{}", std::str::from_utf8(addr).ok()?))
        }
        _ => None,
    }
}

// ---- APL (RFC 3123 §5): [!]afi:address/prefix, any number ----

pub(super) fn parse_apl<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    for t in tokens {
        let bad = || format!("bad APL item '{}'", t.text);
        let (negate, item) = match t.text.strip_prefix('!') {
            Some(s) => (true, s),
            None => (false, t.text.as_str()),
        };
        let (family, addr) = item.split_once(':').ok_or_else(bad)?;
        let (addr, prefix) = addr.split_once('/').ok_or_else(bad)?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let (family, octets): (u16, Vec<u8>) = match family {
            "1" if prefix <= 32 => (1, addr.parse::<Ipv4Addr>().map_err(|_| bad())?.octets().to_vec()),
            "2" if prefix <= 128 => (2, addr.parse::<Ipv6Addr>().map_err(|_| bad())?.octets().to_vec()),
            _ => return Err(bad()),
        };
        // Trailing zero octets are left out (RFC 3123 §4).
        let len = octets.iter().rposition(|o| *o != 0).map_or(0, |i| i + 1);
        out.extend_from_slice(&family.to_be_bytes());
        out.push(prefix);
        out.push(u8::from(negate) << 7 | u8::try_from(len).map_err(|_| bad())?);
        out.extend_from_slice(&octets[..len]);
    }
    Ok(&[])
}

pub(super) fn print_apl(mut b: &[u8]) -> Option<String> {
    let mut items = Vec::new();
    while !b.is_empty() {
        let family = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
        let prefix = *b.get(2)?;
        let n = *b.get(3)?;
        let len = usize::from(n & 0x7f);
        let data = b.get(4..4 + len)?;
        let neg = if n & 0x80 != 0 { "!" } else { "" };
        let item = match family {
            1 if len <= 4 && prefix <= 32 => {
                let mut a = [0u8; 4];
                a[..len].copy_from_slice(data);
                format!("{neg}1:{}/{prefix}", Ipv4Addr::from(a))
            }
            2 if len <= 16 && prefix <= 128 => {
                let mut a = [0u8; 16];
                a[..len].copy_from_slice(data);
                format!("{neg}2:{}/{prefix}", Ipv6Addr::from(a))
            }
            _ => return None,
        };
        items.push(item);
        b = &b[4 + len..];
    }
    Some(items.join(" "))
}

// ---- HIP (RFC 8005 §4): algorithm, HIT (hex), public key (base64), rendezvous servers ----

pub(super) fn parse_hip<'t>(tokens: &'t [Token], origin: Option<&Name>, out: &mut Vec<u8>) -> Parsed<'t> {
    let (alg, rest) = take(tokens, "public key algorithm")?;
    let (hit, rest) = take(rest, "HIT")?;
    let (key, rest) = take(rest, "public key")?;
    let hit = decode_hex(&hit.text)?;
    let key = decode_base64(&key.text)?;
    if hit.is_empty() || key.is_empty() {
        return Err("HIP needs a HIT and a public key".into());
    }
    out.push(u8::try_from(hit.len()).map_err(|_| "HIT longer than 255 octets")?);
    out.push(number(alg, "public key algorithm")?);
    out.extend_from_slice(&u16::try_from(key.len()).map_err(|_| "public key too long")?.to_be_bytes());
    out.extend(hit);
    out.extend(key);
    for t in rest {
        out.extend_from_slice(Name::parse(&t.text, origin).map_err(|e| format!("rendezvous server: {e}"))?.wire());
    }
    Ok(&[])
}

pub(super) fn print_hip(b: &[u8]) -> Option<String> {
    let hit_len = usize::from(*b.first()?);
    let alg = *b.get(1)?;
    let key_len = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    let hit = b.get(4..4 + hit_len)?;
    let key = b.get(4 + hit_len..4 + hit_len + key_len)?;
    if hit.is_empty() || key.is_empty() {
        return None;
    }
    let mut s = format!("{alg} {} {}", hex(hit), encode_base64(key));
    let mut rest = &b[4 + hit_len + key_len..];
    while !rest.is_empty() {
        let n = wire_len(rest)?;
        let _ = write!(s, " {}", crate::name::wire_to_text(&rest[..n]));
        rest = &rest[n..];
    }
    Some(s)
}

// ---- LOC (RFC 1876 §3) ----

/// 2^31: the equator and the prime meridian.
const EQUATOR: u32 = 1 << 31;
/// Altitudes are centimetres above 100 000 m below the reference spheroid.
const ALTITUDE_BASE: i64 = 10_000_000;

/// Centimetres as one digit times a power of ten (high and low nibble), rounded down to
/// one significant digit as BIND does (35m is 30m).
fn loc_size(cm: u64) -> Result<u8, String> {
    let mut e = 0u8;
    let mut m = cm;
    while m > 9 {
        m /= 10;
        e += 1;
    }
    if e > 9 {
        return Err("LOC size over 90000000m".into());
    }
    Ok(u8::try_from(m).unwrap_or(9) << 4 | e)
}

fn loc_size_text(v: u8) -> Option<String> {
    let (m, e) = (u64::from(v >> 4), u32::from(v & 0x0f));
    if m > 9 || e > 9 {
        return None;
    }
    Some(if e >= 2 { format!("{}m", m * 10u64.pow(e - 2)) } else { format!("0.{:02}m", m * 10u64.pow(e)) })
}

/// Metres with up to two decimals (`-24m`, `5.5`, `0.01m`) as centimetres.
fn metres(t: &Token, what: &str) -> Result<i64, String> {
    let s = t.text.strip_suffix(['m', 'M']).unwrap_or(&t.text);
    let bad = || format!("bad {what} '{}'", t.text);
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || frac.len() > 2 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let cm = whole.parse::<i64>().map_err(|_| bad())?.checked_mul(100).ok_or_else(bad)?
        + format!("{frac:0<2}").parse::<i64>().map_err(|_| bad())?;
    Ok(if neg { -cm } else { cm })
}

/// One coordinate: degrees [minutes [seconds]] then a hemisphere letter; thousandths of a
/// second from the equator or meridian.
fn coordinate(tokens: &[Token], max_deg: u32, hemis: [char; 2]) -> Result<(u32, &[Token]), String> {
    let mut parts = Vec::new();
    let mut rest = tokens;
    let hemi = loop {
        let (t, r) = take(rest, "LOC coordinate")?;
        rest = r;
        let upper = t.text.to_ascii_uppercase();
        if let Some(c) = hemis.iter().find(|c| upper == c.to_string()) {
            break *c;
        }
        if parts.len() == 3 {
            return Err(format!("LOC: expected {} or {}, found '{}'", hemis[0], hemis[1], t.text));
        }
        parts.push(t);
    };
    let deg: u32 = number(parts.first().ok_or("LOC: missing degrees")?, "degrees")?;
    let min: u32 = parts.get(1).map_or(Ok(0), |t| number(t, "minutes"))?;
    let msec: u32 = match parts.get(2) {
        None => 0,
        Some(t) => {
            let (s, f) = t.text.split_once('.').unwrap_or((&t.text, ""));
            if f.len() > 3 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad seconds '{}'", t.text));
            }
            let s: u32 = s.parse().map_err(|_| format!("bad seconds '{}'", t.text))?;
            if s >= 60 {
                return Err(format!("bad seconds '{}'", t.text));
            }
            s * 1000 + format!("{f:0<3}").parse::<u32>().map_err(|_| format!("bad seconds '{}'", t.text))?
        }
    };
    if deg > max_deg || min >= 60 || (deg == max_deg && (min > 0 || msec > 0)) {
        return Err(format!("LOC coordinate {deg} {min} out of range"));
    }
    let v = (deg * 3600 + min * 60) * 1000 + msec;
    Ok((if hemi == hemis[0] { EQUATOR + v } else { EQUATOR - v }, rest))
}

pub(super) fn parse_loc<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (lat, rest) = coordinate(tokens, 90, ['N', 'S'])?;
    let (lon, rest) = coordinate(rest, 180, ['E', 'W'])?;
    let (alt, rest) = take(rest, "altitude")?;
    let alt = metres(alt, "altitude")? + ALTITUDE_BASE;
    let alt = u32::try_from(alt).map_err(|_| "LOC altitude out of range (-100000m to 42849672.95m)")?;
    let mut sizes = [100u64, 1_000_000, 1_000];
    if rest.len() > 3 {
        return Err(format!("unexpected '{}' after the LOC precisions", rest[3].text));
    }
    for (i, t) in rest.iter().enumerate() {
        sizes[i] = u64::try_from(metres(t, "LOC size")?).map_err(|_| format!("negative LOC size '{}'", t.text))?;
    }
    out.push(0);
    for s in sizes {
        out.push(loc_size(s)?);
    }
    out.extend_from_slice(&lat.to_be_bytes());
    out.extend_from_slice(&lon.to_be_bytes());
    out.extend_from_slice(&alt.to_be_bytes());
    Ok(&[])
}

pub(super) fn print_loc(b: &[u8]) -> Option<String> {
    if b.len() != 16 || b[0] != 0 {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let coord = |v: u32, max: u32, hemis: [char; 2]| -> Option<String> {
        let (h, d) = if v >= EQUATOR { (hemis[0], v - EQUATOR) } else { (hemis[1], EQUATOR - v) };
        if d > max * 3_600_000 {
            return None;
        }
        let (deg, r) = (d / 3_600_000, d % 3_600_000);
        let (min, r) = (r / 60_000, r % 60_000);
        Some(format!("{deg} {min} {}.{:03} {h}", r / 1000, r % 1000))
    };
    let alt = i64::from(word(12)) - ALTITUDE_BASE;
    let sign = if alt < 0 { "-" } else { "" };
    Some(format!(
        "{} {} {sign}{}.{:02}m {} {} {}",
        coord(word(4), 90, ['N', 'S'])?,
        coord(word(8), 180, ['E', 'W'])?,
        alt.abs() / 100,
        alt.abs() % 100,
        loc_size_text(b[1])?,
        loc_size_text(b[2])?,
        loc_size_text(b[3])?,
    ))
}

// ---- CERT (RFC 4398 §2.2): type and algorithm mnemonics ----

const CERT_TYPES: &[(&str, u16)] = &[
    ("PKIX", 1),
    ("SPKI", 2),
    ("PGP", 3),
    ("IPKIX", 4),
    ("ISPKI", 5),
    ("IPGP", 6),
    ("ACPKIX", 7),
    ("IACPKIX", 8),
    ("URI", 253),
    ("OID", 254),
];

/// DNSSEC algorithm mnemonics (RFC 4034 Appendix A.1 and the IANA registry).
const ALGORITHMS: &[(&str, u8)] = &[
    ("RSAMD5", 1),
    ("DH", 2),
    ("DSA", 3),
    ("RSASHA1", 5),
    ("DSA-NSEC3-SHA1", 6),
    ("RSASHA1-NSEC3-SHA1", 7),
    ("RSASHA256", 8),
    ("RSASHA512", 10),
    ("ECC-GOST", 12),
    ("ECDSAP256SHA256", 13),
    ("ECDSAP384SHA384", 14),
    ("ED25519", 15),
    ("ED448", 16),
    ("INDIRECT", 252),
    ("PRIVATEDNS", 253),
    ("PRIVATEOID", 254),
];

pub(super) fn parse_cert_type<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "certificate type")?;
    let v = match CERT_TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(&t.text)) {
        Some((_, v)) => *v,
        None => number(t, "certificate type")?,
    };
    out.extend_from_slice(&v.to_be_bytes());
    Ok(rest)
}

pub(super) fn cert_type_text(v: u16) -> String {
    CERT_TYPES.iter().find(|(_, c)| *c == v).map_or_else(|| v.to_string(), |(n, _)| (*n).to_owned())
}

pub(super) fn parse_algorithm<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "algorithm")?;
    let v = match ALGORITHMS.iter().find(|(n, _)| n.eq_ignore_ascii_case(&t.text)) {
        Some((_, v)) => *v,
        None => number(t, "algorithm")?,
    };
    out.push(v);
    Ok(rest)
}

pub(super) fn algorithm_text(v: u8) -> String {
    ALGORITHMS.iter().find(|(_, c)| *c == v).map_or_else(|| v.to_string(), |(n, _)| (*n).to_owned())
}

// ---- DSYNC (RFC 9859 §2.1): scheme mnemonic ----

pub(super) fn parse_dsync_scheme<'t>(tokens: &'t [Token], out: &mut Vec<u8>) -> Parsed<'t> {
    let (t, rest) = take(tokens, "scheme")?;
    out.push(if t.text.eq_ignore_ascii_case("NOTIFY") { 1 } else { number(t, "scheme")? });
    Ok(rest)
}

pub(super) fn dsync_scheme_text(v: u8) -> String {
    if v == 1 { "NOTIFY".to_owned() } else { v.to_string() }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_rdata, rdata_to_text, type_from_str};

    fn toks(s: &str) -> Vec<super::Token> {
        crate::zonefile::tokenize(s).unwrap()
    }

    /// Parses `text` as `ty`, prints it, and checks the printed form is `printed` and reads
    /// back to the same octets.
    fn check(ty: &str, text: &str, printed: &str) {
        let code = type_from_str(ty).unwrap_or_else(|| panic!("{ty} has no mnemonic"));
        let wire = parse_rdata(code, &toks(text), None).unwrap_or_else(|e| panic!("{ty} {text}: {e}"));
        let out = rdata_to_text(code, &wire);
        assert_eq!(out, printed, "{ty} {text}");
        assert_eq!(parse_rdata(code, &toks(&out), None).unwrap(), wire, "{ty} {out}");
    }

    #[test]
    fn loc_reads_and_prints_as_bind_does() {
        check("LOC", "42 21 54 N 71 06 18 W -24m 30m", "42 21 54.000 N 71 6 18.000 W -24.00m 30m 10000m 10m");
        check("LOC", "42 N 71 W 0m 35m 1.5m 0.01m", "42 0 0.000 N 71 0 0.000 W 0.00m 30m 1m 0.01m");
        check("LOC", "90 S 180 E 42849672.95m 1m 1m 1m", "90 0 0.000 S 180 0 0.000 E 42849672.95m 1m 1m 1m");
        check("LOC", "42 21 N 71 06 W 5.5", "42 21 0.000 N 71 6 0.000 W 5.50m 1m 10000m 10m");
        let wire = parse_rdata(29, &toks("42 21 54.5 N 71 06 18.123 W -100000m 90000000m"), None).unwrap();
        assert_eq!(super::super::hex(&wire).to_ascii_lowercase(), "0099161389172fc470be157500000000");
        assert!(parse_rdata(34, &toks("."), None).is_err(), "an ATMA address has digits");
        for bad in ["91 N 0 E 0", "42 61 N 0 E 0", "42 N 0 E", "42 N 181 E 0", "42 N 0 E -100000.01m", "42 X 0 E 0"] {
            assert!(parse_rdata(29, &toks(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_other_composite_types_read_back_as_bind_prints_them() {
        check("WKS", "192.0.2.1 TCP ( smtp ftp 80 )", "192.0.2.1 6 21 25 80");
        check(
            "NSAP",
            "0x47.0005.80.005a00.0000.0001.e133.aaaaaa000151.00",
            "0x47000580005a0000000001e133aaaaaa00015100",
        );
        check(
            "APL",
            "1:192.168.32.0/21 !1:192.168.38.0/28 2:ff00::/8",
            "1:192.168.32.0/21 !1:192.168.38.0/28 2:ff00::/8",
        );
        check("APL", "", "");
        check("A6", "0 2001:db8::1", "0 2001:db8::1");
        check("A6", "64 ::1:2:3:4 prefix.example.", "64 ::1:2:3:4 prefix.example.");
        check("A6", "128 prefix.example.", "128 prefix.example.");
        check("ATMA", "+358400123456", "+358400123456");
        check("ATMA", "39246f00e7c9c0313ea000000000000000000000", "39246f00e7c9c0313ea000000000000000000000");
        check(
            "IPSECKEY",
            "10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==",
            "10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==",
        );
        check("IPSECKEY", "10 3 2 gw.example.com. AQID", "10 3 2 gw.example.com. AQID");
        check("IPSECKEY", "10 0 2 . AQID", "10 0 2 . AQID");
        check("IPSECKEY", "10 2 2 2001:0DB8:0:8002::2000:1 AQID", "10 2 2 2001:db8:0:8002::2000:1 AQID");
        check("AMTRELAY", "10 0 3 amtrelays.example.com.", "10 0 3 amtrelays.example.com.");
        check("AMTRELAY", "128 1 0 .", "128 1 0 .");
        check("AMTRELAY", "10 1 2 2001:db8::15", "10 1 2 2001:db8::15");
        check("CERT", "PGP 0 0 AQIDBA==", "PGP 0 0 AQIDBA==");
        check("CERT", "1 12345 8 AQIDBA==", "PKIX 12345 RSASHA256 AQIDBA==");
        check(
            "HIP",
            "2 200100107B1A74DF365639CC39F1D578 AwEAAQ== rvs1.example.com.",
            "2 200100107B1A74DF365639CC39F1D578 AwEAAQ== rvs1.example.com.",
        );
        check("EUI48", "00-00-5e-00-53-2a", "00-00-5e-00-53-2a");
        check("EUI64", "00-00-5E-EF-10-00-00-2A", "00-00-5e-ef-10-00-00-2a");
        check("NID", "10 14:4fff:ff20:ee64", "10 0014:4fff:ff20:ee64");
        check("L64", "10 2001:0DB8:1140:1000", "10 2001:0db8:1140:1000");
        check("NXT", "medium.example. A MX SIG NXT", "medium.example. A MX SIG NXT");
        check("DSYNC", "CDS 1 5359 ds-scanner.example.", "CDS NOTIFY 5359 ds-scanner.example.");
        check("GPOS", "-32.6882 116.8652 10.0", "\"-32.6882\" \"116.8652\" \"10.0\"");
        check("ISDN", "\"150862028003217\"", "\"150862028003217\"");
        check("DOA", "0 1 2 \"\" aHR0cHM6Ly93d3cuaXNjLm9yZy8=", "0 1 2 \"\" aHR0cHM6Ly93d3cuaXNjLm9yZy8=");
        check("DOA", "0 1 2 \"\" -", "0 1 2 \"\" -");
    }
}
