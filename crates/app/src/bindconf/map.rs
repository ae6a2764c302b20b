//! What a `named.conf` means for r53dns: its statements mapped onto the same settings the
//! TOML configuration has (zone files with their names, TSIG keys, secondaries, transfer
//! rules per zone, NOTIFY targets, UPDATE grants, the internal networks of a split view).
//!
//! The rule: what would change *who gets which answer* or *who may read or write a zone*
//! and cannot be mapped exactly is an error naming the file and line; what r53dns has no
//! use for (root hints, BIND's tuning) or cannot do but does not change the answers
//! (a second primary) is listed, never dropped silently.

use std::net::SocketAddr;
use std::path::PathBuf;

use r53dns_zone::Name;

use super::{BindConfError, BindConfig, Place, ZoneKind};
use crate::config::{GrantSpec, KeySpec, SecondarySpec, TransferSpec};
use crate::zones::{Audience, ZoneSource};

/// A `named.conf` as r53dns settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    /// Primary zones: their files, names and audiences.
    pub zones: Vec<ZoneSource>,
    /// `key` statements.
    pub keys: Vec<KeySpec>,
    /// Secondary zones, grouped by primary and key.
    pub secondaries: Vec<SecondarySpec>,
    /// `allow-transfer` of every zone (its own, else the options').
    pub transfers: Vec<TransferSpec>,
    /// `also-notify` targets of every zone.
    pub notify: Vec<SocketAddr>,
    /// The key signing NOTIFYs, when `also-notify` names one.
    pub notify_key: Option<String>,
    /// `allow-update` and `update-policy`, for zones that are in Route53.
    pub grants: Vec<GrantSpec>,
    /// The networks of the first of two views: the clients that see its zones.
    pub internal_networks: Vec<String>,
    /// `options { allow-query }`, unless it allows everyone.
    pub allow_query: Option<Vec<String>>,
    /// What is not carried over, with its place (logged at startup, printed by `check`).
    pub not_carried: Vec<String>,
    /// What only tunes BIND, with its place.
    pub ignored: Vec<String>,
}

impl Mapped {
    /// Everything but the zone list: what a reload cannot change.
    pub fn settings_differ(&self, other: &Mapped) -> bool {
        let strip =
            |m: &Mapped| Mapped { zones: Vec::new(), not_carried: Vec::new(), ignored: Vec::new(), ..m.clone() };
        strip(self) != strip(other)
    }
}

/// An address-match list resolved: networks and keys; `any` is both address families.
#[derive(Debug, Default, PartialEq)]
struct Acl {
    nets: Vec<String>,
    keys: Vec<String>,
    any: bool,
}

impl Acl {
    /// The networks, `any` spelled as the two whole address spaces.
    fn networks(&self) -> Vec<String> {
        if self.any { vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()] } else { self.nets.clone() }
    }
}

