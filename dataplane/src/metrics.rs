//! Prometheus metrics. Each worker thread owns one `WorkerMetrics` shard and
//! is its only writer, so counting never bounces a cache line between cores;
//! `render` sums the shards when scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::router::RouteKind;

/// Latency bucket upper bounds, in microseconds.
const BUCKETS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];
const BUCKET_LABELS: [&str; 14] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "5",
];

/// Route kinds we count: service, alias, none (no route matched).
const KINDS: [&str; 3] = ["service", "alias", "none"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upstream failure causes.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamError {
    Connect,
    Timeout,
    Protocol,
}

/// How one hook phase ended, for `hoody_proxy_hook_runs_total`.
#[derive(Debug, Clone, Copy)]
pub enum HookResult {
    Continue,
    Respond,
    Failed(hook_engine::FailureKind),
}

const HOOK_RESULTS: [&str; 6] = [
    "continue",
    "respond",
    "timeout",
    "trap",
    "start",
    "body_too_large",
];

impl HookResult {
    fn index(self) -> usize {
        use hook_engine::FailureKind;
        match self {
            HookResult::Continue => 0,
            HookResult::Respond => 1,
            HookResult::Failed(FailureKind::Timeout) => 2,
            HookResult::Failed(FailureKind::Trap) => 3,
            HookResult::Failed(FailureKind::Start) => 4,
            HookResult::Failed(FailureKind::BodyTooLarge) => 5,
        }
    }
}

/// Adds to a counter that only its own worker thread writes: a plain load
/// and store, no locked read-modify-write on the request path. Readers
/// (`render`) may see a value a few increments old, never a torn one.
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

fn bump_i(counter: &AtomicI64, by: i64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// One worker's counters; only that worker writes them.
#[derive(Default)]
pub struct WorkerMetrics {
    requests: [[AtomicU64; 5]; 3],
    buckets: [AtomicU64; 14],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    upstream_errors: [AtomicU64; 3],
    pool_idle: AtomicI64,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    hook_runs: [AtomicU64; 6],
    hook_fail_open: AtomicU64,
}

impl WorkerMetrics {
    /// Records one hook phase.
    pub fn hook(&self, result: HookResult) {
        self.hook_runs[result.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failed hook whose request went on (`fail-open`).
    pub fn hook_fail_open(&self) {
        self.hook_fail_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one finished request (response head sent).
    pub fn request(&self, kind: Option<RouteKind>, status: u16, elapsed: Duration) {
        let k = match kind {
            Some(RouteKind::Service) => 0,
            Some(RouteKind::Alias) => 1,
            None => 2,
        };
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        bump(&self.requests[k][class], 1);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            bump(&self.buckets[i], 1);
        }
        bump(&self.latency_count, 1);
        bump(&self.latency_sum_us, us);
    }

    pub fn upstream_error(&self, e: UpstreamError) {
        bump(&self.upstream_errors[e as usize], 1);
    }

    pub fn pool_idle_add(&self, delta: i64) {
        bump_i(&self.pool_idle, delta);
    }

    pub fn connection_opened(&self) {
        bump_i(&self.connections_open, 1);
        bump(&self.connections_total, 1);
    }

    pub fn connection_closed(&self) {
        bump_i(&self.connections_open, -1);
    }
}

/// All shards of one data plane.
#[derive(Default)]
pub struct Metrics {
    shards: Mutex<Vec<Arc<WorkerMetrics>>>,
}

impl Metrics {
    /// A new shard for a worker; it stays counted after the worker exits so
    /// counters never go backwards.
    pub fn shard(&self) -> Arc<WorkerMetrics> {
        let shard = Arc::new(WorkerMetrics::default());
        self.shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(shard.clone());
        shard
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, config_version: u64, routes: usize) -> String {
        let shards = self
            .shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();
        let sum_i = |f: &dyn Fn(&WorkerMetrics) -> i64| shards.iter().map(|s| f(s)).sum::<i64>();
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP hoody_proxy_requests_total Proxied requests by route kind and status class.\n# TYPE hoody_proxy_requests_total counter\n");
        for (k, kind) in KINDS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let n = sum(&|s| s.requests[k][c].load(Ordering::Relaxed));
                let _ = writeln!(
                    out,
                    "hoody_proxy_requests_total{{route_kind=\"{kind}\",status_class=\"{class}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP hoody_proxy_request_duration_seconds Time to response head.\n# TYPE hoody_proxy_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, le) in BUCKET_LABELS.iter().enumerate() {
            cumulative += sum(&|s| s.buckets[i].load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "hoody_proxy_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = sum(&|s| s.latency_count.load(Ordering::Relaxed));
        let sum_us = sum(&|s| s.latency_sum_us.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "hoody_proxy_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "hoody_proxy_request_duration_seconds_sum {}",
            sum_us as f64 / 1e6
        );
        let _ = writeln!(out, "hoody_proxy_request_duration_seconds_count {count}");
        out.push_str("# HELP hoody_proxy_upstream_errors_total Upstream failures by cause.\n# TYPE hoody_proxy_upstream_errors_total counter\n");
        for (i, cause) in ["connect", "timeout", "protocol"].iter().enumerate() {
            let n = sum(&|s| s.upstream_errors[i].load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "hoody_proxy_upstream_errors_total{{cause=\"{cause}\"}} {n}"
            );
        }
        let gauges = [
            (
                "hoody_proxy_upstream_pool_idle",
                "Idle pooled upstream connections.",
                sum_i(&|s| s.pool_idle.load(Ordering::Relaxed)),
            ),
            (
                "hoody_proxy_connections_open",
                "Open client connections.",
                sum_i(&|s| s.connections_open.load(Ordering::Relaxed)),
            ),
            (
                "hoody_proxy_routes",
                "Hostnames currently routed.",
                i64::try_from(routes).unwrap_or(i64::MAX),
            ),
            (
                "hoody_proxy_config_version",
                "Number of configuration changes applied.",
                i64::try_from(config_version).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out.push_str("# HELP hoody_proxy_hook_runs_total Hook phases run, by result.\n# TYPE hoody_proxy_hook_runs_total counter\n");
        for (i, result) in HOOK_RESULTS.iter().enumerate() {
            let n = sum(&|s| s.hook_runs[i].load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "hoody_proxy_hook_runs_total{{result=\"{result}\"}} {n}"
            );
        }
        let open = sum(&|s| s.hook_fail_open.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP hoody_proxy_hook_fail_open_total Failed hooks whose request was forwarded (fail-open).\n# TYPE hoody_proxy_hook_fail_open_total counter\nhoody_proxy_hook_fail_open_total {open}");
        let total = sum(&|s| s.connections_total.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP hoody_proxy_connections_total Accepted client connections.\n# TYPE hoody_proxy_connections_total counter\nhoody_proxy_connections_total {total}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_sums_shards_and_buckets_cumulatively() {
        let m = Metrics::default();
        let a = m.shard();
        let b = m.shard();
        a.request(Some(RouteKind::Service), 200, Duration::from_micros(50));
        b.request(Some(RouteKind::Service), 204, Duration::from_millis(3));
        b.request(None, 404, Duration::from_micros(10));
        a.upstream_error(UpstreamError::Connect);
        let text = m.render(7, 2);
        assert!(text
            .contains("hoody_proxy_requests_total{route_kind=\"service\",status_class=\"2xx\"} 2"));
        assert!(
            text.contains("hoody_proxy_requests_total{route_kind=\"none\",status_class=\"4xx\"} 1")
        );
        assert!(text.contains("hoody_proxy_request_duration_seconds_bucket{le=\"0.0001\"} 2"));
        assert!(text.contains("hoody_proxy_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("hoody_proxy_upstream_errors_total{cause=\"connect\"} 1"));
        assert!(text.contains("hoody_proxy_config_version 7"));
    }
}
