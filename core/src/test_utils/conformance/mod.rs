//! The connector conformance suite.
//!
//! A connector crate that is both a [`Source`] and a [`Sink`] on the same server
//! (PostgreSQL, MySQL, SQLite, …) calls these functions from its own integration
//! test, against its real service, in a database it created for the test:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ferry_core::Result<()> {
//! use ferry_core::DataType;
//! use ferry_core::test_utils::conformance::{self, Capabilities};
//! use ferry_core::test_utils::MemorySink;
//!
//! // A connector's test builds its own source and sink on a fresh database of its
//! // test server (`PgSource::connect(&url)`, `PgSink::connect(&url)`); here, the
//! // in-memory pair, which shares one store the way two connections share a server.
//! let sink = MemorySink::new();
//! let source = sink.source();
//! // Everything the suite knows, minus what the engine cannot hold exactly.
//! let caps = Capabilities::all().without(&DataType::UInt64);
//! let report = conformance::run_all(&source, &sink, "public", &caps).await?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! Every check writes through the sink exactly as the runner does
//! ([`Sink::convert_schema`] → [`Sink::prepare_table`] → [`Sink::open_writer`] →
//! [`TableWriter::write`] several batches, the first one empty → [`TableWriter::finish`]
//! → [`Sink::finish_table`]) and reads back through the source exactly as the runner
//! does ([`Source::discover`] → [`Source::begin_snapshot`] → [`Source::partitions`] →
//! [`Source::read_partition`] for each partition → [`Source::end_snapshot`]). It then
//! compares value by value, rows in primary-key order, and fails with the check,
//! the table, the column and the row key of the **first** difference. Each check
//! uses tables of its own (`ferry_conf_*` in the given namespace), so checks may run
//! concurrently, each from its own `#[tokio::test]`, and may run again on the same
//! database.
//!
//! | check | what it proves |
//! |---|---|
//! | [`sink_round_trip`] | every declared type, with edge values, survives write + read exactly |
//! | [`truncate_reload`] | `Truncate` creates a missing table, empties an existing one, and a reload gives each row once |
//! | [`drop_and_create_twice`] | `DropAndCreate` over an existing table (even with another schema) replaces it |
//! | [`do_nothing`] | `DoNothing` fails on a missing table, keeps an existing table's rows, and appends |
//! | [`unfinished_writer`] | rows are visible only after `finish`; a writer dropped without `finish` loses its rows |
//! | [`partitions_agree`] | reading with 1 or 4 partitions gives the same rows, each once; two writers load one table |
//! | [`schema_round_trip`] | discovery gives back the created columns, types, nullability, keys (and honours the filter) |
//!
//! [`run_all`] runs them in that order.
//!
//! # The tables
//!
//! - **Types table**: `id int64 not null` (primary key) and one nullable column per
//!   type in [`Capabilities::types`], named `cNN_<type>` (e.g. `c07_decimal`). Rows:
//!   one row of NULLs, then every edge value of every column at least once, then the
//!   values again mixed with NULLs; keys include `i64::MIN`/`i64::MAX` and are not
//!   inserted in key order. Edge values: integer extremes; `-0.0`, subnormals,
//!   extremes and (with [`Capabilities::float_specials`]) NaN/±Inf floats; decimals
//!   of [`Capabilities::max_decimal_digits`] digits on either side of the point,
//!   `0.000` (scale is part of the value), NaN/±Infinity with
//!   [`Capabilities::decimal_specials`]; constrained decimals at their precision
//!   limit with their exact scale; empty strings, spaces, the strings `NULL` and
//!   `\N`, quotes and backslashes, control characters (never NUL), accents,
//!   combining marks, RTL, CJK and emoji including ZWJ sequences, a 10 000-character
//!   string; `char(n)` values blank-padded to `n`; empty, 256-value and 70 kB byte
//!   strings; dates and timestamps around the epochs, leap days, the
//!   [`Capabilities::min_date`]…[`Capabilities::max_date`] (and timestamp) extremes,
//!   ±infinity with [`Capabilities::infinite_datetimes`]; `timetz` with ± offsets;
//!   negative and mixed-sign intervals; nil/max UUIDs; JSON documents (`json` keeps
//!   its text exactly, so odd whitespace and duplicate keys; `jsonb` values are
//!   already in normal form: keys sorted by length then bytes, `": "` and `", "`);
//!   IPv4, IPv6 and IPv4-mapped IPv6 `inet`/`cidr`; enum labels with spaces, quotes and
//!   emoji; arrays that are empty, hold only NULL, or NULL between values.
//! - **Bulk table**: `id int64, grp int64, label text not null, note text` with the
//!   primary key `(grp, id)` — key order differs from column order — plus, with
//!   [`Capabilities::keys_and_indexes`], a named primary key, a unique key on
//!   `label` and an index on `note`. Labels are ~150 bytes so that
//!   [`Capabilities::bulk_rows`] rows span many pages; `note` is NULL or `''` in some
//!   rows.
//!
//! The suite calls [`Sink::convert_schema`] with the source engine
//! [`CONFORMANCE_ENGINE`], which no connector knows: the sink must create columns
//! from the [`DataType`] alone (not copy `source_type`, which here is the
//! `DataType`'s display name). `Error`-level findings fail the check; other findings
//! are kept in the report's notes. The created (converted) schema is what discovery
//! must give back (enum type names without their namespace qualifier, which
//! engines print differently); values are compared with the suite's own, so a lossy
//! conversion shows up as a value difference.
//!
//! # What is not checked, and why
//!
//! - **Crash durability.** That `finish` (or `flush`) returning means the data
//!   survives a server crash needs the server killed mid-test, which only the
//!   connector's own tests can do. The suite checks the observable half: rows are
//!   visible to a separate reader (the source, on its own connection) once
//!   `finish` returns, never before, and never from a writer dropped unfinished.
//!   Non-transactional sinks (S3, Kinesis, DynamoDB) write as they go and are
//!   at-least-once by design: they skip [`unfinished_writer`] and say so.
//! - **Writers dropped mid-batch on a live connection.** What "dropped" means for a
//!   server (connection closed, `COPY` aborted) is connector-specific; the suite only
//!   requires that a dropped writer's rows never appear and that it does not block
//!   later work (every step has [`Capabilities::step_timeout`]).
//! - **CDC** ([`Source::stream_changes`], [`Sink::apply`], [`Sink::flush`],
//!   idempotent replay of a batch, schema-change events): needs engine-specific ways
//!   to produce changes at the source; checks will be added here when a connector
//!   implements them.
//! - **[`Value::Other`] / [`DataType::Other`]**: engine bytes, meaningful only
//!   between two instances of the same engine; a type list containing `Other` is a
//!   configuration error.
//! - **Column defaults and `source_type`**: written in each engine's own dialect;
//!   not comparable generically. Estimated sizes are estimates.
//! - **Key-range partitions** are not required: the suite treats a partition as
//!   opaque and only checks that the partitions together cover every row once.
//! - **Concurrent partition reads**: partitions are read one after the other;
//!   running them in parallel is the runner's business (its end-to-end tests).

