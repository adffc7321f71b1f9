//! The change-data-capture pipeline (DESIGN.md §5): one ordered stream per task
//! from the source, applied in commit order and batched into target transactions
//! that carry the task's checkpoint; durable positions flow back to the source.
//!
//! A retryable failure on either side (dropped connection, server restart) tears
//! the stream down and starts again from the checkpoint the target holds, with
//! capped backoff: whatever was applied but not committed is rolled back and
//! streamed again, so nothing is lost and nothing applied twice.

use crate::config::DdlPolicy;
use crate::pipeline::{Plan, select_tables};
use crate::status::{StatusBoard, TablePhase};
use ferry_core::{
    ApplyTable, Batch, Catalog, ChangeApplier, Error, ErrorKind, FindingLevel, Operation, Position,
    Result, Sink, Source, TableId, TableSchema, batch_channel,
};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Batches buffered between the change stream and the applier (a batch may hold
/// a single change: source transactions often touch several tables; memory is
/// bounded by [`STREAM_BYTES`]).
const STREAM_BATCHES: usize = 8192;
/// Bytes buffered between the change stream and the applier.
const STREAM_BYTES: usize = 32 * 1024 * 1024;
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Consecutive failed attempts (without any commit in between) before giving up.
const MAX_ATTEMPTS: u32 = 12;

/// How a CDC run applies and when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcOptions {
    /// The task's name (slot, publication, checkpoint row).
    pub task: String,
    /// Commit once a target transaction holds this many changes.
    pub commit_rows: usize,
    /// ... or once its first change is this old.
    pub commit_delay: Duration,
    /// What to do on a source schema change.
    pub ddl_policy: DdlPolicy,
    /// Stop cleanly once the target has caught up with the source.
    pub stop_at_lag_zero: bool,
}

/// Why a CDC run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdcEnd {
    /// The target caught up and `stop_at_lag_zero` was asked.
    CaughtUp,
    /// A shutdown was requested (Ctrl-C, SIGTERM).
    Shutdown,
    /// The source ended its stream.
    SourceEnded,
}

/// The outcome of a CDC run.
#[derive(Debug, Clone, PartialEq)]
pub struct CdcSummary {
    /// Why it ended.
    pub end: CdcEnd,
    /// The last position made durable at the target.
    pub position: Option<Position>,
    /// Changes applied (rows inserted, updated, deleted; truncates and schema
    /// changes count one each).
    pub changes: u64,
    /// Target transactions committed.
    pub commits: u64,
    /// Reconnections after retryable failures.
    pub reconnects: u64,
}