/// Maps `c`. `route53` says whether Route53 is a source: UPDATE grants need it.
pub fn map(c: &BindConfig, route53: bool) -> Result<Mapped, Vec<BindConfError>> {
    let mut m = Mapped { not_carried: c.unsupported.clone(), ignored: c.ignored.clone(), ..Default::default() };
    let mut errors = Vec::new();
    let mut fail = |place: &Place, message: String| errors.push(BindConfError { place: place.clone(), message });

    for k in &c.keys {
        if r53dns_proto::tsig::Algorithm::from_name(&k.algorithm).is_none() {
            fail(&k.place, format!("key {}: algorithm {} is not one r53dns knows", k.name, k.algorithm));
            continue;
        }
        if data_encoding::BASE64.decode(k.secret.trim().as_bytes()).map_or(true, |s| s.is_empty()) {
            fail(&k.place, format!("key {}: the secret is not base64", k.name));
            continue;
        }
        m.keys.push(KeySpec { name: k.name.clone(), algorithm: Some(k.algorithm.clone()), secret: k.secret.clone() });
    }
    let key_known =
        |k: &str| c.keys.iter().any(|d| d.name.trim_end_matches('.').eq_ignore_ascii_case(k.trim_end_matches('.')));

    // Views: r53dns has two audiences, clients of the internal networks and everyone else.
    let mut audience = std::collections::BTreeMap::new();
    match c.views.as_slice() {
        [] => {}
        [only] => match resolve(&only.match_clients, c, 0) {
            Ok(acl) if acl.any => {
                audience.insert(only.name.clone(), Audience::All);
            }
            Ok(_) => fail(
                &only.place,
                format!(
                    "view {}: a single view that matches only some clients; r53dns serves a view to everyone or to its internal networks beside a view for everyone (use server.allow-query to refuse the others)",
                    only.name
                ),
            ),
            Err(e) => fail(&only.place, format!("view {}: match-clients: {e}", only.name)),
        },
        [inside, outside] => match (resolve(&inside.match_clients, c, 0), resolve(&outside.match_clients, c, 0)) {
            (Ok(i), Ok(o)) if !i.any && i.keys.is_empty() && !i.nets.is_empty() && o.any => {
                m.internal_networks = i.nets;
                audience.insert(inside.name.clone(), Audience::Internal);
                audience.insert(outside.name.clone(), Audience::External);
            }
            (Err(e), _) => fail(&inside.place, format!("view {}: match-clients: {e}", inside.name)),
            (_, Err(e)) => fail(&outside.place, format!("view {}: match-clients: {e}", outside.name)),
            (Ok(i), Ok(_)) if !i.keys.is_empty() => fail(
                &inside.place,
                format!(
                    "view {}: views chosen by TSIG key cannot be mapped; r53dns chooses by client address",
                    inside.name
                ),
            ),
            _ => fail(
                &inside.place,
                format!(
                    "views {} and {}: r53dns maps two views when the first matches client networks and the second matches any",
                    inside.name, outside.name
                ),
            ),
        },
        [_, _, third, ..] => fail(
            &third.place,
            format!(
                "view {}: r53dns answers two audiences (its internal networks and everyone else); a third view cannot be mapped",
                third.name
            ),
        ),
    }

    let mut secondaries: Vec<SecondarySpec> = Vec::new();
    let mut transfers: Vec<TransferSpec> = Vec::new();
    let mut notify_keys: Vec<String> = Vec::new();
    // Each zone name once per audience; a zone written alike in both views is one zone,
    // served to all.
    let overlaps = |a: Audience, b: Audience| a == Audience::All || b == Audience::All || a == b;
    let mut entries: Vec<(&super::BindZone, Audience)> = Vec::new();
    for z in &c.zones {
        let aud = match &z.view {
            None => Audience::All,
            Some(v) => match audience.get(v) {
                Some(a) => *a,
                None => continue, // the view's own error is reported
            },
        };
        let same = |e: &super::BindZone| e.name.eq_ignore_ascii_case(&z.name);
        if let Some(e) = entries.iter_mut().find(|(e, a)| same(e) && !overlaps(*a, aud) && e.kind == z.kind) {
            e.1 = Audience::All;
            continue;
        }
        if entries.iter().any(|(e, a)| same(e) && overlaps(*a, aud)) {
            fail(&z.place, format!("zone {} is defined twice for the same clients", z.name));
            continue;
        }
        entries.push((z, aud));
    }
    let mut transfer_of: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    let mut used_tls: Vec<String> = Vec::new();
    for (z, aud) in entries {
        let origin = match Name::parse(&z.name, None) {
            Ok(n) => n,
            Err(e) => {
                fail(&z.place, format!("zone {}: not a domain name: {e}", z.name));
                continue;
            }
        };
        // Who may transfer it (one rule per zone name, whichever view it is in).
        match resolve(&z.allow_transfer, c, 0) {
            Ok(acl) => {
                for k in acl.keys.iter().filter(|k| !key_known(k)) {
                    fail(&z.place, format!("zone {}: allow-transfer: key {k} is not defined", z.name));
                }
                let (allow, keys) = (acl.networks(), acl.keys);
                let lower = z.name.to_ascii_lowercase();
                match transfer_of.iter().find(|(n, _, _)| *n == lower) {
                    Some((_, a, k)) if (a, k) != (&allow, &keys) => fail(
                        &z.place,
                        format!("zone {}: allow-transfer differs between views; r53dns has one rule per zone", z.name),
                    ),
                    Some(_) => {}
                    None => {
                        transfer_of.push((lower, allow.clone(), keys.clone()));
                        match transfers.iter_mut().find(|t| t.allow == allow && t.keys == keys) {
                            Some(t) => t.zones.push(z.name.clone()),
                            None => transfers.push(TransferSpec { zones: vec![z.name.clone()], allow, keys }),
                        }
                    }
                }
            }
            Err(e) => fail(&z.place, format!("zone {}: allow-transfer: {e}", z.name)),
        }
        // Whom to NOTIFY.
        for target in &z.also_notify {
            match notify_target(target) {
                Ok((addr, key)) => {
                    if !m.notify.contains(&addr) {
                        m.notify.push(addr);
                    }
                    if let Some(k) = key
                        && !notify_keys.contains(&k)
                    {
                        notify_keys.push(k);
                    }
                }
                Err(e) => fail(&z.place, format!("zone {}: also-notify: {e}", z.name)),
            }
        }
        // Who may write it.
        let updates = match update_grants(z, c, &key_known) {
            Ok(g) => g,
            Err(e) => {
                fail(&z.place, format!("zone {}: {e}", z.name));
                Vec::new()
            }
        };
        if !updates.is_empty() && !route53 {
            fail(
                &z.place,
                format!(
                    "zone {}: allow-update/update-policy: r53dns writes UPDATEs to Route53, not to zone files; move the zone there (r53dns push --zone FILE --create) and enable [route53], or remove the statement",
                    z.name
                ),
            );
        }
        let yields = !updates.is_empty();
        for g in updates {
            if !m.grants.contains(&g) {
                m.grants.push(g);
            }
        }
        match &z.kind {
            ZoneKind::Primary { file } => m.zones.push(ZoneSource {
                path: file.clone(),
                origin: Some(origin),
                audience: aud,
                yields_to_route53: yields,
            }),
            ZoneKind::Secondary { primaries } => {
                if aud == Audience::Internal {
                    fail(
                        &z.place,
                        format!(
                            "zone {}: a secondary zone is served to every client; it cannot be kept to one view",
                            z.name
                        ),
                    );
                }
                let super::BindPrimary { addr: primary, key, tls } = &primaries[0];
                if let Some(k) = key
                    && !key_known(k)
                {
                    fail(&z.place, format!("zone {}: primaries: key {k} is not defined", z.name));
                }
                let tls = match tls.as_deref().map(|t| xot(t, c)) {
                    None => None,
                    Some(Ok(t)) => {
                        used_tls.push(t.name.clone());
                        Some(t)
                    }
                    Some(Err((place, e))) => {
                        fail(place.unwrap_or(&z.place), format!("zone {}: primaries: {e}", z.name));
                        continue;
                    }
                };
                let (tls_on, tls_name, tls_ca) = match tls {
                    Some(t) => (Some(true), t.remote_hostname.clone(), t.ca_file.clone()),
                    None => (None, None, None),
                };
                if primaries.len() > 1 {
                    let rest: Vec<&str> = primaries[1..].iter().map(|p| p.addr.as_str()).collect();
                    m.not_carried.push(format!(
                        "{}: zone {}: transferred from {primary} only; the other primaries ({}) are not used",
                        z.place,
                        z.name,
                        rest.join(", ")
                    ));
                }
                let same = |s: &SecondarySpec| {
                    s.primary == *primary
                        && s.key == *key
                        && (s.tls, &s.tls_name, &s.tls_ca) == (tls_on, &tls_name, &tls_ca)
                };
                match secondaries.iter_mut().find(|s| same(s)) {
                    Some(s) => s.zones.push(z.name.clone()),
                    None => secondaries.push(SecondarySpec {
                        primary: primary.clone(),
                        zones: vec![z.name.clone()],
                        key: key.clone(),
                        tls: tls_on,
                        tls_name,
                        tls_ca,
                        ..Default::default()
                    }),
                }
            }
        }
    }
    m.secondaries = secondaries;
    for t in &c.tls {
        if used_tls.contains(&t.name) {
            for (field, place) in &t.other {
                m.ignored
                    .push(format!("{place}: tls {}: {field} (r53dns speaks TLS 1.3 with its own ciphers)", t.name));
            }
        } else {
            m.ignored.push(format!("{}: tls {} (BIND's own: not named by a zone's primaries)", t.place, t.name));
        }
    }
    m.transfers = transfers;
    match notify_keys.as_slice() {
        [] => {}
        [k] => m.notify_key = Some(k.clone()),
        [first, ..] => {
            m.notify_key = Some(first.clone());
            m.not_carried.push(format!(
                "also-notify: NOTIFYs are all signed with key {first}; the other keys ({}) are not used",
                notify_keys[1..].join(", ")
            ));
        }
    }
    if !c.allow_query.is_empty() {
        match resolve(&c.allow_query, c, 0) {
            Ok(acl) if acl.any => {}
            Ok(acl) if !acl.keys.is_empty() => errors.push(BindConfError {
                place: Place { file: PathBuf::from("options"), line: 0 },
                message: "options allow-query: queries are allowed by network, not by key".to_owned(),
            }),
            Ok(acl) => m.allow_query = Some(acl.nets),
            Err(e) => errors.push(BindConfError {
                place: Place { file: PathBuf::from("options"), line: 0 },
                message: format!("options allow-query: {e}"),
            }),
        }
    }
    if errors.is_empty() { Ok(m) } else { Err(errors) }
}

