//! Writing answers into a reused buffer: name compression, size limit, truncation.

use r53dns_zone::rdata::compressible_names;
use r53dns_zone::{Answer, Data, Item, Owner, Rrset, rtype};
use smallvec::SmallVec;

/// Offset of the question name in every message.
const QNAME_AT: usize = 12;
/// Size of an OPT RR without options.
pub(crate) const OPT_LEN: usize = 11;

/// The message would exceed its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// Writes records after a header and question already in `buf`.
pub(crate) struct Encoder<'b> {
    buf: &'b mut Vec<u8>,
    limit: usize,
    /// Offsets where a name (or name suffix) was written uncompressed: compression targets.
    /// Bounded, so encoding never allocates; names past the bound are simply not targets.
    names: SmallVec<[u16; 32]>,
}

impl<'b> Encoder<'b> {
    /// `buf` holds header and question; `limit` is the largest message allowed.
    pub(crate) fn new(buf: &'b mut Vec<u8>, limit: usize) -> Self {
        let mut e = Self { buf, limit, names: SmallVec::new() };
        e.register(QNAME_AT);
        e
    }

    /// Registers every label start of the uncompressed name at `at`.
    fn register(&mut self, mut at: usize) {
        while let Some(&len) = self.buf.get(at) {
            if len == 0 || len & 0xc0 != 0 || at > 0x3fff {
                return;
            }
            if self.names.len() < self.names.inline_size() {
                // Lossless: `at` is at most 0x3fff (checked above).
                self.names.push(at as u16);
            }
            at += 1 + usize::from(len);
        }
    }

    /// Whether the name at `off` in the message equals `name` (uncompressed, any case).
    fn matches_at(&self, mut off: usize, name: &[u8]) -> bool {
        let mut i = 0;
        let mut hops = 0;
        loop {
            let Some(&b) = self.buf.get(off) else {
                return false;
            };
            if b & 0xc0 == 0xc0 {
                let Some(&lo) = self.buf.get(off + 1) else {
                    return false;
                };
                off = usize::from(u16::from_be_bytes([b & 0x3f, lo]));
                hops += 1;
                if hops > 64 {
                    return false;
                }
                continue;
            }
            let l = usize::from(b);
            if name.get(i).map(|&x| usize::from(x)) != Some(l) {
                return false;
            }
            if l == 0 {
                return true;
            }
            match (self.buf.get(off + 1..off + 1 + l), name.get(i + 1..i + 1 + l)) {
                (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {}
                _ => return false,
            }
            off += 1 + l;
            i += 1 + l;
        }
    }

    /// Writes `name` (uncompressed wire form), compressing against names already written.
    fn name(&mut self, name: &[u8]) {
        let mut at = 0;
        loop {
            let suffix = &name[at..];
            if suffix.len() <= 1 {
                self.buf.push(0);
                return;
            }
            if let Some(&off) = self.names.iter().find(|&&off| self.matches_at(usize::from(off), suffix)) {
                self.buf.extend_from_slice(&(0xc000 | off).to_be_bytes());
                return;
            }
            let start = self.buf.len();
            let l = usize::from(suffix[0]);
            self.buf.extend_from_slice(&suffix[..1 + l]);
            if start <= 0x3fff && self.names.len() < self.names.inline_size() {
                // Lossless: `start` is at most 0x3fff.
                self.names.push(start as u16);
            }
            at += 1 + l;
        }
    }

    fn owner(&mut self, owner: Owner<'_>, ans: &Answer<'_>) {
        match owner {
            // Lossless: QNAME_AT is 12, the question's place after the header.
            Owner::Query => self.buf.extend_from_slice(&(0xc000 | QNAME_AT as u16).to_be_bytes()),
            Owner::Name(n) => self.name(n),
            Owner::Synth(i) => match ans.synth.get(i) {
                Some(s) => self.name(&s.target),
                None => self.buf.push(0),
            },
        }
    }

    /// One RR. RDATA names of RFC 1035 types are compressed (RFC 3597 §4).
    fn rr(&mut self, owner: Owner<'_>, ans: &Answer<'_>, rtype: u16, ttl: u32, rdata: &[u8]) {
        self.owner(owner, ans);
        self.buf.extend_from_slice(&rtype.to_be_bytes());
        self.buf.extend_from_slice(&1u16.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        let mut copied = 0;
        for (at, len) in compressible_names(rtype, rdata) {
            self.buf.extend_from_slice(&rdata[copied..at]);
            self.name(&rdata[at..at + len]);
            copied = at + len;
        }
        self.buf.extend_from_slice(&rdata[copied..]);
        // Lossless: stored RDATA is at most 65 535 octets (the zone refuses longer) and
        // compressing its names only shortens it.
        let rdlen = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }

    fn rrset(&mut self, owner: Owner<'_>, ans: &Answer<'_>, set: &Rrset) -> u16 {
        for rd in set.rdatas() {
            self.rr(owner, ans, set.rtype(), set.ttl(), rd);
        }
        // Lossless: an RRset holds at most MAX_RRSET_RECORDS (65 535, capped when the zone is built).
        set.rdatas().len() as u16
    }

    /// Writes one RR (for transfers, which may split an RRset across messages) or nothing if
    /// it does not fit.
    pub(crate) fn record(
        &mut self,
        owner: Owner<'_>,
        ans: &Answer<'_>,
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<(), Full> {
        let mark = self.buf.len();
        let names = self.names.len();
        self.rr(owner, ans, rtype, ttl, rdata);
        if self.buf.len() > self.limit {
            self.buf.truncate(mark);
            self.names.truncate(names);
            return Err(Full);
        }
        Ok(())
    }

    /// Writes one item (with its RRSIGs when `dnssec_ok`) or nothing if it does not fit.
    /// Returns the number of RRs written.
    pub(crate) fn item(&mut self, item: &Item<'_>, ans: &Answer<'_>, dnssec_ok: bool) -> Result<u16, Full> {
        let mark = self.buf.len();
        let names = self.names.len();
        let mut n = 0;
        match item.data {
            Data::Rrset(set) => {
                n += self.rrset(item.owner, ans, set);
                if let Some(sigs) = set.sigs().filter(|_| dnssec_ok && set.rtype() != rtype::RRSIG) {
                    n += self.rrset(item.owner, ans, sigs);
                }
            }
            Data::Synth(i) => {
                if let Some(s) = ans.synth.get(i) {
                    self.rr(item.owner, ans, rtype::CNAME, s.ttl, &s.target);
                    n += 1;
                }
            }
        }
        if self.buf.len() > self.limit {
            self.buf.truncate(mark);
            self.names.truncate(names);
            return Err(Full);
        }
        Ok(n)
    }
}
