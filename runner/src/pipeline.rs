//! The full-load pipeline (DESIGN.md §5): discover, convert, prepare, snapshot,
//! copy partitions with bounded parallelism, build keys and indexes per table.

use crate::config::TaskSettings;
use crate::progress::{Progress, TableProgress};
use ferry_core::{
    Error, ErrorKind, Finding, FindingLevel, Partition, Result, Sink, Snapshot, Source,
    TableFilter, TableId, TablePrep, TableSchema, TableWriter, batch_channel,
};
use std::collections::{HashMap, VecDeque};
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
}

impl Plan {
    /// The plan of a task's `[task]` section.
    pub fn from_settings(settings: &TaskSettings) -> Self {
        Plan {
            include: settings.include.clone(),
            exclude: settings.exclude.clone(),
            table_prep: settings.table_prep,
            parallelism: settings.parallelism.max(1),
        }
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// What a pipeline task reports when it completes.
enum Done {
    Partition { table: usize, rows: u64, bytes: u64 },
    Table { table: usize, time: Duration },
}

fn table_label(id: &TableId, partition: Option<&Partition>) -> String {
    match partition {
        Some(p) if p.count > 1 => format!("table {id} (partition {} of {})", p.index + 1, p.count),
        _ => format!("table {id}"),
    }
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
    let filter = TableFilter::new(&plan.include, &plan.exclude)?;
    let catalog = source
        .discover(&filter)
        .await
        .map_err(|e| e.context("discovering source tables"))?;
    let mut selected: Vec<TableSchema> = catalog
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
    // Largest first, so the long copies start early.
    selected.sort_by(|a, b| {
        b.estimated_bytes
            .unwrap_or(0)
            .cmp(&a.estimated_bytes.unwrap_or(0))
            .then_with(|| a.id.cmp(&b.id))
    });

    let mut summary = Summary::default();
    let mut runs = Vec::with_capacity(selected.len());
    for table in selected {
        let (target, findings) = sink
            .convert_schema(source.engine(), &table)
            .map_err(|e| e.context(table_label(&table.id, None)))?;
        let other: Vec<&str> = table
            .columns
            .iter()
            .filter(|c| c.data_type.is_other())
            .map(|c| c.name.as_str())
            .collect();
        for column in table.columns.iter().filter(|c| c.data_type.is_other()) {
            summary.passed_through.push(PassedThrough {
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
            if finding.level == FindingLevel::Error {
                return Err(Error::schema(format!(
                    "{finding} (the table cannot be migrated as asked)"
                )));
            }
            let about_other = finding
                .column
                .as_deref()
                .is_some_and(|c| other.contains(&c));
            if !about_other {
                summary.findings.push(finding);
            }
        }
        runs.push(TableRun {
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
        });
    }

    for run in &runs {
        tracing::debug!(table = %run.target.id, prep = ?plan.table_prep, "preparing target table");
        sink.prepare_table(&run.target, plan.table_prep)
            .await
            .map_err(|e| e.context(format!("preparing target table {}", run.target.id)))?;
    }

    let snapshot = Arc::new(
        source
            .begin_snapshot()
            .await
            .map_err(|e| e.context("beginning the source snapshot"))?,
    );
    let mut snapshot_open = true;
    let result = copy_all(
        &source,
        &sink,
        &snapshot,
        &mut snapshot_open,
        &mut runs,
        plan,
        progress,
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
    result?;

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
        })
        .collect();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Splits every table, runs the partition queue and the per-table finish steps; ends
/// the snapshot as soon as the last partition is read.
async fn copy_all<S, K>(
    source: &Arc<S>,
    sink: &Arc<K>,
    snapshot: &Arc<Snapshot>,
    snapshot_open: &mut bool,
    runs: &mut [TableRun],
    plan: &Plan,
    progress: &Progress,
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
                let worker = copy_partition(
                    Arc::clone(source),
                    Arc::clone(sink),
                    Arc::clone(snapshot),
                    Arc::clone(&run.source),
                    Arc::clone(&run.target),
                    partition,
                    run.progress.clone(),
                    label.clone(),
                );
                let handle = tasks.spawn(async move {
                    let (rows, bytes) = worker.await?;
                    Ok(Done::Partition {
                        table: index,
                        rows,
                        bytes,
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
                Done::Partition { table, rows, bytes } => {
                    copying -= 1;
                    let run = &mut runs[table];
                    run.rows += rows;
                    run.bytes += bytes;
                    run.remaining -= 1;
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

/// Copies one partition: the source reads into a bounded channel while the sink's
/// writer drains it; the writer is finished only after the read succeeded.
/// Returns (rows, bytes).
#[allow(clippy::too_many_arguments)]
async fn copy_partition<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    snapshot: Arc<Snapshot>,
    table: Arc<TableSchema>,
    target: Arc<TableSchema>,
    partition: Partition,
    progress: Option<TableProgress>,
    label: String,
) -> Result<(u64, u64)> {
    let (tx, mut rx) = batch_channel(CHANNEL_BATCHES, CHANNEL_BYTES);
    let read = async {
        source
            .read_partition(&snapshot, table, partition, tx)
            .await
            .map_err(|e| e.context(format!("{label}: reading")))
    };
    let write = async {
        let mut writer = sink
            .open_writer(target)
            .await
            .map_err(|e| e.context(format!("{label}: opening the target writer")))?;
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(batch) = rx.recv().await {
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
    let (read_rows, (writer, rows, bytes)) = tokio::try_join!(read, write)?;
    let written = writer
        .finish()
        .await
        .map_err(|e| e.context(format!("{label}: completing the load")))?;
    if read_rows != rows {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("{label}: the source reported {read_rows} rows but sent {rows}"),
        ));
    }
    if written != rows {
        return Err(Error::new(
            ErrorKind::Target,
            format!("{label}: the target wrote {written} of {rows} rows"),
        ));
    }
    Ok((rows, bytes))
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
            out: BatchSender,
        ) -> Result<u64> {
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
            Ok(hi - lo)
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

        async fn open_writer(&self, schema: Arc<TableSchema>) -> Result<MemWriter> {
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

        async fn finish(self) -> Result<u64> {
            let n = self.rows.len() as u64;
            self.into
                .lock()
                .expect("lock")
                .entry(self.table)
                .or_default()
                .extend(self.rows);
            Ok(if self.short_count {
                n.saturating_sub(1)
            } else {
                n
            })
        }
    }

    fn plan(include: &[&str], exclude: &[&str], parallelism: usize) -> Plan {
        Plan {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            table_prep: TablePrep::Truncate,
            parallelism,
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
        let finding = |column: &str, level| Finding {
            level,
            table: Some(odd.id.clone()),
            column: Some(column.into()),
            message: "m".into(),
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

    #[test]
    fn plan_from_settings() {
        let p = Plan::from_settings(&TaskSettings::default());
        assert_eq!(p.parallelism, 4);
        assert_eq!(p.table_prep, TablePrep::DropAndCreate);
    }
}
