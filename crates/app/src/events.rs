//! Event-driven sync (`[route53] events`): Route53's own record of every change, as
//! EventBridge delivers it to an SQS queue, tells the syncer what to read again, so a
//! change is served within about a second of its event at the cost of one or two API
//! calls instead of a sweep.
//!
//! Events are hints, the sweep stays the truth: each message only names what to read
//! (`route53::events`), and the values come from a fresh read through the same API budget
//! as sweeps. A message is deleted once what it names is published; one whose read fails
//! stays in the queue and comes back after the queue's visibility timeout (and goes to the
//! dead-letter queue after as many tries as its redrive policy allows). Duplicates are
//! recognised by event ID or cost an idempotent read; order does not matter, as every read
//! returns what Route53 holds now; a lost event waits for the next sweep. Messages that are
//! not Route53 change events are logged, counted and deleted. While the queue cannot be
//! read, sweeps run at the interval they have without events.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, QueueAttributeName};
use r53dns_route53::events::{Hint, Parsed, parse};
use r53dns_server::CancellationToken;
use tokio::sync::Notify;

use crate::sync::{Reread, Syncer, unix_now};

/// Seconds a receive waits for a message (SQS's longest long poll).
const WAIT: i32 = 20;
/// Most messages handled together: a burst of changes costs one read per name, not one per
/// message.
const MAX_BATCH: usize = 100;
/// Event IDs remembered to recognise copies without a read.
const RECENT: usize = 4096;
/// Longest pause between two attempts to reach an unreachable queue.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An SQS queue URL: `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueUrl {
    url: String,
    /// Length of `scheme://host[:port]`.
    origin: usize,
}

impl TryFrom<String> for QueueUrl {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("'{url}' is not an SQS queue URL ({why}; https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)")
        };
        let rest =
            url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(|| bad("not http(s)"))?;
        let slash = rest.find('/').ok_or_else(|| bad("no path"))?;
        let host = &rest[..slash];
        if host.is_empty() || host.contains(['@', '?', '#', ' ']) {
            return Err(bad("no host"));
        }
        let path: Vec<&str> = rest[slash + 1..].trim_end_matches('/').split('/').collect();
        if path.len() != 2 || path.iter().any(|p| p.is_empty() || p.contains(['?', '#', ' '])) {
            return Err(bad("the path is not /ACCOUNT/NAME"));
        }
        let origin = url.len() - rest.len() + slash;
        Ok(Self { url, origin })
    }
}

impl From<QueueUrl> for String {
    fn from(q: QueueUrl) -> String {
        q.url
    }
}

impl std::str::FromStr for QueueUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::try_from(s.to_owned())
    }
}

impl std::fmt::Display for QueueUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl QueueUrl {
    /// The whole URL.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `scheme://host[:port]`: where the queue's API is.
    pub fn endpoint(&self) -> &str {
        &self.url[..self.origin]
    }

    /// The queue's name (the last part of its path).
    pub fn name(&self) -> &str {
        self.url.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
    }

    /// The region in the host name (`sqs.REGION.amazonaws.com`, `REGION.queue.amazonaws.com`).
    pub fn region(&self) -> Option<&str> {
        let host = self.endpoint().split("://").nth(1)?.split(':').next()?;
        let labels: Vec<&str> = host.split('.').collect();
        match labels.as_slice() {
            ["sqs", region, "amazonaws", "com", ..] => Some(region),
            [region, "queue", "amazonaws", "com", ..] => Some(region),
            _ => None,
        }
    }
}

/// What operators and probes see of the event queue.
#[derive(Debug, Default)]
pub struct EventsStatus {
    enabled: AtomicBool,
    reachable: AtomicBool,
    /// Unix time reachability last changed (0: never polled).
    since: AtomicU64,
    last_error: StdMutex<Option<String>>,
    /// Told when reachability changes: the sweep interval depends on it.
    pub(crate) changed: Notify,
}

impl EventsStatus {
    /// Whether `[route53] events` is on.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether the last receive from the queue worked.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// One phrase for `/readyz` (never a reason to be unready).
    pub fn detail(&self) -> Option<String> {
        if !self.enabled() {
            return None;
        }
        let since = self.since.load(Ordering::Relaxed);
        let ago = unix_now().saturating_sub(since);
        Some(match (since, self.reachable()) {
            (0, _) => "event queue not polled yet".to_owned(),
            (_, true) => "event queue reachable".to_owned(),
            (_, false) => {
                let err = self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
                format!("event queue unreachable for {ago}s, sweeps stand in ({err})")
            }
        })
    }

