//! The authoritative lookup (RFC 1034 §4.3.2 with RFC 2181, 2308, 4592, 6604, 6672, 8482).
//!
//! [`ZoneSet::lookup`] turns a question into an [`Answer`]: which RRsets go in which section,
//! the rcode and the AA bit. It borrows everything from the snapshot and keeps its lists
//! inline, so a lookup allocates nothing (DNAME synthesis, which must invent a name, is the
//! one exception). Encoding to the wire is the server's job.

use smallvec::SmallVec;

use crate::rdata::{rtype, target_name};
use crate::routing::Client;
use crate::set::{LowerName, ZoneSet};
use crate::zone::{Node, Rrset, Zone};

/// Longest CNAME/DNAME chain followed before answering with what was found.
pub const MAX_CHAIN: usize = 12;

pub use crate::proto::Rcode;

/// The owner name to write for an answer item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// The question name, exactly as the client sent it (case included).
    Query,
    /// A name in wire form from the snapshot.
    Name(&'a [u8]),
    /// The target of `Answer::synth[i]`.
    Synth(usize),
}

/// What an item carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data<'a> {
    /// An RRset of the snapshot.
    Rrset(&'a Rrset),
    /// A CNAME synthesized from a DNAME: `Answer::synth[i]`.
    Synth(usize),
}

/// One RRset placed in a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// Owner to write.
    pub owner: Owner<'a>,
    /// Records to write.
    pub data: Data<'a>,
    /// In the additional section: glue that must fit or the answer is truncated (RFC 9471).
    pub required: bool,
}

impl<'a> Item<'a> {
    fn new(owner: Owner<'a>, rrset: &'a Rrset) -> Self {
        Self { owner, data: Data::Rrset(rrset), required: false }
    }

    /// The RRset, unless this is a synthesized CNAME.
    pub fn rrset(&self) -> Option<&'a Rrset> {
        match self.data {
            Data::Rrset(r) => Some(r),
            Data::Synth(_) => None,
        }
    }
}

/// A CNAME made from a DNAME (RFC 6672 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthCname {
    /// TTL of the DNAME.
    pub ttl: u32,
    /// The new name in wire form.
    pub target: Vec<u8>,
}

/// A section's items, inline for the common sizes.
pub type Section<'a> = SmallVec<[Item<'a>; 8]>;

/// The outcome of a lookup, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// Response code.
    pub rcode: Rcode,
    /// AA: set when the first name was answered from a zone's authoritative data.
    pub authoritative: bool,
    /// Answer section.
    pub answer: Section<'a>,
    /// Authority section.
    pub authority: Section<'a>,
    /// Additional section (glue and addresses of targets).
    pub additional: Section<'a>,
    /// Synthesized CNAMEs (DNAME), referenced by [`Data::Synth`] and [`Owner::Synth`].
    pub synth: Vec<SynthCname>,
    /// The name the first answer stands for when it is not the query name (wire form): the
    /// wildcard that synthesized it, or the zone cut of a referral. Response rate limiting
    /// counts such answers under it, so random names under one wildcard or delegation share
    /// one allowance (as BIND and Knot count them).
    pub source: Option<&'a [u8]>,
    /// The answer was chosen by the client's address (Route53 IP-based routing), so it
    /// holds for the client's subnet only (RFC 7871 §7.2.1: a non-zero ECS scope).
    pub by_client: bool,
    /// A routing policy chose among records for this query (weights, health, location,
    /// the client's address, chance): another query may get another answer.
    pub per_query: bool,
}

impl Answer<'_> {
    /// An empty NOERROR answer (a base for encoding records outside a lookup).
    pub fn empty() -> Self {
        Self::new(Rcode::NoError)
    }

    fn new(rcode: Rcode) -> Self {
        Self {
            rcode,
            authoritative: false,
            answer: SmallVec::new(),
            authority: SmallVec::new(),
            additional: SmallVec::new(),
            synth: Vec::new(),
            source: None,
            by_client: false,
            per_query: false,
        }
    }
}

/// How to shape answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupOptions {
    /// Leave out the zone's NS RRset (and its addresses) from positive answers. Off by
    /// default, which answers as NSD does.
    pub minimal_responses: bool,
    /// The client set DO: add DS to referrals (RRSIGs are added by the encoder).
    pub dnssec_ok: bool,
    /// Who asks, for routing policies.
    pub client: Client,
}