/// Resolves an address-match list: addresses and networks (BIND's `10/8` short forms too),
/// `key NAME`, `any`, `none`, `localhost` (the loopback addresses) and ACL names.
/// Negations and `localnets` cannot be mapped exactly and are errors.
fn resolve(elems: &[String], c: &BindConfig, depth: usize) -> Result<Acl, String> {
    if depth > 8 {
        return Err("ACLs nested deeper than 8".to_owned());
    }
    let mut acl = Acl::default();
    for e in elems {
        let e = e.trim().trim_matches('"');
        let words: Vec<&str> = e.split_whitespace().collect();
        match words.as_slice() {
            ["key", k] => acl.keys.push(k.trim_matches('"').trim_end_matches('.').to_owned()),
            ["any"] => acl.any = true,
            ["none"] => {}
            ["localhost"] => acl.nets.extend(["127.0.0.1/32".to_owned(), "::1/128".to_owned()]),
            ["localnets"] => return Err("localnets depends on the host's interfaces; name the networks".to_owned()),
            [w] if w.starts_with('!') => return Err(format!("{w}: negated elements cannot be mapped")),
            [w] => {
                if let Some(net) = network(w) {
                    acl.nets.push(net);
                } else if let Some((_, list)) = c.acls.iter().find(|(n, _)| n.eq_ignore_ascii_case(w)) {
                    let inner = resolve(list, c, depth + 1)?;
                    acl.any |= inner.any;
                    acl.nets.extend(inner.nets);
                    acl.keys.extend(inner.keys);
                } else {
                    return Err(format!("{w} is neither an address, a network nor a defined acl"));
                }
            }
            _ => return Err(format!("'{e}' cannot be mapped")),
        }
    }
    Ok(acl)
}