mod data;

pub use data::{days_since_2000, micros_since_2000};

use super::compare::{compare_rows, describe_difference, same_value, show_value};
use crate::channel::{BatchReceiver, batch_channel};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Batch, ChangeEvent, Operation, Row};
use crate::filter::TableFilter;
use crate::policy::BadDataPolicy;
use crate::schema::{Catalog, FindingLevel, TableId, TableSchema};
use crate::traits::{Partition, Sink, Source, TablePrep, TableWriter};
use crate::types::DataType;
use crate::value::Value;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The source engine name the suite passes to [`Sink::convert_schema`]: unknown to
/// every connector, so the sink maps columns from their [`DataType`] alone.
pub const CONFORMANCE_ENGINE: &str = "ferry-conformance";

/// Prefix of every table the suite creates.
pub const TABLE_PREFIX: &str = "ferry_conf_";

/// What a connector can hold exactly, and the suite's sizes. Start from
/// [`Capabilities::all`] and remove what the engine cannot store and give back
/// unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// Column types of the types table, one column each. The connector must create
    /// a column of each type and discover it back as the same `DataType` with the
    /// same values. An [`DataType::Enum`]'s labels are used, its name is replaced by
    /// `<namespace>.<table>_<column>`. `Int64` and unbounded text are always used
    /// (keys and labels), whatever this list says.
    pub types: Vec<DataType>,
    /// NaN, +Infinity and -Infinity in float columns.
    pub float_specials: bool,
    /// NaN, Infinity and -Infinity in unconstrained decimal columns.
    pub decimal_specials: bool,
    /// Number of digits of the largest and smallest unconstrained decimals
    /// (default 1000: a 1000-digit integer and `0.000…001` with 999 places).
    pub max_decimal_digits: usize,
    /// ±infinity in date and timestamp columns ([`crate::value::DATE_NEG_INFINITY`] …).
    pub infinite_datetimes: bool,
    /// Earliest date loaded, in days since 2000-01-01 (default 0001-01-01; see
    /// [`days_since_2000`] for other dates, e.g. PostgreSQL's 4714-11-24 BC).
    pub min_date: i32,
    /// Latest date loaded (default 9999-12-31).
    pub max_date: i32,
    /// Earliest timestamp loaded, in microseconds since 2000-01-01 (default
    /// 0001-01-01 00:00:00; see [`micros_since_2000`]).
    pub min_timestamp: i64,
    /// Latest timestamp loaded (default 9999-12-31 23:59:59.999999).
    pub max_timestamp: i64,
    /// Whether primary key names, unique keys and secondary indexes are created by
    /// [`Sink::finish_table`] and discovered back (compared by name, columns and
    /// uniqueness).
    pub keys_and_indexes: bool,
    /// Rows of the bulk table in [`partitions_agree`] (default 4000, a few hundred
    /// kilobytes: enough pages for a physical split).
    pub bulk_rows: usize,
    /// Rows per batch written to a sink (default 500; the types table uses batches
    /// of at most 4 rows so it too is written in several batches).
    pub batch_rows: usize,
    /// Longest any single connector call may take before the check fails (default
    /// 120 s). A hang, e.g. a lock held by a dropped writer, becomes an error.
    pub step_timeout: Duration,
}

impl Capabilities {
    /// Every type the suite knows, every edge value on.
    pub fn all() -> Self {
        let enum_type = DataType::Enum {
            name: String::new(),
            labels: vec![
                "sad".into(),
                "ok".into(),
                "happy 😀".into(),
                "with space".into(),
                "it's".into(),
            ],
        };
        Self::new(vec![
            DataType::Bool,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::UInt64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal {
                precision: None,
                scale: None,
            },
            DataType::Decimal {
                precision: Some(12),
                scale: Some(3),
            },
            DataType::text(),
            DataType::Text {
                max_len: Some(20),
                fixed: false,
            },
            DataType::Text {
                max_len: Some(5),
                fixed: true,
            },
            DataType::Bytes,
            DataType::Date,
            DataType::Time,
            DataType::TimeTz,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Interval,
            DataType::Uuid,
            DataType::Json { binary: false },
            DataType::Json { binary: true },
            DataType::Inet,
            DataType::Cidr,
            DataType::MacAddr,
            enum_type,
            DataType::Array(Box::new(DataType::Int32)),
            DataType::Array(Box::new(DataType::text())),
            DataType::Array(Box::new(DataType::Float64)),
        ])
    }

