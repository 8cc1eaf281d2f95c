//! The HTTP/JSON API of huifu (axum on tokio): payments for the platform's services and
//! merchants' back offices, the ledger for operators.
//!
//! Handlers are thin: parse, call the engine, render. Every write goes through the engine, so a
//! `2xx` reply means the operation is in the fsynced journal. Idempotency comes from the domain
//! itself: an `Idempotency-Key` becomes the key of an `Op::Keyed`, whose first outcome the
//! machine keeps (durably, with the journal), so a retry after a crash still gets the first
//! response, and the same key with another body gets 409.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = huifu_server::Config::new("./data", "127.0.0.1:7070".parse()?);
//! huifu_server::serve(config).await?;
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod cluster;
pub mod constants;
mod error;
mod events;
mod ledger;
mod metrics;
mod openapi;
mod recon;
mod replies;
#[cfg(test)]
mod router_tests;
mod webhooks;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use huifu_cluster::{ClusterConfig, ClusterError, Node, NodeOptions};
use huifu_engine::{Engine, EngineError, EngineOptions, Failure, FailureKind};
use huifu_payments::{Done, Op, Outcome, PaymentsMachine};

pub use auth::{KeyStore, Rate, Role};
pub use cluster::ClusterNode;
pub use error::ApiError;

use crate::constants::{
    BODY_BYTES_MAX, DISK_FREE_TO_RESUME_BYTES, FAILURE_POLL_MS, REOPEN_RETRY_MS, REOPEN_TRIES_MAX,
    REQUEST_TIMEOUT_MS,
};

/// Everything a handler needs, shared by all of them.
#[derive(Clone)]
pub struct AppState {
    backend: Backend,
    keys: Arc<KeyStore>,
    metrics: Arc<metrics::Metrics>,
    /// The event streams and their dispatcher.
    events: Arc<events::Hub>,
    /// The webhook deliverer.
    webhooks: Arc<webhooks::Deliverer>,
    limits: Limits,
}

/// The limits that protect the server, tunable per deployment (`huifu serve` flags); the
/// defaults are the constants of the same names in [`constants`], which say what each costs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests worked on at once; beyond it 503 `overloaded` (an event stream counts only
    /// until its response starts).
    pub requests_in_flight_max: usize,
    /// Time a client has to send a request's head once it began it; then the connection closes.
    pub header_read_timeout_ms: u64,
    /// Time a request has until its response starts (its body read, its handler run); then 408.
    pub body_read_timeout_ms: u64,
    /// Event streams one API key may hold open; beyond it 429 `too_many_streams`.
    pub events_per_key_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            requests_in_flight_max: constants::REQUESTS_IN_FLIGHT_MAX,
            header_read_timeout_ms: constants::HEADER_READ_TIMEOUT_MS,
            body_read_timeout_ms: constants::BODY_READ_TIMEOUT_MS,
            events_per_key_max: constants::EVENTS_STREAMS_PER_KEY_MAX,
        }
    }
}

/// Where operations go: the embedded engine, or a cluster node's replicated log.
#[derive(Clone)]
enum Backend {
    Single(Arc<Single>),
    Cluster(Arc<ClusterNode>),
}

/// The embedded engine of a server that runs alone.
struct Single {
    /// The engine serving now; replaced by a reopened one after a full disk stopped it.
    engine: RwLock<Arc<Engine<PaymentsMachine>>>,
    /// Set while the disk is full: every write is refused with it at once, reads are served.
    writes_refused: Mutex<Option<Arc<Failure>>>,
}

impl Single {
    /// The engine serving now.
    fn engine(&self) -> Arc<Engine<PaymentsMachine>> {
        self.engine.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, engine: Engine<PaymentsMachine>) {
        *self.engine.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(engine);
    }

