//! Route53 record sets → an immutable [`Zone`]. Pure: no I/O, every input passed in.
//!
//! Faithful means: `\ooo` escapes (octal, as Route53 writes them) decoded in names and values;
//! aliases answered with their target's data and TTL, never as a CNAME; record sets with set
//! identifiers kept as routed groups for per-query evaluation; the SOA serial replaced by one
//! derived from content. Odd data skips the one record set with a warning; only a zone that
//! cannot stand (no SOA or NS) fails.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use r53dns_zone::rdata::{parse_rdata, rtype, type_from_str, type_to_string};
use r53dns_zone::zonefile::tokenize;
use r53dns_zone::{GeoLocation, Member, Name, Policy, Prefix, Routed, Rrset, Rule, Source, Zone, ZoneBuilder};
use sha2::{Digest, Sha256};

use crate::model::{HostedZone, RecordSet, bare_zone_id};

/// Why a zone could not be converted (its last good version stays).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The zone's own name is unusable.
    #[error("zone {zone}: bad zone name '{name}': {reason}")]
    ZoneName {
        /// Zone ID.
        zone: String,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The records do not form a servable zone.
    #[error("zone {zone}: {source}")]
    Invalid {
        /// Zone ID.
        zone: String,
        /// What is wrong.
        source: r53dns_zone::ZoneError,
    },
}

/// Addresses of an AWS endpoint (ELB, CloudFront…) an alias points to, as last resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointAddrs {
    /// IPv4 addresses.
    pub a: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    pub aaaa: Vec<Ipv6Addr>,
}

/// TTL of answers for aliases to AWS endpoints.
pub const ENDPOINT_TTL: u32 = 60;
/// Longest alias-to-alias chain followed.
const MAX_ALIAS_DEPTH: usize = 8;

/// Everything a conversion may look at besides the zone's own records.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// Every zone of the account(s) by bare ID, with its record sets (for aliases).
    pub zones: HashMap<String, (HostedZone, Vec<RecordSet>)>,
    /// Health-check ID → healthy.
    pub health: HashMap<String, bool>,
    /// (collection ID, location) → CIDR blocks.
    pub cidr_blocks: HashMap<(String, String), Vec<Prefix>>,
    /// Lower-case endpoint name without trailing dot → resolved addresses.
    pub endpoints: HashMap<String, EndpointAddrs>,
}

/// A converted zone.
#[derive(Debug)]
pub struct Converted {
    /// The zone, serial set.
    pub zone: Zone,
    /// What was skipped or adjusted, one line each.
    pub warnings: Vec<String>,
    /// SHA-256 of the content, serial excluded: equal content, equal hash.
    pub content_hash: [u8; 32],
    /// AWS endpoint names aliases point to (to resolve on their own timer).
    pub endpoints: Vec<String>,
}

/// Route53 escapes are octal (`\052`); RFC 1035 presentation is decimal (`\042`). Rewrites
/// the first into the second and leaves `\X` alone.
pub fn octal_escapes_to_decimal(s: &str) -> Result<String, String> {
    rewrite_escapes(s, |d| {
        if d.iter().any(|&c| c > b'7') {
            return Err(format!("'\\{}' is not an octal escape", String::from_utf8_lossy(d)));
        }
        let v = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
        if v > 255 {
            return Err(format!("escape \\{} is out of range", String::from_utf8_lossy(d)));
        }
        Ok(format!("\\{v:03}"))
    })
}

/// The inverse of [`octal_escapes_to_decimal`]: presentation text with `\DDD` decimal escapes
/// as Route53 writes it, with `\ooo` octal ones.
pub fn decimal_escapes_to_octal(s: &str) -> String {
    let octal = |d: &[u8]| {
        let v = u32::from(d[0] - b'0') * 100 + u32::from(d[1] - b'0') * 10 + u32::from(d[2] - b'0');
        Ok(format!("\\{v:03o}"))
    };
    rewrite_escapes(s, octal).unwrap_or_else(|_| s.to_owned())
}

