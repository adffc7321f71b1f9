//! An in-memory [`Source`] and [`Sink`] sharing one [`MemoryStore`].
//!
//! They let the runner, the rules and the conformance suite be tested without a
//! database, and they behave like a careful database would:
//!
//! - the sink validates every row against the table's schema (column count, types,
//!   `NOT NULL`, `varchar(n)` lengths, enum labels) and fails with the table,
//!   column and row in the message;
//! - a [`MemoryWriter`] buffers its rows and appends them to the table only in
//!   [`TableWriter::finish`]: rows written but not finished are never visible, and a
//!   writer dropped without `finish` loses its rows, like an aborted transaction;
//! - [`Sink::finish_table`] "builds" the primary key and unique keys: it fails on a
//!   duplicate key, and so does every later `finish` that would add one;
//! - [`Source::begin_snapshot`] freezes the current contents (copy-on-write), so a
//!   snapshot never sees rows finished after it began.
//!
//! # Partitions
//!
//! [`MemorySource::partitions`](Source::partitions) splits a table into up to `max`
//! ranges of **row indices** in the frozen view, expressed as
//! [`PartitionRange::Pages`] with one row per "page" (the closest analogue of
//! PostgreSQL's CTID ranges): `Pages { start, end }` covers rows `start..end`, and
//! the last partition has `end: None`. [`PartitionRange::Whole`] is accepted too;
//! [`PartitionRange::Keys`] is refused as unsupported.

use super::compare::{compare_rows, show_value, value_fits};
use crate::channel::BatchSender;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Batch, ChangeEvent, Operation, Position, Row};
use crate::filter::TableFilter;
use crate::policy::{Action, BadDataPolicy, BadDataRecorder, LoadReport, ValueProblem, row_key};
use crate::schema::{Catalog, Finding, TableId, TableSchema};
use crate::traits::{Partition, PartitionRange, Sink, Snapshot, Source, TablePrep, TableWriter};
use crate::value::{Text, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Engine name of the in-memory source and sink.
pub const MEMORY_ENGINE: &str = "memory";

/// Default number of rows per batch sent by [`MemorySource`].
pub const DEFAULT_BATCH_ROWS: usize = 1000;

/// Tables held in memory, shared (cheaply cloned) between a [`MemorySource`] and a
/// [`MemorySink`] so that what one writes the other reads.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<StoreState>>,
}

#[derive(Debug, Default)]
struct StoreState {
    tables: BTreeMap<TableId, StoredTable>,
    /// Bumped on every change; a snapshot's position.
    version: u64,
    /// Source of table generations (a new one per create).
    generations: u64,
}

#[derive(Debug, Clone)]
struct StoredTable {
    schema: Arc<TableSchema>,
    /// Shared with frozen snapshots; written copy-on-write.
    rows: Arc<Vec<Row>>,
    /// Which create this table came from; writers opened on an older one fail.
    generation: u64,
    /// Whether `finish_table` built the keys (later loads are checked against them).
    keys_built: bool,
}

