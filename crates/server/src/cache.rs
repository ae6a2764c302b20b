//! The response cache: answers encoded once per snapshot and copied out afterwards.
//!
//! A `ZoneSet` never changes, so the octets `answer` writes after the question are a pure
//! function of the question and the settings the server was started with — unless a routing
//! policy chooses per query, the answer depends on the client's EDNS client subnet, or the
//! request is signed. Those bypass the cache; for everything else the encoded answer is
//! stored once, and a reply is the client's own header bits and question (ID, RD, CD,
//! opcode, the name's case and 0x20 bits as sent) followed by the stored octets.
//!
//! The key holds everything else the octets depend on: the `ZoneSet`'s
//! id (which names its content, so the view a client is answered from and the snapshot
//! are both in it: answers of a replaced snapshot are never found again), the question
//! name lower-cased, the type, the size limit the answer was encoded under (transport and
//! the client's EDNS size, clamped as `answer` clamps it), and whether the client sent
//! EDNS, set DO and asked for NSID. The `AnswerConfig` the answers were made under is the
//! cache's own: a caller with other settings is not served from it.
//!
//! Storage is one table of atomic words allocated when the listeners are bound (its budget,
//! counted in `r53dns_response_cache_bytes`), cut into 512-octet slots in buckets of four,
//! and beside it 32 octets of tags per bucket: a 32-bit tag (a part of the key's hash) of
//! each question the bucket's slots hold, so a lookup reads only a slot whose tag matches
//! (a miss costs one cache line, not four), and the doorkeeper's four (below). A slot is a
//! sequence lock made of atomics only: a writer claims it by moving its sequence number to
//! odd with a compare-and-swap (a writer that loses the race simply does not store),
//! writes, and moves it to the next even number; a reader copies the slot and keeps the
//! copy only if the sequence number was even and unchanged throughout. No lock, no
//! allocation, no waiting; a torn read is a miss. An answer that does not fit a slot is not
//! stored (`too_large`); a full bucket gives up its entry chosen at random (`evictions`).
//!
//! An answer is stored the second time its question misses, not the first
//! (`first_sighting`). The doorkeeper is four tags per bucket of questions that missed
//! there and were not stored. A miss whose tag is among them stores its answer; any other
//! miss only writes its tag over one of the four chosen at random (one atomic store), so
//! two questions taking turns in a bucket are not kept out for ever. Questions asked once —
//! most of a large zone's names under a cycling load, every name of a random-subdomain
//! flood — then cost only the lookup, instead of an eviction and a 512-octet write into
//! cold memory each, and cannot push the answers asked again and again out of the table.
//! Measured on `benches/lookup.rs`'s `cold` case (100,000 distinct questions in rotation):
//! storing every miss made a miss cost 45 % more than no cache at all, the doorkeeper and
//! the tags about 10 %; under `benches/load` at a million records the server with the cache
//! went from 8 % fewer answers a second than without it to as many or more. A question asked
//! twice before the table is warm is answered uncached twice; two questions of one bucket
//! with the same 31 tag bits are taken for one.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crate::handler::AnswerConfig;
use crate::rrl::{Account, Kind};

/// Whether answers are cached, and in how much memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Cache answers (on by default).
    pub enabled: bool,
    /// Octets of memory for the table, allocated when the listeners are bound (at least
    /// one bucket of four 512-octet slots is kept).
    pub budget: usize,
}

/// The default budget: 16 MiB, 32 512 answers.
pub const DEFAULT_BUDGET: usize = 16 << 20;

impl Default for CacheConfig {
    fn default() -> Self {
        Self { enabled: true, budget: DEFAULT_BUDGET }
    }
}

/// Octets per slot.
pub const SLOT_BYTES: usize = 512;
const SLOT_WORDS: usize = SLOT_BYTES / 8;
/// Slots per bucket.
const WAYS: usize = 4;
/// Words before the name: sequence, hash, zone set id, meta, flags and counts, body length
/// and account kind, account name.
const HEAD: usize = 7;
/// Octets per bucket: its slots and their doorkeeper tags.
const BUCKET_BYTES: usize = WAYS * (SLOT_BYTES + 8);

