//! `huifu check-acks`: the ack log of `simulate --server` checked against the running server
//! (the check itself is the simulator's, `huifu_sim::ack_log`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use huifu_sim::ack_log;
use huifu_sim::http_client::Api;

use crate::util;

#[derive(Args)]
pub struct CheckAcksArgs {
    /// Base URL of the running server (for a cluster, every node's, separated by commas).
    #[arg(long, value_name = "URL")]
    server: String,
    /// An admin or platform API key (default: `HUIFU_ADMIN_KEY`).
    #[arg(long)]
    api_key: Option<String>,
    /// The ack log written by `huifu simulate --server URL --ack-log FILE`.
    #[arg(long, value_name = "FILE")]
    ack_log: PathBuf,
    /// Concurrent requests.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// How long one request is retried while the server is unreachable.
    #[arg(long, default_value_t = 60)]
    retry_seconds: u64,
}

pub fn check_acks(args: CheckAcksArgs) -> anyhow::Result<ExitCode> {
    let key = util::api_key(args.api_key.as_ref())?;
    let api = Api::new(&args.server, &key, Duration::from_secs(args.retry_seconds));
    let acks = ack_log::read(&args.ack_log)?;
    let verdict = ack_log::verify(&api, &acks, args.threads)?;
    eprintln!(
        "{} acknowledged operations checked, {} payments on the server, {} missing",
        verdict.checked, verdict.payments_on_server, verdict.missing
    );
    if verdict.ok() {
        println!("acks ok");
        Ok(ExitCode::SUCCESS)
    } else {
        for violation in verdict.all_violations() {
            println!("violation: {violation}");
        }
        Ok(ExitCode::FAILURE)
    }
}
