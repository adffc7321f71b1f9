//! The [`Source`] and [`Sink`] traits every connector implements.
//!
//! Both use native `async fn` in traits with `Send` futures; the runner dispatches
//! through closed enums, so no trait object is needed.

use crate::channel::BatchSender;
use crate::error::{Error, Result};
use crate::event::{Batch, Position, Row};
use crate::filter::TableFilter;
use crate::policy::{BadDataPolicy, LoadReport};
use crate::schema::{Catalog, Finding, TableId, TableSchema};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;

/// What a sink does to a table before loading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TablePrep {
    /// Drop the table if it exists and create it from the schema.
    #[default]
    DropAndCreate,
    /// Keep the table (create it if missing) and remove its rows.
    Truncate,
    /// Leave the table as it is; it must exist.
    DoNothing,
}

/// A consistent view of the source that every snapshot worker reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The source's handle for the view (e.g. an exported PostgreSQL snapshot id).
    pub id: String,
    /// The change-stream position the view corresponds to, where the source knows it.
    pub position: Option<Position>,
}

/// Which rows of a table a [`Partition`] covers.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionRange {
    /// The whole table.
    Whole,
    /// Physical pages `[start, end)` (PostgreSQL CTID block numbers); `end: None` is open.
    Pages {
        /// First page.
        start: u64,
        /// Page after the last one, or `None` for "to the end".
        end: Option<u64>,
    },
    /// Primary key range `[lower, upper)`; `None` bounds are open.
    Keys {
        /// Inclusive lower bound, key columns in order.
        lower: Option<Row>,
        /// Exclusive upper bound, key columns in order.
        upper: Option<Row>,
    },
}

/// A slice of one table that one worker copies.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// The table.
    pub table: TableId,
    /// Position of this partition among the table's partitions (0-based).
    pub index: usize,
    /// Number of partitions of the table.
    pub count: usize,
    /// Which rows.
    pub range: PartitionRange,
}

/// The target DDL for one table, split by when it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDdl {
    /// Before the load: schema/namespace, types (e.g. enums), `CREATE TABLE`.
    pub pre_load: Vec<String>,
    /// After this table is loaded: primary key, unique keys, indexes.
    pub post_load: Vec<String>,
    /// After **every** table of the task is loaded: foreign keys (they reference
    /// other tables).
    pub foreign_keys: Vec<String>,
}

/// A database or service that data is read from.
pub trait Source: Send + Sync {
    /// Engine name (`postgres`, `mysql`, ...), used for type mapping.
    fn engine(&self) -> &'static str;

    /// Lists the tables selected by `filter`, with columns, keys and indexes.
    fn discover(&self, filter: &TableFilter) -> impl Future<Output = Result<Catalog>> + Send;

    /// Opens one consistent view of the data for all snapshot workers, held until
    /// [`Source::end_snapshot`].
    fn begin_snapshot(&self) -> impl Future<Output = Result<Snapshot>> + Send;

    /// Splits a table into at most `max` partitions (fewer for small tables).
    fn partitions(
        &self,
        snapshot: &Snapshot,
        table: &TableSchema,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Partition>>> + Send;

    /// Streams one partition's rows as insert batches into `out`. Values the source
    /// cannot decode into a valid [`crate::Value`] (MySQL zero dates, invalid UTF-8)
    /// are handled by `policy` through [`crate::policy::BadDataRecorder`]. Returns
    /// the rows sent (`rows`), the rows left out (`skipped_rows`) and the bad values
    /// met.
    fn read_partition(
        &self,
        snapshot: &Snapshot,
        table: Arc<TableSchema>,
        partition: Partition,
        policy: BadDataPolicy,
        out: BatchSender,
    ) -> impl Future<Output = Result<LoadReport>> + Send;

    /// Releases the view opened by [`Source::begin_snapshot`].
    fn end_snapshot(&self, snapshot: Snapshot) -> impl Future<Output = Result<()>> + Send;

    /// Streams changes from `from` (or from now) into `out` until `out` closes.
    fn stream_changes(
        &self,
        _from: Option<Position>,
        _catalog: &Catalog,
        _out: BatchSender,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            Err(Error::unsupported(format!(
                "{} source does not stream changes yet",
                self.engine()
            )))
        }
    }

