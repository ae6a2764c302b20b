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
//! cache's own: a caller with other settings is not served from it. The hash that picks
//! the bucket and the tag covers only the zone set, the type and the name, which a request
//! shows before it is parsed: the UDP loop prefetches, for all requests of a batch, the
//! tag line and then the slot each tag points to before it answers any of them, so their
//! cache misses overlap instead of following one another. (Under blast at a million
//! records this took user time per query from about 1 270 ns to 1 080 ns, and the lookup
//! from 6.8 % of the core's cycles to 2.3 %, with 2.1 % spent on the prefetches.) The
//! same question with another size or EDNS bits shares the tag and is told apart in the
//! slot.
//!
//! Storage is one table of atomic words allocated when the listeners are bound (its budget,
//! counted in `r53dns_response_cache_bytes`), cut into 256-octet slots in buckets of eight,
//! and beside each bucket one cache line of tags: a 32-bit tag (a part of the key's hash) of
//! each question whose answer starts in one of its slots, so a lookup reads only a slot
//! whose tag matches (a miss costs that one line), and the doorkeeper's eight (below). An
//! answer longer than a slot spans two or four, starting at a multiple of its span (at
//! most 792 octets after a short name); most answers without DNSSEC take one, so the
//! default 16 MiB holds 63 544 of them. A slot is a sequence lock made of atomics only: a
//! writer claims the slots it writes, and the first slot of any longer answer they are
//! part of, by moving their sequence numbers to odd with a compare-and-swap (a writer that
//! loses the race simply does not store, counted as `busy`), writes, and moves them to the
//! next even number; a reader copies an answer and keeps the copy only if the sequence
//! number of the slot it starts in was even and unchanged throughout. No lock, no allocation, no waiting; a torn
//! read is a miss. An answer that does not fit four slots is not stored (`too_large`); a
//! full bucket gives up the answers where the new one goes, chosen at random (`evictions`).
//!
//! An answer is stored the second time its question misses, not the first
//! (`first_sighting`). The doorkeeper is eight tags per bucket of questions that missed
//! there and were not stored. A miss whose tag is among them stores its answer; any other
//! miss only writes its tag over one of the eight chosen at random (one atomic store), so
//! two questions taking turns in a bucket are not kept out for ever. Questions asked once —
//! most of a large zone's names under a cycling load, every name of a random-subdomain
//! flood — then cost only the lookup, instead of an eviction and a slot's write into
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
    /// one bucket of eight 256-octet slots is kept).
    pub budget: usize,
}

/// The default budget: 16 MiB, 7 943 buckets: 63 544 answers of one slot.
pub const DEFAULT_BUDGET: usize = 16 << 20;

impl Default for CacheConfig {
    fn default() -> Self {
        Self { enabled: true, budget: DEFAULT_BUDGET }
    }
}

/// Octets per slot.
pub const SLOT_BYTES: usize = 256;
const SLOT_WORDS: usize = SLOT_BYTES / 8;
/// Slots per bucket.
const WAYS: usize = 8;
/// Words before the name: sequence, hash, zone set id, meta, flags and counts, body length
/// and account kind, account name. A slot continuing a longer answer keeps them too (its
/// sequence number, the rest zero: it never matches a question).
const HEAD: usize = 7;
/// Words of name and body per slot.
const DATA: usize = SLOT_WORDS - HEAD;
/// Slots an answer may span: one, two or four, starting at a multiple of its span.
const MAX_SPAN: usize = 4;
/// Octets per bucket: its slots and their tags (one cache line).
const BUCKET_BYTES: usize = WAYS * SLOT_BYTES + size_of::<Tags>();
/// A held tag: no answer starts here (`EMPTY`), or the slot continues the answer of the one
/// before (`MORE`). Question tags are odd, so neither is ever one.
const EMPTY: u32 = 0;
const MORE: u32 = 2;

/// One cache line of a bucket's tags: `WAYS` of the questions held (or [`EMPTY`], [`MORE`]),
/// then `WAYS` of the doorkeeper's.
#[repr(align(64))]
#[derive(Debug)]
struct Tags([AtomicU32; 2 * WAYS]);

