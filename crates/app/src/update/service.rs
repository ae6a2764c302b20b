//! The Route53 write service: an UPDATE request checked, decided against a fresh read of
//! Route53 under the zone's lock, written as one change batch, and answered.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use r53dns_proto::message::{self, Message};
use r53dns_proto::tsig::{self, KeyRing, Opened, Transaction};
use r53dns_route53::convert::route53_name;
use r53dns_route53::{CallClass, Route53};
use r53dns_server::logs::{Refusal, refused};
use r53dns_zone::{Name, rtype};

use crate::sync::Syncer;

use r53dns_zone::proto::{Rcode, rcode};

use super::engine::{
    AfterFailure, DHCID, Outcome, Sets, Stop, after_failure, apply, check_form, check_policy, check_prerequisites,
    diff, read_sets, response, stop,
};
use super::grants::{Grant, admitted_names_zone, zone_label};
use super::limits::{Limited, Limits, RateLimits};

/// Most distinct owner names one UPDATE may involve (each costs an API read).
pub(super) const MAX_NAMES: usize = 32;

/// Most read–apply–write rounds of one UPDATE whose batches Route53 rejects because the
/// record sets changed between the read and the write. Each round costs a read per name
/// and a write; a set that keeps changing faster than that is someone else's to settle.
pub const MAX_ROUNDS: u32 = 3;

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
        let mut tx =
            match Transaction::open(&self.keys, msg, &parsed, tsig::now(), |rc| response(msg, Some(&parsed), rc)) {
                Opened::Go(tx) => tx,
                Opened::Malformed(reply) => {
                    self.count(Outcome::FormErr);
                    return Some(reply);
                }
                Opened::Failed { reply, key, error } => {
                    refused(Refusal::UpdateTsig, |skipped| {
                        tracing::warn!(%peer, %key, skipped, "UPDATE refused: TSIG {}", tsig::describe(error));
                    });
                    self.count(Outcome::NotAuth);
                    return Some(reply);
                }
            };
        let key = tx.key().map(|k| k.label().to_ascii_lowercase());
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
        tx.seal(&mut out, || response(msg, Some(&parsed), rcode::SERVFAIL));
        Some(out)
    }

    pub(super) fn count(&self, outcome: Outcome) {
        if let Some(m) = &self.metrics {
            m.updates.with_label_values(&[outcome.label()]).inc();
        }
    }

    /// What the UPDATE did to Route53, or why it stopped.
    pub(super) async fn decide(
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
pub(super) enum Done {
    /// Nothing needed changing.
    Unchanged,
    /// Route53 took the batch.
    Applied,
    /// The call failed without a verdict, and a fresh read shows Route53 holds the change.
    AppliedDespiteError,
}

/// The record sets at `names`, read now.
pub(super) async fn read_names(client: &Route53, zone_id: &str, names: &BTreeSet<Name>) -> Result<Sets, Stop> {
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
