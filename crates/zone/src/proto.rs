//! The DNS vocabulary every part of r53dns speaks — the server, the client side (transfers,
//! NOTIFY, UPDATE, the comparison tool): response codes, opcodes and serial-number
//! arithmetic, the 16-bit fields a message cannot overflow, each written once here.

/// A response code (RFC 6895 §2.3) that fits the header's four bits: what the lookup
/// decides, what UPDATE and NOTIFY answer, what a client reads back. The one list of them;
/// the [`rcode`] constants are its numbers, for code that writes headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Rcode {
    /// No error: data, NODATA, a referral or a partial chain.
    NoError = 0,
    /// The request could not be interpreted (also: the question name is not a valid name).
    FormErr = 1,
    /// The server failed (also: an alias whose target could not be resolved).
    ServFail = 2,
    /// The name (or the end of the chain) does not exist.
    NxDomain = 3,
    /// The opcode is not implemented.
    NotImp = 4,
    /// Refused by policy (also: no served zone encloses the name).
    Refused = 5,
    /// A name exists that should not (RFC 2136), or DNAME substitution overflowed the
    /// name length (RFC 6672 §2.2).
    YxDomain = 6,
    /// UPDATE: an RRset exists that should not.
    YxRrset = 7,
    /// UPDATE: an RRset does not exist that should.
    NxRrset = 8,
    /// Not authoritative for the zone (RFC 2136), or TSIG failed (RFC 8945).
    NotAuth = 9,
    /// A name is outside the zone (RFC 2136).
    NotZone = 10,
}

impl Rcode {
    const ALL: [(Rcode, &'static str); 11] = [
        (Rcode::NoError, "NOERROR"),
        (Rcode::FormErr, "FORMERR"),
        (Rcode::ServFail, "SERVFAIL"),
        (Rcode::NxDomain, "NXDOMAIN"),
        (Rcode::NotImp, "NOTIMP"),
        (Rcode::Refused, "REFUSED"),
        (Rcode::YxDomain, "YXDOMAIN"),
        (Rcode::YxRrset, "YXRRSET"),
        (Rcode::NxRrset, "NXRRSET"),
        (Rcode::NotAuth, "NOTAUTH"),
        (Rcode::NotZone, "NOTZONE"),
    ];

    /// The 4-bit header value.
    pub const fn to_u8(self) -> u8 {
        self as u8
    }

    /// The code a header carries (`None` for the unassigned 11 to 15).
    pub fn from_u8(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).map(|(r, _)| *r)
    }

    /// The mnemonic, as dig prints it.
    pub fn name(self) -> &'static str {
        Self::ALL[usize::from(self.to_u8())].1
    }
}

impl std::fmt::Display for Rcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Response codes as numbers: the header's four bits ([`Rcode`]'s values) and the extended
/// codes (the OPT record's upper eight bits, or TSIG's error field), which are `u16`.
pub mod rcode {
    use super::Rcode;

    /// No error.
    pub const NOERROR: u8 = Rcode::NoError.to_u8();
    /// The request could not be interpreted.
    pub const FORMERR: u8 = Rcode::FormErr.to_u8();
    /// The server failed.
    pub const SERVFAIL: u8 = Rcode::ServFail.to_u8();
    /// The name does not exist.
    pub const NXDOMAIN: u8 = Rcode::NxDomain.to_u8();
    /// The opcode is not implemented.
    pub const NOTIMP: u8 = Rcode::NotImp.to_u8();
    /// Refused by policy.
    pub const REFUSED: u8 = Rcode::Refused.to_u8();
    /// UPDATE: a name exists that should not (RFC 2136).
    pub const YXDOMAIN: u8 = Rcode::YxDomain.to_u8();
    /// UPDATE: an RRset exists that should not.
    pub const YXRRSET: u8 = Rcode::YxRrset.to_u8();
    /// UPDATE: an RRset does not exist that should.
    pub const NXRRSET: u8 = Rcode::NxRrset.to_u8();
    /// Not authoritative for the zone (RFC 2136), or TSIG failed (RFC 8945).
    pub const NOTAUTH: u8 = Rcode::NotAuth.to_u8();
    /// A name is outside the zone (RFC 2136).
    pub const NOTZONE: u8 = Rcode::NotZone.to_u8();
    /// EDNS version not supported (RFC 6891); extended, 1 in the OPT TTL's upper octet.
    pub const BADVERS: u16 = 16;
    /// TSIG: bad signature (RFC 8945 §5.2.2).
    pub const BADSIG: u16 = 16;
    /// TSIG: unknown key or algorithm.
    pub const BADKEY: u16 = 17;
    /// TSIG: time outside the fudge window.
    pub const BADTIME: u16 = 18;
    /// TSIG: MAC truncated too far.
    pub const BADTRUNC: u16 = 22;
    /// Bad or missing server cookie (RFC 7873).
    pub const BADCOOKIE: u16 = 23;

