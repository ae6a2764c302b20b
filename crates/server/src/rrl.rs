//! Response rate limiting (RRL), after BIND's and Knot's: a reflection or amplification
//! attack sends many queries with a victim's address as source; RRL caps the identical
//! responses one client network receives per second, and answers some of the excess with a
//! truncated, empty response ("slip") so a real client behind that address retries over TCP,
//! which cannot be spoofed. UDP only.
//!
//! Responses are accounted per (client network, kind, name): positive answers and referrals
//! per query name and type; NODATA and NXDOMAIN per zone (so random subdomains do not each
//! get their own allowance); errors per client network alone. Each account is a token bucket
//! refilled at the configured rate, holding at most one second's worth.
//!
//! The table is a fixed array of atomic words shared by every worker: no lock, no
//! allocation, constant memory. Two accounts that hash to the same slot replace each other
//! (the newcomer starts with a full bucket), which errs on the side of answering.

use std::hash::{BuildHasher as _, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use r53dns_zone::{Answer, Data, Owner, Prefix, Rcode, rtype};

/// Settings (see `docs/config.md`, `[rrl]`). A rate of 0 means "no limit" for that kind.
#[derive(Debug, Clone, PartialEq)]
pub struct RrlConfig {
    /// Positive answers, referrals and NODATA per second per account.
    pub responses_per_second: u32,
    /// NXDOMAIN answers per second per account.
    pub nxdomains_per_second: u32,
    /// Error answers (REFUSED, SERVFAIL, FORMERR, NOTIMP) per second per client network.
    pub errors_per_second: u32,
    /// Every `slip`-th limited response is sent truncated instead of dropped (0: drop all,
    /// 1: truncate all).
    pub slip: u32,
    /// IPv4 client network size.
    pub ipv4_prefix: u8,
    /// IPv6 client network size.
    pub ipv6_prefix: u8,
    /// Client networks never limited.
    pub exempt: Vec<Prefix>,
    /// Slots in the table (rounded up to a power of two).
    pub table_size: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            responses_per_second: 0,
            nxdomains_per_second: 0,
            errors_per_second: 0,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            table_size: 1 << 16,
        }
    }
}

impl RrlConfig {
    /// Whether any kind is limited.
    pub fn enabled(&self) -> bool {
        self.responses_per_second > 0 || self.nxdomains_per_second > 0 || self.errors_per_second > 0
    }
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it.
    Send,
    /// Send it truncated and empty (TC set): a real client retries over TCP.
    Slip,
    /// Send nothing.
    Drop,
}

/// The kind of a response, for accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Answer,
    Nxdomain,
    Error,
}

/// Responses with no account of their own (errors before or instead of a lookup).
pub(crate) const ERROR: Account = Account { kind: Kind::Error, name: 0 };

/// What a response is accounted under, computed while answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) kind: Kind,
    /// Hash of the name (and type) the response is about; 0 for errors.
    pub(crate) name: u64,
}

fn hash_name(h: &mut impl Hasher, wire: &[u8]) {
    for b in wire {
        h.write_u8(b.to_ascii_lowercase());
    }
}

/// The account of an answer to `qname`/`qtype` (see the module documentation): a wildcard
/// answer is counted under the wildcard, a referral under the zone cut, so random names do
/// not each get an allowance of their own.
pub(crate) fn account(qname: &[u8], qtype: u16, ans: &Answer<'_>) -> Account {
    // Only spreads names over the table's key space; the table hash itself is keyed.
    let mut h = rustc_hash::FxHasher::default();
    let kind = match ans.rcode {
        Rcode::NoError | Rcode::NxDomain => {
            let soa_owner = ans.authority.first().and_then(|item| match (item.owner, &item.data) {
                (Owner::Name(n), Data::Rrset(set)) if set.rtype() == rtype::SOA => Some(n),
                _ => None,
            });
            match (ans.answer.is_empty(), soa_owner) {
                // Negative: per zone.
                (true, Some(apex)) => {
                    hash_name(&mut h, apex);
                    h.write_u8(u8::from(ans.rcode == Rcode::NxDomain));
                }
                // Positive answers and referrals: per name (wildcard, zone cut) and type.
                _ => {
                    hash_name(&mut h, ans.source.unwrap_or(qname));
                    h.write_u16(if ans.source.is_some() && ans.answer.is_empty() { 0 } else { qtype });
                }
            }
            if ans.rcode == Rcode::NxDomain { Kind::Nxdomain } else { Kind::Answer }
        }
        _ => Kind::Error,
    };
    Account { kind, name: if kind == Kind::Error { 0 } else { h.finish() } }
}