    /// Why writes are refused, while the disk is full.
    fn writes_refused(&self) -> Option<Arc<Failure>> {
        self.writes_refused.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn refuse_writes(&self, why: Option<Arc<Failure>>) {
        *self.writes_refused.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}

impl AppState {
    pub fn new(engine: Arc<Engine<PaymentsMachine>>, keys: Arc<KeyStore>) -> AppState {
        let single = Single { engine: RwLock::new(engine), writes_refused: Mutex::new(None) };
        AppState::with(Backend::Single(Arc::new(single)), keys)
    }

    /// The state of a server that is one node of a cluster.
    pub fn for_node(node: ClusterNode, keys: Arc<KeyStore>) -> AppState {
        AppState::with(Backend::Cluster(Arc::new(node)), keys)
    }

    fn with(backend: Backend, keys: Arc<KeyStore>) -> AppState {
        AppState {
            backend,
            keys,
            metrics: Arc::new(metrics::Metrics::default()),
            events: Arc::new(events::Hub::default()),
            webhooks: Arc::new(webhooks::Deliverer::new(false)),
            limits: Limits::default(),
        }
    }

    /// The same state with webhooks allowed to loopback and private addresses (before `router`
    /// is built from it).
    pub fn with_webhooks_to_private(mut self, allow: bool) -> AppState {
        self.webhooks = Arc::new(webhooks::Deliverer::new(allow));
        self
    }

    /// Starts delivering webhooks (on a cluster node, only while it leads).
    pub fn start_webhooks(&self) {
        self.webhooks.start(self);
    }

    /// Whether this server delivers webhooks now: alone, always; on a cluster, the leader.
    fn delivers_webhooks(&self) -> bool {
        match &self.backend {
            Backend::Single(_) => true,
            Backend::Cluster(cluster) => cluster.node.is_leader(),
        }
    }

    /// The same state with other limits (before `router` is built from it).
    pub fn with_limits(mut self, limits: Limits) -> AppState {
        self.limits = limits;
        self
    }

    /// The embedded engine, on a server that runs alone.
    fn single(&self) -> Option<&Arc<Single>> {
        match &self.backend {
            Backend::Single(single) => Some(single),
            Backend::Cluster(_) => None,
        }
    }

    /// The cluster node this server is, if it is one.
    pub(crate) fn cluster(&self) -> Option<Arc<ClusterNode>> {
        match &self.backend {
            Backend::Cluster(cluster) => Some(cluster.clone()),
            Backend::Single(_) => None,
        }
    }

    /// Ready to serve, or why not (`/healthz`).
    fn health(&self) -> Result<(), ApiError> {
        match &self.backend {
            Backend::Cluster(cluster) => cluster::health(cluster),
            Backend::Single(single) => {
                let engine = single.engine();
                match single.writes_refused() {
                    Some(failure) => Err(ApiError::failed(&failure)),
                    None if !engine.is_stopped() => Ok(()),
                    None => Err(stopped(&engine)),
                }
            }
        }
    }

    /// Applies `op`; resolves once it is durable. Domain rejections become API errors. A full
    /// engine queue is refused at once (503 `engine_busy`): waiting for room would hold the
    /// runtime's thread, and with it every other connection.
    async fn execute(&self, op: Op) -> Result<Done, ApiError> {
        let single = match &self.backend {
            Backend::Single(single) => single,
            Backend::Cluster(cluster) => {
                let started = Instant::now();
                let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
                let result = tokio::time::timeout(timeout, cluster.node.execute(op)).await;
                self.metrics.engine(started.elapsed());
                let outcome = match result {
                    Err(_) => {
                        return Err(ApiError::unavailable("the cluster did not answer in time"))
                    }
                    Ok(outcome) => outcome.map_err(cluster::cluster_error)?,
                };
                return outcome.map_err(ApiError::from);
            }
        };
        if let Some(failure) = single.writes_refused() {
            return Err(ApiError::failed(&failure));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let engine = single.engine();
        engine.try_submit(op, move |r| {
            let _ = tx.send(r);
        });
        let outcome: Outcome = self.wait(&engine, rx).await?;
        outcome.map_err(ApiError::from)
    }

    /// Runs `f` on the machine, after every write before it is durable (refused at once when
    /// the queue is full, like `execute`). On a cluster node: on the leader once it confirmed
    /// it still leads, or on this node's own state for a follower read.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&PaymentsMachine) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        self.read_as(cluster::follower_read(), f).await
    }

    /// Runs `f` on this server's own state: the engine, or on a cluster node the state it has
    /// applied (no round trip to the leader). What the event dispatcher reads.
    async fn read_own<R: Send + 'static>(
        &self,
        f: impl FnOnce(&PaymentsMachine) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        self.read_as(true, f).await
    }

    /// `read`, as a follower read when `local` (for work that outlives the request's task,
    /// such as an event stream's later reads).
    async fn read_as<R: Send + 'static>(
        &self,
        local: bool,
        f: impl FnOnce(&PaymentsMachine) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let single = match &self.backend {
            Backend::Single(single) => single,
            Backend::Cluster(cluster) => {
                let read = if local {
                    cluster.node.read_local(f).await
                } else {
                    cluster.node.read(f).await
                };
                return read.map_err(cluster::cluster_error);
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let engine = single.engine();
        engine.try_submit_read(f, move |r| {
            let _ = tx.send(r);
        });
        self.wait(&engine, rx).await
    }

    /// The reply of a request sent to `engine` (the engine serving when it was sent: a failure
    /// is told by the engine that had it, not by one reopened since).
    async fn wait<T>(
        &self,
        engine: &Engine<PaymentsMachine>,
        rx: tokio::sync::oneshot::Receiver<Result<T, EngineError>>,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), rx).await;
        self.metrics.engine(started.elapsed());
        match result {
            Err(_) => Err(ApiError::unavailable("the engine did not answer in time")),
            Ok(Ok(Err(EngineError::Busy))) => Err(ApiError::busy()),
            Ok(Ok(Err(EngineError::Failed(failure)))) => Err(ApiError::failed(&failure)),
            // A reply dropped unsent: the writer stopped with the request in hand.
            Ok(Err(_)) | Ok(Ok(Err(EngineError::Stopped))) => Err(stopped(engine)),
            Ok(Ok(Err(error))) => {
                tracing::error!(%error, "engine error");
                Err(ApiError::unavailable("the engine is unavailable"))
            }
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }

    fn unexpected(&self, done: Done) -> ApiError {
        tracing::error!(?done, "unexpected outcome");
        ApiError::internal()
    }
}

/// What a request gets from an engine that stopped: why, when it stopped on a failure.
fn stopped(engine: &Engine<PaymentsMachine>) -> ApiError {
    match engine.failure() {
        Some(failure) => ApiError::failed(failure),
        None => ApiError::unavailable("the engine has stopped"),
    }
}

/// The whole API as a router over `state`; tests can drive it directly.
///
/// Every error it answers is an [`ApiError`] in JSON: an unknown route (404), a method a route
/// does not take (405, with `Allow`), a body that is not JSON (415), and whatever axum answers
/// by itself (`error::in_error_shape`, in `metrics::track`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ledger::routes())
        .merge(api::parties::routes())
        .merge(api::topups_withdrawals::routes())
        .merge(api::payments::routes())
        .merge(api::refunds::routes())
        .merge(api::campaigns::routes())
        .merge(api::settlement::routes())
        .merge(api::balances::routes())
        .merge(api::batch::routes())
        .merge(api::api_keys::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(cluster::routes())
        // Every body of the routes above is JSON. Reconciliation takes a statement file too,
        // and sets its own (below).
        .route_layer(axum::middleware::from_fn(wire::json_bodies))
        .merge(recon::routes())
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), cluster::route))
        .layer(protect(&state.limits))
        // The node's own operations endpoints (`/livez`, `/healthz`, `/metrics`,
        // `/openapi.json`) are outside the limits: an overloaded server still tells its
        // load balancer and its monitoring so.
        .merge(metrics::routes())
        .merge(openapi::routes())
        // Outside `cluster::route`: a follower read authenticates on the node it reaches.
        .layer(axum::middleware::from_fn(auth::client_address))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