/// Copies `s`, replacing each three-digit escape `\ddd` by `digits(ddd)`; other escapes and
/// characters are kept. A trailing backslash is an error.
fn rewrite_escapes(s: &str, digits: impl Fn(&[u8]) -> Result<String, String>) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(d) = b.get(i + 1..i + 4).filter(|d| d.iter().all(u8::is_ascii_digit)) {
                out.push_str(&digits(d)?);
                i += 4;
                continue;
            }
            // `\X`: kept as is, X being a whole character (it may be non-ASCII).
            let Some(next) = s.get(i + 1..).and_then(|r| r.chars().next()) else {
                return Err("trailing backslash".into());
            };
            out.push('\\');
            out.push(next);
            i += 1 + next.len_utf8();
            continue;
        }
        // Copy one UTF-8 character.
        let ch = s[i..].chars().next().unwrap_or('?');
        out.push(ch);
        i += ch.len_utf8();
    }
    Ok(out)
}

/// A wire-form name as Route53 text: absolute, octal escapes, a leading `*` label as is.
pub fn route53_name(name: &Name) -> String {
    decimal_escapes_to_octal(&name.to_text())
}

/// A wire-form RDATA as a Route53 value.
pub fn route53_value(code: u16, rdata: &[u8]) -> String {
    decimal_escapes_to_octal(&r53dns_zone::rdata::rdata_to_text(code, rdata))
}

/// A Route53 name (absolute, octal escapes) as a wire-form name.
pub fn parse_route53_name(s: &str) -> Result<Name, String> {
    let text = octal_escapes_to_decimal(s)?;
    // Absolute already if it ends in a dot that is not escaped (an odd run of backslashes
    // before it escapes it; an even one is escaped backslashes).
    let bytes = text.as_bytes();
    let run = bytes[..bytes.len().saturating_sub(1)].iter().rev().take_while(|&&b| b == b'\\').count();
    let absolute = text.ends_with('.') && run.is_multiple_of(2);
    let text = if absolute { text } else { format!("{text}.") };
    Name::parse(&text, None).map_err(|e| e.to_string())
}

/// A Route53 value (presentation form, octal escapes, names absolute) as wire RDATA.
pub fn parse_value(code: u16, value: &str) -> Result<Vec<u8>, String> {
    let text = octal_escapes_to_decimal(value)?;
    let tokens = tokenize(&text)?;
    // Names in Route53 values are absolute whether or not they end in a dot.
    parse_rdata(code, &tokens, Some(&Name::root()))
}

/// A record set's data after alias resolution: plain or routed.
enum Data {
    Plain(Rrset),
    Routed(Routed),
}

struct Ctx<'a> {
    inputs: &'a Inputs,
    warnings: Vec<String>,
    endpoints: Vec<String>,
}

fn describe(r: &RecordSet) -> String {
    match &r.set_identifier {
        Some(id) => format!("{} {} ({id})", r.name, r.rtype),
        None => format!("{} {}", r.name, r.rtype),
    }
}