/// The counters of every response cache in the process (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Answers copied from the cache.
    pub hits: u64,
    /// Cacheable questions not found (each is answered and then stored).
    pub misses: u64,
    /// Answers stored.
    pub inserts: u64,
    /// Stored answers given up for a new one in a full bucket.
    pub evictions: u64,
    /// Answers too large for a slot, not stored.
    pub too_large: u64,
    /// Answers not stored because their question missed for the first time.
    pub first_sighting: u64,
    /// Questions and answers that bypass the cache: routed per query, by client subnet,
    /// signed, refused.
    pub bypassed: u64,
    /// Octets of table allocated now.
    pub bytes: u64,
}

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static INSERTS: AtomicU64 = AtomicU64::new(0);
static EVICTIONS: AtomicU64 = AtomicU64::new(0);
static TOO_LARGE: AtomicU64 = AtomicU64::new(0);
static FIRST_SIGHTING: AtomicU64 = AtomicU64::new(0);
static BYPASSED: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// The counters of every response cache of the process so far.
pub fn counts() -> CacheCounts {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    CacheCounts {
        hits: get(&HITS),
        misses: get(&MISSES),
        inserts: get(&INSERTS),
        evictions: get(&EVICTIONS),
        too_large: get(&TOO_LARGE),
        first_sighting: get(&FIRST_SIGHTING),
        bypassed: get(&BYPASSED),
        bytes: get(&BYTES),
    }
}

