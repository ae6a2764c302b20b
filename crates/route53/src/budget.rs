//! One token bucket for every Route53 API call of the process, and the retry policy.
//!
//! Route53 allows about five requests per second per account; every replica that sweeps the
//! account shares that. All calls, retries included, draw from this budget.
//!
//! Calls made for DNS UPDATE also draw from a second, smaller bucket (a share of the rate):
//! clients can send UPDATEs faster than Route53 takes them, and without a cap their reads
//! and writes would take every token, and sweeps (which keep every zone current) would
//! stall. Within that share UPDATE goes first, as a client is waiting for its answer: a
//! sweep leaves a token to an UPDATE that may take it. So under full load UPDATE gets its
//! share and sweeps the rest; alone, a sweep gets all of it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Whom a call is made for, which decides how much of the budget it may take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CallClass {
    /// Sweeps and everything else: the whole budget.
    #[default]
    Sweep,
    /// DNS UPDATE's reads and writes: at most [`RateBudget::with_update_share`] of it.
    Update,
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct RateBudget {
    rate: f64,
    burst: f64,
    /// Fraction of `rate` (and of `burst`) UPDATE-class calls may take.
    update_share: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    update_tokens: f64,
    at: Instant,
    /// UPDATE-class calls waiting for tokens.
    updates_waiting: usize,
}

/// Counts an UPDATE-class caller as waiting for as long as it lives (a caller that gives
/// up, its future dropped, stops counting).
struct Waiting<'a>(&'a Mutex<State>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.updates_waiting -= 1;
    }
}

impl RateBudget {
    /// `rate` requests per second (at least 0.01), bursts of up to `burst` (at least 1).
    /// UPDATE-class calls may take all of it until [`Self::with_update_share`] says otherwise.
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate.max(0.01),
            burst,
            update_share: 1.0,
            state: Mutex::new(State { tokens: burst, update_tokens: burst, at: Instant::now(), updates_waiting: 0 }),
        }
    }

    /// Caps UPDATE-class calls at `share` (0.01–1) of the rate and of the burst; the rest
    /// is left to sweeps whatever the UPDATE load.
    pub fn with_update_share(mut self, share: f64) -> Self {
        self.update_share = if share.is_finite() { share.clamp(0.01, 1.0) } else { 1.0 };
        let cap = self.update_burst();
        let s = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        s.update_tokens = s.update_tokens.min(cap);
        self
    }

    fn update_rate(&self) -> f64 {
        self.rate * self.update_share
    }

    fn update_burst(&self) -> f64 {
        (self.burst * self.update_share).max(1.0)
    }

    /// Waits until a token is available and takes it (a sweep-class call).
    pub async fn acquire(&self) {
        self.acquire_for(CallClass::Sweep).await;
    }

    /// Waits until a call of `class` may be made, and takes its tokens.
    pub async fn acquire_for(&self, class: CallClass) {
        let _waiting = (class == CallClass::Update).then(|| {
            self.state.lock().unwrap_or_else(|p| p.into_inner()).updates_waiting += 1;
            Waiting(&self.state)
        });
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let elapsed = now.duration_since(s.at).as_secs_f64();
                s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
                s.update_tokens = (s.update_tokens + elapsed * self.update_rate()).min(self.update_burst());
                s.at = now;
                let shared_wait = (1.0 - s.tokens).max(0.0) / self.rate;
                // A token an UPDATE waits for and is allowed is kept for it.
                let kept = if s.updates_waiting > 0 && s.update_tokens >= 1.0 { 1.0 } else { 0.0 };
                match class {
                    CallClass::Sweep if s.tokens >= 1.0 + kept => {
                        s.tokens -= 1.0;
                        return;
                    }
                    CallClass::Sweep => (1.0 + kept - s.tokens).max(0.0) / self.rate,
                    // Both or neither: a token taken from one bucket while waiting on the
                    // other would be lost to sweeps for nothing.
                    CallClass::Update if s.tokens >= 1.0 && s.update_tokens >= 1.0 => {
                        s.tokens -= 1.0;
                        s.update_tokens -= 1.0;
                        return;
                    }
                    CallClass::Update => shared_wait.max((1.0 - s.update_tokens).max(0.0) / self.update_rate()),
                }
            };
            // Rounding can leave a token a hair short with a wait below the clock's
            // resolution; sleeping that long would spin without time moving.
            tokio::time::sleep(Duration::from_secs_f64(wait).max(Duration::from_millis(1))).await;
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

    /// How long ten sweep calls take while `flood` UPDATE-class callers ask as fast as they
    /// can, and how many calls those got in that time.
    async fn sweep_under_an_update_flood(budget: RateBudget, flood: usize) -> (Duration, u64) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let b = Arc::new(budget);
        let updates = Arc::new(AtomicU64::new(0));
        let mut flooders = Vec::new();
        for _ in 0..flood {
            let (b, updates) = (b.clone(), updates.clone());
            flooders.push(tokio::spawn(async move {
                loop {
                    b.acquire_for(CallClass::Update).await;
                    updates.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // The flood drains the burst first.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let start = tokio::time::Instant::now();
        let before = updates.load(Ordering::Relaxed);
        let sweep = async {
            for _ in 0..10 {
                b.acquire().await;
            }
        };
        // A starved sweep shows as a minute.
        let _ = tokio::time::timeout(Duration::from_secs(60), sweep).await;
        let took = start.elapsed();
        let during = updates.load(Ordering::Relaxed) - before;
        for f in flooders {
            f.abort();
        }
        (took, during)
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_flood_cannot_starve_sweeps() {
        // Half of 5/s is the sweeps': 10 calls in about 4 s, however many UPDATEs wait.
        let (took, updates) = sweep_under_an_update_flood(RateBudget::new(5.0, 5).with_update_share(0.5), 50).await;
        assert!(took <= Duration::from_millis(4500), "{took:?}");
        // And UPDATEs had no more than their share of that time.
        let most = (took.as_secs_f64() * 2.5).ceil() as u64 + 3;
        assert!(updates <= most, "{updates} UPDATE calls in {took:?}");
        assert!(updates >= 5, "UPDATEs still progress: {updates} in {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_of_one_lets_an_update_flood_stall_sweeps() {
        // What the share is for: UPDATEs go first, so with all of the budget theirs, a
        // flood leaves sweeps nothing.
        let (took, _) = sweep_under_an_update_flood(RateBudget::new(5.0, 5).with_update_share(1.0), 50).await;
        assert!(took >= Duration::from_secs(60), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn updates_alone_get_their_share_and_no_more() {
        let b = RateBudget::new(4.0, 4).with_update_share(0.25);
        let start = tokio::time::Instant::now();
        // A burst of one (a quarter of 4, at least 1), then 1/s.
        for _ in 0..6 {
            b.acquire_for(CallClass::Update).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(4990) && took <= Duration::from_millis(5100), "{took:?}");
        // Sweeps still find the burst they did not use.
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            b.acquire().await;
        }
        assert!(start.elapsed() <= Duration::from_millis(10), "{:?}", start.elapsed());
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
