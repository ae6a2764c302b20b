//! Zones: RRsets grouped by owner, built once, validated, then never changed.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use thiserror::Error;

use crate::index::{Items, NameIndex, Named};
use crate::name::Name;
use crate::rdata::{rtype, type_to_string};
use crate::routing::{Client, Routed, RoutingContext, Selection};
use crate::zonefile::SourceRecord;

/// RDATA in uncompressed wire form.
pub type Rdata = Box<[u8]>;

/// All records of one owner, type and class (RFC 2181 §5), with the RRSIGs that cover them.
///
/// The RDATA of all records sits in one buffer, each preceded by its length (two octets):
/// one allocation per RRset however many records it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrset {
    rtype: u16,
    count: u16,
    ttl: u32,
    packed: Box<[u8]>,
    sigs: Option<Box<Rrset>>,
}

/// Most records one RRset can hold (no message could carry more).
pub const MAX_RRSET_RECORDS: usize = u16::MAX as usize;

impl Rrset {
    /// A new RRset; duplicate RDATA is collapsed (RFC 2181 §5). RDATA longer than 65 535
    /// octets cannot exist on the wire and records past [`MAX_RRSET_RECORDS`] could not be
    /// sent: both are left out (the zone builder refuses them with an error first).
    pub fn new(rtype: u16, ttl: u32, rdatas: Vec<Rdata>) -> Self {
        let mut uniq: Vec<&[u8]> = Vec::with_capacity(rdatas.len());
        let mut seen = rustc_hash::FxHashSet::default();
        for r in &rdatas {
            let fresh = if rdatas.len() <= LINEAR_DEDUP { !uniq.contains(&&r[..]) } else { seen.insert(&r[..]) };
            if fresh && r.len() <= usize::from(u16::MAX) && uniq.len() < MAX_RRSET_RECORDS {
                uniq.push(r);
            }
        }
        Self::packed(rtype, ttl, &uniq)
    }

    /// Packs RDATA already known to be distinct, each at most 65 535 octets, at most
    /// [`MAX_RRSET_RECORDS`] of them (the zone builder checks all three as records arrive).
    fn packed(rtype: u16, ttl: u32, rdatas: &[impl AsRef<[u8]>]) -> Self {
        let mut packed = Vec::with_capacity(rdatas.iter().map(|r| r.as_ref().len() + 2).sum());
        for r in rdatas.iter().take(MAX_RRSET_RECORDS) {
            let r = r.as_ref();
            packed.extend_from_slice(&(r.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
            packed.extend_from_slice(&r[..r.len().min(usize::from(u16::MAX))]);
        }
        let count = rdatas.len().min(MAX_RRSET_RECORDS) as u16;
        Self { rtype, count, ttl, packed: packed.into(), sigs: None }
    }

    /// The type code.
    pub fn rtype(&self) -> u16 {
        self.rtype
    }

    /// The TTL shared by every record of the set.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Each record's RDATA, in zone order.
    pub fn rdatas(&self) -> Rdatas<'_> {
        Rdatas { rest: &self.packed, left: self.count }
    }

    /// The RRSIG records covering this set, if the zone is signed.
    pub fn sigs(&self) -> Option<&Rrset> {
        self.sigs.as_deref()
    }

    /// The same records with another TTL, and so their RRSIGs too: an RRSIG's TTL must be
    /// the TTL of the RRset it covers (RFC 4034 §3), as in the negative answer's SOA.
    fn with_ttl(&self, ttl: u32) -> Self {
        let sigs = self.sigs.as_ref().map(|s| Box::new(s.with_ttl(ttl)));
        Self { ttl, sigs, ..self.clone() }
    }
}

/// The RDATA of an RRset's records, in order (uncompressed wire form).
#[derive(Debug, Clone)]
pub struct Rdatas<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Rdatas<'a> {
    /// Number of records.
    pub fn len(&self) -> usize {
        usize::from(self.left)
    }

    /// Whether there are none (an alias that does not resolve yet).
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The first record's RDATA.
    pub fn first(&self) -> Option<&'a [u8]> {
        self.clone().next()
    }

    /// The records, as an iterator (same as `into_iter`).
    pub fn iter(&self) -> Self {
        self.clone()
    }
}

impl<'a> Iterator for Rdatas<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (len, body) = self.rest.split_first_chunk::<2>()?;
        let (rd, rest) = body.split_at_checked(usize::from(u16::from_be_bytes(*len)))?;
        self.rest = rest;
        self.left -= 1;
        Some(rd)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl ExactSizeIterator for Rdatas<'_> {}

/// One owner name and its RRsets.
#[derive(Debug, Clone)]
pub struct Node {
    name: Name,
    rrsets: Box<[Rrset]>,
    routed: Box<[Routed]>,
    cut: bool,
    /// Nodes one label below this one (empty non-terminals included): a node that has
    /// none and no data of its own does not exist.
    children: u32,
}

impl Node {
    /// The owner name as written in the zone (case preserved).
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The RRsets, in the order their types first appeared in the source.
    pub fn rrsets(&self) -> &[Rrset] {
        &self.rrsets
    }

    /// The RRset of `rtype`, if any.
    pub fn get(&self, rtype: u16) -> Option<&Rrset> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }

    /// Whether this is a zone cut: NS below the apex (RFC 1034 §4.2.1).
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// An empty non-terminal: exists only because names below it do (RFC 8020).
    pub fn is_empty(&self) -> bool {
        self.rrsets.is_empty() && self.routed.is_empty()
    }

    /// Routed groups (Route53 records with set identifiers), one per type.
    pub fn routed(&self) -> &[Routed] {
        &self.routed
    }

    /// Whether any data of `rtype` exists here, plain or routed.
    pub fn has(&self, rtype: u16) -> bool {
        self.get(rtype).is_some() || self.routed.iter().any(|r| r.rtype == rtype)
    }

    /// Whether the answer for `rtype` here depends on the client's address (an IP-based
    /// routed group and no plain RRset).
    pub fn routes_by_client(&self, rtype: u16) -> bool {
        self.get(rtype).is_none()
            && self.routed.iter().any(|r| r.rtype == rtype && r.policy == crate::routing::Policy::IpBased)
    }

    /// The RRsets of `rtype` to answer with: the plain RRset, or the members a routing policy
    /// chooses for this client. Empty when there is none (or a policy chooses none).
    pub fn select(&self, rtype: u16, ctx: &RoutingContext, client: Client) -> Selection<'_> {
        if let Some(rr) = self.get(rtype) {
            let mut s = Selection::new();
            s.push(rr);
            return s;
        }
        match self.routed.iter().find(|r| r.rtype == rtype) {
            Some(r) => r.select(ctx, client),
            None => Selection::new(),
        }
    }
}