/// Streams `from` onwards (or from the checkpoint the target holds, when newer)
/// until stopped. `connect` opens fresh source and sink handles; it is called again
/// after every retryable failure.
pub async fn replicate<S, K, C, F>(
    connect: C,
    plan: &Plan,
    options: &CdcOptions,
    from: Position,
    board: &StatusBoard,
    mut shutdown: watch::Receiver<bool>,
) -> Result<CdcSummary>
where
    S: Source + 'static,
    K: Sink + 'static,
    C: Fn() -> F,
    F: Future<Output = Result<(Arc<S>, Arc<K>)>>,
{
    let mut summary = CdcSummary {
        end: CdcEnd::Shutdown,
        position: None,
        changes: 0,
        commits: 0,
        reconnects: 0,
    };
    let mut failures = 0u32;
    let mut from = from;
    loop {
        let commits_before = summary.commits;
        let attempt = async {
            let (source, sink) = connect().await?;
            run_stream(
                source,
                sink,
                plan,
                options,
                &from,
                board,
                &mut shutdown,
                &mut summary,
            )
            .await
        };
        match attempt.await {
            Ok(end) => {
                summary.end = end;
                return Ok(summary);
            }
            Err(e) if e.is_retryable() && !*shutdown.borrow() => {
                if summary.commits > commits_before {
                    failures = 0;
                }
                failures += 1;
                if failures > MAX_ATTEMPTS {
                    return Err(e.context(format!(
                        "change capture gave up after {MAX_ATTEMPTS} reconnection attempts"
                    )));
                }
                let wait = Duration::from_secs(1u64 << (failures - 1).min(5)).min(MAX_BACKOFF);
                tracing::warn!(
                    error = %e.full_message(),
                    attempt = failures,
                    wait_secs = wait.as_secs(),
                    "change stream interrupted; reconnecting from the last checkpoint"
                );
                board.note_reconnect(&e.full_message());
                summary.reconnects += 1;
                if let Some(p) = &summary.position {
                    from = p.clone();
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop_requested(&mut shutdown) => {
                        summary.end = CdcEnd::Shutdown;
                        return Ok(summary);
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until `shutdown` turns true; never returns when its sender is gone
/// without having asked.
pub async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One table of the stream: its current source schema and the target it maps to.
struct Route {
    source: Arc<TableSchema>,
    target: Arc<TableSchema>,
    /// The source columns that are migrated, when a mapping removes some.
    keep: Option<Vec<usize>>,
}

/// What the applier holds that is not committed yet.
#[derive(Default)]
struct Pending {
    changes: usize,
    since: Option<Instant>,
    /// Whether the last batch applied ended at a source transaction boundary.
    at_boundary: bool,
    /// Whether the last boundary was a caught-up marker.
    caught_up: bool,
    /// Source time of the last boundary.
    source_time: Option<i64>,
    /// A boundary was applied since the last commit.
    boundary_seen: bool,
}

#[allow(clippy::too_many_arguments)]
async fn run_stream<S, K>(
    source: Arc<S>,
    sink: Arc<K>,
    plan: &Plan,
    options: &CdcOptions,
    from: &Position,
    board: &StatusBoard,
    shutdown: &mut watch::Receiver<bool>,
    summary: &mut CdcSummary,
) -> Result<CdcEnd>
where
    S: Source + 'static,
    K: Sink + 'static,
{
    let task = options.task.as_str();
    let stored = sink
        .read_checkpoint(task)
        .await
        .map_err(|e| e.context("reading the task's checkpoint from the target"))?;
    let from = match stored {
        Some(p) if p > *from => p,
        _ => from.clone(),
    };
    let selected = select_tables(source.as_ref(), plan).await?;
    let conversion = plan.convert(sink.as_ref(), source.engine(), selected)?;
    if let Some(error) = conversion
        .findings
        .iter()
        .find(|f| f.level == FindingLevel::Error)
    {
        return Err(Error::schema(format!(
            "{error} (the table cannot be migrated as asked)"
        )));
    }
    let mut routes: HashMap<TableId, Route> = HashMap::new();
    let mut apply_tables = Vec::new();
    let mut catalog = Catalog::default();
    for (table, target) in conversion.tables {
        let target = Arc::new(target);
        apply_tables.push(ApplyTable {
            schema: Arc::clone(&target),
            policy: plan.policy_for(&table.id),
        });
        board.table_phase(&table.id, &target.id, TablePhase::Applying);
        catalog.tables.push(table.clone());
        let keep = plan.mapping.as_ref().and_then(|m| m.kept_columns(&table));
        routes.insert(
            table.id.clone(),
            Route {
                source: Arc::new(table),
                target,
                keep,
            },
        );
    }
    let mut applier = sink
        .open_applier(task, apply_tables)
        .await
        .map_err(|e| e.context("opening the change applier at the target"))?;
    board.set_position(&from, source.describe_position(&from), None);

    let (tx, mut rx) = batch_channel(STREAM_BATCHES, STREAM_BYTES);
    let stream_source = Arc::clone(&source);
    let stream_task = task.to_string();
    let stream_from = from.clone();
    let mut stream = tokio::spawn(async move {
        stream_source
            .stream_changes(&stream_task, stream_from, &catalog, tx)
            .await
    });
    tracing::info!(task, position = %source.describe_position(&from), "change capture started");

    let mut pending = Pending {
        at_boundary: true,
        ..Pending::default()
    };
    let result: Result<CdcEnd> = async {
        loop {
            let deadline = pending
                .since
                .map(|t| t + options.commit_delay)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let received = tokio::select! {
                batch = rx.recv() => batch,
                _ = tokio::time::sleep_until(deadline.into()), if pending.since.is_some() && pending.at_boundary => {
                    if pending.at_boundary {
                        commit(&mut applier, source.as_ref(), task, &mut pending, board, summary).await?;
                    }
                    continue;
                }
                _ = stop_requested(shutdown) => {
                    // Keep what is applied up to the last transaction boundary.
                    if pending.at_boundary && pending.boundary_seen {
                        commit(&mut applier, source.as_ref(), task, &mut pending, board, summary).await?;
                    }
                    return Ok(CdcEnd::Shutdown);
                }
            };
            let Some(mut batch) = received else {
                // The stream ended: its result says why.
                return Ok(CdcEnd::SourceEnded);
            };
            let boundary = batch.end_position.is_some();
            let caught_up = batch.caught_up;
            let source_time = batch.source_time;
            let marker = batch.is_marker();
            if !marker {
                route_batch(&mut batch, &mut routes, sink.as_ref(), source.engine(), options, plan, board)?;
                let events = batch.events.len();
                pending.changes += events;
                summary.changes += events as u64;
            }
            if pending.since.is_none() {
                pending.since = Some(Instant::now());
            }
            applier.apply(batch).await?;
            pending.at_boundary = boundary;
            if boundary {
                pending.boundary_seen = true;
                pending.caught_up = caught_up;
                pending.source_time = source_time.or(pending.source_time);
                let full = pending.changes >= options.commit_rows;
                let old = pending
                    .since
                    .is_some_and(|t| t.elapsed() >= options.commit_delay);
                if full || old || (caught_up && options.stop_at_lag_zero) {
                    commit(&mut applier, source.as_ref(), task, &mut pending, board, summary).await?;
                    if caught_up && options.stop_at_lag_zero && rx.is_empty() {
                        return Ok(CdcEnd::CaughtUp);
                    }
                }
            }
        }
    }
    .await;
    // Stop the stream (dropping the receiver ends it) and report its own failure
    // first: the applier only sees a closed channel.
    drop(rx);
    let stream_result = tokio::time::timeout(Duration::from_secs(10), &mut stream).await;
    let stream_error = match stream_result {
        Ok(Ok(Err(e))) => Some(e),
        Ok(Err(join)) => Some(Error::internal(format!(
            "change stream task failed: {join}"
        ))),
        Ok(Ok(Ok(()))) => None,
        Err(_) => {
            stream.abort();
            None
        }
    };
    match (result, stream_error) {
        (Ok(CdcEnd::SourceEnded), Some(e)) => Err(e.context("reading the source's changes")),
        (Err(e), Some(se)) if e.kind() == ErrorKind::Internal => {
            Err(se.context("reading the source's changes"))
        }
        (result, _) => result,
    }
}

/// Maps a source batch to its target table: the target schema replaces the
/// source's, schema changes are converted (or stop the task, per `ddl-policy`).
fn route_batch<K: Sink>(
    batch: &mut Batch,
    routes: &mut HashMap<TableId, Route>,
    sink: &K,
    source_engine: &str,
    options: &CdcOptions,
    plan: &Plan,
    board: &StatusBoard,
) -> Result<()> {
    let id = batch.schema.id.clone();
    let Some(route) = routes.get_mut(&id) else {
        return Err(Error::internal(format!(
            "the change stream sent a change of table {id}, which the task does not select"
        )));
    };
    let schema_changed = batch.events.iter().any(|e| e.op == Operation::SchemaChange);
    if schema_changed || !Arc::ptr_eq(&route.source, &batch.schema) {
        if *route.source != *batch.schema {
            if options.ddl_policy == DdlPolicy::Stop {
                return Err(Error::schema(format!(
                    "source table {id} changed shape ({}); ddl-policy = \"stop\" stops the \
                     task before applying it: change the target table the same way, or set \
                     ddl-policy = \"apply\", then run the task again",
                    describe_change(&route.source, &batch.schema)
                )));
            }
            let (target, _) = sink
                .convert_schema(source_engine, &batch.schema)
                .map_err(|e| e.context(format!("converting the new shape of source table {id}")))?;
            tracing::info!(table = %id, change = %describe_change(&route.source, &batch.schema), "applying source schema change");
            let mut target = target;
            match &plan.mapping {
                Some(mapping) => mapping.rename(&id, &mut target)?,
                None => target.id = route.target.id.clone(),
            }
            route.target = Arc::new(target);
            board.count_ddl(&id);
        }
        route.source = Arc::clone(&batch.schema);
        route.keep = plan
            .mapping
            .as_ref()
            .and_then(|m| m.kept_columns(&route.source));
    }
    for event in &batch.events {
        board.count(&id, event.op);
    }
    match &route.keep {
        Some(keep) => crate::pipeline::project(batch, keep, &route.target),
        None => batch.schema = Arc::clone(&route.target),
    }
    Ok(())
}

/// "added a, b; dropped c; changed d" between two versions of a table.
fn describe_change(old: &TableSchema, new: &TableSchema) -> String {
    let added: Vec<&str> = new
        .columns
        .iter()
        .filter(|c| old.column(&c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    let dropped: Vec<&str> = old
        .columns
        .iter()
        .filter(|c| new.column(&c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    let changed: Vec<&str> = new
        .columns
        .iter()
        .filter(|c| {
            old.column(&c.name)
                .is_some_and(|o| o.data_type != c.data_type)
        })
        .map(|c| c.name.as_str())
        .collect();
    let mut parts = Vec::new();
    for (what, names) in [
        ("added", added),
        ("dropped", dropped),
        ("changed type of", changed),
    ] {
        if !names.is_empty() {
            parts.push(format!("{what} column {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        "column details changed".into()
    } else {
        parts.join("; ")
    }
}

/// Environment variable of the crash tests: `after-commit:N` aborts the process
/// right after its N-th target commit, before the source hears of it.
pub const FAILPOINT_ENV: &str = "FERRY_FAILPOINT";

/// Aborts the process (as `kill -9` would end it) when [`FAILPOINT_ENV`] asks
/// for it at this commit.
fn crash_failpoint(commits: u64) {
    let Ok(spec) = std::env::var(FAILPOINT_ENV) else {
        return;
    };
    if spec
        .strip_prefix("after-commit:")
        .and_then(|n| n.trim().parse::<u64>().ok())
        == Some(commits)
    {
        eprintln!(
            "ferry: failpoint {spec}: aborting between the target commit and the source acknowledgement"
        );
        std::process::abort();
    }
}

async fn commit<S: Source, A: ChangeApplier>(
    applier: &mut A,
    source: &S,
    task: &str,
    pending: &mut Pending,
    board: &StatusBoard,
    summary: &mut CdcSummary,
) -> Result<()> {
    let durable = applier.commit().await?;
    summary.commits += 1;
    crash_failpoint(summary.commits);
    let changes = pending.changes;
    let caught_up = pending.caught_up;
    let source_time = pending.source_time;
    *pending = Pending {
        at_boundary: true,
        ..Pending::default()
    };
    if let Some(position) = durable {
        if summary.position.as_ref() != Some(&position) {
            // The target holds it: the source may release what precedes it. A
            // failed acknowledgement only delays that release.
            if let Err(e) = source.acknowledge(task, &position).await {
                tracing::warn!(error = %e.full_message(), "could not acknowledge the durable position to the source");
            }
        }
        board.set_position(&position, source.describe_position(&position), source_time);
        summary.position = Some(position);
    }
    board.committed(changes as u64, caught_up);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{Column, DataType};

    fn table(columns: &[(&str, DataType)]) -> TableSchema {
        TableSchema::new(
            TableId::new("s", "t"),
            columns
                .iter()
                .map(|(n, t)| Column {
                    name: (*n).into(),
                    data_type: t.clone(),
                    nullable: true,
                    default: None,
                    source_type: String::new(),
                })
                .collect(),
        )
    }

    #[test]
    fn schema_changes_are_described_by_column() {
        let old = table(&[
            ("a", DataType::Int32),
            ("b", DataType::text()),
            ("c", DataType::Int32),
        ]);
        let new = table(&[
            ("a", DataType::Int64),
            ("b", DataType::text()),
            ("d", DataType::Bool),
        ]);
        assert_eq!(
            describe_change(&old, &new),
            "added column d; dropped column c; changed type of column a"
        );
        assert_eq!(describe_change(&old, &old), "column details changed");
    }
}
