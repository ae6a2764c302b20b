//! Differences between successive versions of a zone, kept so secondaries can catch up by
//! incremental transfer (IXFR, RFC 1995) instead of pulling the whole zone.
//!
//! A [`Delta`] is computed from two immutable zones as a transfer would carry them (routed
//! groups as a default client sees them, signatures as records). A [`Journal`] is a bounded
//! run of deltas ending at the zone's current serial; it is immutable too, and a new one is
//! made for every new version.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::Name;
use crate::rdata::rtype;
use crate::routing::{Client, RoutingContext};
use crate::zone::{Node, Rdata, Rrset, Zone};

/// Records removed and added between two serials of a zone.
#[derive(Debug, Clone)]
pub struct Delta {
    /// The SOA of the version the delta starts from.
    pub from_soa: Rrset,
    /// The SOA of the version it leads to.
    pub to_soa: Rrset,
    /// RRsets (owner, records) removed, SOA excepted.
    pub deleted: Vec<(Name, Rrset)>,
    /// RRsets added, SOA excepted.
    pub added: Vec<(Name, Rrset)>,
    from: u32,
    to: u32,
    records: usize,
}

impl Delta {
    /// The serial it starts from.
    pub fn from_serial(&self) -> u32 {
        self.from
    }

    /// The serial it leads to.
    pub fn to_serial(&self) -> u32 {
        self.to
    }

    /// Records removed and added (SOAs excepted).
    pub fn records(&self) -> usize {
        self.records
    }
}

/// A record as a transfer carries it: lower-case owner, type, TTL, RDATA.
type RecordKey = (Box<[u8]>, u16, u32, Rdata);

/// The records of a zone as a transfer carries them, apex SOA excepted: key (lower-case
/// owner, type, TTL, RDATA) → owner as written.
fn node_records(out: &mut FxHashMap<RecordKey, Name>, node: &Node, routing: &RoutingContext) {
    let mut put = |owner: &Name, set: &Rrset| {
        let lower: Box<[u8]> = owner.to_lowercase().wire().into();
        for s in std::iter::once(set).chain(set.sigs()) {
            for rd in s.rdatas() {
                out.insert((lower.clone(), s.rtype(), s.ttl(), rd.into()), owner.clone());
            }
        }
    };
    for set in node.rrsets().iter().filter(|s| s.rtype() != rtype::SOA) {
        put(node.name(), set);
    }
    for group in node.routed() {
        for set in group.select(routing, Client::default()) {
            put(node.name(), set);
        }
    }
}

/// Whether two nodes hold the same data under the same owner (as written).
fn same_node(a: &Node, b: &Node) -> bool {
    a.name().wire() == b.name().wire() && a.rrsets() == b.rrsets() && a.routed() == b.routed()
}

/// Groups records into RRsets by (owner, type, TTL), in canonical-ish order.
fn group(mut recs: Vec<(RecordKey, Name)>) -> Vec<(Name, Rrset)> {
    recs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Name, Rrset)> = Vec::new();
    let mut run: Vec<Rdata> = Vec::new();
    let mut i = 0;
    while i < recs.len() {
        let ((owner, t, ttl, _), name) = &recs[i];
        let mut j = i;
        run.clear();
        while j < recs.len() && recs[j].0.0 == *owner && recs[j].0.1 == *t && recs[j].0.2 == *ttl {
            run.push(recs[j].0.3.clone());
            j += 1;
        }
        out.push((name.clone(), Rrset::new(*t, *ttl, std::mem::take(&mut run))));
        i = j;
    }
    out
}

/// The delta from `old` to `new` (same apex), or `None` if either has no SOA.
pub fn diff(old: &Zone, new: &Zone, routing: &RoutingContext) -> Option<Delta> {
    let from_soa = old.apex_node().get(rtype::SOA)?.clone();
    let to_soa = new.apex_node().get(rtype::SOA)?.clone();
    // Only nodes that differ are taken apart record by record: a node found under the same
    // name in the other version with equal RRsets and routed groups costs one lookup and a
    // comparison, so a one-record change in a large zone allocates for that node alone.
    // Chunks of nodes a patched version shares with the one it was made from hold the same
    // nodes at the same positions in both: they are passed over whole, so a patch of a few
    // names costs the chunks it copied.
    let (old_chunks, new_chunks) = (old.node_chunks(), new.node_chunks());
    let shared = |c: usize| matches!((old_chunks.get(c), new_chunks.get(c)), (Some(o), Some(n)) if Arc::ptr_eq(o, n));
    let mut a = FxHashMap::default();
    let mut b = FxHashMap::default();
    for (c, chunk) in new_chunks.iter().enumerate() {
        if shared(c) {
            continue;
        }
        for node in chunk.iter() {
            match old.node(node.name().wire()) {
                Some(o) if same_node(o, node) => {}
                o => {
                    if let Some(o) = o {
                        node_records(&mut a, o, routing);
                    }
                    node_records(&mut b, node, routing);
                }
            }
        }
    }
    for (c, chunk) in old_chunks.iter().enumerate() {
        if shared(c) {
            continue;
        }
        for node in chunk.iter() {
            if new.node(node.name().wire()).is_none() {
                node_records(&mut a, node, routing);
            }
        }
    }
    let deleted: Vec<_> = a.iter().filter(|(k, _)| !b.contains_key(*k)).map(|(k, n)| (k.clone(), n.clone())).collect();
    let added: Vec<_> = b.iter().filter(|(k, _)| !a.contains_key(*k)).map(|(k, n)| (k.clone(), n.clone())).collect();
    let records = deleted.len() + added.len();
    Some(Delta {
        from_soa,
        to_soa,
        deleted: group(deleted),
        added: group(added),
        from: old.serial(),
        to: new.serial(),
        records,
    })
}

