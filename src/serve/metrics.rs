//! `GET /metrics`: requests, latencies, embeds and reloads, in Prometheus's text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Per route: requests by status, and a latency histogram.
#[derive(Default)]
struct Route {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What the server counts.
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<&'static str, Route>>,
    /// Drafts embedded, and the model calls that embedded them.
    pub embeds: Counter,
    pub embed_batches: Counter,
    /// New states of the corpus loaded (a change on disk, or a write).
    pub reloads: Counter,
}

/// The route a path belongs to, as a fixed label (never the raw path: unbounded labels).
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        "/v1/related" => "/v1/related",
        "/v1/search" => "/v1/search",
        "/v1/articles/refresh" => "/v1/articles/refresh",
        "/v1/articles/pins" => "/v1/articles/pins",
        "/v1/articles/blocks" => "/v1/articles/blocks",
        "/v1/articles/lock" => "/v1/articles/lock",
        _ => "other",
    }
}

impl Metrics {
    pub fn observe(&self, route: &'static str, status: u16, took: Duration) {
        let s = took.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let r = routes.entry(route).or_default();
        *r.by_status.entry(status).or_default() += 1;
        for (b, &le) in r.buckets.iter_mut().zip(&BUCKETS) {
            if s <= le {
                *b += 1;
            }
        }
        r.count += 1;
        r.sum += s;
    }

    /// The text format, with `articles` (the current state's size) as a gauge.
    pub fn render(&self, articles: usize) -> String {
        let mut out = String::new();
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP relink_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE relink_requests_total counter\n");
        for (route, r) in routes.iter() {
            for (status, n) in &r.by_status {
                let _ = writeln!(
                    out,
                    "relink_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP relink_request_seconds Time to answer a request, by route.\n");
        out.push_str("# TYPE relink_request_seconds histogram\n");
        for (route, r) in routes.iter() {
            for (n, le) in r.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "relink_request_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "relink_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                r.count
            );
            let _ = writeln!(
                out,
                "relink_request_seconds_sum{{route=\"{route}\"}} {}",
                r.sum
            );
            let _ = writeln!(
                out,
                "relink_request_seconds_count{{route=\"{route}\"}} {}",
                r.count
            );
        }
        for (name, help, v) in [
            (
                "relink_embeds_total",
                "Draft texts embedded.",
                self.embeds.get(),
            ),
            (
                "relink_embed_batches_total",
                "Model calls that embedded drafts (several drafts a call under load).",
                self.embed_batches.get(),
            ),
            (
                "relink_reloads_total",
                "New states of the corpus loaded (changes on disk, writes).",
                self.reloads.get(),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP relink_articles Articles in the corpus state answering now.\n# TYPE relink_articles gauge\nrelink_articles {articles}"
        );
        out
    }
}
