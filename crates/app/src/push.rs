//! `r53dns push`: makes a Route53 hosted zone hold what a zone file holds, so zones kept in
//! BIND can move into Route53 (the source of truth from then on).
//!
//! The plan is the difference between the file's record sets and the hosted zone's plain
//! ones, the apex SOA and NS excepted (Route53 owns them). Aliases and routed sets in the
//! hosted zone are left alone, unless the file has the same name and type (then nothing is
//! sent). Types Route53 cannot hold are listed and refused before anything is sent. The
//! changes go in batches within Route53's limits (1 000 records, 32 000 value characters,
//! UPSERTs counted twice), all changes of one name in the same batch, through the rate
//! budget and retries every other call uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use r53dns_route53::convert::{parse_route53_name, parse_value, route53_name, route53_value};
use r53dns_route53::write::{Action, Change};
use r53dns_route53::{RecordSet, Route53};
use r53dns_zone::Zone;
use r53dns_zone::rdata::{rtype, type_from_str, type_to_string};

/// Types a Route53 record set can hold (besides SOA, which only Route53 writes).
const ROUTE53_TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS", "PTR", "SPF", "SRV", "SSHFP", "SVCB", "TLSA",
    "TXT",
];

/// Route53's limits on one `ChangeResourceRecordSets` request.
const MAX_RECORDS: usize = 1000;
const MAX_VALUE_CHARS: usize = 32_000;

/// (lower-case owner in wire form, type code): one record set.
type Key = (Vec<u8>, u16);

/// What a push would do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Record sets the hosted zone lacks.
    pub create: Vec<RecordSet>,
    /// Record sets whose TTL or values differ: (as they are, as they will be).
    pub update: Vec<(RecordSet, RecordSet)>,
    /// Record sets the file does not have.
    pub delete: Vec<RecordSet>,
    /// Aliases and routed sets in the hosted zone, left as they are.
    pub kept: Vec<String>,
}

impl Plan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    /// One line per change (`+` create, `~` update, `-` delete), then what is kept.
    pub fn describe(&self) -> String {
        let line = |s: &RecordSet| {
            let values: Vec<&str> = s.resource_records.iter().map(|r| r.value.as_str()).collect();
            format!("{} {} {} {}", s.name, s.ttl.unwrap_or(0), s.rtype, values.join(" | "))
        };
        let mut out = String::new();
        for s in &self.create {
            let _ = writeln!(out, "+ {}", line(s));
        }
        for (old, new) in &self.update {
            let _ = writeln!(out, "~ {}\n    was {}", line(new), line(old));
        }
        for s in &self.delete {
            let _ = writeln!(out, "- {}", line(s));
        }
        for k in &self.kept {
            let _ = writeln!(out, "= {k} (alias or routed in Route53; left as it is)");
        }
        out
    }
}

/// The record sets of `zone` as Route53 would hold them, by key; the apex SOA and NS left
/// out. Types Route53 cannot hold are returned as errors, one line each.
fn desired(zone: &Zone) -> Result<BTreeMap<Key, RecordSet>, Vec<String>> {
    let apex = zone.apex().to_lowercase();
    let mut out = BTreeMap::new();
    let mut refused = Vec::new();
    for node in zone.sorted_nodes() {
        let owner = node.name().to_lowercase();
        for set in node.rrsets() {
            let code = set.rtype();
            if owner == apex && matches!(code, rtype::SOA | rtype::NS) {
                continue;
            }
            let t = type_to_string(code);
            if !ROUTE53_TYPES.contains(&t.as_str()) {
                refused.push(format!("{} {t}: Route53 cannot hold this type", node.name()));
                continue;
            }
            let values = set.rdatas().map(|rd| route53_value(code, rd)).collect();
            let rs = RecordSet::plain(route53_name(node.name()), t, i64::from(set.ttl()), values);
            out.insert((owner.wire().to_vec(), code), rs);
        }
    }
    if refused.is_empty() { Ok(out) } else { Err(refused) }
}

/// The values of a plain record set as wire RDATA, sorted (for comparison).
fn wire_values(code: u16, s: &RecordSet) -> Option<BTreeSet<Vec<u8>>> {
    s.resource_records.iter().map(|r| parse_value(code, &r.value).ok()).collect()
}

