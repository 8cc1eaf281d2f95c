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
    /// Threads serving HTTP (default: one less than the machine's cores, at least one, so
    /// that the engine's writer thread has a core of its own).
    #[arg(long)]
    http_threads: Option<usize>,
    #[command(flatten)]
    memory: crate::util::BoundedMemoryArgs,
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
