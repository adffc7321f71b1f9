//! The `ferry` runner: task file, connectors by URL scheme, the full-load pipeline,
//! progress and summary, the target DDL (`ferry schema`) and the premigration
//! assessment (`ferry assess`). The binary (`src/main.rs`) is a thin CLI over this library,
//! which end-to-end tests call directly:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ferry::config::TaskConfig::load("task.toml".as_ref())?;
//! let summary = ferry::run_task(&config, &ferry::progress::Progress::hidden()).await?;
//! println!("{}", ferry::progress::render_summary(&summary));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod assess;
pub mod config;
pub mod endpoint;
pub mod pipeline;
pub mod progress;
pub mod schema;
pub mod scrub;

pub use assess::{Assessment, Verdict, assess_task};
pub use config::{ConfigError, TaskConfig, TaskMode};
pub use endpoint::{AnySink, AnySource, AnyWriter};
pub use pipeline::{Plan, Summary, TableStats, full_load};
pub use progress::{LogFormat, Progress, ProgressMode, render_summary};
pub use schema::{SchemaScript, Section, schema_for_task};
pub use scrub::Scrubber;

use ferry_core::{Error, Result};
use std::sync::Arc;

/// Runs a task: checks its mode, connects to both endpoints (bounded by
/// [`endpoint::CONNECT_TIMEOUT`]) and copies the selected tables.
pub async fn run_task(config: &TaskConfig, progress: &Progress) -> Result<Summary> {
    if config.task.mode != TaskMode::FullLoad {
        return Err(Error::unsupported(format!(
            "mode {} is not supported yet (only full-load is)",
            config.task.mode
        )));
    }
    tracing::info!(
        source = %config.source.redacted_url(),
        target = %config.target.redacted_url(),
        mode = %config.task.mode,
        parallelism = config.task.parallelism,
        "starting task"
    );
    let (source, sink) = tokio::try_join!(
        AnySource::connect_for_task(&config.source, config.task.parallelism),
        AnySink::connect(&config.target)
    )?;
    let plan = Plan::from_settings(&config.task);
    let summary = full_load(Arc::new(source), Arc::new(sink), &plan, progress).await?;
    tracing::info!(
        tables = summary.tables.len(),
        rows = summary.total_rows(),
        seconds = summary.elapsed.as_secs_f64(),
        "task finished"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ErrorKind;
    use std::path::Path;

    fn config(task: &str) -> TaskConfig {
        let text = format!(
            "[source]\nurl = \"postgres://u:pw@127.0.0.1:1/db\"\n[target]\nurl = \"mysql://u:pw@h/db\"\n{task}"
        );
        TaskConfig::parse(&text, Path::new("t.toml"), |_| None).expect("valid config")
    }

    #[tokio::test]
    async fn other_modes_are_refused_before_connecting() {
        for mode in ["cdc", "full-load-and-cdc"] {
            let e = run_task(
                &config(&format!("[task]\nmode = \"{mode}\"\n")),
                &Progress::hidden(),
            )
            .await
            .expect_err("unsupported mode");
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert_eq!(
                e.message(),
                format!("mode {mode} is not supported yet (only full-load is)")
            );
        }
    }

    #[tokio::test]
    async fn unbuilt_connector_is_reported_without_password() {
        let text =
            "[source]\nurl = \"sqlite://u:pw@h/db\"\n[target]\nurl = \"mysql://u:pw@h/db\"\n";
        let config = TaskConfig::parse(text, Path::new("t.toml"), |_| None).expect("valid");
        let e = run_task(&config, &Progress::hidden())
            .await
            .expect_err("sqlite not built");
        assert_eq!(
            e.message(),
            "source: connector for scheme sqlite:// is not built yet"
        );
    }
}