/// Whether the data of `rtype` at `node` is chosen per query by a routing policy (what
/// `Node::select` evaluates: a routed group and no plain RRset).
fn routed(node: &Node, rtype: u16) -> bool {
    node.get(rtype).is_none() && node.routed().iter().any(|r| r.rtype == rtype)
}

enum Found<'a> {
    Node(&'a Node),
    /// Synthesized from this wildcard node (RFC 4592).
    Wild(&'a Node),
    /// No such name; the closest encloser has this many labels.
    NoName(usize),
    Referral(&'a Node),
    Dname(&'a Node, usize),
}

impl ZoneSet {
    /// Answers `qtype` for the wire-form name `qname` (any case; compression already
    /// removed). Returns `Rcode::FormErr` if `qname` is not a well-formed name.
    pub fn lookup<'a>(&'a self, qname: &[u8], qtype: u16, opts: LookupOptions) -> Answer<'a> {
        let Some(mut name) = LowerName::new(qname) else {
            return Answer::new(Rcode::FormErr);
        };
        let mut ans = Answer::new(Rcode::NoError);
        let mut owner = Owner::Query;
        for step in 0..MAX_CHAIN {
            let Some((zone, apex_labels)) = self.zone_for(&name, qtype) else {
                if step == 0 {
                    ans.rcode = Rcode::Refused;
                }
                return ans;
            };
            if step == 0 {
                ans.authoritative = true;
            }
            match find(zone, &name, apex_labels, qtype) {
                Found::Referral(cut) => {
                    if step == 0 {
                        ans.authoritative = false;
                        ans.source = Some(cut.name().wire());
                    }
                    referral(zone, cut, &mut ans, opts);
                    deny(zone, &mut ans, opts, &name, qtype, Proof::Insecure(cut));
                    return ans;
                }
                Found::NoName(ce_labels) => {
                    ans.rcode = Rcode::NxDomain;
                    negative(zone, &mut ans);
                    deny(zone, &mut ans, opts, &name, qtype, Proof::NoName(ce_labels));
                    return ans;
                }
                Found::Dname(node, labels) => {
                    let Some(dname) = node.get(rtype::DNAME) else {
                        return ans;
                    };
                    ans.answer.push(Item::new(Owner::Name(node.name().wire()), dname));
                    let Some(target) = dname.rdatas().first().and_then(|rd| target_name(rtype::DNAME, rd)) else {
                        return ans;
                    };
                    let prefix = name.len - name.suffix(labels).len();
                    if prefix + target.len() > crate::name::MAX_NAME_LEN {
                        ans.rcode = Rcode::YxDomain;
                        return ans;
                    }
                    let mut new = Vec::with_capacity(prefix + target.len());
                    new.extend_from_slice(&name.wire()[..prefix]);
                    new.extend_from_slice(target);
                    let i = ans.synth.len();
                    ans.synth.push(SynthCname { ttl: dname.ttl(), target: new });
                    ans.answer.push(Item { owner, data: Data::Synth(i), required: false });
                    owner = Owner::Synth(i);
                    // Asked for the CNAME itself: the synthesized one is the answer.
                    if qtype == rtype::CNAME || name.set(&ans.synth[i].target).is_none() {
                        return ans;
                    }
                }
                found @ (Found::Node(_) | Found::Wild(_)) => {
                    let (node, wild) = match found {
                        Found::Wild(w) => (w, true),
                        Found::Node(n) => (n, false),
                        _ => return ans,
                    };
                    if wild && step == 0 {
                        ans.source = Some(node.name().wire());
                    }
                    if qtype == rtype::ANY {
                        // RFC 8482 §4.1: one RRset is enough; NODATA for an empty node.
                        let first = node.rrsets().iter().find(|r| r.rtype() != rtype::RRSIG).or_else(|| {
                            let group = node.routed().first()?;
                            ans.per_query = true;
                            ans.by_client |= group.policy == crate::routing::Policy::IpBased;
                            group.select(self.routing(), opts.client).into_iter().find(|r| !r.rdatas().is_empty())
                        });
                        match first {
                            Some(rr) => ans.answer.push(Item::new(owner, rr)),
                            None => negative(zone, &mut ans),
                        }
                        return ans;
                    }
                    if qtype == rtype::RRSIG {
                        // Every signature at the name, each group with its own TTL.
                        for rr in node.rrsets() {
                            let sigs = if rr.rtype() == rtype::RRSIG { Some(rr) } else { rr.sigs() };
                            if let Some(sigs) = sigs {
                                ans.answer.push(Item::new(owner, sigs));
                            }
                        }
                        if ans.answer.is_empty() {
                            negative(zone, &mut ans);
                        } else {
                            positive_extras(zone, &mut ans, opts);
                        }
                        return ans;
                    }
                    ans.by_client |= node.routes_by_client(qtype);
                    ans.per_query |= routed(node, qtype);
                    let chosen = node.select(qtype, self.routing(), opts.client);
                    if !chosen.is_empty() {
                        if chosen.iter().any(|rr| rr.rdatas().is_empty()) {
                            ans.rcode = Rcode::ServFail;
                            return ans;
                        }
                        for rr in chosen {
                            ans.answer.push(Item::new(owner, rr));
                        }
                        if qtype != rtype::DS {
                            positive_extras(zone, &mut ans, opts);
                        }
                        if wild {
                            deny(zone, &mut ans, opts, &name, qtype, Proof::Wildcard(node));
                        }
                        return ans;
                    }
                    let cname = match qtype {
                        rtype::CNAME => None,
                        _ => {
                            ans.by_client |= node.routes_by_client(rtype::CNAME);
                            ans.per_query |= routed(node, rtype::CNAME);
                            node.select(rtype::CNAME, self.routing(), opts.client).first().copied()
                        }
                    };
                    if let Some(cname) = cname {
                        if ans.answer.iter().any(|i| i.data == Data::Rrset(cname)) {
                            return ans; // a loop: answer with the chain so far, like NSD
                        }
                        ans.answer.push(Item::new(owner, cname));
                        if wild {
                            deny(zone, &mut ans, opts, &name, qtype, Proof::Wildcard(node));
                        }
                        let Some(target) = cname.rdatas().first().and_then(|rd| target_name(rtype::CNAME, rd)) else {
                            return ans;
                        };
                        owner = Owner::Name(target);
                        if name.set(target).is_none() {
                            return ans;
                        }
                        continue;
                    }
                    negative(zone, &mut ans);
                    let proof = if wild { Proof::WildcardNoData(node) } else { Proof::NoData(node) };
                    deny(zone, &mut ans, opts, &name, qtype, proof);
                    return ans;
                }
            }
        }
        ans
    }

    /// The zone to answer from. DS is answered by the parent side of a cut (RFC 4035
    /// §3.1.4.1), so a DS question for an apex goes to the parent zone when it is served.
    fn zone_for(&self, name: &LowerName, qtype: u16) -> Option<(&Zone, usize)> {
        let (zone, labels) = self.find_zone(name)?;
        if qtype == rtype::DS && labels == name.labels && labels > 0 {
            let parent = LowerName::new(name.suffix(labels - 1))?;
            // find() then walks down from the parent's apex to the full name.
            if let Some(found) = self.find_zone(&parent) {
                return Some(found);
            }
        }
        Some((zone, labels))
    }
}

/// Walks from the apex down to `name` (RFC 1034 §4.3.2 step 3).
fn find<'a>(zone: &'a Zone, name: &LowerName, apex_labels: usize, qtype: u16) -> Found<'a> {
    let mut encloser = zone.apex_node();
    for n in apex_labels + 1..=name.labels {
        if encloser.get(rtype::DNAME).is_some() {
            return Found::Dname(encloser, n - 1);
        }
        // A hashed owner holding only NSEC3 is not a name of the zone (RFC 5155 §7.2.8).
        match zone.node(name.suffix(n)).filter(|node| n < name.labels || !crate::nsec3::only_nsec3(node)) {
            Some(node) => {
                if node.is_cut() && !(n == name.labels && qtype == rtype::DS) {
                    return Found::Referral(node);
                }
                encloser = node;
            }
            None => return wildcard(zone, name.suffix(n - 1), n - 1),
        }
    }
    Found::Node(encloser)
}