/// The limits on every request, forwarded ones included: at most `requests_in_flight_max`
/// worked on at once, one semaphore for the whole router (each route gets a clone of the layer,
/// and a global limit shares its permits), the next refused at once (load shedding) with 503
/// `overloaded`; and a request whose response has not started after `body_read_timeout_ms` (a
/// body sent slowly) gets 408 and gives back its permit. A permit is held until the response's
/// head is ready, so an event stream holds one only while it is set up.
fn protect<S>(
    limits: &Limits,
) -> impl tower::Layer<
    S,
    Service = impl tower::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future = impl Send + 'static,
    > + Clone
                  + Send
                  + Sync
                  + 'static,
> + Clone
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(refused))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limits.requests_in_flight_max))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(limits.body_read_timeout_ms),
        ))
}

/// What a request refused by `protect`'s load shedding gets.
async fn refused(error: tower::BoxError) -> ApiError {
    if !error.is::<tower::load_shed::error::Overloaded>() {
        tracing::error!(%error, "a request failed in the server's limits");
        return ApiError::internal();
    }
    ApiError {
        code: "overloaded",
        retry_after: Some(constants::OVERLOADED_RETRY_AFTER_SECONDS),
        ..ApiError::unavailable("the server has too many requests in flight; retry later")
    }
}