/// An address or network, BIND's short IPv4 forms (`10/8`, `192.168/16`) completed.
fn network(w: &str) -> Option<String> {
    let (addr, len) = match w.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (w, None),
    };
    let addr = if !addr.contains(':') && addr.split('.').count() < 4 && addr.split('.').all(|p| p.parse::<u8>().is_ok())
    {
        let mut parts: Vec<&str> = addr.split('.').collect();
        parts.resize(4, "0");
        parts.join(".")
    } else {
        addr.to_owned()
    };
    let text = match len {
        Some(l) => format!("{addr}/{l}"),
        None => addr,
    };
    r53dns_zone::routing::parse_prefix(&text).map(|_| text)
}

/// The `tls` statement a primary names, if r53dns can follow it: it must check the
/// primary's certificate (`ca-file`, `remote-hostname`, or both) and present none of its
/// own. Else why not, with the place of the statement when there is one.
fn xot<'c>(name: &str, c: &'c BindConfig) -> Result<&'c super::BindTls, (Option<&'c Place>, String)> {
    if name.eq_ignore_ascii_case("ephemeral") {
        return Err((
            None,
            "tls ephemeral: BIND would encrypt without checking the primary's certificate; r53dns checks it: \
             name a tls statement with ca-file (and remote-hostname, else the primary's address is checked)"
                .to_owned(),
        ));
    }
    let Some(t) = c.tls.iter().find(|t| t.name == name) else {
        return Err((None, format!("tls {name} is not defined")));
    };
    if t.ca_file.is_none() && t.remote_hostname.is_none() {
        return Err((
            Some(&t.place),
            format!(
                "tls {name} has neither ca-file nor remote-hostname: BIND would not check the primary's certificate; \
                 r53dns checks it: add ca-file (the primary's CA) or remote-hostname (its name, checked against the \
                 system's trust anchors)"
            ),
        ));
    }
    if t.own_certificate {
        return Err((
            Some(&t.place),
            format!(
                "tls {name}: cert-file/key-file: r53dns presents no certificate of its own to a primary (mutual TLS)"
            ),
        ));
    }
    Ok(t)
}