    /// Exactly `types`, every edge value on, default sizes.
    pub fn new(types: Vec<DataType>) -> Self {
        Capabilities {
            types,
            float_specials: true,
            decimal_specials: true,
            max_decimal_digits: 1000,
            infinite_datetimes: true,
            min_date: days_since_2000(1, 1, 1),
            max_date: days_since_2000(9999, 12, 31),
            min_timestamp: micros_since_2000(1, 1, 1, 0, 0, 0, 0),
            max_timestamp: micros_since_2000(9999, 12, 31, 23, 59, 59, 999_999),
            keys_and_indexes: true,
            bulk_rows: 4000,
            batch_rows: 500,
            step_timeout: Duration::from_secs(120),
        }
    }

    /// Without `data_type` (compared with `==`; an `Enum` matches any enum, an
    /// `Array` of it is kept unless listed too).
    pub fn without(mut self, data_type: &DataType) -> Self {
        self.types.retain(|t| match (t, data_type) {
            (DataType::Enum { .. }, DataType::Enum { .. }) => false,
            _ => t != data_type,
        });
        self
    }

    /// Keeps only the types for which `keep` is true.
    pub fn retain_types(mut self, keep: impl FnMut(&DataType) -> bool) -> Self {
        self.types.retain(keep);
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::all()
    }
}

/// What the suite did: one entry per check that passed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The checks, in the order they ran.
    pub checks: Vec<CheckReport>,
}

/// One passed check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The check's function name (`sink_round_trip`, …).
    pub name: &'static str,
    /// Tables it created, as the sink named them.
    pub tables: Vec<TableId>,
    /// Rows written and finished through the sink.
    pub rows_written: u64,
    /// Rows read back through the source (all reads).
    pub rows_read: u64,
    /// Number of partitions the source returned, per read, with the `max` asked.
    pub partitions: Vec<(usize, usize)>,
    /// Findings from `convert_schema` and anything worth knowing (e.g. a source
    /// that never split a table, so the split itself was not exercised).
    pub notes: Vec<String>,
}

impl Report {
    /// Appends the checks of `other`.
    pub fn merge(&mut self, other: Report) {
        self.checks.extend(other.checks);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let parts = c
                .partitions
                .iter()
                .map(|(got, max)| format!("{got}/{max}"))
                .collect::<Vec<_>>()
                .join(" ");
            writeln!(
                f,
                "ok {:<22} rows written {:>6}, read {:>6}, partitions (got/max) [{parts}]",
                c.name, c.rows_written, c.rows_read
            )?;
            for note in &c.notes {
                writeln!(f, "   note: {note}")?;
            }
        }
        Ok(())
    }
}

/// Runs every check, in the order of the table in the module docs, stopping at the
/// first failure.
pub async fn run_all<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    namespace: &str,
    caps: &Capabilities,
) -> Result<Report> {
    let mut report = Report::default();
    report.merge(sink_round_trip(source, sink, namespace, caps).await?);
    report.merge(truncate_reload(source, sink, namespace, caps).await?);
    report.merge(drop_and_create_twice(source, sink, namespace, caps).await?);
    report.merge(do_nothing(source, sink, namespace, caps).await?);
    report.merge(unfinished_writer(source, sink, namespace, caps).await?);
    report.merge(partitions_agree(source, sink, namespace, caps).await?);
    report.merge(schema_round_trip(source, sink, namespace, caps).await?);
    Ok(report)
}

/// Loads the types table (`ferry_conf_values`: every declared type with its edge
/// values and NULLs) with `DropAndCreate` in several batches, reads it back with up
/// to 4 partitions, and compares every value.
pub async fn sink_round_trip<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    namespace: &str,
    caps: &Capabilities,
) -> Result<Report> {
    let mut cx = Cx::new("sink_round_trip", source, sink, namespace, caps)?;
    let schema = data::types_table(namespace, &cx.table("values"), caps);
    let rows = data::types_rows(&schema, caps).map_err(|e| cx.fail_with(e))?;
    let target = cx.create(&schema, TablePrep::DropAndCreate).await?;
    cx.load_in(&target, &rows, 1, 4).await?;
    cx.finish_table(&target, TablePrep::DropAndCreate).await?;
    let read = cx.read(&target.id, 4).await?;
    cx.expect_rows(&target, &rows, &read, "after the load")?;
    Ok(cx.done())
}

/// `Truncate` on `ferry_conf_truncate`: creates the table if missing, loads it;
/// truncates again (the table must then read empty); reloads the same rows, which
/// must then read back exactly once each.
pub async fn truncate_reload<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    namespace: &str,
    caps: &Capabilities,
) -> Result<Report> {
    let mut cx = Cx::new("truncate_reload", source, sink, namespace, caps)?;
    let schema = data::bulk_table(namespace, &cx.table("truncate"), caps, false);
    let rows = data::bulk_rows(0..200, "truncate", false);
    let target = cx.create(&schema, TablePrep::Truncate).await?;
    cx.load(&target, &rows, 1).await?;
    cx.finish_table(&target, TablePrep::Truncate).await?;
    let read = cx.read(&target.id, 2).await?;
    cx.expect_rows(&target, &rows, &read, "after the first load")?;

    let target = cx.create(&schema, TablePrep::Truncate).await?;
    let read = cx.read(&target.id, 2).await?;
    cx.expect_rows(&target, &[], &read, "right after prepare_table(Truncate)")?;
    cx.load(&target, &rows, 2).await?;
    cx.finish_table(&target, TablePrep::Truncate).await?;
    let read = cx.read(&target.id, 2).await?;
    cx.expect_rows(&target, &rows, &read, "after truncate and reload")?;
    Ok(cx.done())
}