/// How to run the server.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// An admin key to register (from `--admin-key-file` or `HUIFU_ADMIN_KEY`).
    pub admin_key: Option<String>,
    pub fsync: bool,
    /// Bound on the ledger transfers kept in memory (the rest in the history store).
    pub memory_transfers_max: Option<usize>,
    /// Run as this node of this cluster (else alone, on the embedded engine).
    pub cluster: Option<ClusterMember>,
    /// The rate limit of every API key given none of its own, instead of its role's default
    /// (`--key-rate-per-second`).
    pub key_rate: Option<Rate>,
    pub limits: Limits,
    /// Let webhook endpoints be on loopback and private networks (`--webhooks-allow-private`).
    pub webhooks_allow_private: bool,
}

/// Which node of which cluster a server is.
#[derive(Clone, Debug)]
pub struct ClusterMember {
    pub config: ClusterConfig,
    pub node: u64,
    /// A new node joining a running cluster: it waits to be added (`POST /v1/cluster/nodes`)
    /// instead of making the cluster of its file.
    pub join: bool,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Config {
        Config {
            data_dir: data_dir.into(),
            listen,
            admin_key: None,
            fsync: true,
            memory_transfers_max: None,
            cluster: None,
            key_rate: None,
            limits: Limits::default(),
            webhooks_allow_private: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Cluster(ClusterError),
    /// The I/O error is part of the message, not a separate cause, so it is printed once.
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
}

/// Runs the server until SIGTERM or Ctrl-C, then drains in-flight requests and stops the
/// engine (which finishes and fsyncs everything queued).
///
/// If the engine's writer stops because the disk is full, the server stays up: writes are
/// refused (507 `insufficient_storage`), `/healthz` says not ready, and reads are served by the
/// engine reopened from what is durable (the stopped one may hold effects that never were).
/// Once the data folder's file system has [`DISK_FREE_TO_RESUME_BYTES`] free again, writes
/// resume. Any other failure (a disk error, a panic) stops the server and is the error: a
/// server that cannot trust its storage should be restarted, not left answering 503s.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let io = |what: String| move |cause| ServeError::Io { what, cause };
    // Durably: the folder's own entry is fsynced in its parent.
    huifu_journal::Storage::create_dir_all(&huifu_journal::FileStorage, &config.data_dir)
        .map_err(io(format!("cannot create {}", config.data_dir.display())))?;
    let mut keys = KeyStore::open(&config.data_dir).map_err(io("cannot read api_keys".into()))?;
    keys.set_rate_default(config.key_rate);
    let keys = Arc::new(keys);
    if let Some(key) = &config.admin_key {
        keys.add(key, Role::Admin).map_err(io("cannot store the admin key".into()))?;
    } else if config.cluster.is_some() {
        // A key made here would work on this node alone.
        return Err(ServeError::Io {
            what: "a cluster node needs an admin key".into(),
            cause: std::io::Error::other(
                "give every node the same --admin-key-file (or HUIFU_ADMIN_KEY)",
            ),
        });
    } else if keys.is_empty() {
        let key = keys.create(Role::Admin).map_err(io("cannot store the admin key".into()))?;
        println!("admin API key (shown once, stored hashed): {key}");
    }
    let (state, mut supervisor) = match &config.cluster {
        None => {
            let mut options = EngineOptions::new(&config.data_dir);
            options.fsync = config.fsync;
            options.memory_max = config.memory_transfers_max;
            let (engine, recovery) = Engine::<PaymentsMachine>::open(options.clone())?;
            tracing::info!(?recovery, "engine recovered");
            let state = AppState::new(Arc::new(engine), keys)
                .with_limits(config.limits)
                .with_webhooks_to_private(config.webhooks_allow_private);
            let single = state.single().expect("a server alone").clone();
            let data_dir = config.data_dir.clone();
            let supervisor = tokio::spawn(supervise(
                single,
                move || Engine::open(options.clone()).map(|(engine, _)| engine),
                move || huifu_engine::free_bytes(&data_dir),
            ));
            (state, supervisor)
        }
        Some(member) => {
            let accept = keys.clone();
            let options = NodeOptions {
                fsync: config.fsync,
                on_key: Some(Arc::new(move |grant| accept.accept(grant.hash, &grant.record))),
                join: member.join,
            };
            let node = Node::start(&config.data_dir, &member.config, member.node, options)
                .await
                .map_err(ServeError::Cluster)?;
            let state = AppState::for_node(ClusterNode::new(node), keys)
                .with_limits(config.limits)
                .with_webhooks_to_private(config.webhooks_allow_private);
            let cluster = state.cluster().expect("a cluster node");
            (state, tokio::spawn(supervise_node(cluster)))
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(io(format!("cannot listen on {}", config.listen)))?;
    let local = listener.local_addr().map_err(io("no local address".into()))?;
    println!("huifu listening on http://{local}");
    state.start_webhooks();
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel();
    let events = state.events.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown_signal() => {},
            fatal = &mut supervisor => {
                tracing::error!("the engine stopped on a failure: the server stops");
                let _ = fatal_tx.send(fatal);
                events.close().await;
                return;
            },
        }
        supervisor.abort();
        let _ = supervisor.await;
        // Event streams never end by themselves: a graceful shutdown would wait for them.
        events.close().await;
    };
    serve_http(listener, router(state.clone()), &config.limits, stop).await;
    if let Ok(fatal) = fatal_rx.await {
        return Err(match fatal {
            Ok(error) => error.into(),
            Err(panic) => ServeError::Io {
                what: "the engine's supervisor failed".into(),
                cause: std::io::Error::other(panic.to_string()),
            },
        });
    }
    state.webhooks.close(&state).await;
    if let Some(cluster) = state.cluster() {
        cluster.node.shutdown().await;
    }
    // Every handler is done; the last handle stops the writer after the queue drains.
    drop(state);
    Ok(())
}

/// Serves HTTP/1.1 connections on `listener` until `stop` resolves, then lets each connection
/// finish the request it is on (at most `SHUTDOWN_DRAIN_MS`). Connections are hyper's own, not
/// `axum::serve`'s, for the header read timeout: a client that sends its request's head slowly
/// is cut off after `header_read_timeout_ms`. Each request carries its connection's address
/// (`ConnectInfo`), for the limit on failed authentications.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &Limits,
    stop: impl std::future::Future<Output = ()>,
) {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: they come back as connections end.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(address));
                request
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(app);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    let drain = Duration::from_millis(constants::SHUTDOWN_DRAIN_MS);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the drain time are closed");
    }
}

