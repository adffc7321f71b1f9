//! The full-load pipeline (DESIGN.md §5): discover, convert, prepare, snapshot,
//! copy partitions with bounded parallelism, build keys and indexes per table.

use crate::config::TaskSettings;
use crate::progress::{Progress, TableProgress};
use ferry_core::filter::wildcard_match;
use ferry_core::{
    BadDataPolicy, BadRow, Batch, Catalog, Error, ErrorKind, Finding, FindingLevel, LoadReport,
    Partition, Position, Result, Row, Sink, Snapshot, Source, TableFilter, TableId, TablePrep,
    TableSchema, TableWriter, batch_channel, finding_code,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Batches buffered between one partition's reader and writer.
pub const CHANNEL_BATCHES: usize = 8;
/// Bytes buffered between one partition's reader and writer.
pub const CHANNEL_BYTES: usize = 64 * 1024 * 1024;

/// What a full load does, from the `[task]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `schema.table` patterns to copy (empty: all).
    pub include: Vec<String>,
    /// `schema.table` patterns to leave out.
    pub exclude: Vec<String>,
    /// What to do to each target table before loading.
    pub table_prep: TablePrep,
    /// Partitions copied at once (at least 1).
    pub parallelism: usize,
    /// Bad-data policy of tables without an override.
    pub bad_data: BadDataPolicy,
    /// Per-table overrides: `schema.table` patterns and their policy.
    pub bad_data_tables: Vec<(String, BadDataPolicy)>,
    /// Where `bad-rows.jsonl` is written, if anywhere.
    pub state_dir: Option<PathBuf>,
    /// The task whose change stream continues from this load (full-load-and-cdc):
    /// the snapshot is then opened with [`Source::begin_capture_snapshot`] and its
    /// position returned in [`Summary::snapshot_position`].
    pub capture_task: Option<String>,
    /// `cdc` without a checkpoint: where the stream starts, in the source's own
    /// notation (`None`: now).
    pub start_position: Option<String>,
    /// Table mapping rules (renames) applied to every converted table.
    pub mapping: Option<Arc<ferry_core::TableMapping>>,
}

impl Plan {
    /// The plan of a task's `[task]` section.
    pub fn from_settings(settings: &TaskSettings) -> Self {
        Plan {
            include: settings.include.clone(),
            exclude: settings.exclude.clone(),
            table_prep: settings.table_prep,
            parallelism: settings.parallelism.max(1),
            bad_data: settings.bad_data,
            bad_data_tables: settings
                .bad_data_tables
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            state_dir: settings.state_dir.clone(),
            capture_task: None,
            start_position: settings.start_position.clone(),
            mapping: None,
        }
    }

    /// The plan of a task file: its `[task]` section and its table mapping (whose
    /// selection rules become the include and exclude patterns).
    pub fn from_config(config: &crate::config::TaskConfig) -> Self {
        let mut plan = Plan::from_settings(&config.task);
        if let Some(mapping) = config.table_mapping() {
            let (include, exclude) = mapping.patterns();
            plan.include = include;
            plan.exclude = exclude;
            plan.mapping = Some(Arc::clone(mapping));
        }
        plan
    }

    /// A plan with the given selection and defaults for everything else (table-prep
    /// `drop-and-create`, parallelism 4, bad-data `fail`, no state directory).
    pub fn new(include: &[String], exclude: &[String]) -> Self {
        Plan {
            include: include.to_vec(),
            exclude: exclude.to_vec(),
            ..Plan::from_settings(&TaskSettings::default())
        }
    }

    /// [`convert_tables`] with this plan's table mapping.
    pub fn convert<K: Sink>(
        &self,
        sink: &K,
        source_engine: &str,
        tables: Vec<TableSchema>,
    ) -> Result<Conversion> {
        convert_tables(sink, source_engine, tables, self.mapping.as_deref())
    }

    /// The bad-data policy of a source table: an exact `[task.bad-data-tables]` key
    /// wins, then the longest matching pattern, then `bad-data`.
    pub fn policy_for(&self, id: &TableId) -> BadDataPolicy {
        let name = id.to_string();
        if let Some((_, p)) = self.bad_data_tables.iter().find(|(k, _)| *k == name) {
            return *p;
        }
        self.bad_data_tables
            .iter()
            .filter(|(pattern, _)| {
                pattern.split_once('.').is_some_and(|(ns, table)| {
                    wildcard_match(ns, &id.namespace) && wildcard_match(table, &id.name)
                })
            })
            .max_by_key(|(pattern, _)| pattern.len())
            .map_or(self.bad_data, |(_, p)| *p)
    }

    /// `[task.bad-data-tables]` keys without wildcards that name none of `tables`.
    fn unknown_policy_tables(&self, tables: &[TableId]) -> Vec<&str> {
        self.bad_data_tables
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !k.contains(['%', '*']))
            .filter(|k| !tables.iter().any(|t| t.to_string() == *k))
            .collect()
    }
}

/// Statistics of one copied table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableStats {
    /// The table at the source.
    pub source: TableId,
    /// The table at the target.
    pub target: TableId,
    /// Partitions it was copied in.
    pub partitions: usize,
    /// Rows written.
    pub rows: u64,
    /// Approximate bytes moved (in-memory size of the batches).
    pub bytes: u64,
    /// From the start of its first partition to the end of its last.
    pub copy_time: Duration,
    /// Time spent building keys and indexes after the copy.
    pub finish_time: Duration,
    /// The bad-data policy applied to the table.
    pub policy: BadDataPolicy,
    /// Rows left out by the `skip-row` policy (not in `rows`).
    pub skipped_rows: u64,
    /// Bad values met (loaded as NULL, clamped, or in a skipped row).
    pub bad_row_count: u64,
    /// The first bad values met (at most [`ferry_core::policy::MAX_BAD_ROWS`]).
    pub bad_rows: Vec<BadRow>,
}

impl TableStats {
    /// Rows per second over the copy time.
    pub fn rows_per_sec(&self) -> f64 {
        rate(self.rows, self.copy_time)
    }
}

