//! The DNS vocabulary every part of r53dns speaks — the server, the client side (transfers,
//! NOTIFY, UPDATE, the comparison tool): response codes, opcodes and serial-number
//! arithmetic, each written once here.

/// Response codes (RFC 6895 §2.3), as the header's four bits carry them; extended codes
/// (the OPT record's upper eight bits, or TSIG's error field) are `u16`.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// The request could not be interpreted.
    pub const FORMERR: u8 = 1;
    /// The server failed.
    pub const SERVFAIL: u8 = 2;
    /// The name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// The opcode is not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused by policy.
    pub const REFUSED: u8 = 5;
    /// UPDATE: a name exists that should not (RFC 2136).
    pub const YXDOMAIN: u8 = 6;
    /// UPDATE: an RRset exists that should not.
    pub const YXRRSET: u8 = 7;
    /// UPDATE: an RRset does not exist that should.
    pub const NXRRSET: u8 = 8;
    /// Not authoritative for the zone (RFC 2136), or TSIG failed (RFC 8945).
    pub const NOTAUTH: u8 = 9;
    /// A name is outside the zone (RFC 2136).
    pub const NOTZONE: u8 = 10;
    /// EDNS version not supported (RFC 6891); extended, 1 in the OPT TTL's upper octet.
    pub const BADVERS: u16 = 16;
    /// Bad or missing server cookie (RFC 7873).
    pub const BADCOOKIE: u16 = 23;

    /// The mnemonic of a response code, as dig prints it (`None` for codes without one).
    pub fn name(code: u16) -> Option<&'static str> {
        Some(match code {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            16 => "BADVERS",
            23 => "BADCOOKIE",
            _ => return None,
        })
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
/// when it is less than 2³¹ ahead of it.
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
    fn every_named_rcode_has_its_number() {
        for (code, name) in [(rcode::NOTAUTH, "NOTAUTH"), (rcode::NOTZONE, "NOTZONE"), (rcode::REFUSED, "REFUSED")] {
            assert_eq!(rcode::name(u16::from(code)), Some(name));
        }
        assert_eq!(rcode::name(rcode::BADVERS), Some("BADVERS"));
        assert_eq!(rcode::name(12), None);
    }
}