/// How long `serve_http` waits after a failed accept before it accepts again.
const ACCEPT_RETRY_MS: u64 = 100;

/// Watches a cluster node's engine: one that failed cannot apply what the cluster commits, so
/// the server stops and the node is to be restarted (it then catches up from the others).
async fn supervise_node(cluster: Arc<ClusterNode>) -> EngineError {
    let mut poll = tokio::time::interval(Duration::from_millis(FAILURE_POLL_MS));
    loop {
        poll.tick().await;
        if let Some(failure) = cluster.node.failure() {
            return EngineError::Failed(Arc::new(failure.clone()));
        }
    }
}

/// Watches the engine until it fails in a way the server cannot serve through, and returns
/// that failure. A full disk is served through: writes are refused, the engine is reopened
/// from what is durable (`reopen`), and writes resume once `free_bytes` says there is room.
async fn supervise(
    state: Arc<Single>,
    reopen: impl Fn() -> Result<Engine<PaymentsMachine>, EngineError> + Send + Sync + 'static,
    free_bytes: impl Fn() -> std::io::Result<u64>,
) -> EngineError {
    let reopen = Arc::new(reopen);
    let mut poll = tokio::time::interval(Duration::from_millis(FAILURE_POLL_MS));
    let mut reopen_failures = 0;
    loop {
        poll.tick().await;
        let engine = state.engine();
        if let Some(failure) = engine.failure() {
            let failure = Arc::new(failure.clone());
            if failure.kind != FailureKind::StorageFull {
                return EngineError::Failed(failure);
            }
            if state.writes_refused().is_none() {
                tracing::warn!(
                    %failure,
                    "writes are refused and reads served from what is durable until {} MiB are free",
                    DISK_FREE_TO_RESUME_BYTES >> 20
                );
            }
            state.refuse_writes(Some(failure));
            drop(engine);
            // The stopped writer lets go of the folder when its thread ends: soon, not at once.
            let reopen = reopen.clone();
            match tokio::task::spawn_blocking(move || reopen()).await {
                Ok(Ok(engine)) => {
                    state.replace(engine);
                    reopen_failures = 0;
                    tracing::info!("engine reopened from what is durable; serving reads");
                }
                Ok(Err(error)) => {
                    reopen_failures += 1;
                    if reopen_failures >= REOPEN_TRIES_MAX && !huifu_engine::is_storage_full(&error)
                    {
                        return error;
                    }
                    tracing::warn!(%error, "cannot reopen the engine yet");
                    tokio::time::sleep(Duration::from_millis(REOPEN_RETRY_MS)).await;
                }
                Err(panic) => {
                    return EngineError::Io {
                        what: "reopening the engine panicked",
                        path: PathBuf::new(),
                        cause: std::io::Error::other(panic.to_string()),
                    }
                }
            }
        } else if state.writes_refused().is_some() {
            match free_bytes() {
                Ok(free) if free >= DISK_FREE_TO_RESUME_BYTES => {
                    state.refuse_writes(None);
                    tracing::info!(free_mib = free >> 20, "there is room again: writes resume");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot tell the free space"),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining requests");
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use axum::response::IntoResponse;
    use serde_json::Value;

    use super::*;

    async fn body(error: ApiError) -> (u16, Option<String>, Value) {
        let response = error.into_response();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, retry, serde_json::from_slice(&bytes).unwrap())
    }

    /// On a runtime of one thread, as `serve` runs by default on two cores: a write or a read
    /// that waited for room in a full queue would hold the only thread (and this test).
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_is_refused_at_once_with_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::<PaymentsMachine>::open(EngineOptions::new(dir.path())).unwrap();
        let engine = Arc::new(engine);
        let state = AppState::new(engine.clone(), Arc::new(KeyStore::open(dir.path()).unwrap()));
        // A read that holds the writer, then reads until the queue refuses one.
        let (release, held) = mpsc::channel::<()>();
        let (started, writer_held) = mpsc::channel();
        engine.submit_read(
            move |_| {
                started.send(()).unwrap();
                held.recv().unwrap();
            },
            |_| {},
        );
        writer_held.recv().unwrap();
        let mut queued = Vec::new();
        loop {
            let (tx, mut rx) = tokio::sync::oneshot::channel();
            engine.try_submit_read(|_| (), move |r| drop(tx.send(r)));
            match rx.try_recv() {
                Ok(r) => break assert!(matches!(r, Err(EngineError::Busy))),
                Err(_) => queued.push(rx),
            }
        }

        let started = Instant::now();
        let write = state.execute(Op::CreateUser { id: 1, currency: 156 }).await.unwrap_err();
        let read = state.read(|_| ()).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        for error in [write, read] {
            let (status, retry, v) = body(error).await;
            assert_eq!((status, retry.as_deref()), (503, Some("1")));
            assert_eq!(v["error"]["code"], "engine_busy");
            assert_eq!(v["error"]["type"], "api_error");
        }

        // Once the writer goes on, the queue drains and the same write goes through.
        release.send(()).unwrap();
        for rx in queued {
            assert!(rx.await.unwrap().is_ok());
        }
        assert!(state.execute(Op::CreateUser { id: 1, currency: 156 }).await.is_ok());
        assert!(engine.failure().is_none());
    }

    /// A real journal failure: the folder is gone when the next segment is made.
    #[tokio::test]
    async fn a_writer_that_failed_is_not_ready_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = EngineOptions::new(dir.path());
        options.segment_size_max = 64 << 10;
        let (engine, _) = Engine::<PaymentsMachine>::open(options).unwrap();
        let state = AppState::new(Arc::new(engine), Arc::new(KeyStore::open(dir.path()).unwrap()));
        let ready = metrics::healthz(axum::extract::State(state.clone())).await;
        assert_eq!(ready.status(), 200);

        std::fs::remove_dir_all(dir.path().join("journal")).unwrap();
        let mut id = 0;
        let error = loop {
            assert!(id < 1_000_000, "no write failed");
            let accounts = (0..500)
                .map(|_| {
                    id += 1;
                    huifu_ledger::Account { id, ledger: 1, code: 1, ..Default::default() }
                })
                .collect();
            if let Err(error) = state.execute(Op::LedgerAccounts(accounts)).await {
                break error;
            }
        };
        let (status, _, v) = body(error).await;
        assert_eq!((status, v["error"]["code"].as_str()), (503, Some("storage_failed")), "{v}");

        let response = metrics::healthz(axum::extract::State(state.clone())).await;
        assert_eq!(response.status(), 503);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["code"], "storage_failed");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("journal") && !message.contains('/'), "{message}");
        assert_eq!(metrics::livez().await, "ok\n");
        // What `serve` waits on before it stops the server: not a full disk, so no reopen.
        let never_reopened = || -> Result<Engine<PaymentsMachine>, EngineError> {
            panic!("a failed disk is not reopened")
        };
        let fatal = supervise(state.single().unwrap().clone(), never_reopened, || Ok(u64::MAX));
        let fatal = tokio::time::timeout(Duration::from_secs(5), fatal).await.unwrap();
        assert!(matches!(fatal, EngineError::Failed(f) if f.kind == FailureKind::Storage));
    }

    /// The disk fills up under a running server: writes get 507 at once, reads are served from
    /// what is durable, `/healthz` says not ready, and writes resume once there is room.
    #[tokio::test]
    async fn a_full_disk_refuses_writes_serves_reads_and_resumes_when_there_is_room() {
        use huifu_journal::faulty::FaultyStorage;
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new(7);
        let options = EngineOptions::new(dir.path());
        let open = {
            let (options, storage) = (options.clone(), storage.clone());
            move || {
                Engine::<PaymentsMachine>::open_with(
                    options.clone(),
                    huifu_engine::SystemClock,
                    storage.clone(),
                )
                .map(|(engine, _)| engine)
            }
        };
        let state =
            AppState::new(Arc::new(open().unwrap()), Arc::new(KeyStore::open(dir.path()).unwrap()));
        let free = Arc::new(AtomicU64::new(0));
        let single = state.single().unwrap().clone();
        let supervisor = tokio::spawn(supervise(single.clone(), open, {
            let free = free.clone();
            move || Ok(free.load(Ordering::Relaxed))
        }));
        let acked = state.execute(Op::CreateUser { id: 1, currency: 156 }).await.unwrap();

        storage.set_full(true);
        let error = state.execute(Op::CreateUser { id: 2, currency: 156 }).await.unwrap_err();
        let (status, _, v) = body(error).await;
        assert_eq!((status, v["error"]["code"].as_str()), (507, Some("insufficient_storage")));
        // The supervisor reopens the engine: reads come back, writes stay refused.
        let started = Instant::now();
        while single.engine().is_stopped() {
            assert!(started.elapsed() < Duration::from_secs(10), "the engine was not reopened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let acked_user = state.read(|m| m.user_currency(1)).await.unwrap();
        assert_eq!(acked_user, Some(156), "{acked:?}");
        let error = state.execute(Op::CreateUser { id: 3, currency: 156 }).await.unwrap_err();
        assert_eq!(body(error).await.0, 507);
        let response = metrics::healthz(axum::extract::State(state.clone())).await;
        assert_eq!(response.status(), 503);

        // Room again, as the free-space probe sees it: writes resume on the same server.
        storage.set_full(false);
        free.store(DISK_FREE_TO_RESUME_BYTES, Ordering::Relaxed);
        let started = Instant::now();
        while single.writes_refused().is_some() {
            assert!(started.elapsed() < Duration::from_secs(10), "writes did not resume");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(state.execute(Op::CreateUser { id: 3, currency: 156 }).await.is_ok());
        assert_eq!(metrics::healthz(axum::extract::State(state.clone())).await.status(), 200);
        assert!(!supervisor.is_finished());
        supervisor.abort();
    }

    #[tokio::test]
    async fn a_failure_answers_by_its_kind_and_names_only_the_folder() {
        use huifu_engine::{Failure, FailureKind};
        let failure = |kind, folder: Option<&str>| Failure {
            kind,
            folder: folder.map(PathBuf::from),
            detail: "I/O error while trying to write /srv/secret/journal/journal-1.log".into(),
        };
        for (failure, status, code, says) in [
            (
                failure(FailureKind::StorageFull, Some("/srv/secret/journal")),
                507,
                "insufficient_storage",
                "the journal folder is full",
            ),
            (
                failure(FailureKind::StorageFull, Some("/srv/secret/history")),
                507,
                "insufficient_storage",
                "the history folder is full",
            ),
            (
                failure(FailureKind::Storage, Some("/srv/secret/journal")),
                503,
                "storage_failed",
                "the journal folder could not be written",
            ),
            (failure(FailureKind::Panic, None), 503, "unavailable", "internal error"),
        ] {
            let (s, retry, v) = body(ApiError::failed(&failure)).await;
            assert_eq!((s, retry, v["error"]["code"].as_str()), (status, None, Some(code)));
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }
}