/// `ADDR [port P] [key K]` of an `also-notify` list.
fn notify_target(e: &str) -> Result<(SocketAddr, Option<String>), String> {
    let words: Vec<&str> = e.split_whitespace().collect();
    let ip: std::net::IpAddr = words
        .first()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("'{e}': targets must be addresses (named primaries lists cannot be mapped)"))?;
    let port = match super::word_after(&words, "port") {
        Some(w) => w.parse::<u16>().map_err(|_| format!("'{e}': bad port"))?,
        None => 53,
    };
    let key = super::word_after(&words, "key").map(|w| w.trim_matches('"').to_owned());
    Ok((SocketAddr::new(ip, port), key))
}

/// `allow-update` and the `update-policy` rules r53dns can express, as grants.
fn update_grants(
    z: &super::BindZone,
    c: &BindConfig,
    key_known: &dyn Fn(&str) -> bool,
) -> Result<Vec<GrantSpec>, String> {
    let mut out = Vec::new();
    let zones = vec![z.name.clone()];
    if !z.allow_update.is_empty() {
        let acl = resolve(&z.allow_update, c, 0).map_err(|e| format!("allow-update: {e}"))?;
        for k in &acl.keys {
            if !key_known(k) {
                return Err(format!("allow-update: key {k} is not defined"));
            }
            out.push(GrantSpec { key: Some(k.clone()), zones: zones.clone(), ..Default::default() });
        }
        if acl.any || !acl.nets.is_empty() {
            out.push(GrantSpec { key: None, networks: acl.networks(), zones: zones.clone(), ..Default::default() });
        }
    }
    for rule in &z.update_policy {
        let words: Vec<&str> = rule.split_whitespace().map(|w| w.trim_matches('"')).collect();
        let (key, kind, rest) = match words.as_slice() {
            ["local"] => {
                return Err(
                    "update-policy local: the session key of BIND's own nsupdate -l cannot be mapped".to_owned()
                );
            }
            ["grant", key, kind, rest @ ..] => (*key, *kind, rest),
            _ => return Err(format!("update-policy '{rule}': only grant rules can be mapped")),
        };
        if !key_known(key) {
            return Err(format!("update-policy: key {key} is not defined"));
        }
        let (names, types): (Vec<String>, &[&str]) = match (kind, rest) {
            ("zonesub", types) => (Vec::new(), types),
            ("name", [n, types @ ..]) => (vec![n.to_string()], types),
            ("subdomain", [n, types @ ..]) => (vec![n.to_string(), format!("*.{}", n.trim_start_matches("*."))], types),
            ("wildcard", [n, types @ ..]) if n.starts_with("*.") => (vec![n.to_string()], types),
            _ => {
                return Err(format!(
                    "update-policy '{rule}': rule type {kind} cannot be mapped (zonesub, name, subdomain and wildcard can)"
                ));
            }
        };
        let types: Vec<String> =
            types.iter().filter(|t| !t.eq_ignore_ascii_case("ANY")).map(|t| t.to_ascii_uppercase()).collect();
        out.push(GrantSpec { key: Some(key.to_owned()), networks: Vec::new(), zones: zones.clone(), names, types });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> (tempfile::TempDir, BindConfig) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("named.conf");
        std::fs::write(&p, text).unwrap();
        let c = super::super::read(&p).unwrap();
        (dir, c)
    }

    const KEY: &str =
        "key \"ddns\" { algorithm hmac-sha256; secret \"c2VjcmV0LWZvci11cGRhdGVzLW9ubHktMTIzNDU2Nzg=\"; };\n";

    #[test]
    fn split_views_become_the_two_audiences() {
        let (_d, c) = conf(
            "acl inside { 10/8; 192.168.0.0/16; };\n\
             view internal { match-clients { inside; }; zone \"corp.example\" { type master; file \"db.corp.int\"; };\n\
               zone \"shared.example\" { type master; file \"db.shared\"; }; };\n\
             view external { match-clients { any; }; zone \"corp.example\" { type master; file \"db.corp.ext\"; };\n\
               zone \"shared.example\" { type master; file \"db.shared\"; }; };\n",
        );
        let m = map(&c, false).unwrap();
        assert_eq!(m.internal_networks, ["10.0.0.0/8", "192.168.0.0/16"]);
        let got: Vec<(String, Audience)> =
            m.zones.iter().map(|z| (z.path.file_name().unwrap().to_string_lossy().into_owned(), z.audience)).collect();
        assert_eq!(
            got,
            [
                ("db.corp.int".to_owned(), Audience::Internal),
                ("db.shared".to_owned(), Audience::All),
                ("db.corp.ext".to_owned(), Audience::External)
            ]
        );
    }

    #[test]
    fn what_would_change_answers_is_an_error_with_its_line() {
        for (text, line, needle) in [
            ("view a { match-clients { 10/8; }; };\nview b { match-clients { 11/8; }; };\n", 1, "second matches any"),
            ("view a { match-clients { key k; }; };\nview b { match-clients { any; }; };\n", 1, "TSIG key"),
            ("view a { match-clients { !10/8; }; };\nview b { };\n", 1, "negated"),
            ("view a {};\nview b {};\nview c {};\n", 3, "third view"),
            ("zone \"a.example\" { type master; file \"f\"; allow-update { 10/8; }; };\n", 1, "Route53"),
            ("zone \"a.example\" { type master; file \"f\"; allow-transfer { key nokey; }; };\n", 1, "not defined"),
            ("zone \"a.example\" { type master; file \"f\"; allow-transfer { localnets; }; };\n", 1, "localnets"),
            (
                "zone \"a.example\" { type master; file \"f\"; };\nzone \"A.example.\" { type master; file \"g\"; };\n",
                2,
                "twice",
            ),
        ] {
            let (_d, c) = conf(text);
            let e = map(&c, false).unwrap_err();
            assert!(e.iter().any(|e| e.place.line == line && e.message.contains(needle)), "{text}: {e:?}");
        }
    }

    #[test]
    fn primaries_over_tls_follow_over_tls_and_never_silently_in_the_clear() {
        let (d, c) = conf(&format!(
            "{KEY}options {{ directory \"/var/cache/bind\"; }};\n\
             tls to-primary {{ ca-file \"ca.pem\"; remote-hostname \"dns.example\"; protocols {{ TLSv1.3; }}; }};\n\
             tls by-name {{ remote-hostname \"ns1.example\"; }};\n\
             tls listener {{ cert-file \"c.pem\"; key-file \"k.pem\"; }};\n\
             zone \"a.example\" {{ type secondary; primaries {{ 192.0.2.1 port 8853 key ddns tls to-primary; }}; }};\n\
             zone \"b.example\" {{ type secondary; primaries {{ 192.0.2.1 port 8853 key ddns tls to-primary; }}; }};\n\
             zone \"c.example\" {{ type slave; masters {{ 192.0.2.2 tls by-name; }}; }};\n\
             zone \"d.example\" {{ type slave; masters port 5353 {{ 192.0.2.2 tls by-name; }}; }};\n\
             zone \"e.example\" {{ type secondary; primaries {{ 192.0.2.1 port 8853 key ddns; }}; }};\n"
        ));
        let m = map(&c, false).unwrap();
        let got: Vec<_> = m
            .secondaries
            .iter()
            .map(|s| {
                (
                    s.primary.as_str(),
                    s.zones.join(","),
                    s.key.as_deref(),
                    s.tls,
                    s.tls_name.as_deref(),
                    s.tls_ca.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "192.0.2.1:8853",
                    "a.example.,b.example.".to_owned(),
                    Some("ddns"),
                    Some(true),
                    Some("dns.example"),
                    Some(PathBuf::from("/var/cache/bind/ca.pem"))
                ),
                // Port 853 by default over TLS; the system's trust anchors without ca-file.
                ("192.0.2.2:853", "c.example.".to_owned(), None, Some(true), Some("ns1.example"), None),
                ("192.0.2.2:5353", "d.example.".to_owned(), None, Some(true), Some("ns1.example"), None),
                ("192.0.2.1:8853", "e.example.".to_owned(), Some("ddns"), None, None, None),
            ]
        );
        let file = d.path().join("named.conf").display().to_string();
        assert!(
            m.ignored.iter().any(|i| i.starts_with(&format!("{file}:5: tls listener")) && i.contains("BIND's own")),
            "{:?}",
            m.ignored
        );
        assert!(
            m.ignored.iter().any(|i| i.starts_with(&format!("{file}:3: tls to-primary: protocols"))),
            "{:?}",
            m.ignored
        );
        // What would go unchecked, or cannot be presented, is an error at its line.
        for (text, line, needle) in [
            ("zone \"a.example\" { type secondary; primaries { 192.0.2.1 tls ephemeral; }; };\n", 1, "tls ephemeral"),
            (
                "tls t { };\nzone \"a.example\" { type secondary; primaries { 192.0.2.1 tls t; }; };\n",
                1,
                "neither ca-file",
            ),
            (
                "tls t { protocols { TLSv1.3; }; };\nzone \"a.example\" {\n type secondary; primaries { 192.0.2.1 tls t; }; };\n",
                1,
                "neither ca-file",
            ),
            (
                "tls t { ca-file \"ca\"; cert-file \"c\"; key-file \"k\"; };\nzone \"a.example\" { type secondary; primaries { 192.0.2.1 tls t; }; };\n",
                1,
                "mutual TLS",
            ),
            (
                "\nzone \"a.example\" { type secondary; primaries { 192.0.2.1 tls nowhere; }; };\n",
                2,
                "tls nowhere is not defined",
            ),
        ] {
            let (_d, c) = conf(text);
            let e = map(&c, false).unwrap_err();
            assert!(e.iter().any(|e| e.place.line == line && e.message.contains(needle)), "{text}: {e:?}");
        }
    }

    #[test]
    fn keys_transfers_notifies_secondaries_and_updates() {
        let (_d, c) = conf(&format!(
            "{KEY}options {{ allow-transfer {{ 10.0.0.2; key ddns; }}; also-notify {{ 10.0.0.2 port 5300; }}; }};\n\
             zone \"a.example\" {{ type master; file \"a\"; update-policy {{ grant ddns zonesub A AAAA; grant ddns subdomain dhcp.a.example. ANY; }}; }};\n\
             zone \"b.example\" {{ type master; file \"b\"; allow-transfer {{ any; }}; allow-update {{ key ddns; 10.1/16; }}; }};\n\
             zone \"c.example\" {{ type slave; masters {{ 192.0.2.1; 2001:db8::1 port 5353; }}; }};\n\
             zone \"d.example\" {{ type slave; masters {{ 192.0.2.1; }}; }};\n"
        ));
        let m = map(&c, true).unwrap();
        assert_eq!(m.keys.len(), 1);
        assert_eq!(m.transfers.len(), 2);
        assert_eq!(m.transfers[0].zones, ["a.example.", "c.example.", "d.example."]);
        assert_eq!(
            (m.transfers[0].allow.as_slice(), m.transfers[0].keys.as_slice()),
            (&["10.0.0.2".to_owned()][..], &["ddns".to_owned()][..])
        );
        assert_eq!(m.transfers[1].allow, ["0.0.0.0/0", "::/0"]);
        assert_eq!(m.notify, [SocketAddr::from(([10, 0, 0, 2], 5300))]);
        assert_eq!(m.secondaries.len(), 1, "one primary, one key: one group");
        assert_eq!(m.secondaries[0].zones, ["c.example.", "d.example."]);
        assert!(
            m.not_carried.iter().any(|n| n.contains("[2001:db8::1]:5353") && n.contains("not used")),
            "{:?}",
            m.not_carried
        );
        assert_eq!(m.grants.len(), 4);
        assert_eq!(m.grants[0].types, ["A", "AAAA"]);
        assert_eq!(m.grants[1].names, ["dhcp.a.example.", "*.dhcp.a.example."]);
        assert!(m.grants[1].types.is_empty());
        assert_eq!(m.grants[3].networks, ["10.1.0.0/16"]);
        assert!(m.zones.iter().all(|z| z.yields_to_route53), "zones written by UPDATE come from Route53 once there");
    }
}
