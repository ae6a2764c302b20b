//! DNS UPDATE (RFC 2136) written to Route53.
//!
//! A request is checked in this order: TSIG (RFC 8945), the zone section, the grants of
//! `[[update.grant]]` (key, client network, names, types), the rate limits of the key and
//! of the client's network, the prerequisite and update sections' form. Then, holding the
//! zone's lock, the record sets at every name involved are read fresh from Route53, the
//! prerequisites are evaluated against them, the updates are applied to a copy, and the
//! difference becomes ONE `ChangeResourceRecordSets` batch in which every changed set is a
//! `DELETE` of the set exactly as read and a `CREATE` of the new one (a new set: `CREATE`
//! only; a removed one: `DELETE` only).
//!
//! Route53 applies a batch whole or not at all, and rejects it when a `DELETE` no longer
//! matches or a `CREATE` finds a set: a change made meanwhile by the console, another
//! replica or another tool is never overwritten. On such a rejection the read, the
//! prerequisites and the updates are done again from a fresh read, up to [`MAX_ROUNDS`]
//! times, then SERVFAIL. When the call fails without a verdict (timeout, lost connection,
//! 5xx), the names are read again: if Route53 holds what the batch would have made, the
//! answer is NOERROR; otherwise SERVFAIL. On success the change is published locally at
//! once and the zone is re-fetched shortly after.
//!
//! UPDATE's API calls draw on at most `update.route53-share` of the process's Route53 rate
//! budget, so sweeps keep every zone current whatever the UPDATE load.
//!
//! SOA and apex NS belong to Route53 and are refused, as are types Route53 cannot store
//! and changes that would touch an alias or a record set with a routing policy.

mod engine;
mod grants;
mod keys;
mod limits;
mod service;
#[cfg(test)]
mod tests;

pub(crate) use engine::response;
pub(crate) use grants::grants;
pub use grants::{Grant, NamePattern};
pub(crate) use keys::load_keys;
pub use limits::Limits;
pub(crate) use limits::limits;
pub use service::{MAX_ROUNDS, Updater};
