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
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// A file holding an admin API key to accept (else `HUIFU_ADMIN_KEY`, else one is created
    /// and printed once on first start).
    #[arg(long)]
    admin_key_file: Option<PathBuf>,
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
    let mut config = huifu_server::Config::new(args.data_dir, args.listen);
    config.admin_key = admin_key;
    config.memory_transfers_max = args.memory.transfers_max.0;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(huifu_server::serve(config))?;
    Ok(ExitCode::SUCCESS)
}
