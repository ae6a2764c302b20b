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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use anyhow::{Context as _, bail};
use r53dns_route53::convert::{parse_route53_name, parse_value, route53_name, route53_value};
use r53dns_route53::model::RecordSet;
use r53dns_route53::write::{Action, Change, ChangeFailure};
use r53dns_route53::{CallClass, Route53};
use r53dns_server::logs::{Refusal, refused};
use r53dns_server::message::{self, Message};
use r53dns_server::tsig::{self, Algorithm, Key, KeyRing, Signer, Verified};
use r53dns_zone::rdata::{canonical, type_from_str, type_to_string};
use r53dns_zone::{Name, Prefix, rtype};

use crate::config::{GrantSpec, KeySpec, TsigSpec, UpdateSpec, parse_network};
use crate::sync::Syncer;

use r53dns_zone::proto::{Rcode, rcode};

/// The record types Route53 stores.
const ROUTE53_TYPES: [u16; 17] = [
    rtype::A,
    rtype::AAAA,
    257, // CAA
    rtype::CNAME,
    rtype::DS,
    rtype::HTTPS,
    rtype::MX,
    rtype::NAPTR,
    rtype::NS,
    rtype::PTR,
    rtype::SOA,
    rtype::SPF,
    rtype::SRV,
    44, // SSHFP
    rtype::SVCB,
    52, // TLSA
    rtype::TXT,
];

/// The DHCID type (RFC 4701).
const DHCID: u16 = 49;

/// Most distinct owner names one UPDATE may involve (each costs an API read).
const MAX_NAMES: usize = 32;

/// Most read–apply–write rounds of one UPDATE whose batches Route53 rejects because the
/// record sets changed between the read and the write. Each round costs a read per name
/// and a write; a set that keeps changing faster than that is someone else's to settle.
pub const MAX_ROUNDS: u32 = 3;

/// Owner names a grant allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// This name only.
    Exact(Name),
    /// Any name strictly below this one (`*.dhcp.example.com`).
    Below(Name),
}

impl NamePattern {
    fn matches(&self, name: &Name) -> bool {
        let name = name.to_lowercase();
        match self {
            Self::Exact(n) => *n == name,
            Self::Below(n) => name != *n && name.is_subdomain_of(n),
        }
    }
}

/// One validated `[[update.grant]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Key label (lowercase, no final dot) that must sign; `None`: unsigned from `networks`.
    pub key: Option<String>,
    /// Client networks (empty: any).
    pub networks: Vec<Prefix>,
    /// Zone names (lowercase, no final dot) or hosted-zone IDs.
    pub zones: Vec<String>,
    /// Owner names (empty: any).
    pub names: Vec<NamePattern>,
    /// Types (empty: any Route53 type).
    pub types: Vec<u16>,
}

/// Whether a grant admitting this client names `label` itself (not by hosted-zone ID).
fn admitted_names_zone(
    grants: &[Grant],
    key: Option<&str>,
    ip: IpAddr,
    transport: r53dns_server::Transport,
    label: &str,
) -> bool {
    grants.iter().any(|g| g.admits(key, ip, transport) && g.zones.iter().any(|z| z == label))
}

impl Grant {
    fn covers_zone(&self, name: &str, id: &str) -> bool {
        self.zones.iter().any(|z| z == name || z == id)
    }

    /// Whether this grant accepts a request signed with `key` (or unsigned) from `ip` over
    /// `transport`. A grant without a key trusts the source address alone, which a UDP
    /// datagram can forge: it admits TCP only (the handshake proves the address).
    fn admits(&self, key: Option<&str>, ip: IpAddr, transport: r53dns_server::Transport) -> bool {
        let from = self.networks.iter().any(|&(n, l)| r53dns_zone::routing::in_prefix(n, l, ip));
        match &self.key {
            Some(k) => key == Some(k.as_str()) && (self.networks.is_empty() || from),
            None => from && transport == r53dns_server::Transport::Tcp,
        }
    }

    fn allows(&self, name: &Name, code: u16) -> bool {
        let name_ok = self.names.is_empty() || self.names.iter().any(|p| p.matches(name));
        let type_ok = self.types.is_empty() || (code != rtype::ANY && self.types.contains(&code));
        name_ok && type_ok
    }
}

fn zone_label(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

fn absolute(s: &str) -> anyhow::Result<Name> {
    let text = if s.ends_with('.') { s.to_owned() } else { format!("{s}.") };
    Name::parse(&text, None).map_err(|e| anyhow::anyhow!("'{s}': {e}"))
}

/// Validates `[[update.grant]]` against the keys.
pub(crate) fn grants(spec: &UpdateSpec, keys: &KeyRing) -> anyhow::Result<Vec<Grant>> {
    spec.grant
        .iter()
        .enumerate()
        .map(|(i, g)| grant(g, keys).with_context(|| format!("update.grant #{}", i + 1)))
        .collect()
}

fn grant(g: &GrantSpec, keys: &KeyRing) -> anyhow::Result<Grant> {
    let key = match &g.key {
        Some(k) => {
            let Some(found) = keys.by_label(k) else {
                bail!("key '{k}' is not defined in [tsig] (key or key-files)");
            };
            Some(found.label().to_ascii_lowercase())
        }
        None => None,
    };
    let networks = g.networks.iter().map(|n| parse_network(n)).collect::<anyhow::Result<Vec<_>>>()?;
    if key.is_none() && networks.is_empty() {
        bail!("a grant without a key must list the networks allowed to send unsigned UPDATEs");
    }
    if g.zones.is_empty() {
        bail!("zones: name at least one zone");
    }
    let mut names = Vec::new();
    for n in &g.names {
        names.push(match n.strip_prefix("*.") {
            Some(rest) => NamePattern::Below(absolute(rest)?.to_lowercase()),
            None => NamePattern::Exact(absolute(n)?.to_lowercase()),
        });
    }
    let mut types = Vec::new();
    for t in &g.types {
        let code = type_from_str(&t.to_ascii_uppercase()).with_context(|| format!("types: unknown type '{t}'"))?;
        if !ROUTE53_TYPES.contains(&code) || code == rtype::SOA {
            bail!("types: Route53 does not take {t} records by UPDATE");
        }
        types.push(code);
    }
    Ok(Grant { key, networks, zones: g.zones.iter().map(|z| zone_label(z)).collect(), names, types })
}

/// Validated rate limits of `[update]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// UPDATEs per second allowed per TSIG key, and the burst.
    pub per_key: (f64, u32),
    /// UPDATEs per second allowed per client network (/24, /56), and the burst.
    pub per_network: (f64, u32),
    /// Most of the Route53 API rate budget UPDATE's calls may take (0.01–1).
    pub route53_share: f64,
}