    /// Tells the source that everything up to `durable` is durable at the target, so
    /// it may release upstream resources (replication slot, binlog retention).
    fn acknowledge(&self, _durable: &Position) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Engine-specific premigration findings about the selected tables (`catalog`
    /// is what [`Source::discover`] returned), for `ferry assess`: objects that are
    /// not converted (triggers, views, routines, sequences, events) in the selected
    /// namespaces, generated columns, character-set issues, bad data present (e.g.
    /// MySQL zero dates, invalid UTF-8), with a [`crate::finding_code`] each. The
    /// runner itself reports what the catalog already shows — tables without a
    /// primary key, table sizes, type mappings ([`Sink::convert_schema`]), foreign
    /// keys to tables not selected — so a source does not repeat those. The default
    /// finds nothing.
    fn assess(&self, _catalog: &Catalog) -> impl Future<Output = Result<Vec<Finding>>> + Send {
        async { Ok(Vec::new()) }
    }
}

/// A database or service that data is written to.
pub trait Sink: Send + Sync {
    /// The writer that loads one partition of one table.
    type Writer: TableWriter;

    /// Engine name.
    fn engine(&self) -> &'static str;

    /// The target's version of a source table: names and types mapped for this
    /// engine, with a finding for everything that is not converted exactly.
    fn convert_schema(
        &self,
        source_engine: &str,
        schema: &TableSchema,
    ) -> Result<(TableSchema, Vec<Finding>)>;

    /// Prepares the table before loading (create / drop-and-create / truncate / nothing).
    fn prepare_table(
        &self,
        schema: &TableSchema,
        prep: TablePrep,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Opens a bulk writer for one partition of `schema` (already prepared). Values
    /// the target cannot hold (NUL bytes for PostgreSQL, over-long text, numbers out
    /// of range) are handled by `policy`; see [`crate::policy`].
    fn open_writer(
        &self,
        schema: Arc<TableSchema>,
        policy: BadDataPolicy,
    ) -> impl Future<Output = Result<Self::Writer>> + Send;

    /// Runs what is best done after the load: primary key, unique keys, indexes.
    fn finish_table(
        &self,
        schema: &TableSchema,
        prep: TablePrep,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Creates `schema`'s foreign keys. The runner calls it for every table once
    /// **all** tables of the task are loaded and finished, and only with foreign keys
    /// whose referenced table is part of the task. The default does nothing.
    fn add_foreign_keys(
        &self,
        _schema: &TableSchema,
        _prep: TablePrep,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// The DDL this sink would run for `schema` (already converted by
    /// [`Sink::convert_schema`]), without touching the target: `ferry schema`
    /// prints it. The default says the sink cannot show its DDL.
    fn schema_ddl(&self, schema: &TableSchema) -> Result<SchemaDdl> {
        Err(Error::unsupported(format!(
            "{} sink cannot print DDL for {} (it has no DDL or does not show it yet)",
            self.engine(),
            schema.id
        )))
    }

    /// Target-side premigration findings for the converted tables (e.g. tables that
    /// already exist and would be dropped, missing privileges). The default finds
    /// nothing.
    fn assess(
        &self,
        _schemas: &[TableSchema],
        _prep: TablePrep,
    ) -> impl Future<Output = Result<Vec<Finding>>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Applies change events in order (CDC). The default refuses.
    fn apply(&self, _batch: Batch) -> impl Future<Output = Result<()>> + Send {
        async move {
            Err(Error::unsupported(format!(
                "{} sink does not apply changes yet",
                self.engine()
            )))
        }
    }

    /// Makes everything applied so far durable; returns the source position that is
    /// now durable at the target, if any.
    fn flush(&self) -> impl Future<Output = Result<Option<Position>>> + Send {
        async { Ok(None) }
    }
}

/// Bulk loader for one partition of one table.
pub trait TableWriter: Send {
    /// Writes a batch of inserts.
    fn write(&mut self, batch: Batch) -> impl Future<Output = Result<()>> + Send;

    /// Completes the load durably; returns rows written (`rows`), rows left out by
    /// the bad-data policy (`skipped_rows`) and the bad values met.
    fn finish(self) -> impl Future<Output = Result<LoadReport>> + Send;
}
