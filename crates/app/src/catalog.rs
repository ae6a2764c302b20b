//! The catalog zone (RFC 9432, version 2) r53dns publishes when `server.catalog-zone` is set:
//! one PTR per served zone, so NSD, Knot and BIND secondaries follow every zone — including
//! hosted zones created in Route53 after their configuration was written — by transferring
//! the catalog and then its members.
//!
//! ```text
//! catalog.invalid.                  0 SOA invalid. invalid. SERIAL 60 10 1209600 0
//! catalog.invalid.                  0 NS  invalid.
//! version.catalog.invalid.          0 TXT "2"
//! 5a1f…c3.zones.catalog.invalid.    0 PTR corp.example.com.
//! ```
//!
//! Each view gets its own catalog listing the zones of that view, so a secondary transfers the
//! members of the view its address sees. A member's unique label is derived from its name
//! (the first 64 bits of SHA-256 of the lower-case name, in hex), so every server publishing
//! the same zones publishes the same catalog. The serial moves (to the current Unix time, at
//! least one more than before) only when the list of members changes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use r53dns_zone::{Name, Zone, ZoneSet};
use sha2::{Digest, Sha256};

/// Publishes the catalog zone of each view.
#[derive(Debug)]
pub struct Catalog {
    apex: Name,
    /// Per view: the hash of the member list and the serial it was given.
    serials: Mutex<HashMap<u8, ([u8; 32], u32)>>,
}

/// The label that names `member` in the catalog (RFC 9432 §4.1: unique, stable).
pub fn member_label(member: &Name) -> String {
    let d = Sha256::digest(member.to_lowercase().to_text().as_bytes());
    data_encoding::HEXLOWER.encode(&d[..8])
}

impl Catalog {
    /// A catalog zone named `apex`.
    pub fn new(apex: Name) -> Self {
        Self { apex, serials: Mutex::default() }
    }

    /// The catalog zone's name.
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// The catalog of the zones in `set` (view `view`), or `None` if a zone of that name is
    /// served already or the catalog cannot be built (logged).
    pub fn build(&self, view: u8, set: &ZoneSet) -> Option<Arc<Zone>> {
        if set.get(&self.apex).is_some() {
            tracing::warn!(zone = %self.apex, "a served zone has the catalog zone's name; no catalog published");
            return None;
        }
        let mut members: Vec<Name> = set.zones().map(|z| z.apex().clone()).collect();
        members.sort_by_key(|a| a.to_lowercase().to_text());
        members.dedup_by_key(|a| a.to_lowercase());
        let mut h = Sha256::new();
        for m in &members {
            h.update(m.to_lowercase().wire());
        }
        let hash: [u8; 32] = h.finalize().into();
        let serial = {
            let mut serials = self.serials.lock().unwrap_or_else(|p| p.into_inner());
            let serial = crate::sync::next_serial(serials.get(&view).map(|(h, s)| (h, *s)), &hash);
            serials.insert(view, (hash, serial));
            serial
        };
        let apex = self.apex.to_text();
        let mut text = format!(
            "$ORIGIN {apex}\n@ 0 IN SOA invalid. invalid. {serial} 60 10 1209600 0\n@ 0 IN NS invalid.\nversion 0 IN TXT \"2\"\n"
        );
        for m in &members {
            text.push_str(&format!("{}.zones 0 IN PTR {}\n", member_label(m), m.to_text()));
        }
        match r53dns_zone::load_zone_str(&text, Path::new("catalog"), Some(&self.apex)) {
            Ok((zone, _)) => Some(Arc::new(zone)),
            Err(e) => {
                tracing::error!(zone = %self.apex, error = %e, "cannot build the catalog zone");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(apex: &str) -> Arc<Zone> {
        let text = format!("$ORIGIN {apex}\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n");
        Arc::new(r53dns_zone::load_zone_str(&text, Path::new("t"), None).unwrap().0)
    }

    fn ptrs(catalog: &Arc<Zone>, set: &ZoneSet) -> Vec<String> {
        let mut set = set.clone();
        set.insert(catalog.clone());
        let mut out = Vec::new();
        for z in ["a.example.", "B.example."] {
            let owner: Name = format!("{}.zones.catalog.invalid.", member_label(&z.parse().unwrap())).parse().unwrap();
            let ans = set.lookup(owner.wire(), 12, Default::default());
            out.extend(ans.answer.iter().filter_map(|i| i.rrset()).map(|r| r.rdatas().count().to_string()));
        }
        out
    }

    #[test]
    fn members_are_listed_with_stable_labels_and_the_serial_moves_only_with_them() {
        let cat = Catalog::new("catalog.invalid.".parse().unwrap());
        let mut set = ZoneSet::new();
        set.insert(zone("a.example."));
        let first = cat.build(0, &set).unwrap();
        assert_eq!(ptrs(&first, &set), vec!["1"]);
        // Same members: same serial.
        assert_eq!(cat.build(0, &set).unwrap().serial(), first.serial());
        // A new member: listed, later serial; labels ignore case.
        set.insert(zone("B.example."));
        let second = cat.build(0, &set).unwrap();
        assert_eq!(ptrs(&second, &set), vec!["1", "1"]);
        assert!(r53dns_zone::proto::serial::is_after(second.serial(), first.serial()));
        assert_eq!(member_label(&"b.EXAMPLE.".parse().unwrap()), member_label(&"B.example.".parse().unwrap()));
        // Another view keeps its own serial.
        assert!(cat.build(1, &ZoneSet::new()).is_some());
        assert_eq!(cat.build(0, &set).unwrap().serial(), second.serial());
    }
}
