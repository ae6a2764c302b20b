//! One token bucket for every Route53 API call of the process, and the retry policy.
//!
//! Route53 allows about five requests per second per account; every replica that sweeps the
//! account shares that. All calls, retries included, draw from this budget.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct RateBudget {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateBudget {
    /// `rate` requests per second (at least 0.01), bursts of up to `burst` (at least 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { rate: rate.max(0.01), burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Waits until a token is available and takes it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = match self.state.lock() {
                    Ok(s) => s,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let now = Instant::now();
                let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
                s.0 = (s.0 + refill).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// How failed calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles each time.
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 6, base: Duration::from_millis(200), cap: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `attempt` (1 = the first retry): exponential with full jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.cap);
        let jitter: f64 = rand::random();
        exp.mul_f64(0.5 + jitter / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn budget_spaces_calls_at_the_rate() {
        let b = RateBudget::new(5.0, 1);
        let start = tokio::time::Instant::now();
        for _ in 0..11 {
            b.acquire().await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1990), "{took:?}");
        assert!(took <= Duration::from_millis(2100), "{took:?}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert!(p.backoff(1) <= Duration::from_millis(400));
        assert!(p.backoff(1) >= Duration::from_millis(200));
        assert!(p.backoff(30) <= Duration::from_secs(10));
        assert!(p.backoff(30) >= Duration::from_secs(5));
    }
}
