//! The RFC 2136 engine, pure: the form of the prerequisite and update sections, the
//! policy (what Route53 owns or cannot store, what the grants allow), prerequisites
//! against record sets as read, the updates applied to a copy, the change batch that
//! turns one into the other, the verdict after a failed batch, and the reply.

use std::collections::{BTreeMap, BTreeSet};

use r53dns_proto::message::{Message, Reply};
use r53dns_route53::convert::{parse_route53_name, parse_value, route53_name, route53_value};
use r53dns_route53::model::RecordSet;
use r53dns_route53::write::{Action, Change, ChangeFailure};
use r53dns_zone::rdata::{canonical, type_from_str, type_to_string};
use r53dns_zone::{Name, rtype};

use r53dns_zone::proto::Rcode;

use super::grants::{Grant, ROUTE53_TYPES};

/// The DHCID type (RFC 4701).
pub(super) const DHCID: u16 = 49;

/// One (name, type) as Route53 has it, and as the update leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Set {
    pub(super) ttl: u32,
    /// Canonical RDATA, in order.
    pub(super) rdatas: Vec<Vec<u8>>,
    /// An alias or routed set: never touched by UPDATE.
    pub(super) special: bool,
    /// The record set as read (for an exact DELETE).
    pub(super) original: Option<RecordSet>,
}

impl Set {
    pub(super) fn same_data(&self, other: &Set) -> bool {
        let a: BTreeSet<&Vec<u8>> = self.rdatas.iter().collect();
        let b: BTreeSet<&Vec<u8>> = other.rdatas.iter().collect();
        a == b
    }
}

pub(super) type Sets = BTreeMap<(Name, u16), Set>;

/// Route53 record sets at one name as [`Sets`] entries.
pub(super) fn read_sets(records: &[RecordSet], into: &mut Sets) {
    for r in records {
        let (Ok(name), Some(code)) = (parse_route53_name(&r.name), type_from_str(&r.rtype)) else {
            continue;
        };
        let key = (name.to_lowercase(), code);
        let special = r.alias_target.is_some() || r.set_identifier.is_some();
        let values: Result<Vec<Vec<u8>>, String> =
            r.resource_records.iter().map(|v| parse_value(code, &v.value).map(|w| canonical(code, &w))).collect();
        let entry =
            into.entry(key).or_insert_with(|| Set { ttl: 0, rdatas: Vec::new(), special: false, original: None });
        match values {
            Ok(v) if !special => {
                entry.ttl = r.ttl.and_then(|t| u32::try_from(t).ok()).unwrap_or(300);
                entry.rdatas = v;
                entry.original = Some(r.clone());
            }
            Ok(v) => {
                entry.special = true;
                entry.rdatas.extend(v);
            }
            Err(_) => entry.special = true,
        }
    }
}

/// What became of an UPDATE: the `outcome` label of `r53dns_updates_total`, chosen by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Route53 took the batch.
    Applied,
    /// The call failed without a verdict, and a fresh read shows Route53 holds the change.
    AppliedAfterError,
    /// Nothing needed changing.
    Unchanged,
    /// Malformed request or update section.
    FormErr,
    /// A name outside the zone.
    NotZone,
    /// TSIG failed, or the zone is not served here.
    NotAuth,
    /// No grant allows it, or the data cannot be stored in Route53.
    Refused,
    /// Over a rate limit of the key or client network.
    RateLimited,
    /// A prerequisite does not hold.
    Prerequisite,
    /// Route53 failed or refused the batch.
    Failed,
    /// The record sets kept changing between read and write.
    Conflict,
}

impl Outcome {
    /// The metric label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::AppliedAfterError => "applied_after_error",
            Self::Unchanged => "unchanged",
            Self::FormErr => "formerr",
            Self::NotZone => "notzone",
            Self::NotAuth => "notauth",
            Self::Refused => "refused",
            Self::RateLimited => "rate_limited",
            Self::Prerequisite => "prerequisite",
            Self::Failed => "failed",
            Self::Conflict => "conflict",
        }
    }
}

