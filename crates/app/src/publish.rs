//! Building the published snapshot from every source: zone files and Route53 zones,
//! private zones shadowing public ones for internal clients, one atomic store.

use std::sync::Arc;

use r53dns_server::Store;
use r53dns_zone::journal::{self, Journal};
use r53dns_zone::proto::serial;
use r53dns_zone::{Prefix, RoutingContext, Snapshot, Zone, ZoneSet};

use crate::config::Conflict;
use crate::zones::{Audience, FileZones};

/// A Route53 zone in effect.
#[derive(Debug, Clone)]
pub struct R53Zone {
    /// Whether it is a private zone.
    pub private: bool,
    /// The converted zone.
    pub zone: Arc<Zone>,
}

/// The sources as last loaded.
#[derive(Debug, Default)]
pub struct Sources {
    /// Zone files.
    pub files: FileZones,
    /// Route53 zones.
    pub route53: Vec<R53Zone>,
    /// Secondary zones, by lower-case apex.
    pub secondary: std::collections::BTreeMap<r53dns_zone::Name, Arc<Zone>>,
}

/// Per (view, lower-case apex): the zone last published and its journal.
type Journals = std::collections::HashMap<(u8, r53dns_zone::Name), (Arc<Zone>, Arc<Journal>)>;

/// Publishes snapshots built from [`Sources`].
#[derive(Debug)]
pub struct Publisher {
    store: Store,
    sources: tokio::sync::Mutex<Sources>,
    conflict: Conflict,
    /// Clients that see private zones (a replica takes its source's unless configured).
    internal_networks: std::sync::Mutex<Vec<Prefix>>,
    routing: RoutingContext,
    notify: Vec<std::net::SocketAddr>,
    notify_key: Option<Arc<r53dns_proto::tsig::Key>>,
    serials: std::sync::Mutex<std::collections::HashMap<r53dns_zone::Name, u32>>,
    /// Per view (0 internal, 1 external) and lower-case apex: the zone last published and
    /// the differences that led to it.
    journals: std::sync::Mutex<Journals>,
    journaling: bool,
    /// The catalog zone published in each view, if any.
    catalog: Option<crate::catalog::Catalog>,
}

impl Publisher {
    /// Publishes a catalog zone (RFC 9432) of every view's zones.
    pub fn with_catalog(mut self, catalog: Option<crate::catalog::Catalog>) -> Self {
        self.catalog = catalog;
        self
    }

    /// Keeps IXFR journals (only worth their CPU and memory when someone may transfer).
    pub fn with_journals(mut self, on: bool) -> Self {
        self.journaling = on;
        self
    }

    /// Secondaries to NOTIFY when a zone's serial changes, signed with `key` if given.
    pub fn with_notify(mut self, targets: Vec<std::net::SocketAddr>, key: Option<r53dns_proto::tsig::Key>) -> Self {
        self.notify = targets;
        self.notify_key = key.map(Arc::new);
        self
    }

    /// A publisher over `store`.
    pub fn new(
        store: Store,
        files: FileZones,
        conflict: Conflict,
        internal_networks: Vec<Prefix>,
        routing: RoutingContext,
    ) -> Self {
        Self {
            store,
            sources: tokio::sync::Mutex::new(Sources { files, route53: Vec::new(), secondary: Default::default() }),
            conflict,
            internal_networks: std::sync::Mutex::new(internal_networks),
            routing,
            notify: Vec::new(),
            notify_key: None,
            serials: Default::default(),
            journals: Default::default(),
            journaling: true,
            catalog: None,
        }
    }

    /// Changes who sees private zones, from the next publication on.
    pub fn set_internal_networks(&self, networks: Vec<Prefix>) {
        *self.internal_networks.lock().unwrap_or_else(|p| p.into_inner()) = networks;
    }