    /// Notes a receive's outcome; returns whether reachability changed.
    fn note(&self, result: Result<(), String>) -> bool {
        let ok = result.is_ok();
        if let Err(e) = result {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
        let was = self.reachable.swap(ok, Ordering::Relaxed);
        let first = self.since.load(Ordering::Relaxed) == 0;
        if was != ok || first {
            self.since.store(unix_now().max(1), Ordering::Relaxed);
            self.changed.notify_one();
            return true;
        }
        false
    }
}

/// The SQS client for `queue`: its endpoint is the queue URL's, its region the one the URL
/// names (else the configured one, else us-east-1, where Route53's events are); no SDK
/// retries (the loop retries, with backoff).
async fn client(queue: &QueueUrl) -> Client {
    let base =
        aws_config::defaults(BehaviorVersion::latest()).http_client(r53dns_route53::fetch::http_client()).load().await;
    let region = queue
        .region()
        .map(|r| aws_config::Region::new(r.to_owned()))
        .or_else(|| base.region().cloned())
        .unwrap_or_else(|| aws_config::Region::new("us-east-1"));
    let conf = aws_sdk_sqs::config::Builder::from(&base)
        .region(region)
        .endpoint_url(queue.endpoint())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(WAIT as u64 + 10))
                .connect_timeout(Duration::from_secs(5))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

fn describe<E: std::fmt::Debug + aws_sdk_sqs::error::ProvideErrorMetadata, R: std::fmt::Debug>(
    e: &aws_sdk_sqs::error::SdkError<E, R>,
) -> String {
    use aws_sdk_sqs::error::SdkError;
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!("{}: {}", err.code().unwrap_or("error"), err.message().unwrap_or("no message"))
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(_) => "cannot connect".into(),
        other => format!("{other:?}").chars().take(200).collect(),
    }
}

async fn receive(client: &Client, queue: &QueueUrl, wait: i32) -> Result<Vec<Message>, String> {
    client
        .receive_message()
        .queue_url(queue.as_str())
        .max_number_of_messages(10)
        .wait_time_seconds(wait)
        .send()
        .await
        .map(|out| out.messages.unwrap_or_default())
        .map_err(|e| describe(&e))
}