/// Rows per second, 0 for an empty interval.
pub fn rate(rows: u64, time: Duration) -> f64 {
    let secs = time.as_secs_f64();
    if secs > 0.0 { rows as f64 / secs } else { 0.0 }
}

/// A column whose type Ferry does not map ([`ferry_core::DataType::Other`]): its
/// values are passed through as the source gives them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PassedThrough {
    /// The table.
    pub table: TableId,
    /// The column.
    pub column: String,
    /// The source's type name.
    pub source_type: String,
}

/// The outcome of a task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Per-table statistics, in the order the tables were started.
    pub tables: Vec<TableStats>,
    /// Schema-conversion findings (other than passed-through columns).
    pub findings: Vec<Finding>,
    /// Columns of unmapped types that were passed through.
    pub passed_through: Vec<PassedThrough>,
    /// Wall time of the whole task.
    pub elapsed: Duration,
    /// The file every recorded bad value was written to (`<state-dir>/bad-rows.jsonl`),
    /// when there were any and a state directory is set.
    pub bad_rows_file: Option<PathBuf>,
    /// Bad values recorded with their row key (in the file, if any); the rest of
    /// [`Summary::total_bad_rows`] was only counted (at most
    /// [`ferry_core::policy::MAX_BAD_ROWS`] are kept per partition).
    pub bad_rows_recorded: u64,
    /// The source position the loaded snapshot corresponds to, where the source
    /// knows it (always set for a [`Plan::capture_task`] load).
    pub snapshot_position: Option<Position>,
    /// The change stream's outcome (cdc and full-load-and-cdc).
    pub cdc: Option<crate::cdc::CdcSummary>,
}

impl Summary {
    /// Rows written over all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Bytes moved over all tables.
    pub fn total_bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }

    /// Bad values met over all tables.
    pub fn total_bad_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.bad_row_count).sum()
    }
}

/// Appends bad values to `<state-dir>/bad-rows.jsonl`, one JSON object per line,
/// as partitions complete. The file is replaced at the start of each run and only
/// created when there is something to write.
struct BadRowLog {
    path: Option<PathBuf>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    recorded: u64,
}

impl BadRowLog {
    /// The log for `state_dir`; removes the previous run's file.
    fn new(state_dir: Option<&Path>) -> Result<Self> {
        let path = state_dir.map(|d| d.join("bad-rows.jsonl"));
        if let Some(path) = &path {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(path, "cannot remove the previous", e)),
            }
        }
        Ok(BadRowLog {
            path,
            file: None,
            recorded: 0,
        })
    }

    fn write(&mut self, rows: &[BadRow]) -> Result<()> {
        self.recorded += rows.len() as u64;
        let Some(path) = &self.path else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| io_error(dir, "cannot create the state directory", e))?;
            }
            let file =
                std::fs::File::create(path).map_err(|e| io_error(path, "cannot create", e))?;
            self.file = Some(std::io::BufWriter::new(file));
        }
        if let Some(file) = &mut self.file {
            for row in rows {
                let line = serde_json::to_string(row)
                    .map_err(|e| Error::internal(format!("cannot serialise a bad row: {e}")))?;
                writeln!(file, "{line}").map_err(|e| io_error(path, "cannot write", e))?;
            }
        }
        Ok(())
    }

    /// Flushes; returns the file's path if anything was written.
    fn finish(mut self) -> Result<Option<PathBuf>> {
        match (self.file.take(), self.path) {
            (Some(mut file), Some(path)) => {
                file.flush()
                    .map_err(|e| io_error(&path, "cannot write", e))?;
                Ok(Some(path))
            }
            _ => Ok(None),
        }
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::config(format!("{what} {}: {e}", path.display()))
}

/// One selected table on its way through the pipeline.
struct TableRun {
    source: Arc<TableSchema>,
    target: Arc<TableSchema>,
    partitions: usize,
    remaining: usize,
    rows: u64,
    bytes: u64,
    started: Option<Instant>,
    copy_time: Duration,
    finish_time: Duration,
    progress: Option<TableProgress>,
    policy: BadDataPolicy,
    /// Bad data met so far (its `rows` is unused: see `rows`).
    bad: LoadReport,
}

/// What a pipeline task reports when it completes.
enum Done {
    Partition {
        table: usize,
        rows: u64,
        bytes: u64,
        bad: LoadReport,
    },
    Table {
        table: usize,
        time: Duration,
    },
}

fn table_label(id: &TableId, partition: Option<&Partition>) -> String {
    match partition {
        Some(p) if p.count > 1 => format!("table {id} (partition {} of {})", p.index + 1, p.count),
        _ => format!("table {id}"),
    }
}

/// Discovers the tables `plan` selects: fails when an `include` entry without
/// wildcards matches no table, when nothing is selected, or when a
/// `[task.bad-data-tables]` key without wildcards names no selected table.
pub async fn select_tables<S: Source>(source: &S, plan: &Plan) -> Result<Vec<TableSchema>> {
    let filter = TableFilter::new(&plan.include, &plan.exclude)?;
    let catalog = source
        .discover(&filter)
        .await
        .map_err(|e| e.context("discovering source tables"))?;
    let selected: Vec<TableSchema> = catalog
        .tables
        .into_iter()
        .filter(|t| filter.matches(&t.id))
        .collect();
    let found: Vec<TableId> = selected.iter().map(|t| t.id.clone()).collect();
    let missing = filter.missing_explicit(&found);
    match missing.as_slice() {
        [] => {}
        [one] => {
            return Err(Error::config(format!(
                "table {one} named in include does not exist in the source"
            )));
        }
        many => {
            return Err(Error::config(format!(
                "tables {} named in include do not exist in the source",
                many.join(", ")
            )));
        }
    }
    if selected.is_empty() {
        return Err(Error::config(format!(
            "no table selected: the source has no table matching include [{}] and not exclude [{}]",
            plan.include.join(", "),
            plan.exclude.join(", ")
        )));
    }
    let unknown = plan.unknown_policy_tables(&found);
    if !unknown.is_empty() {
        return Err(Error::config(format!(
            "task.bad-data-tables names {}, which {} not among the selected tables; \
             fix the name or remove the key",
            unknown.join(", "),
            if unknown.len() == 1 { "is" } else { "are" }
        )));
    }
    Ok(selected)
}