impl Ctx<'_> {
    /// The values of a non-alias record set.
    fn values(&mut self, r: &RecordSet, code: u16) -> Option<Rrset> {
        let ttl = match r.ttl {
            Some(t) => u32::try_from(t).unwrap_or(0),
            None => {
                self.warnings.push(format!("{}: no TTL; using 300", describe(r)));
                300
            }
        };
        let mut rdatas = Vec::new();
        for v in &r.resource_records {
            match parse_value(code, &v.value) {
                Ok(rd) => rdatas.push(rd.into_boxed_slice()),
                Err(e) => self.warnings.push(format!("{}: value '{}' skipped: {e}", describe(r), v.value)),
            }
        }
        if rdatas.is_empty() {
            self.warnings.push(format!("{}: no usable values; record set skipped", describe(r)));
            return None;
        }
        Some(Rrset::new(code, ttl, rdatas))
    }

    /// The data of a record set, following aliases.
    fn data(&mut self, r: &RecordSet, code: u16, depth: usize) -> Option<Data> {
        let Some(alias) = &r.alias_target else {
            return self.values(r, code).map(Data::Plain);
        };
        let target_zone = bare_zone_id(&alias.hosted_zone_id);
        let target = match parse_route53_name(&alias.dns_name) {
            Ok(t) => t.to_lowercase(),
            Err(e) => {
                self.warnings.push(format!("{}: bad alias target '{}': {e}", describe(r), alias.dns_name));
                return None;
            }
        };
        let Some((_, records)) = self.inputs.zones.get(target_zone) else {
            return Some(Data::Plain(self.endpoint(&alias.dns_name, code)));
        };
        if depth >= MAX_ALIAS_DEPTH {
            self.warnings.push(format!("{}: alias chain longer than {MAX_ALIAS_DEPTH}; skipped", describe(r)));
            return None;
        }
        let at_target: Vec<&RecordSet> = records
            .iter()
            .filter(|t| {
                type_from_str(&t.rtype) == Some(code)
                    && parse_route53_name(&t.name).is_ok_and(|n| n.to_lowercase() == target)
            })
            .collect();
        if at_target.is_empty() {
            self.warnings.push(format!("{}: alias target {} has no {} records", describe(r), alias.dns_name, r.rtype));
            return None;
        }
        if at_target.iter().all(|t| t.set_identifier.is_none()) {
            return self.data(at_target[0], code, depth + 1);
        }
        // The target is a routed group: the alias answers by the same policy.
        let owned: Vec<RecordSet> = at_target.into_iter().cloned().collect();
        self.routed(&owned, code, depth + 1).map(Data::Routed)
    }

    /// An alias to an AWS endpoint: the last resolved addresses, TTL 60; none yet → empty
    /// (SERVFAIL until resolved).
    fn endpoint(&mut self, dns_name: &str, code: u16) -> Rrset {
        let key = dns_name.trim_end_matches('.').to_ascii_lowercase();
        if !self.endpoints.contains(&key) {
            self.endpoints.push(key.clone());
        }
        let addrs = self.inputs.endpoints.get(&key);
        let rdatas: Vec<Box<[u8]>> = match (code, addrs) {
            (rtype::A, Some(a)) => a.a.iter().map(|ip| ip.octets().to_vec().into()).collect(),
            (rtype::AAAA, Some(a)) => a.aaaa.iter().map(|ip| ip.octets().to_vec().into()).collect(),
            _ => Vec::new(),
        };
        Rrset::new(code, ENDPOINT_TTL, rdatas)
    }

    /// A routed group from record sets of one name and type with set identifiers.
    fn routed(&mut self, sets: &[RecordSet], code: u16, depth: usize) -> Option<Routed> {
        let policy_of = |r: &RecordSet| {
            if r.weight.is_some() {
                Some(Policy::Weighted)
            } else if r.failover.is_some() {
                Some(Policy::Failover)
            } else if r.region.is_some() {
                Some(Policy::Latency)
            } else if r.geo_location.is_some() {
                Some(Policy::Geolocation)
            } else if r.multi_value_answer == Some(true) {
                Some(Policy::Multivalue)
            } else if r.cidr_routing_config.is_some() {
                Some(Policy::IpBased)
            } else {
                None
            }
        };
        let policy = sets.iter().find_map(policy_of)?;
        let mut members = Vec::new();
        for r in sets {
            if policy_of(r) != Some(policy) {
                self.warnings
                    .push(format!("{}: routing policy differs from the rest of its group; skipped", describe(r)));
                continue;
            }
            let rule = match policy {
                Policy::Weighted => Rule::Weight(u32::try_from(r.weight.unwrap_or(0).clamp(0, 255)).unwrap_or(0)),
                Policy::Failover if r.failover.as_deref() == Some("SECONDARY") => Rule::Secondary,
                Policy::Failover => Rule::Primary,
                Policy::Latency => Rule::Region(r.region.clone().unwrap_or_default().into()),
                Policy::Geolocation => {
                    let g = r.geo_location.clone().unwrap_or_default();
                    Rule::Geo(GeoLocation {
                        continent: g.continent_code.map(Into::into),
                        country: g.country_code.map(Into::into),
                        subdivision: g.subdivision_code.map(Into::into),
                    })
                }
                Policy::Multivalue => Rule::Multivalue,
                Policy::IpBased => {
                    let c = r.cidr_routing_config.clone()?;
                    if c.location_name == "*" {
                        Rule::Cidr(Box::new([]))
                    } else {
                        let key = (c.collection_id.clone(), c.location_name.clone());
                        let blocks = self.inputs.cidr_blocks.get(&key).cloned().unwrap_or_default();
                        if blocks.is_empty() {
                            self.warnings.push(format!(
                                "{}: CIDR location {}/{} has no blocks",
                                describe(r),
                                c.collection_id,
                                c.location_name
                            ));
                        }
                        Rule::Cidr(blocks.into())
                    }
                }
            };
            let healthy = r.health_check_id.as_ref().is_none_or(|h| self.inputs.health.get(h).copied().unwrap_or(true));
            let rrset = match self.data(r, code, depth) {
                Some(Data::Plain(rr)) => rr,
                Some(Data::Routed(_)) => {
                    self.warnings
                        .push(format!("{}: routed alias to a routed group is not supported; skipped", describe(r)));
                    continue;
                }
                None => continue,
            };
            members.push(Member { id: r.set_identifier.clone().unwrap_or_default().into(), rule, healthy, rrset });
        }
        if members.is_empty() {
            return None;
        }
        Some(Routed { rtype: code, policy, members: members.into() })
    }
}

