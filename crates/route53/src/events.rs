//! Route53 changes as events: what an EventBridge event of detail type "AWS API Call via
//! CloudTrail" from source `aws.route53` (delivered to an SQS queue, possibly wrapped in an
//! SNS notification) says changed. Pure parsing; nothing here calls AWS.
//!
//! An event is a hint, never data: it names what to read again (the record sets a change
//! batch touched, or a hosted zone that appeared, went, or changed VPCs), and the values
//! always come from a fresh read. So duplicated, reordered or lost events cost at most a
//! read, or wait for the next sweep.

use aws_sdk_route53::types::RrType;
use serde_json::Value;

use crate::model::bare_zone_id;

/// The detail type EventBridge gives API calls recorded by CloudTrail.
pub const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// The EventBridge source of Route53's events.
pub const SOURCE: &str = "aws.route53";
/// CloudTrail's `eventSource` for Route53.
pub const EVENT_SOURCE: &str = "route53.amazonaws.com";

/// What to read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Record sets of a hosted zone changed: each (name, type) as the change batch gave it
    /// (Route53 text form, not normalised), each once.
    Records {
        /// The hosted zone ID, without `/hostedzone/`.
        zone_id: String,
        /// (name, type) pairs.
        sets: Vec<(String, String)>,
    },
    /// A hosted zone was created or deleted, or a VPC associated with or disassociated
    /// from it: the zone list must be read again.
    Zone {
        /// The hosted zone ID when the event carries it.
        zone_id: Option<String>,
    },
}

/// A Route53 event that asks for a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CloudTrail's `eventID` (EventBridge's `id` when absent): equal for copies of the
    /// same event.
    pub id: String,
    /// The API call (`ChangeResourceRecordSets`, ...).
    pub name: String,
    /// Unix time of the call (`eventTime`), when it parses.
    pub time: Option<u64>,
    /// What to read.
    pub hint: Hint,
}

/// What a message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A change to read.
    Event(Event),
    /// A Route53 API call that changes nothing served (a read, a health check, a failed
    /// call): nothing to do.
    Ignored {
        /// The API call.
        name: String,
        /// Why nothing is done.
        reason: &'static str,
    },
    /// A well-formed event of another source or kind: the queue receives more than the
    /// rule sends it.
    Foreign(String),
    /// Not an event at all, or a Route53 change event missing what it must carry.
    Malformed(String),
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str()
}

/// Parses an SQS message body.
pub fn parse(body: &str) -> Parsed {
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Parsed::Malformed(format!("not JSON: {e}")),
    };
    // Through an SNS topic, the event is the notification's `Message`.
    if text(&v, &["Type"]) == Some("Notification")
        && let Some(inner) = text(&v, &["Message"])
    {
        return match serde_json::from_str::<Value>(inner) {
            Ok(inner) => parse_event(&inner),
            Err(e) => Parsed::Malformed(format!("SNS notification whose Message is not JSON: {e}")),
        };
    }
    parse_event(&v)
}