impl StoreState {
    fn create(&mut self, schema: TableSchema, rows: Vec<Row>) {
        self.generations += 1;
        self.version += 1;
        let table = StoredTable {
            schema: Arc::new(schema),
            rows: Arc::new(rows),
            generation: self.generations,
            keys_built: false,
        };
        self.tables.insert(table.schema.id.clone(), table);
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates (or replaces) a table with `rows`, after checking every row against
    /// the schema (keys are not checked).
    pub fn insert_table(&self, schema: TableSchema, rows: Vec<Row>) -> Result<()> {
        check_schema(&schema)?;
        for (n, row) in rows.iter().enumerate() {
            check_row(&schema, row, n)?;
        }
        self.lock().create(schema, rows);
        Ok(())
    }

    /// Removes a table; returns whether it existed.
    pub fn remove_table(&self, id: &TableId) -> bool {
        let mut state = self.lock();
        state.version += 1;
        state.tables.remove(id).is_some()
    }

    /// The ids of all tables, in order.
    pub fn table_ids(&self) -> Vec<TableId> {
        self.lock().tables.keys().cloned().collect()
    }

    /// A table's schema, if it exists.
    pub fn schema(&self, id: &TableId) -> Option<TableSchema> {
        self.lock()
            .tables
            .get(id)
            .map(|t| TableSchema::clone(&t.schema))
    }

    /// A table's visible (finished) rows in insertion order, if it exists.
    pub fn rows(&self, id: &TableId) -> Option<Vec<Row>> {
        self.lock().tables.get(id).map(|t| Vec::clone(&t.rows))
    }

    /// A table's number of visible rows, if it exists.
    pub fn row_count(&self, id: &TableId) -> Option<usize> {
        self.lock().tables.get(id).map(|t| t.rows.len())
    }
}

// ---------------------------------------------------------------------------------
// Source

/// The contents of the store as of one snapshot.
type Frozen = BTreeMap<TableId, (Arc<TableSchema>, Arc<Vec<Row>>)>;

/// An in-memory [`Source`] over a [`MemoryStore`].
#[derive(Debug)]
pub struct MemorySource {
    store: MemoryStore,
    batch_rows: usize,
    snapshots: Mutex<HashMap<String, Arc<Frozen>>>,
    next_snapshot: AtomicU64,
}

impl MemorySource {
    /// A source reading `store`.
    pub fn new(store: MemoryStore) -> Self {
        MemorySource {
            store,
            batch_rows: DEFAULT_BATCH_ROWS,
            snapshots: Mutex::new(HashMap::new()),
            next_snapshot: AtomicU64::new(1),
        }
    }

    /// A source over a new store holding `tables` (each schema with its rows).
    pub fn from_tables(tables: impl IntoIterator<Item = (TableSchema, Vec<Row>)>) -> Result<Self> {
        let store = MemoryStore::new();
        for (schema, rows) in tables {
            store.insert_table(schema, rows)?;
        }
        Ok(Self::new(store))
    }

    /// Sends at most `rows` rows per batch (at least 1).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// The store this source reads.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// Snapshots begun and not yet ended (a test can check the runner ends them).
    pub fn open_snapshots(&self) -> usize {
        self.lock_snapshots().len()
    }

    fn lock_snapshots(&self) -> MutexGuard<'_, HashMap<String, Arc<Frozen>>> {
        self.snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn frozen(&self, snapshot: &Snapshot) -> Result<Arc<Frozen>> {
        self.lock_snapshots()
            .get(&snapshot.id)
            .cloned()
            .ok_or_else(|| unknown_snapshot(snapshot))
    }
}

fn unknown_snapshot(snapshot: &Snapshot) -> Error {
    Error::internal(format!(
        "memory source: snapshot {:?} was not begun or has already ended",
        snapshot.id
    ))
}

fn frozen_table<'a>(
    frozen: &'a Frozen,
    id: &TableId,
) -> Result<&'a (Arc<TableSchema>, Arc<Vec<Row>>)> {
    frozen.get(id).ok_or_else(|| {
        Error::schema(format!(
            "memory source: table {id} does not exist in the snapshot"
        ))
    })
}

impl Source for MemorySource {
    fn engine(&self) -> &'static str {
        MEMORY_ENGINE
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Catalog> {
        let state = self.store.lock();
        let tables = state
            .tables
            .values()
            .filter(|t| {
                filter.may_match_namespace(&t.schema.id.namespace) && filter.matches(&t.schema.id)
            })
            .map(|t| {
                let mut schema = TableSchema::clone(&t.schema);
                schema.estimated_rows = Some(t.rows.len() as u64);
                schema
            })
            .collect();
        Ok(Catalog { tables })
    }

