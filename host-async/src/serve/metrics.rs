//! `GET /metrics` in Prometheus' text format, and one log line per request.
//!
//! Written by hand rather than with a metrics crate: a dozen series, rendered on demand,
//! and no global registry an embedder's own metrics would collide with.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram.
#[derive(Default)]
struct Histogram {
    /// Counts per bucket (not cumulative; summed when rendered), and one for +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let comma = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter()) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{comma}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts[BUCKETS.len()];
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{comma}le=\"+Inf\"}} {cumulative}"
        );
        let braces = |labels: &str| {
            if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// The service's counters.
#[derive(Default)]
pub(super) struct Metrics {
    /// (route, method, status) → requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency.
    durations: Mutex<BTreeMap<String, Histogram>>,
    queue_waits: Mutex<Histogram>,
    in_flight: AtomicI64,
    overloaded: AtomicU64,
    /// kind → errors from the store (and commit conflicts) that answered a request.
    store_errors: Mutex<BTreeMap<&'static str, u64>>,
    conflicts: AtomicU64,
    connections: AtomicI64,
}

/// A route's name in labels and logs: its template, with axum's `{*key}` written `{key}`.
pub(super) fn route_label(template: &str) -> String {
    template.replace("{*", "{")
}

impl Metrics {
    pub(super) fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn finished(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((route.to_string(), method.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut durations) = self.durations.lock() {
            durations
                .entry(route.to_string())
                .or_default()
                .observe(elapsed.as_secs_f64());
        }
    }

    pub(super) fn queue_wait(&self, waited: Duration) {
        if let Ok(mut waits) = self.queue_waits.lock() {
            waits.observe(waited.as_secs_f64());
        }
    }

    pub(super) fn overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn store_error(&self, kind: &'static str) {
        if kind == "conflict" {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut errors) = self.store_errors.lock() {
            *errors.entry(kind).or_default() += 1;
        }
    }

    pub(super) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The text exposition (format 0.0.4).
    pub(super) fn render(&self, idle_instances: usize, max_instances: u32) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP ds_http_requests_total Requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE ds_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((route, method, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "ds_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP ds_http_request_duration_seconds Time from a request's headers to its answer.\n");
        out.push_str("# TYPE ds_http_request_duration_seconds histogram\n");
        if let Ok(durations) = self.durations.lock() {
            for (route, histogram) in durations.iter() {
                histogram.render(
                    &mut out,
                    "ds_http_request_duration_seconds",
                    &format!("route=\"{route}\""),
                );
            }
        }
        out.push_str("# HELP ds_http_queue_wait_seconds Time requests waited for a call slot.\n");
        out.push_str("# TYPE ds_http_queue_wait_seconds histogram\n");
        if let Ok(waits) = self.queue_waits.lock() {
            waits.render(&mut out, "ds_http_queue_wait_seconds", "");
        }
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        gauge(
            &mut out,
            "ds_http_requests_in_flight",
            "Requests being served now.",
            "gauge",
            self.in_flight.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "ds_http_connections_open",
            "Client connections open now.",
            "gauge",
            self.connections.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "ds_http_overloaded_total",
            "Requests answered 503 because no call slot or body buffer freed up in time.",
            "counter",
            self.overloaded.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "ds_instances_idle",
            "Warm instances idle in the pool, ready for the next call.",
            "gauge",
            idle_instances.to_string(),
        );
        gauge(
            &mut out,
            "ds_instances_max",
            "Instance slots of the process (DS_MAX_INSTANCES).",
            "gauge",
            max_instances.to_string(),
        );
        out.push_str(
            "# HELP ds_store_errors_total Store errors that answered a request, by kind.\n",
        );
        out.push_str("# TYPE ds_store_errors_total counter\n");
        if let Ok(errors) = self.store_errors.lock() {
            for kind in ["unavailable", "invalid_request", "internal", "conflict"] {
                let count = errors.get(kind).copied().unwrap_or(0);
                let _ = writeln!(out, "ds_store_errors_total{{kind=\"{kind}\"}} {count}");
            }
        }
        gauge(
            &mut out,
            "ds_commit_conflicts_total",
            "Requests that ended in a commit conflict after the retries.",
            "counter",
            self.conflicts.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "ds_commit_retries_total",
            "Read-modify-writes retried after losing a race (this process).",
            "counter",
            host_core::retry::retries_so_far().to_string(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = Metrics::default();
        for (status, millis) in [(200, 1), (200, 3), (404, 30)] {
            metrics.started();
            metrics.finished(
                "/v1/entities/{key}",
                "GET",
                status,
                Duration::from_millis(millis),
            );
        }
        metrics.store_error("conflict");
        let text = metrics.render(3, 1024);
        for line in [
            "ds_http_requests_total{route=\"/v1/entities/{key}\",method=\"GET\",status=\"200\"} 2",
            "ds_http_requests_total{route=\"/v1/entities/{key}\",method=\"GET\",status=\"404\"} 1",
            "ds_http_request_duration_seconds_bucket{route=\"/v1/entities/{key}\",le=\"0.001\"} 1",
            "ds_http_request_duration_seconds_bucket{route=\"/v1/entities/{key}\",le=\"0.005\"} 2",
            "ds_http_request_duration_seconds_bucket{route=\"/v1/entities/{key}\",le=\"+Inf\"} 3",
            "ds_http_request_duration_seconds_count{route=\"/v1/entities/{key}\"} 3",
            "ds_http_requests_in_flight 0",
            "ds_instances_idle 3",
            "ds_store_errors_total{kind=\"conflict\"} 1",
            "ds_commit_conflicts_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