/// The selected tables converted for the target.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// (source table, target table), in the order given; foreign keys to tables
    /// outside the selection are removed from the target tables.
    pub tables: Vec<(TableSchema, TableSchema)>,
    /// Conversion findings of every level (Error ones included: the caller decides),
    /// except those about passed-through columns, plus a warning per foreign key
    /// removed.
    pub findings: Vec<Finding>,
    /// Columns of unmapped types that are passed through.
    pub passed_through: Vec<PassedThrough>,
}

/// Converts each table with [`Sink::convert_schema`] (an error names the table).
pub fn convert_tables<K: Sink>(
    sink: &K,
    source_engine: &str,
    tables: Vec<TableSchema>,
    mapping: Option<&ferry_core::TableMapping>,
) -> Result<Conversion> {
    let mut out = Conversion::default();
    for table in tables {
        let (mut target, findings) = sink
            .convert_schema(source_engine, &table)
            .map_err(|e| e.context(table_label(&table.id, None)))?;
        if let Some(mapping) = mapping {
            mapping.rename(&table.id, &mut target)?;
        }
        let other: Vec<&str> = table
            .columns
            .iter()
            .filter(|c| c.data_type.is_other())
            .map(|c| c.name.as_str())
            .collect();
        for column in table.columns.iter().filter(|c| c.data_type.is_other()) {
            out.passed_through.push(PassedThrough {
                table: table.id.clone(),
                column: column.name.clone(),
                source_type: if column.source_type.is_empty() {
                    column.data_type.to_string()
                } else {
                    column.source_type.clone()
                },
            });
        }
        for finding in findings {
            let about_other = finding.level != FindingLevel::Error
                && finding
                    .column
                    .as_deref()
                    .is_some_and(|c| other.contains(&c));
            if !about_other {
                out.findings.push(finding);
            }
        }
        out.tables.push((table, target));
    }
    out.findings
        .extend(keep_foreign_keys_within(&mut out.tables));
    Ok(out)
}