/// Why an UPDATE stops, with the rcode to answer.
#[derive(Debug, thiserror::Error)]
#[error("{why}")]
pub(super) struct Stop {
    pub(super) rcode: Rcode,
    pub(super) outcome: Outcome,
    pub(super) why: String,
}

pub(super) fn stop(rcode: Rcode, outcome: Outcome, why: impl Into<String>) -> Stop {
    Stop { rcode, outcome, why: why.into() }
}

pub(super) fn is_meta(code: u16) -> bool {
    r53dns_zone::rdata::is_meta_type(code)
        || matches!(code, rtype::ANY | rtype::AXFR | rtype::IXFR | rtype::MAILA | rtype::MAILB)
}

/// §3.2 and §3.4.1: the form of the prerequisite and update sections.
pub(super) fn check_form(msg: &Message, zone: &Name) -> Result<(), Stop> {
    for rr in &msg.answers {
        if !rr.name.to_lowercase().is_subdomain_of(zone) {
            return Err(stop(
                Rcode::NotZone,
                Outcome::NotZone,
                format!("prerequisite {} is outside the zone", rr.name),
            ));
        }
        let ok = rr.ttl == 0
            && match rr.class {
                255 | 254 => rr.rdata.is_empty(),
                1 => !is_meta(rr.rtype),
                _ => false,
            };
        if !ok {
            return Err(stop(Rcode::FormErr, Outcome::FormErr, format!("malformed prerequisite for {}", rr.name)));
        }
    }
    for rr in &msg.authority {
        if !rr.name.to_lowercase().is_subdomain_of(zone) {
            return Err(stop(Rcode::NotZone, Outcome::NotZone, format!("update of {} is outside the zone", rr.name)));
        }
        let ok = match rr.class {
            1 => !is_meta(rr.rtype),
            255 => rr.ttl == 0 && rr.rdata.is_empty() && (rr.rtype == rtype::ANY || !is_meta(rr.rtype)),
            254 => rr.ttl == 0 && !is_meta(rr.rtype),
            _ => false,
        };
        if !ok {
            return Err(stop(Rcode::FormErr, Outcome::FormErr, format!("malformed update for {}", rr.name)));
        }
    }
    Ok(())
}

/// What Route53 owns or cannot store, and what the grants do not allow.
pub(super) fn check_policy(msg: &Message, zone: &Name, grants: &[&Grant]) -> Result<(), Stop> {
    for rr in &msg.authority {
        let name = rr.name.to_lowercase();
        let t = type_to_string(rr.rtype);
        if rr.rtype == rtype::SOA || (rr.rtype == rtype::NS && name == *zone) {
            return Err(stop(Rcode::Refused, Outcome::Refused, format!("{t} at {} belongs to Route53", rr.name)));
        }
        if rr.rtype != rtype::ANY && !ROUTE53_TYPES.contains(&rr.rtype) {
            return Err(stop(
                Rcode::Refused,
                Outcome::Refused,
                format!("Route53 cannot store {t} records ({})", rr.name),
            ));
        }
        if !grants.iter().any(|g| g.allows(&name, rr.rtype)) {
            return Err(stop(Rcode::Refused, Outcome::Refused, format!("no grant allows {t} at {}", rr.name)));
        }
    }
    Ok(())
}