    async fn begin_snapshot(&self) -> Result<Snapshot> {
        let (frozen, version) = {
            let state = self.store.lock();
            let frozen: Frozen = state
                .tables
                .iter()
                .map(|(id, t)| (id.clone(), (Arc::clone(&t.schema), Arc::clone(&t.rows))))
                .collect();
            (frozen, state.version)
        };
        let id = format!(
            "memory-{}",
            self.next_snapshot.fetch_add(1, AtomicOrdering::Relaxed)
        );
        self.lock_snapshots().insert(id.clone(), Arc::new(frozen));
        Ok(Snapshot {
            id,
            position: Some(Position::from_bytes(version.to_be_bytes().to_vec())),
        })
    }

    async fn partitions(
        &self,
        snapshot: &Snapshot,
        table: &TableSchema,
        max: usize,
    ) -> Result<Vec<Partition>> {
        let frozen = self.frozen(snapshot)?;
        let (_, rows) = frozen_table(&frozen, &table.id)?;
        let n = rows.len();
        let count = max.max(1).min(n.max(1));
        let bound = |i: usize| (i * n / count) as u64;
        Ok((0..count)
            .map(|i| Partition {
                table: table.id.clone(),
                index: i,
                count,
                range: PartitionRange::Pages {
                    start: bound(i),
                    end: (i + 1 < count).then(|| bound(i + 1)),
                },
            })
            .collect())
    }

    async fn read_partition(
        &self,
        snapshot: &Snapshot,
        table: Arc<TableSchema>,
        partition: Partition,
        _policy: BadDataPolicy,
        out: BatchSender,
    ) -> Result<LoadReport> {
        let frozen = self.frozen(snapshot)?;
        let (stored_schema, rows) = frozen_table(&frozen, &partition.table)?;
        if stored_schema.columns.len() != table.columns.len() {
            return Err(Error::schema(format!(
                "memory source: table {} has {} columns but the schema to read has {}",
                partition.table,
                stored_schema.columns.len(),
                table.columns.len()
            )));
        }
        let n = rows.len();
        let range = match partition.range {
            PartitionRange::Whole => 0..n,
            PartitionRange::Pages { start, end } => {
                let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX).min(n);
                clamp(start)..end.map_or(n, clamp)
            }
            PartitionRange::Keys { .. } => {
                return Err(Error::unsupported(
                    "memory source: key-range partitions are not supported; \
                     use the row-index (Pages) partitions it returns",
                ));
            }
        };
        let mut sent = 0u64;
        let slice = rows.get(range).unwrap_or(&[]);
        for chunk in slice.chunks(self.batch_rows) {
            let mut batch = Batch::with_capacity(Arc::clone(&table), chunk.len());
            for row in chunk {
                batch.push(ChangeEvent::insert(row.clone()));
            }
            sent += chunk.len() as u64;
            out.send(batch).await?;
        }
        Ok(LoadReport::rows(sent))
    }

    async fn end_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.lock_snapshots()
            .remove(&snapshot.id)
            .map(|_| ())
            .ok_or_else(|| unknown_snapshot(&snapshot))
    }
}

// ---------------------------------------------------------------------------------
// Sink

/// An in-memory [`Sink`] writing into a [`MemoryStore`]; it records what it was
/// asked to do so tests can check the runner's calls.
#[derive(Debug, Default)]
pub struct MemorySink {
    store: MemoryStore,
    log: Mutex<SinkLog>,
}

#[derive(Debug, Default)]
struct SinkLog {
    prepared: Vec<(TableId, TablePrep)>,
    finished: Vec<(TableId, TablePrep)>,
}

impl MemorySink {
    /// A sink writing into a new, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink writing into `store`.
    pub fn with_store(store: MemoryStore) -> Self {
        MemorySink {
            store,
            log: Mutex::default(),
        }
    }