/// Eight words in one cache line, so that a slot's head is one line.
#[repr(align(64))]
#[derive(Debug)]
struct Line([AtomicU64; 8]);

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
    /// Answers not stored because another worker was writing one of the slots they needed.
    pub busy: u64,
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
static BUSY: AtomicU64 = AtomicU64::new(0);
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
        busy: get(&BUSY),
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
        tag_of(self.hash)
    }

    /// `qname` is the wire name as read (any case, at most 255 octets), `limit` the size
    /// limit the answer is encoded under, `bits` [`EDNS`], [`DO`], [`NSID`].
    pub(crate) fn new(cache: &ResponseCache, zones: u64, qname: &[u8], qtype: u16, limit: usize, bits: u8) -> Self {
        let mut key = Self::locate(cache, zones, qname, qtype);
        let limit = u64::try_from(limit.min(usize::from(u16::MAX))).unwrap_or(0);
        key.meta |= (limit << 32) | (u64::from(bits) << 8);
        key
    }

    /// The key as far as the question alone makes it: the hash (and so the bucket and the
    /// tag) covers the zone set, the type and the name, not the size limit or the EDNS bits,
    /// so that [`ResponseCache::prefetch`] can find the bucket before the request is parsed.
    /// Those are compared in the slot with the rest of the key.
    fn locate(cache: &ResponseCache, zones: u64, qname: &[u8], qtype: u16) -> Self {
        let mut name = [0u64; 32];
        let mut octets = [0u8; 256];
        let n = qname.len().min(255);
        octets[..n].copy_from_slice(&qname[..n]);
        octets[..n].make_ascii_lowercase();
        let name_words = n.div_ceil(8);
        for (w, chunk) in name.iter_mut().zip(octets.chunks_exact(8)).take(name_words) {
            *w = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        }
        let meta = (u64::from(qtype) << 48) | n as u64;
        let mut h = cache.keys.build_hasher();
        h.write_u64(zones);
        h.write_u64(meta);
        for w in &name[..name_words] {
            h.write_u64(*w);
        }
        Self { hash: h.finish(), zones, meta, name, name_words }
    }
}

