//! `ferry run <TASK_FILE>`: runs a migration task. Exit 0 on success; otherwise one
//! line `ferry: error: <first failure>` on stderr and exit 1.
//!
//! `ferry schema <TASK_FILE>`: prints the target DDL without touching the target
//! (exit 0; 2 when a table cannot be converted as asked).
//!
//! `ferry assess <TASK_FILE>`: premigration assessment of both ends; exit 0 for
//! `ready` and `ready-with-warnings`, 2 for `blocked`.
//!
//! Any failure of the command itself: one `ferry: error: ...` line and exit 1.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ferry::{LogFormat, Progress, ProgressMode, Scrubber, Section, TaskConfig};
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
    /// Print the target DDL (types, tables, keys, indexes, foreign keys) for the
    /// task's tables without touching the target. Exit 0, or 2 when a table cannot
    /// be converted as asked.
    Schema(SchemaArgs),
    /// Assess the task before running it: every type mapping, object and setting
    /// that will not migrate cleanly, per table and column, and a verdict. Exit 0
    /// for ready and ready-with-warnings, 2 for blocked.
    Assess(AssessArgs),
    /// Show a task's state (running or last run): per-table phase and counts,
    /// source position, lag. Reads `<state-dir>/status.json`. Exit 0 while the
    /// task runs or stopped cleanly, 3 when it is not running, 1 when it failed.
    Status(StatusArgs),
    /// Remove what change capture created for the task: the replication slot and
    /// publication at the source (PostgreSQL) and the checkpoint at the target.
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The task file (TOML).
    task_file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Args)]
struct CleanupArgs {
    /// The task file (TOML).
    task_file: PathBuf,
}

/// Output format of `schema` and `assess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// SQL script (`schema`) or a human-readable report (`assess`).
    Text,
    /// JSON on stdout.
    Json,
}

#[derive(Debug, Args)]
struct SchemaArgs {
    /// The task file (TOML).
    task_file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Only this section of the DDL (text format).
    #[arg(long, value_enum, default_value_t = Section::All)]
    section: Section,
}

#[derive(Debug, Args)]
struct AssessArgs {
    /// The task file (TOML).
    task_file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
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
    /// cdc / full-load-and-cdc: stop cleanly (exit 0) once the target has caught up
    /// with the source, for a cutover.
    #[arg(long)]
    stop_at_lag_zero: bool,
    /// Serve Prometheus metrics at /metrics, the live status at /status.json and
    /// a status page at / on this address (e.g. 127.0.0.1:9187) while the task runs.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let scrubber = Scrubber::new();
    match run(cli, &scrubber) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "ferry: error: {}",
                one_line(&scrubber.scrub(&format!("{e:#}")))
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, scrubber: &Scrubber) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_task(args, scrubber).map(|()| ExitCode::SUCCESS),
        Command::Schema(args) => schema(args, scrubber),
        Command::Assess(args) => assess(args, scrubber),
        Command::Status(args) => status(args, scrubber),
        Command::Cleanup(args) => cleanup(args, scrubber),
    }
}

