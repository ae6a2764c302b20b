//! Route53 data as the API returns it, in the shape of the AWS CLI's JSON (so a recorded
//! `aws route53 list-resource-record-sets` output is a test fixture), independent of the SDK.

use serde::{Deserialize, Serialize};

/// A hosted zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostedZone {
    /// `Z1D633PJN98FT9` (any `/hostedzone/` prefix removed).
    pub id: String,
    /// `example.com.`, possibly with `\ooo` escapes.
    pub name: String,
    /// A private zone (associated with VPCs).
    #[serde(default)]
    pub private: bool,
    /// VPC IDs of a private zone, with their regions.
    #[serde(default)]
    pub vpcs: Vec<(String, String)>,
    /// The account/role the zone was read with (empty for the default credentials).
    #[serde(default)]
    pub account: String,
}

/// One value of a record set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceRecord {
    /// The RDATA in presentation form (`10 mail.example.com`).
    pub value: String,
}

/// An alias target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasTarget {
    /// The target's hosted zone: a zone of the account, or an AWS service's zone.
    #[serde(rename = "HostedZoneId")]
    pub hosted_zone_id: String,
    /// The target name.
    #[serde(rename = "DNSName")]
    pub dns_name: String,
    /// Whether the target's health counts.
    #[serde(rename = "EvaluateTargetHealth", default)]
    pub evaluate_target_health: bool,
}

/// Geolocation of a record set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GeoLocation {
    /// `EU`.
    #[serde(default)]
    pub continent_code: Option<String>,
    /// `DE`, or `*` for the default.
    #[serde(default)]
    pub country_code: Option<String>,
    /// `CA` within `US`.
    #[serde(default)]
    pub subdivision_code: Option<String>,
}

/// IP-based routing of a record set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CidrRoutingConfig {
    /// The CIDR collection.
    pub collection_id: String,
    /// The location in it, or `*` for the default.
    pub location_name: String,
}

/// A resource record set as listed by `ListResourceRecordSets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordSet {
    /// Owner name.
    pub name: String,
    /// Type mnemonic.
    #[serde(rename = "Type")]
    pub rtype: String,
    /// TTL (absent for aliases).
    #[serde(rename = "TTL", default)]
    pub ttl: Option<i64>,
    /// Values (absent for aliases).
    #[serde(default)]
    pub resource_records: Vec<ResourceRecord>,
    /// Alias target.
    #[serde(default)]
    pub alias_target: Option<AliasTarget>,
    /// Routing: set identifier.
    #[serde(default)]
    pub set_identifier: Option<String>,
    /// Weighted routing.
    #[serde(default)]
    pub weight: Option<i64>,
    /// Latency routing.
    #[serde(default)]
    pub region: Option<String>,
    /// Geolocation routing.
    #[serde(default)]
    pub geo_location: Option<GeoLocation>,
    /// Failover routing: `PRIMARY` or `SECONDARY`.
    #[serde(default)]
    pub failover: Option<String>,
    /// Multivalue answer routing.
    #[serde(default)]
    pub multi_value_answer: Option<bool>,
    /// Health check.
    #[serde(default)]
    pub health_check_id: Option<String>,
    /// IP-based routing.
    #[serde(default)]
    pub cidr_routing_config: Option<CidrRoutingConfig>,
}

impl RecordSet {
    /// A plain record set: no alias, no routing policy.
    pub fn plain(name: String, rtype: String, ttl: i64, values: Vec<String>) -> Self {
        Self {
            name,
            rtype,
            ttl: Some(ttl),
            resource_records: values.into_iter().map(|value| ResourceRecord { value }).collect(),
            alias_target: None,
            set_identifier: None,
            weight: None,
            region: None,
            geo_location: None,
            failover: None,
            multi_value_answer: None,
            health_check_id: None,
            cidr_routing_config: None,
        }
    }
}

/// A `ListResourceRecordSets` response page as the CLI prints it (golden-file input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordSetPage {
    /// The record sets.
    pub resource_record_sets: Vec<RecordSet>,
}

impl From<&aws_sdk_route53::types::ResourceRecordSet> for RecordSet {
    fn from(r: &aws_sdk_route53::types::ResourceRecordSet) -> Self {
        Self {
            name: r.name().to_owned(),
            rtype: r.r#type().as_str().to_owned(),
            ttl: r.ttl(),
            resource_records: r
                .resource_records()
                .iter()
                .map(|v| ResourceRecord { value: v.value().to_owned() })
                .collect(),
            alias_target: r.alias_target().map(|a| AliasTarget {
                hosted_zone_id: a.hosted_zone_id().to_owned(),
                dns_name: a.dns_name().to_owned(),
                evaluate_target_health: a.evaluate_target_health(),
            }),
            set_identifier: r.set_identifier().map(str::to_owned),
            weight: r.weight(),
            region: r.region().map(|x| x.as_str().to_owned()),
            geo_location: r.geo_location().map(|g| GeoLocation {
                continent_code: g.continent_code().map(str::to_owned),
                country_code: g.country_code().map(str::to_owned),
                subdivision_code: g.subdivision_code().map(str::to_owned),
            }),
            failover: r.failover().map(|x| x.as_str().to_owned()),
            multi_value_answer: r.multi_value_answer(),
            health_check_id: r.health_check_id().map(str::to_owned),
            cidr_routing_config: r.cidr_routing_config().map(|c| CidrRoutingConfig {
                collection_id: c.collection_id().to_owned(),
                location_name: c.location_name().to_owned(),
            }),
        }
    }
}

/// A hosted zone ID without its `/hostedzone/` prefix.
pub fn bare_zone_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}