    /// Who sees private zones now (empty: everyone).
    pub fn internal_networks(&self) -> Vec<Prefix> {
        self.internal_networks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The store snapshots are published to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Replaces the zone files and publishes.
    pub async fn set_files(&self, files: FileZones) {
        let mut s = self.sources.lock().await;
        s.files = files;
        self.publish(&s);
    }

    /// Replaces the Route53 zones and publishes.
    pub async fn set_route53(&self, zones: Vec<R53Zone>) {
        let mut s = self.sources.lock().await;
        s.route53 = zones;
        self.publish(&s);
    }

    /// Serves `zone` as the secondary zone `apex` (or stops serving it) and publishes.
    pub async fn set_secondary(&self, apex: &r53dns_zone::Name, zone: Option<Arc<Zone>>) {
        let mut s = self.sources.lock().await;
        match zone {
            Some(z) => s.secondary.insert(apex.to_lowercase(), z),
            None => s.secondary.remove(&apex.to_lowercase()),
        };
        self.publish(&s);
    }

    /// The current zone files (for reloads that fall back per file).
    pub async fn files(&self) -> FileZones {
        self.sources.lock().await.files.clone()
    }

    /// Zones defined both by a zone file and by Route53.
    pub async fn conflicts(&self) -> Vec<String> {
        let s = self.sources.lock().await;
        let mut r53 = ZoneSet::new();
        for z in &s.route53 {
            r53.insert(z.zone.clone());
        }
        s.files.zones().filter(|z| r53.get(z.apex()).is_some()).map(|z| z.apex().to_text()).collect()
    }

    fn publish(&self, s: &Sources) {
        let mut internal = ZoneSet::new();
        let mut external = ZoneSet::new();
        for z in s.route53.iter().filter(|z| !z.private) {
            internal.insert(z.zone.clone());
            external.insert(z.zone.clone());
        }
        // A private zone shadows the public zone of the same name (AWS: its NXDOMAIN does
        // not fall through).
        for z in s.route53.iter().filter(|z| z.private) {
            internal.insert(z.zone.clone());
        }
        // A secondary zone wins over a Route53 zone of the same name; a zone file over both.
        for z in s.secondary.values() {
            internal.insert(z.clone());
            external.insert(z.clone());
        }
        for f in s.files.entries() {
            let z = &f.zone;
            // A named.conf zone that takes UPDATEs is served from Route53 once it is there.
            if f.yields_to_route53 && {
                let apex = z.apex().to_lowercase();
                s.route53.iter().any(|r| r.zone.apex().to_lowercase() == apex)
            } {
                continue;
            }
            let (to_internal, to_external) = match f.audience {
                Audience::All => (true, true),
                Audience::Internal => (true, false),
                Audience::External => (false, true),
            };
            let clash =
                (to_internal && internal.get(z.apex()).is_some()) || (to_external && external.get(z.apex()).is_some());
            match (clash, self.conflict) {
                (true, Conflict::Route53) => continue,
                (true, Conflict::Error) => {
                    tracing::error!(zone = %z.apex(), "zone is defined by a file and by Route53; serving the file (set route53.conflict)");
                }
                _ => {}
            }
            if to_internal {
                internal.insert(z.clone());
            }
            if to_external {
                external.insert(z.clone());
            }
        }
        internal.set_routing(self.routing.clone());
        external.set_routing(self.routing.clone());
        let networks = self.internal_networks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(c) = &self.catalog {
            if let Some(z) = c.build(0, &internal) {
                internal.insert(z);
            }
            if !networks.is_empty()
                && let Some(z) = c.build(1, &external)
            {
                external.insert(z);
            }
        }
        if self.journaling {
            self.attach_journals(0, &mut internal);
            if !networks.is_empty() {
                self.attach_journals(1, &mut external);
            }
        }
        let snapshot = if networks.is_empty() {
            Snapshot::new(internal)
        } else {
            Snapshot::with_views(internal, external, networks)
        };
        let changed = self.changed_serials(&snapshot);
        self.store.store(Arc::new(snapshot));
        if !self.notify.is_empty() && !changed.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
            crate::notify::spawn(&self.notify, self.notify_key.clone(), changed);
        }
    }