/// Loads the task file and registers its secrets with the scrubber.
fn load_task(path: &std::path::Path, scrubber: &Scrubber) -> anyhow::Result<TaskConfig> {
    let config = TaskConfig::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    scrubber.add(config.secrets());
    scrubber.add_public([config.source.redacted_url(), config.target.redacted_url()]);
    Ok(config)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn schema(args: SchemaArgs, scrubber: &Scrubber) -> anyhow::Result<ExitCode> {
    ferry::progress::init_logging(LogFormat::Text, None, scrubber.clone());
    let config = load_task(&args.task_file, scrubber)?;
    let script = runtime()?
        .block_on(ferry::schema_for_task(&config))
        .map_err(|e| anyhow::anyhow!("{}", e.full_message()))?;
    let text = match args.format {
        Format::Text => ferry::schema::render_sql(&script, args.section),
        Format::Json => ferry::schema::render_json(&script),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(if script.has_errors() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn assess(args: AssessArgs, scrubber: &Scrubber) -> anyhow::Result<ExitCode> {
    ferry::progress::init_logging(LogFormat::Text, None, scrubber.clone());
    let config = load_task(&args.task_file, scrubber)?;
    let report = runtime()?
        .block_on(ferry::assess_task(&config))
        .map_err(|e| anyhow::anyhow!("{}", e.full_message()))?;
    let text = match args.format {
        Format::Text => ferry::assess::render_text(&report),
        Format::Json => ferry::assess::render_json(&report),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::from(report.verdict.exit_code()))
}

fn run_task(args: RunArgs, scrubber: &Scrubber) -> anyhow::Result<()> {
    let progress = Progress::new(ProgressMode::detect(args.no_progress, args.log_format));
    ferry::progress::init_logging(args.log_format, progress.multi(), scrubber.clone());

    let config = load_task(&args.task_file, scrubber)?;
    let runtime = runtime()?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let control = ferry::RunControl {
        stop_at_lag_zero: args.stop_at_lag_zero,
        shutdown,
        streaming: Default::default(),
        metrics_addr: args.metrics_addr,
    };
    let streaming = std::sync::Arc::clone(&control.streaming);
    let result = runtime.block_on(async {
        let run = ferry::run_task_with(&config, &progress, control);
        tokio::pin!(run);
        let signal = tokio::select! {
            result = &mut run => {
                return result.map_err(|e| anyhow::anyhow!("{}", e.full_message()));
            }
            signal = shutdown_signal() => signal,
        };
        if !streaming.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("interrupted by {signal}; the task did not finish");
        }
        // A change stream stops cleanly: commit up to the last source transaction.
        tracing::info!(signal, "stopping the change stream");
        let _ = stop.send(true);
        match tokio::time::timeout(std::time::Duration::from_secs(30), &mut run).await {
            Ok(result) => result.map_err(|e| anyhow::anyhow!("{}", e.full_message())),
            Err(_) => {
                anyhow::bail!("interrupted by {signal}; the change stream did not stop within 30 s")
            }
        }
    });
    progress.finish();
    let summary = result?;
    print!("{}", ferry::render_summary(&summary));
    Ok(())
}

fn status(args: StatusArgs, scrubber: &Scrubber) -> anyhow::Result<ExitCode> {
    let config = load_task(&args.task_file, scrubber)?;
    let status = ferry::status::read_status(&config.state_dir())
        .map_err(|e| anyhow::anyhow!("{}", e.full_message()))?;
    let running = ferry::status::is_running(&status);
    match args.format {
        Format::Text => print!("{}", ferry::status::render_status(&status, running)),
        Format::Json => {
            let mut value = serde_json::to_value(&status)?;
            value["running"] = serde_json::Value::Bool(running);
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
    }
    Ok(match (running, status.phase.as_str()) {
        (true, _) | (false, "stopped") => ExitCode::SUCCESS,
        (false, "failed") => ExitCode::FAILURE,
        _ => ExitCode::from(3),
    })
}

fn cleanup(args: CleanupArgs, scrubber: &Scrubber) -> anyhow::Result<ExitCode> {
    ferry::progress::init_logging(LogFormat::Text, None, scrubber.clone());
    let config = load_task(&args.task_file, scrubber)?;
    let removed = runtime()?
        .block_on(ferry::cleanup_task(&config))
        .map_err(|e| anyhow::anyhow!("{}", e.full_message()))?;
    if removed.is_empty() {
        println!("nothing to remove for task {}", config.task_name());
    }
    for line in removed {
        println!("removed {line}");
    }
    Ok(ExitCode::SUCCESS)
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
        let Command::Run(args) = cli.command else {
            panic!("run parses as run");
        };
        assert_eq!(args.task_file, PathBuf::from("t.toml"));
        assert_eq!(args.log_format, LogFormat::Json);
        assert!(!args.no_progress);
        assert!(Cli::try_parse_from(["ferry", "run"]).is_err());
        assert!(Cli::try_parse_from(["ferry", "run", "t", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn schema_and_assess_parse() {
        let cli = Cli::try_parse_from([
            "ferry",
            "schema",
            "t.toml",
            "--format",
            "json",
            "--section",
            "foreign-keys",
        ])
        .expect("valid args");
        let Command::Schema(args) = cli.command else {
            panic!("schema parses as schema");
        };
        assert_eq!(args.format, Format::Json);
        assert_eq!(args.section, Section::ForeignKeys);
        let cli = Cli::try_parse_from(["ferry", "assess", "t.toml"]).expect("valid args");
        let Command::Assess(args) = cli.command else {
            panic!("assess parses as assess");
        };
        assert_eq!(args.format, Format::Text);
        assert!(Cli::try_parse_from(["ferry", "assess", "t", "--format", "yaml"]).is_err());
    }

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(one_line("a  x\n  b\tc\n\n"), "a  x b\tc");
    }
}