/// The shared table.
#[derive(Debug)]
pub(crate) struct Rrl {
    cfg: RrlConfig,
    slots: Box<[AtomicU64]>,
    mask: usize,
    slips: AtomicU32,
    epoch: Instant,
    /// SipHash with keys random to this process: which (network, account) pairs share a
    /// slot cannot be worked out from outside, so nobody can aim at a victim's bucket.
    keys: std::hash::RandomState,
}

/// A slot in use: a marker bit | second (16 bits) | tokens (16 bits). The slot is one bucket
/// for every account that maps to it; 0 is a slot never used.
const USED: u64 = 1 << 32;

fn pack(second: u16, tokens: u16) -> u64 {
    USED | (u64::from(second) << 16) | u64::from(tokens)
}

fn unpack(v: u64) -> (u16, u16) {
    ((v >> 16) as u16, v as u16)
}

/// The client network `ip` belongs to, with its family.
fn network(ip: IpAddr, v4: u8, v6: u8) -> (u8, u128) {
    match ip {
        IpAddr::V4(a) => {
            let keep = if v4 >= 32 { u32::MAX } else { !(u32::MAX >> v4) };
            (4, u128::from(u32::from(a) & keep))
        }
        IpAddr::V6(a) => {
            let keep = if v6 >= 128 { u128::MAX } else { !(u128::MAX >> v6) };
            (6, u128::from(a) & keep)
        }
    }
}

impl Rrl {
    pub(crate) fn new(cfg: RrlConfig) -> Self {
        let size = cfg.table_size.clamp(1024, 1 << 24).next_power_of_two();
        let slots = (0..size).map(|_| AtomicU64::new(0)).collect();
        Self {
            cfg,
            slots,
            mask: size - 1,
            slips: AtomicU32::new(0),
            epoch: Instant::now(),
            keys: std::hash::RandomState::new(),
        }
    }

    fn rate(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Answer => self.cfg.responses_per_second,
            Kind::Nxdomain => self.cfg.nxdomains_per_second,
            Kind::Error => self.cfg.errors_per_second,
        }
    }

    /// Decides for one response to `client`.
    pub(crate) fn check(&self, client: IpAddr, acct: Account) -> Verdict {
        self.check_at(client, acct, self.epoch.elapsed().as_secs())
    }

    fn check_at(&self, client: IpAddr, acct: Account, now_secs: u64) -> Verdict {
        let rate = self.rate(acct.kind);
        if rate == 0 || self.cfg.exempt.iter().any(|&(net, len)| r53dns_zone::routing::in_prefix(net, len, client)) {
            return Verdict::Send;
        }
        let rate = rate.min(u32::from(u16::MAX)) as u16;
        let mut h = self.keys.build_hasher();
        let (family, net) = network(client, self.cfg.ipv4_prefix, self.cfg.ipv6_prefix);
        h.write_u8(family);
        h.write_u128(net);
        h.write_u8(acct.kind as u8);
        h.write_u64(acct.name);
        let hash = h.finish();
        let slot = &self.slots[(hash as usize) & self.mask];
        let now = now_secs as u16;
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let (second, tokens) = unpack(cur);
            // A slot another account used is not a fresh bucket: accounts that meet in a
            // slot share it (refilled by time only), so flooding other names can never
            // reset a limited account's bucket. An empty slot starts full.
            let tokens = if cur == 0 {
                rate
            } else {
                let elapsed = now.wrapping_sub(second);
                let refill = u32::from(elapsed).saturating_mul(u32::from(rate));
                (u32::from(tokens) + refill).min(u32::from(rate)) as u16
            };
            let (allowed, left) = if tokens > 0 { (true, tokens - 1) } else { (false, 0) };
            match slot.compare_exchange_weak(cur, pack(now, left), Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) if allowed => return Verdict::Send,
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
        match self.cfg.slip {
            0 => Verdict::Drop,
            1 => Verdict::Slip,
            n if self.slips.fetch_add(1, Ordering::Relaxed).is_multiple_of(n) => Verdict::Slip,
            _ => Verdict::Drop,
        }
    }
}