fn parse_event(v: &Value) -> Parsed {
    if !v.is_object() {
        return Parsed::Malformed("not a JSON object".into());
    }
    let (source, kind) = (text(v, &["source"]), text(v, &["detail-type"]));
    let (Some(source), Some(kind)) = (source, kind) else {
        return Parsed::Malformed("no source or detail-type: not an EventBridge event".into());
    };
    if source != SOURCE || kind != DETAIL_TYPE {
        return Parsed::Foreign(format!("source {source:?}, detail-type {kind:?}"));
    }
    let Some(detail) = v.get("detail").filter(|d| d.is_object()) else {
        return Parsed::Malformed("no detail".into());
    };
    let Some(name) = text(detail, &["eventName"]) else {
        return Parsed::Malformed("no detail.eventName".into());
    };
    if let Some(s) = text(detail, &["eventSource"])
        && s != EVENT_SOURCE
    {
        return Parsed::Foreign(format!("eventSource {s:?}"));
    }
    let name = name.to_owned();
    if detail.get("errorCode").is_some_and(|e| !e.is_null()) {
        return Parsed::Ignored { name, reason: "the call failed" };
    }
    let id = match text(detail, &["eventID"]).or_else(|| text(v, &["id"])) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => return Parsed::Malformed("no detail.eventID or id".into()),
    };
    let time = text(detail, &["eventTime"]).or_else(|| text(v, &["time"])).and_then(unix_time);
    let params = detail.get("requestParameters").unwrap_or(&Value::Null);
    let zone_param = |key: &str| text(params, &[key]).map(|z| bare_zone_id(z).to_owned()).filter(|z| !z.is_empty());
    let hint = match name.as_str() {
        "ChangeResourceRecordSets" => {
            let Some(zone_id) = zone_param("hostedZoneId") else {
                return Parsed::Malformed(format!("{name} without requestParameters.hostedZoneId"));
            };
            let Some(changes) = params.get("changeBatch").and_then(|b| b.get("changes")).and_then(Value::as_array)
            else {
                return Parsed::Malformed(format!("{name} without requestParameters.changeBatch.changes"));
            };
            let mut sets: Vec<(String, String)> = Vec::new();
            for c in changes {
                let set = c.get("resourceRecordSet").unwrap_or(&Value::Null);
                let (Some(n), Some(t)) = (text(set, &["name"]), text(set, &["type"])) else {
                    return Parsed::Malformed(format!("{name}: a change without resourceRecordSet.name and type"));
                };
                let t = t.to_ascii_uppercase();
                if crate::convert::parse_route53_name(n).is_err() || !RrType::values().contains(&t.as_str()) {
                    return Parsed::Malformed(format!("{name}: a change with name {n:?} and type {t:?}"));
                }
                let key = (n.to_owned(), t);
                if !sets.contains(&key) {
                    sets.push(key);
                }
            }
            if sets.is_empty() {
                return Parsed::Malformed(format!("{name} with no changes"));
            }
            Hint::Records { zone_id, sets }
        }
        "CreateHostedZone" => Hint::Zone {
            zone_id: text(detail, &["responseElements", "hostedZone", "id"])
                .map(|z| bare_zone_id(z).to_owned())
                .filter(|z| !z.is_empty()),
        },
        "DeleteHostedZone" => Hint::Zone { zone_id: zone_param("id") },
        "AssociateVPCWithHostedZone" | "DisassociateVPCFromHostedZone" => {
            Hint::Zone { zone_id: zone_param("hostedZoneId") }
        }
        _ => return Parsed::Ignored { name, reason: "not a change of hosted zones or record sets" },
    };
    Parsed::Event(Event { id, name, time, hint })
}