impl Named for Node {
    fn wire(&self) -> &[u8] {
        self.name.wire()
    }
}

/// Records a node holds, as the builder counts them (RRSIGs included, each routed member at
/// least one).
fn node_records(node: &Node) -> usize {
    let plain: usize = node.rrsets.iter().map(|r| r.rdatas().len() + r.sigs().map_or(0, |s| s.rdatas().len())).sum();
    plain + node.routed.iter().flat_map(|g| g.members.iter()).map(|m| m.rrset.rdatas().len().max(1)).sum::<usize>()
}

/// Nodes per chunk of a zone's node storage.
const CHUNK_BITS: usize = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

/// A zone's nodes by position, in chunks of [`CHUNK`] shared between versions of a zone: a
/// patched version copies the chunks it changes and shares the others.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nodes {
    chunks: Vec<Arc<[Node]>>,
    len: usize,
}

impl Nodes {
    #[inline]
    fn get(&self, i: usize) -> Option<&Node> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Node> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The chunk holding position `i`, copied first if another version shares it.
    fn chunk_mut(&mut self, i: usize) -> Option<&mut [Node]> {
        let c = self.chunks.get_mut(i >> CHUNK_BITS)?;
        if Arc::get_mut(c).is_none() {
            *c = c.iter().cloned().collect();
        }
        Arc::get_mut(c)
    }

    fn set(&mut self, i: usize, node: Node) {
        if let Some(slot) = self.chunk_mut(i).and_then(|c| c.get_mut(i & (CHUNK - 1))) {
            *slot = node;
        }
    }

    fn node_mut(&mut self, i: usize) -> Option<&mut Node> {
        self.chunk_mut(i)?.get_mut(i & (CHUNK - 1))
    }

    fn push(&mut self, node: Node) {
        match self.chunks.last_mut().filter(|c| c.len() < CHUNK) {
            Some(last) => *last = last.iter().cloned().chain([node]).collect(),
            None => self.chunks.push(Arc::from([node])),
        }
        self.len += 1;
    }

    /// Takes the last node off.
    fn pop(&mut self) -> Option<Node> {
        let last = self.chunks.pop()?;
        let mut v: Vec<Node> = last.iter().cloned().collect();
        let node = v.pop();
        if !v.is_empty() {
            self.chunks.push(v.into());
        }
        self.len -= 1;
        node
    }
}

impl Items for Nodes {
    #[inline]
    fn wire_at(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(|n| n.name.wire())
    }
}

/// Where a zone's data came from; shown by operators' tools and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An RFC 1035 file.
    File(std::path::PathBuf),
    /// Built in code (tests, other sources).
    Other(String),
}

/// An immutable, validated zone.
#[derive(Debug, Clone)]
pub struct Zone {
    apex: Name,
    /// Every node once, in the order owners first appeared in the source, empty
    /// non-terminals last (a patched version keeps the positions of the nodes it shares);
    /// found by name through `index`.
    nodes: Nodes,
    index: NameIndex,
    apex_at: usize,
    /// The apex node (a copy of the one at `apex_at`), always at hand.
    apex_node: Node,
    serial: u32,
    negative_ttl: u32,
    /// The apex SOA with the negative-answer TTL, ready for authority sections.
    negative_soa: Rrset,
    /// Position of the node named by each apex NS target, in RDATA order (`None`: not in
    /// this zone): the addresses of positive answers' additional section without a name
    /// lookup per query.
    apex_ns_targets: Box<[Option<usize>]>,
    /// Owners of NSEC records in canonical order (RFC 4034 §6.1), for denial of existence.
    nsec_chain: Box<[NsecOwner]>,
    /// The NSEC3 chain, when the zone is signed with NSEC3.
    nsec3: Option<crate::nsec3::Chain>,
    records: usize,
    source: Source,
}

impl Zone {
    /// The apex (origin) name, case preserved.
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Number of resource records, RRSIGs included.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// Where the data came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// TTL of negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
    pub fn negative_ttl(&self) -> u32 {
        self.negative_ttl
    }

    /// The SOA to put in the authority section of negative answers (TTL = negative TTL).
    pub fn negative_soa(&self) -> &Rrset {
        &self.negative_soa
    }

    /// The node named by the `k`th target of the apex NS RRset, found when the zone was built.
    pub(crate) fn apex_ns_target(&self, k: usize) -> Option<&Node> {
        self.nodes.get((*self.apex_ns_targets.get(k)?)?)
    }

    /// Finds the apex NS targets' nodes (see `apex_ns_targets`).
    fn with_apex_ns_targets(mut self) -> Self {
        let targets = self.apex_node.get(rtype::NS).map(|ns| {
            ns.rdatas()
                .map(|rd| {
                    let target = crate::rdata::target_name(rtype::NS, rd)?;
                    self.index.find(&self.nodes, target)
                })
                .collect()
        });
        self.apex_ns_targets = targets.unwrap_or_default();
        self
    }

    /// Whether the zone carries an NSEC chain (pre-signed with NSEC).
    pub fn has_nsec(&self) -> bool {
        !self.nsec_chain.is_empty()
    }

