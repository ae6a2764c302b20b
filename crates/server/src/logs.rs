//! Refusals an unauthenticated peer can cause at will (a failed TSIG check, a transfer or an
//! UPDATE from a network not allowed, a NOTIFY from a stranger, a full TCP table). Each is
//! counted, always, and logged at most once per second per reason with the number of lines
//! left out since the last one, so a flood of forged packets costs a counter increment
//! each, not a log line each.
//!
//! The counters are process-wide (like the Prometheus registry they feed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Refusal {
    /// A signed query failed its TSIG check.
    QueryTsig,
    /// A transfer request failed its TSIG check.
    TransferTsig,
    /// A transfer request from a network no ACL or key allows.
    TransferNotAllowed,
    /// A transfer request over TLS older than 1.3 (RFC 9103 §9).
    TransferTlsVersion,
    /// An UPDATE failed its TSIG check.
    UpdateTsig,
    /// An UPDATE no grant allows (key, network, transport or names).
    UpdateNotAllowed,
    /// An UPDATE over a sender's rate limit.
    UpdateRateLimited,
    /// A NOTIFY failed its TSIG check.
    NotifyTsig,
    /// A NOTIFY not from the zone's primary, or for a zone not followed here.
    NotifyNotAllowed,
    /// A UDP UPDATE or NOTIFY beyond the requests in flight.
    QueueFull,
    /// A TCP connection beyond its network's share.
    TcpNetworkLimit,
    /// A TCP connection while every slot was busy.
    TcpFull,
    /// A DNS over QUIC request with a Message ID other than 0 (RFC 9250 §4.2.1, §4.3.3).
    DoqMessageId,
}

impl Refusal {
    /// Every reason, in `repr` order.
    pub const ALL: [Refusal; 13] = [
        Refusal::QueryTsig,
        Refusal::TransferTsig,
        Refusal::TransferNotAllowed,
        Refusal::TransferTlsVersion,
        Refusal::UpdateTsig,
        Refusal::UpdateNotAllowed,
        Refusal::UpdateRateLimited,
        Refusal::NotifyTsig,
        Refusal::NotifyNotAllowed,
        Refusal::QueueFull,
        Refusal::TcpNetworkLimit,
        Refusal::TcpFull,
        Refusal::DoqMessageId,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::QueryTsig => "query_tsig",
            Refusal::TransferTsig => "transfer_tsig",
            Refusal::TransferNotAllowed => "transfer_not_allowed",
            Refusal::TransferTlsVersion => "transfer_tls_version",
            Refusal::UpdateTsig => "update_tsig",
            Refusal::UpdateNotAllowed => "update_not_allowed",
            Refusal::UpdateRateLimited => "update_rate_limited",
            Refusal::NotifyTsig => "notify_tsig",
            Refusal::NotifyNotAllowed => "notify_not_allowed",
            Refusal::QueueFull => "queue_full",
            Refusal::TcpNetworkLimit => "tcp_network_limit",
            Refusal::TcpFull => "tcp_full",
            Refusal::DoqMessageId => "doq_message_id",
        }
    }
}

const N: usize = Refusal::ALL.len();

static COUNT: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static LINES: [Throttle; N] = [const { Throttle::new() }; N];

/// At most one log line a second, each with the number of events left out since the
/// previous line.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    /// Second (Unix time) of the last line logged.
    last: AtomicU64,
    /// Events since the last line logged.
    skipped: AtomicU64,
}

impl Throttle {
    pub(crate) const fn new() -> Self {
        Self { last: AtomicU64::new(0), skipped: AtomicU64::new(0) }
    }

    /// Calls `log` with the number of events left out since the previous line, unless a line
    /// was logged this second already (then this event is only counted as left out).
    pub(crate) fn log(&self, log: impl FnOnce(u64)) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last = self.last.load(Ordering::Relaxed);
        // One thread wins the second; the others only count.
        if last != now && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            log(self.skipped.swap(0, Ordering::Relaxed));
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts a refusal and calls `log` with the number of refusals of this reason not logged
/// since the previous line, unless a line of this reason was logged this second already.
pub fn refused(why: Refusal, log: impl FnOnce(u64)) {
    let i = why as usize;
    COUNT[i].fetch_add(1, Ordering::Relaxed);
    LINES[i].log(log);
}

/// Refusals so far, by reason.
pub fn refusals() -> [(Refusal, u64); N] {
    Refusal::ALL.map(|r| (r, COUNT[r as usize].load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_one_line_a_second_and_counts_everything() {
        let before = refusals()[Refusal::TcpFull as usize].1;
        let mut lines = Vec::new();
        for _ in 0..1000 {
            refused(Refusal::TcpFull, |skipped| lines.push(skipped));
        }
        assert_eq!(refusals()[Refusal::TcpFull as usize].1 - before, 1000);
        // A second boundary may fall inside the loop: one or two lines, never more.
        assert!((1..=2).contains(&lines.len()), "{lines:?}");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        refused(Refusal::TcpFull, |skipped| lines.push(skipped));
        let total: u64 = lines.iter().sum::<u64>() + lines.len() as u64;
        assert_eq!(total, 1001, "every refusal is either logged or reported as left out: {lines:?}");
    }
}