/// `DropAndCreate` twice on `ferry_conf_recreate`, the second time with an extra
/// column and rows with the same keys but other labels: the table must then have
/// the second schema and only the second rows.
pub async fn drop_and_create_twice<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    namespace: &str,
    caps: &Capabilities,
) -> Result<Report> {
    let mut cx = Cx::new("drop_and_create_twice", source, sink, namespace, caps)?;
    let name = cx.table("recreate");
    let first = data::bulk_table(namespace, &name, caps, false);
    let target = cx.create(&first, TablePrep::DropAndCreate).await?;
    cx.load(&target, &data::bulk_rows(0..150, "first", false), 1)
        .await?;
    cx.finish_table(&target, TablePrep::DropAndCreate).await?;

    let second = data::bulk_table(namespace, &name, caps, true);
    let rows = data::bulk_rows(0..150, "second", true);
    let target = cx.create(&second, TablePrep::DropAndCreate).await?;
    cx.load(&target, &rows, 1).await?;
    cx.finish_table(&target, TablePrep::DropAndCreate).await?;
    let read = cx.read(&target.id, 2).await?;
    cx.expect_schema(&target, &read.schema)?;
    cx.expect_rows(&target, &rows, &read, "after the second drop-and-create")?;
    Ok(cx.done())
}

/// `DoNothing`: on `ferry_conf_missing` (never created) `prepare_table` must fail;
/// on `ferry_conf_do_nothing` (loaded first) it must keep the rows, and a second
/// load must add to them.
pub async fn do_nothing<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    namespace: &str,
    caps: &Capabilities,
) -> Result<Report> {
    let mut cx = Cx::new("do_nothing", source, sink, namespace, caps)?;
    let missing = data::bulk_table(namespace, &cx.table("missing"), caps, false);
    let (missing, findings) = cx
        .sink
        .convert_schema(CONFORMANCE_ENGINE, &missing)
        .map_err(|e| cx.fail_with(e.context("convert_schema")))?;
    cx.note_findings(&findings);
    let outcome = tokio::time::timeout(
        caps.step_timeout,
        cx.sink.prepare_table(&missing, TablePrep::DoNothing),
    )
    .await;
    match outcome {
        Err(_) => {
            return Err(cx.fail(format!(
                "prepare_table(DoNothing) on missing table {} did not complete within {:?}",
                missing.id, caps.step_timeout
            )));
        }
        Ok(Ok(())) => {
            return Err(cx.fail(format!(
                "prepare_table(DoNothing) on table {}, which does not exist, succeeded; it \
                 must fail (the task asked for an existing table)",
                missing.id
            )));
        }
        Ok(Err(e)) if e.kind() != ErrorKind::Schema => cx.report.notes.push(format!(
            "prepare_table(DoNothing) on a missing table failed with a {} error; a schema \
             error says better what is wrong: {e}",
            e.kind()
        )),
        Ok(Err(_)) => {}
    }

    let schema = data::bulk_table(namespace, &cx.table("do_nothing"), caps, false);
    let first = data::bulk_rows(0..100, "first", false);
    let target = cx.create(&schema, TablePrep::DropAndCreate).await?;
    cx.load(&target, &first, 1).await?;
    cx.finish_table(&target, TablePrep::DropAndCreate).await?;
    let target = cx.create(&schema, TablePrep::DoNothing).await?;
    let read = cx.read(&target.id, 2).await?;
    cx.expect_rows(&target, &first, &read, "after prepare_table(DoNothing)")?;

    let second = data::bulk_rows(100..180, "second", false);
    cx.load(&target, &second, 1).await?;
    cx.finish_table(&target, TablePrep::DoNothing).await?;
    let all: Vec<Row> = first.into_iter().chain(second).collect();
    let read = cx.read(&target.id, 2).await?;
    cx.expect_rows(&target, &all, &read, "after a second load with DoNothing")?;
    Ok(cx.done())
}

/// Flush durability, as far as it is testable generically, on
/// `ferry_conf_unfinished`: rows written to a writer are not visible before its
/// `finish`; a writer dropped without `finish` loses its rows and does not block a
/// second writer, whose rows are all visible once its `finish` returns (and
/// `finish` returns their number).
pub async fn unfinished_writer<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    namespace: &str,
    caps: &Capabilities,
) -> Result<Report> {
    let mut cx = Cx::new("unfinished_writer", source, sink, namespace, caps)?;
    let schema = data::bulk_table(namespace, &cx.table("unfinished"), caps, false);
    let target = cx.create(&schema, TablePrep::DropAndCreate).await?;
    let lost = data::bulk_rows(0..300, "lost", false);
    let mut writer = cx
        .step(
            "open_writer (to be dropped)",
            cx.sink
                .open_writer(Arc::clone(&target), BadDataPolicy::Fail),
        )
        .await?;
    for chunk in lost.chunks(caps.batch_rows.max(1)) {
        cx.step(
            "write (to the writer to be dropped)",
            writer.write(batch_of(&target, chunk)),
        )
        .await?;
    }
    let read = cx.read(&target.id, 2).await?;
    cx.expect_rows(
        &target,
        &[],
        &read,
        "while a writer holds rows it has not finished (they must not be visible yet)",
    )?;
    drop(writer);

    let kept = data::bulk_rows(300..600, "kept", false);
    cx.load(&target, &kept, 1).await?;
    cx.finish_table(&target, TablePrep::DropAndCreate).await?;
    let read = cx.read(&target.id, 2).await?;
    cx.expect_rows(
        &target,
        &kept,
        &read,
        "after a writer was dropped without finish and another one finished",
    )?;
    Ok(cx.done())
}