    /// The node whose NSEC covers or matches `lower_wire`: the last NSEC owner at or before it
    /// in canonical order (wrapping to the last one). Allocates the sort key: only used for
    /// DNSSEC denial of existence.
    pub fn nsec_covering(&self, lower_wire: &[u8]) -> Option<&Node> {
        if self.nsec_chain.is_empty() {
            return None;
        }
        let key = canonical_key(lower_wire);
        let i = match self.nsec_chain.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => i,
            Err(0) => self.nsec_chain.len() - 1,
            Err(i) => i - 1,
        };
        self.nodes.get(self.nsec_chain[i].1)
    }

    /// The NSEC3 chain of a zone signed with NSEC3.
    pub(crate) fn nsec3(&self) -> Option<&crate::nsec3::Chain> {
        self.nsec3.as_ref()
    }

    /// The node at an index the NSEC3 chain gave.
    pub(crate) fn node_at(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i)
    }

    /// The apex node (holds SOA and NS; checked in [`ZoneBuilder::finish`]).
    pub fn apex_node(&self) -> &Node {
        // `finish` only builds a zone whose apex node exists.
        &self.apex_node
    }

    /// The node with this wire name (compared ASCII case-insensitively).
    pub fn node(&self, wire: &[u8]) -> Option<&Node> {
        let i = self.index.find(&self.nodes, wire)?;
        self.nodes.get(i)
    }

    /// Every node: owners in the order they first appeared, then empty non-terminals.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter()
    }

    /// The nodes in their chunks: a chunk two versions of a zone share holds the same nodes
    /// at the same positions in both.
    pub(crate) fn node_chunks(&self) -> &[Arc<[Node]>] {
        &self.nodes.chunks
    }

    /// Nodes sorted in canonical order (RFC 4034 §6.1), apex first.
    pub fn sorted_nodes(&self) -> Vec<&Node> {
        let mut v: Vec<&Node> = self.nodes.iter().collect();
        v.sort_by_cached_key(|n| canonical_key(n.name.wire()));
        v
    }

    /// The zone in master-file form, canonical order, one record per line. Routed groups
    /// are written as the records a default client gets (no address, first random draw,
    /// no home region), the other members commented out, so BIND can load the result.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let line = |s: &mut String, prefix: &str, name: &Name, rr: &Rrset, rd: &[u8], note: &str| {
            let _ = writeln!(
                s,
                "{prefix}{} {} IN {} {}{note}",
                name,
                rr.ttl,
                type_to_string(rr.rtype),
                crate::rdata::rdata_to_text(rr.rtype, rd)
            );
        };
        for node in self.sorted_nodes() {
            for rr in node.rrsets.iter() {
                if rr.rdatas().is_empty() {
                    let _ = writeln!(
                        s,
                        "; {} {} unresolved alias (SERVFAIL until it resolves)",
                        node.name,
                        type_to_string(rr.rtype)
                    );
                }
                for rd in rr.rdatas() {
                    line(&mut s, "", &node.name, rr, rd, "");
                }
                if let Some(sigs) = &rr.sigs {
                    for rd in sigs.rdatas() {
                        line(&mut s, "", &node.name, sigs, rd, "");
                    }
                }
            }
            for group in node.routed.iter() {
                let chosen = group.select(&RoutingContext::default(), Client::default());
                for m in group.members.iter() {
                    let picked = chosen.iter().any(|c| std::ptr::eq(*c, &m.rrset));
                    let health = if m.healthy { "" } else { ", unhealthy" };
                    let note = format!(" ; {} set \"{}\" {}{health}", group.policy, m.id, m.rule);
                    if m.rrset.rdatas().is_empty() {
                        let _ = writeln!(s, "; {} {} unresolved alias{note}", node.name, type_to_string(group.rtype));
                    }
                    for rd in m.rrset.rdatas() {
                        line(&mut s, if picked { "" } else { "; " }, &node.name, &m.rrset, rd, &note);
                    }
                }
            }
        }
        s
    }
}

/// An NSEC owner: its canonical sort key and its node's position.
type NsecOwner = (Vec<Vec<u8>>, usize);

/// Canonical ordering key: labels reversed, lower-cased.
fn canonical_key(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut labels: Vec<Vec<u8>> =
        crate::name::label_offsets(wire).map(|o| wire[o + 1..o + 1 + wire[o] as usize].to_ascii_lowercase()).collect();
    labels.reverse();
    labels
}

/// Why records could not become a zone.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ZoneError {
    /// A record owned by a name outside the zone.
    #[error("{at}{owner} is outside the zone {apex}")]
    OutOfZone {
        /// Where the record was read, `file:line: ` or empty.
        at: String,
        /// The record's owner.
        owner: String,
        /// The zone apex.
        apex: String,
    },
    /// No SOA at the apex, or more than one.
    #[error("zone {0}: needs exactly one SOA record at the apex")]
    Soa(String),
    /// An SOA below the apex.
    #[error("{at}SOA at {owner} is not at the zone apex {apex}")]
    SoaNotAtApex {
        /// Where the record was read.
        at: String,
        /// The record's owner.
        owner: String,
        /// The zone apex.
        apex: String,
    },
    /// No NS at the apex.
    #[error("zone {0}: no NS records at the apex")]
    NoApexNs(String),
    /// CNAME beside other data, or several CNAMEs (RFC 2181 §10.1).
    #[error("{at}CNAME at {owner} cannot coexist with other data ({other})")]
    CnameConflict {
        /// Where the record was read.
        at: String,
        /// The owner.
        owner: String,
        /// The other type found.
        other: String,
    },
    /// A DNAME together with a CNAME, or more than one DNAME (RFC 6672 §2.4).
    #[error("{at}more than one DNAME, or DNAME beside CNAME, at {owner}")]
    DnameConflict {
        /// Where the record was read.
        at: String,
        /// The owner.
        owner: String,
    },
    /// Plain and routed records of one type at one name, or two routed groups of one type.
    #[error("{at}{owner} {rtype}: records with and without routing policy cannot be mixed")]
    MixedRouting {
        /// Where the record was read.
        at: String,
        /// The owner.
        owner: String,
        /// The type.
        rtype: String,
    },
    /// More records in one RRset than a message could ever carry.
    #[error("{at}{owner} {rtype}: more than 65535 records in one RRset")]
    TooManyRecords {
        /// Where the record was read.
        at: String,
        /// The owner.
        owner: String,
        /// The type.
        rtype: String,
    },
    /// A type that cannot be stored in a zone.
    #[error("{at}type {rtype} cannot be served from a zone")]
    BadType {
        /// Where the record was read.
        at: String,
        /// The type.
        rtype: String,
    },
}