    /// The store this sink writes.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// A [`MemorySource`] reading what this sink wrote (the same store).
    pub fn source(&self) -> MemorySource {
        MemorySource::new(self.store.clone())
    }

    /// The visible rows of a table, if it exists.
    pub fn rows(&self, id: &TableId) -> Option<Vec<Row>> {
        self.store.rows(id)
    }

    /// Every successful `prepare_table` call, in order.
    pub fn prepared(&self) -> Vec<(TableId, TablePrep)> {
        self.lock_log().prepared.clone()
    }

    /// Every successful `finish_table` call, in order.
    pub fn finished_tables(&self) -> Vec<(TableId, TablePrep)> {
        self.lock_log().finished.clone()
    }

    fn lock_log(&self) -> MutexGuard<'_, SinkLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Loads one partition into a [`MemorySink`]; rows become visible on
/// [`TableWriter::finish`] and are lost if the writer is dropped before.
///
/// Text longer than its column's `max_len` is bad data handled by the writer's
/// [`BadDataPolicy`] (`clamp` truncates, `null` stores NULL, `skip-row` leaves the
/// row out); every other mismatch is an error.
#[derive(Debug)]
pub struct MemoryWriter {
    store: MemoryStore,
    schema: Arc<TableSchema>,
    generation: u64,
    rows: Vec<Row>,
    bad: BadDataRecorder,
}

impl Sink for MemorySink {
    type Writer = MemoryWriter;
    type Applier = crate::NoApplier;

    fn engine(&self) -> &'static str {
        MEMORY_ENGINE
    }

    fn convert_schema(
        &self,
        _source_engine: &str,
        schema: &TableSchema,
    ) -> Result<(TableSchema, Vec<Finding>)> {
        Ok((schema.clone(), Vec::new()))
    }

    async fn prepare_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        check_schema(schema)?;
        {
            let mut state = self.store.lock();
            let exists = state.tables.contains_key(&schema.id);
            match prep {
                TablePrep::DropAndCreate => state.create(schema.clone(), Vec::new()),
                TablePrep::Truncate if !exists => state.create(schema.clone(), Vec::new()),
                TablePrep::Truncate => {
                    state.version += 1;
                    if let Some(table) = state.tables.get_mut(&schema.id) {
                        table.rows = Arc::new(Vec::new());
                    }
                }
                TablePrep::DoNothing if exists => {}
                TablePrep::DoNothing => {
                    return Err(Error::schema(format!(
                        "memory sink: table {} does not exist; table-prep do-nothing needs \
                         an existing table (use truncate or drop-and-create to create it)",
                        schema.id
                    )));
                }
            }
        }
        self.lock_log().prepared.push((schema.id.clone(), prep));
        Ok(())
    }

    async fn open_writer(
        &self,
        schema: Arc<TableSchema>,
        policy: BadDataPolicy,
    ) -> Result<MemoryWriter> {
        let generation = {
            let state = self.store.lock();
            let table = state.tables.get(&schema.id).ok_or_else(|| {
                Error::schema(format!(
                    "memory sink: table {} does not exist; prepare it before opening a writer",
                    schema.id
                ))
            })?;
            check_same_columns(&table.schema, &schema)?;
            table.generation
        };
        Ok(MemoryWriter {
            store: self.store.clone(),
            bad: BadDataRecorder::new(schema.id.clone(), policy),
            schema,
            generation,
            rows: Vec::new(),
        })
    }

    async fn finish_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        {
            let mut state = self.store.lock();
            let table = state.tables.get_mut(&schema.id).ok_or_else(|| {
                Error::schema(format!(
                    "memory sink: table {} does not exist; cannot finish it",
                    schema.id
                ))
            })?;
            check_keys(&table.schema, &table.rows)?;
            table.keys_built = true;
        }
        self.lock_log().finished.push((schema.id.clone(), prep));
        Ok(())
    }
}