/// RFC 4592 §3.3.1: the source of synthesis is `*.<closest encloser>`.
fn wildcard<'a>(zone: &'a Zone, encloser: &[u8], encloser_labels: usize) -> Found<'a> {
    let mut buf = [0u8; crate::name::MAX_NAME_LEN];
    if encloser.len() + 2 > buf.len() {
        return Found::NoName(encloser_labels);
    }
    buf[0] = 1;
    buf[1] = b'*';
    buf[2..2 + encloser.len()].copy_from_slice(encloser);
    match zone.node(&buf[..2 + encloser.len()]) {
        Some(w) => Found::Wild(w),
        None => Found::NoName(encloser_labels),
    }
}

/// Adds the NSEC RRset (RRSIGs follow in the encoder) of `node` to the authority section once.
fn add_nsec<'a>(ans: &mut Answer<'a>, node: Option<&'a Node>) {
    let Some(node) = node else { return };
    let Some(nsec) = node.get(rtype::NSEC) else { return };
    if !ans.authority.iter().any(|i| i.data == Data::Rrset(nsec)) {
        ans.authority.push(Item::new(Owner::Name(node.name().wire()), nsec));
    }
}

/// RFC 4035 §3.1.3 proofs for a zone signed with NSEC (RFC 5155 §7.2 with NSEC3), when
/// the client set DO.
fn deny<'a>(zone: &'a Zone, ans: &mut Answer<'a>, opts: LookupOptions, name: &LowerName, qtype: u16, proof: Proof<'a>) {
    if !opts.dnssec_ok {
        return;
    }
    if let Some(chain) = zone.nsec3() {
        Nsec3Proofs { zone, chain, ans }.deny(name, qtype, proof);
        return;
    }
    if !zone.has_nsec() {
        return;
    }
    match proof {
        // The name does not exist, nor a wildcard at its closest encloser.
        Proof::NoName(ce_labels) => {
            add_nsec(ans, zone.nsec_covering(name.wire()));
            let ce = name.suffix(ce_labels);
            let mut star = Vec::with_capacity(ce.len() + 2);
            star.extend_from_slice(&[1, b'*']);
            star.extend_from_slice(ce);
            add_nsec(ans, zone.nsec_covering(&star));
        }
        // The name exists without the type: its own NSEC (an empty non-terminal's is the
        // covering one).
        Proof::NoData(node) => match node.get(rtype::NSEC) {
            Some(_) => add_nsec(ans, Some(node)),
            None => add_nsec(ans, zone.nsec_covering(name.wire())),
        },
        // Synthesized from a wildcard: no closer match exists.
        Proof::Wildcard(_) => add_nsec(ans, zone.nsec_covering(name.wire())),
        // Wildcard without the type: no closer match, and the wildcard's own types.
        Proof::WildcardNoData(w) => {
            add_nsec(ans, zone.nsec_covering(name.wire()));
            add_nsec(ans, Some(w));
        }
        // An unsigned delegation: the NSEC at the cut shows there is no DS.
        Proof::Insecure(cut) => {
            if cut.get(rtype::DS).is_none() {
                add_nsec(ans, Some(cut));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Proof<'a> {
    /// No such name; the closest encloser has this many labels.
    NoName(usize),
    /// The name exists (this node) without the type.
    NoData(&'a Node),
    /// Synthesized from this wildcard.
    Wildcard(&'a Node),
    /// This wildcard matched but has not the type.
    WildcardNoData(&'a Node),
    /// A referral to this cut.
    Insecure(&'a Node),
}

/// RFC 5155 §7.2 proofs, chosen as NSD chooses them.
struct Nsec3Proofs<'z, 'a> {
    zone: &'a Zone,
    chain: &'a crate::nsec3::Chain,
    ans: &'z mut Answer<'a>,
}

impl<'a> Nsec3Proofs<'_, 'a> {
    fn deny(&mut self, name: &LowerName, qtype: u16, proof: Proof<'a>) {
        match proof {
            // Closest encloser proof (its NSEC3, one covering the next closer name) and
            // one covering the wildcard at the closest encloser.
            Proof::NoName(ce_labels) => {
                if !self.next_closer(name, ce_labels) {
                    return;
                }
                let ce = name.suffix(ce_labels);
                let ce_node = self.zone.node(ce);
                self.add(ce_node.and_then(|n| self.exact(n)));
                // A hashed owner as closest encloser gets no wildcard proof (NSD keeps
                // these per name of the zone, which a hashed owner is not).
                let mut star = [0u8; crate::name::MAX_NAME_LEN];
                if !ce_node.is_some_and(crate::nsec3::only_nsec3)
                    && let Some(star) = wildcard_of(ce, &mut star)
                {
                    self.add(self.cover(star).map(|(n, _)| n));
                }
            }
            Proof::NoData(node) => {
                if node.name().wire().get(..2) == Some(b"\x01*") {
                    // A wildcard asked by its own name, DS included.
                    self.wildcard_nodata(node);
                } else if qtype == rtype::DS {
                    // DS asked of a zone's own apex: its NSEC3 (the parent is elsewhere).
                    if std::ptr::eq(node, self.zone.apex_node()) {
                        self.add(self.exact(node));
                    } else {
                        self.ds(node, false);
                    }
                } else {
                    self.add(self.exact(node));
                }
            }
            // The next closer name does not exist (the RRSIG's label count gives the rest).
            Proof::Wildcard(w) => {
                self.next_closer(name, w.name().label_count().saturating_sub(1));
            }
            Proof::WildcardNoData(w) => {
                if !self.next_closer(name, w.name().label_count().saturating_sub(1)) {
                    return;
                }
                self.wildcard_nodata(w);
            }
            // An insecure delegation: no DS, shown by the cut's NSEC3 or, with opt-out,
            // by the closest provable encloser's and the opt-out span covering the cut.
            Proof::Insecure(cut) => {
                if cut.get(rtype::DS).is_none() {
                    self.ds(cut, true);
                }
            }
        }
    }

    /// Adds the NSEC3 covering the name one label below the closest encloser (`ce_labels`
    /// labels). A hashed owner equal to it would be a collision: SERVFAIL, as NSD answers.
    fn next_closer(&mut self, name: &LowerName, ce_labels: usize) -> bool {
        let next = name.suffix((ce_labels + 1).min(name.labels));
        match self.cover(next) {
            Some((_, true)) => {
                self.ans.rcode = Rcode::ServFail;
                false
            }
            cover => {
                self.add(cover.map(|(n, _)| n));
                true
            }
        }
    }

    /// A wildcard without the type: the NSEC3 of its parent (the closest encloser) and its
    /// own (or the one covering it).
    fn wildcard_nodata(&mut self, w: &'a Node) {
        if let Some(parent) = w.name().wire().get(2..).and_then(|p| self.zone.node(p)) {
            self.add(self.exact(parent));
        }
        let own = self.exact(w).or_else(|| self.cover(w.name().wire()).map(|(n, _)| n));
        self.add(own);
    }

    /// No DS at `node` (a cut, or any name asked for DS): its NSEC3, or the closest
    /// provable encloser's, the one covering the name below it on the way, and the one
    /// covering `node` (the opt-out span).
    fn ds(&mut self, node: &'a Node, delegation: bool) {
        let cover = self.cover(node.name().wire());
        if let Some((n, true)) = cover {
            self.add(Some(n));
            return;
        }
        if !delegation && let Some(n) = self.exact(node) {
            self.add(Some(n));
            return;
        }
        let Some(lower) = LowerName::new(node.name().wire()) else { return };
        let apex_labels = self.zone.apex().label_count();
        let mut labels = lower.labels.saturating_sub(1);
        let mut below = None;
        let provable = loop {
            let here = self.zone.node(lower.suffix(labels)).and_then(|n| self.exact(n));
            if here.is_some() || labels <= apex_labels {
                break here;
            }
            below = Some(labels);
            labels -= 1;
        };
        self.add(provable);
        if let Some(b) = below {
            self.add(self.cover(lower.suffix(b)).map(|(n, _)| n));
        }
        self.add(cover.map(|(n, _)| n));
    }

    /// The NSEC3 whose owner is the hash of `node`'s name; hashed owners themselves have
    /// none (they are not names of the zone).
    fn exact(&self, node: &Node) -> Option<&'a Node> {
        if crate::nsec3::only_nsec3(node) {
            return None;
        }
        match self.cover(node.name().wire()) {
            Some((n, true)) => Some(n),
            _ => None,
        }
    }

    /// The NSEC3 at or before the hash of `wire`, and whether it is the hash itself.
    fn cover(&self, wire: &[u8]) -> Option<(&'a Node, bool)> {
        let mut scratch = [0u8; crate::name::MAX_NAME_LEN];
        let (i, exact) = self.chain.cover(&self.chain.hash(wire, &mut scratch))?;
        Some((self.zone.node_at(i)?, exact))
    }

    /// Adds a node's NSEC3 RRset (RRSIGs follow in the encoder) to the authority section once.
    fn add(&mut self, node: Option<&'a Node>) {
        let Some(node) = node else { return };
        let Some(set) = node.get(rtype::NSEC3) else { return };
        if !self.ans.authority.iter().any(|i| i.data == Data::Rrset(set)) {
            self.ans.authority.push(Item::new(Owner::Name(node.name().wire()), set));
        }
    }
}

/// `*.` + `encloser` in `buf`, if it fits in a name.
fn wildcard_of<'b>(encloser: &[u8], buf: &'b mut [u8; crate::name::MAX_NAME_LEN]) -> Option<&'b [u8]> {
    let n = encloser.len() + 2;
    if n > buf.len() {
        return None;
    }
    buf[0] = 1;
    buf[1] = b'*';
    buf[2..n].copy_from_slice(encloser);
    Some(&buf[..n])
}

fn negative<'a>(zone: &'a Zone, ans: &mut Answer<'a>) {
    ans.authority.push(Item::new(Owner::Name(zone.apex().wire()), zone.negative_soa()));
}

/// NS of the zone in authority and addresses of the targets in additional, as NSD answers
/// when minimal responses are off.
fn positive_extras<'a>(zone: &'a Zone, ans: &mut Answer<'a>, opts: LookupOptions) {
    let apex = zone.apex_node();
    let ns = apex.get(rtype::NS).filter(|_| !opts.minimal_responses);
    if let Some(ns) = ns.filter(|ns| !ans.answer.iter().any(|i| i.data == Data::Rrset(ns))) {
        ans.authority.push(Item::new(Owner::Name(apex.name().wire()), ns));
    }
    let sets: SmallVec<[&Rrset; 8]> = ans.answer.iter().chain(ans.authority.iter()).filter_map(Item::rrset).collect();
    add_addresses(zone, ans, &sets, None);
}

fn referral<'a>(zone: &'a Zone, cut: &'a Node, ans: &mut Answer<'a>, opts: LookupOptions) {
    let Some(ns) = cut.get(rtype::NS) else { return };
    ans.authority.push(Item::new(Owner::Name(cut.name().wire()), ns));
    if let Some(ds) = cut.get(rtype::DS).filter(|_| opts.dnssec_ok) {
        ans.authority.push(Item::new(Owner::Name(cut.name().wire()), ds));
    }
    add_addresses(zone, ans, &[ns], Some(cut));
}

