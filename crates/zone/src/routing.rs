//! Route53 routing policies, evaluated per query.
//!
//! Records with the same name and type but different set identifiers are not merged: each
//! query picks among them by the policy (weighted, failover, latency, geolocation,
//! multivalue answer, IP-based). The choice is a pure function of the members, their health
//! (a snapshot-time fact), the server's configured home region and location, the client's
//! address and a random number supplied with the query — so the lookup stays free of I/O
//! and allocation.

use std::net::IpAddr;

use smallvec::SmallVec;

use crate::zone::Rrset;

/// How a group of records is chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Share = weight / sum of weights.
    Weighted,
    /// PRIMARY while healthy, else SECONDARY.
    Failover,
    /// The record of the configured home region.
    Latency,
    /// The most specific match of the configured home location.
    Geolocation,
    /// Up to eight healthy records, in random order.
    Multivalue,
    /// The location whose CIDR block contains the client.
    IpBased,
}

/// A member's selection rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Weighted: 0–255.
    Weight(u32),
    /// Failover primary.
    Primary,
    /// Failover secondary.
    Secondary,
    /// Latency: the AWS region (`us-east-1`).
    Region(Box<str>),
    /// Geolocation; all `None` is the default location (`*`).
    Geo(GeoLocation),
    /// Multivalue answer.
    Multivalue,
    /// IP-based: the location's CIDR blocks; empty is the default location (`*`).
    Cidr(Box<[(IpAddr, u8)]>),
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Weighted => "weighted",
            Policy::Failover => "failover",
            Policy::Latency => "latency",
            Policy::Geolocation => "geolocation",
            Policy::Multivalue => "multivalue",
            Policy::IpBased => "ip-based",
        })
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Weight(w) => write!(f, "weight={w}"),
            Rule::Primary => f.write_str("failover=PRIMARY"),
            Rule::Secondary => f.write_str("failover=SECONDARY"),
            Rule::Region(r) => write!(f, "region={r}"),
            Rule::Geo(g) if g.is_default() => f.write_str("geo=*"),
            Rule::Geo(g) => {
                let parts: Vec<&str> =
                    [&g.continent, &g.country, &g.subdivision].into_iter().filter_map(|p| p.as_deref()).collect();
                write!(f, "geo={}", parts.join("-"))
            }
            Rule::Multivalue => f.write_str("multivalue"),
            Rule::Cidr(b) if b.is_empty() => f.write_str("cidr=*"),
            Rule::Cidr(b) => {
                let parts: Vec<String> = b.iter().map(|(a, l)| format!("{a}/{l}")).collect();
                write!(f, "cidr={}", parts.join(","))
            }
        }
    }
}

/// A geographic location as Route53 names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoLocation {
    /// Continent code (`EU`).
    pub continent: Option<Box<str>>,
    /// ISO country code (`DE`), or `*` for the default location.
    pub country: Option<Box<str>>,
    /// Subdivision code (`CA` within `US`).
    pub subdivision: Option<Box<str>>,
}

impl GeoLocation {
    fn is_default(&self) -> bool {
        self.continent.is_none() && self.subdivision.is_none() && self.country.as_deref().is_none_or(|c| c == "*")
    }
}

/// One record set of a routed group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The set identifier.
    pub id: Box<str>,
    /// How it is chosen.
    pub rule: Rule,
    /// Its health check's last status (true without a health check).
    pub healthy: bool,
    /// Its records. Empty means an alias that could not be resolved: SERVFAIL if chosen.
    pub rrset: Rrset,
}

/// A routed group: every record set of one name and type that has a set identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The type of every member.
    pub rtype: u16,
    /// The policy (Route53 requires one policy per name and type).
    pub policy: Policy,
    /// The members.
    pub members: Box<[Member]>,
}

/// Where this server stands, for latency and geolocation routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingContext {
    /// The region that latency routing treats as closest (`eu-west-1`).
    pub home_region: Option<Box<str>>,
    /// The location that geolocation routing treats as the client's.
    pub home_location: GeoLocation,
}

/// The client of one query, as routing sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client {
    /// Source address, or the EDNS client subnet address when present.
    pub ip: Option<IpAddr>,
    /// A fresh random number for weighted and multivalue choices.
    pub random: u64,
}

/// The RRsets chosen for one query (up to eight for multivalue).
pub type Selection<'a> = SmallVec<[&'a Rrset; 8]>;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host prefix).
pub fn parse_prefix(s: &str) -> Option<crate::Prefix> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = match l {
        Some(l) => l.trim().parse().ok()?,
        None => max,
    };
    (len <= max).then_some((addr, len))
}

