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
pub mod constants;
mod error;
mod events;
mod ledger;
mod metrics;
mod openapi;
mod recon;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use huifu_engine::{Engine, EngineError, EngineOptions};
use huifu_payments::{Done, Op, Outcome, PaymentsMachine};

pub use auth::{KeyStore, Role};
pub use error::ApiError;

use crate::constants::{BODY_BYTES_MAX, REQUEST_TIMEOUT_MS};

/// Everything a handler needs, shared by all of them.
#[derive(Clone)]
pub struct AppState {
    engine: Arc<Engine<PaymentsMachine>>,
    keys: Arc<KeyStore>,
    metrics: Arc<metrics::Metrics>,
}

impl AppState {
    pub fn new(engine: Arc<Engine<PaymentsMachine>>, keys: Arc<KeyStore>) -> AppState {
        AppState { engine, keys, metrics: Arc::new(metrics::Metrics::default()) }
    }

    /// Applies `op`; resolves once it is durable. Domain rejections become API errors.
    async fn execute(&self, op: Op) -> Result<Done, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.engine.submit(op, move |r| {
            let _ = tx.send(r);
        });
        let outcome: Outcome = self.wait(rx).await?;
        outcome.map_err(ApiError::from)
    }

    /// Runs `f` on the machine, after every write before it is durable.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&PaymentsMachine) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.engine.submit_read(f, move |r| {
            let _ = tx.send(r);
        });
        self.wait(rx).await
    }

    async fn wait<T>(
        &self,
        rx: tokio::sync::oneshot::Receiver<Result<T, EngineError>>,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), rx).await;
        self.metrics.engine(started.elapsed());
        match result {
            Err(_) => Err(ApiError::unavailable("the engine did not answer in time")),
            Ok(Err(_)) | Ok(Ok(Err(EngineError::Stopped))) => {
                Err(ApiError::unavailable("the engine has stopped"))
            }
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

/// The whole API as a router over `state`; tests can drive it directly.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ledger::routes())
        .merge(api::routes())
        .merge(recon::routes())
        .merge(events::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
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
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Config {
        Config {
            data_dir: data_dir.into(),
            listen,
            admin_key: None,
            fsync: true,
            memory_transfers_max: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The I/O error is part of the message, not a separate cause, so it is printed once.
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
}

/// Runs the server until SIGTERM or Ctrl-C, then drains in-flight requests and stops the
/// engine (which finishes and fsyncs everything queued).
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let io = |what: String| move |cause| ServeError::Io { what, cause };
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io(format!("cannot create {}", config.data_dir.display())))?;
    let keys =
        Arc::new(KeyStore::open(&config.data_dir).map_err(io("cannot read api_keys".into()))?);
    if let Some(key) = &config.admin_key {
        keys.add(key, Role::Admin).map_err(io("cannot store the admin key".into()))?;
    } else if keys.is_empty() {
        let key = keys.create(Role::Admin).map_err(io("cannot store the admin key".into()))?;
        println!("admin API key (shown once, stored hashed): {key}");
    }
    let mut options = EngineOptions::new(&config.data_dir);
    options.fsync = config.fsync;
    options.memory_max = config.memory_transfers_max;
    let (engine, recovery) = Engine::<PaymentsMachine>::open(options)?;
    tracing::info!(?recovery, "engine recovered");
    let engine = Arc::new(engine);
    let state = AppState::new(engine.clone(), keys);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(io(format!("cannot listen on {}", config.listen)))?;
    let local = listener.local_addr().map_err(io("no local address".into()))?;
    println!("huifu listening on http://{local}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(io("server failed".into()))?;
    // Every handler is done; the last handle stops the writer after the queue drains.
    drop(engine);
    Ok(())
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
