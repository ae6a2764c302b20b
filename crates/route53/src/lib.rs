//! Route53 as a zone source: record sets fetched through the AWS API ([`fetch`]) and
//! converted faithfully into immutable zones ([`convert()`]); DNS UPDATEs written back as
//! change batches ([`mod@write`]).
#![warn(missing_docs)]

pub mod budget;
pub mod convert;
mod create;
pub mod events;
pub mod fetch;
pub mod model;
pub mod write;

pub use budget::{CallClass, RateBudget, RetryPolicy};
pub use convert::{ConvertError, Converted, EndpointAddrs, Inputs, convert};
pub use fetch::{FetchError, Route53};
pub use model::{HostedZone, RecordSet};
