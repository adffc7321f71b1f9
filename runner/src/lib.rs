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
pub mod cdc;
pub mod config;
pub mod endpoint;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod schema;
pub mod scrub;
pub mod status;

pub use assess::{Assessment, Verdict, assess_task};
pub use cdc::{CdcEnd, CdcSummary};
pub use config::{ConfigError, TaskConfig, TaskMode};
pub use endpoint::{AnyApplier, AnySink, AnySource, AnyWriter};
pub use pipeline::{Plan, Summary, TableStats, full_load};
pub use progress::{LogFormat, Progress, ProgressMode, render_summary};
pub use schema::{SchemaScript, Section, schema_for_task};
pub use scrub::Scrubber;

use cdc::{CdcOptions, replicate};
use ferry_core::{Catalog, Error, Position, Result, Sink, Source};
use status::{StatusBoard, TablePhase};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// How a run is steered from outside: when to stop a change stream.
#[derive(Debug, Clone)]
pub struct RunControl {
    /// Stop a CDC task cleanly once the target has caught up with the source.
    pub stop_at_lag_zero: bool,
    /// Turns true to ask for a clean stop (Ctrl-C, SIGTERM): CDC commits what it
    /// applied up to the last source transaction boundary and returns.
    pub shutdown: watch::Receiver<bool>,
    /// Set by the run once it streams changes (a shutdown is then clean); before
    /// that, during a full load, the caller should cancel the run instead.
    pub streaming: Arc<AtomicBool>,
    /// Serve Prometheus metrics and the status page on this address while the
    /// task runs.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Default for RunControl {
    fn default() -> Self {
        let (tx, rx) = watch::channel(false);
        // Leak-free: a dropped sender just means nobody will ask to stop.
        drop(tx);
        RunControl {
            stop_at_lag_zero: false,
            shutdown: rx,
            streaming: Arc::default(),
            metrics_addr: None,
        }
    }
}

/// Runs a task until it is done (full load) or stopped (CDC); see
/// [`run_task_with`].
pub async fn run_task(config: &TaskConfig, progress: &Progress) -> Result<Summary> {
    run_task_with(config, progress, RunControl::default()).await
}

/// Runs a task: connects to both endpoints (bounded by
/// [`endpoint::CONNECT_TIMEOUT`]) and, by mode, copies the selected tables, streams
/// their changes, or both — resuming a change stream from the checkpoint the
/// target holds. Live state goes to `<state-dir>/status.json` (`ferry status`).
pub async fn run_task_with(
    config: &TaskConfig,
    progress: &Progress,
    control: RunControl,
) -> Result<Summary> {
    let task = config.task_name();
    let mode = config.task.mode;
    tracing::info!(
        task = %task,
        source = %config.source.redacted_url(),
        target = %config.target.redacted_url(),
        mode = %mode,
        parallelism = config.task.parallelism,
        "starting task"
    );
    let board = StatusBoard::new(&task, &mode.to_string(), Some(&config.state_dir()));
    let writer = board.spawn_writer();
    let server = match control.metrics_addr {
        Some(addr) => match metrics::serve(addr, board.clone()).await {
            Ok((_, handle)) => Some(handle),
            Err(e) => {
                writer.abort();
                return Err(e);
            }
        },
        None => None,
    };
    let result = run_mode(config, progress, control, &task, &board).await;
    writer.abort();
    if let Some(server) = server {
        server.abort();
    }
    match &result {
        Ok(_) => board.set_phase("stopped"),
        Err(e) => {
            board.set_phase("failed");
            board.note_error(&e.full_message());
        }
    }
    if let Err(e) = board.write() {
        tracing::warn!(error = %e, "cannot write the task status");
    }
    result
}