pub(crate) fn count_hit() {
    HITS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_miss() {
    MISSES.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_bypass() {
    BYPASSED.fetch_add(1, Ordering::Relaxed);
}

/// What a question is looked up by.
pub(crate) struct Key {
    hash: u64,
    zones: u64,
    meta: u64,
    /// The name lower-cased, zero-padded, eight octets a word.
    name: [u64; 32],
    name_words: usize,
}

/// Key bits: the client sent EDNS, set DO, asked for NSID.
pub(crate) const EDNS: u8 = 1;
pub(crate) const DO: u8 = 2;
pub(crate) const NSID: u8 = 4;

impl Key {
    /// The low half of the hash, never zero (the empty tag).
    fn tag(&self) -> u32 {
        (self.hash as u32) | 1
    }

    /// `qname` is the wire name as read (any case, at most 255 octets), `limit` the size
    /// limit the answer is encoded under, `bits` [`EDNS`], [`DO`], [`NSID`].
    pub(crate) fn new(cache: &ResponseCache, zones: u64, qname: &[u8], qtype: u16, limit: usize, bits: u8) -> Self {
        let mut name = [0u64; 32];
        let mut octets = [0u8; 256];
        let n = qname.len().min(255);
        octets[..n].copy_from_slice(&qname[..n]);
        octets[..n].make_ascii_lowercase();
        let name_words = n.div_ceil(8);
        for (w, chunk) in name.iter_mut().zip(octets.chunks_exact(8)).take(name_words) {
            *w = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        }
        let limit = u64::try_from(limit.min(usize::from(u16::MAX))).unwrap_or(0);
        let meta = (u64::from(qtype) << 48) | (limit << 32) | (u64::from(bits) << 8) | n as u64;
        let mut h = cache.keys.build_hasher();
        h.write_u64(zones);
        h.write_u64(meta);
        for w in &name[..name_words] {
            h.write_u64(*w);
        }
        Self { hash: h.finish(), zones, meta, name, name_words }
    }
}

/// What a stored answer carries besides its octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The header's second word without QR, opcode, RD and CD (AA, TC, rcode).
    pub(crate) flags: u16,
    /// Answer, authority and additional counts.
    pub(crate) counts: [u16; 3],
    /// The response's rate-limiting account.
    pub(crate) account: Account,
}

/// A table of answers for one set of listeners (one `AnswerConfig`).
#[derive(Debug)]
pub struct ResponseCache {
    words: Box<[AtomicU64]>,
    /// Per bucket, `2 * WAYS` tags (32 octets): the tags of the questions its slots hold
    /// (a hint: a lookup reads only the slots whose tag matches, one cache line for a
    /// miss instead of four), then the doorkeeper's, of questions that missed there and
    /// were not stored.
    tags: Box<[AtomicU32]>,
    buckets: usize,
    keys: std::hash::RandomState,
    cfg: AnswerConfig,
}

impl Drop for ResponseCache {
    fn drop(&mut self) {
        BYTES.fetch_sub(self.bytes() as u64, Ordering::Relaxed);
    }
}

impl ResponseCache {
    /// A table and its doorkeeper in at most `budget` octets (whole buckets, at least one)
    /// for answers made under `cfg`.
    pub fn new(budget: usize, cfg: AnswerConfig) -> Self {
        let buckets = (budget / BUCKET_BYTES).max(1);
        let words = (0..buckets * WAYS * SLOT_WORDS).map(|_| AtomicU64::new(0)).collect();
        let tags = (0..buckets * 2 * WAYS).map(|_| AtomicU32::new(0)).collect();
        let cache = Self { words, tags, buckets, keys: std::hash::RandomState::new(), cfg };
        BYTES.fetch_add(cache.bytes() as u64, Ordering::Relaxed);
        cache
    }

    /// Octets of table and doorkeeper.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8 + self.tags.len() * 4
    }

    /// Whether answers made under `cfg` may come from this cache.
    /// The listeners' own settings are copies of one value, so the texts are compared by
    /// address (no octet comparison per query; other settings with equal texts are
    /// merely not served from here).
    pub(crate) fn serves(&self, cfg: &AnswerConfig) -> bool {
        let c = &self.cfg;
        c.max_udp_payload == cfg.max_udp_payload
            && c.minimal_responses == cfg.minimal_responses
            && c.reserve == cfg.reserve
            && std::ptr::eq(c.identity, cfg.identity)
            && std::ptr::eq(c.version, cfg.version)
            && std::ptr::eq(c.nsid, cfg.nsid)
    }

    /// The bucket the high half of the hash chooses (a multiply and a shift, not a
    /// division: this is on every lookup).
    fn bucket(&self, key: &Key) -> usize {
        (((key.hash >> 32) * self.buckets as u64) >> 32) as usize
    }

    /// A bucket's tags: `WAYS` of the questions held, `WAYS` of the doorkeeper's.
    fn tags(&self, bucket: usize) -> &[AtomicU32] {
        let at = bucket * 2 * WAYS;
        &self.tags[at..at + 2 * WAYS]
    }

    fn slot(&self, bucket: usize, way: usize) -> &[AtomicU64] {
        let at = (bucket * WAYS + way) * SLOT_WORDS;
        &self.words[at..at + SLOT_WORDS]
    }

    /// Appends the stored answer for `key` to `out` (which holds header and question), or
    /// leaves `out` as it was and returns `None`.
    pub(crate) fn get(&self, key: &Key, out: &mut Vec<u8>) -> Option<Entry> {
        let tag = key.tag();
        let bucket = self.bucket(key);
        let held = &self.tags(bucket)[..WAYS];
        for (way, t) in held.iter().enumerate() {
            if t.load(Ordering::Relaxed) == tag
                && let Some(hit) = read(self.slot(bucket, way), key, out)
            {
                return Some(hit);
            }
        }
        None
    }

    /// Stores `body` (the octets after the question) for `key`, unless it does not fit a
    /// slot, the question missed for the first time, or another thread is writing the
    /// slot chosen. `random` picks the entry a full bucket gives up, or the doorkeeper's tag
    /// a first sighting replaces.
    pub(crate) fn put(&self, key: &Key, entry: Entry, body: &[u8], random: u64) {
        let body_words = body.len().div_ceil(8);
        if HEAD + key.name_words + body_words > SLOT_WORDS {
            TOO_LARGE.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let bucket = self.bucket(key);
        let (held, seen) = self.tags(bucket).split_at(WAYS);
        let tag = key.tag();
        if !seen.iter().any(|t| t.load(Ordering::Relaxed) == tag) {
            seen[(random >> 32) as usize % WAYS].store(tag, Ordering::Relaxed);
            FIRST_SIGHTING.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // An empty slot, else one of another zone set (a replaced snapshot, another view),
        // else one at random.
        let mut victim = None;
        for way in 0..WAYS {
            let s = self.slot(bucket, way);
            let seq = s[0].load(Ordering::Relaxed);
            if seq == 0 {
                victim = Some((way, false));
                break;
            }
            if victim.is_none() && s[2].load(Ordering::Relaxed) != key.zones {
                victim = Some((way, false));
            }
        }
        let (way, evicts) = victim.unwrap_or(((random % WAYS as u64) as usize, true));
        let s = self.slot(bucket, way);
        let seq = s[0].load(Ordering::Relaxed);
        if seq & 1 == 1 || s[0].compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return; // another writer has it
        }
        fence(Ordering::Release);
        let kind = match entry.account.kind {
            Kind::Answer => 0u64,
            Kind::Nxdomain => 1,
            Kind::Error => 2,
        };
        let [an, ns, ar] = entry.counts;
        s[1].store(key.hash, Ordering::Relaxed);
        s[2].store(key.zones, Ordering::Relaxed);
        s[3].store(key.meta, Ordering::Relaxed);
        s[4].store(
            (u64::from(entry.flags) << 48) | (u64::from(an) << 32) | (u64::from(ns) << 16) | u64::from(ar),
            Ordering::Relaxed,
        );
        s[5].store(((body.len() as u64) << 8) | kind, Ordering::Relaxed);
        s[6].store(entry.account.name, Ordering::Relaxed);
        for (w, n) in s[HEAD..].iter().zip(&key.name[..key.name_words]) {
            w.store(*n, Ordering::Relaxed);
        }
        for (w, chunk) in s[HEAD + key.name_words..].iter().zip(body.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        s[0].store(seq + 2, Ordering::Release);
        held[way].store(tag, Ordering::Relaxed);
        INSERTS.fetch_add(1, Ordering::Relaxed);
        if evicts {
            EVICTIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One slot's answer for `key`, appended to `out`, if the slot holds it and was not being
/// written meanwhile.
fn read(s: &[AtomicU64], key: &Key, out: &mut Vec<u8>) -> Option<Entry> {
    let seq = s[0].load(Ordering::Acquire);
    if seq == 0 || seq & 1 == 1 {
        return None;
    }
    if s[1].load(Ordering::Relaxed) != key.hash
        || s[2].load(Ordering::Relaxed) != key.zones
        || s[3].load(Ordering::Relaxed) != key.meta
        || !s[HEAD..HEAD + key.name_words]
            .iter()
            .zip(&key.name[..key.name_words])
            .all(|(w, n)| w.load(Ordering::Relaxed) == *n)
    {
        return None;
    }
    let head = s[4].load(Ordering::Relaxed);
    let lens = s[5].load(Ordering::Relaxed);
    let name = s[6].load(Ordering::Relaxed);
    let len = usize::try_from(lens >> 8).unwrap_or(usize::MAX);
    let start = HEAD + key.name_words;
    let mark = out.len();
    // A torn read may show any length: never copy past the slot.
    if len.div_ceil(8) > SLOT_WORDS - start || out.capacity() - mark < len {
        return None;
    }
    let mut left = len;
    for w in &s[start..start + len.div_ceil(8)] {
        let b = w.load(Ordering::Relaxed).to_le_bytes();
        let n = left.min(8);
        out.extend_from_slice(&b[..n]);
        left -= n;
    }
    fence(Ordering::Acquire);
    if s[0].load(Ordering::Relaxed) != seq {
        out.truncate(mark);
        return None;
    }
    let kind = match lens & 0xff {
        0 => Kind::Answer,
        1 => Kind::Nxdomain,
        _ => Kind::Error,
    };
    Some(Entry {
        flags: (head >> 48) as u16,
        counts: [(head >> 32) as u16, (head >> 16) as u16, head as u16],
        account: Account { kind, name },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry { flags: 0x0400, counts: [1, 2, 3], account: Account { kind: Kind::Nxdomain, name: 42 } }
    }

    /// Stores past the doorkeeper: the second sighting is stored.
    fn put2(c: &ResponseCache, k: &Key, entry: Entry, body: &[u8], random: u64) {
        c.put(k, entry, body, random);
        c.put(k, entry, body, random);
    }

    #[test]
    fn an_answer_is_stored_on_its_second_miss_and_one_time_questions_do_not_evict() {
        let c = ResponseCache::new(BUCKET_BYTES, AnswerConfig::default());
        let k = Key::new(&c, 1, b"\x03www\x00", 1, 512, 0);
        let mut out = Vec::with_capacity(4096);
        let before = counts();
        c.put(&k, entry(), b"first", 0);
        assert_eq!(c.get(&k, &mut out), None, "not stored on the first miss");
        assert!(counts().first_sighting > before.first_sighting);
        c.put(&k, entry(), b"second", 0);
        assert_eq!(c.get(&k, &mut out), Some(entry()));
        assert_eq!(out, b"second");
        // A thousand questions asked once each leave the one bucket's answer where it is.
        for i in 0..1000u32 {
            let name = [&[4u8][..], format!("{i:04}").as_bytes(), &[0]].concat();
            c.put(&Key::new(&c, 1, &name, 1, 512, 0), entry(), b"once", u64::from(i));
        }
        out.clear();
        assert_eq!(c.get(&k, &mut out), Some(entry()));
        assert_eq!(out, b"second");
    }

    #[test]
    fn stores_and_finds_by_the_whole_key() {
        let c = ResponseCache::new(64 << 10, AnswerConfig::default());
        let k = Key::new(&c, 7, b"\x03WwW\x07example\x03com\x00", 1, 1232, EDNS);
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(b"head");
        assert_eq!(c.get(&k, &mut out), None);
        let body: Vec<u8> = (0..=200u8).collect();
        put2(&c, &k, entry(), &body, 0);
        assert_eq!(c.get(&k, &mut out), Some(entry()));
        assert_eq!(&out[..4], b"head");
        assert_eq!(&out[4..], &body[..]);
        // The name in any case is the same question.
        let lower = Key::new(&c, 7, b"\x03www\x07EXAMPLE\x03com\x00", 1, 1232, EDNS);
        out.truncate(4);
        assert_eq!(c.get(&lower, &mut out), Some(entry()));
        // Anything else in the key is another question.
        for other in [
            Key::new(&c, 8, b"\x03www\x07example\x03com\x00", 1, 1232, EDNS),
            Key::new(&c, 7, b"\x03www\x07example\x03com\x00", 28, 1232, EDNS),
            Key::new(&c, 7, b"\x03www\x07example\x03com\x00", 1, 512, EDNS),
            Key::new(&c, 7, b"\x03www\x07example\x03com\x00", 1, 1232, EDNS | DO),
            Key::new(&c, 7, b"\x03www\x07example\x03com\x00", 1, 1232, EDNS | NSID),
            Key::new(&c, 7, b"\x03www\x07example\x03org\x00", 1, 1232, EDNS),
            Key::new(&c, 7, b"\x03www\x07example\x03co\x00", 1, 1232, EDNS),
        ] {
            out.truncate(4);
            assert_eq!(c.get(&other, &mut out), None);
            assert_eq!(out.len(), 4);
        }
    }

    #[test]
    fn answers_too_large_for_a_slot_are_not_stored() {
        let c = ResponseCache::new(0, AnswerConfig::default());
        assert_eq!(c.bytes(), BUCKET_BYTES);
        let k = Key::new(&c, 1, b"\x01a\x00", 1, 512, 0);
        let before = counts().too_large;
        put2(&c, &k, entry(), &[0; SLOT_BYTES], 0);
        assert!(counts().too_large > before);
        let mut out = Vec::with_capacity(4096);
        assert_eq!(c.get(&k, &mut out), None);
        // The largest that fits is stored.
        let fits = (SLOT_WORDS - HEAD - 1) * 8;
        put2(&c, &k, entry(), &vec![9; fits], 0);
        assert_eq!(c.get(&k, &mut out), Some(entry()));
        assert_eq!(out, vec![9; fits]);
    }

    #[test]
    fn the_budget_bounds_the_table_and_full_buckets_evict() {
        let c = ResponseCache::new(8 * BUCKET_BYTES, AnswerConfig::default());
        let bytes = 8 * BUCKET_BYTES;
        assert_eq!(c.bytes(), bytes);
        let before = counts();
        let mut out = Vec::with_capacity(4096);
        for i in 0..1000u32 {
            // Digits: names that differ only in case are one question.
            let name = [&[4u8][..], format!("{i:04}").as_bytes(), &[0]].concat();
            let k = Key::new(&c, 1, &name, 1, 512, 0);
            put2(&c, &k, entry(), &i.to_be_bytes(), u64::from(i));
        }
        let after = counts();
        assert!(after.inserts - before.inserts >= 1000 - 32, "{before:?} {after:?}");
        assert!(after.evictions - before.evictions >= 1000 - 32 - 32, "{before:?} {after:?}");
        assert_eq!(c.bytes(), bytes, "the table never grows");
        // At most 32 answers are held, and what is found is right.
        let mut found = 0;
        for i in 0..1000u32 {
            // Digits: names that differ only in case are one question.
            let name = [&[4u8][..], format!("{i:04}").as_bytes(), &[0]].concat();
            let k = Key::new(&c, 1, &name, 1, 512, 0);
            out.clear();
            if c.get(&k, &mut out).is_some() {
                assert_eq!(out, i.to_be_bytes());
                found += 1;
            }
        }
        assert!((1..=32).contains(&found), "{found}");
    }

    #[test]
    fn concurrent_writers_and_readers_never_see_a_mixed_answer() {
        let c = std::sync::Arc::new(ResponseCache::new(0, AnswerConfig::default()));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut out = Vec::with_capacity(4096);
                    for i in 0..20_000u32 {
                        let v = (i % 8) as u8;
                        let name = [1, b'a' + v, 0];
                        let k = Key::new(&c, 1, &name, 1, 512, 0);
                        // The body of name v is v repeated; its length depends on v too.
                        let body = vec![v; 100 + usize::from(v) * 40];
                        if (i + u32::from(t)) % 3 == 0 {
                            put2(&c, &k, entry(), &body, u64::from(i));
                        } else {
                            out.clear();
                            if c.get(&k, &mut out).is_some() {
                                assert_eq!(out, body);
                            } else {
                                assert!(out.is_empty());
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