impl Default for Limits {
    /// Ten a second with bursts of twenty per key and per network is more than Route53
    /// takes at its default rate (about one UPDATE a second at half of 5 calls/s), so it
    /// never binds a well-behaved DHCP server, yet stops a looping client from queueing
    /// work without end. Half the API budget stays with the sweeps.
    fn default() -> Self {
        Self { per_key: (10.0, 20), per_network: (10.0, 20), route53_share: 0.5 }
    }
}

/// Validates the rate limits of `[update]`, defaults filled in.
pub(crate) fn limits(spec: &UpdateSpec) -> anyhow::Result<Limits> {
    let d = Limits::default();
    let rate = |v: Option<f64>, default: f64, what: &str| {
        let v = v.unwrap_or(default);
        if !(v.is_finite() && v > 0.0 && v <= 100_000.0) {
            bail!("update.{what}: {v} is out of range (more than 0, at most 100000 UPDATEs/s)");
        }
        Ok(v)
    };
    let burst = |v: Option<u32>, default: u32, what: &str| {
        let v = v.unwrap_or(default);
        if !(1..=1_000_000).contains(&v) {
            bail!("update.{what}: {v} is out of range (1–1000000)");
        }
        Ok(v)
    };
    let share = spec.route53_share.unwrap_or(d.route53_share);
    if !(0.01..=1.0).contains(&share) {
        bail!("update.route53-share: {share} is not a share between 0.01 and 1");
    }
    Ok(Limits {
        per_key: (
            rate(spec.rate_per_key, d.per_key.0, "rate-per-key")?,
            burst(spec.burst_per_key, d.per_key.1, "burst-per-key")?,
        ),
        per_network: (
            rate(spec.rate_per_network, d.per_network.0, "rate-per-network")?,
            burst(spec.burst_per_network, d.per_network.1, "burst-per-network")?,
        ),
        route53_share: share,
    })
}

/// The network a client is counted in: /24 for IPv4, /56 for IPv6 (one site's prefix), so
/// that a client cannot escape its limit by using many addresses of its own network.
fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => client_network(IpAddr::V4(v4)),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 72) - 1))),
        },
    }
}

/// Most client networks tracked one by one; beyond, the rest share one bucket.
const MAX_NETWORKS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self { tokens: f64::from(burst), at: now }
    }

    fn refill(&mut self, (rate, burst): (f64, u32), now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        self.at = now;
    }
}

/// Which limit refused an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Limited {
    Key(String),
    Network(IpAddr),
}

/// Token buckets per TSIG key and per client network.
#[derive(Debug)]
struct RateLimits {
    limits: Limits,
    state: StdMutex<LimitState>,
}

#[derive(Debug, Default)]
struct LimitState {
    keys: HashMap<String, Bucket>,
    /// `None`: the bucket shared by networks beyond [`MAX_NETWORKS`].
    networks: HashMap<Option<IpAddr>, Bucket>,
}

impl RateLimits {
    fn new(limits: Limits) -> Self {
        Self { limits, state: StdMutex::default() }
    }

    /// Takes a token from the key's bucket and the network's, or from neither: a request
    /// refused by one limit does not use up the other.
    fn admit(&self, key: Option<&str>, ip: IpAddr, now: Instant) -> Result<(), Limited> {
        let net = client_network(ip);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        let (per_key, per_network) = (self.limits.per_key, self.limits.per_network);
        let mut slot = Some(net);
        if !st.networks.contains_key(&slot) && st.networks.len() >= MAX_NETWORKS {
            // A full bucket is the same as none: forget those first.
            st.networks.retain(|_, b| {
                b.refill(per_network, now);
                b.tokens < f64::from(per_network.1)
            });
            if st.networks.len() >= MAX_NETWORKS {
                slot = None;
            }
        }
        let nb = st.networks.entry(slot).or_insert_with(|| Bucket::full(per_network.1, now));
        nb.refill(per_network, now);
        let kb = match key {
            Some(k) => {
                let b = st.keys.entry(k.to_owned()).or_insert_with(|| Bucket::full(per_key.1, now));
                b.refill(per_key, now);
                Some(b)
            }
            None => None,
        };
        if let Some(b) = &kb
            && b.tokens < 1.0
        {
            return Err(Limited::Key(key.unwrap_or_default().to_owned()));
        }
        if nb.tokens < 1.0 {
            return Err(Limited::Network(net));
        }
        nb.tokens -= 1.0;
        if let Some(b) = kb {
            b.tokens -= 1.0;
        }
        Ok(())
    }
}

/// Reads `[[tsig.key]]` and the key files into a key ring.
pub(crate) fn load_keys(spec: &TsigSpec) -> anyhow::Result<KeyRing> {
    let mut specs: Vec<(String, KeySpec)> = spec.key.iter().map(|k| ("tsig.key".to_owned(), k.clone())).collect();
    for path in &spec.key_files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("tsig.key-files: cannot read {}", path.display()))?;
        let keys = crate::bindconf::read_keys(&text, path)?;
        specs.extend(keys.into_iter().map(|k| (path.display().to_string(), k)));
    }
    let mut keys = Vec::new();
    for (origin, k) in specs {
        let ctx = || format!("{origin}: key '{}'", k.name);
        let algorithm = match &k.algorithm {
            Some(a) => Algorithm::from_name(a).with_context(|| format!("{}: unknown algorithm '{a}'", ctx()))?,
            None => Algorithm::HmacSha256,
        };
        let secret = data_encoding::BASE64
            .decode(k.secret.trim().as_bytes())
            .with_context(|| format!("{}: the secret is not base64", ctx()))?;
        if secret.is_empty() {
            bail!("{}: empty secret", ctx());
        }
        let name = absolute(&k.name).with_context(ctx)?;
        keys.push(Key { name, algorithm, secret });
    }
    Ok(KeyRing::new(keys))
}