impl TableWriter for MemoryWriter {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        if batch.schema.id != self.schema.id {
            return Err(Error::internal(format!(
                "memory sink: a batch for {} was written to the writer of {}",
                batch.schema.id, self.schema.id
            )));
        }
        for event in batch.events {
            let row_no = self.rows.len();
            let row = match (event.op, event.after) {
                (Operation::Insert, Some(row)) => row,
                (op, _) => {
                    return Err(Error::internal(format!(
                        "memory sink: table {} row {row_no}: a bulk writer takes inserts with \
                         a row image, got {op:?}",
                        self.schema.id
                    )));
                }
            };
            let Some(row) = self.apply_policy(row)? else {
                self.bad.row_skipped();
                continue;
            };
            check_row(&self.schema, &row, row_no)?;
            self.rows.push(row);
        }
        Ok(())
    }

    async fn finish(self) -> Result<LoadReport> {
        let mut state = self.store.lock();
        let table = state
            .tables
            .get_mut(&self.schema.id)
            .filter(|t| t.generation == self.generation)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Target,
                    format!(
                        "memory sink: table {} was dropped while a writer was loading it",
                        self.schema.id
                    ),
                )
            })?;
        let count = self.rows.len() as u64;
        if table.keys_built {
            let mut all = Vec::clone(&table.rows);
            all.extend(self.rows.iter().cloned());
            check_keys(&table.schema, &all)?;
        }
        Arc::make_mut(&mut table.rows).extend(self.rows);
        state.version += 1;
        let mut report = self.bad.into_report();
        report.rows = count;
        Ok(report)
    }
}

impl MemoryWriter {
    /// Applies the bad-data policy to over-long text; `None` when the row is skipped.
    fn apply_policy(&mut self, mut row: Row) -> Result<Option<Row>> {
        for i in 0..row.len().min(self.schema.columns.len()) {
            let column = &self.schema.columns[i];
            let (
                crate::types::DataType::Text {
                    max_len: Some(max), ..
                },
                Value::Text(text),
            ) = (&column.data_type, &row[i])
            else {
                continue;
            };
            let len = text.as_str().chars().count();
            if len <= *max as usize {
                continue;
            }
            let problem = ValueProblem::TooLong { len, max_len: *max };
            let schema = &self.schema;
            let action = self
                .bad
                .handle(column, || row_key(schema, &row), &problem)?;
            match action {
                Action::Null => row[i] = Value::Null,
                Action::Clamp => {
                    let cut = crate::policy::truncate_chars(text.as_str(), *max as usize);
                    row[i] = Value::Text(Text::from(cut));
                }
                Action::SkipRow => return Ok(None),
                Action::Fail(_) => {}
            }
        }
        Ok(Some(row))
    }
}

// ---------------------------------------------------------------------------------
// Checks a database would make

/// Duplicate or missing column names, key columns that do not exist.
fn check_schema(schema: &TableSchema) -> Result<()> {
    for (i, column) in schema.columns.iter().enumerate() {
        if schema.columns[..i].iter().any(|c| c.name == column.name) {
            return Err(Error::schema(format!(
                "memory sink: table {} has two columns named {:?}",
                schema.id, column.name
            )));
        }
    }
    let keys =
        std::iter::once(&schema.primary_key).chain(schema.unique_keys.iter().map(|k| &k.columns));
    for key in keys {
        if let Some(missing) = key.iter().find(|c| schema.column(c).is_none()) {
            return Err(Error::schema(format!(
                "memory sink: table {} has a key on column {missing:?}, which does not exist",
                schema.id
            )));
        }
    }
    Ok(())
}

fn check_same_columns(stored: &TableSchema, given: &TableSchema) -> Result<()> {
    let same = stored.columns.len() == given.columns.len()
        && stored
            .columns
            .iter()
            .zip(&given.columns)
            .all(|(a, b)| a.name == b.name && a.data_type == b.data_type);
    if same {
        Ok(())
    } else {
        Err(Error::schema(format!(
            "memory sink: table {} exists with columns ({}) but the writer was opened for ({})",
            stored.id,
            column_list(stored),
            column_list(given)
        )))
    }
}

