//! Fixed-window request budgets, keyed by whatever the caller chooses
//! (client IP, credential id). The general budget is applied by the
//! middleware in `app.rs`; routes with their own budgets (signup, login
//! failures, refresh) call [`RateLimiter::hit`] themselves.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use dashmap::DashMap;

use crate::error::ApiError;

struct Window {
    started: Instant,
    count: u32,
}

/// One budget: `limit` hits per `window`.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: DashMap<String, Window>,
}

/// What a hit left of the budget, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl Quota {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset_secs));
    }
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter {
            limit,
            window,
            windows: DashMap::new(),
        }
    }

    /// Counts one request for `key`; past the budget, a 429 error that says
    /// when to retry.
    pub fn hit(&self, key: &str) -> Result<Quota, ApiError> {
        let now = Instant::now();
        // The common case is a known key: no allocation for it.
        let mut entry = match self.windows.get_mut(key) {
            Some(entry) => entry,
            None => self.windows.entry(key.to_owned()).or_insert(Window {
                started: now,
                count: 0,
            }),
        };
        if now.duration_since(entry.started) >= self.window {
            entry.started = now;
            entry.count = 0;
        }
        let reset = self
            .window
            .saturating_sub(now.duration_since(entry.started));
        let reset_secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
        if entry.count >= self.limit {
            return Err(ApiError::RateLimited {
                retry_after_secs: reset_secs.max(1),
            });
        }
        entry.count += 1;
        Ok(Quota {
            limit: self.limit,
            remaining: self.limit - entry.count,
            reset_secs,
        })
    }

    /// Whether `key` is over budget, without counting a hit.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        if let Some(entry) = self.windows.get(key) {
            let elapsed = Instant::now().duration_since(entry.started);
            if elapsed < self.window && entry.count >= self.limit {
                let left = self.window - elapsed;
                return Err(ApiError::RateLimited {
                    retry_after_secs: left.as_secs().max(1),
                });
            }
        }
        Ok(())
    }

    /// Drops windows that have ended, so the map does not grow forever.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.windows
            .retain(|_, w| now.duration_since(w.started) < self.window);
    }
}

/// Every budget the API enforces.
pub struct Limits {
    pub signup: RateLimiter,
    pub login_failures: RateLimiter,
    pub refresh: RateLimiter,
    pub per_credential: RateLimiter,
    pub per_ip: RateLimiter,
}

impl Limits {
    pub fn new(cfg: &crate::settings::RateLimits) -> Self {
        const MIN: Duration = Duration::from_secs(60);
        let general = Duration::from_secs(cfg.window_secs);
        Limits {
            signup: RateLimiter::new(cfg.signup_per_hour, 60 * MIN),
            login_failures: RateLimiter::new(cfg.login_failures_per_30min, 30 * MIN),
            refresh: RateLimiter::new(cfg.refresh_per_30min, 30 * MIN),
            per_credential: RateLimiter::new(cfg.per_token_per_min, general),
            per_ip: RateLimiter::new(cfg.per_ip_per_min, general),
        }
    }

    pub fn sweep(&self) {
        for l in [
            &self.signup,
            &self.login_failures,
            &self.refresh,
            &self.per_credential,
            &self.per_ip,
        ] {
            l.sweep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_the_limit_and_recovers_after_the_window() {
        let l = RateLimiter::new(2, Duration::from_millis(50));
        assert_eq!(l.hit("a").unwrap().remaining, 1);
        assert_eq!(l.hit("a").unwrap().remaining, 0);
        assert!(matches!(l.hit("a"), Err(ApiError::RateLimited { .. })));
        assert!(l.hit("b").is_ok(), "keys are independent");
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.hit("a").is_ok());
    }
}
