//! Zone data for r53dns: names, RRsets, immutable zones, the snapshot of all zones, RFC 1035
//! zone files and the authoritative lookup.
//!
//! This crate does no I/O on the serving path and cannot fail at query time: everything that
//! can be wrong with data is checked when a [`Zone`] is built ([`ZoneBuilder::finish`]). A
//! [`ZoneSet`] is never mutated once published; the server swaps in a new one.
//!
//! Storage: each zone maps the lower-cased wire form of every owner name (empty non-terminals
//! included) to a [`Node`] holding its RRsets, with RDATA kept in uncompressed wire form. The
//! lookup walks the query name's suffixes from the apex down, one hash probe per label, and
//! returns an [`Answer`] that borrows RRsets from the snapshot.
//!
//! ```
//! use std::path::Path;
//! use r53dns_zone::{load_zone_str, LookupOptions, Rcode, ZoneSet, rtype};
//!
//! let text = "$ORIGIN example.com.\n$TTL 300\n\
//!             @ SOA ns hostmaster 1 3600 600 86400 60\n  NS ns\nns A 192.0.2.1\n";
//! let (zone, _warnings) = load_zone_str(text, Path::new("example.com.zone"), None).unwrap();
//! let mut set = ZoneSet::new();
//! set.insert(zone);
//!
//! let qname: r53dns_zone::Name = "NS.example.com.".parse().unwrap();
//! let answer = set.lookup(qname.wire(), rtype::A, LookupOptions::default());
//! assert_eq!(answer.rcode, Rcode::NoError);
//! assert_eq!(answer.answer.len(), 1);
//!
//! let missing: r53dns_zone::Name = "nope.example.com.".parse().unwrap();
//! assert_eq!(set.lookup(missing.wire(), rtype::A, LookupOptions::default()).rcode, Rcode::NxDomain);
//! ```
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod index;
pub mod journal;
mod load;
mod lookup;
pub mod name;
mod nsec3;
pub mod proto;
pub mod rdata;
pub mod routing;
mod set;
mod zone;
pub mod zonefile;

pub use load::{LoadError, load_zone_file, load_zone_str, origin_from_file_name};
pub use lookup::{Answer, Data, Item, LookupOptions, MAX_CHAIN, Owner, Rcode, Section, SynthCname};
pub use name::Name;
pub use rdata::rtype;
pub use routing::{Client, GeoLocation, Member, Policy, Routed, RoutingContext, Rule};
pub use set::{Prefix, Snapshot, ZoneSet};
pub use zone::{MAX_RRSET_RECORDS, Node, Rdata, Rdatas, Rrset, Source, Zone, ZoneBuilder, ZoneError, soa_numbers};
