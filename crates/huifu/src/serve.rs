//! `huifu serve`: the HTTP/JSON API on the embedded engine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct ServeArgs {
    /// Data folder (created on first start).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Address to listen on (default 127.0.0.1:7070; for a cluster node, its `http` address
    /// in the cluster file).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Run as a node of the cluster this file describes (one `[[node]]` table per node, with
    /// `id`, `http` and `peer`); `--node` says which.
    #[arg(long, requires = "node")]
    cluster: Option<PathBuf>,
    /// This node's id in the `--cluster` file.
    #[arg(long, requires = "cluster")]
    node: Option<u64>,
    /// A new node joining a running cluster (to replace a dead one, or to grow it): it waits
    /// to be added with `POST /v1/cluster/nodes` on any node, instead of making the cluster of
    /// its file. Needed on its first start only.
    #[arg(long, requires = "cluster")]
    join: bool,
    /// A file holding an admin API key to accept (else `HUIFU_ADMIN_KEY`, else one is created
    /// and printed once on first start).
    #[arg(long)]
    admin_key_file: Option<PathBuf>,
    /// Requests per second every API key may make on average when it was given no rate of its
    /// own (`rate_per_second` when it was made), instead of its role's default (admin 1,000,
    /// platform 20,000, merchant 100); its burst is twice that. 1 to 10,000,000: load tests
    /// and `bench http` against a server of their own set it high.
    #[arg(long)]
    key_rate_per_second: Option<u32>,
    /// Threads serving HTTP (default: one less than the machine's cores, at least one, so
    /// that the engine's writer thread has a core of its own).
    #[arg(long)]
    http_threads: Option<usize>,
    /// Let webhook endpoints be on loopback and private networks (127.0.0.0/8, 10.0.0.0/8,
    /// 192.168.0.0/16, ...), which are refused otherwise: for tests, and for receivers inside
    /// the platform's own network.
    #[arg(long)]
    webhooks_allow_private: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    memory: crate::util::BoundedMemoryArgs,
}

/// The server's limits (defaults and what each costs: crates/server/src/constants.rs).
#[derive(Args)]
pub struct LimitArgs {
    /// Requests worked on at once; beyond it 503 `overloaded` with `Retry-After`.
    #[arg(long, default_value_t = huifu_server::constants::REQUESTS_IN_FLIGHT_MAX,
          value_parser = at_least_one)]
    requests_in_flight_max: usize,
    /// Milliseconds a client has to send a request's head from when the server waits for it
    /// (also how long a kept-alive connection may stay idle); then its connection is closed.
    #[arg(long, default_value_t = huifu_server::constants::HEADER_READ_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: u64,
    /// Milliseconds a request has until its response starts (a slow body); then 408.
    #[arg(long, default_value_t = huifu_server::constants::BODY_READ_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout_ms: u64,
    /// Event streams one API key may hold open; beyond it 429 `too_many_streams`.
    #[arg(long, default_value_t = huifu_server::constants::EVENTS_STREAMS_PER_KEY_MAX,
          value_parser = at_least_one)]
    events_per_key_max: usize,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a number of at least 1")),
    }
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let admin_key = match &args.admin_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("HUIFU_ADMIN_KEY").ok().filter(|k| !k.trim().is_empty()),
    };
    if admin_key.as_ref().is_some_and(|k| k.len() < 16) {
        anyhow::bail!("the admin key must be at least 16 characters");
    }
    let data_dir = args.data_dir.clone();
    let cluster = match (&args.cluster, args.node) {
        (Some(path), Some(node)) => {
            let config = huifu_cluster::ClusterConfig::load(path)?;
            if config.node(node).is_none() {
                anyhow::bail!("node {node} is not in {}", path.display());
            }
            Some(huifu_server::ClusterMember { config, node, join: args.join })
        }
        _ => None,
    };
    let listen = match (args.listen, &cluster) {
        (Some(listen), _) => listen,
        (None, Some(member)) => member.config.node(member.node).expect("checked above").http,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 7070)),
    };
    let mut config = huifu_server::Config::new(args.data_dir, listen);
    config.cluster = cluster;
    config.admin_key = admin_key;
    config.memory_transfers_max = args.memory.transfers_max.0;
    config.webhooks_allow_private = args.webhooks_allow_private;
    config.limits = huifu_server::Limits {
        requests_in_flight_max: args.limits.requests_in_flight_max,
        header_read_timeout_ms: args.limits.header_read_timeout_ms,
        body_read_timeout_ms: args.limits.body_read_timeout_ms,
        events_per_key_max: args.limits.events_per_key_max,
    };
    if let Some(per_second) = args.key_rate_per_second {
        let rate = huifu_server::Rate::per_second(per_second)
            .validate()
            .map_err(|(_, says)| anyhow::anyhow!("--key-rate-per-second: {says}"))?;
        config.key_rate = Some(rate);
    }
    let http_threads = match args.http_threads {
        Some(0) => anyhow::bail!("--http-threads must be at least 1"),
        Some(n) => n,
        None => {
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).max(1)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(http_threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Whatever the server writes that is not the engine's (the key store) is in the data folder.
    runtime
        .block_on(huifu_server::serve(config))
        .map_err(|e| crate::util::name_full_folder(e.into(), Some(&data_dir)))?;
    Ok(ExitCode::SUCCESS)
}