/// Where a record came from, for errors: text given by the caller (`"file:line: "` or
/// empty), or a zone file's name and line, written out only when an error or a warning
/// needs it.
#[derive(Debug, Clone, Copy)]
enum At<'a> {
    Text(&'a str),
    Line(&'a Arc<std::path::Path>, usize),
}

impl At<'_> {
    fn text(self) -> String {
        match self {
            At::Text(t) => t.to_owned(),
            At::Line(file, line) => format!("{}:{line}: ", file.display()),
        }
    }

    /// Kept for a set whose place an error at [`ZoneBuilder::finish`] may name; `None` for
    /// no place at all.
    fn keep(self) -> Option<Place> {
        match self {
            At::Text("") => None,
            At::Text(t) => Some(Place::Text(t.into())),
            At::Line(file, line) => Some(Place::Line(file.clone(), line)),
        }
    }
}

/// An [`At`] kept beyond the call.
#[derive(Debug)]
enum Place {
    Text(Box<str>),
    Line(Arc<std::path::Path>, usize),
}

impl Place {
    fn text(place: Option<&Place>) -> String {
        match place {
            None => String::new(),
            Some(Place::Text(t)) => t.to_string(),
            Some(Place::Line(file, line)) => At::Line(file, *line).text(),
        }
    }
}

/// A set grown past [`LINEAR_DEDUP`] records: the RDATA it holds, for finding duplicates,
/// and how much of its buffer is used.
#[derive(Debug, Default)]
struct BigSet {
    seen: rustc_hash::FxHashSet<Rdata>,
    used: usize,
}

/// Sets up to this size look for duplicates by comparing; bigger ones through a hash set.
const LINEAR_DEDUP: usize = 32;

/// Where a set sits while the zone is built: its node's position and its own among the
/// node's RRsets.
type SetAt = (u32, u32);

/// The nodes of a zone being built, at the positions they keep in the zone: chunks already
/// in the zone's shared form and the last one still filling. Records go straight into the
/// RRsets they are served from, so building a zone holds one copy of its data.
#[derive(Debug, Default)]
struct Growing {
    full: Vec<Arc<[Node]>>,
    tail: Vec<Node>,
}

impl Growing {
    fn len(&self) -> usize {
        self.full.len() * CHUNK + self.tail.len()
    }

    fn get(&self, i: usize) -> Option<&Node> {
        match self.full.get(i >> CHUNK_BITS) {
            Some(c) => c.get(i & (CHUNK - 1)),
            None if i >> CHUNK_BITS == self.full.len() => self.tail.get(i & (CHUNK - 1)),
            None => None,
        }
    }

    /// The node at `i`; a chunk is shared with nothing before the zone is finished.
    fn get_mut(&mut self, i: usize) -> Option<&mut Node> {
        let full = self.full.len();
        match self.full.get_mut(i >> CHUNK_BITS) {
            Some(c) => Arc::get_mut(c)?.get_mut(i & (CHUNK - 1)),
            None if i >> CHUNK_BITS == full => self.tail.get_mut(i & (CHUNK - 1)),
            None => None,
        }
    }