/// `2015-01-16T00:41:43Z` as Unix time (UTC, whole seconds; fractions ignored).
fn unix_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 || y < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ChangeResourceRecordSets call as EventBridge delivers it (CloudTrail record as the
    /// Route53 developer guide shows it, in the EventBridge envelope).
    const CHANGE: &str = r#"{
      "version": "0",
      "id": "6f1b5c2e-0d5e-4a7b-9a43-1f0e2d8c9b11",
      "detail-type": "AWS API Call via CloudTrail",
      "source": "aws.route53",
      "account": "444455556666",
      "time": "2015-01-16T00:41:43Z",
      "region": "us-east-1",
      "resources": [],
      "detail": {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "accountId": "111122223333", "userName": "smithj"},
        "eventTime": "2015-01-16T00:41:43Z",
        "eventSource": "route53.amazonaws.com",
        "eventName": "ChangeResourceRecordSets",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.92",
        "userAgent": "Apache-HttpClient/4.3 (java 1.5)",
        "requestParameters": {
          "hostedZoneId": "Z1PA6795UKMFR9",
          "changeBatch": {
            "changes": [
              {"action": "CREATE", "resourceRecordSet": {"name": "prod.example.com.", "type": "A", "tTL": 300,
                "resourceRecords": [{"value": "192.0.1.1"}, {"value": "192.0.1.2"}]}},
              {"action": "CREATE", "resourceRecordSet": {"name": "test.example.com.", "type": "A", "tTL": 300,
                "resourceRecords": [{"value": "192.0.1.1"}]}},
              {"action": "DELETE", "resourceRecordSet": {"name": "prod.example.com.", "type": "a", "tTL": 60,
                "resourceRecords": [{"value": "192.0.1.9"}]}}
            ],
            "comment": "Adding subdomains"
          }
        },
        "responseElements": {"changeInfo": {"id": "/change/C156SRE0X2ZB10", "status": "PENDING",
          "submittedAt": "Jan 16, 2015 12:41:43 AM"}},
        "requestID": "7081d4c6-9d18-11e4-b752-f9c6311f3510",
        "eventID": "883b14d9-2f84-4005-8bc5-c7bf0cebc116",
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "444455556666",
        "eventCategory": "Management"
      }
    }"#;

    #[test]
    fn a_change_batch_names_each_set_once() {
        let Parsed::Event(e) = parse(CHANGE) else { panic!("{:?}", parse(CHANGE)) };
        assert_eq!(e.id, "883b14d9-2f84-4005-8bc5-c7bf0cebc116");
        assert_eq!(e.name, "ChangeResourceRecordSets");
        assert_eq!(e.time, Some(1_421_368_903));
        assert_eq!(
            e.hint,
            Hint::Records {
                zone_id: "Z1PA6795UKMFR9".into(),
                sets: vec![("prod.example.com.".into(), "A".into()), ("test.example.com.".into(), "A".into())],
            }
        );
    }

    #[test]
    fn zone_events_name_their_zone() {
        let wrap = |name: &str, params: &str, response: &str| {
            format!(
                r#"{{"version":"0","id":"x","detail-type":"AWS API Call via CloudTrail","source":"aws.route53",
                "detail":{{"eventSource":"route53.amazonaws.com","eventName":"{name}","eventID":"e1",
                "requestParameters":{params},"responseElements":{response}}}}}"#
            )
        };
        let zone = |body: String| match parse(&body) {
            Parsed::Event(Event { hint: Hint::Zone { zone_id }, .. }) => zone_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            zone(wrap(
                "CreateHostedZone",
                r#"{"name":"example.com","callerReference":"r1"}"#,
                r#"{"hostedZone":{"id":"/hostedzone/Z0NEW","name":"example.com."}}"#
            )),
            Some("Z0NEW".into())
        );
        assert_eq!(zone(wrap("DeleteHostedZone", r#"{"id":"Z0OLD"}"#, "null")), Some("Z0OLD".into()));
        assert_eq!(
            zone(wrap(
                "AssociateVPCWithHostedZone",
                r#"{"hostedZoneId":"Z0P","vPC":{"vPCRegion":"us-east-1","vPCId":"vpc-1"}}"#,
                "null"
            )),
            Some("Z0P".into())
        );
        assert_eq!(
            zone(wrap("DisassociateVPCFromHostedZone", r#"{"hostedZoneId":"/hostedzone/Z0P"}"#, "null")),
            Some("Z0P".into())
        );
    }

    #[test]
    fn failed_calls_reads_and_other_calls_are_ignored() {
        let failed = CHANGE.replace(r#""readOnly": false"#, r#""errorCode": "InvalidChangeBatch", "readOnly": false"#);
        assert!(matches!(parse(&failed), Parsed::Ignored { reason: "the call failed", .. }));
        let health = CHANGE.replace("\"ChangeResourceRecordSets\"", "\"CreateHealthCheck\"");
        assert!(matches!(parse(&health), Parsed::Ignored { .. }));
    }

    #[test]
    fn other_sources_are_foreign_and_broken_messages_malformed() {
        assert!(matches!(parse(&CHANGE.replace("aws.route53", "aws.ec2")), Parsed::Foreign(_)));
        assert!(matches!(parse(&CHANGE.replace("AWS API Call via", "Something")), Parsed::Foreign(_)));
        assert!(matches!(
            parse(&CHANGE.replace("\"route53.amazonaws.com\"", "\"ec2.amazonaws.com\"")),
            Parsed::Foreign(_)
        ));
        for bad in [
            "",
            "not json",
            "[1,2]",
            r#"{"hello":"world"}"#,
            &CHANGE.replace("\"hostedZoneId\"", "\"zone\""),
            &CHANGE.replace("\"changes\"", "\"changez\""),
            &CHANGE.replace("\"type\": \"A\"", "\"type\": 1"),
            &CHANGE.replace("\"type\": \"A\"", "\"type\": \"A A\""),
            &CHANGE.replace("\"type\": \"A\"", "\"type\": \"BOGUS\""),
            &CHANGE.replace("\"test.example.com.\"", "\"a..b\""),
            &CHANGE.replace("\"eventID\"", "\"eventId\"").replace("\"id\": \"6f1b", "\"idx\": \"6f1b"),
        ] {
            assert!(matches!(parse(bad), Parsed::Malformed(_)), "{bad}: {:?}", parse(bad));
        }
    }

    #[test]
    fn an_sns_notification_is_unwrapped() {
        let body = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": CHANGE}).to_string();
        assert!(matches!(parse(&body), Parsed::Event(_)));
    }

    #[test]
    fn times_parse_as_utc() {
        assert_eq!(unix_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_time("2026-12-05T18:36:00Z"), Some(1_796_495_760));
        assert_eq!(unix_time("2026-12-05T18:36:00.123Z"), Some(1_796_495_760));
        assert_eq!(unix_time("yesterday"), None);
    }
}