/// Most deltas kept per zone.
pub const MAX_DELTAS: usize = 64;

/// A bounded run of deltas, oldest first, each starting where the previous one ended.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    deltas: Vec<Arc<Delta>>,
}

impl Journal {
    /// This journal with `delta` appended, the oldest deltas dropped so at most
    /// [`MAX_DELTAS`] remain and together they change no more records than `max_records`
    /// (beyond that a full transfer costs less). A delta that does not continue the run
    /// starts a new one.
    pub fn push(&self, delta: Delta, max_records: usize) -> Journal {
        let mut deltas: Vec<Arc<Delta>> = match self.deltas.last() {
            Some(last) if last.to == delta.from => self.deltas.clone(),
            _ => Vec::new(),
        };
        deltas.push(Arc::new(delta));
        let mut total: usize = deltas.iter().map(|d| d.records).sum();
        let mut drop = 0;
        while deltas.len() - drop > MAX_DELTAS || (total > max_records && deltas.len() - drop > 1) {
            total -= deltas[drop].records;
            drop += 1;
        }
        deltas.drain(..drop);
        Journal { deltas }
    }

    /// The deltas leading from `serial` to `current`, if the journal reaches that far back
    /// and ends at `current`.
    pub fn since(&self, serial: u32, current: u32) -> Option<&[Arc<Delta>]> {
        if self.deltas.last()?.to != current {
            return None;
        }
        let start = self.deltas.iter().position(|d| d.from == serial)?;
        Some(&self.deltas[start..])
    }

    /// Number of deltas.
    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    /// Whether it holds no delta.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load_zone_str;

    fn zone(serial: u32, body: &str) -> Zone {
        let text = format!("$ORIGIN example.\n$TTL 60\n@ SOA ns h {serial} 2 3 4 5\n NS ns\nns A 192.0.2.1\n{body}");
        load_zone_str(&text, Path::new("t"), None).unwrap().0
    }

    #[test]
    fn deltas_hold_what_changed_and_chain() {
        let z1 = zone(1, "a A 192.0.2.10\nb A 192.0.2.20\n");
        let z2 = zone(2, "a A 192.0.2.11\nb A 192.0.2.20\nc TXT hi\n");
        let z3 = zone(3, "a 120 A 192.0.2.11\nb A 192.0.2.20\nc TXT hi\n");
        let ctx = RoutingContext::default();
        let d12 = diff(&z1, &z2, &ctx).unwrap();
        assert_eq!((d12.from_serial(), d12.to_serial(), d12.records()), (1, 2, 3));
        assert_eq!(d12.deleted.len(), 1);
        assert_eq!(d12.added.len(), 2);
        // A TTL change is a deletion and an addition.
        let d23 = diff(&z2, &z3, &ctx).unwrap();
        assert_eq!((d23.deleted[0].1.ttl(), d23.added[0].1.ttl()), (60, 120));
        let j = Journal::default().push(d12, 100).push(d23, 100);
        assert_eq!(j.since(1, 3).map(<[_]>::len), Some(2));
        assert_eq!(j.since(2, 3).map(<[_]>::len), Some(1));
        assert!(j.since(0, 3).is_none());
        assert!(j.since(1, 4).is_none(), "the journal must end at the current serial");
        // Too many changed records: the oldest deltas go.
        let j = Journal::default().push(diff(&z1, &z2, &ctx).unwrap(), 4).push(diff(&z2, &z3, &ctx).unwrap(), 4);
        assert_eq!(j.len(), 1);
        // Names that come and go, and an unchanged zone.
        let z4 = zone(4, "a 120 A 192.0.2.11\nc TXT hi\nd.e AAAA 2001:db8::1\n");
        let d34 = diff(&z3, &z4, &ctx).unwrap();
        assert_eq!(d34.records(), 2);
        assert_eq!((d34.deleted[0].1.rtype(), d34.added[0].1.rtype()), (rtype::A, rtype::AAAA));
        assert_eq!(
            diff(&z4, &zone(5, "a 120 A 192.0.2.11\nc TXT hi\nd.e AAAA 2001:db8::1\n"), &ctx).unwrap().records(),
            0
        );
        // A delta that does not continue the run starts a new one.
        let j = j.push(diff(&z1, &z2, &ctx).unwrap(), 100);
        assert_eq!(j.len(), 1);
    }
}