/// Loads [`Capabilities::bulk_rows`] rows into `ferry_conf_partitions` through two
/// writers at once, then reads the table with `max` = 1 and `max` = 4 partitions:
/// both reads must give exactly the rows written, each once.
pub async fn partitions_agree<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    namespace: &str,
    caps: &Capabilities,
) -> Result<Report> {
    let mut cx = Cx::new("partitions_agree", source, sink, namespace, caps)?;
    let schema = data::bulk_table(namespace, &cx.table("partitions"), caps, false);
    let n = i64::try_from(caps.bulk_rows.max(1)).unwrap_or(i64::MAX);
    let rows = data::bulk_rows(0..n, "bulk", false);
    let target = cx.create(&schema, TablePrep::DropAndCreate).await?;
    cx.load(&target, &rows, 2).await?;
    cx.finish_table(&target, TablePrep::DropAndCreate).await?;
    let one = cx.read(&target.id, 1).await?;
    cx.expect_rows(&target, &rows, &one, "read as 1 partition")?;
    let four = cx.read(&target.id, 4).await?;
    cx.expect_rows(&target, &rows, &four, "read as up to 4 partitions")?;
    if four.partitions < 2 {
        cx.report.notes.push(format!(
            "the source returned {} partition(s) for {} rows with max 4: splitting a table \
             was not exercised",
            four.partitions,
            rows.len()
        ));
    }
    Ok(cx.done())
}

/// Creates the types table and the bulk table (`ferry_conf_schema_types`,
/// `ferry_conf_schema_bulk`) empty, and checks that discovery gives back what was
/// created: column names in order, types, nullability, the primary key in key
/// order and, with [`Capabilities::keys_and_indexes`], its name, the unique keys and
/// indexes. Also checks that discovery honours include and exclude patterns and
/// that an empty table reads back empty.
pub async fn schema_round_trip<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    namespace: &str,
    caps: &Capabilities,
) -> Result<Report> {
    let mut cx = Cx::new("schema_round_trip", source, sink, namespace, caps)?;
    let types = data::types_table(namespace, &cx.table("schema_types"), caps);
    let bulk = data::bulk_table(namespace, &cx.table("schema_bulk"), caps, false);
    let mut created = Vec::new();
    for schema in [&types, &bulk] {
        let target = cx.create(schema, TablePrep::DropAndCreate).await?;
        cx.finish_table(&target, TablePrep::DropAndCreate).await?;
        let read = cx.read(&target.id, 4).await?;
        cx.expect_schema(&target, &read.schema)?;
        cx.expect_rows(&target, &[], &read, "created empty")?;
        created.push(target);
    }
    let [types, bulk] = [&created[0].id, &created[1].id];

    let both = format!("{}.{}schema_%", types.namespace, TABLE_PREFIX);
    let found = cx.discover_ids(std::slice::from_ref(&both), &[]).await?;
    cx.expect_found(&found, &[types, bulk], &[], &format!("include {both}"))?;
    let found = cx
        .discover_ids(std::slice::from_ref(&both), &[id_pattern(bulk)])
        .await?;
    cx.expect_found(
        &found,
        &[types],
        &[bulk],
        &format!("include {both}, exclude {}", id_pattern(bulk)),
    )?;
    let found = cx.discover_ids(&[id_pattern(types)], &[]).await?;
    cx.expect_found(
        &found,
        &[types],
        &[bulk],
        &format!("include {}", id_pattern(types)),
    )?;
    let elsewhere = format!("{}_ferry_no_such_namespace.%", types.namespace);
    let found = cx
        .discover_ids(std::slice::from_ref(&elsewhere), &[])
        .await?;
    cx.expect_found(&found, &[], &[types, bulk], &format!("include {elsewhere}"))?;
    Ok(cx.done())
}

// ---------------------------------------------------------------------------------
// Machinery shared by the checks

fn id_pattern(id: &TableId) -> String {
    format!("{}.{}", id.namespace, id.name)
}

fn batch_of(schema: &Arc<TableSchema>, rows: &[Row]) -> Batch {
    let mut batch = Batch::with_capacity(Arc::clone(schema), rows.len());
    for row in rows {
        batch.push(ChangeEvent::insert(row.clone()));
    }
    batch
}

/// What one read through the source gave.
struct ReadBack {
    schema: TableSchema,
    rows: Vec<Row>,
    partitions: usize,
}

/// One check's context: the connectors, the settings and the report being built.
struct Cx<'a, S, K> {
    source: &'a S,
    sink: &'a K,
    caps: &'a Capabilities,
    report: CheckReport,
}

impl<'a, S: Source, K: Sink> Cx<'a, S, K> {
    fn new(
        name: &'static str,
        source: &'a S,
        sink: &'a K,
        namespace: &str,
        caps: &'a Capabilities,
    ) -> Result<Self> {
        if namespace.is_empty() || namespace.contains(['.', '%', '*']) {
            return Err(Error::config(format!(
                "conformance check {name}: namespace {namespace:?} must be non-empty and \
                 contain no '.', '%' or '*'"
            )));
        }
        Ok(Cx {
            source,
            sink,
            caps,
            report: CheckReport {
                name,
                tables: Vec::new(),
                rows_written: 0,
                rows_read: 0,
                partitions: Vec::new(),
                notes: Vec::new(),
            },
        })
    }

    fn table(&self, suffix: &str) -> String {
        format!("{TABLE_PREFIX}{suffix}")
    }

    fn done(self) -> Report {
        Report {
            checks: vec![self.report],
        }
    }

    /// A failure of this check (the connectors behaved wrongly).
    fn fail(&self, message: impl fmt::Display) -> Error {
        Error::new(
            ErrorKind::Internal,
            format!("conformance check {} failed: {message}", self.report.name),
        )
        .retryable(false)
    }

    /// A connector error during this check, with the check's name in front.
    fn fail_with(&self, error: Error) -> Error {
        error.context(format!("conformance check {}", self.report.name))
    }