    /// The mnemonic of a response code, as dig prints it (`None` for codes without one).
    /// 16 is BADVERS here; in a TSIG error field it is BADSIG.
    pub fn name(code: u16) -> Option<&'static str> {
        match code {
            0..=15 => u8::try_from(code).ok().and_then(Rcode::from_u8).map(Rcode::name),
            BADVERS => Some("BADVERS"),
            BADKEY => Some("BADKEY"),
            BADTIME => Some("BADTIME"),
            BADTRUNC => Some("BADTRUNC"),
            BADCOOKIE => Some("BADCOOKIE"),
            _ => None,
        }
    }
}

/// Opcodes (RFC 6895 §2.2).
pub mod opcode {
    /// A standard query.
    pub const QUERY: u8 = 0;
    /// NOTIFY (RFC 1996).
    pub const NOTIFY: u8 = 4;
    /// UPDATE (RFC 2136).
    pub const UPDATE: u8 = 5;
}

/// Serial-number arithmetic (RFC 1982) on SOA serials, which wrap around: `a` is after `b`
/// when it is less than 2³¹ ahead of it. Every serial comparison in the workspace is one
/// of these two.
pub mod serial {
    /// Whether `a` is strictly after `b`. A serial exactly 2³¹ away is neither before nor
    /// after (undefined by RFC 1982 §3.2): false.
    pub fn is_after(a: u32, b: u32) -> bool {
        a != b && (a.wrapping_sub(b) as i32) > 0
    }

    /// Whether `a` is `b` or after it.
    pub fn at_or_after(a: u32, b: u32) -> bool {
        a == b || is_after(a, b)
    }
}

/// A value too large for the 16-bit field of a DNS message that must carry it. Written
/// where a length or count could otherwise be truncated silently; the message is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    /// A length field (RDATA, an option, a TCP frame, a TSIG field) would be exceeded.
    #[error("{what} of {len} octets does not fit a 16-bit length")]
    Length {
        /// What was measured.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A section count would pass 65 535 records.
    #[error("a message section cannot hold more than 65535 records")]
    Count,
}

/// The 16-bit length field for `len` octets of `what`.
pub fn len16(what: &'static str, len: usize) -> Result<u16, Overflow> {
    u16::try_from(len).map_err(|_| Overflow::Length { what, len })
}

/// Appends `rdata` behind its 16-bit RDLENGTH.
pub fn put_rdata(out: &mut Vec<u8>, rdata: &[u8]) -> Result<(), Overflow> {
    out.extend_from_slice(&len16("RDATA", rdata.len())?.to_be_bytes());
    out.extend_from_slice(rdata);
    Ok(())
}

/// Adds one to the 16-bit record count at `at` (6: answers, 8: authority, 10: additional)
/// of the message `msg`.
pub fn bump_count(msg: &mut [u8], at: usize) -> Result<(), Overflow> {
    let Some(field) = msg.get_mut(at..at + 2) else {
        return Err(Overflow::Length { what: "message header", len: at });
    };
    let n = u16::from_be_bytes([field[0], field[1]]).checked_add(1).ok_or(Overflow::Count)?;
    field.copy_from_slice(&n.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_wrap_as_rfc_1982_says() {
        assert!(serial::is_after(1, u32::MAX));
        assert!(!serial::is_after(u32::MAX, 1));
        assert!(!serial::is_after(5, 5));
        assert!(serial::at_or_after(5, 5));
        assert!(serial::is_after(0x7fff_ffff, 0));
        // Exactly half the space apart: undefined, so neither.
        assert!(!serial::is_after(0x8000_0000, 0) && !serial::is_after(0, 0x8000_0000));
    }

    #[test]
    fn sixteen_bit_fields_refuse_what_does_not_fit() {
        assert_eq!(len16("x", 65_535), Ok(65_535));
        assert_eq!(len16("x", 65_536), Err(Overflow::Length { what: "x", len: 65_536 }));
        let mut out = Vec::new();
        assert!(put_rdata(&mut out, &vec![0; 65_536]).is_err());
        assert!(out.is_empty(), "nothing is written when the length does not fit");
        put_rdata(&mut out, &[1, 2]).unwrap();
        assert_eq!(out, [0, 2, 1, 2]);
        let mut msg = [0u8; 12];
        msg[10..12].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(bump_count(&mut msg, 10), Err(Overflow::Count));
        assert_eq!(bump_count(&mut msg, 6), Ok(()));
        assert_eq!(msg[6..8], [0, 1]);
        assert!(bump_count(&mut msg[..4], 6).is_err());
    }

    #[test]
    fn every_named_rcode_has_its_number() {
        for (code, name) in [(rcode::NOTAUTH, "NOTAUTH"), (rcode::NOTZONE, "NOTZONE"), (rcode::REFUSED, "REFUSED")] {
            assert_eq!(rcode::name(u16::from(code)), Some(name));
        }
        assert_eq!(rcode::name(rcode::BADVERS), Some("BADVERS"));
        assert_eq!(rcode::name(12), None);
        for code in 0..=10u8 {
            let r = Rcode::from_u8(code).unwrap();
            assert_eq!(r.to_u8(), code);
            assert_eq!(rcode::name(code.into()), Some(r.name()));
        }
        assert_eq!(Rcode::from_u8(11), None);
        assert_eq!(Rcode::NotAuth.to_string(), "NOTAUTH");
        assert_eq!(rcode::name(rcode::BADKEY), Some("BADKEY"));
    }
}