/// Asks the CPU to start loading the cache line holding `at`, without waiting for it.
/// (`safe_arch` wraps the instruction safely; this crate forbids `unsafe`. Elsewhere it is
/// a no-op.)
#[inline(always)]
fn prefetch<T>(at: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(at);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// The low half of a hash, never zero (the empty tag).
fn tag_of(hash: u64) -> u32 {
    (hash as u32) | 1
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
    /// `WAYS` slots of `SLOT_WORDS` words per bucket.
    lines: Box<[Line]>,
    /// Per bucket, one line of tags: those of the questions whose answers start in its
    /// slots (a hint: a lookup reads only a slot whose tag matches, one cache line for a
    /// miss), then the doorkeeper's, of questions that missed there and were not stored.
    tags: Box<[Tags]>,
    buckets: usize,
    /// Seeded per table: which bucket a question lands in cannot be chosen from outside.
    /// (foldhash, not SipHash: a collision only shares a bucket of eight slots, and this
    /// hash is on every lookup.)
    keys: foldhash::fast::RandomState,
    cfg: AnswerConfig,
}

impl Drop for ResponseCache {
    fn drop(&mut self) {
        BYTES.fetch_sub(self.bytes() as u64, Ordering::Relaxed);
    }
}

/// Slots an answer of `words` words of name and body spans, if it fits at all.
fn span(words: usize) -> Option<usize> {
    [1, 2, MAX_SPAN].into_iter().find(|&k| words <= k * DATA)
}

impl ResponseCache {
    /// A table and its tags in at most `budget` octets (whole buckets, at least one) for
    /// answers made under `cfg`.
    pub fn new(budget: usize, cfg: AnswerConfig) -> Self {
        let buckets = (budget / BUCKET_BYTES).max(1);
        let lines = (0..buckets * WAYS * SLOT_WORDS / 8).map(|_| Line(Default::default())).collect();
        let tags = (0..buckets).map(|_| Tags(Default::default())).collect();
        let cache = Self { lines, tags, buckets, keys: foldhash::fast::RandomState::default(), cfg };
        BYTES.fetch_add(cache.bytes() as u64, Ordering::Relaxed);
        cache
    }

    /// Octets of slots and tags.
    pub fn bytes(&self) -> usize {
        self.lines.len() * size_of::<Line>() + self.tags.len() * size_of::<Tags>()
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
        self.bucket_of(key.hash)
    }

    fn bucket_of(&self, hash: u64) -> usize {
        (((hash >> 32) * self.buckets as u64) >> 32) as usize
    }

    /// Word `i` of slot `way` of `bucket` (`way < WAYS`, `i < SLOT_WORDS`).
    fn word(&self, bucket: usize, way: usize, i: usize) -> &AtomicU64 {
        let at = (bucket * WAYS + way) * SLOT_WORDS + i;
        &self.lines[at / 8].0[at % 8]
    }

    /// Word `d` of name and body of the answer starting in slot `way` (`d < span * DATA`):
    /// each slot of a span carries `DATA` of them after its head.
    fn data(&self, bucket: usize, way: usize, d: usize) -> &AtomicU64 {
        self.word(bucket, way + d / DATA, HEAD + d % DATA)
    }

    /// Starts loading the tags of the bucket the question of `request` (a whole request as
    /// received) would be found in, for the zone set `zones`; returns its hash for
    /// [`Self::prefetch_slot`]. A batch of requests prefetched this way, then looked up,
    /// waits for its cache misses together instead of one after another: under load at a
    /// million records the tag line and the slot head were the two misses that made most
    /// of a lookup's time. Nothing is parsed beyond the question; a request that turns out
    /// not to be cacheable only loaded a line for nothing.
    pub(crate) fn prefetch(&self, zones: u64, request: &[u8]) -> Option<u64> {
        let mut qname = [0u8; r53dns_zone::name::MAX_NAME_LEN];
        let (n, used) = r53dns_proto::wire::read_name(request, 12, &mut qname)?;
        let qtype = r53dns_proto::wire::u16_at(request, 12 + used)?;
        let key = Key::locate(self, zones, &qname[..n], qtype);
        prefetch(&self.tags[self.bucket(&key)]);
        Some(key.hash)
    }

    /// Starts loading the head of the first slot whose tag is that of `hash` (from
    /// [`Self::prefetch`]), and the line after it, where the name and most answers begin.
    pub(crate) fn prefetch_slot(&self, hash: u64) {
        let key_tag = tag_of(hash);
        let bucket = self.bucket_of(hash);
        let held = &self.tags[bucket].0[..WAYS];
        if let Some(way) = held.iter().position(|t| t.load(Ordering::Relaxed) == key_tag) {
            prefetch(self.word(bucket, way, 0));
            prefetch(self.word(bucket, way, 8));
        }
    }

    /// Appends the stored answer for `key` to `out` (which holds header and question), or
    /// leaves `out` as it was and returns `None`.
    pub(crate) fn get(&self, key: &Key, out: &mut Vec<u8>) -> Option<Entry> {
        let tag = key.tag();
        let bucket = self.bucket(key);
        let held = &self.tags[bucket].0[..WAYS];
        for (way, t) in held.iter().enumerate() {
            if t.load(Ordering::Relaxed) == tag
                && let Some(hit) = self.read(bucket, way, key, out)
            {
                return Some(hit);
            }
        }
        None
    }

    /// The answer for `key` starting in slot `way`, appended to `out`, if the slot holds it
    /// and no writer touched it meanwhile. Every writer of any slot an answer spans moves
    /// the sequence number of the slot it starts in, so that one number guards the whole.
    fn read(&self, bucket: usize, way: usize, key: &Key, out: &mut Vec<u8>) -> Option<Entry> {
        let w = |i| self.word(bucket, way, i).load(Ordering::Relaxed);
        let seq = self.word(bucket, way, 0).load(Ordering::Acquire);
        if seq & 1 == 1 || w(1) != key.hash || w(2) != key.zones || w(3) != key.meta {
            return None;
        }
        let head = w(4);
        let lens = w(5);
        let name = w(6);
        let len = usize::try_from(lens >> 8).unwrap_or(usize::MAX);
        let body_words = len.div_ceil(8);
        let mark = out.len();
        // A torn read may show any length: never read past the answer's slots.
        let k = span(key.name_words + body_words)?;
        if !way.is_multiple_of(k) || out.capacity() - mark < len {
            return None;
        }
        if !(0..key.name_words).all(|d| self.data(bucket, way, d).load(Ordering::Relaxed) == key.name[d]) {
            return None;
        }
        let mut left = len;
        for d in key.name_words..key.name_words + body_words {
            let b = self.data(bucket, way, d).load(Ordering::Relaxed).to_le_bytes();
            let n = left.min(8);
            out.extend_from_slice(&b[..n]);
            left -= n;
        }
        fence(Ordering::Acquire);
        if self.word(bucket, way, 0).load(Ordering::Relaxed) != seq {
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

    /// Stores `body` (the octets after the question) for `key`, unless it does not fit four
    /// slots, the question missed for the first time, or another thread is writing where
    /// it would go. `random` picks the slots a full bucket gives up, or the doorkeeper's tag
    /// a first sighting replaces.
    pub(crate) fn put(&self, key: &Key, entry: Entry, body: &[u8], random: u64) {
        let body_words = body.len().div_ceil(8);
        let Some(k) = span(key.name_words + body_words) else {
            TOO_LARGE.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let bucket = self.bucket(key);
        let (held, seen) = self.tags[bucket].0.split_at(WAYS);
        let tag = key.tag();
        if !seen.iter().any(|t| t.load(Ordering::Relaxed) == tag) {
            seen[(random >> 32) as usize % WAYS].store(tag, Ordering::Relaxed);
            FIRST_SIGHTING.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Free slots where the answer fits, else slots at random.
        let free = |a: usize| held[a..a + k].iter().all(|t| t.load(Ordering::Relaxed) == EMPTY);
        let at = (0..WAYS).step_by(k).find(|&a| free(a)).unwrap_or((random as usize % (WAYS / k)) * k);
        // Claim the slots written and the start of any longer answer they may be part of
        // (the aligned pair and four around them): a reader checks only the number of the
        // slot its answer starts in, and every writer of a group of four holds its first,
        // so the group's tags are the writer's alone.
        let mut claims = [(usize::MAX, 0u64); MAX_SPAN + 2];
        let group = at & !(MAX_SPAN - 1);
        let mut n = 0;
        for way in [group, at & !1].into_iter().chain(at..at + k) {
            if claims[..n].iter().any(|c| c.0 == way) {
                continue;
            }
            let seq = self.word(bucket, way, 0);
            let s = seq.load(Ordering::Relaxed);
            if s & 1 == 1 || seq.compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
                self.release(bucket, &claims[..n]);
                BUSY.fetch_add(1, Ordering::Relaxed);
                return; // another writer has it
            }
            claims[n] = (way, s);
            n += 1;
        }
        fence(Ordering::Release);
        // Answers the new one overlaps are given up whole: the slots they span outside it
        // become free, and one starting outside it no longer matches any question.
        let mut evicted = 0;
        let mut way = group;
        while way < group + MAX_SPAN {
            let t = held[way].load(Ordering::Relaxed);
            let mut end = way + 1;
            while end < group + MAX_SPAN && held[end].load(Ordering::Relaxed) == MORE {
                end += 1;
            }
            if t != EMPTY && way < at + k && at < end {
                evicted += u64::from(t != MORE);
                for (v, h) in held.iter().enumerate().take(end).skip(way) {
                    if !(at..at + k).contains(&v) {
                        h.store(EMPTY, Ordering::Relaxed);
                        if t != MORE && v == way {
                            self.word(bucket, v, 3).store(0, Ordering::Relaxed);
                        }
                    }
                }
            }
            way = end;
        }
        let kind = match entry.account.kind {
            Kind::Answer => 0u64,
            Kind::Nxdomain => 1,
            Kind::Error => 2,
        };
        let [an, ns, ar] = entry.counts;
        let head = [
            key.hash,
            key.zones,
            key.meta,
            (u64::from(entry.flags) << 48) | (u64::from(an) << 32) | (u64::from(ns) << 16) | u64::from(ar),
            ((body.len() as u64) << 8) | kind,
            entry.account.name,
        ];
        for (i, v) in head.into_iter().enumerate() {
            self.word(bucket, at, 1 + i).store(v, Ordering::Relaxed);
        }
        for (more, h) in held.iter().enumerate().take(at + k).skip(at + 1) {
            for i in 1..HEAD {
                self.word(bucket, more, i).store(0, Ordering::Relaxed);
            }
            h.store(MORE, Ordering::Relaxed);
        }
        for (d, n) in key.name[..key.name_words].iter().enumerate() {
            self.data(bucket, at, d).store(*n, Ordering::Relaxed);
        }
        for (d, chunk) in body.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.data(bucket, at, key.name_words + d).store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        held[at].store(tag, Ordering::Relaxed);
        self.release(bucket, &claims[..n]);
        INSERTS.fetch_add(1, Ordering::Relaxed);
        if evicted > 0 {
            EVICTIONS.fetch_add(evicted, Ordering::Relaxed);
        }
    }

    /// Moves each claimed slot's sequence number on to the next even one: a reader that
    /// began before sees it changed.
    fn release(&self, bucket: usize, claims: &[(usize, u64)]) {
        for &(way, s) in claims {
            self.word(bucket, way, 0).store(s + 2, Ordering::Release);
        }
    }
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
    fn questions_differing_in_size_or_edns_bits_share_a_tag_and_keep_their_own_answers() {
        let c = ResponseCache::new(0, AnswerConfig::default());
        let name = b"\x03www\x07example\x03com\x00";
        let keys = [
            Key::new(&c, 7, name, 1, 1232, EDNS),
            Key::new(&c, 7, name, 1, 512, 0),
            Key::new(&c, 7, name, 1, 1232, EDNS | DO),
        ];
        assert!(keys.iter().all(|k| k.tag() == keys[0].tag()));
        assert!(keys[1].meta != keys[0].meta && keys[2].meta != keys[0].meta && keys[1].meta != keys[2].meta);
        for (i, k) in keys.iter().enumerate() {
            put2(&c, k, entry(), &[i as u8; 40], i as u64);
        }
        let mut out = Vec::with_capacity(4096);
        for (i, k) in keys.iter().enumerate() {
            out.clear();
            assert_eq!(c.get(k, &mut out), Some(entry()), "key {i}");
            assert_eq!(out, [i as u8; 40], "key {i}");
        }
    }

    #[test]
    fn prefetch_locates_the_bucket_and_tag_the_parsed_question_is_looked_up_by() {
        let c = ResponseCache::new(1 << 20, AnswerConfig::default());
        let mut msg = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01".to_vec();
        msg.extend_from_slice(b"\x03WwW\x07eXample\x03COM\x00\x00\x1c\x00\x01");
        msg.extend_from_slice(b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00");
        let mut req = r53dns_proto::wire::Request::empty();
        r53dns_proto::wire::read_request(&msg, &mut req).unwrap();
        let k = Key::new(&c, 9, req.qname(), req.qtype, 1232, EDNS | DO);
        assert_eq!(c.prefetch(9, &msg), Some(k.hash));
        assert_ne!(c.prefetch(10, &msg), Some(k.hash), "the zone set is part of it");
        put2(&c, &k, entry(), b"answer", 1);
        c.prefetch_slot(k.hash);
        let mut out = Vec::with_capacity(4096);
        assert_eq!(c.get(&k, &mut out), Some(entry()));
        // A request cut inside its question prefetches nothing.
        assert_eq!(c.prefetch(9, &msg[..20]), None);
        assert_eq!(c.prefetch(9, &msg[..30]), None);
    }

    #[test]
    fn a_store_where_another_writer_holds_a_slot_is_given_up_and_counted() {
        let c = ResponseCache::new(0, AnswerConfig::default());
        let k = Key::new(&c, 7, b"\x03www\x07example\x03com\x00", 1, 1232, EDNS);
        put2(&c, &Key::new(&c, 7, b"\x01a\x00", 1, 1232, EDNS), entry(), b"x", 0);
        // Another writer is in the middle of the first slot (the group's head every
        // writer of the group claims).
        c.word(0, 0, 0).fetch_add(1, Ordering::Relaxed);
        let busy = counts().busy;
        put2(&c, &k, entry(), b"answer", 0);
        assert!(counts().busy > busy);
        let mut out = Vec::with_capacity(4096);
        assert_eq!(c.get(&k, &mut out), None);
        c.word(0, 0, 0).fetch_add(1, Ordering::Relaxed);
        put2(&c, &k, entry(), b"answer", 0);
        assert_eq!(c.get(&k, &mut out), Some(entry()));
    }

    #[test]
    fn answers_too_large_for_four_slots_are_not_stored() {
        let c = ResponseCache::new(0, AnswerConfig::default());
        assert_eq!(c.bytes(), BUCKET_BYTES);
        assert_eq!(BUCKET_BYTES, 8 * 256 + 64);
        let k = Key::new(&c, 1, b"\x01a\x00", 1, 512, 0);
        let before = counts().too_large;
        put2(&c, &k, entry(), &[0; MAX_SPAN * DATA * 8], 0);
        assert!(counts().too_large > before);
        let mut out = Vec::with_capacity(4096);
        assert_eq!(c.get(&k, &mut out), None);
        // The largest that fits is stored: 792 octets after a one-word name.
        let fits = (MAX_SPAN * DATA - 1) * 8;
        assert_eq!(fits, 792);
        put2(&c, &k, entry(), &vec![9; fits], 0);
        assert_eq!(c.get(&k, &mut out), Some(entry()));
        assert_eq!(out, vec![9; fits]);
    }

    /// Answers of one, two and four slots taking turns in one bucket: whatever is found is
    /// the answer stored for its question, and the answer just stored is found. (Each round
    /// is a snapshot of its own, so no question is stored twice.)
    #[test]
    fn answers_spanning_slots_replace_each_other_whole() {
        let c = ResponseCache::new(0, AnswerConfig::default());
        let names: Vec<Vec<u8>> = (0..24u8).map(|i| vec![2, b'a' + i, b'0' + i % 10, 0]).collect();
        let mut last: Vec<Option<(u64, Vec<u8>)>> = vec![None; names.len()];
        let mut out = Vec::with_capacity(4096);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut spans = [0usize; MAX_SPAN + 1];
        for round in 0..5000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let i = (x >> 40) as usize % names.len();
            // 1 to 700 octets: one, two or four slots.
            let len = 1 + (x >> 20) as usize % 700;
            let body: Vec<u8> = (0..len).map(|j| (j as u8) ^ (round as u8)).collect();
            let k = Key::new(&c, round, &names[i], 1, 1232, 0);
            spans[span(k.name_words + len.div_ceil(8)).unwrap()] += 1;
            put2(&c, &k, entry(), &body, x);
            out.clear();
            assert_eq!(c.get(&k, &mut out), Some(entry()), "round {round}: just stored");
            assert_eq!(out, body);
            last[i] = Some((round, body));
            let mut held = 0;
            for (name, last) in names.iter().zip(&last) {
                let Some((zones, body)) = last else { continue };
                out.clear();
                if c.get(&Key::new(&c, *zones, name, 1, 1232, 0), &mut out).is_some() {
                    assert_eq!(&out, body, "round {round}: {name:?}");
                    held += 1;
                }
            }
            assert!((1..=WAYS).contains(&held), "{held}");
        }
        assert!(spans[1] > 0 && spans[2] > 0 && spans[4] > 0, "{spans:?}");
    }

    /// A reader that saw a longer answer's tag before a shorter one was written over part
    /// of it finds nothing there, not the old head over the new octets.
    #[test]
    fn an_answer_overwritten_in_part_no_longer_matches() {
        let c = ResponseCache::new(0, AnswerConfig::default());
        let key = |name: &[u8]| Key::new(&c, 1, name, 1, 1232, 0);
        let long = key(b"\x04long\x00");
        put2(&c, &long, entry(), &[7; 300], 0);
        let mut out = Vec::with_capacity(4096);
        assert!(c.read(0, 0, &long, &mut out).is_some(), "two slots from the first");
        for i in 2..WAYS as u8 {
            put2(&c, &key(&[1, b'0' + i, 0]), entry(), b"short", 0);
        }
        // A full bucket: random 1 gives up slot 1, the second half of the long answer.
        put2(&c, &key(b"\x01x\x00"), entry(), b"other", 1);
        assert_eq!(c.tags[0].0[0].load(Ordering::Relaxed), EMPTY);
        out.clear();
        assert_eq!(c.read(0, 0, &long, &mut out), None);
        assert_eq!(c.get(&long, &mut out), None);
        assert!(out.is_empty());
    }

    #[test]
    fn the_budget_bounds_the_table_and_full_buckets_evict() {
        let c = ResponseCache::new(8 * BUCKET_BYTES, AnswerConfig::default());
        let bytes = 8 * BUCKET_BYTES;
        assert_eq!(c.bytes(), bytes);
        let held = 8 * WAYS as u64;
        let before = counts();
        let mut out = Vec::with_capacity(4096);
        for i in 0..1000u32 {
            // Digits: names that differ only in case are one question.
            let name = [&[4u8][..], format!("{i:04}").as_bytes(), &[0]].concat();
            let k = Key::new(&c, 1, &name, 1, 512, 0);
            put2(&c, &k, entry(), &i.to_be_bytes(), u64::from(i));
        }
        let after = counts();
        assert!(after.inserts - before.inserts >= 1000 - held, "{before:?} {after:?}");
        assert!(after.evictions - before.evictions >= 1000 - 2 * held, "{before:?} {after:?}");
        assert_eq!(c.bytes(), bytes, "the table never grows");
        // At most 64 answers are held, and what is found is right.
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
        assert!((1..=held).contains(&found), "{found}");
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
                        // The body of name v is v repeated; its length (one, two or four slots)
                        // depends on v too.
                        let body = vec![v; 100 + usize::from(v) * 90];
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
