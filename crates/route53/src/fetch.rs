//! Reading Route53: hosted zones, record sets (paged, de-duplicated), health-check status and
//! CIDR blocks, each call through the shared [`RateBudget`] with retries.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::RrType;
use r53dns_zone::Prefix;

use crate::budget::{CallClass, RateBudget, RetryPolicy};
use crate::model::{HostedZone, RecordSet, bare_zone_id};

/// A call that failed for good (after retries, or at once when retrying cannot help).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op}{}: {message}", if zone.is_empty() { String::new() } else { format!(" {zone}") })]
pub struct FetchError {
    /// The API operation.
    pub op: &'static str,
    /// The zone concerned, if any.
    pub zone: String,
    /// What happened.
    pub message: String,
    /// Whether it was throttling.
    pub throttled: bool,
}

/// What a call did, for metrics: operation, outcome (`ok`, `throttled`, `retried`, `failed`).
pub type CallObserver = Arc<dyn Fn(&'static str, &'static str) + Send + Sync>;

/// Route53 access for one set of credentials.
#[derive(Clone)]
pub struct Route53 {
    pub(crate) client: Client,
    budget: Arc<RateBudget>,
    class: CallClass,
    retry: RetryPolicy,
    observer: Option<CallObserver>,
    /// Label of the account (role ARN), empty for the default credentials.
    pub account: String,
    /// Most record sets asked per page (Route53 caps at 300).
    pub page_size: i32,
}

impl std::fmt::Debug for Route53 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53").field("account", &self.account).finish_non_exhaustive()
    }
}

enum Verdict {
    Retry { throttled: bool },
    Fail,
}

/// How a call failed, for a caller that must know whether a write may have happened.
#[derive(Debug, Clone)]
pub(crate) struct CallFailure {
    pub(crate) error: FetchError,
    /// The service's error code in the last answer, if there was one.
    pub(crate) code: Option<String>,
    /// Some attempt may have been carried out although no success came back: it timed out,
    /// lost its connection, or got a 5xx (AWS may fail after doing the work).
    pub(crate) uncertain: bool,
}

/// Whether a failed attempt may still have been carried out by Route53. Throttling and
/// `PriorRequestNotComplete` are refusals before any work; other 4xx answers reject the
/// request; everything else gave no verdict.
fn maybe_done<E: ProvideErrorMetadata, R: std::fmt::Debug>(e: &SdkError<E, R>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            if matches!(
                code,
                "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "TooManyRequestsException"
                    | "PriorRequestNotComplete"
            ) {
                return false;
            }
            let status = format!("{:?}", se.raw());
            matches!(code, "ServiceUnavailable" | "InternalFailure" | "InternalError")
                || status.contains("StatusCode(5")
                || status.contains("status: 5")
        }
        // Construction errors and the like: nothing was sent.
        _ => false,
    }
}

fn classify<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Verdict
where
    R: std::fmt::Debug,
{
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Verdict::Retry { throttled: false },
        SdkError::ResponseError(_) => Verdict::Retry { throttled: false },
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            if matches!(
                code,
                "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException"
            ) {
                return Verdict::Retry { throttled: true };
            }
            if matches!(code, "PriorRequestNotComplete" | "ServiceUnavailable" | "InternalFailure" | "InternalError") {
                return Verdict::Retry { throttled: false };
            }
            let status = format!("{:?}", se.raw());
            // 5xx without a recognised code.
            if status.contains("StatusCode(5") || status.contains("status: 5") {
                return Verdict::Retry { throttled: false };
            }
            Verdict::Fail
        }
        _ => Verdict::Fail,
    }
}

fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!("{}: {}", err.code().unwrap_or("error"), err.message().unwrap_or("no message"))
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(d) => format!("connection failed: {d:?}"),
        SdkError::ResponseError(r) => format!("unreadable response: {r:?}"),
        other => format!("{other:?}"),
    }
}