/// Event IDs handled lately (bounded, oldest forgotten first).
#[derive(Default)]
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Recent {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > RECENT
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// Reads the queue until `shutdown`, applying what its events name through `syncer`.
pub(crate) async fn run(syncer: Arc<Syncer>, queue: QueueUrl, shutdown: CancellationToken) {
    let status = syncer.status();
    let events = &status.events;
    let metrics = syncer.metrics();
    if let Some(m) = &metrics {
        m.events_queue_up.with_label_values(&[queue.name()]).set(0.0);
    }
    let client = client(&queue).await;
    match client.get_queue_attributes().queue_url(queue.as_str()).attribute_names(QueueAttributeName::All).send().await
    {
        Ok(out) => {
            events.note(Ok(()));
            if let Some(m) = &metrics {
                m.events_queue_up.with_label_values(&[queue.name()]).set(1.0);
            }
            let attr = |a: QueueAttributeName| out.attributes().and_then(|m| m.get(&a)).cloned().unwrap_or_default();
            tracing::info!(
                queue = %queue,
                waiting = %attr(QueueAttributeName::ApproximateNumberOfMessages),
                visibility_timeout = %attr(QueueAttributeName::VisibilityTimeout),
                dead_letter_queue = !attr(QueueAttributeName::RedrivePolicy).is_empty(),
                "reading Route53 change events"
            );
        }
        Err(e) => {
            tracing::warn!(queue = %queue, error = %describe(&e), "cannot read the event queue's attributes; trying to receive anyway")
        }
    }
    let mut recent = Recent::default();
    let mut backoff = Duration::from_secs(1);
    loop {
        let got = tokio::select! {
            r = receive(&client, &queue, WAIT) => r,
            () = shutdown.cancelled() => return,
        };
        let mut messages = match got {
            Ok(m) => {
                if events.note(Ok(())) {
                    tracing::info!(queue = %queue, "event queue reachable; full sweeps return to their long interval");
                }
                if let Some(m) = &metrics {
                    m.events_queue_up.with_label_values(&[queue.name()]).set(1.0);
                }
                backoff = Duration::from_secs(1);
                m
            }
            Err(e) => {
                if let Some(m) = &metrics {
                    m.events_receive_failures.inc();
                    m.events_queue_up.with_label_values(&[queue.name()]).set(0.0);
                }
                if events.note(Err(e.clone())) {
                    tracing::warn!(
                        queue = %queue,
                        error = %e,
                        sweep_every = ?syncer.sweep_interval(),
                        "cannot read the event queue; sweeping more often until it answers"
                    );
                } else {
                    tracing::debug!(queue = %queue, error = %e, "event queue still unreachable");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        // A burst: take what else is waiting now, so one read covers many messages.
        let mut last = messages.len();
        while last == 10 && messages.len() < MAX_BATCH {
            match receive(&client, &queue, 0).await {
                Ok(more) => {
                    last = more.len();
                    messages.extend(more);
                }
                Err(_) => break,
            }
        }
        handle(&syncer, &client, &queue, messages, &mut recent).await;
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    Unchanged,
    Duplicate,
    Unserved,
    Ignored,
    Foreign,
    Malformed,
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Duplicate => "duplicate",
            Self::Unserved => "unserved",
            Self::Ignored => "ignored",
            Self::Foreign => "foreign",
            Self::Malformed => "malformed",
            Self::Failed => "failed",
        }
    }
}

/// Handles one batch of messages: every read they name at once, one publish, then the
/// deletion of every message whose change is served (or that needs nothing).
async fn handle(syncer: &Arc<Syncer>, client: &Client, queue: &QueueUrl, messages: Vec<Message>, recent: &mut Recent) {
    let started = Instant::now();
    let metrics = syncer.metrics();
    let mut records: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut zones: BTreeSet<String> = BTreeSet::new();
    let mut relist = false;
    // (message, event ID, zone whose records it names (None: the zone list), event time)
    let mut pending: Vec<(&Message, String, Option<String>, Option<u64>)> = Vec::new();
    let mut settled: Vec<(&Message, Outcome)> = Vec::new();
    let mut batch_ids: HashSet<String> = HashSet::new();
    let mut rejected: Vec<String> = Vec::new();
    for m in &messages {
        let body = m.body().unwrap_or_default();
        match parse(body) {
            Parsed::Malformed(why) => {
                rejected.push(format!("malformed message {}: {why}", m.message_id().unwrap_or("?")));
                settled.push((m, Outcome::Malformed));
            }
            Parsed::Foreign(what) => {
                rejected.push(format!("message {} is not a Route53 API call: {what}", m.message_id().unwrap_or("?")));
                settled.push((m, Outcome::Foreign));
            }
            Parsed::Ignored { name, reason } => {
                tracing::debug!(event = %name, reason, "route53 event needs no read");
                settled.push((m, Outcome::Ignored));
            }
            Parsed::Event(e) => {
                if recent.contains(&e.id) || !batch_ids.insert(e.id.clone()) {
                    settled.push((m, Outcome::Duplicate));
                    continue;
                }
                match e.hint {
                    Hint::Records { zone_id, sets } => {
                        records.entry(zone_id.clone()).or_default().extend(sets);
                        pending.push((m, e.id, Some(zone_id), e.time));
                    }
                    Hint::Zone { zone_id } => {
                        relist = true;
                        zones.extend(zone_id);
                        pending.push((m, e.id, None, e.time));
                    }
                }
            }
        }
    }
    if !rejected.is_empty() {
        // One line per batch, however many: a flood of strangers' messages costs counters.
        tracing::warn!(count = rejected.len(), first = %rejected[0], "event queue messages that are not Route53 change events; deleted");
    }
    // The zone list first: a change in a zone created in the same batch needs the zone.
    let listed = if relist { Some(syncer.relist(&zones).await) } else { None };
    let reread = syncer.reread(&records).await;
    let mut applied: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (m, id, zone, time) in pending {
        let outcome = match &zone {
            None => match &listed {
                Some(Ok(true)) => Outcome::Applied,
                Some(Ok(false)) => Outcome::Unchanged,
                Some(Err(e)) => {
                    failures.push(format!("zone list: {e}"));
                    Outcome::Failed
                }
                None => Outcome::Failed,
            },
            Some(z) => match reread.get(z) {
                Some(Reread::Changed) => Outcome::Applied,
                Some(Reread::Unchanged) => Outcome::Unchanged,
                Some(Reread::NotServed) => Outcome::Unserved,
                Some(Reread::Failed(e)) => {
                    failures.push(format!("{z}: {e}"));
                    Outcome::Failed
                }
                None => Outcome::Failed,
            },
        };
        if outcome == Outcome::Applied {
            if let Some(z) = &zone {
                applied.push(z.clone());
            }
            if let (Some(m), Some(t)) = (&metrics, time) {
                m.event_delay.observe(unix_now().saturating_sub(t) as f64);
            }
        }
        if outcome != Outcome::Failed {
            recent.insert(id);
        }
        settled.push((m, outcome));
    }
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (_, o) in &settled {
        *counts.entry(o.label()).or_default() += 1;
        if let Some(m) = &metrics {
            m.events.with_label_values(&[o.label()]).inc();
        }
    }
    if !failures.is_empty() {
        failures.sort();
        failures.dedup();
        tracing::warn!(failures = ?failures, "route53 events not applied; their messages stay in the queue and come back");
    }
    // Deleted only now that what they name is served; failed ones come back.
    let done: Vec<&Message> = settled.iter().filter(|(_, o)| *o != Outcome::Failed).map(|(m, _)| *m).collect();
    let deleted = delete(client, queue, &done).await;
    applied.sort();
    applied.dedup();
    tracing::info!(
        messages = messages.len(),
        outcomes = ?counts,
        zones_changed = ?applied,
        deleted,
        ms = started.elapsed().as_millis() as u64,
        "route53 events"
    );
}

/// Deletes `messages` (10 to a call); returns how many are gone. A message whose deletion
/// fails comes back later and is handled again, at the cost of a read.
async fn delete(client: &Client, queue: &QueueUrl, messages: &[&Message]) -> usize {
    let mut gone = 0;
    for chunk in messages.chunks(10) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        match client.delete_message_batch().queue_url(queue.as_str()).set_entries(Some(entries)).send().await {
            Ok(out) => {
                gone += out.successful().len();
                if let Some(f) = out.failed().first() {
                    tracing::warn!(failed = out.failed().len(), code = %f.code(), "event messages not deleted; they come back and are read again");
                }
            }
            Err(e) => {
                tracing::warn!(error = %describe(&e), "cannot delete event messages; they come back and are read again")
            }
        }
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_give_endpoint_and_region() {
        let q: QueueUrl = "https://sqs.eu-west-1.amazonaws.com/123456789012/r53dns-events".parse().unwrap();
        assert_eq!(q.endpoint(), "https://sqs.eu-west-1.amazonaws.com");
        assert_eq!(q.region(), Some("eu-west-1"));
        assert_eq!(q.name(), "r53dns-events");
        let q: QueueUrl = "https://us-east-1.queue.amazonaws.com/123456789012/q".parse().unwrap();
        assert_eq!(q.region(), Some("us-east-1"));
        let q: QueueUrl = "http://127.0.0.1:4566/123456789012/q".parse().unwrap();
        assert_eq!(q.endpoint(), "http://127.0.0.1:4566");
        assert_eq!(q.region(), None);
        for bad in
            ["", "sqs.amazonaws.com/1/q", "https://sqs.amazonaws.com", "https://h/1", "https://h/1/q/x", "ftp://h/1/q"]
        {
            assert!(bad.parse::<QueueUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_queue_url_is_named_with_its_line() {
        let err = toml::from_str::<crate::config::Spec>("[route53]\nenabled = true\nevents = \"sqs.example/q\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("not an SQS queue URL"), "{err}");
        let spec: crate::config::Spec =
            toml::from_str("[route53]\nevents = \"https://sqs.us-east-1.amazonaws.com/123456789012/q\"\n").unwrap();
        let r = spec.route53.events.unwrap();
        assert_eq!(r.region(), Some("us-east-1"));
    }

    #[test]
    fn recent_ids_are_bounded() {
        let mut r = Recent::default();
        for i in 0..RECENT + 10 {
            r.insert(i.to_string());
        }
        assert!(!r.contains("0") && r.contains(&(RECENT + 9).to_string()));
        assert_eq!(r.set.len(), RECENT);
    }
}
