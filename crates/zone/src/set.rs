//! The snapshot: every served zone, looked up by the deepest enclosing apex.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::journal::Journal;
use crate::name::{MAX_NAME_LEN, label_offsets};
use crate::routing::RoutingContext;
use crate::zone::Zone;

/// An immutable set of zones. A server holds one behind an atomic pointer and answers each
/// query from exactly one `ZoneSet`; a new set is built aside and swapped in whole.
#[derive(Debug, Clone, Default)]
pub struct ZoneSet {
    zones: FxHashMap<Box<[u8]>, Arc<Zone>>,
    /// Most labels of any apex: shorter suffixes are all that need probing.
    max_apex_labels: usize,
    /// Home region and location for latency and geolocation routing.
    routing: RoutingContext,
    /// Recent differences per zone (lower-case apex), for incremental transfers.
    journals: FxHashMap<Box<[u8]>, Arc<Journal>>,
    /// Names this content: every change takes a number no set in the process had before, a
    /// clone keeps it (same content). Caches of answers key on it.
    id: u64,
}

/// The next [`ZoneSet::id`] (0 is the empty default set's).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A query name lower-cased into a fixed buffer, with its label offsets: the lookup's scratch
/// space, so it needs no heap.
pub(crate) struct LowerName {
    pub(crate) buf: [u8; MAX_NAME_LEN],
    pub(crate) len: usize,
    pub(crate) offsets: [u8; 128],
    pub(crate) labels: usize,
}

impl LowerName {
    /// Lower-cases a well-formed wire name; `None` if it is not one.
    pub(crate) fn new(wire: &[u8]) -> Option<Self> {
        let mut s = Self { buf: [0; MAX_NAME_LEN], len: 0, offsets: [0; 128], labels: 0 };
        s.set(wire)?;
        Some(s)
    }

    pub(crate) fn set(&mut self, wire: &[u8]) -> Option<()> {
        let len = crate::name::wire_len(wire)?;
        if len > MAX_NAME_LEN {
            return None;
        }
        self.buf[..len].copy_from_slice(&wire[..len]);
        self.buf[..len].make_ascii_lowercase();
        self.len = len;
        self.labels = 0;
        for o in label_offsets(&wire[..len]) {
            self.offsets[self.labels] = o as u8;
            self.labels += 1;
        }
        Some(())
    }

    pub(crate) fn wire(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The suffix that has `n` labels (0 = root).
    pub(crate) fn suffix(&self, n: usize) -> &[u8] {
        if n == 0 {
            return &self.buf[self.len - 1..self.len];
        }
        &self.buf[usize::from(self.offsets[self.labels - n])..self.len]
    }
}

impl ZoneSet {
    /// An empty set (every query is REFUSED).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets where this server stands for latency and geolocation routing.
    pub fn set_routing(&mut self, routing: RoutingContext) {
        self.changed();
        self.routing = routing;
    }

    /// A number that names this set's content within the process: two sets with the same
    /// id answer every question alike (a clone keeps the id; every change takes a new one).
    pub fn id(&self) -> u64 {
        self.id
    }

    fn changed(&mut self) {
        self.id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Where this server stands for latency and geolocation routing.
    pub fn routing(&self) -> &RoutingContext {
        &self.routing
    }

    /// Adds or replaces a zone.
    pub fn insert(&mut self, zone: impl Into<Arc<Zone>>) {
        self.changed();
        let zone = zone.into();
        let key: Box<[u8]> = zone.apex().to_lowercase().wire().into();
        self.max_apex_labels = self.max_apex_labels.max(zone.apex().label_count());
        self.zones.insert(key, zone);
    }

    /// Removes the zone with this apex, returning it.
    pub fn remove(&mut self, apex: &crate::Name) -> Option<Arc<Zone>> {
        self.changed();
        let z = self.zones.remove(apex.to_lowercase().wire());
        self.max_apex_labels = self.zones.values().map(|z| z.apex().label_count()).max().unwrap_or(0);
        z
    }

    /// Attaches the recent differences of the zone `apex` (see [`Journal::since`]).
    pub fn set_journal(&mut self, apex: &crate::Name, journal: Arc<Journal>) {
        self.changed();
        self.journals.insert(apex.to_lowercase().wire().into(), journal);
    }

    /// The recent differences of the zone `apex`, if any were attached.
    pub fn journal(&self, apex: &crate::Name) -> Option<&Arc<Journal>> {
        self.journals.get(apex.to_lowercase().wire())
    }

    /// The zone with exactly this apex.
    pub fn get(&self, apex: &crate::Name) -> Option<&Arc<Zone>> {
        self.zones.get(apex.to_lowercase().wire())
    }

    /// Every zone, in no particular order.
    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }

    /// Number of zones.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// Whether no zone is served.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The served zone holding `wire` (a name in wire form): the deepest enclosing apex.
    /// Allocates nothing.
    pub fn zone_of(&self, wire: &[u8]) -> Option<&Arc<Zone>> {
        let name = LowerName::new(wire)?;
        let top = name.labels.min(self.max_apex_labels);
        (0..=top).rev().find_map(|n| self.zones.get(name.suffix(n)))
    }

    /// The deepest zone whose apex is `name` or an ancestor of it, with the apex's label count.
    pub(crate) fn find_zone(&self, name: &LowerName) -> Option<(&Zone, usize)> {
        let top = name.labels.min(self.max_apex_labels);
        (0..=top).rev().find_map(|n| self.zones.get(name.suffix(n)).map(|z| (&**z, n)))
    }
}

/// An address prefix: network address and length.
pub type Prefix = (std::net::IpAddr, u8);

/// What the server publishes: the zones every client sees, and optionally a narrower set for
/// clients outside the internal networks (private zones are for internal clients only; a
/// private zone shadows the public zone of the same name, and its NXDOMAIN does not fall
/// through, as in AWS).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    internal: ZoneSet,
    external: Option<(ZoneSet, Box<[Prefix]>)>,
}

impl Snapshot {
    /// One view for everyone.
    pub fn new(zones: ZoneSet) -> Self {
        Self { internal: zones, external: None }
    }

    /// `internal` for clients in `networks` (address, prefix length), `external` for others.
    pub fn with_views(internal: ZoneSet, external: ZoneSet, networks: Vec<Prefix>) -> Self {
        Self { internal, external: Some((external, networks.into())) }
    }

    /// The zones to answer `client` from.
    pub fn zones_for(&self, client: Option<std::net::IpAddr>) -> &ZoneSet {
        match (&self.external, client) {
            (Some((external, nets)), Some(ip)) if !nets.iter().any(|&(n, l)| crate::routing::in_prefix(n, l, ip)) => {
                external
            }
            _ => &self.internal,
        }
    }

    /// The zones internal clients see (all of them).
    pub fn internal(&self) -> &ZoneSet {
        &self.internal
    }

    /// The zones external clients see, when views are configured.
    pub fn external(&self) -> Option<&ZoneSet> {
        self.external.as_ref().map(|(z, _)| z)
    }
}

impl From<ZoneSet> for Snapshot {
    fn from(zones: ZoneSet) -> Self {
        Self::new(zones)
    }
}
