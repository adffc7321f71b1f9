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

    /// Opens the snapshot a change stream will continue from, for the task named
    /// `task` (full-load-and-cdc): like [`Source::begin_snapshot`], but the
    /// snapshot's `position` must be exactly where [`Source::stream_changes`]
    /// starts, so that no change is missed or applied twice (PostgreSQL: the
    /// replication slot's consistent point, the slot's snapshot exported; MySQL:
    /// the binlog coordinates read under the snapshot's lock). Creates what change
    /// capture needs (slot, publication), replacing a stale one of the same task.
    fn begin_capture_snapshot(
        &self,
        _task: &str,
        _catalog: &Catalog,
    ) -> impl Future<Output = Result<Snapshot>> + Send {
        async move {
            Err(Error::unsupported(format!(
                "{} source does not capture changes yet",
                self.engine()
            )))
        }
    }

    /// Prepares change capture for `task` (creating the slot and publication where
    /// the source needs them, keeping existing ones) and returns the position from
    /// which changes would be streamed now (`cdc` mode without a checkpoint).
    fn capture_position(
        &self,
        _task: &str,
        _catalog: &Catalog,
    ) -> impl Future<Output = Result<Position>> + Send {
        async move {
            Err(Error::unsupported(format!(
                "{} source does not capture changes yet",
                self.engine()
            )))
        }
    }

    /// Streams the changes committed after `from` to the tables of `catalog` into
    /// `out`, in commit order, until `out` closes (then returns `Ok`). A change at
    /// or before `from` is never sent, whatever the upstream resends.
    ///
    /// Batches hold one table and one schema version each; the last batch of a
    /// source transaction carries the transaction's end position (and commit time
    /// in `source_time`), the others `None`. A transaction of any size goes out in
    /// bounded batches. When the selected tables are idle the source sends
    /// [`Batch::marker`]s (keepalives, heartbeats) so the target can checkpoint.
    /// A schema change of a selected table is an event of
    /// [`crate::Operation::SchemaChange`] in a batch of the new schema, sent before
    /// the first row that follows it. Unchanged large values that the source does
    /// not send (PostgreSQL TOAST) are [`crate::Value::Unchanged`]. A dropped
    /// connection is a retryable [`crate::ErrorKind::Connection`] error.
    fn stream_changes(
        &self,
        _task: &str,
        _from: Position,
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

    /// Prepares change capture for `task` like [`Source::capture_position`] and
    /// returns the position written as `text` in the source's own notation (the
    /// `start-position` of a `cdc` task), refusing one the source cannot stream
    /// from. The default refuses.
    fn start_position(
        &self,
        _task: &str,
        _catalog: &Catalog,
        text: &str,
    ) -> impl Future<Output = Result<Position>> + Send {
        async move {
            Err(Error::unsupported(format!(
                "{} source cannot start change capture at a given position ({text:?})",
                self.engine()
            )))
        }
    }

    /// `position` as people know it (PostgreSQL `0/16B3748`, MySQL
    /// `binlog.000003:1234`), for status and logs. The default shows its hex.
    fn describe_position(&self, position: &Position) -> String {
        position.to_hex()
    }

    /// Tells the source that everything up to `durable` is durable at the target, so
    /// it may release upstream resources (replication slot, binlog retention). May
    /// be called while [`Source::stream_changes`] runs, from another task.
    fn acknowledge(
        &self,
        _task: &str,
        _durable: &Position,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Removes what change capture created for `task` upstream (replication slot,
    /// publication); returns a line per object removed. The default removes nothing.
    fn cleanup_capture(&self, _task: &str) -> impl Future<Output = Result<Vec<String>>> + Send {
        async { Ok(Vec::new()) }
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
    /// The applier of a change stream (CDC).
    type Applier: ChangeApplier;

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

    /// Opens the applier that writes `task`'s change stream to `tables` (the
    /// converted target schemas, already prepared). The default refuses.
    fn open_applier(
        &self,
        _task: &str,
        _tables: Vec<ApplyTable>,
    ) -> impl Future<Output = Result<Self::Applier>> + Send {
        async move {
            Err(Error::unsupported(format!(
                "{} sink does not apply changes yet",
                self.engine()
            )))
        }
    }

    /// The position stored for `task` by its last [`ChangeApplier::commit`] or
    /// [`Sink::write_checkpoint`], if any.
    fn read_checkpoint(
        &self,
        _task: &str,
    ) -> impl Future<Output = Result<Option<Position>>> + Send {
        async { Ok(None) }
    }

    /// Stores `position` as `task`'s checkpoint (after a full load, where the
    /// change stream starts). The default refuses.
    fn write_checkpoint(
        &self,
        _task: &str,
        _position: &Position,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            Err(Error::unsupported(format!(
                "{} sink cannot store checkpoints yet",
                self.engine()
            )))
        }
    }

    /// Removes `task`'s checkpoint; returns whether there was one.
    fn remove_checkpoint(&self, _task: &str) -> impl Future<Output = Result<bool>> + Send {
        async { Ok(false) }
    }
}

/// One target table a [`ChangeApplier`] writes to.
#[derive(Debug, Clone)]
pub struct ApplyTable {
    /// The converted target schema (as created by the sink).
    pub schema: Arc<TableSchema>,
    /// What to do with a value the target cannot hold.
    pub policy: BadDataPolicy,
}

/// Applies a change stream to the target in transactions (CDC).
///
/// Batches arrive in source commit order with their `schema` set to the converted
/// target schema (rows in its column order). Updates and deletes find their row by
/// primary key, taken from `before` when present and from `after` otherwise; a
/// table without a primary key matches on every column of `before` and changes
/// one row. [`crate::Value::Unchanged`] columns of an update keep their target
/// value. A [`crate::Operation::SchemaChange`] event brings the new schema in its
/// batch: the applier alters the target table to match (added, dropped and
/// widened columns).
pub trait ChangeApplier: Send {
    /// Applies `batch` inside the current target transaction, opening one when
    /// none is open. One source transaction may span many batches; many source
    /// transactions may share one target transaction.
    fn apply(&mut self, batch: Batch) -> impl Future<Output = Result<()>> + Send;

    /// Commits the current target transaction together with the task's checkpoint
    /// (the last `end_position` applied), in the same transaction; returns that
    /// position, now durable. The runner calls it only at source transaction
    /// boundaries. With nothing applied since the last commit it still stores a
    /// newer position (from markers), or returns `None` when there is none.
    fn commit(&mut self) -> impl Future<Output = Result<Option<Position>>> + Send;
}

/// Bulk loader for one partition of one table.
pub trait TableWriter: Send {
    /// Writes a batch of inserts.
    fn write(&mut self, batch: Batch) -> impl Future<Output = Result<()>> + Send;

    /// Completes the load durably; returns rows written (`rows`), rows left out by
    /// the bad-data policy (`skipped_rows`) and the bad values met.
    fn finish(self) -> impl Future<Output = Result<LoadReport>> + Send;
}

/// The [`Sink::Applier`] of a sink that does not apply changes: it cannot be
/// constructed.
#[derive(Debug)]
pub enum NoApplier {}

impl ChangeApplier for NoApplier {
    async fn apply(&mut self, _batch: Batch) -> Result<()> {
        match *self {}
    }

    async fn commit(&mut self) -> Result<Option<Position>> {
        match *self {}
    }
}
