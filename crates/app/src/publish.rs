//! Building the published snapshot from every source: zone files and Route53 zones,
//! private zones shadowing public ones for internal clients, one atomic store.

use std::sync::Arc;

use r53dns_server::Store;
use r53dns_zone::{Prefix, RoutingContext, Snapshot, Zone, ZoneSet};

use crate::config::Conflict;
use crate::zones::FileZones;

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
}

/// Publishes snapshots built from [`Sources`].
#[derive(Debug)]
pub struct Publisher {
    store: Store,
    sources: tokio::sync::Mutex<Sources>,
    conflict: Conflict,
    internal_networks: Vec<Prefix>,
    routing: RoutingContext,
}

impl Publisher {
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
            sources: tokio::sync::Mutex::new(Sources { files, route53: Vec::new() }),
            conflict,
            internal_networks,
            routing,
        }
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
        for z in s.files.zones() {
            let clash = internal.get(z.apex()).is_some();
            match (clash, self.conflict) {
                (true, Conflict::Route53) => continue,
                (true, Conflict::Error) => {
                    tracing::error!(zone = %z.apex(), "zone is defined by a file and by Route53; serving the file (set route53.conflict)");
                }
                _ => {}
            }
            internal.insert(z.clone());
            external.insert(z.clone());
        }
        internal.set_routing(self.routing.clone());
        external.set_routing(self.routing.clone());
        let snapshot = if self.internal_networks.is_empty() {
            Snapshot::new(internal)
        } else {
            Snapshot::with_views(internal, external, self.internal_networks.clone())
        };
        self.store.store(Arc::new(snapshot));
    }
}