    /// Runs one connector call with the step timeout and names the step in errors.
    async fn step<T>(
        &self,
        what: impl fmt::Display,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.caps.step_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.fail_with(e.context(what))),
            Err(_) => Err(self.fail(format!(
                "{what} did not complete within {:?} (a lock held by an unfinished or \
                 dropped writer?)",
                self.caps.step_timeout
            ))),
        }
    }

    fn note_findings(&mut self, findings: &[crate::schema::Finding]) {
        for f in findings {
            let note = format!("convert_schema: {f}");
            if !self.report.notes.contains(&note) {
                self.report.notes.push(note);
            }
        }
    }

    /// `convert_schema` then `prepare_table`; returns the created schema.
    async fn create(&mut self, schema: &TableSchema, prep: TablePrep) -> Result<Arc<TableSchema>> {
        let (target, findings) = self
            .sink
            .convert_schema(CONFORMANCE_ENGINE, schema)
            .map_err(|e| self.fail_with(e.context(format!("convert_schema of {}", schema.id))))?;
        if let Some(f) = findings.iter().find(|f| f.level == FindingLevel::Error) {
            return Err(self.fail(format!(
                "convert_schema of {} reported an error for a type the connector declares it \
                 supports (remove the type from Capabilities::types if it cannot hold it): {f}",
                schema.id
            )));
        }
        self.note_findings(&findings);
        if target.columns.len() != schema.columns.len()
            || target.primary_key.len() != schema.primary_key.len()
        {
            return Err(self.fail(format!(
                "convert_schema of {} changed the number of columns or key columns ({} → {}, \
                 {} → {}); the suite needs one target column per source column",
                schema.id,
                schema.columns.len(),
                target.columns.len(),
                schema.primary_key.len(),
                target.primary_key.len()
            )));
        }
        self.step(
            format!("prepare_table({prep:?}) of {}", target.id),
            self.sink.prepare_table(&target, prep),
        )
        .await?;
        if !self.report.tables.contains(&target.id) {
            self.report.tables.push(target.id.clone());
        }
        Ok(Arc::new(target))
    }

    async fn finish_table(&self, target: &TableSchema, prep: TablePrep) -> Result<()> {
        self.step(
            format!("finish_table({prep:?}) of {}", target.id),
            self.sink.finish_table(target, prep),
        )
        .await
    }

    async fn load(
        &mut self,
        target: &Arc<TableSchema>,
        rows: &[Row],
        writers: usize,
    ) -> Result<u64> {
        let batch_rows = self.caps.batch_rows.max(1);
        self.load_in(target, rows, writers, batch_rows).await
    }

    /// Writes `rows` through `writers` writers open at the same time, in batches of
    /// `batch_rows` dealt round-robin (writer 0 also gets an empty batch first), and
    /// finishes them; each `finish` must return the rows its writer was given.
    async fn load_in(
        &mut self,
        target: &Arc<TableSchema>,
        rows: &[Row],
        writers: usize,
        batch_rows: usize,
    ) -> Result<u64> {
        let id = &target.id;
        let mut open = Vec::new();
        for i in 0..writers.max(1) {
            let writer = self
                .step(
                    format!("open_writer #{i} of {id}"),
                    self.sink
                        .open_writer(Arc::clone(target), BadDataPolicy::Fail),
                )
                .await?;
            open.push((writer, 0u64));
        }
        if let Some((writer, _)) = open.first_mut() {
            self.step(
                format!("write of an empty batch to {id}"),
                writer.write(Batch::new(Arc::clone(target))),
            )
            .await?;
        }
        let count = open.len();
        for (n, chunk) in rows.chunks(batch_rows.max(1)).enumerate() {
            if let Some((writer, written)) = open.get_mut(n % count) {
                self.step(
                    format!("write of batch {n} ({} rows) to {id}", chunk.len()),
                    writer.write(batch_of(target, chunk)),
                )
                .await?;
                *written += chunk.len() as u64;
            }
        }
        let mut total = 0;
        for (i, (writer, written)) in open.into_iter().enumerate() {
            let finished = self
                .step(format!("finish of writer #{i} of {id}"), writer.finish())
                .await?;
            if finished.has_bad_data() || finished.skipped_rows > 0 {
                return Err(self.fail(format!(
                    "writer #{i} of {id} reported bad data under the fail policy: {:?}",
                    finished.bad_rows.first()
                )));
            }
            let finished = finished.rows;
            if finished != written {
                return Err(self.fail(format!(
                    "writer #{i} of {id} was given {written} rows but finish returned {finished}"
                )));
            }
            total += finished;
        }
        self.report.rows_written += total;
        Ok(total)
    }

    /// Discovers with include/exclude patterns; fails if a table the filter does not
    /// select comes back.
    async fn discover(&self, include: &[String], exclude: &[String]) -> Result<Catalog> {
        let filter = TableFilter::new(include, exclude).map_err(|e| self.fail_with(e))?;
        let catalog = self
            .step(
                format!("discover (include {include:?}, exclude {exclude:?})"),
                self.source.discover(&filter),
            )
            .await?;
        if let Some(stray) = catalog.tables.iter().find(|t| !filter.matches(&t.id)) {
            return Err(self.fail(format!(
                "discover (include {include:?}, exclude {exclude:?}) returned table {}, \
                 which the filter does not select",
                stray.id
            )));
        }
        Ok(catalog)
    }

    /// [`Cx::discover`], table ids only.
    async fn discover_ids(&self, include: &[String], exclude: &[String]) -> Result<Vec<TableId>> {
        let catalog = self.discover(include, exclude).await?;
        Ok(catalog.tables.into_iter().map(|t| t.id).collect())
    }

    fn expect_found(
        &self,
        found: &[TableId],
        present: &[&TableId],
        absent: &[&TableId],
        what: &str,
    ) -> Result<()> {
        if let Some(missing) = present.iter().find(|id| !found.contains(id)) {
            return Err(self.fail(format!(
                "discover ({what}) did not return table {missing}; it returned [{}]",
                join_ids(found)
            )));
        }
        if let Some(extra) = absent.iter().find(|id| found.contains(id)) {
            return Err(self.fail(format!(
                "discover ({what}) returned table {extra}, which the filter excludes"
            )));
        }
        Ok(())
    }

    /// Reads the whole table through the source with at most `max` partitions.
    async fn read(&mut self, id: &TableId, max: usize) -> Result<ReadBack> {
        let catalog = self.discover(&[id_pattern(id)], &[]).await?;
        let ids: Vec<TableId> = catalog.tables.iter().map(|t| t.id.clone()).collect();
        let schema = catalog
            .tables
            .into_iter()
            .find(|t| &t.id == id)
            .ok_or_else(|| {
                self.fail(format!(
                    "discover (include {}) did not return table {id}, which the sink \
                     created; it returned [{}]",
                    id_pattern(id),
                    join_ids(&ids)
                ))
            })?;
        let snapshot = self
            .step("begin_snapshot", self.source.begin_snapshot())
            .await?;
        let read = self.read_snapshot(&snapshot, &schema, max).await;
        let ended = self
            .step("end_snapshot", self.source.end_snapshot(snapshot))
            .await;
        let (rows, partitions) = read?;
        ended?;
        self.report.rows_read += rows.len() as u64;
        self.report.partitions.push((partitions, max));
        Ok(ReadBack {
            schema,
            rows,
            partitions,
        })
    }

    async fn read_snapshot(
        &self,
        snapshot: &crate::traits::Snapshot,
        schema: &TableSchema,
        max: usize,
    ) -> Result<(Vec<Row>, usize)> {
        let id = &schema.id;
        let parts = self
            .step(
                format!("partitions of {id} (max {max})"),
                self.source.partitions(snapshot, schema, max),
            )
            .await?;
        self.check_partitions(id, &parts, max)?;
        let table = Arc::new(schema.clone());
        let mut rows = Vec::new();
        for part in parts.iter().cloned() {
            let what = format!(
                "read_partition {}/{} of {id} ({:?})",
                part.index + 1,
                part.count,
                part.range
            );
            let (tx, rx) = batch_channel(8, 16 << 20);
            let (sent, received) = tokio::join!(
                self.step(
                    &what,
                    self.source.read_partition(
                        snapshot,
                        Arc::clone(&table),
                        part,
                        BadDataPolicy::Fail,
                        tx
                    )
                ),
                self.collect(&what, schema, rx)
            );
            let received = received?;
            let sent = sent?.rows;
            if sent != received.len() as u64 {
                return Err(self.fail(format!(
                    "{what} returned {sent} rows read but sent {}",
                    received.len()
                )));
            }
            rows.extend(received);
        }
        Ok((rows, parts.len()))
    }

    fn check_partitions(&self, id: &TableId, parts: &[Partition], max: usize) -> Result<()> {
        if parts.len() > max.max(1) {
            return Err(self.fail(format!(
                "partitions of {id} with max {max} returned {} partitions",
                parts.len()
            )));
        }
        for (i, p) in parts.iter().enumerate() {
            if &p.table != id || p.index != i || p.count != parts.len() {
                return Err(self.fail(format!(
                    "partitions of {id}: partition {i} says table {}, index {}, count {} \
                     (expected {id}, {i}, {})",
                    p.table,
                    p.index,
                    p.count,
                    parts.len()
                )));
            }
        }
        Ok(())
    }

    /// Receives one partition's batches: inserts with a full row image for `schema`.
    async fn collect(
        &self,
        what: &str,
        schema: &TableSchema,
        mut rx: BatchReceiver,
    ) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        while let Some(batch) = rx.recv().await {
            if batch.schema.id != schema.id || batch.schema.columns.len() != schema.columns.len() {
                return Err(self.fail(format!(
                    "{what} sent a batch for table {} with {} columns; expected {} with {}",
                    batch.schema.id,
                    batch.schema.columns.len(),
                    schema.id,
                    schema.columns.len()
                )));
            }
            for event in batch.events {
                let n = rows.len();
                match (event.op, event.after) {
                    (Operation::Insert, Some(row)) if row.len() == schema.columns.len() => {
                        rows.push(row);
                    }
                    (Operation::Insert, Some(row)) => {
                        return Err(self.fail(format!(
                            "{what}: row {n} has {} values for {} columns",
                            row.len(),
                            schema.columns.len()
                        )));
                    }
                    (op, after) => {
                        return Err(self.fail(format!(
                            "{what}: event {n} is {op:?} with{} a row image; snapshot rows \
                             must be inserts with the row",
                            if after.is_some() { "" } else { "out" }
                        )));
                    }
                }
            }
        }
        Ok(rows)
    }

    /// Discovered schema against the created one: names in order, types, nullability,
    /// primary key and, if enabled, key names, unique keys and indexes. Enum type
    /// names are compared without namespace (see [`same_type`]).
    fn expect_schema(&self, created: &TableSchema, found: &TableSchema) -> Result<()> {
        let id = &created.id;
        let names = |s: &TableSchema| s.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        if names(created) != names(found) {
            return Err(self.fail(format!(
                "table {id}: discovered columns {:?}, created {:?}",
                names(found),
                names(created)
            )));
        }
        for (c, f) in created.columns.iter().zip(&found.columns) {
            if !same_type(&c.data_type, &f.data_type) {
                return Err(self.fail(format!(
                    "table {id} column {}: discovered type {} (source type {:?}), created {}",
                    c.name, f.data_type, f.source_type, c.data_type
                )));
            }
            if c.nullable != f.nullable {
                return Err(self.fail(format!(
                    "table {id} column {}: discovered nullable = {}, created nullable = {}",
                    c.name, f.nullable, c.nullable
                )));
            }
        }
        if created.primary_key != found.primary_key {
            return Err(self.fail(format!(
                "table {id}: discovered primary key {:?}, created {:?}",
                found.primary_key, created.primary_key
            )));
        }
        if !self.caps.keys_and_indexes {
            return Ok(());
        }
        if created.primary_key_name != found.primary_key_name {
            return Err(self.fail(format!(
                "table {id}: discovered primary key name {:?}, created {:?}",
                found.primary_key_name, created.primary_key_name
            )));
        }
        let mut want = created.unique_keys.clone();
        let mut got = found.unique_keys.clone();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        got.sort_by(|a, b| a.name.cmp(&b.name));
        if want != got {
            return Err(self.fail(format!(
                "table {id}: discovered unique keys {got:?}, created {want:?}"
            )));
        }
        for index in &created.indexes {
            let same = found.indexes.iter().find(|i| i.name == index.name);
            let ok = same.is_some_and(|i| {
                i.unique == index.unique
                    && i.parts == index.parts
                    && i.predicate == index.predicate
                    && (index.method.is_none() || i.method == index.method)
            });
            if !ok {
                return Err(self.fail(format!(
                    "table {id}: created index {index:?}, discovered {same:?}"
                )));
            }
        }
        if found.indexes.len() != created.indexes.len() {
            return Err(self.fail(format!(
                "table {id}: discovered indexes {:?}, created {:?}",
                found.indexes, created.indexes
            )));
        }
        Ok(())
    }

    /// The rows read back must be exactly `expected` (as a multiset), compared value
    /// by value in primary-key order. Columns are matched by the created names.
    fn expect_rows(
        &self,
        created: &TableSchema,
        expected: &[Row],
        read: &ReadBack,
        when: &str,
    ) -> Result<()> {
        let id = &created.id;
        let mut positions = Vec::with_capacity(created.columns.len());
        for column in &created.columns {
            let at = read.schema.column_index(&column.name).ok_or_else(|| {
                self.fail(format!(
                    "table {id} {when}: column {} was created but is not discovered",
                    column.name
                ))
            })?;
            positions.push(at);
        }
        let mut actual: Vec<Row> = read
            .rows
            .iter()
            .map(|row| {
                positions
                    .iter()
                    .map(|&at| row.get(at).cloned().unwrap_or(Value::Unchanged))
                    .collect()
            })
            .collect();
        let key: Vec<usize> = created.primary_key_indices();
        let key_of =
            |row: &Row| -> Row { key.iter().filter_map(|&i| row.get(i).cloned()).collect() };
        let order = |a: &Row, b: &Row| {
            compare_rows(&key_of(a), &key_of(b)).then_with(|| compare_rows(a, b))
        };
        let mut expected: Vec<Row> = expected.to_vec();
        expected.sort_by(order);
        actual.sort_by(order);
        let show_key = |row: &Row| -> String {
            key.iter()
                .filter_map(|&i| {
                    Some(format!(
                        "{}={}",
                        created.columns.get(i)?.name,
                        show_value(row.get(i)?)
                    ))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (mut e, mut a) = (0, 0);
        while e < expected.len() || a < actual.len() {
            match (expected.get(e), actual.get(a)) {
                (Some(want), Some(got)) => {
                    let by_key = compare_rows(&key_of(want), &key_of(got));
                    if by_key.is_lt() {
                        return Err(self.missing_row(
                            id,
                            when,
                            &show_key(want),
                            expected.len(),
                            actual.len(),
                        ));
                    }
                    if by_key.is_gt() {
                        return Err(self.extra_row(
                            id,
                            when,
                            &show_key(got),
                            expected.len(),
                            actual.len(),
                        ));
                    }
                    for (i, column) in created.columns.iter().enumerate() {
                        if let (Some(w), Some(g)) = (want.get(i), got.get(i))
                            && !same_value(w, g)
                        {
                            return Err(self.fail(format!(
                                "table {id} {when}: column {} ({}), row ({}): {}",
                                column.name,
                                column.data_type,
                                show_key(want),
                                describe_difference(w, g)
                            )));
                        }
                    }
                    e += 1;
                    a += 1;
                }
                (Some(want), None) => {
                    return Err(self.missing_row(
                        id,
                        when,
                        &show_key(want),
                        expected.len(),
                        actual.len(),
                    ));
                }
                (None, Some(got)) => {
                    return Err(self.extra_row(
                        id,
                        when,
                        &show_key(got),
                        expected.len(),
                        actual.len(),
                    ));
                }
                (None, None) => break,
            }
        }
        Ok(())
    }

    fn missing_row(&self, id: &TableId, when: &str, key: &str, want: usize, got: usize) -> Error {
        self.fail(format!(
            "table {id} {when}: row ({key}) was written but not read back ({want} rows \
             expected, {got} read)"
        ))
    }

    fn extra_row(&self, id: &TableId, when: &str, key: &str, want: usize, got: usize) -> Error {
        self.fail(format!(
            "table {id} {when}: row ({key}) was read back but not expected, or read back \
             twice ({want} rows expected, {got} read)"
        ))
    }
}

/// Type equality, except that enum names are compared without their namespace
/// qualifier and quotes: engines print type names their own way (PostgreSQL's
/// `format_type` leaves out a schema on the search path). Labels must be equal.
fn same_type(created: &DataType, found: &DataType) -> bool {
    fn unqualified(name: &str) -> String {
        name.rsplit('.').next().unwrap_or(name).replace('"', "")
    }
    match (created, found) {
        (
            DataType::Enum {
                name: a,
                labels: la,
            },
            DataType::Enum {
                name: b,
                labels: lb,
            },
        ) => la == lb && unqualified(a) == unqualified(b),
        (DataType::Array(a), DataType::Array(b)) => same_type(a, b),
        _ => created == found,
    }
}

fn join_ids(ids: &[TableId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