/// Turns the response in `out` into its slipped form: header and question only, TC set.
pub(crate) fn slip(out: &mut Vec<u8>) {
    if out.len() < 12 {
        return;
    }
    let qd = u16::from_be_bytes([out[4], out[5]]);
    let question_end = if qd == 1 {
        r53dns_zone::name::wire_len(out.get(12..).unwrap_or_default()).map_or(12, |n| (12 + n + 4).min(out.len()))
    } else {
        12
    };
    out.truncate(question_end);
    out[2] |= 0x02; // TC
    out[4..6].copy_from_slice(&u16::from(question_end > 12).to_be_bytes());
    out[6..12].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rate: u32, slip: u32) -> Rrl {
        Rrl::new(RrlConfig {
            responses_per_second: rate,
            nxdomains_per_second: rate,
            errors_per_second: rate,
            slip,
            exempt: vec![("10.9.0.0".parse().unwrap(), 16)],
            ..Default::default()
        })
    }

    const A: Account = Account { kind: Kind::Answer, name: 42 };

    #[test]
    fn other_accounts_meeting_a_limited_one_in_its_slot_never_refill_it() {
        let r = Rrl::new(RrlConfig { table_size: 1024, ..rrl(3, 0).cfg });
        let victim: IpAddr = "192.0.2.1".parse().unwrap();
        // The account spends its allowance...
        for _ in 0..3 {
            assert_eq!(r.check_at(victim, A, 7), Verdict::Send);
        }
        assert_eq!(r.check_at(victim, A, 7), Verdict::Drop);
        // ...then thousands of other accounts land in every slot within the same second,
        // its own among them: it is still limited (the old table handed out a fresh bucket
        // whenever a slot changed hands).
        for i in 0..5000u64 {
            let _ = r.check_at(victim, Account { kind: Kind::Answer, name: 1000 + i }, 7);
        }
        assert_eq!(r.check_at(victim, A, 7), Verdict::Drop);
        // A second later it has its allowance again.
        assert_eq!(r.check_at(victim, A, 8), Verdict::Send);
    }

    #[test]
    fn a_bucket_allows_its_rate_per_second_and_refills() {
        let r = rrl(5, 0);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let sent = (0..20).filter(|_| r.check_at(ip, A, 100) == Verdict::Send).count();
        assert_eq!(sent, 5);
        // The same /24 shares the account; another /24 and another name do not.
        assert_eq!(r.check_at("192.0.2.200".parse().unwrap(), A, 100), Verdict::Drop);
        assert_eq!(r.check_at("192.0.3.7".parse().unwrap(), A, 100), Verdict::Send);
        assert_eq!(r.check_at(ip, Account { kind: Kind::Answer, name: 43 }, 100), Verdict::Send);
        // One second later: one second's worth again, not more.
        let sent = (0..20).filter(|_| r.check_at(ip, A, 101) == Verdict::Send).count();
        assert_eq!(sent, 5);
        let sent = (0..20).filter(|_| r.check_at(ip, A, 200) == Verdict::Send).count();
        assert_eq!(sent, 5);
        // Exempt networks are never limited.
        assert!((0..50).all(|_| r.check_at("10.9.1.1".parse().unwrap(), A, 100) == Verdict::Send));
    }

    #[test]
    fn slip_truncates_every_nth_limited_response() {
        let r = rrl(1, 2);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..7).map(|_| r.check_at(ip, A, 5)).collect();
        assert_eq!(verdicts[0], Verdict::Send);
        let slipped = verdicts.iter().filter(|v| **v == Verdict::Slip).count();
        let dropped = verdicts.iter().filter(|v| **v == Verdict::Drop).count();
        assert_eq!((slipped, dropped), (3, 3));
        // The same /56 shares the account.
        assert_ne!(r.check_at("2001:db8:0:ff::1".parse().unwrap(), A, 5), Verdict::Send);
        let r = rrl(1, 1);
        r.check_at(ip, A, 5);
        assert!((0..5).all(|_| r.check_at(ip, A, 5) == Verdict::Slip));
    }

    #[test]
    fn slipped_responses_keep_only_header_and_question() {
        let mut m = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 2, 0, 1, 0, 1];
        m.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        let q_end = m.len();
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        slip(&mut m);
        assert_eq!(m.len(), q_end);
        assert_eq!(m[2] & 0x02, 0x02);
        assert_eq!(&m[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    }
}
