//! `GET /livez`, `GET /healthz`, `GET /metrics` (Prometheus text), and the middleware that
//! counts requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hdrhistogram::Histogram;
use huifu_engine::EngineStats;

use crate::error::ErrorBody;
use crate::AppState;

/// Upper bounds of the buckets of operations per `POST /v1/batch`.
const BATCH_BUCKETS: [u64; 8] = [1, 10, 50, 100, 250, 500, 750, 1_000];

pub struct Metrics {
    requests: [AtomicU64; 5],
    latency_us: Mutex<Histogram<u64>>,
    engine_us: Mutex<Histogram<u64>>,
    batch_operations: huifu_engine::Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds");
        Metrics {
            requests: Default::default(),
            latency_us: Mutex::new(h()),
            engine_us: Mutex::new(h()),
            batch_operations: huifu_engine::Histogram::new(&BATCH_BUCKETS),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000)
}

impl Metrics {
    /// Time from submitting to the engine to its durable answer.
    pub fn engine(&self, d: Duration) {
        self.engine_us.lock().expect("lock").record(micros(d)).ok();
    }

    /// Operations in one `POST /v1/batch` that was accepted for the engine.
    pub fn batch(&self, operations: usize) {
        self.batch_operations.record(u64::try_from(operations).unwrap_or(u64::MAX));
    }

    fn request(&self, status: u16, d: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
        self.latency_us.lock().expect("lock").record(micros(d)).ok();
    }

    fn render(&self, engine: &EngineStats) -> String {
        let mut out = String::new();
        out.push_str("# HELP huifu_http_requests_total HTTP requests by status class.\n");
        out.push_str("# TYPE huifu_http_requests_total counter\n");
        for (i, n) in self.requests.iter().enumerate() {
            out.push_str(&format!(
                "huifu_http_requests_total{{class=\"{}xx\"}} {}\n",
                i + 1,
                n.load(Ordering::Relaxed)
            ));
        }
        for (name, help, h) in [
            ("huifu_http_request_seconds", "HTTP request latency.", &self.latency_us),
            (
                "huifu_engine_commit_seconds",
                "Engine latency: submit to durable (journal fsynced) answer.",
                &self.engine_us,
            ),
        ] {
            let h = h.lock().expect("lock");
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} summary\n"));
            for q in [0.5, 0.9, 0.99, 0.999] {
                out.push_str(&format!(
                    "{name}{{quantile=\"{q}\"}} {}\n",
                    h.value_at_quantile(q) as f64 / 1e6
                ));
            }
            out.push_str(&format!("{name}_count {}\n", h.len()));
        }
        // Prometheus histograms: seconds from microseconds (divided, so that 50 µs reads
        // 0.00005), counts as they are.
        for (name, help, h, per_unit) in [
            (
                "huifu_journal_sync_seconds",
                "Journal write and fsync of each group commit.",
                &engine.sync_us,
                1e6,
            ),
            (
                "huifu_engine_group_commands",
                "Commands made durable by each group commit (one fsync).",
                &engine.group_commands,
                1.0,
            ),
            (
                "huifu_http_batch_operations",
                "Operations per POST /v1/batch.",
                &self.batch_operations,
                1.0,
            ),
        ] {
            histogram(&mut out, name, help, h, per_unit);
        }
        out
    }
}

/// Writes `h` as a Prometheus histogram named `name`, its values divided by `per_unit` (so
/// that microseconds read as seconds).
pub(crate) fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    h: &huifu_engine::Histogram,
    per_unit: f64,
) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
    let buckets = h.cumulative();
    for &(bound, count) in &buckets {
        let le = bound.map_or_else(|| "+Inf".to_owned(), |b| (b as f64 / per_unit).to_string());
        out.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {count}\n"));
    }
    out.push_str(&format!("{name}_sum {}\n", h.sum() as f64 / per_unit));
    out.push_str(&format!("{name}_count {}\n", buckets.last().map_or(0, |&(_, n)| n)));
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/livez", get(livez))
        .route("/healthz", get(healthz))
        .route("/metrics", get(render))
}

#[utoipa::path(
    get,
    path = "/livez",
    tag = "operations",
    summary = "Liveness: the process answers",
    responses((status = 200, body = String, content_type = "text/plain", description = "`ok`")),
)]
pub(crate) async fn livez() -> &'static str {
    "ok\n"
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Readiness: the engine takes requests",
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "`ok`: the engine's writer runs."),
        (status = 503, body = ErrorBody, description = "Not ready; the error says why. `insufficient_storage`: the disk is full, writes are refused and reads served until there is room again. `storage_failed`, `unavailable`: the engine's writer failed and the server exits soon after. `no_leader`: a cluster node whose cluster has no leader (an election is under way, or this node is cut off from a majority)."),
    ),
)]
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.health() {
        Ok(()) => "ok\n".into_response(),
        Err(mut error) => {
            // Not ready whatever the failure: a full disk is a 507 for a write, but for a
            // health check it is a server to take out of service.
            error.status = StatusCode::SERVICE_UNAVAILABLE;
            error.into_response()
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4", description = "Request counts by status, latency summaries, and histograms of the journal's write-and-fsync time, the commands per group commit and the operations per batch request, in the Prometheus text format.")),
)]
async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = match state.cluster() {
        Some(cluster) => {
            let mut out = state.metrics.render(cluster.node.engine_stats());
            crate::cluster::render_metrics(&cluster, &mut out);
            out
        }
        None => {
            let engine = state.single().map(|single| single.engine());
            state.metrics.render(engine.as_ref().map_or(&EngineStats::default(), |e| e.stats()))
        }
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    state.webhooks.render_metrics(&mut out);
    ([("content-type", "text/plain; version=0.0.4")], out)
}

pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // A body announced above the limit is refused before a byte of it is read.
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > crate::constants::BODY_BYTES_MAX) {
        let response = crate::error::ApiError::too_large().into_response();
        state.metrics.request(response.status().as_u16(), started.elapsed());
        return response;
    }
    // Every error of the API is JSON; the body limit and axum's other refusals are not.
    let response = crate::error::in_error_shape(next.run(request).await);
    state.metrics.request(response.status().as_u16(), started.elapsed());
    response
}
