//! The DNS wire side of r53dns: one answer function ([`answer`]) from request bytes to
//! response bytes over an atomically swapped [`ZoneSet`], and the UDP
//! and TCP listeners that call it.
//!
//! This crate knows nothing of where zones come from. It reads the current snapshot once per
//! query (`store.load()`), so a swap never mixes two versions in one answer.
//!
//! ```
//! use std::{path::Path, sync::Arc};
//! use r53dns_server::{answer, AnswerConfig, Outcome, Transport};
//! use r53dns_zone::{load_zone_str, ZoneSet};
//!
//! let text = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n";
//! let (zone, _) = load_zone_str(text, Path::new("z"), None).unwrap();
//! let mut zones = ZoneSet::new();
//! zones.insert(zone);
//!
//! // ID 0x1234, RD, one question: ns.example.com A IN.
//! let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
//! query.extend_from_slice(b"\x02ns\x07example\x03com\x00\x00\x01\x00\x01");
//! let mut out = Vec::new();
//! let outcome = answer(&zones, &query, Transport::Udp, &AnswerConfig::default(), None, &mut out);
//! assert_eq!(outcome, Outcome::Respond);
//! assert_eq!(out[3] & 0x0f, 0); // NOERROR
//! assert_eq!(u16::from_be_bytes([out[6], out[7]]), 1); // one answer
//! ```
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use arc_swap::ArcSwap;
pub use r53dns_zone::Snapshot;
pub use r53dns_zone::ZoneSet;

pub mod cache;
pub mod dnstap;
mod doh;
mod encode;
pub mod encrypted;
mod handler;
pub mod logs;
mod net;
mod rrl;
mod signed;
mod slots;
pub mod stats;
mod xfr;

pub use cache::{CacheConfig, ResponseCache};
pub use dnstap::{DnstapConfig, DnstapTarget};
pub use handler::{AnswerConfig, Outcome, Transport, answer, answer_with_cache};
pub use net::{Bound, RequestHandler, ServerConfig, TransferRule, bind};
pub use rrl::RrlConfig;
pub use stats::Stats;
pub use tokio_util::sync::CancellationToken;

/// The published snapshot: replaced whole with `store.store(Arc::new(snapshot))`.
pub type Store = Arc<ArcSwap<Snapshot>>;
