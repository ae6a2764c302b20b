//! How often: the validated rate limits of `[update]` and the token buckets per TSIG key
//! and per client network that enforce them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex as StdMutex;
use std::time::Instant;

use anyhow::bail;

use crate::config::UpdateSpec;

/// Validated rate limits of `[update]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// UPDATEs per second allowed per TSIG key, and the burst.
    pub per_key: (f64, u32),
    /// UPDATEs per second allowed per client network (/24, /56), and the burst.
    pub per_network: (f64, u32),
    /// Most of the Route53 API rate budget UPDATE's calls may take (0.01–1).
    pub route53_share: f64,
}

impl Default for Limits {
    /// Ten a second with bursts of twenty per key and per network is more than Route53
    /// takes at its default rate (about one UPDATE a second at half of 5 calls/s), so it
    /// never binds a well-behaved DHCP server, yet stops a looping client from queueing
    /// work without end. Half the API budget stays with the sweeps.
    fn default() -> Self {
        Self { per_key: (10.0, 20), per_network: (10.0, 20), route53_share: 0.5 }
    }
}

/// Validates the rate limits of `[update]`, defaults filled in.
pub(crate) fn limits(spec: &UpdateSpec) -> anyhow::Result<Limits> {
    let d = Limits::default();
    let rate = |v: Option<f64>, default: f64, what: &str| {
        let v = v.unwrap_or(default);
        if !(v.is_finite() && v > 0.0 && v <= 100_000.0) {
            bail!("update.{what}: {v} is out of range (more than 0, at most 100000 UPDATEs/s)");
        }
        Ok(v)
    };
    let burst = |v: Option<u32>, default: u32, what: &str| {
        let v = v.unwrap_or(default);
        if !(1..=1_000_000).contains(&v) {
            bail!("update.{what}: {v} is out of range (1–1000000)");
        }
        Ok(v)
    };
    let share = spec.route53_share.unwrap_or(d.route53_share);
    if !(0.01..=1.0).contains(&share) {
        bail!("update.route53-share: {share} is not a share between 0.01 and 1");
    }
    Ok(Limits {
        per_key: (
            rate(spec.rate_per_key, d.per_key.0, "rate-per-key")?,
            burst(spec.burst_per_key, d.per_key.1, "burst-per-key")?,
        ),
        per_network: (
            rate(spec.rate_per_network, d.per_network.0, "rate-per-network")?,
            burst(spec.burst_per_network, d.per_network.1, "burst-per-network")?,
        ),
        route53_share: share,
    })
}

/// The network a client is counted in: /24 for IPv4, /56 for IPv6 (one site's prefix), so
/// that a client cannot escape its limit by using many addresses of its own network.
pub(super) fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => client_network(IpAddr::V4(v4)),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 72) - 1))),
        },
    }
}

/// Most client networks tracked one by one; beyond, the rest share one bucket.
pub(super) const MAX_NETWORKS: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    pub(super) tokens: f64,
    pub(super) at: Instant,
}

impl Bucket {
    pub(super) fn full(burst: u32, now: Instant) -> Self {
        Self { tokens: f64::from(burst), at: now }
    }

    pub(super) fn refill(&mut self, (rate, burst): (f64, u32), now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        self.at = now;
    }
}

/// Which limit refused an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Limited {
    Key(String),
    Network(IpAddr),
}

/// Token buckets per TSIG key and per client network.
#[derive(Debug)]
pub(super) struct RateLimits {
    pub(super) limits: Limits,
    pub(super) state: StdMutex<LimitState>,
}

#[derive(Debug, Default)]
pub(super) struct LimitState {
    pub(super) keys: HashMap<String, Bucket>,
    /// `None`: the bucket shared by networks beyond [`MAX_NETWORKS`].
    pub(super) networks: HashMap<Option<IpAddr>, Bucket>,
}

impl RateLimits {
    pub(super) fn new(limits: Limits) -> Self {
        Self { limits, state: StdMutex::default() }
    }

    /// Takes a token from the key's bucket and the network's, or from neither: a request
    /// refused by one limit does not use up the other.
    pub(super) fn admit(&self, key: Option<&str>, ip: IpAddr, now: Instant) -> Result<(), Limited> {
        let net = client_network(ip);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        let (per_key, per_network) = (self.limits.per_key, self.limits.per_network);
        let mut slot = Some(net);
        if !st.networks.contains_key(&slot) && st.networks.len() >= MAX_NETWORKS {
            // A full bucket is the same as none: forget those first.
            st.networks.retain(|_, b| {
                b.refill(per_network, now);
                b.tokens < f64::from(per_network.1)
            });
            if st.networks.len() >= MAX_NETWORKS {
                slot = None;
            }
        }
        let nb = st.networks.entry(slot).or_insert_with(|| Bucket::full(per_network.1, now));
        nb.refill(per_network, now);
        let kb = match key {
            Some(k) => {
                let b = st.keys.entry(k.to_owned()).or_insert_with(|| Bucket::full(per_key.1, now));
                b.refill(per_key, now);
                Some(b)
            }
            None => None,
        };
        if let Some(b) = &kb
            && b.tokens < 1.0
        {
            return Err(Limited::Key(key.unwrap_or_default().to_owned()));
        }
        if nb.tokens < 1.0 {
            return Err(Limited::Network(net));
        }
        nb.tokens -= 1.0;
        if let Some(b) = kb {
            b.tokens -= 1.0;
        }
        Ok(())
    }
}