/// One (name, type) as Route53 has it, and as the update leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Set {
    ttl: u32,
    /// Canonical RDATA, in order.
    rdatas: Vec<Vec<u8>>,
    /// An alias or routed set: never touched by UPDATE.
    special: bool,
    /// The record set as read (for an exact DELETE).
    original: Option<RecordSet>,
}

impl Set {
    fn same_data(&self, other: &Set) -> bool {
        let a: BTreeSet<&Vec<u8>> = self.rdatas.iter().collect();
        let b: BTreeSet<&Vec<u8>> = other.rdatas.iter().collect();
        a == b
    }
}

type Sets = BTreeMap<(Name, u16), Set>;

/// Route53 record sets at one name as [`Sets`] entries.
fn read_sets(records: &[RecordSet], into: &mut Sets) {
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
enum Outcome {
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
    fn label(self) -> &'static str {
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
struct Stop {
    rcode: Rcode,
    outcome: Outcome,
    why: String,
}

fn stop(rcode: Rcode, outcome: Outcome, why: impl Into<String>) -> Stop {
    Stop { rcode, outcome, why: why.into() }
}

fn is_meta(code: u16) -> bool {
    r53dns_zone::rdata::is_meta_type(code)
        || matches!(code, rtype::ANY | rtype::AXFR | rtype::IXFR | rtype::MAILA | rtype::MAILB)
}

/// §3.2 and §3.4.1: the form of the prerequisite and update sections.
fn check_form(msg: &Message, zone: &Name) -> Result<(), Stop> {
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
fn check_policy(msg: &Message, zone: &Name, grants: &[&Grant]) -> Result<(), Stop> {
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
fn check_prerequisites(msg: &Message, sets: &Sets) -> Result<(), Stop> {
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

fn touch<'a>(sets: &'a mut Sets, name: &Name, code: u16) -> Result<&'a mut Set, Stop> {
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
fn apply(msg: &Message, zone: &Name, sets: &mut Sets) -> Result<(), Stop> {
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
fn record_set((name, code): &(Name, u16), set: &Set) -> RecordSet {
    RecordSet::plain(
        route53_name(name),
        type_to_string(*code),
        i64::from(set.ttl),
        set.rdatas.iter().map(|r| route53_value(*code, r)).collect(),
    )
}

/// The sets the update changes: (key, the set as read if it held data, the set it becomes).
fn changed<'a>(before: &'a Sets, after: &'a Sets) -> impl Iterator<Item = (&'a (Name, u16), Option<&'a Set>, &'a Set)> {
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
fn diff(before: &Sets, after: &Sets) -> Vec<Change> {
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
fn holds(before: &Sets, after: &Sets, now: &Sets) -> bool {
    changed(before, after).all(|(key, _, want)| match now.get(key) {
        Some(have) if !have.rdatas.is_empty() || have.special => {
            !have.special && !want.rdatas.is_empty() && have.same_data(want) && have.ttl == want.ttl
        }
        _ => want.rdatas.is_empty(),
    })
}

/// What to do once a batch failed, judged from a fresh read of the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFailure {
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
fn after_failure(failure: &ChangeFailure, before: &Sets, after: &Sets, now: &Sets) -> AfterFailure {
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
    let id = [msg.first().copied().unwrap_or(0), msg.get(1).copied().unwrap_or(0)];
    let flags = 0x8000 | (u16::from(msg.get(2).copied().unwrap_or(0x28)) << 8 & 0x7800) | u16::from(rc);
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&id);
    out.extend_from_slice(&flags.to_be_bytes());
    let zone = parsed.and_then(|p| p.questions.first());
    out.extend_from_slice(&[0, u8::from(zone.is_some()), 0, 0, 0, 0, 0, 0]);
    if let Some((name, t, c)) = zone {
        out.extend_from_slice(name.wire());
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&c.to_be_bytes());
    }
    out
}

/// The UPDATE service.
pub struct Updater {
    keys: KeyRing,
    grants: Vec<Grant>,
    syncer: Arc<Syncer>,
    metrics: Option<Arc<r53dns_metrics::Metrics>>,
    locks: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    limits: RateLimits,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater").field("grants", &self.grants.len()).finish_non_exhaustive()
    }
}

impl Updater {
    /// An UPDATE service writing through `syncer`'s Route53 clients, within `limits`.
    pub fn new(
        keys: KeyRing,
        grants: Vec<Grant>,
        syncer: Arc<Syncer>,
        metrics: Option<Arc<r53dns_metrics::Metrics>>,
        limits: Limits,
    ) -> Self {
        Self { keys, grants, syncer, metrics, locks: StdMutex::default(), limits: RateLimits::new(limits) }
    }

    /// Answers one UPDATE request from `peer`.
    pub(crate) async fn handle(
        &self,
        msg: &[u8],
        peer: SocketAddr,
        transport: r53dns_server::Transport,
    ) -> Option<Vec<u8>> {
        if msg.len() < 12 {
            return None;
        }
        let Some(parsed) = message::parse(msg) else {
            self.count(Outcome::FormErr);
            tracing::debug!(%peer, "UPDATE: malformed message");
            return Some(response(msg, None, rcode::FORMERR));
        };
        let now = tsig::now();
        let mut signer: Option<Signer<'_>> = match tsig::verify(&self.keys, msg, &parsed, now) {
            Verified::Unsigned => None,
            Verified::Signed(s) => Some(s),
            Verified::Malformed => {
                self.count(Outcome::FormErr);
                return Some(response(msg, Some(&parsed), rcode::FORMERR));
            }
            Verified::Failed(mut f) => {
                let error = match f.error {
                    tsig::BADKEY => "unknown key or algorithm (BADKEY)",
                    tsig::BADTIME => "clock outside the fudge (BADTIME)",
                    tsig::BADTRUNC => "MAC truncated too far (BADTRUNC)",
                    _ => "bad signature (BADSIG)",
                };
                refused(Refusal::UpdateTsig, |skipped| {
                    tracing::warn!(%peer, key = %f.key_label(), skipped, "UPDATE refused: TSIG {error}");
                });
                self.count(Outcome::NotAuth);
                let mut out = response(msg, Some(&parsed), rcode::NOTAUTH);
                if let Err(e) = f.append_to(&mut out, now) {
                    tracing::error!("UPDATE: TSIG: {e}; the reply goes out unsigned");
                }
                return Some(out);
            }
        };
        let key = signer.as_ref().map(|s| s.key().label().to_ascii_lowercase());
        let (rc, outcome) = match self.decide(&parsed, peer, key.as_deref(), transport).await {
            Ok(Done::Applied) => (Rcode::NoError, Outcome::Applied),
            Ok(Done::AppliedDespiteError) => (Rcode::NoError, Outcome::AppliedAfterError),
            Ok(Done::Unchanged) => (Rcode::NoError, Outcome::Unchanged),
            Err(s) => {
                let zone = parsed.questions.first().map(|q| q.0.to_text()).unwrap_or_default();
                let key = key.as_deref().unwrap_or("-");
                match s.outcome {
                    // A flooding client must not flood the log too.
                    Outcome::RateLimited => refused(Refusal::UpdateRateLimited, |skipped| {
                        tracing::warn!(%peer, %zone, key, skipped, "UPDATE refused: {s}");
                    }),
                    // Refusals a stranger can cause at will: counted, logged once a second.
                    Outcome::Refused => refused(Refusal::UpdateNotAllowed, |skipped| {
                        tracing::info!(%peer, %zone, key, skipped, "UPDATE refused: {s}");
                    }),
                    _ if s.rcode == Rcode::ServFail => tracing::error!(%peer, %zone, key, "UPDATE failed: {s}"),
                    _ => tracing::info!(%peer, %zone, key, rcode = %s.rcode, "UPDATE not applied: {s}"),
                }
                (s.rcode, s.outcome)
            }
        };
        self.count(outcome);
        let mut out = response(msg, Some(&parsed), rc.to_u8());
        if let Some(s) = signer.as_mut() {
            if let Err(e) = s.sign(&mut out, now) {
                tracing::error!("UPDATE: TSIG: {e}; the reply goes out unsigned");
            }
        }
        Some(out)
    }

    fn count(&self, outcome: Outcome) {
        if let Some(m) = &self.metrics {
            m.updates.with_label_values(&[outcome.label()]).inc();
        }
    }

    /// What the UPDATE did to Route53, or why it stopped.
    async fn decide(
        &self,
        msg: &Message,
        peer: SocketAddr,
        key: Option<&str>,
        transport: r53dns_server::Transport,
    ) -> Result<Done, Stop> {
        let [(zone, qtype, qclass)] = msg.questions.as_slice() else {
            return Err(stop(Rcode::FormErr, Outcome::FormErr, "the zone section must hold exactly one SOA question"));
        };
        if *qtype != rtype::SOA {
            return Err(stop(Rcode::FormErr, Outcome::FormErr, "the zone section must ask for SOA"));
        }
        let zone = zone.to_lowercase();
        if *qclass != 1 {
            return Err(stop(Rcode::NotAuth, Outcome::NotAuth, "only class IN is served"));
        }
        let label = zone_label(&zone.to_text());
        // Who is asking comes first, and every refusal before the zone is known looks the
        // same: an unauthorised client learns nothing about which zones exist (private
        // ones included).
        let admitted: Vec<&Grant> = self.grants.iter().filter(|g| g.admits(key, peer.ip(), transport)).collect();
        if admitted.is_empty() {
            let why = match (key, transport) {
                (Some(k), _) => format!("no grant admits key {k} from {}", peer.ip()),
                (None, r53dns_server::Transport::Udp) => {
                    format!("unsigned UPDATE over UDP from {} (unsigned grants need TCP, or a TSIG key)", peer.ip())
                }
                (None, _) => format!("unsigned UPDATE from {}; a TSIG key is required", peer.ip()),
            };
            return Err(stop(Rcode::Refused, Outcome::Refused, why));
        }
        // Counted only once a grant admits the client: a forged source address or key name
        // must not use up a real client's allowance.
        self.limits.admit(key, peer.ip(), Instant::now()).map_err(|l| {
            let (rate, burst, who) = match &l {
                Limited::Key(k) => (self.limits.limits.per_key.0, self.limits.limits.per_key.1, format!("key {k}")),
                Limited::Network(n) => {
                    let len = if n.is_ipv4() { 24 } else { 56 };
                    (self.limits.limits.per_network.0, self.limits.limits.per_network.1, format!("network {n}/{len}"))
                }
            };
            stop(Rcode::Refused, Outcome::RateLimited, format!("over the limit of {who} ({rate}/s, burst {burst})"))
        })?;
        let ids: Vec<String> = admitted.iter().flat_map(|g| g.zones.iter().cloned()).collect();
        let target = self.syncer.update_target(&zone, &ids).await;
        let grants: Vec<&Grant> = match &target {
            Some(t) => admitted.into_iter().filter(|g| g.covers_zone(&label, &t.zone.id)).collect(),
            None => Vec::new(),
        };
        let Some(target) = target.filter(|_| !grants.is_empty()) else {
            // Named by one of the caller's grants but not served: the one case worth saying.
            if admitted_names_zone(&self.grants, key, peer.ip(), transport, &label) {
                return Err(stop(
                    Rcode::NotAuth,
                    Outcome::NotAuth,
                    format!("{label} is not a Route53 zone served here"),
                ));
            }
            return Err(stop(
                Rcode::Refused,
                Outcome::Refused,
                format!("no grant of this client accepts UPDATEs for {label}"),
            ));
        };
        check_form(msg, &zone)?;
        // DHCID (RFC 4701) is how DHCP clients mark names as theirs; Route53 cannot store
        // it. Such records are left out, and prerequisites on them count as met: conflict
        // detection between DHCP clients is off (docs/update.md).
        let dhcid = |r: &message::Record| r.rtype == DHCID;
        let dropped = msg.answers.iter().chain(&msg.authority).filter(|r| dhcid(r)).count();
        let filtered;
        let msg = if dropped > 0 {
            tracing::debug!(%peer, dropped, "DHCID records left out of an UPDATE (Route53 cannot store them)");
            let mut m = msg.clone();
            m.answers.retain(|r| !dhcid(r));
            m.authority.retain(|r| !dhcid(r));
            filtered = m;
            &filtered
        } else {
            msg
        };
        check_policy(msg, &zone, &grants)?;
        let names: BTreeSet<Name> = msg.answers.iter().chain(&msg.authority).map(|r| r.name.to_lowercase()).collect();
        if names.len() > MAX_NAMES {
            return Err(stop(Rcode::Refused, Outcome::Refused, format!("more than {MAX_NAMES} names in one UPDATE")));
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(target.zone.id.clone()).or_default().clone()
        };
        let _held = lock.lock().await;
        let client = target.client.clone().with_class(CallClass::Update);
        let zone_id = target.zone.id.as_str();
        let comment = format!("r53dns UPDATE from {} key {}", peer.ip(), key.unwrap_or("-"));
        let mut before = read_names(&client, zone_id, &names).await?;
        let mut round = 1;
        loop {
            check_prerequisites(msg, &before)?;
            let mut after = before.clone();
            apply(msg, &zone, &mut after)?;
            let changes = diff(&before, &after);
            if changes.is_empty() {
                return Ok(Done::Unchanged);
            }
            let summary = || -> Vec<String> {
                changes
                    .iter()
                    .map(|c| format!("{:?} {} {} {}", c.action, c.set.name, c.set.rtype, c.set.resource_records.len()))
                    .collect()
            };
            let failure = match client.change(zone_id, &changes, &comment).await {
                Ok(()) => {
                    tracing::info!(%peer, zone = %label, key = key.unwrap_or("-"), round, changes = ?summary(), "UPDATE applied");
                    self.syncer.apply_local(zone_id, &changes).await;
                    return Ok(Done::Applied);
                }
                Err(f) => f,
            };
            if !failure.rejected && !failure.uncertain {
                return Err(stop(
                    Rcode::ServFail,
                    Outcome::Failed,
                    format!("Route53 refused the change batch: {}", failure.error),
                ));
            }
            let now = read_names(&client, zone_id, &names).await.map_err(|s| {
                stop(s.rcode, s.outcome, format!("the change batch failed ({}), and then {}", failure.error, s.why))
            })?;
            match after_failure(&failure, &before, &after, &now) {
                AfterFailure::Applied => {
                    tracing::warn!(
                        %peer, zone = %label, key = key.unwrap_or("-"), changes = ?summary(),
                        "UPDATE applied: the call failed ({}) but Route53 holds the change", failure.error
                    );
                    self.syncer.apply_local(zone_id, &changes).await;
                    return Ok(Done::AppliedDespiteError);
                }
                AfterFailure::Again if round < MAX_ROUNDS => {
                    tracing::info!(
                        %peer, zone = %label, round,
                        "UPDATE: the record sets changed between read and write ({}); again from a fresh read",
                        failure.error
                    );
                    before = now;
                    round += 1;
                }
                AfterFailure::Again => {
                    return Err(stop(
                        Rcode::ServFail,
                        Outcome::Conflict,
                        format!(
                            "the record sets changed between read and write {MAX_ROUNDS} times in a row; nothing was \
                             changed (last: {})",
                            failure.error
                        ),
                    ));
                }
                AfterFailure::Fail => {
                    let state = if failure.uncertain { "; a fresh read shows it was not applied" } else { "" };
                    return Err(stop(
                        Rcode::ServFail,
                        Outcome::Failed,
                        format!("Route53 refused the change batch: {}{state}", failure.error),
                    ));
                }
            }
        }
    }
}

/// What an UPDATE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    /// Nothing needed changing.
    Unchanged,
    /// Route53 took the batch.
    Applied,
    /// The call failed without a verdict, and a fresh read shows Route53 holds the change.
    AppliedDespiteError,
}

/// The record sets at `names`, read now.
async fn read_names(client: &Route53, zone_id: &str, names: &BTreeSet<Name>) -> Result<Sets, Stop> {
    let mut sets = Sets::new();
    for n in names {
        let records = client
            .record_sets_at(zone_id, &route53_name(n))
            .await
            .map_err(|e| stop(Rcode::ServFail, Outcome::Failed, format!("cannot read {n} from Route53: {e}")))?;
        read_sets(&records, &mut sets);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use r53dns_server::message::Record;
    use std::path::Path;
    use std::time::Duration;

    fn rr(name: &str, class: u16, code: u16, ttl: u32, rdata: &[u8]) -> Record {
        Record { name: absolute(name).unwrap(), rtype: code, class, ttl, rdata: rdata.to_vec(), offset: 0 }
    }

    fn msg(prereqs: Vec<Record>, updates: Vec<Record>) -> Message {
        Message {
            id: 1,
            flags: 0x2800,
            questions: vec![(absolute("example.com").unwrap(), rtype::SOA, 1)],
            answers: prereqs,
            authority: updates,
            additional: Vec::new(),
        }
    }

    fn set(name: &str, code: u16, ttl: i64, values: &[&str]) -> RecordSet {
        RecordSet::plain(
            format!("{name}."),
            type_to_string(code),
            ttl,
            values.iter().map(|v| (*v).to_owned()).collect(),
        )
    }

    fn zone() -> Name {
        absolute("example.com").unwrap()
    }

    fn current() -> Sets {
        let mut s = Sets::new();
        let mut weighted = set("www.example.com", rtype::A, 60, &["192.0.2.9"]);
        weighted.set_identifier = Some("blue".into());
        weighted.weight = Some(1);
        read_sets(
            &[
                set("host.example.com", rtype::A, 300, &["192.0.2.1", "192.0.2.2"]),
                set("host.example.com", rtype::TXT, 300, &["\"hello\""]),
                set("alias.example.com", rtype::CNAME, 300, &["Host.Example.com."]),
                weighted,
            ],
            &mut s,
        );
        s
    }

    #[test]
    fn prerequisites_give_the_rfc_rcodes() {
        let s = current();
        let code = |p: Record| check_prerequisites(&msg(vec![p], vec![]), &s).err().map(|e| e.rcode);
        assert_eq!(code(rr("host.example.com", 255, rtype::ANY, 0, &[])), None);
        assert_eq!(code(rr("nope.example.com", 255, rtype::ANY, 0, &[])), Some(Rcode::NxDomain));
        assert_eq!(code(rr("host.example.com", 255, rtype::AAAA, 0, &[])), Some(Rcode::NxRrset));
        assert_eq!(code(rr("host.example.com", 254, rtype::ANY, 0, &[])), Some(Rcode::YxDomain));
        assert_eq!(code(rr("nope.example.com", 254, rtype::ANY, 0, &[])), None);
        assert_eq!(code(rr("host.example.com", 254, rtype::A, 0, &[])), Some(Rcode::YxRrset));
        assert_eq!(code(rr("www.example.com", 255, rtype::A, 0, &[])), None, "a routed set exists");
        // Value-dependent: the whole set, in any order, names compared without case.
        let both = vec![
            rr("host.example.com", 1, rtype::A, 0, &[192, 0, 2, 2]),
            rr("host.example.com", 1, rtype::A, 0, &[192, 0, 2, 1]),
        ];
        assert!(check_prerequisites(&msg(both, vec![]), &s).is_ok());
        let one = vec![rr("host.example.com", 1, rtype::A, 0, &[192, 0, 2, 1])];
        assert_eq!(check_prerequisites(&msg(one, vec![]), &s).err().map(|e| e.rcode), Some(Rcode::NxRrset));
        let cname = vec![rr("alias.example.com", 1, rtype::CNAME, 0, b"\x04HOST\x07example\x03com\x00")];
        assert!(check_prerequisites(&msg(cname, vec![]), &s).is_ok());
    }

    #[test]
    fn updates_become_one_minimal_batch() {
        let before = current();
        let updates = vec![
            rr("host.example.com", 1, rtype::A, 300, &[192, 0, 2, 3]), // add to a set
            rr("host.example.com", 254, rtype::A, 0, &[192, 0, 2, 1]), // delete one RR
            rr("host.example.com", 255, rtype::TXT, 0, &[]),           // delete a set
            rr("new.example.com", 1, rtype::AAAA, 60, &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            rr("alias.example.com", 1, rtype::A, 60, &[192, 0, 2, 7]), // ignored: a CNAME is there
        ];
        let mut after = before.clone();
        apply(&msg(vec![], updates), &zone(), &mut after).map_err(|s| s.why).unwrap();
        let changes = diff(&before, &after);
        let got: Vec<(Action, &str, &str, Vec<&str>)> = changes
            .iter()
            .map(|c| {
                let v = c.set.resource_records.iter().map(|r| r.value.as_str()).collect();
                (c.action, c.set.name.as_str(), c.set.rtype.as_str(), v)
            })
            .collect();
        // A changed set is replaced by deleting it as read and creating the new one, so that
        // Route53 refuses the batch if it changed since.
        assert_eq!(
            got,
            vec![
                (Action::Create, "new.example.com.", "AAAA", vec!["2001:db8::1"]),
                (Action::Delete, "host.example.com.", "A", vec!["192.0.2.1", "192.0.2.2"]),
                (Action::Create, "host.example.com.", "A", vec!["192.0.2.2", "192.0.2.3"]),
                (Action::Delete, "host.example.com.", "TXT", vec!["\"hello\""]),
            ]
        );
        assert_eq!(changes[1].set.ttl, Some(300), "the DELETE carries the TTL read");
        // Deleting the last RR deletes the set with its exact old values.
        let mut after = before.clone();
        let del = vec![
            rr("host.example.com", 254, rtype::A, 0, &[192, 0, 2, 1]),
            rr("host.example.com", 254, rtype::A, 0, &[192, 0, 2, 2]),
        ];
        apply(&msg(vec![], del), &zone(), &mut after).map_err(|s| s.why).unwrap();
        let changes = diff(&before, &after);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].action, Action::Delete);
        assert_eq!(changes[0].set.ttl, Some(300));
        // Adding what is there already changes nothing.
        let mut after = before.clone();
        apply(&msg(vec![], vec![rr("host.example.com", 1, rtype::A, 300, &[192, 0, 2, 1])]), &zone(), &mut after)
            .map_err(|s| s.why)
            .unwrap();
        assert!(diff(&before, &after).is_empty());
        // A TTL change alone replaces the set too.
        let mut after = before.clone();
        apply(&msg(vec![], vec![rr("host.example.com", 1, rtype::A, 60, &[192, 0, 2, 1])]), &zone(), &mut after)
            .map_err(|s| s.why)
            .unwrap();
        let actions: Vec<(Action, Option<i64>)> = diff(&before, &after).iter().map(|c| (c.action, c.set.ttl)).collect();
        assert_eq!(actions, [(Action::Delete, Some(300)), (Action::Create, Some(60))]);
    }

    fn failure(rejected: bool, uncertain: bool) -> ChangeFailure {
        let error = r53dns_route53::FetchError {
            op: "ChangeResourceRecordSets",
            zone: "Z1".into(),
            message: "test".into(),
            throttled: false,
        };
        ChangeFailure { error, rejected, uncertain }
    }

    #[test]
    fn a_failed_batch_is_judged_by_a_fresh_read() {
        let before = current();
        let mut after = before.clone();
        let add = vec![rr("host.example.com", 1, rtype::A, 300, &[192, 0, 2, 3])];
        apply(&msg(vec![], add), &zone(), &mut after).map_err(|s| s.why).unwrap();
        // What Route53 holds once the batch went through: the update's result, read back
        // in another order (values are a set).
        let mut applied = Sets::new();
        read_sets(
            &[
                set("host.example.com", rtype::A, 300, &["192.0.2.3", "192.0.2.2", "192.0.2.1"]),
                set("host.example.com", rtype::TXT, 300, &["\"hello\""]),
            ],
            &mut applied,
        );
        // Someone else's change to the same set.
        let mut theirs = Sets::new();
        read_sets(
            &[
                set("host.example.com", rtype::A, 300, &["192.0.2.1", "192.0.2.2", "192.0.2.7"]),
                set("host.example.com", rtype::TXT, 300, &["\"hello\""]),
            ],
            &mut theirs,
        );
        let unchanged = before.clone();
        use AfterFailure::*;
        // (rejected, uncertain, what a fresh read shows, what to do)
        let cases = [
            // A timeout or 5xx after which Route53 holds the result: it was applied.
            (false, true, &applied, Applied),
            // The same, the resent copy rejected because the first had been applied.
            (true, true, &applied, Applied),
            // A timeout that changed nothing: SERVFAIL, the client may send it again.
            (false, true, &unchanged, Fail),
            // A timeout, and the set now holds something else: not ours to guess.
            (false, true, &theirs, Fail),
            // Rejected because the set changed meanwhile: again, from the new data.
            (true, false, &theirs, Again),
            (true, true, &theirs, Again),
            // Rejected with the data unchanged: not a race, and would be rejected again.
            (true, false, &unchanged, Fail),
            // Rejected, and someone else made the very same change: the prerequisites must
            // be checked against it, so again (a clean rejection applied nothing of ours).
            (true, false, &applied, Again),
        ];
        for (rejected, uncertain, now, want) in cases {
            assert_eq!(
                after_failure(&failure(rejected, uncertain), &before, &after, now),
                want,
                "rejected {rejected}, uncertain {uncertain}"
            );
        }
        // A deletion holds once the set is gone, and only then.
        let mut deleted = before.clone();
        apply(&msg(vec![], vec![rr("host.example.com", 255, rtype::TXT, 0, &[])]), &zone(), &mut deleted)
            .map_err(|s| s.why)
            .unwrap();
        let mut gone = Sets::new();
        read_sets(&[set("host.example.com", rtype::A, 300, &["192.0.2.1", "192.0.2.2"])], &mut gone);
        assert!(holds(&before, &deleted, &gone));
        assert!(!holds(&before, &deleted, &before));
        // Sets the update does not touch may change meanwhile without making it fail.
        let mut elsewhere = applied.clone();
        read_sets(&[set("host.example.com", rtype::AAAA, 300, &["2001:db8::5"])], &mut elsewhere);
        assert!(holds(&before, &after, &elsewhere));
    }

    #[test]
    fn rate_limits_per_key_and_per_network() {
        let limits = Limits { per_key: (1.0, 3), per_network: (2.0, 5), route53_share: 0.5 };
        let l = RateLimits::new(limits);
        let t0 = Instant::now();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        // A key's burst, then refused, whatever address it comes from.
        for i in 0..3 {
            assert_eq!(l.admit(Some("dhcp"), ip(&format!("10.0.{i}.1")), t0), Ok(()));
        }
        assert_eq!(l.admit(Some("dhcp"), ip("10.9.9.9"), t0), Err(Limited::Key("dhcp".into())));
        // One second brings one token back.
        assert_eq!(l.admit(Some("dhcp"), ip("10.9.9.9"), t0 + Duration::from_secs(1)), Ok(()));
        // Addresses of one /24 share a bucket; the refusal by the network spends no key token.
        for i in 0..5 {
            assert_eq!(l.admit(None, ip(&format!("192.0.2.{i}")), t0), Ok(()));
        }
        assert_eq!(l.admit(Some("other"), ip("192.0.2.200"), t0), Err(Limited::Network(ip("192.0.2.0"))));
        for _ in 0..3 {
            assert_eq!(l.admit(Some("other"), ip("192.0.3.1"), t0), Ok(()), "the key kept its burst");
        }
        // IPv6 by /56; an IPv4-mapped address counts as IPv4.
        assert_eq!(client_network(ip("2001:db8:aa:bbcc::1")), ip("2001:db8:aa:bb00::"));
        assert_eq!(client_network(ip("::ffff:192.0.2.9")), ip("192.0.2.0"));
        // Beyond MAX_NETWORKS busy networks, the rest share one bucket instead of growing
        // the table.
        let l = RateLimits::new(Limits { per_network: (1.0, 1), ..limits });
        for i in 0..MAX_NETWORKS as u32 {
            assert_eq!(l.admit(None, IpAddr::V4(Ipv4Addr::from((i + 1) << 8)), t0), Ok(()));
        }
        assert_eq!(l.admit(None, ip("203.0.113.1"), t0), Ok(()));
        assert!(l.admit(None, ip("198.51.100.1"), t0).is_err(), "the shared bucket is spent");
        assert_eq!(l.state.lock().unwrap().networks.len(), MAX_NETWORKS + 1);
        // Once they are full again, they are forgotten to make room.
        assert_eq!(l.admit(None, ip("198.51.100.1"), t0 + Duration::from_secs(2)), Ok(()));
        assert!(l.state.lock().unwrap().networks.len() <= 2);
    }

    #[test]
    fn update_limits_have_defaults_and_ranges() {
        let spec: UpdateSpec = toml::from_str("").unwrap();
        assert_eq!(limits(&spec).unwrap(), Limits::default());
        let spec: UpdateSpec = toml::from_str(
            "rate-per-key = 2.5\nburst-per-key = 5\nrate-per-network = 1\nburst-per-network = 3\nroute53-share = 0.2\n",
        )
        .unwrap();
        assert_eq!(limits(&spec).unwrap(), Limits { per_key: (2.5, 5), per_network: (1.0, 3), route53_share: 0.2 });
        for bad in ["rate-per-key = 0", "burst-per-network = 0", "route53-share = 0", "route53-share = 1.5"] {
            let spec: UpdateSpec = toml::from_str(bad).unwrap();
            let e = limits(&spec).unwrap_err().to_string();
            assert!(e.starts_with("update."), "{bad}: {e}");
        }
    }

    #[test]
    fn routed_and_alias_sets_are_not_clobbered() {
        let before = current();
        for u in
            [rr("www.example.com", 1, rtype::A, 60, &[192, 0, 2, 1]), rr("www.example.com", 255, rtype::ANY, 0, &[])]
        {
            let mut after = before.clone();
            let e = apply(&msg(vec![], vec![u]), &zone(), &mut after).err().unwrap();
            assert_eq!(e.rcode, Rcode::Refused);
            assert!(e.why.contains("routing policy"), "{}", e.why);
        }
    }

    #[test]
    fn form_and_policy_checks() {
        let z = zone();
        let outside = msg(vec![], vec![rr("host.example.org", 1, rtype::A, 60, &[192, 0, 2, 1])]);
        assert_eq!(check_form(&outside, &z).err().map(|e| e.rcode), Some(Rcode::NotZone));
        let ttl = msg(vec![rr("host.example.com", 255, rtype::ANY, 5, &[])], vec![]);
        assert_eq!(check_form(&ttl, &z).err().map(|e| e.rcode), Some(Rcode::FormErr));
        let any_add = msg(vec![], vec![rr("host.example.com", 1, rtype::ANY, 60, &[])]);
        assert_eq!(check_form(&any_add, &z).err().map(|e| e.rcode), Some(Rcode::FormErr));

        let keys = KeyRing::new(vec![Key {
            name: absolute("dhcp").unwrap(),
            algorithm: Algorithm::HmacSha256,
            secret: vec![1; 32],
        }]);
        let g = grant(
            &GrantSpec {
                key: Some("dhcp".into()),
                zones: vec!["example.com.".into()],
                names: vec!["*.dhcp.example.com".into()],
                types: vec!["a".into(), "PTR".into()],
                ..Default::default()
            },
            &keys,
        )
        .unwrap();
        let (udp, tcp) = (r53dns_server::Transport::Udp, r53dns_server::Transport::Tcp);
        assert!(g.admits(Some("dhcp"), "10.1.2.3".parse().unwrap(), udp));
        assert!(!g.admits(None, "10.1.2.3".parse().unwrap(), tcp));
        // A grant without a key trusts addresses: over TCP only, which cannot be spoofed.
        let keyless = Grant { key: None, networks: vec![("10.0.0.0".parse().unwrap(), 8)], ..g.clone() };
        assert!(keyless.admits(None, "10.1.2.3".parse().unwrap(), tcp));
        assert!(!keyless.admits(None, "10.1.2.3".parse().unwrap(), udp));
        assert!(!keyless.admits(None, "192.0.2.1".parse().unwrap(), tcp));
        let ok = msg(vec![], vec![rr("pc1.dhcp.example.com", 1, rtype::A, 60, &[10, 0, 0, 1])]);
        assert!(check_policy(&ok, &z, &[&g]).is_ok());
        for (name, code) in [("dhcp.example.com", rtype::A), ("pc1.dhcp.example.com", rtype::TXT)] {
            let m = msg(vec![], vec![rr(name, 1, code, 60, &[10, 0, 0, 1])]);
            assert_eq!(check_policy(&m, &z, &[&g]).err().map(|e| e.rcode), Some(Rcode::Refused), "{name}");
        }
        let open = Grant { names: vec![], types: vec![], ..g.clone() };
        let soa = msg(vec![], vec![rr("example.com", 255, rtype::SOA, 0, &[])]);
        let apex_ns = msg(vec![], vec![rr("example.com", 1, rtype::NS, 60, b"\x02ns\x00")]);
        let hinfo = msg(vec![], vec![rr("pc.example.com", 1, rtype::HINFO, 60, b"\x01a\x01b")]);
        for m in [soa, apex_ns, hinfo] {
            assert_eq!(check_policy(&m, &z, &[&open]).err().map(|e| e.rcode), Some(Rcode::Refused));
        }
        assert!(grant(&GrantSpec { zones: vec!["example.com".into()], ..Default::default() }, &keys).is_err());
        assert!(
            grant(&GrantSpec { key: Some("nope".into()), zones: vec!["x".into()], ..Default::default() }, &keys)
                .is_err()
        );
    }

    #[test]
    fn bind_key_files_are_read_with_line_numbers_in_errors() {
        let text = "# tsig-keygen output\nkey \"dhcp-updater\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0\";\n};\n/* another */ key legacy { algorithm hmac-md5; secret \"YWJj\"; };\n";
        let keys = crate::bindconf::read_keys(text, Path::new("k.conf")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name, "dhcp-updater");
        assert_eq!(keys[0].secret, "c2VjcmV0c2VjcmV0");
        assert_eq!(keys[1].algorithm.as_deref(), Some("hmac-md5"));
        let ring = load_keys(&TsigSpec { key: keys, key_files: vec![] }).unwrap();
        assert_eq!(ring.by_label("LEGACY").map(|k| k.algorithm), Some(Algorithm::HmacMd5));
        let e = crate::bindconf::read_keys(
            "key \"x\" {\n algorithm hmac-sha256;\n colour blue;\n};\n",
            Path::new("k.conf"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("k.conf:3:"), "{e}");
    }
}