    fn push(&mut self, node: Node) {
        // The first chunk grows as a vector does, so a small zone stays small; the others
        // are sized at once, in the room the previous one just left.
        if self.tail.capacity() == 0 && !self.full.is_empty() {
            self.tail.reserve_exact(CHUNK);
        }
        self.tail.push(node);
        if self.tail.len() == CHUNK {
            let chunk = std::mem::take(&mut self.tail);
            self.full.push(chunk.into());
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Node> {
        self.full.iter().flat_map(|c| c.iter()).chain(self.tail.iter())
    }

    fn into_nodes(self) -> Nodes {
        let len = self.len();
        let mut chunks = self.full;
        if !self.tail.is_empty() {
            chunks.push(self.tail.into());
        }
        Nodes { chunks, len }
    }
}

impl Items for Growing {
    #[inline]
    fn wire_at(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(|n| n.name.wire())
    }
}

impl Rrset {
    /// While building: whether `rd` is among the records, and the octets they take (the
    /// buffer may have room for more after them).
    fn scan(&self, rd: &[u8]) -> (bool, usize) {
        let mut it = self.rdatas();
        let found = it.by_ref().any(|r| r == rd);
        // The records after the one found.
        it.by_ref().for_each(drop);
        (found, self.packed.len() - it.rest.len())
    }

    /// While building: appends `rd` after the `used` octets of the records, growing the
    /// buffer by doubling so a big set is not copied once per record.
    fn append(&mut self, used: usize, rd: &[u8]) {
        let rd = &rd[..rd.len().min(usize::from(u16::MAX))];
        let end = used + 2 + rd.len();
        if end > self.packed.len() {
            let mut v = std::mem::take(&mut self.packed).into_vec();
            let size = end.max(2 * v.len());
            v.reserve_exact(size - v.len());
            v.resize(size, 0);
            self.packed = v.into_boxed_slice();
        }
        self.packed[used..used + 2].copy_from_slice(&(rd.len() as u16).to_be_bytes());
        self.packed[used + 2..end].copy_from_slice(rd);
        self.count += 1;
    }

    /// Gives back the room a grown set kept for more records.
    fn trim(&mut self) {
        let mut it = self.rdatas();
        it.by_ref().for_each(drop);
        let used = self.packed.len() - it.rest.len();
        if used < self.packed.len() {
            let mut v = std::mem::take(&mut self.packed).into_vec();
            v.truncate(used);
            self.packed = v.into_boxed_slice();
        }
    }
}

/// Collects records and checks the zone's invariants before it can be served.
///
/// Records go straight into the nodes and RRsets the zone serves from, at their final
/// positions; what only the build needs beside them is small: where each CNAME and DNAME
/// set came from (for conflicts found at [`finish`](Self::finish)), and a hash of the
/// RDATA of sets past a few dozen records.
#[derive(Debug)]
pub struct ZoneBuilder {
    apex: Name,
    source: Source,
    /// Owners as first given, with their RRsets in first-seen order (RRSIGs one set per
    /// type covered, attached at `finish`).
    nodes: Growing,
    index: NameIndex,
    /// Routed groups by position in `nodes`.
    routed: FxHashMap<usize, Vec<Routed>>,
    /// Where each CNAME and DNAME set's first record came from.
    places: FxHashMap<SetAt, Place>,
    big: FxHashMap<SetAt, BigSet>,
    records: usize,
    warnings: Vec<String>,
}

impl ZoneBuilder {
    /// An empty zone rooted at `apex`.
    pub fn new(apex: Name, source: Source) -> Self {
        Self {
            apex,
            source,
            nodes: Growing::default(),
            index: NameIndex::default(),
            routed: FxHashMap::default(),
            places: FxHashMap::default(),
            big: FxHashMap::default(),
            records: 0,
            warnings: Vec::new(),
        }
    }

    /// The apex being built.
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// Adds one record. `at` says where it came from (`"file:line: "` or `""`) for errors.
    pub fn add(&mut self, owner: &Name, rtype: u16, ttl: u32, rdata: Rdata, at: &str) -> Result<(), ZoneError> {
        self.insert(owner, rtype, ttl, &rdata, At::Text(at))
    }

    /// Adds one record read from a zone file; errors and warnings name its file and line
    /// (`file:line: `), as [`add`](Self::add) with that text would.
    pub fn add_record(&mut self, record: &SourceRecord) -> Result<(), ZoneError> {
        let at = At::Line(&record.file, record.line);
        self.insert(&record.owner, record.rtype, record.ttl, &record.rdata, at)
    }

    fn insert(&mut self, owner: &Name, rtype: u16, ttl: u32, rdata: &[u8], at: At<'_>) -> Result<(), ZoneError> {
        if !owner.is_subdomain_of(&self.apex) {
            return Err(ZoneError::OutOfZone { at: at.text(), owner: owner.to_text(), apex: self.apex.to_text() });
        }
        if crate::rdata::is_meta_type(rtype) || rtype == 0 {
            return Err(ZoneError::BadType { at: at.text(), rtype: type_to_string(rtype) });
        }
        if rtype == rtype::SOA && !owner.wire().eq_ignore_ascii_case(self.apex.wire()) {
            return Err(ZoneError::SoaNotAtApex { at: at.text(), owner: owner.to_text(), apex: self.apex.to_text() });
        }
        let i = self.node_at(owner);
        let Some(node) = self.nodes.get_mut(i) else { return Ok(()) };
        // RRSIGs are grouped by the type they cover: each group has its own TTL (RFC 4034
        // §3: the RRSIG TTL equals the covered RRset's) and travels with that RRset.
        let same_set = |s: &Rrset| {
            s.rtype == rtype && (rtype != rtype::RRSIG || s.rdatas().first().map(covered) == Some(covered(rdata)))
        };
        let Some(k) = node.rrsets.iter().position(same_set) else {
            let k = node.rrsets.len();
            let mut sets = std::mem::take(&mut node.rrsets).into_vec();
            sets.reserve_exact(1);
            sets.push(Rrset::packed(rtype, ttl, &[rdata]));
            node.rrsets = sets.into_boxed_slice();
            if matches!(rtype, rtype::CNAME | rtype::DNAME)
                && let Some(place) = at.keep()
            {
                self.places.insert((i as u32, k as u32), place);
            }
            self.records += 1;
            return Ok(());
        };
        let set = &mut node.rrsets[k];
        if set.ttl != ttl && rtype != rtype::RRSIG {
            // RFC 2181 §5.2: one TTL per RRset; keep the first, as BIND does.
            self.warnings.push(format!(
                "{}TTL {ttl} of {} {} differs from the RRset's TTL {}; using {}",
                at.text(),
                owner,
                type_to_string(rtype),
                set.ttl,
                set.ttl
            ));
        }
        let key = (i as u32, k as u32);
        let (duplicate, used) = match self.big.get(&key) {
            Some(big) => (big.seen.contains(rdata), big.used),
            None => set.scan(rdata),
        };
        if duplicate {
            return Ok(());
        }
        if set.rdatas().len() >= MAX_RRSET_RECORDS {
            return Err(ZoneError::TooManyRecords {
                at: at.text(),
                owner: owner.to_text(),
                rtype: type_to_string(rtype),
            });
        }
        set.append(used, rdata);
        if set.rdatas().len() > LINEAR_DEDUP || self.big.contains_key(&key) {
            let big = self
                .big
                .entry(key)
                .or_insert_with(|| BigSet { seen: set.rdatas().map(Rdata::from).collect(), used: 0 });
            big.seen.insert(rdata.into());
            big.used = used + 2 + rdata.len().min(usize::from(u16::MAX));
        }
        self.records += 1;
        Ok(())
    }

    /// Declares data of `rtype` at `owner` that exists but cannot be served now (an alias
    /// whose target is not resolved yet): questions for it get SERVFAIL.
    pub fn add_unresolved(&mut self, owner: &Name, rtype: u16, ttl: u32) -> Result<(), ZoneError> {
        if !owner.is_subdomain_of(&self.apex) {
            return Err(ZoneError::OutOfZone { at: String::new(), owner: owner.to_text(), apex: self.apex.to_text() });
        }
        let i = self.node_at(owner);
        if let Some(node) = self.nodes.get_mut(i)
            && !node.rrsets.iter().any(|s| s.rtype == rtype)
        {
            let mut sets = std::mem::take(&mut node.rrsets).into_vec();
            sets.reserve_exact(1);
            sets.push(Rrset::packed(rtype, ttl, &[] as &[&[u8]]));
            node.rrsets = sets.into_boxed_slice();
        }
        Ok(())
    }

    /// Adds a routed group (records with set identifiers) at `owner`. One group per name and
    /// type; a type cannot be both plain and routed at a name.
    pub fn add_routed(&mut self, owner: &Name, routed: Routed, at: &str) -> Result<(), ZoneError> {
        if !owner.is_subdomain_of(&self.apex) {
            return Err(ZoneError::OutOfZone { at: at.into(), owner: owner.to_text(), apex: self.apex.to_text() });
        }
        let i = self.node_at(owner);
        let groups = self.routed.entry(i).or_default();
        if groups.iter().any(|g| g.rtype == routed.rtype) {
            return Err(ZoneError::MixedRouting {
                at: at.into(),
                owner: owner.to_text(),
                rtype: type_to_string(routed.rtype),
            });
        }
        self.records += routed.members.iter().map(|m| m.rrset.rdatas().len().max(1)).sum::<usize>();
        groups.push(routed);
        Ok(())
    }

    /// Makes room for about `records` more records (one name each at most), so the index
    /// does not grow step by step.
    pub fn reserve(&mut self, records: usize) {
        self.index.reserve(&self.nodes, records);
    }

    /// The position of `owner`'s node, added if new.
    fn node_at(&mut self, owner: &Name) -> usize {
        match self.index.find(&self.nodes, owner.wire()) {
            Some(i) => i,
            None => {
                let i = self.nodes.len();
                self.nodes.push(Node {
                    name: owner.clone(),
                    rrsets: Box::new([]),
                    routed: Box::new([]),
                    cut: false,
                    children: 0,
                });
                self.index.insert(&self.nodes, owner.wire(), i);
                i
            }
        }
    }

    /// Problems that did not stop the build (e.g. TTL mismatches inside an RRset).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Validates and freezes the zone: exactly one SOA at the apex, NS at the apex, no CNAME
    /// beside other data, at most one DNAME per name. Adds empty non-terminals.
    pub fn finish(self) -> Result<(Zone, Vec<String>), ZoneError> {
        let ZoneBuilder { apex, source, mut nodes, mut index, routed: mut routed_all, places, big, records, warnings } =
            self;
        drop(big);
        let apex_text = apex.to_text();
        let mut serial = 0;
        let mut negative_ttl = 0;
        for i in 0..nodes.len() {
            let Some(node) = nodes.get_mut(i) else { continue };
            let name = &node.name;
            let sets = &node.rrsets;
            let routed: Vec<Routed> = routed_all.remove(&i).unwrap_or_default();
            for group in &routed {
                if sets.iter().any(|s| s.rtype == group.rtype) {
                    return Err(ZoneError::MixedRouting {
                        at: String::new(),
                        owner: name.to_text(),
                        rtype: type_to_string(group.rtype),
                    });
                }
                let cname_beside = (group.rtype == rtype::CNAME && (!sets.is_empty() || routed.len() > 1))
                    || (group.rtype != rtype::CNAME
                        && (sets.iter().any(|s| s.rtype == rtype::CNAME)
                            || routed.iter().any(|g| g.rtype == rtype::CNAME)));
                if cname_beside {
                    return Err(ZoneError::CnameConflict {
                        at: String::new(),
                        owner: name.to_text(),
                        other: type_to_string(group.rtype),
                    });
                }
            }
            for (k, set) in sets.iter().enumerate() {
                let (t, count) = (set.rtype, set.rdatas().len());
                let at = || Place::text(places.get(&(i as u32, k as u32)));
                let mut others = sets.iter().filter(|s| !matches!(s.rtype, rtype::CNAME | rtype::RRSIG | rtype::NSEC));
                if t == rtype::CNAME {
                    if let Some(other) = others.next() {
                        return Err(ZoneError::CnameConflict {
                            at: at(),
                            owner: name.to_text(),
                            other: type_to_string(other.rtype),
                        });
                    }
                    if count > 1 {
                        return Err(ZoneError::CnameConflict {
                            at: at(),
                            owner: name.to_text(),
                            other: "CNAME".into(),
                        });
                    }
                }
                let beside_cname = sets.iter().any(|s| s.rtype == rtype::CNAME);
                if t == rtype::DNAME && (count > 1 || beside_cname) {
                    return Err(ZoneError::DnameConflict { at: at(), owner: name.to_text() });
                }
                if t == rtype::SOA {
                    let timers = if count == 1 { set.rdatas().first().and_then(soa_timers) } else { None };
                    let Some((soa_serial, minimum)) = timers else {
                        return Err(ZoneError::Soa(apex_text.clone()));
                    };
                    serial = soa_serial;
                    negative_ttl = set.ttl.min(minimum);
                }
            }
            let is_apex = name.wire().eq_ignore_ascii_case(apex.wire());
            node.cut = !is_apex && sets.iter().any(|s| s.rtype == rtype::NS);
            node.routed = routed.into();
            for set in node.rrsets.iter_mut().filter(|s| s.rdatas().len() > 1) {
                set.trim();
            }
            if node.rrsets.iter().any(|s| s.rtype == rtype::RRSIG) {
                let mut sets = std::mem::take(&mut node.rrsets).into_vec();
                attach_sigs(&mut sets);
                node.rrsets = sets.into_boxed_slice();
            }
        }
        drop(places);
        // The builder's index holds the nodes' positions: they do not move.
        let apex_at = index.find(&nodes, apex.wire()).ok_or_else(|| ZoneError::Soa(apex_text.clone()))?;
        let Some(apex_node) = nodes.get(apex_at) else {
            return Err(ZoneError::Soa(apex_text));
        };
        let Some(soa) = apex_node.get(rtype::SOA) else {
            return Err(ZoneError::Soa(apex_text));
        };
        let negative_soa = soa.with_ttl(negative_ttl);
        if apex_node.get(rtype::NS).is_none() {
            return Err(ZoneError::NoApexNs(apex_text));
        }
        // Empty non-terminals (RFC 4592 §2.2.2): every ancestor up to the apex exists. Each
        // node below the apex counts as a child of its parent, added ones included.
        let mut o = 0;
        while o < nodes.len() {
            if o != apex_at
                && let Some(name) = nodes.get(o).map(|n| n.name.wire())
            {
                match index.find(&nodes, parent_wire(name)) {
                    Some(p) => {
                        if let Some(parent) = nodes.get_mut(p) {
                            parent.children += 1;
                        }
                    }
                    None => {
                        if let Some(p) = nodes.get(o).and_then(|n| n.name.parent()) {
                            let at = nodes.len();
                            nodes.push(Node {
                                name: p,
                                rrsets: Box::new([]),
                                routed: Box::new([]),
                                cut: false,
                                children: 1,
                            });
                            if let Some(wire) = nodes.get(at).map(|n| n.name.wire()) {
                                index.insert(&nodes, wire, at);
                            }
                        }
                    }
                }
            }
            o += 1;
        }
        index.shrink(&nodes);
        let mut nsec_chain: Vec<NsecOwner> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.get(rtype::NSEC).is_some())
            .map(|(i, n)| (canonical_key(n.name.wire()), i))
            .collect();
        nsec_chain.sort();
        let nodes = nodes.into_nodes();
        let Some(apex_node) = nodes.get(apex_at).cloned() else {
            return Err(ZoneError::Soa(apex_text));
        };
        let nsec3 = crate::nsec3::Chain::build(&apex_node, &nodes);
        let zone = Zone {
            apex,
            nodes,
            index,
            apex_at,
            apex_node,
            serial,
            negative_ttl,
            negative_soa,
            apex_ns_targets: Box::new([]),
            nsec_chain: nsec_chain.into(),
            nsec3,
            records,
            source,
        }
        .with_apex_ns_targets();
        Ok((zone, warnings))
    }
}

/// The wire form of a name's parent (the root's is empty).
fn parent_wire(wire: &[u8]) -> &[u8] {
    wire.first().and_then(|&l| wire.get(1 + usize::from(l)..)).unwrap_or_default()
}

/// Whether a node holds DNSSEC data whose chains a patch would have to rebuild.
fn signed(node: &Node) -> bool {
    node.rrsets.iter().any(|r| matches!(r.rtype, rtype::NSEC | rtype::NSEC3 | rtype::NSEC3PARAM | rtype::RRSIG))
}

/// Nodes and index of a zone being patched.
struct Patch {
    nodes: Nodes,
    index: NameIndex,
    apex_at: usize,
}

impl Patch {
    /// Adds a node that is not there, and the empty non-terminals above it that are not.
    fn add(&mut self, node: Node) {
        let mut node = node;
        loop {
            let at = self.nodes.len;
            let wire: Box<[u8]> = node.name.wire().into();
            let parent = node.name.parent();
            self.nodes.push(node);
            self.index.insert(&self.nodes, &wire, at);
            let Some(parent) = parent else { return };
            match self.index.find(&self.nodes, parent.wire()) {
                Some(p) => {
                    if let Some(n) = self.nodes.node_mut(p) {
                        n.children += 1;
                    }
                    return;
                }
                None => {
                    node = Node { name: parent, rrsets: Box::new([]), routed: Box::new([]), cut: false, children: 1 };
                }
            }
        }
    }