fn column_list(schema: &TableSchema) -> String {
    schema
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.data_type))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row against the schema: length, `NOT NULL`, types.
fn check_row(schema: &TableSchema, row: &[Value], row_no: usize) -> Result<()> {
    if row.len() != schema.columns.len() {
        return Err(Error::conversion(format!(
            "memory sink: table {} row {row_no} has {} values for {} columns",
            schema.id,
            row.len(),
            schema.columns.len()
        )));
    }
    for (column, value) in schema.columns.iter().zip(row) {
        if value.is_null() && !column.nullable {
            return Err(Error::conversion(format!(
                "memory sink: table {} column {} row {row_no}: NULL in a NOT NULL column",
                schema.id, column.name
            )));
        }
        if !value_fits(&column.data_type, value) {
            return Err(Error::conversion(format!(
                "memory sink: table {} column {} row {row_no}: {} does not fit type {}",
                schema.id,
                column.name,
                show_value(value),
                column.data_type
            )));
        }
    }
    Ok(())
}

/// Primary key and unique keys over `rows` (rows with a NULL key part never clash).
fn check_keys(schema: &TableSchema, rows: &[Row]) -> Result<()> {
    let pk =
        (!schema.primary_key.is_empty()).then(|| ("primary key".to_string(), &schema.primary_key));
    let uniques = schema
        .unique_keys
        .iter()
        .map(|k| (format!("unique key {}", k.name), &k.columns));
    for (what, columns) in pk.into_iter().chain(uniques) {
        let indices: Vec<usize> = columns
            .iter()
            .filter_map(|c| schema.column_index(c))
            .collect();
        let mut keys: Vec<Row> = rows
            .iter()
            .map(|r| {
                indices
                    .iter()
                    .filter_map(|&i| r.get(i).cloned())
                    .collect::<Row>()
            })
            .filter(|k| !k.iter().any(crate::value::Value::is_null))
            .collect();
        keys.sort_by(|a, b| compare_rows(a, b));
        if let Some(dup) = keys.windows(2).find(|w| compare_rows(&w[0], &w[1]).is_eq()) {
            let shown = columns
                .iter()
                .zip(&dup[0])
                .map(|(c, v)| format!("{c}={}", show_value(v)))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::new(
                ErrorKind::Target,
                format!(
                    "memory sink: table {}: duplicate key ({shown}) violates its {what}",
                    schema.id
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::batch_channel;
    use crate::schema::Column;
    use crate::types::DataType;
    use crate::value::{Text, Value};

    fn schema(name: &str) -> TableSchema {
        let col = |name: &str, data_type: DataType, nullable: bool| Column {
            name: name.into(),
            data_type,
            nullable,
            default: None,
            source_type: String::new(),
        };
        let mut s = TableSchema::new(
            TableId::new("shop", name),
            vec![
                col("id", DataType::Int64, false),
                col("name", DataType::text(), true),
            ],
        );
        s.primary_key = vec!["id".into()];
        s
    }

    fn row(id: i64) -> Row {
        vec![Value::Int64(id), Value::Text(Text::from(format!("n{id}")))]
    }

    fn batch(schema: &Arc<TableSchema>, ids: std::ops::Range<i64>) -> Batch {
        let mut b = Batch::new(Arc::clone(schema));
        for id in ids {
            b.push(ChangeEvent::insert(row(id)));
        }
        b
    }

    async fn read_all(source: &MemorySource, table: &TableSchema, max: usize) -> (usize, Vec<Row>) {
        let snap = source.begin_snapshot().await.expect("snapshot");
        let parts = source
            .partitions(&snap, table, max)
            .await
            .expect("partitions");
        let mut rows = Vec::new();
        for p in parts.clone() {
            let (tx, mut rx) = batch_channel(1000, 1 << 30);
            let n = source
                .read_partition(&snap, Arc::new(table.clone()), p, BadDataPolicy::Fail, tx)
                .await
                .expect("read")
                .rows;
            let mut got = 0;
            while let Some(b) = rx.recv().await {
                got += b.len() as u64;
                rows.extend(b.events.into_iter().filter_map(|e| e.after));
            }
            assert_eq!(n, got);
        }
        source.end_snapshot(snap).await.expect("end");
        (parts.len(), rows)
    }

    #[tokio::test]
    async fn discover_honours_the_filter() {
        let source = MemorySource::from_tables([
            (schema("orders"), vec![row(1)]),
            (schema("tmp_x"), vec![]),
        ])
        .expect("valid tables");
        let filter = TableFilter::new(&["shop.*".into()], &["shop.tmp_%".into()]).expect("filter");
        let catalog = source.discover(&filter).await.expect("discover");
        let names: Vec<_> = catalog.tables.iter().map(|t| t.id.name.as_str()).collect();
        assert_eq!(names, vec!["orders"]);
        assert_eq!(catalog.tables[0].estimated_rows, Some(1));
    }

    #[tokio::test]
    async fn partitions_cover_every_row_once_in_small_batches() {
        let rows: Vec<Row> = (0..10).map(row).collect();
        let source = MemorySource::from_tables([(schema("t"), rows.clone())])
            .expect("valid")
            .with_batch_rows(3);
        let (count, got) = read_all(&source, &schema("t"), 4).await;
        assert_eq!(count, 4);
        assert_eq!(got, rows);
        let (count, _) = read_all(&source, &schema("t"), 100).await;
        assert_eq!(count, 10, "at most one partition per row");
        assert_eq!(source.open_snapshots(), 0);
    }

    #[tokio::test]
    async fn snapshot_is_frozen() {
        let sink = MemorySink::new();
        let source = sink.source();
        let s = Arc::new(schema("t"));
        sink.prepare_table(&s, TablePrep::DropAndCreate)
            .await
            .expect("prep");
        let snap = source.begin_snapshot().await.expect("snap");
        let mut w = sink
            .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
            .await
            .expect("open");
        w.write(batch(&s, 0..5)).await.expect("write");
        assert_eq!(w.finish().await.expect("finish").rows, 5);
        let parts = source.partitions(&snap, &s, 1).await.expect("parts");
        let (tx, _rx) = batch_channel(10, 1 << 20);
        let n = source
            .read_partition(
                &snap,
                Arc::clone(&s),
                parts[0].clone(),
                BadDataPolicy::Fail,
                tx,
            )
            .await
            .expect("read")
            .rows;
        assert_eq!(n, 0, "rows finished after the snapshot began are not in it");
        source.end_snapshot(snap.clone()).await.expect("end");
        assert!(source.end_snapshot(snap).await.is_err(), "ended twice");
    }

    #[tokio::test]
    async fn rows_become_visible_on_finish_only() {
        let sink = MemorySink::new();
        let s = Arc::new(schema("t"));
        sink.prepare_table(&s, TablePrep::DropAndCreate)
            .await
            .expect("prep");
        let mut dropped = sink
            .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
            .await
            .expect("open");
        dropped.write(batch(&s, 0..3)).await.expect("write");
        assert_eq!(sink.rows(&s.id).map(|r| r.len()), Some(0));
        drop(dropped);
        let mut w = sink
            .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
            .await
            .expect("open");
        w.write(batch(&s, 3..5)).await.expect("write");
        w.finish().await.expect("finish");
        assert_eq!(sink.rows(&s.id), Some(vec![row(3), row(4)]));
    }

    #[tokio::test]
    async fn table_prep_is_honoured() {
        let sink = MemorySink::new();
        let s = Arc::new(schema("t"));
        let err = sink
            .prepare_table(&s, TablePrep::DoNothing)
            .await
            .expect_err("missing table");
        assert_eq!(err.kind(), ErrorKind::Schema);
        sink.prepare_table(&s, TablePrep::Truncate)
            .await
            .expect("creates");
        let mut w = sink
            .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
            .await
            .expect("open");
        w.write(batch(&s, 0..2)).await.expect("write");
        w.finish().await.expect("finish");
        sink.prepare_table(&s, TablePrep::DoNothing)
            .await
            .expect("exists");
        assert_eq!(sink.rows(&s.id).map(|r| r.len()), Some(2));
        sink.prepare_table(&s, TablePrep::Truncate)
            .await
            .expect("truncate");
        assert_eq!(sink.rows(&s.id).map(|r| r.len()), Some(0));
        assert_eq!(
            sink.prepared(),
            vec![
                (s.id.clone(), TablePrep::Truncate),
                (s.id.clone(), TablePrep::DoNothing),
                (s.id.clone(), TablePrep::Truncate)
            ]
        );
    }

    #[tokio::test]
    async fn writer_of_a_dropped_table_fails() {
        let sink = MemorySink::new();
        let s = Arc::new(schema("t"));
        sink.prepare_table(&s, TablePrep::DropAndCreate)
            .await
            .expect("prep");
        let mut w = sink
            .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
            .await
            .expect("open");
        w.write(batch(&s, 0..2)).await.expect("write");
        sink.prepare_table(&s, TablePrep::DropAndCreate)
            .await
            .expect("again");
        assert!(w.finish().await.is_err());
    }

    #[tokio::test]
    async fn rows_are_checked_against_the_schema() {
        let sink = MemorySink::new();
        let s = Arc::new(schema("t"));
        sink.prepare_table(&s, TablePrep::DropAndCreate)
            .await
            .expect("prep");
        let mut w = sink
            .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
            .await
            .expect("open");
        let mut b = Batch::new(Arc::clone(&s));
        b.push(ChangeEvent::insert(vec![Value::Null, Value::Null]));
        let err = w.write(b).await.expect_err("null id");
        assert!(err.message().contains("column id row 0"), "{err}");
        let mut b = Batch::new(Arc::clone(&s));
        b.push(ChangeEvent::insert(vec![Value::Int32(1), Value::Null]));
        assert_eq!(
            w.write(b).await.expect_err("wrong type").kind(),
            ErrorKind::Conversion
        );
    }

    #[tokio::test]
    async fn keys_are_enforced_after_finish_table() {
        let sink = MemorySink::new();
        let s = Arc::new(schema("t"));
        sink.prepare_table(&s, TablePrep::DropAndCreate)
            .await
            .expect("prep");
        for _ in 0..2 {
            let mut w = sink
                .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
                .await
                .expect("open");
            w.write(batch(&s, 0..2)).await.expect("write");
            w.finish().await.expect("no keys yet");
        }
        let err = sink
            .finish_table(&s, TablePrep::DropAndCreate)
            .await
            .expect_err("duplicate keys");
        assert!(
            err.message().contains("duplicate key (id=Int64(0))"),
            "{err}"
        );
        sink.prepare_table(&s, TablePrep::Truncate)
            .await
            .expect("truncate");
        let mut w = sink
            .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
            .await
            .expect("open");
        w.write(batch(&s, 0..2)).await.expect("write");
        w.finish().await.expect("finish");
        sink.finish_table(&s, TablePrep::Truncate)
            .await
            .expect("unique");
        let mut w = sink
            .open_writer(Arc::clone(&s), BadDataPolicy::Fail)
            .await
            .expect("open");
        w.write(batch(&s, 1..3)).await.expect("write");
        assert!(w.finish().await.is_err(), "keys are built: id 1 clashes");
        assert_eq!(sink.finished_tables().len(), 1);
    }
}
