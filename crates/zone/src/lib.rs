//! Zone data for r53dns: names, RRsets, immutable zones, the snapshot of all zones, RFC 1035
//! zone files and the authoritative lookup.
//!
//! This crate does no I/O on the serving path and cannot fail at query time: everything that
//! can be wrong with data is checked when a [`Zone`] is built ([`ZoneBuilder::finish`]). A
//! [`ZoneSet`] is never mutated once published; the server swaps in a new one.
//!
//! Storage: a zone keeps every owner (empty non-terminals included) once, case preserved, as
//! a [`Node`] in one vector, found through a hash table of `u32` positions hashed over the
//! ASCII-folded wire name (RFC 4343), so no lower-cased copy is stored. A node holds its
//! RRsets; an [`Rrset`] keeps all its RDATA in one buffer, uncompressed wire form, each
//! record behind its length, with the RRSIGs covering it attached. The lookup walks the
//! query name's suffixes from the apex down, one hash probe per label, and returns an
//! [`Answer`] that borrows RRsets from the snapshot.
//!
//! [`proto`] is the DNS vocabulary the other crates share: [`Rcode`], opcodes, RFC 1982
//! serials and the 16-bit fields a message cannot overflow; [`rdata`] places the domain
//! names inside every type's RDATA from its one type table.
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