    /// Attaches to every zone of `set` the differences between its successive published
    /// versions, for IXFR. Only a serial that moved forward (RFC 1982) extends a journal; a
    /// serial that went back starts a new one; an unchanged serial keeps it as it is.
    fn attach_journals(&self, view: u8, set: &mut ZoneSet) {
        let mut journals = self.journals.lock().unwrap_or_else(|p| p.into_inner());
        let zones: Vec<Arc<Zone>> = set.zones().cloned().collect();
        let mut keep = std::collections::HashSet::new();
        for zone in zones {
            let key = (view, zone.apex().to_lowercase());
            let journal = match journals.get(&key) {
                Some((prev, j)) if Arc::ptr_eq(prev, &zone) || prev.serial() == zone.serial() => j.clone(),
                Some((prev, j)) if serial::is_after(zone.serial(), prev.serial()) => {
                    match journal::diff(prev, &zone, set.routing()) {
                        Some(d) => Arc::new(j.push(d, zone.record_count().max(1_000))),
                        None => Arc::new(Journal::default()),
                    }
                }
                _ => Arc::new(Journal::default()),
            };
            set.set_journal(zone.apex(), journal.clone());
            keep.insert(key.clone());
            journals.insert(key, (zone, journal));
        }
        journals.retain(|k, _| k.0 != view || keep.contains(k));
    }

    /// Zones whose serial differs from the last published one (new zones included), with
    /// their SOA.
    fn changed_serials(&self, snapshot: &Snapshot) -> Vec<(r53dns_zone::Name, Option<crate::notify::Soa>)> {
        let mut seen = self.serials.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        for z in snapshot.internal().zones() {
            let key = z.apex().to_lowercase();
            if seen.insert(key, z.serial()) != Some(z.serial()) {
                let soa = z
                    .apex_node()
                    .get(r53dns_zone::rtype::SOA)
                    .and_then(|set| Some(crate::notify::Soa { ttl: set.ttl(), rdata: set.rdatas().first()?.to_vec() }));
                changed.push((z.apex().clone(), soa));
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arc_swap::ArcSwap;
    use r53dns_zone::{Name, load_zone_str};

    use super::*;

    fn zone(apex: &str, addr: &str) -> Arc<Zone> {
        let text = format!("$ORIGIN {apex}\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\nwww A {addr}\n");
        Arc::new(load_zone_str(&text, Path::new("t"), None).unwrap().0)
    }

    fn www(p: &Publisher, client: Option<std::net::IpAddr>) -> Option<Vec<u8>> {
        let snap = p.store().load();
        let set = snap.zones_for(client);
        let q: Name = "www.shared.example.".parse().unwrap();
        let ans = set.lookup(q.wire(), 1, Default::default());
        ans.answer.first().and_then(|i| i.rrset()).map(|r| r.rdatas().first().unwrap_or_default().to_vec())
    }

    async fn publisher(conflict: Conflict, nets: Vec<Prefix>) -> Publisher {
        let store = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let p = Publisher::new(store, FileZones::default(), conflict, nets, RoutingContext::default());
        p.set_route53(vec![
            R53Zone { private: false, zone: zone("shared.example.", "192.0.2.10") },
            R53Zone { private: true, zone: zone("shared.example.", "10.0.0.10") },
        ])
        .await;
        p
    }

    #[tokio::test]
    async fn private_zones_shadow_public_ones_for_internal_clients_only() {
        let p = publisher(Conflict::Error, vec![("10.0.0.0".parse().unwrap(), 8)]).await;
        assert_eq!(www(&p, Some("10.1.2.3".parse().unwrap())), Some(vec![10, 0, 0, 10]));
        assert_eq!(www(&p, Some("192.0.2.99".parse().unwrap())), Some(vec![192, 0, 2, 10]));
        assert!(p.conflicts().await.is_empty());
    }

    #[tokio::test]
    async fn the_conflict_policy_decides_between_files_and_route53() {
        let files = |addr| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("shared.example.zone");
            std::fs::write(&path, format!("$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\nwww A {addr}\n"))
                .unwrap();
            let (f, report) = FileZones::load(&[crate::zones::ZoneSource::file(path)], None);
            assert!(report.errors.is_empty());
            f
        };
        for (policy, want) in [
            (Conflict::Files, [192, 0, 2, 77]),
            (Conflict::Route53, [10, 0, 0, 10]),
            (Conflict::Error, [192, 0, 2, 77]),
        ] {
            let p = publisher(policy, vec![]).await;
            p.set_files(files("192.0.2.77")).await;
            assert_eq!(p.conflicts().await, vec!["shared.example.".to_owned()]);
            assert_eq!(www(&p, None), Some(want.to_vec()), "{policy:?}");
        }
    }
}