/// Converts the zone `zone_id` of `inputs.zones`. `serial` maps the content hash to the SOA
/// serial to publish (see the crate docs on serials).
pub fn convert(
    zone_id: &str,
    inputs: &Inputs,
    serial: impl FnOnce(&[u8; 32]) -> u32,
) -> Result<Converted, ConvertError> {
    let Some((hz, records)) = inputs.zones.get(zone_id) else {
        return Err(ConvertError::ZoneName {
            zone: zone_id.into(),
            name: String::new(),
            reason: "unknown zone".into(),
        });
    };
    let apex = parse_route53_name(&hz.name).map_err(|reason| ConvertError::ZoneName {
        zone: zone_id.into(),
        name: hz.name.clone(),
        reason,
    })?;
    let mut ctx = Ctx { inputs, warnings: Vec::new(), endpoints: Vec::new() };
    // Group by (owner, type): plain record sets and routed groups.
    let mut plain: BTreeMap<(Vec<u8>, u16), (Name, Rrset)> = BTreeMap::new();
    let mut routed_sets: BTreeMap<(Vec<u8>, u16), (Name, Vec<RecordSet>)> = BTreeMap::new();
    let mut aliased_groups: Vec<(Name, Routed)> = Vec::new();
    for r in records {
        let owner = match parse_route53_name(&r.name) {
            Ok(n) if n.is_subdomain_of(&apex) => n,
            Ok(_) => {
                ctx.warnings.push(format!("{}: outside zone {}; skipped", describe(r), hz.name));
                continue;
            }
            Err(e) => {
                ctx.warnings.push(format!("{}: bad name: {e}; skipped", describe(r)));
                continue;
            }
        };
        let Some(code) = type_from_str(&r.rtype) else {
            ctx.warnings.push(format!("{}: unknown type; skipped", describe(r)));
            continue;
        };
        let key = (owner.to_lowercase().wire().to_vec(), code);
        if r.set_identifier.is_some() {
            routed_sets.entry(key).or_insert_with(|| (owner.clone(), Vec::new())).1.push(r.clone());
            continue;
        }
        if plain.contains_key(&key) {
            ctx.warnings.push(format!("{}: duplicate record set; skipped", describe(r)));
            continue;
        }
        match ctx.data(r, code, 0) {
            Some(Data::Plain(rr)) => {
                plain.insert(key, (owner, rr));
            }
            // An alias to a routed group answers by the target's policy under this name.
            Some(Data::Routed(g)) => aliased_groups.push((owner, g)),
            None => {}
        }
    }
    let mut routed: Vec<(Name, Routed)> = Vec::new();
    for ((_, code), (owner, sets)) in &routed_sets {
        let key = (owner.to_lowercase().wire().to_vec(), *code);
        let aliased = aliased_groups.iter().any(|(o, g)| g.rtype == *code && o.to_lowercase() == owner.to_lowercase());
        if plain.contains_key(&key) || aliased {
            ctx.warnings.push(format!(
                "{owner} {}: records with and without set identifier; routed ones skipped",
                type_to_string(*code)
            ));
            continue;
        }
        if let Some(g) = ctx.routed(sets, *code, 0) {
            routed.push((owner.clone(), g));
        }
    }
    routed.extend(aliased_groups);
    // CNAME beside other data cannot be served (RFC 2181 §10.1); Route53 forbids it, but
    // emulators and old data may have it: the CNAME goes.
    let names_with_other: std::collections::HashSet<Vec<u8>> = plain
        .keys()
        .filter(|(_, t)| *t != rtype::CNAME)
        .map(|(n, _)| n.clone())
        .chain(routed.iter().filter(|(_, g)| g.rtype != rtype::CNAME).map(|(n, _)| n.to_lowercase().wire().to_vec()))
        .collect();
    plain.retain(|(n, t), (owner, _)| {
        let conflict = *t == rtype::CNAME && names_with_other.contains(n);
        if conflict {
            ctx.warnings.push(format!("{owner} CNAME: beside other data; skipped"));
        }
        !conflict
    });
    routed.retain(|(owner, g)| {
        let conflict = g.rtype == rtype::CNAME && names_with_other.contains(owner.to_lowercase().wire());
        if conflict {
            ctx.warnings.push(format!("{owner} CNAME: beside other data; skipped"));
        }
        !conflict
    });
    let content_hash = hash(&plain, &routed);
    let serial = serial(&content_hash);
    let mut b = ZoneBuilder::new(apex.clone(), Source::Other(format!("route53:{zone_id}")));
    let invalid = |source| ConvertError::Invalid { zone: zone_id.into(), source };
    for ((_, code), (owner, rr)) in &plain {
        if rr.rdatas().is_empty() {
            b.add_unresolved(owner, *code, rr.ttl()).map_err(invalid)?;
        }
        for rd in rr.rdatas() {
            let rd = if *code == rtype::SOA { with_serial(rd, serial) } else { rd.into() };
            b.add(owner, *code, rr.ttl(), rd, "").map_err(invalid)?;
        }
    }
    for (owner, g) in routed {
        b.add_routed(&owner, g, "").map_err(invalid)?;
    }
    let (zone, more) = b.finish().map_err(invalid)?;
    ctx.warnings.extend(more);
    Ok(Converted { zone, warnings: ctx.warnings, content_hash, endpoints: ctx.endpoints })
}