/// Adds A then AAAA RRsets of the NS/MX/SRV targets in `sets` found in `zone`. With a `cut`,
/// targets at or below it are required glue.
fn add_addresses<'a>(zone: &'a Zone, ans: &mut Answer<'a>, sets: &[&'a Rrset], cut: Option<&Node>) {
    let apex_ns = zone.apex_node().get(rtype::NS);
    for addr_type in [rtype::A, rtype::AAAA] {
        for rr in sets {
            if !matches!(rr.rtype(), rtype::NS | rtype::MX | rtype::SRV) {
                continue;
            }
            // The apex NS targets were found when the zone was built.
            let at_apex = apex_ns.is_some_and(|ns| std::ptr::eq(ns, *rr));
            for (k, rd) in rr.rdatas().enumerate() {
                let Some(target) = target_name(rr.rtype(), rd) else {
                    continue;
                };
                // The index folds case itself: the target is looked up as written.
                let found = if at_apex { zone.apex_ns_target(k) } else { zone.node(target) };
                let Some(node) = found else {
                    continue;
                };
                let Some(addrs) = node.get(addr_type) else {
                    continue;
                };
                // Never repeat an RRset already in the answer or additional section.
                if ans.answer.iter().chain(ans.additional.iter()).any(|i| i.data == Data::Rrset(addrs)) {
                    continue;
                }
                let required = cut.is_some_and(|c| crate::name::is_subdomain(target, c.name().wire()));
                ans.additional.push(Item { owner: Owner::Name(target), data: Data::Rrset(addrs), required });
            }
        }
    }
}
