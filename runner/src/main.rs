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
