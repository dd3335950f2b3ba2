//! Per-tenant ingestion rate limiting: one token bucket per tenant.
//!
//! As Mimir's distributor (`golang.org/x/time/rate` `AllowN`), a request
//! costs one token per sample, exemplar and metadata entry; it is accepted
//! whole when the bucket holds that many tokens and refused whole otherwise,
//! taking no tokens. The bucket refills at `ingestion_rate` tokens a second
//! up to `ingestion_burst_size`, so a request larger than the burst is never
//! accepted. A tenant's first request finds a full bucket. When the tenant's
//! limits change, the bucket takes the new rate and burst and keeps its
//! tokens (capped at the new burst). `ingestion_rate: 0` turns the limit off.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_model::TenantId;
use parking_lot::Mutex;

use super::Limits;

/// Token buckets of every tenant that has pushed.
#[derive(Debug, Default)]
pub struct IngestionRateLimiter {
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    /// Takes `n` tokens, or says how long until `n` tokens would be there.
    fn take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if n <= self.tokens {
            self.tokens -= n;
            return Ok(());
        }
        // More than the burst never fits; tell the sender to wait for a full
        // bucket (it must also send smaller requests).
        let missing = n.min(self.burst) - self.tokens;
        Err(Duration::from_secs_f64((missing / self.rate).max(0.0)))
    }
}

impl IngestionRateLimiter {
    pub fn new() -> IngestionRateLimiter {
        IngestionRateLimiter::default()
    }

    /// Takes `items` tokens from `tenant`'s bucket, or returns how long the
    /// sender should wait (the `Retry-After`).
    pub fn allow(&self, tenant: &TenantId, limits: &Limits, items: u64) -> Result<(), Duration> {
        self.allow_at(tenant, limits, items, Instant::now())
    }

    fn allow_at(
        &self,
        tenant: &TenantId,
        limits: &Limits,
        items: u64,
        now: Instant,
    ) -> Result<(), Duration> {
        if limits.ingestion_rate <= 0.0 || items == 0 {
            return Ok(());
        }
        let rate = limits.ingestion_rate;
        let burst = limits.ingestion_burst_size as f64;
        let mut buckets = self.buckets.lock();
        let bucket = buckets
            .entry(tenant.clone())
            .or_insert_with(|| Bucket::new(rate, burst, now));
        if bucket.rate != rate || bucket.burst != burst {
            bucket.refill(now);
            bucket.rate = rate;
            bucket.burst = burst;
            bucket.tokens = bucket.tokens.min(burst);
        }
        bucket.take(items as f64, now)
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: f64, burst: u64) -> Limits {
        Limits {
            ingestion_rate: rate,
            ingestion_burst_size: burst,
            ..Limits::default()
        }
    }

    #[test]
    fn a_bucket_starts_full_refills_at_the_rate_and_refuses_whole_requests() {
        let limiter = IngestionRateLimiter::new();
        let a = TenantId::new("a").unwrap();
        let l = limits(100.0, 200);
        let t0 = Instant::now();
        assert!(limiter.allow_at(&a, &l, 150, t0).is_ok());
        // 50 left: 60 is refused and takes nothing.
        let wait = limiter.allow_at(&a, &l, 60, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert!(limiter.allow_at(&a, &l, 50, t0).is_ok());
        assert!(limiter.allow_at(&a, &l, 1, t0).is_err());
        // Half a second refills 50.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.allow_at(&a, &l, 50, t1).is_ok());
        assert!(limiter.allow_at(&a, &l, 1, t1).is_err());
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        assert!(limiter.allow_at(&a, &l, 201, t2).is_err());
        assert!(limiter.allow_at(&a, &l, 200, t2).is_ok());
    }

    #[test]
    fn tenants_have_their_own_buckets_and_zero_rate_is_unlimited() {
        let limiter = IngestionRateLimiter::new();
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let l = limits(10.0, 10);
        let now = Instant::now();
        assert!(limiter.allow_at(&a, &l, 10, now).is_ok());
        assert!(limiter.allow_at(&a, &l, 1, now).is_err());
        assert!(limiter.allow_at(&b, &l, 10, now).is_ok());
        let off = limits(0.0, 0);
        assert!(limiter.allow_at(&a, &off, 1_000_000, now).is_ok());
        assert!(limiter.allow_at(&a, &l, 0, now).is_ok());
    }

    #[test]
    fn a_limit_change_applies_at_once_and_keeps_the_tokens() {
        let limiter = IngestionRateLimiter::new();
        let a = TenantId::new("a").unwrap();
        let t0 = Instant::now();
        assert!(limiter.allow_at(&a, &limits(10.0, 100), 100, t0).is_ok());
        // The second before the change refilled at the old rate (10); after
        // it, one second refills 1000.
        let raised = limits(1000.0, 5000);
        let t1 = t0 + Duration::from_secs(1);
        assert!(limiter.allow_at(&a, &raised, 11, t1).is_err());
        assert!(limiter.allow_at(&a, &raised, 10, t1).is_ok());
        let t2 = t1 + Duration::from_secs(1);
        assert!(limiter.allow_at(&a, &raised, 1000, t2).is_ok());
        assert!(limiter.allow_at(&a, &raised, 20, t2).is_err());
        // Lowered burst caps the tokens held.
        let t2 = t2 + Duration::from_secs(10);
        let lowered = limits(1000.0, 50);
        assert!(limiter.allow_at(&a, &lowered, 51, t2).is_err());
        assert!(limiter.allow_at(&a, &lowered, 50, t2).is_ok());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
    }
}