/// Replaces the SERIAL field of an SOA RDATA.
fn with_serial(rd: &[u8], serial: u32) -> Box<[u8]> {
    let mut v = rd.to_vec();
    if v.len() >= 20 {
        let at = v.len() - 20;
        v[at..at + 4].copy_from_slice(&serial.to_be_bytes());
    }
    v.into()
}

/// The zone's content hash, the SOA serial left out: the sum (four 64-bit lanes, wrapping) of
/// one SHA-256 per record set and per routed group, so that it does not depend on order and
/// a change to a few owners moves it by their shares alone ([`node_digest`]).
fn hash(plain: &BTreeMap<(Vec<u8>, u16), (Name, Rrset)>, routed: &[(Name, Routed)]) -> [u8; 32] {
    let mut h = [0; 32];
    for ((owner, code), (_, rr)) in plain {
        digest_add(&mut h, &set_digest(owner, *code, rr));
    }
    for (o, g) in routed {
        digest_add(&mut h, &group_digest(o, g));
    }
    h
}

fn set_digest(lower_owner: &[u8], code: u16, rr: &Rrset) -> [u8; 32] {
    let mut rdatas: Vec<Box<[u8]>> =
        rr.rdatas().map(|rd| if code == rtype::SOA { with_serial(rd, 0) } else { rd.into() }).collect();
    rdatas.sort();
    let mut h = Sha256::new();
    h.update(lower_owner);
    h.update(code.to_be_bytes());
    h.update(rr.ttl().to_be_bytes());
    for rd in rdatas {
        h.update((rd.len() as u32).to_be_bytes());
        h.update(&rd);
    }
    h.finalize().into()
}

fn group_digest(owner: &Name, g: &Routed) -> [u8; 32] {
    Sha256::digest(format!("{}|{g:?}", owner.to_lowercase()).as_bytes()).into()
}

/// One owner's share of the content hash of the zone it belongs to, from the converted node:
/// a zone's hash less the old shares of some owners plus their new ones is the hash of the
/// zone with those owners changed.
pub fn node_digest(node: &r53dns_zone::Node) -> [u8; 32] {
    let mut h = [0; 32];
    let lower = node.name().to_lowercase();
    for rr in node.rrsets() {
        digest_add(&mut h, &set_digest(lower.wire(), rr.rtype(), rr));
    }
    for g in node.routed() {
        digest_add(&mut h, &group_digest(node.name(), g));
    }
    h
}

/// `a += b`, lane by lane.
pub fn digest_add(a: &mut [u8; 32], b: &[u8; 32]) {
    lanes(a, b, u64::wrapping_add);
}

/// `a -= b`, lane by lane.
pub fn digest_sub(a: &mut [u8; 32], b: &[u8; 32]) {
    lanes(a, b, u64::wrapping_sub);
}

fn lanes(a: &mut [u8; 32], b: &[u8; 32], op: fn(u64, u64) -> u64) {
    for (x, y) in a.chunks_exact_mut(8).zip(b.chunks_exact(8)) {
        let (mut l, mut r) = ([0; 8], [0; 8]);
        l.copy_from_slice(x);
        r.copy_from_slice(y);
        x.copy_from_slice(&op(u64::from_le_bytes(l), u64::from_le_bytes(r)).to_le_bytes());
    }
}