async fn run_mode(
    config: &TaskConfig,
    progress: &Progress,
    control: RunControl,
    task: &str,
    board: &StatusBoard,
) -> Result<Summary> {
    let mode = config.task.mode;
    let connect = || async {
        let (source, sink) = tokio::try_join!(
            AnySource::connect_for_task(&config.source, config.task.parallelism),
            AnySink::connect(&config.target)
        )?;
        Ok((Arc::new(source), Arc::new(sink)))
    };
    let (source, sink) = connect().await?;
    let mut plan = Plan::from_config(config);
    let mut summary = Summary::default();
    let from = match mode {
        TaskMode::FullLoad => None,
        TaskMode::FullLoadAndCdc => sink
            .read_checkpoint(task)
            .await
            .map_err(|e| e.context("reading the task's checkpoint from the target"))?,
        TaskMode::Cdc => {
            let stored = sink
                .read_checkpoint(task)
                .await
                .map_err(|e| e.context("reading the task's checkpoint from the target"))?;
            match stored {
                Some(p) => Some(p),
                None => Some(start_cdc_only(source.as_ref(), sink.as_ref(), &plan, task).await?),
            }
        }
    };
    let from = match from {
        Some(p) => {
            tracing::info!(task, position = %source.describe_position(&p), "resuming from the target's checkpoint");
            p
        }
        None => {
            board.set_phase("full-load");
            if mode == TaskMode::FullLoadAndCdc {
                plan.capture_task = Some(task.to_string());
            }
            summary = full_load(Arc::clone(&source), Arc::clone(&sink), &plan, progress).await?;
            let phase = if mode == TaskMode::FullLoad {
                TablePhase::Loaded
            } else {
                TablePhase::CachedChanges
            };
            for t in &summary.tables {
                board.table_phase(&t.source, &t.target, phase);
                board.full_load_rows(&t.source, t.rows);
            }
            tracing::info!(
                tables = summary.tables.len(),
                rows = summary.total_rows(),
                seconds = summary.elapsed.as_secs_f64(),
                "full load finished"
            );
            if mode == TaskMode::FullLoad {
                return Ok(summary);
            }
            let position = summary.snapshot_position.clone().ok_or_else(|| {
                Error::internal("the capture snapshot has no position to stream changes from")
            })?;
            sink.write_checkpoint(task, &position)
                .await
                .map_err(|e| e.context("storing the snapshot position as the task's checkpoint"))?;
            position
        }
    };
    drop((source, sink));
    board.set_phase("cdc");
    control.streaming.store(true, Ordering::SeqCst);
    let follow = progress.follow_cdc(board.clone());
    let options = CdcOptions {
        task: task.to_string(),
        commit_rows: config.task.commit_rows,
        commit_delay: Duration::from_millis(config.task.commit_delay_ms),
        ddl_policy: config.task.ddl_policy,
        stop_at_lag_zero: control.stop_at_lag_zero,
    };
    let cdc = replicate(connect, &plan, &options, from, board, control.shutdown).await;
    if let Some(f) = follow {
        f.abort();
    }
    let cdc = cdc?;
    tracing::info!(
        task,
        changes = cdc.changes,
        commits = cdc.commits,
        end = ?cdc.end,
        "change capture stopped"
    );
    summary.cdc = Some(cdc);
    Ok(summary)
}

/// `cdc` mode's first run: prepares the target tables (per `table-prep`, keys
/// included), starts capture at the source's current position and stores it as
/// the checkpoint, so a restart continues from there rather than from "now".
async fn start_cdc_only(
    source: &AnySource,
    sink: &AnySink,
    plan: &Plan,
    task: &str,
) -> Result<Position> {
    let selected = pipeline::select_tables(source, plan).await?;
    let conversion = plan.convert(sink, source.engine(), selected)?;
    for (_, target) in &conversion.tables {
        sink.prepare_table(target, plan.table_prep)
            .await
            .map_err(|e| e.context(format!("preparing target table {}", target.id)))?;
        sink.finish_table(target, plan.table_prep)
            .await
            .map_err(|e| e.context(format!("target table {}: building keys", target.id)))?;
    }
    let catalog = Catalog {
        tables: conversion.tables.into_iter().map(|(s, _)| s).collect(),
    };
    let position = match &plan.start_position {
        Some(text) => source.start_position(task, &catalog, text).await,
        None => source.capture_position(task, &catalog).await,
    }
    .map_err(|e| e.context("starting change capture at the source"))?;
    sink.write_checkpoint(task, &position)
        .await
        .map_err(|e| e.context("storing the start position as the task's checkpoint"))?;
    Ok(position)
}

/// `ferry cleanup`: removes what change capture created for the task at the
/// source (replication slot, publication) and its checkpoint at the target;
/// returns a line per object removed.
pub async fn cleanup_task(config: &TaskConfig) -> Result<Vec<String>> {
    let task = config.task_name();
    let (source, sink) = tokio::try_join!(
        AnySource::connect(&config.source),
        AnySink::connect(&config.target)
    )?;
    let mut removed = source
        .cleanup_capture(&task)
        .await
        .map_err(|e| e.context("removing change capture at the source"))?;
    if sink
        .remove_checkpoint(&task)
        .await
        .map_err(|e| e.context("removing the task's checkpoint at the target"))?
    {
        removed.push(format!("checkpoint of task {task} at the target"));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test]
    async fn unbuilt_connector_is_reported_without_password() {
        let text =
            "[source]\nurl = \"sqlite://u:pw@h/db\"\n[target]\nurl = \"mysql://u:pw@h/db\"\n";
        // The task's state directory goes next to its file: keep it out of the tree.
        let file = std::env::temp_dir()
            .join(format!("ferry-unit-{}", std::process::id()))
            .join("t.toml");
        let config = TaskConfig::parse(text, &file, |_| None).expect("valid");
        let e = run_task(&config, &Progress::hidden())
            .await
            .expect_err("sqlite not built");
        assert_eq!(
            e.message(),
            "source: connector for scheme sqlite:// is not built yet"
        );
    }
}