    /// Removes the node at `i` (it has no children), and the empty non-terminals above it
    /// left without any.
    fn remove(&mut self, i: usize) {
        let mut i = i;
        loop {
            let Some(node) = self.nodes.get(i) else { return };
            let wire: Box<[u8]> = node.name.wire().into();
            self.index.remove(&wire, i);
            let last = self.nodes.len - 1;
            if let Some(moved) = self.nodes.pop().filter(|_| i != last) {
                self.index.moved(moved.name.wire(), last, i);
                self.nodes.set(i, moved);
                if self.apex_at == last {
                    self.apex_at = i;
                }
            }
            let Some(p) = self.index.find(&self.nodes, parent_wire(&wire)) else { return };
            let Some(parent) = self.nodes.node_mut(p) else { return };
            parent.children = parent.children.saturating_sub(1);
            if parent.children > 0 || !parent.is_empty() || p == self.apex_at {
                return;
            }
            i = p;
        }
    }
}

impl Zone {
    /// This zone with every owner in `names` holding what it holds in `from` (nothing, if
    /// it has no data there), and the apex taken from `from` too (its SOA carries the new
    /// serial): what building the zone again from all its records with those owners'
    /// records replaced gives, answer for answer. `from` is a zone of the same apex built
    /// from the apex's and those owners' records alone, so it has passed the same checks.
    ///
    /// Nodes are stored in shared chunks: the new version copies the chunks it changes, a
    /// few for a few names, and shares every other with this one; the name index is copied
    /// (five bytes a name). `None` when the zone or the change involves DNSSEC chains
    /// (NSEC, NSEC3, RRSIG), which only a full build puts together.
    pub fn patched(&self, from: &Zone, names: &[Name]) -> Option<Zone> {
        if !self.apex.wire().eq_ignore_ascii_case(from.apex.wire())
            || self.has_nsec()
            || self.nsec3.is_some()
            || from.has_nsec()
            || from.nsec3.is_some()
            || signed(self.apex_node())
        {
            return None;
        }
        let mut p = Patch { nodes: self.nodes.clone(), index: self.index.clone(), apex_at: self.apex_at };
        let mut records = self.records;
        for name in names.iter().chain([&self.apex]) {
            if !name.is_subdomain_of(&self.apex) {
                return None;
            }
            let new = from.node(name.wire()).filter(|n| !n.is_empty());
            if new.is_some_and(signed) {
                return None;
            }
            match p.index.find(&p.nodes, name.wire()) {
                Some(i) => {
                    let old = p.nodes.get(i)?;
                    if signed(old) {
                        return None;
                    }
                    records = records.saturating_sub(node_records(old));
                    let children = old.children;
                    match new {
                        Some(n) => {
                            records += node_records(n);
                            p.nodes.set(i, Node { children, ..n.clone() });
                        }
                        None if children > 0 || i == p.apex_at => {
                            let name = old.name.clone();
                            p.nodes.set(
                                i,
                                Node { name, rrsets: Box::new([]), routed: Box::new([]), cut: false, children },
                            );
                        }
                        None => p.remove(i),
                    }
                }
                None => {
                    if let Some(n) = new {
                        records += node_records(n);
                        p.add(Node { children: 0, ..n.clone() });
                    }
                }
            }
        }
        let apex_node = p.nodes.get(p.apex_at)?.clone();
        Some(
            Zone {
                apex: self.apex.clone(),
                nodes: p.nodes,
                index: p.index,
                apex_at: p.apex_at,
                apex_node,
                serial: from.serial,
                negative_ttl: from.negative_ttl,
                negative_soa: from.negative_soa.clone(),
                apex_ns_targets: Box::new([]),
                nsec_chain: Box::new([]),
                nsec3: None,
                records,
                source: self.source.clone(),
            }
            .with_apex_ns_targets(),
        )
    }
}

/// SERIAL and MINIMUM of an SOA RDATA, if it is well formed (two names, five numbers).
fn soa_timers(rd: &[u8]) -> Option<(u32, u32)> {
    soa_numbers(rd).map(|n| (n[0], n[4]))
}

/// The five numbers of an SOA RDATA (SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM), if it is well
/// formed (two names, then exactly five numbers).
pub fn soa_numbers(rd: &[u8]) -> Option<[u32; 5]> {
    let m = crate::name::wire_len(rd)?;
    let r = crate::name::wire_len(rd.get(m..)?)?;
    let numbers = rd.get(m + r..)?;
    if numbers.len() != 20 {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([numbers[i], numbers[i + 1], numbers[i + 2], numbers[i + 3]]);
    Some([word(0), word(4), word(8), word(12), word(16)])
}

/// The type an RRSIG covers (RFC 4034 §3.1.1: its first field).
fn covered(rrsig: &[u8]) -> Option<u16> {
    rrsig.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// Moves each group of RRSIGs onto the RRset it covers. RRSIGs covering a type absent at the
/// node stay as RRSIG RRsets of their own, so they can still be asked for.
fn attach_sigs(rrsets: &mut Vec<Rrset>) {
    let mut i = 0;
    while i < rrsets.len() {
        if rrsets[i].rtype != rtype::RRSIG {
            i += 1;
            continue;
        }
        let target = rrsets[i].rdatas().first().and_then(covered);
        match rrsets.iter().position(|r| r.rtype != rtype::RRSIG && Some(r.rtype) == target) {
            Some(t) => {
                let sigs = rrsets.remove(i);
                let t = if t > i { t - 1 } else { t };
                rrsets[t].sigs = Some(Box::new(sigs));
            }
            None => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(last: u8) -> Rdata {
        Box::new([192, 0, 2, last])
    }

    #[test]
    fn rrset_packs_records_in_order_without_duplicates() {
        let set = Rrset::new(rtype::A, 300, vec![a(1), a(2), a(1), a(3)]);
        let got: Vec<&[u8]> = set.rdatas().collect();
        assert_eq!(got, [&a(1)[..], &a(2)[..], &a(3)[..]]);
        assert_eq!(set.rdatas().len(), 3);
        assert_eq!(set.rdatas().first(), Some(&a(1)[..]));
        let empty = Rrset::new(rtype::A, 300, Vec::new());
        assert!(empty.rdatas().is_empty());
        assert_eq!(empty.rdatas().first(), None);
        // Big sets find duplicates through a hash set; same result, same order.
        let many: Vec<Rdata> = (0..100u8).chain(0..100).chain([7, 99]).map(a).collect();
        let big = Rrset::new(rtype::A, 300, many);
        assert_eq!(big.rdatas().len(), 100);
        assert!(big.rdatas().zip(0..100u8).all(|(rd, i)| rd == &a(i)[..]));
        // Zero-length RDATA (an empty NULL record, an APL without items) is a record too.
        let nul = Rrset::new(10, 300, vec![Box::new([]), Box::new([7])]);
        assert_eq!(nul.rdatas().collect::<Vec<_>>(), [&[][..], &[7][..]]);
    }

    #[test]
    fn an_rrset_larger_than_any_message_is_refused_with_its_place() {
        let apex: Name = "example.com.".parse().unwrap();
        let mut b = ZoneBuilder::new(apex.clone(), Source::Other("test".into()));
        let owner: Name = "many.example.com.".parse().unwrap();
        for i in 0..MAX_RRSET_RECORDS as u32 {
            b.add(&owner, rtype::AAAA, 60, [0u8; 12].iter().copied().chain(i.to_be_bytes()).collect(), "").unwrap();
        }
        // A duplicate is still no new record, even in a set this size.
        b.add(&owner, rtype::AAAA, 60, [0u8; 16].into(), "").unwrap();
        let err = b.add(&owner, rtype::AAAA, 60, vec![1; 16].into(), "big.zone:70000: ").unwrap_err();
        assert_eq!(err.to_string(), "big.zone:70000: many.example.com. AAAA: more than 65535 records in one RRset");
    }

    #[test]
    fn owners_are_found_in_any_case_and_keep_their_own() {
        let text = "$ORIGIN Example.COM.\n@ SOA ns h 1 2 3 4 5\n NS ns\nWWW A 192.0.2.1\nwww AAAA 2001:db8::1\n";
        let (zone, _) = crate::load_zone_str(text, std::path::Path::new("t"), None).unwrap();
        let lower: Name = "www.example.com.".parse().unwrap();
        let node = zone.node(lower.wire()).expect("found by its lower-cased name");
        assert_eq!(node.name().to_text(), "WWW.Example.COM.");
        assert_eq!(node.rrsets().len(), 2, "both spellings are one owner");
        assert_eq!(zone.apex_node().name().to_text(), "Example.COM.");
        assert!(zone.node("nope.example.com.".parse::<Name>().unwrap().wire()).is_none());
    }
}