/// Whether `ip` lies in `net/len` (same address family only).
pub fn in_prefix(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

impl Routed {
    /// Chooses the member RRsets for one query.
    pub fn select(&self, ctx: &RoutingContext, client: Client) -> Selection<'_> {
        let mut rng = client.random;
        // Route53: when no member is healthy, answer as if all were.
        let any_healthy = self.members.iter().any(|m| m.healthy);
        let usable = |m: &&Member| m.healthy || !any_healthy;
        let mut out = Selection::new();
        match self.policy {
            Policy::Weighted => {
                let weight = |m: &Member| match m.rule {
                    Rule::Weight(w) => u64::from(w),
                    _ => 0,
                };
                let positive: u64 = self.members.iter().filter(usable).map(weight).sum();
                // Weight 0 is used only when nothing with weight is left; all zero → equal.
                let (total, w): (u64, &dyn Fn(&Member) -> u64) = if positive > 0 {
                    (positive, &weight)
                } else {
                    (self.members.iter().filter(usable).count() as u64, &|_| 1)
                };
                if total == 0 {
                    return out;
                }
                let mut pick = splitmix(&mut rng) % total;
                for m in self.members.iter().filter(usable) {
                    let mw = w(m);
                    if pick < mw {
                        out.push(&m.rrset);
                        break;
                    }
                    pick -= mw;
                }
            }
            Policy::Failover => {
                let primary = self.members.iter().find(|m| m.rule == Rule::Primary);
                let secondary = self.members.iter().find(|m| m.rule == Rule::Secondary);
                let chosen = match (primary, secondary) {
                    (Some(p), _) if p.healthy => Some(p),
                    (_, Some(s)) if s.healthy => Some(s),
                    (Some(p), _) => Some(p),
                    (None, s) => s,
                };
                out.extend(chosen.map(|m| &m.rrset));
            }
            Policy::Latency => {
                let region = |m: &Member| match &m.rule {
                    Rule::Region(r) => Some(r.clone()),
                    _ => None,
                };
                let home = ctx.home_region.as_deref();
                let chosen = self
                    .members
                    .iter()
                    .filter(usable)
                    .find(|m| region(m).as_deref() == home && home.is_some())
                    .or_else(|| self.members.iter().filter(usable).min_by_key(|m| region(m)));
                out.extend(chosen.map(|m| &m.rrset));
            }
            Policy::Geolocation => {
                let home = &ctx.home_location;
                let geo = |m: &Member| match &m.rule {
                    Rule::Geo(g) => Some(g.clone()),
                    _ => None,
                };
                let score = |g: &GeoLocation| -> Option<u8> {
                    if g.is_default() {
                        return Some(0);
                    }
                    if g.subdivision.is_some() {
                        return (g.subdivision == home.subdivision && g.country == home.country).then_some(3);
                    }
                    if g.country.is_some() {
                        return (g.country == home.country).then_some(2);
                    }
                    (g.continent.is_some() && g.continent == home.continent).then_some(1)
                };
                let chosen = self
                    .members
                    .iter()
                    .filter(usable)
                    .filter_map(|m| Some((score(&geo(m)?)?, m)))
                    .max_by_key(|(s, _)| *s);
                out.extend(chosen.map(|(_, m)| &m.rrset));
            }
            Policy::Multivalue => {
                let n = self.members.iter().filter(usable).count();
                // A random rotation and stride give a fair random subset of up to 8 without
                // allocating.
                if n == 0 {
                    return out;
                }
                let start = (splitmix(&mut rng) % n as u64) as usize;
                for k in 0..n.min(8) {
                    if let Some(m) = self.members.iter().filter(usable).nth((start + k) % n) {
                        out.push(&m.rrset);
                    }
                }
            }
            Policy::IpBased => {
                let mut best: Option<(u8, &Member)> = None;
                if let Some(ip) = client.ip {
                    for m in self.members.iter().filter(usable) {
                        if let Rule::Cidr(blocks) = &m.rule {
                            for &(net, len) in blocks.iter() {
                                if in_prefix(net, len, ip) && best.is_none_or(|(l, _)| len > l) {
                                    best = Some((len, m));
                                }
                            }
                        }
                    }
                }
                let default =
                    || self.members.iter().filter(usable).find(|m| matches!(&m.rule, Rule::Cidr(b) if b.is_empty()));
                out.extend(best.map(|(_, m)| m).or_else(default).map(|m| &m.rrset));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, rule: Rule, healthy: bool, last_octet: u8) -> Member {
        Member { id: id.into(), rule, healthy, rrset: Rrset::new(1, 60, vec![vec![192, 0, 2, last_octet].into()]) }
    }

    fn group(policy: Policy, members: Vec<Member>) -> Routed {
        Routed { rtype: 1, policy, members: members.into() }
    }

    fn pick(r: &Routed, ctx: &RoutingContext, ip: Option<IpAddr>, random: u64) -> Vec<u8> {
        r.select(ctx, Client { ip, random }).iter().map(|rr| rr.rdatas().first().unwrap()[3]).collect()
    }

    #[test]
    fn weighted_shares_follow_weights() {
        let r =
            group(Policy::Weighted, vec![member("a", Rule::Weight(3), true, 1), member("b", Rule::Weight(1), true, 2)]);
        let ctx = RoutingContext::default();
        let mut seed = 12345u64;
        let a = (0..4000).filter(|_| pick(&r, &ctx, None, splitmix(&mut seed)) == vec![1]).count();
        assert!((2800..=3200).contains(&a), "3:1 over 4000 gave {a} for the heavier");
    }

    #[test]
    fn weight_zero_only_when_nothing_else_is_healthy() {
        let ctx = RoutingContext::default();
        let r =
            group(Policy::Weighted, vec![member("a", Rule::Weight(0), true, 1), member("b", Rule::Weight(5), true, 2)]);
        assert!((0..200).all(|i| pick(&r, &ctx, None, i) == vec![2]));
        let r = group(
            Policy::Weighted,
            vec![member("a", Rule::Weight(0), true, 1), member("b", Rule::Weight(5), false, 2)],
        );
        assert!((0..200).all(|i| pick(&r, &ctx, None, i) == vec![1]));
        // All zero: equal shares.
        let r =
            group(Policy::Weighted, vec![member("a", Rule::Weight(0), true, 1), member("b", Rule::Weight(0), true, 2)]);
        let mut seed = 7;
        let a = (0..2000).filter(|_| pick(&r, &ctx, None, splitmix(&mut seed)) == vec![1]).count();
        assert!((900..=1100).contains(&a), "{a}");
    }

    #[test]
    fn failover_prefers_a_healthy_primary() {
        let ctx = RoutingContext::default();
        let up =
            group(Policy::Failover, vec![member("p", Rule::Primary, true, 1), member("s", Rule::Secondary, true, 2)]);
        assert_eq!(pick(&up, &ctx, None, 0), vec![1]);
        let down =
            group(Policy::Failover, vec![member("p", Rule::Primary, false, 1), member("s", Rule::Secondary, true, 2)]);
        assert_eq!(pick(&down, &ctx, None, 0), vec![2]);
        let all_down =
            group(Policy::Failover, vec![member("p", Rule::Primary, false, 1), member("s", Rule::Secondary, false, 2)]);
        assert_eq!(pick(&all_down, &ctx, None, 0), vec![1]);
    }

    #[test]
    fn multivalue_returns_up_to_eight_healthy() {
        let ctx = RoutingContext::default();
        let members = (0..12).map(|i| member(&i.to_string(), Rule::Multivalue, i != 3, i)).collect();
        let r = group(Policy::Multivalue, members);
        for seed in 0..50 {
            let got = pick(&r, &ctx, None, seed);
            assert_eq!(got.len(), 8);
            assert!(!got.contains(&3), "an unhealthy record was returned");
            let mut uniq = got.clone();
            uniq.sort();
            uniq.dedup();
            assert_eq!(uniq.len(), 8);
        }
    }

    #[test]
    fn latency_and_geolocation_use_the_home_location() {
        let ctx = RoutingContext {
            home_region: Some("eu-west-1".into()),
            home_location: GeoLocation { continent: Some("EU".into()), country: Some("DE".into()), subdivision: None },
        };
        let lat = group(
            Policy::Latency,
            vec![
                member("us", Rule::Region("us-east-1".into()), true, 1),
                member("eu", Rule::Region("eu-west-1".into()), true, 2),
            ],
        );
        assert_eq!(pick(&lat, &ctx, None, 0), vec![2]);
        let geo = |c: Option<&str>, k: Option<&str>| GeoLocation {
            continent: c.map(Into::into),
            country: k.map(Into::into),
            subdivision: None,
        };
        let g = group(
            Policy::Geolocation,
            vec![
                member("default", Rule::Geo(geo(None, Some("*"))), true, 1),
                member("eu", Rule::Geo(geo(Some("EU"), None)), true, 2),
                member("de", Rule::Geo(geo(None, Some("DE"))), true, 3),
            ],
        );
        assert_eq!(pick(&g, &ctx, None, 0), vec![3]);
        let no_default = group(Policy::Geolocation, vec![member("us", Rule::Geo(geo(None, Some("US"))), true, 1)]);
        assert!(pick(&no_default, &ctx, None, 0).is_empty(), "no match and no default: no answer");
    }

    #[test]
    fn ip_based_takes_the_longest_matching_block() {
        let ctx = RoutingContext::default();
        let cidr = |v: &[(&str, u8)]| Rule::Cidr(v.iter().map(|(a, l)| (a.parse().unwrap(), *l)).collect());
        let r = group(
            Policy::IpBased,
            vec![
                member("wide", cidr(&[("10.0.0.0", 8)]), true, 1),
                member("narrow", cidr(&[("10.1.0.0", 16)]), true, 2),
                member("default", cidr(&[]), true, 3),
            ],
        );
        assert_eq!(pick(&r, &ctx, Some("10.1.2.3".parse().unwrap()), 0), vec![2]);
        assert_eq!(pick(&r, &ctx, Some("10.9.2.3".parse().unwrap()), 0), vec![1]);
        assert_eq!(pick(&r, &ctx, Some("192.0.2.1".parse().unwrap()), 0), vec![3]);
        assert_eq!(pick(&r, &ctx, None, 0), vec![3]);
    }
}
