//! The server as one node of a cluster: every node takes every call. A node that does not lead
//! forwards each request to the leader's HTTP address and returns its answer unchanged, so
//! every endpoint keeps its contract on every node; the leader applies writes through the
//! replicated log and serves reads linearizably (it confirms it still leads first).
//!
//! A `GET` with `Huifu-Read-Consistency: follower` is served from the node's own state instead,
//! however far behind the leader it is; its answer says how far with `Huifu-Applied-Index` and
//! `Huifu-Entries-Behind` (committed entries the node knows of and has not applied yet).
//!
//! `/healthz`, `/livez`, `/metrics`, `/openapi.json` and `GET /v1/cluster` are always this
//! node's own.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use huifu_cluster::{ClusterError, Node};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::auth::Role;
use crate::constants::{NO_LEADER_RETRY_AFTER_SECONDS, REQUEST_TIMEOUT_MS};
use crate::error::ApiError;
use crate::AppState;

/// Set by a node on a request it forwards to the leader; a node that gets such a request and
/// does not lead (leadership moved meanwhile) answers 503 rather than forward it again.
pub const FORWARDED_BY: &str = "huifu-forwarded-by";
/// A request header: `follower` asks for a read served from the node's own state.
pub const READ_CONSISTENCY: &str = "huifu-read-consistency";
/// Reply headers of a follower read.
pub const APPLIED_INDEX: &str = "huifu-applied-index";
pub const ENTRIES_BEHIND: &str = "huifu-entries-behind";

tokio::task_local! {
    /// Whether the request being served asked for a follower read.
    static FOLLOWER_READ: bool;
}

/// Whether the request being served on this task asked for a follower read.
pub(crate) fn follower_read() -> bool {
    FOLLOWER_READ.try_with(|read| *read).unwrap_or(false)
}

/// A cluster node as the server runs it: the node and the client it forwards requests with.
pub struct ClusterNode {
    pub node: Node,
    client: Client<HttpConnector, Body>,
}

impl ClusterNode {
    pub fn new(node: Node) -> ClusterNode {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        ClusterNode { node, client }
    }
}

/// How long a node tries to connect to the leader's HTTP address before it answers 503.
const CONNECT_TIMEOUT_MS: u64 = 1_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/cluster", get(cluster))
}

/// What a cluster failure answers: all are worth a retry (with the same idempotency key: an
/// operation proposed by a leader that lost its office may still be applied, once).
pub(crate) fn cluster_error(error: ClusterError) -> ApiError {
    match error {
        ClusterError::NotLeader { .. } => no_leader("this node lost the leadership; try again"),
        ClusterError::Replication(detail) => {
            // Expected while a leader is being replaced (at debug: a failover floods the log).
            tracing::debug!(%detail, "replication failed");
            no_leader("the operation could not be replicated; try again")
        }
        ClusterError::Engine(detail) => {
            tracing::error!(%detail, "the engine failed");
            ApiError::unavailable("the engine is unavailable")
        }
    }
}

fn no_leader(message: &str) -> ApiError {
    let mut error = ApiError::unavailable(message);
    error.code = "no_leader";
    error.retry_after = Some(NO_LEADER_RETRY_AFTER_SECONDS);
    error
}

/// Paths every node answers itself.
fn is_local(method: &Method, path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/metrics" | "/openapi.json")
        || (method == Method::GET && path == "/v1/cluster")
}

/// The middleware that sends each request where it is served: here when this node leads (or
/// for a follower read, or a node-local path), else to the leader.
pub async fn route(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cluster) = state.cluster() else { return next.run(request).await };
    if is_local(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let wants_follower_read = request.method() == Method::GET
        && request.headers().get(READ_CONSISTENCY).is_some_and(|v| v == "follower");
    if wants_follower_read {
        let (applied, commit) = cluster.node.positions();
        let mut response = FOLLOWER_READ.scope(true, next.run(request)).await;
        let behind = commit.map_or(0, |c| c + 1).saturating_sub(applied.map_or(0, |a| a + 1));
        let headers = response.headers_mut();
        if let Some(applied) = applied {
            headers.insert(APPLIED_INDEX, HeaderValue::from(applied));
        }
        headers.insert(ENTRIES_BEHIND, HeaderValue::from(behind));
        return response;
    }
    match cluster.node.leader() {
        Some(leader) if leader == cluster.node.id => next.run(request).await,
        Some(_) if request.headers().contains_key(FORWARDED_BY) => {
            no_leader("the leader changed while the request was forwarded; try again")
                .into_response()
        }
        Some(leader) => match cluster.node.http_of(leader) {
            Some(addr) => forward(&cluster, addr, request).await,
            None => no_leader("the leader is not in this node's cluster file").into_response(),
        },
        None => no_leader("the cluster has no leader at the moment; try again").into_response(),
    }
}