/// §3.2.5: prerequisites against the current data.
pub(super) fn check_prerequisites(msg: &Message, sets: &Sets) -> Result<(), Stop> {
    let in_use = |name: &Name| sets.iter().any(|((n, _), s)| n == name && (!s.rdatas.is_empty() || s.special));
    let exists =
        |name: &Name, code: u16| sets.get(&(name.clone(), code)).is_some_and(|s| !s.rdatas.is_empty() || s.special);
    let mut wanted: Sets = BTreeMap::new();
    for rr in &msg.answers {
        let name = rr.name.to_lowercase();
        let t = type_to_string(rr.rtype);
        match (rr.class, rr.rtype) {
            (255, rtype::ANY) if !in_use(&name) => {
                return Err(stop(Rcode::NxDomain, Outcome::Prerequisite, format!("{name} is not in use")));
            }
            (255, code) if code != rtype::ANY && !exists(&name, code) => {
                return Err(stop(Rcode::NxRrset, Outcome::Prerequisite, format!("no {t} RRset at {name}")));
            }
            (254, rtype::ANY) if in_use(&name) => {
                return Err(stop(Rcode::YxDomain, Outcome::Prerequisite, format!("{name} is in use")));
            }
            (254, code) if code != rtype::ANY && exists(&name, code) => {
                return Err(stop(Rcode::YxRrset, Outcome::Prerequisite, format!("a {t} RRset exists at {name}")));
            }
            (1, code) => {
                let e = wanted.entry((name, code)).or_insert_with(|| Set {
                    ttl: 0,
                    rdatas: Vec::new(),
                    special: false,
                    original: None,
                });
                let c = canonical(code, &rr.rdata);
                if !e.rdatas.contains(&c) {
                    e.rdatas.push(c);
                }
            }
            _ => {}
        }
    }
    for ((name, code), want) in &wanted {
        let ok = sets.get(&(name.clone(), *code)).is_some_and(|have| !have.special && have.same_data(want));
        if !ok {
            let t = type_to_string(*code);
            return Err(stop(Rcode::NxRrset, Outcome::Prerequisite, format!("the {t} RRset at {name} differs")));
        }
    }
    Ok(())
}

pub(super) fn touch<'a>(sets: &'a mut Sets, name: &Name, code: u16) -> Result<&'a mut Set, Stop> {
    let s = sets.entry((name.clone(), code)).or_insert_with(|| Set {
        ttl: 0,
        rdatas: Vec::new(),
        special: false,
        original: None,
    });
    if s.special {
        return Err(stop(
            Rcode::Refused,
            Outcome::Refused,
            format!(
                "{} at {name} is an alias or has a routing policy; UPDATE leaves it to Route53",
                type_to_string(code)
            ),
        ));
    }
    Ok(s)
}

