//! Who may UPDATE what: `[[update.grant]]` validated into [`Grant`]s (key, client
//! networks, zones, names, types).

use std::net::IpAddr;

use anyhow::{Context as _, bail};
use r53dns_proto::tsig::KeyRing;
use r53dns_zone::rdata::type_from_str;
use r53dns_zone::{Name, Prefix, rtype};

use crate::config::{GrantSpec, UpdateSpec, parse_network};

/// The record types Route53 stores.
pub(super) const ROUTE53_TYPES: [u16; 17] = [
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

/// Owner names a grant allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// This name only.
    Exact(Name),
    /// Any name strictly below this one (`*.dhcp.example.com`).
    Below(Name),
}

impl NamePattern {
    pub(super) fn matches(&self, name: &Name) -> bool {
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
pub(super) fn admitted_names_zone(
    grants: &[Grant],
    key: Option<&str>,
    ip: IpAddr,
    transport: r53dns_server::Transport,
    label: &str,
) -> bool {
    grants.iter().any(|g| g.admits(key, ip, transport) && g.zones.iter().any(|z| z == label))
}

impl Grant {
    pub(super) fn covers_zone(&self, name: &str, id: &str) -> bool {
        self.zones.iter().any(|z| z == name || z == id)
    }

    /// Whether this grant accepts a request signed with `key` (or unsigned) from `ip` over
    /// `transport`. A grant without a key trusts the source address alone, which a UDP
    /// datagram can forge: it admits TCP only (the handshake proves the address).
    pub(super) fn admits(&self, key: Option<&str>, ip: IpAddr, transport: r53dns_server::Transport) -> bool {
        let from = self.networks.iter().any(|&(n, l)| r53dns_zone::routing::in_prefix(n, l, ip));
        match &self.key {
            Some(k) => key == Some(k.as_str()) && (self.networks.is_empty() || from),
            None => from && transport == r53dns_server::Transport::Tcp,
        }
    }

    pub(super) fn allows(&self, name: &Name, code: u16) -> bool {
        let name_ok = self.names.is_empty() || self.names.iter().any(|p| p.matches(name));
        let type_ok = self.types.is_empty() || (code != rtype::ANY && self.types.contains(&code));
        name_ok && type_ok
    }
}

pub(super) fn zone_label(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn absolute(s: &str) -> anyhow::Result<Name> {
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

pub(super) fn grant(g: &GrantSpec, keys: &KeyRing) -> anyhow::Result<Grant> {
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