/// The difference between `zone` and the hosted zone's record sets `current`.
pub fn plan(zone: &Zone, current: &[RecordSet]) -> Result<Plan, Vec<String>> {
    let mut want = desired(zone)?;
    let apex = zone.apex().to_lowercase();
    let mut plan = Plan::default();
    let mut conflicts = Vec::new();
    for s in current {
        let (Ok(owner), Some(code)) = (parse_route53_name(&s.name), type_from_str(&s.rtype)) else {
            plan.kept.push(format!("{} {}", s.name, s.rtype));
            continue;
        };
        let owner = owner.to_lowercase();
        if owner == apex && matches!(code, rtype::SOA | rtype::NS) {
            continue;
        }
        let key = (owner.wire().to_vec(), code);
        if s.alias_target.is_some() || s.set_identifier.is_some() {
            if want.contains_key(&key) {
                conflicts.push(format!(
                    "{} {}: an alias or routed set in Route53; the file would replace it (delete it there first)",
                    s.name, s.rtype
                ));
            }
            plan.kept.push(format!("{} {}", s.name, s.rtype));
            continue;
        }
        match want.remove(&key) {
            None => plan.delete.push(s.clone()),
            Some(new) => {
                let same = s.ttl == new.ttl && wire_values(code, s).is_some_and(|v| Some(v) == wire_values(code, &new));
                if !same {
                    plan.update.push((s.clone(), new));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    plan.create = want.into_values().collect();
    plan.kept.sort();
    plan.kept.dedup();
    Ok(plan)
}

/// The plan as change batches within Route53's limits, every change of one owner name in
/// the same batch (a CNAME replacing an A must go with the A's deletion).
pub fn batches(plan: &Plan) -> Result<Vec<Vec<Change>>, String> {
    let mut by_name: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    let lower = |s: &RecordSet| s.name.to_ascii_lowercase();
    for s in &plan.delete {
        by_name.entry(lower(s)).or_default().push(Change { action: Action::Delete, set: s.clone() });
    }
    for (_, new) in &plan.update {
        by_name.entry(lower(new)).or_default().push(Change { action: Action::Upsert, set: new.clone() });
    }
    for s in &plan.create {
        by_name.entry(lower(s)).or_default().push(Change { action: Action::Upsert, set: s.clone() });
    }
    // (records, value characters) a change counts for: UPSERT counts twice.
    let weight = |c: &Change| {
        let k = if c.action == Action::Upsert { 2 } else { 1 };
        let chars: usize = c.set.resource_records.iter().map(|r| r.value.len()).sum();
        (c.set.resource_records.len() * k, chars * k)
    };
    let mut out: Vec<Vec<Change>> = Vec::new();
    let mut current: Vec<Change> = Vec::new();
    let (mut records, mut chars) = (0, 0);
    for (name, group) in by_name {
        let (r, c) = group.iter().map(weight).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        if r > MAX_RECORDS || c > MAX_VALUE_CHARS {
            return Err(format!(
                "{name}: its changes need {r} records and {c} value characters, over one request's \
                 limit ({MAX_RECORDS} and {MAX_VALUE_CHARS}, UPSERTs counted twice)"
            ));
        }
        if records + r > MAX_RECORDS || chars + c > MAX_VALUE_CHARS {
            out.push(std::mem::take(&mut current));
            (records, chars) = (0, 0);
        }
        current.extend(group);
        records += r;
        chars += c;
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Applies `batches` to the hosted zone `zone_id` in order; `done(i, n)` after each.
pub async fn apply(
    client: &Route53,
    zone_id: &str,
    batches: &[Vec<Change>],
    done: impl Fn(usize, usize),
) -> Result<(), r53dns_route53::FetchError> {
    for (i, b) in batches.iter().enumerate() {
        client.change(zone_id, b, "r53dns push").await?;
        done(i + 1, batches.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(text: &str) -> Zone {
        r53dns_zone::load_zone_str(text, std::path::Path::new("t.zone"), None).unwrap().0
    }

    fn set(name: &str, t: &str, ttl: i64, values: &[&str]) -> RecordSet {
        RecordSet::plain(name.into(), t.into(), ttl, values.iter().map(|v| (*v).to_owned()).collect())
    }

    const FILE: &str = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n\
                        www A 192.0.2.2\nwww TXT \"a b\"\nmail MX 10 www\n";

    #[test]
    fn the_plan_is_the_difference_apex_soa_and_ns_excepted() {
        let current = vec![
            set("example.com.", "SOA", 900, &["ns-1.awsdns. hostmaster. 1 7200 900 1209600 86400"]),
            set("example.com.", "NS", 172800, &["ns-1.awsdns."]),
            set("ns.example.com.", "A", 300, &["192.0.2.1"]),
            set("www.example.com.", "A", 60, &["192.0.2.2"]),
            set("old.example.com.", "A", 300, &["192.0.2.9"]),
        ];
        let p = plan(&zone(FILE), &current).unwrap();
        let names = |v: &[RecordSet]| v.iter().map(|s| format!("{} {}", s.name, s.rtype)).collect::<Vec<_>>();
        assert_eq!(names(&p.create), ["www.example.com. TXT", "mail.example.com. MX"]);
        assert_eq!(p.update.len(), 1, "www A changes TTL");
        assert_eq!(p.update[0].1.ttl, Some(300));
        assert_eq!(names(&p.delete), ["old.example.com. A"]);
        // Equal values in another spelling are no change.
        let same = vec![set("NS.example.com", "A", 300, &["192.0.2.1"])];
        let p = plan(&zone("$ORIGIN example.com.\n@ 300 SOA ns h 1 2 3 4 5\n@ NS ns\nns 300 A 192.0.2.1\n"), &same);
        assert!(p.unwrap().is_empty());
    }

    #[test]
    fn types_route53_cannot_hold_and_clashes_with_aliases_send_nothing() {
        let e =
            plan(&zone(&format!("{FILE}loc LOC 42 21 54 N 71 06 18 W -24m\nk KEY 256 3 8 AQID\n")), &[]).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("k.example.com. KEY") || e[1].contains("k.example.com. KEY"), "{e:?}");
        let mut alias = set("www.example.com.", "A", 0, &[]);
        alias.ttl = None;
        alias.alias_target = Some(r53dns_route53::model::AliasTarget {
            hosted_zone_id: "Z1".into(),
            dns_name: "elb.example.".into(),
            evaluate_target_health: false,
        });
        let e = plan(&zone(FILE), &[alias.clone()]).unwrap_err();
        assert!(e[0].contains("alias or routed"), "{e:?}");
        alias.name = "other.example.com.".into();
        let p = plan(&zone(FILE), &[alias]).unwrap();
        assert_eq!(p.kept, ["other.example.com. A"]);
    }

    #[test]
    fn batches_keep_within_route53_limits_and_names_together() {
        let mut text = String::from(FILE);
        for i in 0..5000 {
            let _ = writeln!(text, "h{i} A 10.0.{}.{}", i / 256, i % 256);
        }
        let p = plan(&zone(&text), &[]).unwrap();
        let b = batches(&p).unwrap();
        assert!(b.len() >= 10, "5 000 UPSERTs, counted twice, need at least 10 requests: {}", b.len());
        for batch in &b {
            let records: usize = batch.iter().map(|c| c.set.resource_records.len() * 2).sum();
            assert!(records <= MAX_RECORDS);
        }
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 5004, "every set of the file but the apex SOA and NS");
        // A deletion and a creation at one name share a batch.
        let current = vec![set("www.example.com.", "CNAME", 300, &["elsewhere.example."])];
        let p = plan(&zone(FILE), &current).unwrap();
        let b = batches(&p).unwrap();
        let at_www: Vec<usize> = b
            .iter()
            .enumerate()
            .filter(|(_, batch)| batch.iter().any(|c| c.set.name == "www.example.com."))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at_www.len(), 1);
    }
}

/// What `r53dns push` was asked to do.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The zone file.
    pub file: std::path::PathBuf,
    /// The zone's name, when neither `$ORIGIN` nor the file name gives it.
    pub origin: Option<String>,
    /// The hosted zone to push into; by default the one public zone of that name.
    pub hosted_zone: Option<String>,
    /// Create the hosted zone first.
    pub create: bool,
    /// With `create`: a private zone associated with these (VPC ID, region).
    pub private: Vec<(String, String)>,
    /// Print the plan only.
    pub dry_run: bool,
    /// Route53 requests per second.
    pub rate: f64,
}

/// Why a push stopped before sending anything (exit status 2), as opposed to an API failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Loads the file, finds or creates the hosted zone, prints the plan to `out` and, unless
/// `dry_run`, applies it. Returns the number of changes made (or planned, with `dry_run`).
pub async fn push(opts: &PushOptions, out: &mut (dyn std::io::Write + Send)) -> anyhow::Result<usize> {
    use anyhow::Context as _;
    let origin = match &opts.origin {
        Some(o) => Some(
            r53dns_zone::Name::parse(o, Some(&r53dns_zone::Name::root()))
                .map_err(|e| Refused(format!("origin {o}: {e}")))?,
        ),
        None => None,
    };
    let (zone, warnings) =
        r53dns_zone::load_zone_file(&opts.file, origin.as_ref()).map_err(|e| Refused(e.to_string()))?;
    for w in warnings {
        writeln!(out, "warning: {w}")?;
    }
    // Refuse what Route53 cannot hold before any call.
    desired(&zone).map_err(|e| Refused(e.join("\n")))?;
    let client = client(opts.rate).await;
    let name = route53_name(zone.apex());
    let zone_id = match (&opts.hosted_zone, opts.create) {
        (Some(id), _) => r53dns_route53::model::bare_zone_id(id).to_owned(),
        (None, true) if opts.dry_run => {
            writeln!(out, "would create hosted zone {name}")?;
            let p = plan(&zone, &[]).map_err(|e| Refused(e.join("\n")))?;
            write!(out, "{}", p.describe())?;
            let n = batches(&p).map_err(Refused)?.iter().map(Vec::len).sum();
            writeln!(out, "{n} changes planned (dry run: nothing sent)")?;
            return Ok(n);
        }
        (None, true) => {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let id = client
                .create_zone(&name, &opts.private, &format!("r53dns-push-{stamp}"))
                .await
                .with_context(|| format!("cannot create hosted zone {name}"))?;
            writeln!(out, "created hosted zone {name} ({id})")?;
            id
        }
        (None, false) => {
            let zones = client.list_zones(false).await.context("cannot list hosted zones")?;
            let same: Vec<_> = zones
                .iter()
                .filter(|z| z.name.eq_ignore_ascii_case(&name) && z.private != opts.private.is_empty())
                .collect();
            match same.as_slice() {
                [one] => one.id.clone(),
                [] => return Err(Refused(format!("no hosted zone {name}; give --hosted-zone ID or --create")).into()),
                many => {
                    let ids: Vec<&str> = many.iter().map(|z| z.id.as_str()).collect();
                    return Err(Refused(format!(
                        "{} hosted zones are named {name} ({}); give --hosted-zone ID",
                        many.len(),
                        ids.join(", ")
                    ))
                    .into());
                }
            }
        }
    };
    let current = client.list_records(&zone_id).await.with_context(|| format!("cannot read hosted zone {zone_id}"))?;
    let p = plan(&zone, &current).map_err(|e| Refused(e.join("\n")))?;
    let b = batches(&p).map_err(Refused)?;
    let n: usize = b.iter().map(Vec::len).sum();
    write!(out, "{}", p.describe())?;
    writeln!(
        out,
        "{} to create, {} to change, {} to delete in {} ({} changes in {} requests)",
        p.create.len(),
        p.update.len(),
        p.delete.len(),
        zone_id,
        n,
        b.len()
    )?;
    if opts.dry_run || n == 0 {
        if opts.dry_run {
            writeln!(out, "dry run: nothing sent")?;
        }
        return Ok(n);
    }
    let progress = std::sync::Mutex::new(Vec::new());
    apply(&client, &zone_id, &b, |i, total| {
        if let Ok(mut p) = progress.lock() {
            p.push(format!("request {i}/{total} applied"));
        }
    })
    .await
    .with_context(|| format!("pushing into {zone_id} stopped"))?;
    for line in progress.into_inner().unwrap_or_default() {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "{n} changes applied to {zone_id}")?;
    Ok(n)
}

/// A Route53 client with its own budget: a push shares the account's API rate with every
/// server that sweeps it, so it goes at `rate` (2/s by default) and retries throttling.
async fn client(rate: f64) -> Route53 {
    use aws_config::BehaviorVersion;
    let mut base =
        aws_config::defaults(BehaviorVersion::latest()).http_client(r53dns_route53::fetch::http_client()).load().await;
    if base.region().is_none() {
        base = base.into_builder().region(aws_config::Region::new("us-east-1")).build();
    }
    let conf = r53dns_route53::fetch::client_config(&base, std::time::Duration::from_secs(20));
    let budget = std::sync::Arc::new(r53dns_route53::RateBudget::new(rate, rate.ceil().max(1.0) as u32));
    Route53::new(
        aws_sdk_route53::Client::from_conf(conf),
        budget,
        r53dns_route53::RetryPolicy::default(),
        String::new(),
    )
}