/// Sends `request` to the leader at `addr` and returns its answer as it is.
async fn forward(cluster: &ClusterNode, addr: std::net::SocketAddr, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{addr}{path}").parse::<Uri>() else {
        return ApiError::internal().into_response();
    };
    parts.uri = uri;
    parts.headers.insert(FORWARDED_BY, HeaderValue::from(cluster.node.id));
    if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
        parts.headers.insert(header::HOST, host);
    }
    let sent = cluster.client.request(Request::from_parts(parts, body));
    match tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), sent).await {
        Ok(Ok(response)) => response.map(Body::new),
        Ok(Err(error)) => {
            // Expected while a leader is being replaced; at debug, or a failover floods the log.
            tracing::debug!(%error, %addr, "cannot forward a request to the leader");
            no_leader("the leader could not be reached; try again").into_response()
        }
        Err(_) => no_leader("the leader did not answer in time").into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "operations",
    summary = "The cluster as this node sees it (admin)",
    description = "`{leader, term, nodes: [{id, role, leader, term, commit, applied, digest}]}`: \
        each member's role (`leader`, `follower`, `candidate`, `learner`, or `unreachable` when \
        it did not answer), the last entry it knows committed and the last it applied, and the \
        digest of its state at `applied` (two nodes at the same `applied` must show the same \
        digest). 404 on a server that is not a cluster node.",
    responses((status = 200, body = Object), ApiError),
    security(("bearer" = [])),
)]
pub(crate) async fn cluster(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden());
    }
    let Some(cluster) = state.cluster() else {
        return Err(ApiError::not_found("cluster: this server runs alone"));
    };
    let view = cluster.node.cluster().await.map_err(cluster_error)?;
    Ok(Json(view).into_response())
}

/// `/healthz` of a cluster node: ready when its engine runs and the cluster has a leader.
pub(crate) fn health(cluster: &ClusterNode) -> Result<(), ApiError> {
    if let Some(failure) = cluster.node.failure() {
        return Err(ApiError::failed(failure));
    }
    match cluster.node.leader() {
        Some(_) => Ok(()),
        None => Err(no_leader("the cluster has no leader")),
    }
}

/// The replication section of `/metrics`.
pub(crate) fn render_metrics(cluster: &ClusterNode, out: &mut String) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    let node = &cluster.node;
    let stats = node.stats();
    let (applied, commit) = node.positions();
    let gauges = [
        ("huifu_raft_is_leader", "1 on the leader, else 0.", u64::from(node.is_leader())),
        ("huifu_raft_applied_index", "Last log entry applied here.", applied.unwrap_or(0)),
        ("huifu_raft_commit_index", "Last log entry known committed.", commit.unwrap_or(0)),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    for (name, help, value) in [
        (
            "huifu_raft_elections_total",
            "Terms this node saw begin (each is an election).",
            stats.elections.load(Ordering::Relaxed),
        ),
        (
            "huifu_raft_leader_changes_total",
            "Times the leader this node knows of changed.",
            stats.leader_changes.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    let name = "huifu_replication_lag_entries";
    let _ = writeln!(
        out,
        "# HELP {name} On the leader: log entries each follower does not have yet.\n# TYPE {name} gauge"
    );
    for (id, lag) in node.replication_lag() {
        let _ = writeln!(out, "{name}{{node=\"{id}\"}} {lag}");
    }
    crate::metrics::histogram(
        out,
        "huifu_raft_proposal_seconds",
        "A group's proposal to its outcome: durable on a majority and applied.",
        &stats.proposal_us,
        1e6,
    );
}