/// Copies the tables `plan` selects from `source` to `sink` as they are now.
///
/// Tables are converted and prepared first, then copied from one snapshot, largest
/// first, `plan.parallelism` partitions at a time; each table's keys and indexes are
/// built as soon as its last partition is in, possibly while other tables copy. The
/// first error stops the task (the other copies are cancelled) and names the table
/// and partition.
pub async fn full_load<S, K>(
    source: Arc<S>,
    sink: Arc<K>,
    plan: &Plan,
    progress: &Progress,
) -> Result<Summary>
where
    S: Source + 'static,
    K: Sink + 'static,
{
    let started = Instant::now();
    let mut selected = select_tables(source.as_ref(), plan).await?;
    // Largest first, so the long copies start early.
    selected.sort_by(|a, b| {
        b.estimated_bytes
            .unwrap_or(0)
            .cmp(&a.estimated_bytes.unwrap_or(0))
            .then_with(|| a.id.cmp(&b.id))
    });

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
    let mut summary = Summary {
        findings: conversion.findings,
        passed_through: conversion.passed_through,
        ..Summary::default()
    };
    let converted = conversion.tables;
    let runs_of = |(table, target): (TableSchema, TableSchema)| TableRun {
        policy: plan.policy_for(&table.id),
        source: Arc::new(table),
        target: Arc::new(target),
        partitions: 0,
        remaining: 0,
        rows: 0,
        bytes: 0,
        started: None,
        copy_time: Duration::ZERO,
        finish_time: Duration::ZERO,
        progress: None,
        bad: LoadReport::default(),
    };
    let mut runs: Vec<TableRun> = converted.into_iter().map(runs_of).collect();
    let mut bad_log = BadRowLog::new(plan.state_dir.as_deref())?;

    for run in &runs {
        tracing::debug!(table = %run.target.id, prep = ?plan.table_prep, "preparing target table");
        sink.prepare_table(&run.target, plan.table_prep)
            .await
            .map_err(|e| e.context(format!("preparing target table {}", run.target.id)))?;
    }

    let snapshot = match &plan.capture_task {
        Some(task) => {
            let catalog = Catalog {
                tables: runs.iter().map(|r| TableSchema::clone(&r.source)).collect(),
            };
            source
                .begin_capture_snapshot(task, &catalog)
                .await
                .map_err(|e| e.context("beginning the source snapshot for change capture"))?
        }
        None => source
            .begin_snapshot()
            .await
            .map_err(|e| e.context("beginning the source snapshot"))?,
    };
    summary.snapshot_position = snapshot.position.clone();
    let snapshot = Arc::new(snapshot);
    let mut snapshot_open = true;
    let result = copy_all(
        &source,
        &sink,
        &snapshot,
        &mut snapshot_open,
        &mut runs,
        plan,
        progress,
        &mut bad_log,
    )
    .await;
    if snapshot_open {
        let ended = source.end_snapshot(Snapshot::clone(&snapshot)).await;
        match (&result, ended) {
            (Ok(()), Err(e)) => return Err(e.context("ending the source snapshot")),
            (Err(_), Err(e)) => {
                tracing::warn!(error = %e, "could not end the source snapshot after a failure")
            }
            (_, Ok(())) => {}
        }
    }
    summary.bad_rows_recorded = bad_log.recorded;
    let bad_rows_file = bad_log.finish();
    result?;
    summary.bad_rows_file = bad_rows_file?;

    // Foreign keys reference other tables: only now is every table loaded.
    for run in runs.iter().filter(|r| !r.target.foreign_keys.is_empty()) {
        sink.add_foreign_keys(&run.target, plan.table_prep)
            .await
            .map_err(|e| {
                e.context(format!(
                    "target table {}: adding foreign keys",
                    run.target.id
                ))
            })?;
    }

    summary.tables = runs
        .into_iter()
        .map(|r| TableStats {
            source: r.source.id.clone(),
            target: r.target.id.clone(),
            partitions: r.partitions,
            rows: r.rows,
            bytes: r.bytes,
            copy_time: r.copy_time,
            finish_time: r.finish_time,
            policy: r.policy,
            skipped_rows: r.bad.skipped_rows,
            bad_row_count: r.bad.bad_row_count,
            bad_rows: r.bad.bad_rows,
        })
        .collect();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Drops from each converted table the foreign keys whose referenced table is not
/// part of the task (the target would not have it), with a warning for each.
pub fn keep_foreign_keys_within(tables: &mut [(TableSchema, TableSchema)]) -> Vec<Finding> {
    let ids: HashSet<TableId> = tables.iter().map(|(_, t)| t.id.clone()).collect();
    let mut findings = Vec::new();
    for (source, target) in tables.iter_mut() {
        target.foreign_keys.retain(|fk| {
            let keep = ids.contains(&fk.referenced_table);
            if !keep {
                findings.push(
                    Finding::new(
                        FindingLevel::Warning,
                        finding_code::FOREIGN_KEY,
                        format!(
                            "foreign key {} references {}, which is not selected; \
                             it is not created (include the referenced table to keep it)",
                            fk.name, fk.referenced_table
                        ),
                    )
                    .table(&source.id)
                    .object(format!("foreign key {}", fk.name)),
                );
            }
            keep
        });
    }
    findings
}

/// Splits every table, runs the partition queue and the per-table finish steps; ends
/// the snapshot as soon as the last partition is read.
#[allow(clippy::too_many_arguments)]
async fn copy_all<S, K>(
    source: &Arc<S>,
    sink: &Arc<K>,
    snapshot: &Arc<Snapshot>,
    snapshot_open: &mut bool,
    runs: &mut [TableRun],
    plan: &Plan,
    progress: &Progress,
    bad_log: &mut BadRowLog,
) -> Result<()>
where
    S: Source + 'static,
    K: Sink + 'static,
{
    let mut queue: VecDeque<(usize, Partition)> = VecDeque::new();
    let mut tasks: JoinSet<Result<Done>> = JoinSet::new();
    let mut labels: HashMap<tokio::task::Id, String> = HashMap::new();
    let prep = plan.table_prep;

    let spawn_finish = |tasks: &mut JoinSet<Result<Done>>,
                        labels: &mut HashMap<tokio::task::Id, String>,
                        index: usize,
                        run: &TableRun| {
        let sink = Arc::clone(sink);
        let target = Arc::clone(&run.target);
        let label = format!("building keys and indexes of target table {}", target.id);
        let handle = tasks.spawn(async move {
            let t0 = Instant::now();
            sink.finish_table(&target, prep).await.map_err(|e| {
                e.context(format!(
                    "target table {}: building keys and indexes",
                    target.id
                ))
            })?;
            Ok(Done::Table {
                table: index,
                time: t0.elapsed(),
            })
        });
        labels.insert(handle.id(), label);
    };

    for (index, run) in runs.iter_mut().enumerate() {
        let parts = source
            .partitions(snapshot, &run.source, plan.parallelism)
            .await
            .map_err(|e| {
                e.context(format!(
                    "{}: splitting into partitions",
                    table_label(&run.source.id, None)
                ))
            })?;
        run.partitions = parts.len();
        run.remaining = parts.len();
        if parts.is_empty() {
            spawn_finish(&mut tasks, &mut labels, index, run);
        }
        queue.extend(parts.into_iter().map(|p| (index, p)));
    }

    let outcome = async {
        let mut copying = 0usize;
        loop {
            while copying < plan.parallelism {
                let Some((index, partition)) = queue.pop_front() else {
                    break;
                };
                let run = &mut runs[index];
                if run.started.is_none() {
                    run.started = Some(Instant::now());
                    tracing::info!(
                        table = %run.source.id,
                        partitions = run.partitions,
                        estimated_rows = run.source.estimated_rows,
                        "copying"
                    );
                    run.progress = Some(progress.table(&run.source.id, run.source.estimated_rows));
                }
                let label = table_label(&run.source.id, Some(&partition));
                let keep = plan
                    .mapping
                    .as_ref()
                    .and_then(|m| m.kept_columns(&run.source))
                    .map(Arc::new);
                let worker = copy_partition(
                    Arc::clone(source),
                    Arc::clone(sink),
                    Arc::clone(snapshot),
                    Arc::clone(&run.source),
                    Arc::clone(&run.target),
                    partition,
                    run.policy,
                    run.progress.clone(),
                    keep,
                    label.clone(),
                );
                let handle = tasks.spawn(async move {
                    let (rows, bytes, bad) = worker.await?;
                    Ok(Done::Partition {
                        table: index,
                        rows,
                        bytes,
                        bad,
                    })
                });
                labels.insert(handle.id(), label);
                copying += 1;
            }
            if copying == 0 && queue.is_empty() && *snapshot_open {
                *snapshot_open = false;
                source
                    .end_snapshot(Snapshot::clone(snapshot))
                    .await
                    .map_err(|e| e.context("ending the source snapshot"))?;
            }
            let Some(joined) = tasks.join_next_with_id().await else {
                return Ok(());
            };
            let done = match joined {
                Ok((id, result)) => {
                    labels.remove(&id);
                    result?
                }
                Err(e) => {
                    let label = labels
                        .remove(&e.id())
                        .unwrap_or_else(|| "a pipeline task".into());
                    return Err(Error::internal(format!("{label}: worker failed: {e}")));
                }
            };
            match done {
                Done::Partition {
                    table,
                    rows,
                    bytes,
                    bad,
                } => {
                    copying -= 1;
                    let run = &mut runs[table];
                    run.rows += rows;
                    run.bytes += bytes;
                    run.remaining -= 1;
                    if bad.has_bad_data() {
                        tracing::warn!(
                            table = %run.source.id,
                            policy = %run.policy,
                            bad_values = bad.bad_row_count,
                            skipped_rows = bad.skipped_rows,
                            first = %bad.bad_rows.first().map(ToString::to_string).unwrap_or_default(),
                            "bad data handled by policy"
                        );
                    }
                    bad_log.write(&bad.bad_rows)?;
                    run.bad.merge(bad);
                    if run.remaining == 0 {
                        run.copy_time = run.started.map(|s| s.elapsed()).unwrap_or_default();
                        if let Some(p) = run.progress.take() {
                            p.finish();
                        }
                        tracing::info!(
                            table = %run.source.id,
                            rows = run.rows,
                            seconds = run.copy_time.as_secs_f64(),
                            rows_per_sec = rate(run.rows, run.copy_time).round() as u64,
                            "copied"
                        );
                        spawn_finish(&mut tasks, &mut labels, table, run);
                    }
                }
                Done::Table { table, time } => {
                    let run = &mut runs[table];
                    run.finish_time = time;
                    tracing::debug!(table = %run.target.id, seconds = time.as_secs_f64(), "keys and indexes built");
                }
            }
        }
    }
    .await;

    if outcome.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        for run in runs.iter_mut() {
            if let Some(p) = run.progress.take() {
                p.abandon();
            }
        }
    }
    outcome
}

