//! `huifu backup`: a consistent copy of a data folder (see `huifu_engine::backup`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct BackupArgs {
    /// The data folder of a running or stopped node.
    #[arg(long)]
    data_dir: PathBuf,
    /// The new folder to write the copy to (must not exist).
    #[arg(long)]
    out: PathBuf,
}

pub fn backup_command(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bytes} copied ({bytes_per_sec})")
            .expect("a valid template"),
    );
    let report =
        huifu_engine::backup(&args.data_dir, &args.out, &mut |bytes| bar.set_position(bytes))?;
    bar.finish_and_clear();
    println!(
        "backup of {} in {}: {} files, {} bytes, checkpoint at journal record {}, {}",
        args.data_dir.display(),
        args.out.display(),
        report.files,
        report.bytes,
        report.checkpoint_seq,
        if report.online { "copied while the node ran" } else { "copied stopped" }
    );
    // The proof that the copy is one `serve` starts from: it opens, and every invariant holds.
    crate::simulate::audit_command(crate::simulate::AuditArgs::of(args.out))
}
