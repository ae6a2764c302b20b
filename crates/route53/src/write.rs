//! Writing to Route53 for DNS UPDATE: reading the record sets at a name fresh from the API,
//! and applying one `ChangeResourceRecordSets` batch (atomic on Route53's side), through the
//! same rate budget and retries as every other call.
//!
//! A batch that replaces a set as `DELETE` of the set as read plus `CREATE` of the new one
//! is a compare-and-swap: Route53 rejects the whole batch (`InvalidChangeBatch`) when the
//! set no longer holds exactly those values, so a change made meanwhile by someone else is
//! never overwritten. That also makes resending such a batch after a timeout safe: if the
//! first copy was applied, the second is rejected instead of applied twice.

use aws_sdk_route53::types::{
    Change as SdkChange, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};

use crate::fetch::{FetchError, Route53};
use crate::model::RecordSet;

/// What a change does to its record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create or replace the record set, whatever it holds now.
    Upsert,
    /// Create the record set; Route53 rejects the batch if it exists.
    Create,
    /// Delete the record set; Route53 rejects the batch unless the TTL and values given are
    /// exactly its current ones.
    Delete,
}

/// A change batch that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct ChangeFailure {
    /// What the last attempt got.
    pub error: FetchError,
    /// Route53 answered `InvalidChangeBatch`: it applied none of that attempt, typically
    /// because a `DELETE` or `CREATE` no longer matches what it holds.
    pub rejected: bool,
    /// An attempt ended without a verdict (timeout, lost connection, 5xx): Route53 may
    /// have applied the batch. Only a fresh read tells.
    pub uncertain: bool,
}

impl From<ChangeFailure> for FetchError {
    fn from(f: ChangeFailure) -> Self {
        f.error
    }
}

/// One change of a batch: a plain record set (no alias, no routing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Upsert or delete.
    pub action: Action,
    /// The record set: name, type, TTL and values.
    pub set: RecordSet,
}

fn error(op: &'static str, zone: &str, message: impl Into<String>) -> FetchError {
    FetchError { op, zone: zone.to_owned(), message: message.into(), throttled: false }
}

fn sdk_set(zone: &str, set: &RecordSet) -> Result<ResourceRecordSet, FetchError> {
    let records = set
        .resource_records
        .iter()
        .map(|r| ResourceRecord::builder().value(&r.value).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error("ChangeResourceRecordSets", zone, e.to_string()))?;
    ResourceRecordSet::builder()
        // Names are sent without the final dot: Route53 takes both, and emulators match
        // deletions against the form records were created with.
        .name(set.name.strip_suffix('.').filter(|n| !n.is_empty()).unwrap_or(&set.name))
        .r#type(RrType::from(set.rtype.as_str()))
        .set_ttl(set.ttl)
        .set_resource_records(Some(records))
        .build()
        .map_err(|e| error("ChangeResourceRecordSets", zone, e.to_string()))
}

impl Route53 {
    /// Every record set owned by `name` (Route53 text form) in a zone, read now. Listing
    /// starts at the name and stops at the first record set with another owner.
    pub async fn record_sets_at(&self, zone_id: &str, name: &str) -> Result<Vec<RecordSet>, FetchError> {
        self.record_sets_from(zone_id, name, None).await
    }

    /// Applies `changes` as one batch; Route53 applies all or none. Throttling,
    /// `PriorRequestNotComplete`, timeouts and 5xx answers are retried within the budget;
    /// anything else fails at once. The failure says whether Route53 may have applied the
    /// batch all the same ([`ChangeFailure::uncertain`]).
    pub async fn change(&self, zone_id: &str, changes: &[Change], comment: &str) -> Result<(), ChangeFailure> {
        let sure = |error: FetchError| ChangeFailure { error, rejected: false, uncertain: false };
        let mut sdk = Vec::with_capacity(changes.len());
        for c in changes {
            let action = match c.action {
                Action::Upsert => ChangeAction::Upsert,
                Action::Create => ChangeAction::Create,
                Action::Delete => ChangeAction::Delete,
            };
            let change = SdkChange::builder()
                .action(action)
                .resource_record_set(sdk_set(zone_id, &c.set).map_err(sure)?)
                .build()
                .map_err(|e| sure(error("ChangeResourceRecordSets", zone_id, e.to_string())))?;
            sdk.push(change);
        }
        let batch = ChangeBatch::builder()
            .set_changes(Some(sdk))
            .comment(comment)
            .build()
            .map_err(|e| sure(error("ChangeResourceRecordSets", zone_id, e.to_string())))?;
        self.call_tracked("ChangeResourceRecordSets", zone_id, || {
            self.client.change_resource_record_sets().hosted_zone_id(zone_id).change_batch(batch.clone()).send()
        })
        .await
        .map_err(|f| ChangeFailure {
            rejected: f.code.as_deref() == Some("InvalidChangeBatch"),
            uncertain: f.uncertain,
            error: f.error,
        })?;
        Ok(())
    }
}