/// §3.4.2: the updates, applied to `sets` in order.
pub(super) fn apply(msg: &Message, zone: &Name, sets: &mut Sets) -> Result<(), Stop> {
    for rr in &msg.authority {
        let name = rr.name.to_lowercase();
        match rr.class {
            1 => {
                let has = |code: u16, sets: &Sets| {
                    sets.iter().any(|((n, c), s)| *n == name && (*c == code) && (!s.rdatas.is_empty() || s.special))
                };
                let others = sets
                    .iter()
                    .any(|((n, c), s)| *n == name && *c != rtype::CNAME && (!s.rdatas.is_empty() || s.special));
                // A CNAME and other data never share a name; such updates are ignored.
                if (rr.rtype == rtype::CNAME && others) || (rr.rtype != rtype::CNAME && has(rtype::CNAME, sets)) {
                    continue;
                }
                let s = touch(sets, &name, rr.rtype)?;
                let c = canonical(rr.rtype, &rr.rdata);
                if !s.rdatas.contains(&c) {
                    s.rdatas.push(c);
                }
                s.ttl = rr.ttl;
            }
            255 if rr.rtype == rtype::ANY => {
                let codes: Vec<u16> = sets.keys().filter(|(n, _)| *n == name).map(|(_, c)| *c).collect();
                for code in codes {
                    if name == *zone && matches!(code, rtype::SOA | rtype::NS) {
                        continue;
                    }
                    let is_empty = sets.get(&(name.clone(), code)).is_some_and(|s| s.rdatas.is_empty() && !s.special);
                    if !is_empty {
                        touch(sets, &name, code)?.rdatas.clear();
                    }
                }
            }
            255 if sets.contains_key(&(name.clone(), rr.rtype)) => {
                touch(sets, &name, rr.rtype)?.rdatas.clear();
            }
            254 if sets.contains_key(&(name.clone(), rr.rtype)) => {
                let c = canonical(rr.rtype, &rr.rdata);
                touch(sets, &name, rr.rtype)?.rdatas.retain(|r| *r != c);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A set as Route53 text.
pub(super) fn record_set((name, code): &(Name, u16), set: &Set) -> RecordSet {
    RecordSet::plain(
        route53_name(name),
        type_to_string(*code),
        i64::from(set.ttl),
        set.rdatas.iter().map(|r| route53_value(*code, r)).collect(),
    )
}

/// The sets the update changes: (key, the set as read if it held data, the set it becomes).
pub(super) fn changed<'a>(
    before: &'a Sets,
    after: &'a Sets,
) -> impl Iterator<Item = (&'a (Name, u16), Option<&'a Set>, &'a Set)> {
    after.iter().filter(|(_, new)| !new.special).filter_map(|(key, new)| {
        let old = before.get(key).filter(|o| !o.rdatas.is_empty());
        let same = match old {
            Some(o) => o.same_data(new) && o.ttl == new.ttl,
            None => new.rdatas.is_empty(),
        };
        (!same).then_some((key, old, new))
    })
}

/// The change batch turning `before` into `after`: for each changed set, a `DELETE` of it as
/// read and a `CREATE` of what it becomes, so that Route53 refuses the batch if the set is
/// no longer what was read.
pub(super) fn diff(before: &Sets, after: &Sets) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, old, new) in changed(before, after) {
        if let Some(old) = old {
            // The exact values and TTL read; rebuilt from them only if the read kept none.
            let set = old.original.clone().unwrap_or_else(|| record_set(key, old));
            changes.push(Change { action: Action::Delete, set });
        }
        if !new.rdatas.is_empty() {
            changes.push(Change { action: Action::Create, set: record_set(key, new) });
        }
    }
    changes
}

/// Whether `now` (a fresh read) holds every set the update changed exactly as `after` has it.
pub(super) fn holds(before: &Sets, after: &Sets, now: &Sets) -> bool {
    changed(before, after).all(|(key, _, want)| match now.get(key) {
        Some(have) if !have.rdatas.is_empty() || have.special => {
            !have.special && !want.rdatas.is_empty() && have.same_data(want) && have.ttl == want.ttl
        }
        _ => want.rdatas.is_empty(),
    })
}

/// What to do once a batch failed, judged from a fresh read of the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterFailure {
    /// Route53 holds what the batch makes: it was applied, only its answer was lost.
    Applied,
    /// The sets changed since they were read: read, check and apply again.
    Again,
    /// Answer SERVFAIL.
    Fail,
}

/// Decides after a failed batch, from the sets `before` the batch was made from, what it
/// makes of them (`after`), and a read made after the failure (`now`).
///
/// Only a call without a verdict can have been applied, so only then does Route53 holding
/// the result mean success; after a clean rejection, the same result may be someone else's
/// doing and the prerequisites must be checked again against it. Only a rejection may be
/// retried, and only when the sets moved: a batch rejected against unchanged data would be
/// rejected again.
pub(super) fn after_failure(failure: &ChangeFailure, before: &Sets, after: &Sets, now: &Sets) -> AfterFailure {
    if failure.uncertain && holds(before, after, now) {
        AfterFailure::Applied
    } else if failure.rejected && now != before {
        AfterFailure::Again
    } else {
        AfterFailure::Fail
    }
}

/// The response: the request's ID and opcode, the zone section echoed.
pub(crate) fn response(msg: &[u8], parsed: Option<&Message>, rc: u8) -> Vec<u8> {
    Reply::to(msg, parsed).with(rc, false)
}
