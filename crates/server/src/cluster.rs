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

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use huifu_cluster::{ClusterError, Node};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Role;
use crate::constants::{NO_LEADER_RETRY_AFTER_SECONDS, REQUEST_TIMEOUT_MS};
use crate::error::ApiError;
use crate::wire::{parse_body, Path};
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
    Router::new()
        .route("/v1/cluster", get(cluster))
        .route("/v1/cluster/nodes", post(add_node))
        .route("/v1/cluster/nodes/{id}", delete(remove_node))
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
        ClusterError::Membership(detail) => ApiError {
            status: StatusCode::CONFLICT,
            kind: "invalid_request_error",
            code: "membership_conflict",
            message: detail,
            param: None,
            retry_after: None,
        },
        error @ ClusterError::CatchingUp { .. } => {
            let mut answer = ApiError::unavailable(format!("{error}; ask again to go on"));
            answer.code = "catching_up";
            answer.retry_after = Some(NO_LEADER_RETRY_AFTER_SECONDS);
            answer
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
        Some(leader) => match cluster.node.http_of(leader).await {
            Some(addr) => forward(&cluster, addr, request).await,
            None => no_leader("the leader's HTTP address is not known here").into_response(),
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

/// The caller's cluster node, for an admin.
fn admin_node(state: &AppState, headers: &HeaderMap) -> Result<Arc<ClusterNode>, ApiError> {
    let caller = state.keys.authenticate(headers)?;
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden());
    }
    state.cluster().ok_or_else(|| ApiError::not_found("cluster: this server runs alone"))
}

/// A node to add to the cluster.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewNode {
    /// The new node's id, unused in the cluster so far.
    id: u64,
    /// Its replication address (`host:port`), where the others reach it.
    peer: String,
    /// Its HTTP address (`host:port`), where the others forward requests when it leads.
    http: String,
}

fn socket_addr(text: &str, param: &str) -> Result<std::net::SocketAddr, ApiError> {
    text.parse().map_err(|_| {
        ApiError::invalid(
            "invalid_address",
            format!("{param} is an IP address and port"),
            Some(param),
        )
    })
}

#[utoipa::path(
    post,
    path = "/v1/cluster/nodes",
    tag = "operations",
    summary = "Add a node to the cluster (admin)",
    description = "Adds a node started with `huifu serve ... --join`: it catches up with the log \
        as a learner, then becomes a voter, and the cluster is returned as `GET /v1/cluster` \
        shows it. A node that has not caught up within 8 s is left catching up and the answer \
        is 503 `catching_up`: ask again to go on. Adding a voter again changes nothing; an id \
        that is a member at another address is 409 `membership_conflict`. Replace a dead node \
        by adding the new one, then removing the dead one.",
    request_body = NewNode,
    responses((status = 200, body = Object), ApiError),
    security(("bearer" = [])),
)]
pub(crate) async fn add_node(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cluster = admin_node(&state, &headers)?;
    let b: NewNode = parse_body(&body)?;
    if b.id == 0 {
        return Err(ApiError::invalid("invalid_id", "a node id is 1 or more", Some("id")));
    }
    let peer = socket_addr(&b.peer, "peer")?;
    let http = socket_addr(&b.http, "http")?;
    cluster.node.add_node(b.id, peer, http).await.map_err(cluster_error)?;
    tracing::info!(node = b.id, %peer, %http, "node added to the cluster");
    let view = cluster.node.cluster().await.map_err(cluster_error)?;
    Ok(Json(view).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/cluster/nodes/{id}",
    tag = "operations",
    summary = "Remove a node from the cluster (admin)",
    description = "Removes node `id` from the membership (a dead node, or one being retired) \
        and returns the cluster as `GET /v1/cluster` shows it. Removing a node that is not a \
        member changes nothing; removing the last voter is 409 `membership_conflict`.",
    params(("id" = u64, Path, description = "The node's id")),
    responses((status = 200, body = Object), ApiError),
    security(("bearer" = [])),
)]
pub(crate) async fn remove_node(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let cluster = admin_node(&state, &headers)?;
    let id: u64 = crate::wire::parse_decimal(&id).filter(|id| *id > 0).ok_or_else(|| {
        ApiError::invalid("invalid_id", "a node id is a number from 1, in decimal", Some("id"))
    })?;
    cluster.node.remove_node(id).await.map_err(cluster_error)?;
    tracing::info!(node = id, "node removed from the cluster");
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
