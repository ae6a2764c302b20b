//! Creating a hosted zone (for `r53dns push --create`), through the same budget and retries
//! as every other call.

use aws_sdk_route53::types::{HostedZoneConfig, Vpc, VpcRegion};

use crate::fetch::{FetchError, Route53};
use crate::model::bare_zone_id;

impl Route53 {
    /// Creates the hosted zone `name` (Route53 text form): public, or private and associated
    /// with `vpcs` (`(vpc id, region)`). Returns its bare ID. `reference` must be unique per
    /// intended zone (a retried request with the same reference is not a second zone).
    pub async fn create_zone(
        &self,
        name: &str,
        vpcs: &[(String, String)],
        reference: &str,
    ) -> Result<String, FetchError> {
        let err =
            |m: String| FetchError { op: "CreateHostedZone", zone: name.to_owned(), message: m, throttled: false };
        let mut vpc_list = Vec::new();
        for (id, region) in vpcs {
            vpc_list.push(Vpc::builder().vpc_id(id).vpc_region(VpcRegion::from(region.as_str())).build());
        }
        let config =
            HostedZoneConfig::builder().comment("created by r53dns push").private_zone(!vpc_list.is_empty()).build();
        let out = self
            .call("CreateHostedZone", name, || {
                let mut req = self
                    .client
                    .create_hosted_zone()
                    .name(name)
                    .caller_reference(reference)
                    .hosted_zone_config(config.clone());
                // A private zone is created with its first VPC; the rest are associated after.
                if let Some(v) = vpc_list.first() {
                    req = req.vpc(v.clone());
                }
                req.send()
            })
            .await?;
        let id = out
            .hosted_zone()
            .map(|z| bare_zone_id(z.id()).to_owned())
            .ok_or_else(|| err("no zone in the response".into()))?;
        for v in vpc_list.iter().skip(1) {
            self.call("AssociateVPCWithHostedZone", &id, || {
                self.client.associate_vpc_with_hosted_zone().hosted_zone_id(&id).vpc(v.clone()).send()
            })
            .await?;
        }
        Ok(id)
    }
}