impl Route53 {
    /// Wraps an SDK client. Give the client no retries of its own (see [`client_config`]):
    /// ours draw on the shared budget.
    pub fn new(client: Client, budget: Arc<RateBudget>, retry: RetryPolicy, account: String) -> Self {
        Self { client, budget, class: CallClass::Sweep, retry, observer: None, account, page_size: 300 }
    }

    /// The same access, its calls drawn from the budget as `class`.
    pub fn with_class(mut self, class: CallClass) -> Self {
        self.class = class;
        self
    }

    /// Reports every call's outcome (metrics).
    pub fn with_observer(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, op: &'static str, outcome: &'static str) {
        if let Some(o) = &self.observer {
            o(op, outcome);
        }
    }

    pub(crate) async fn call<T, E, R, F, Fut>(&self, op: &'static str, zone: &str, f: F) -> Result<T, FetchError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::fmt::Debug,
        R: std::fmt::Debug,
    {
        self.call_tracked(op, zone, f).await.map_err(|f| f.error)
    }

    /// [`Self::call`], telling whether a failed call may have been carried out anyway.
    pub(crate) async fn call_tracked<T, E, R, F, Fut>(
        &self,
        op: &'static str,
        zone: &str,
        f: F,
    ) -> Result<T, CallFailure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::fmt::Debug,
        R: std::fmt::Debug,
    {
        let mut attempt = 0;
        let mut uncertain = false;
        loop {
            self.budget.acquire_for(self.class).await;
            match f().await {
                Ok(v) => {
                    self.observe(op, "ok");
                    return Ok(v);
                }
                Err(e) => {
                    attempt += 1;
                    let verdict = classify(&e);
                    let throttled = matches!(verdict, Verdict::Retry { throttled: true });
                    let message = describe(&e);
                    uncertain |= maybe_done(&e);
                    if matches!(verdict, Verdict::Fail) || attempt >= self.retry.max_attempts {
                        self.observe(op, "failed");
                        let code = match &e {
                            SdkError::ServiceError(se) => se.err().code().map(str::to_owned),
                            _ => None,
                        };
                        let error = FetchError { op, zone: zone.to_owned(), message, throttled };
                        return Err(CallFailure { error, code, uncertain });
                    }
                    self.observe(op, if throttled { "throttled" } else { "retried" });
                    let wait = self.retry.backoff(attempt);
                    tracing::debug!(op, zone, attempt, ?wait, error = %message, "Route53 call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Every hosted zone (paged). VPCs of private zones are read only with `with_vpcs`.
    pub async fn list_zones(&self, with_vpcs: bool) -> Result<Vec<HostedZone>, FetchError> {
        let mut zones = Vec::new();
        let mut marker: Option<String> = None;
        let mut seen_markers = HashSet::new();
        loop {
            let out = self
                .call("ListHostedZones", "", || {
                    self.client.list_hosted_zones().set_marker(marker.clone()).max_items(100).send()
                })
                .await?;
            for z in out.hosted_zones() {
                zones.push(HostedZone {
                    id: bare_zone_id(z.id()).to_owned(),
                    name: z.name().to_owned(),
                    private: z.config().is_some_and(|c| c.private_zone()),
                    vpcs: Vec::new(),
                    account: self.account.clone(),
                });
            }
            match out.next_marker() {
                Some(m) if out.is_truncated() && seen_markers.insert(m.to_owned()) => marker = Some(m.to_owned()),
                // A listing that says it goes on but gives no new place to go on from is not
                // complete: treating it as complete would delete every zone not listed yet.
                _ if out.is_truncated() => {
                    return Err(FetchError {
                        op: "ListHostedZones",
                        zone: String::new(),
                        message: "truncated page without a new NextMarker: the zone listing is incomplete".into(),
                        throttled: false,
                    });
                }
                _ => break,
            }
        }
        if with_vpcs {
            for z in zones.iter_mut().filter(|z| z.private) {
                let out =
                    self.call("GetHostedZone", &z.id, || self.client.get_hosted_zone().id(z.id.clone()).send()).await?;
                z.vpcs = out
                    .vpcs()
                    .iter()
                    .map(|v| {
                        (
                            v.vpc_id().unwrap_or_default().to_owned(),
                            v.vpc_region().map(|r| r.as_str().to_owned()).unwrap_or_default(),
                        )
                    })
                    .collect();
            }
        }
        Ok(zones)
    }

    /// Every record set of a zone. Pages are followed until the listing says it is complete;
    /// record sets are de-duplicated on (name, type, set identifier), and a page that adds
    /// nothing new ends the listing (emulators repeat groups of routed records across pages).
    /// Any failed page fails the whole zone.
    pub async fn list_records(&self, zone_id: &str) -> Result<Vec<RecordSet>, FetchError> {
        let mut out_sets = Vec::new();
        let mut seen: HashSet<(String, String, Option<String>)> = HashSet::new();
        let mut start: Option<(String, RrType, Option<String>)> = None;
        for _page in 0..100_000 {
            let (name, rtype, ident) = match &start {
                Some((n, t, i)) => (Some(n.clone()), Some(t.clone()), i.clone()),
                None => (None, None, None),
            };
            let out = self
                .call("ListResourceRecordSets", zone_id, || {
                    self.client
                        .list_resource_record_sets()
                        .hosted_zone_id(zone_id)
                        .set_start_record_name(name.clone())
                        .set_start_record_type(rtype.clone())
                        .set_start_record_identifier(ident.clone())
                        .max_items(self.page_size)
                        .send()
                })
                .await?;
            let mut progress = false;
            for r in out.resource_record_sets() {
                let key = (
                    r.name().to_ascii_lowercase(),
                    r.r#type().as_str().to_owned(),
                    r.set_identifier().map(str::to_owned),
                );
                if seen.insert(key) {
                    progress = true;
                    out_sets.push(RecordSet::from(r));
                }
            }
            if !out.is_truncated() {
                return Ok(out_sets);
            }
            if !progress {
                tracing::debug!(zone_id, "a record-set page added nothing new; listing complete");
                return Ok(out_sets);
            }
            let Some(next_name) = out.next_record_name() else {
                return Err(FetchError {
                    op: "ListResourceRecordSets",
                    zone: zone_id.to_owned(),
                    message: "truncated page without NextRecordName".into(),
                    throttled: false,
                });
            };
            let next_type = out.next_record_type().cloned().unwrap_or(RrType::A);
            start = Some((next_name.to_owned(), next_type, out.next_record_identifier().map(str::to_owned)));
        }
        Err(FetchError {
            op: "ListResourceRecordSets",
            zone: zone_id.to_owned(),
            message: "too many pages".into(),
            throttled: false,
        })
    }

    /// The record sets of one name and type in a zone (every set identifier), read now: a
    /// listing that starts at that name and type and stops at the first other one. One call
    /// unless a routed group has more members than a page. `rtype` must be a type Route53
    /// knows (checked before any call).
    pub async fn record_sets_of(&self, zone_id: &str, name: &str, rtype: &str) -> Result<Vec<RecordSet>, FetchError> {
        let fail = |message: String| FetchError {
            op: "ListResourceRecordSets",
            zone: zone_id.to_owned(),
            message,
            throttled: false,
        };
        let rtype = rtype.to_ascii_uppercase();
        if !RrType::values().contains(&rtype.as_str()) {
            return Err(fail(format!("{rtype} is not a Route53 record type")));
        }
        self.record_sets_from(zone_id, name, Some(RrType::from(rtype.as_str()))).await
    }

    /// The record sets owned by `name` in a zone, read now — of type `rtype` only, when one
    /// is given: a listing that starts there and stops at the first other owner (or type).
    /// One call unless the sets fill more than a page; a page that brings nothing new ends
    /// the listing (Route53 answering the same page again must not loop).
    pub(crate) async fn record_sets_from(
        &self,
        zone_id: &str,
        name: &str,
        rtype: Option<RrType>,
    ) -> Result<Vec<RecordSet>, FetchError> {
        let fail = |message: String| FetchError {
            op: "ListResourceRecordSets",
            zone: zone_id.to_owned(),
            message,
            throttled: false,
        };
        let want = crate::convert::parse_route53_name(name).map_err(fail)?.to_lowercase();
        let mut sets: Vec<RecordSet> = Vec::new();
        let mut seen: HashSet<(String, Option<String>)> = HashSet::new();
        let mut start = Some((name.to_owned(), rtype.clone(), None::<String>));
        for _ in 0..1000 {
            let Some((n, t, i)) = start.take() else { break };
            let out = self
                .call("ListResourceRecordSets", zone_id, || {
                    self.client
                        .list_resource_record_sets()
                        .hosted_zone_id(zone_id)
                        .start_record_name(n.clone())
                        .set_start_record_type(t.clone())
                        .set_start_record_identifier(i.clone())
                        .max_items(100)
                        .send()
                })
                .await?;
            let mut progress = false;
            for r in out.resource_record_sets() {
                let owner = crate::convert::parse_route53_name(r.name()).map(|n| n.to_lowercase());
                if owner.as_ref() != Ok(&want) || rtype.as_ref().is_some_and(|t| r.r#type() != t) {
                    return Ok(sets);
                }
                if seen.insert((r.r#type().as_str().to_owned(), r.set_identifier().map(str::to_owned))) {
                    progress = true;
                    sets.push(RecordSet::from(r));
                }
            }
            // As the zone listing: the end, a page adding nothing, or a malformed page.
            if !out.is_truncated() {
                return Ok(sets);
            }
            if !progress {
                tracing::debug!(zone_id, name, "a record-set page added nothing new; listing complete");
                return Ok(sets);
            }
            let Some(next) = out.next_record_name() else {
                return Err(fail("truncated page without NextRecordName".into()));
            };
            start = Some((
                next.to_owned(),
                out.next_record_type().cloned().or_else(|| rtype.clone()),
                out.next_record_identifier().map(str::to_owned),
            ));
        }
        // Never a partial set: the caller would take it for the whole.
        Err(fail("too many pages".into()))
    }

    /// Whether a health check is healthy: Route53 counts an endpoint healthy when more than
    /// 18% of its checkers say so.
    pub async fn health(&self, id: &str) -> Result<bool, FetchError> {
        let out = self
            .call("GetHealthCheckStatus", "", || self.client.get_health_check_status().health_check_id(id).send())
            .await?;
        let obs = out.health_check_observations();
        if obs.is_empty() {
            return Ok(true);
        }
        let ok = obs
            .iter()
            .filter(|o| o.status_report().and_then(|r| r.status()).is_some_and(|s| s.starts_with("Success")))
            .count();
        Ok(ok as f64 > obs.len() as f64 * 0.18)
    }

    /// The CIDR blocks of one location of a CIDR collection.
    pub async fn cidr_blocks(&self, collection: &str, location: &str) -> Result<Vec<Prefix>, FetchError> {
        let mut blocks = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .call("ListCidrBlocks", "", || {
                    self.client
                        .list_cidr_blocks()
                        .collection_id(collection)
                        .location_name(location)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            for b in out.cidr_blocks() {
                if let Some(p) = b.cidr_block().and_then(parse_prefix) {
                    blocks.push(p);
                }
            }
            match out.next_token() {
                Some(t) if Some(t) != token.as_deref() => token = Some(t.to_owned()),
                _ => return Ok(blocks),
            }
        }
    }
}

pub use r53dns_zone::routing::parse_prefix;

/// SDK settings for our use: no SDK-level retries (ours draw on the budget), bounded
/// timeouts, and a rustls client on ring (no aws-lc build).
pub fn client_config(base: &aws_config::SdkConfig, call_timeout: Duration) -> aws_sdk_route53::Config {
    aws_sdk_route53::config::Builder::from(base)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(call_timeout)
                .connect_timeout(Duration::from_secs(5))
                .build(),
        )
        .build()
}

/// The HTTP client every AWS call uses.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}