/// Keeps only the `keep` columns of every row of `batch` (a table mapping removed
/// the others); the batch then follows `schema`.
pub fn project(batch: &mut Batch, keep: &[usize], schema: &Arc<TableSchema>) {
    let pick = |row: Row| -> Row {
        let mut row: Vec<Option<ferry_core::Value>> = row.into_iter().map(Some).collect();
        keep.iter()
            .map(|&i| {
                row.get_mut(i)
                    .and_then(Option::take)
                    .unwrap_or(ferry_core::Value::Null)
            })
            .collect()
    };
    for event in &mut batch.events {
        event.before = event.before.take().map(pick);
        event.after = event.after.take().map(pick);
    }
    batch.schema = Arc::clone(schema);
}

/// Copies one partition: the source reads into a bounded channel while the sink's
/// writer drains it; the writer is finished only after the read succeeded.
/// Returns (rows written, bytes, bad data met by the source and the sink).
#[allow(clippy::too_many_arguments)]
async fn copy_partition<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    snapshot: Arc<Snapshot>,
    table: Arc<TableSchema>,
    target: Arc<TableSchema>,
    partition: Partition,
    policy: BadDataPolicy,
    progress: Option<TableProgress>,
    keep: Option<Arc<Vec<usize>>>,
    label: String,
) -> Result<(u64, u64, LoadReport)> {
    let (tx, mut rx) = batch_channel(CHANNEL_BATCHES, CHANNEL_BYTES);
    let read = async {
        source
            .read_partition(&snapshot, table, partition, policy, tx)
            .await
            .map_err(|e| e.context(format!("{label}: reading")))
    };
    let write = async {
        let mut writer = sink
            .open_writer(Arc::clone(&target), policy)
            .await
            .map_err(|e| e.context(format!("{label}: opening the target writer")))?;
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(mut batch) = rx.recv().await {
            if let Some(keep) = &keep {
                project(&mut batch, keep, &target);
            }
            let (n, b) = (batch.len() as u64, batch.bytes as u64);
            writer
                .write(batch)
                .await
                .map_err(|e| e.context(format!("{label}: writing")))?;
            rows += n;
            bytes += b;
            if let Some(p) = &progress {
                p.add(n, b);
            }
        }
        Ok::<_, Error>((writer, rows, bytes))
    };
    let (read, (writer, rows, bytes)) = tokio::try_join!(read, write)?;
    let written = writer
        .finish()
        .await
        .map_err(|e| e.context(format!("{label}: completing the load")))?;
    if read.rows != rows {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "{label}: the source reported {} rows but sent {rows}",
                read.rows
            ),
        ));
    }
    if written.rows + written.skipped_rows != rows {
        let skipped = if written.skipped_rows > 0 {
            format!(" (and skipped {})", written.skipped_rows)
        } else {
            String::new()
        };
        return Err(Error::new(
            ErrorKind::Target,
            format!(
                "{label}: the target wrote {} of {rows} rows{skipped}",
                written.rows
            ),
        ));
    }
    let rows_written = written.rows;
    let mut bad = read;
    bad.rows = 0;
    bad.merge(written);
    bad.rows = rows_written;
    Ok((rows_written, bytes, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{
        Batch, BatchSender, Catalog, ChangeEvent, Column, DataType, PartitionRange, Value,
    };
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// In-memory source: each table has `rows` rows of one int64 column, split into
    /// `parts` partitions; optionally fails reading one table.
    struct MemSource {
        tables: Vec<(TableSchema, u64)>,
        parts: usize,
        fail_table: Option<&'static str>,
        stall_table: Option<&'static str>,
        snapshots: AtomicUsize,
        ended: AtomicUsize,
        batch_rows: u64,
    }

    fn schema(ns: &str, name: &str, bytes: u64) -> TableSchema {
        let mut t = TableSchema::new(
            TableId::new(ns, name),
            vec![Column {
                name: "id".into(),
                data_type: DataType::Int64,
                nullable: false,
                default: None,
                source_type: "bigint".into(),
            }],
        );
        t.estimated_bytes = Some(bytes);
        t.estimated_rows = Some(bytes / 10);
        t
    }

    impl MemSource {
        fn new(tables: Vec<(TableSchema, u64)>, parts: usize) -> Self {
            MemSource {
                tables,
                parts,
                fail_table: None,
                stall_table: None,
                snapshots: AtomicUsize::new(0),
                ended: AtomicUsize::new(0),
                batch_rows: 7,
            }
        }

        fn rows_of(&self, id: &TableId) -> u64 {
            self.tables
                .iter()
                .find(|(t, _)| &t.id == id)
                .map_or(0, |(_, n)| *n)
        }
    }

    impl Source for MemSource {
        fn engine(&self) -> &'static str {
            "memory"
        }

        async fn discover(&self, filter: &TableFilter) -> Result<Catalog> {
            Ok(Catalog {
                tables: self
                    .tables
                    .iter()
                    .filter(|(t, _)| filter.matches(&t.id))
                    .map(|(t, _)| t.clone())
                    .collect(),
            })
        }

        async fn begin_snapshot(&self) -> Result<Snapshot> {
            self.snapshots.fetch_add(1, Ordering::SeqCst);
            Ok(Snapshot {
                id: "snap".into(),
                position: None,
            })
        }

        async fn partitions(
            &self,
            _snapshot: &Snapshot,
            table: &TableSchema,
            max: usize,
        ) -> Result<Vec<Partition>> {
            let rows = self.rows_of(&table.id);
            if rows == 0 {
                return Ok(vec![]);
            }
            let count = self.parts.min(max).max(1);
            Ok((0..count)
                .map(|index| Partition {
                    table: table.id.clone(),
                    index,
                    count,
                    range: PartitionRange::Pages {
                        start: index as u64,
                        end: Some(index as u64 + 1),
                    },
                })
                .collect())
        }

        async fn read_partition(
            &self,
            _snapshot: &Snapshot,
            table: Arc<TableSchema>,
            partition: Partition,
            _policy: BadDataPolicy,
            out: BatchSender,
        ) -> Result<LoadReport> {
            if self.fail_table == Some(table.id.name.as_str()) && partition.index == 1 {
                return Err(Error::new(ErrorKind::Source, "disk on fire"));
            }
            if self.stall_table == Some(table.id.name.as_str()) {
                std::future::pending::<()>().await;
            }
            let total = self.rows_of(&table.id);
            let count = partition.count as u64;
            let index = partition.index as u64;
            let (lo, hi) = (total * index / count, total * (index + 1) / count);
            let mut batch = Batch::new(Arc::clone(&table));
            for i in lo..hi {
                batch.push(ChangeEvent::insert(vec![Value::Int64(i as i64)]));
                if batch.len() as u64 >= self.batch_rows {
                    out.send(std::mem::replace(
                        &mut batch,
                        Batch::new(Arc::clone(&table)),
                    ))
                    .await?;
                }
            }
            if !batch.is_empty() {
                out.send(batch).await?;
            }
            Ok(LoadReport::rows(hi - lo))
        }

        async fn end_snapshot(&self, _snapshot: Snapshot) -> Result<()> {
            self.ended.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// In-memory sink recording what it was asked to do.
    #[derive(Default)]
    struct MemSink {
        log: Arc<Mutex<Vec<String>>>,
        rows: Arc<Mutex<HashMap<TableId, Vec<i64>>>>,
        findings: Vec<Finding>,
        fail_prepare: bool,
        short_count: bool,
    }

    struct MemWriter {
        table: TableId,
        rows: Vec<i64>,
        into: Arc<Mutex<HashMap<TableId, Vec<i64>>>>,
        short_count: bool,
    }

    impl MemSink {
        fn log(&self, line: String) {
            self.log.lock().expect("lock").push(line);
        }
    }

    impl Sink for MemSink {
        type Writer = MemWriter;
        type Applier = ferry_core::NoApplier;

        fn engine(&self) -> &'static str {
            "memory"
        }

        fn convert_schema(
            &self,
            _source_engine: &str,
            schema: &TableSchema,
        ) -> Result<(TableSchema, Vec<Finding>)> {
            let mut t = schema.clone();
            t.id.namespace = format!("tgt_{}", t.id.namespace);
            let findings = self
                .findings
                .iter()
                .filter(|f| f.table.as_ref() == Some(&schema.id))
                .cloned()
                .collect();
            Ok((t, findings))
        }

        async fn prepare_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
            if self.fail_prepare {
                return Err(Error::new(ErrorKind::Target, "permission denied"));
            }
            self.log(format!("prepare {} {prep:?}", schema.id));
            Ok(())
        }

        async fn open_writer(
            &self,
            schema: Arc<TableSchema>,
            _policy: BadDataPolicy,
        ) -> Result<MemWriter> {
            Ok(MemWriter {
                table: schema.id.clone(),
                rows: vec![],
                into: Arc::clone(&self.rows),
                short_count: self.short_count,
            })
        }

        async fn finish_table(&self, schema: &TableSchema, _prep: TablePrep) -> Result<()> {
            let n = self
                .rows
                .lock()
                .expect("lock")
                .get(&schema.id)
                .map_or(0, Vec::len);
            self.log(format!("finish {} {n}", schema.id));
            Ok(())
        }
    }

    impl TableWriter for MemWriter {
        async fn write(&mut self, batch: Batch) -> Result<()> {
            for e in batch.events {
                match e.after.as_deref() {
                    Some([Value::Int64(v)]) => self.rows.push(*v),
                    _ => return Err(Error::conversion("unexpected row")),
                }
            }
            Ok(())
        }

        async fn finish(self) -> Result<LoadReport> {
            let n = self.rows.len() as u64;
            self.into
                .lock()
                .expect("lock")
                .entry(self.table)
                .or_default()
                .extend(self.rows);
            Ok(LoadReport::rows(if self.short_count {
                n.saturating_sub(1)
            } else {
                n
            }))
        }
    }

    fn plan(include: &[&str], exclude: &[&str], parallelism: usize) -> Plan {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Plan {
            table_prep: TablePrep::Truncate,
            parallelism,
            ..Plan::new(&own(include), &own(exclude))
        }
    }

    fn three_tables() -> Vec<(TableSchema, u64)> {
        vec![
            (schema("shop", "small", 10), 5),
            (schema("shop", "big", 1_000_000), 1000),
            (schema("shop", "empty", 0), 0),
            (schema("other", "x", 50), 3),
        ]
    }

    #[tokio::test]
    async fn copies_every_row_of_every_selected_table() {
        let source = Arc::new(MemSource::new(three_tables(), 3));
        let sink = Arc::new(MemSink::default());
        let summary = full_load(
            Arc::clone(&source),
            Arc::clone(&sink),
            &plan(&["shop.*"], &[], 2),
            &Progress::hidden(),
        )
        .await
        .expect("full load");

        let names: Vec<String> = summary
            .tables
            .iter()
            .map(|t| t.source.to_string())
            .collect();
        assert_eq!(
            names,
            vec!["shop.big", "shop.small", "shop.empty"],
            "largest first"
        );
        assert_eq!(summary.total_rows(), 1005);
        let big = &summary.tables[0];
        assert_eq!((big.rows, big.partitions), (1000, 2));
        assert_eq!(big.target, TableId::new("tgt_shop", "big"));
        assert!(big.bytes > 0);

        let rows = sink.rows.lock().expect("lock");
        let mut got = rows
            .get(&TableId::new("tgt_shop", "big"))
            .cloned()
            .unwrap_or_default();
        got.sort_unstable();
        assert_eq!(got, (0..1000).collect::<Vec<i64>>());
        assert!(!rows.contains_key(&TableId::new("tgt_other", "x")));
        drop(rows);

        let log = sink.log.lock().expect("lock").clone();
        assert!(
            log.contains(&"prepare tgt_shop.big Truncate".to_string()),
            "{log:?}"
        );
        // keys/indexes are built after all partitions are in
        assert!(
            log.contains(&"finish tgt_shop.big 1000".to_string()),
            "{log:?}"
        );
        assert!(
            log.contains(&"finish tgt_shop.small 5".to_string()),
            "{log:?}"
        );
        assert!(
            log.contains(&"finish tgt_shop.empty 0".to_string()),
            "{log:?}"
        );
        assert_eq!(source.snapshots.load(Ordering::SeqCst), 1);
        assert_eq!(source.ended.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn missing_explicit_table_is_an_error() {
        let source = Arc::new(MemSource::new(three_tables(), 1));
        let e = full_load(
            source,
            Arc::new(MemSink::default()),
            &plan(&["shop.small", "shop.nope"], &[], 1),
            &Progress::hidden(),
        )
        .await
        .expect_err("missing table");
        assert_eq!(
            e.message(),
            "table shop.nope named in include does not exist in the source"
        );
    }

    #[tokio::test]
    async fn nothing_selected_is_an_error() {
        let source = Arc::new(MemSource::new(three_tables(), 1));
        let e = full_load(
            source,
            Arc::new(MemSink::default()),
            &plan(&["nope_%.*"], &[], 1),
            &Progress::hidden(),
        )
        .await
        .expect_err("nothing selected");
        assert!(e.message().starts_with("no table selected"), "{e}");
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[tokio::test]
    async fn first_error_stops_the_task_and_names_table_and_partition() {
        let mut src = MemSource::new(three_tables(), 3);
        src.fail_table = Some("big");
        src.stall_table = Some("small");
        let source = Arc::new(src);
        let sink = Arc::new(MemSink::default());
        let e = tokio::time::timeout(
            Duration::from_secs(10),
            full_load(
                Arc::clone(&source),
                Arc::clone(&sink),
                &plan(&["shop.*"], &[], 4),
                &Progress::hidden(),
            ),
        )
        .await
        .expect("stalled copies are cancelled")
        .expect_err("read fails");
        assert_eq!(e.kind(), ErrorKind::Source);
        assert!(
            e.message()
                .starts_with("table shop.big (partition 2 of 3): reading: disk on fire"),
            "{e}"
        );
        assert_eq!(source.ended.load(Ordering::SeqCst), 1, "snapshot released");
        let log = sink.log.lock().expect("lock").clone();
        assert!(
            !log.iter().any(|l| l.starts_with("finish tgt_shop.big")),
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn prepare_failure_names_the_table() {
        let source = Arc::new(MemSource::new(three_tables(), 1));
        let sink = Arc::new(MemSink {
            fail_prepare: true,
            ..MemSink::default()
        });
        let e = full_load(
            source,
            sink,
            &plan(&["other.x"], &[], 1),
            &Progress::hidden(),
        )
        .await
        .expect_err("prepare fails");
        assert_eq!(
            e.to_string(),
            "target error: preparing target table tgt_other.x: permission denied"
        );
    }

    #[tokio::test]
    async fn row_count_mismatch_is_caught() {
        let source = Arc::new(MemSource::new(three_tables(), 1));
        let sink = Arc::new(MemSink {
            short_count: true,
            ..MemSink::default()
        });
        let e = full_load(
            source,
            sink,
            &plan(&["other.x"], &[], 1),
            &Progress::hidden(),
        )
        .await
        .expect_err("count mismatch");
        assert!(e.message().contains("wrote 2 of 3 rows"), "{e}");
    }

    #[tokio::test]
    async fn findings_and_passed_through_columns_are_reported() {
        let mut odd = schema("shop", "odd", 10);
        odd.columns.push(Column {
            name: "path".into(),
            data_type: DataType::Other {
                engine: "postgres".into(),
                name: "ltree".into(),
            },
            nullable: true,
            default: None,
            source_type: "ltree".into(),
        });
        let source = Arc::new(MemSource::new(vec![(odd.clone(), 4)], 1));
        let finding = |column: &str, level| {
            Finding::new(level, ferry_core::finding_code::TYPE_MAPPING, "m")
                .table(&odd.id)
                .column(column)
        };
        let sink = Arc::new(MemSink {
            findings: vec![
                finding("path", FindingLevel::Warning),
                finding("id", FindingLevel::Info),
            ],
            ..MemSink::default()
        });
        let summary = full_load(source, sink, &plan(&[], &[], 4), &Progress::hidden())
            .await
            .expect("loads");
        assert_eq!(
            summary.passed_through,
            vec![PassedThrough {
                table: odd.id.clone(),
                column: "path".into(),
                source_type: "ltree".into()
            }]
        );
        assert_eq!(summary.findings.len(), 1);
        assert_eq!(summary.findings[0].column.as_deref(), Some("id"));

        let source = Arc::new(MemSource::new(vec![(odd.clone(), 4)], 1));
        let sink = Arc::new(MemSink {
            findings: vec![finding("id", FindingLevel::Error)],
            ..MemSink::default()
        });
        let e = full_load(source, sink, &plan(&[], &[], 4), &Progress::hidden())
            .await
            .expect_err("error finding stops the task");
        assert_eq!(e.kind(), ErrorKind::Schema);
    }

    /// A `MemorySink` whose target narrows `note` to `varchar(3)`.
    struct NarrowingSink(ferry_core::test_utils::MemorySink);

    impl Sink for NarrowingSink {
        type Writer = ferry_core::test_utils::MemoryWriter;
        type Applier = ferry_core::NoApplier;

        fn engine(&self) -> &'static str {
            "memory"
        }

        fn convert_schema(
            &self,
            _source_engine: &str,
            schema: &TableSchema,
        ) -> Result<(TableSchema, Vec<Finding>)> {
            let mut t = schema.clone();
            for c in &mut t.columns {
                if c.name == "note" {
                    c.data_type = DataType::Text {
                        max_len: Some(3),
                        fixed: false,
                    };
                }
            }
            Ok((t, vec![]))
        }

        async fn prepare_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
            self.0.prepare_table(schema, prep).await
        }

        async fn open_writer(
            &self,
            schema: Arc<TableSchema>,
            policy: BadDataPolicy,
        ) -> Result<Self::Writer> {
            self.0.open_writer(schema, policy).await
        }

        async fn finish_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
            self.0.finish_table(schema, prep).await
        }
    }

    fn noted(name: &str) -> (TableSchema, Vec<ferry_core::Row>) {
        let mut t = TableSchema::new(
            TableId::new("shop", name),
            vec![
                Column {
                    name: "id".into(),
                    data_type: DataType::Int64,
                    nullable: false,
                    default: None,
                    source_type: String::new(),
                },
                Column {
                    name: "note".into(),
                    data_type: DataType::text(),
                    nullable: true,
                    default: None,
                    source_type: String::new(),
                },
            ],
        );
        t.primary_key = vec!["id".into()];
        let rows = (1..=20)
            .map(|i| {
                let note = if i % 5 == 0 { "too long" } else { "ok" };
                vec![Value::Int64(i), Value::Text(note.into())]
            })
            .collect();
        (t, rows)
    }

    #[tokio::test]
    async fn bad_data_follows_per_table_policies_and_is_reported() {
        let source = Arc::new(
            ferry_core::test_utils::MemorySource::from_tables([noted("legacy"), noted("orders")])
                .expect("tables")
                .with_batch_rows(3),
        );
        let sink = Arc::new(NarrowingSink(ferry_core::test_utils::MemorySink::new()));
        let dir = std::env::temp_dir().join(format!("ferry-bad-rows-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut plan = plan(&["shop.*"], &[], 2);
        plan.bad_data = BadDataPolicy::Clamp;
        plan.bad_data_tables = vec![
            ("shop.leg%".into(), BadDataPolicy::Null),
            ("shop.legacy".into(), BadDataPolicy::SkipRow),
        ];
        plan.state_dir = Some(dir.clone());
        let summary = full_load(source, Arc::clone(&sink), &plan, &Progress::hidden())
            .await
            .expect("loads");
        let stats = |name: &str| {
            summary
                .tables
                .iter()
                .find(|t| t.source.name == name)
                .expect("table")
        };
        let legacy = stats("legacy");
        assert_eq!(legacy.policy, BadDataPolicy::SkipRow, "exact key wins");
        assert_eq!((legacy.rows, legacy.skipped_rows), (16, 4));
        let orders = stats("orders");
        assert_eq!(orders.policy, BadDataPolicy::Clamp);
        assert_eq!((orders.rows, orders.skipped_rows), (20, 0));
        assert_eq!(orders.bad_row_count, 4);
        let mut keys: Vec<&str> = legacy.bad_rows.iter().map(|b| b.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["(id=10)", "(id=15)", "(id=20)", "(id=5)"]);
        let stored = sink
            .0
            .rows(&TableId::new("shop", "orders"))
            .expect("orders");
        assert!(stored.contains(&vec![Value::Int64(5), Value::Text("too".into())]));
        assert_eq!(
            sink.0
                .rows(&TableId::new("shop", "legacy"))
                .map(|r| r.len()),
            Some(16)
        );

        let file = dir.join("bad-rows.jsonl");
        assert_eq!(summary.bad_rows_file.as_deref(), Some(file.as_path()));
        assert_eq!(summary.bad_rows_recorded, 8);
        let text = std::fs::read_to_string(&file).expect("bad-rows.jsonl");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 8);
        assert!(lines.iter().any(|l| l["key"] == "(id=15)"
            && l["table"]["name"] == "legacy"
            && l["column"] == "note"
            && l["action"] == "skip-row"));

        let rendered = crate::progress::render_summary(&summary);
        assert!(
            rendered.contains("shop.legacy  policy skip-row: 4 bad values, 4 rows skipped"),
            "{rendered}"
        );
        assert!(
            rendered.contains("shop.orders  policy clamp: 4 bad values"),
            "{rendered}"
        );
        assert!(rendered.contains(&file.display().to_string()), "{rendered}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn fail_policy_error_names_the_keys_to_change() {
        let source = Arc::new(
            ferry_core::test_utils::MemorySource::from_tables([noted("legacy")]).expect("tables"),
        );
        let sink = Arc::new(NarrowingSink(ferry_core::test_utils::MemorySink::new()));
        let e = full_load(
            source,
            sink,
            &plan(&["shop.*"], &[], 1),
            &Progress::hidden(),
        )
        .await
        .expect_err("fail is the default");
        let msg = e.to_string();
        assert!(msg.contains("table shop.legacy: writing"), "{msg}");
        assert!(msg.contains("column note, row (id=5)"), "{msg}");
        assert!(msg.contains("[task.bad-data-tables]"), "{msg}");
    }

    #[tokio::test]
    async fn unknown_policy_table_is_a_config_error() {
        let source = Arc::new(MemSource::new(three_tables(), 1));
        let mut plan = plan(&["shop.*"], &[], 1);
        plan.bad_data_tables = vec![("shop.smal".into(), BadDataPolicy::Null)];
        let e = full_load(
            source,
            Arc::new(MemSink::default()),
            &plan,
            &Progress::hidden(),
        )
        .await
        .expect_err("typo");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("shop.smal"), "{e}");
    }

    #[test]
    fn plan_from_settings() {
        let p = Plan::from_settings(&TaskSettings::default());
        assert_eq!(p.parallelism, 4);
        assert_eq!(p.table_prep, TablePrep::DropAndCreate);
    }
}
