//! `ferry run <TASK_FILE>`: runs a migration task. Exit 0 on success; otherwise one
//! line `ferry: error: <first failure>` on stderr and exit 1.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ferry::{LogFormat, Progress, ProgressMode, Scrubber, TaskConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// Ferry: database migration and replication.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the task described by a task file.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The task file (TOML).
    task_file: PathBuf,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Show no progress bars or periodic progress lines.
    #[arg(long)]
    no_progress: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let scrubber = Scrubber::new();
    match run(cli, &scrubber) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "ferry: error: {}",
                one_line(&scrubber.scrub(&format!("{e:#}")))
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, scrubber: &Scrubber) -> anyhow::Result<()> {
    let Command::Run(args) = cli.command;
    let progress = Progress::new(ProgressMode::detect(args.no_progress, args.log_format));
    ferry::progress::init_logging(args.log_format, progress.multi(), scrubber.clone());

    let config = TaskConfig::load(&args.task_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    scrubber.add(config.secrets());
    scrubber.add_public([config.source.redacted_url(), config.target.redacted_url()]);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        tokio::select! {
            result = ferry::run_task(&config, &progress) => {
                result.map_err(|e| anyhow::anyhow!("{}", e.full_message()))
            }
            signal = shutdown_signal() => Err(anyhow::anyhow!(
                "interrupted by {signal}; the task did not finish"
            )),
        }
    });
    progress.finish();
    let summary = result?;
    print!("{}", ferry::render_summary(&summary));
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM and names it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

/// Collapses a message to one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from(["ferry", "run", "t.toml", "--log-format", "json"])
            .expect("valid args");
        let Command::Run(args) = cli.command;
        assert_eq!(args.task_file, PathBuf::from("t.toml"));
        assert_eq!(args.log_format, LogFormat::Json);
        assert!(!args.no_progress);
        assert!(Cli::try_parse_from(["ferry", "run"]).is_err());
        assert!(Cli::try_parse_from(["ferry", "run", "t", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(one_line("a  x\n  b\tc\n\n"), "a  x b\tc");
    }
}
