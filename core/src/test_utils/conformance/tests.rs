//! The suite against the in-memory connectors, and against deliberately broken
//! wrappers of them: each check must catch the fault it is about.

use super::*;
use crate::channel::BatchSender;
use crate::policy::LoadReport;
use crate::schema::{Catalog, Finding};
use crate::test_utils::memory::{MemorySink, MemorySource, MemoryStore, MemoryWriter};
use crate::traits::{PartitionRange, Snapshot};
use crate::value::Decimal;

fn caps() -> Capabilities {
    Capabilities {
        bulk_rows: 700,
        batch_rows: 64,
        step_timeout: Duration::from_secs(10),
        ..Capabilities::all()
    }
}

fn memory() -> (MemorySource, MemorySink) {
    let sink = MemorySink::new();
    (sink.source().with_batch_rows(50), sink)
}

#[tokio::test]
async fn memory_connectors_pass_every_check() {
    let (source, sink) = memory();
    let report = run_all(&source, &sink, "conf", &caps())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "sink_round_trip",
            "truncate_reload",
            "drop_and_create_twice",
            "do_nothing",
            "unfinished_writer",
            "partitions_agree",
            "schema_round_trip"
        ]
    );
    let bulk = &report.checks[5];
    assert_eq!(bulk.partitions, vec![(1, 1), (4, 4)]);
    assert_eq!(bulk.rows_written, 700);
    assert!(bulk.notes.is_empty(), "{:?}", bulk.notes);
    assert_eq!(source.open_snapshots(), 0, "every snapshot is ended");
    assert!(report.to_string().contains("ok sink_round_trip"));
    // Running again on the same "database" passes too.
    run_all(&source, &sink, "conf", &caps())
        .await
        .unwrap_or_else(|e| panic!("second run: {e}"));
}

#[tokio::test]
async fn a_narrow_connector_can_opt_out_of_types_and_edges() {
    let (source, sink) = memory();
    let caps = Capabilities {
        float_specials: false,
        decimal_specials: false,
        infinite_datetimes: false,
        keys_and_indexes: false,
        max_decimal_digits: 30,
        ..Capabilities::new(vec![DataType::Int64, DataType::Float64, DataType::text()])
    };
    let report = sink_round_trip(&source, &sink, "narrow", &caps)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.checks.len(), 1);
    let all = Capabilities::all()
        .without(&DataType::UInt64)
        .without(&DataType::Enum {
            name: String::new(),
            labels: vec![],
        });
    assert!(!all.types.contains(&DataType::UInt64));
    assert!(!all.types.iter().any(|t| matches!(t, DataType::Enum { .. })));
}

#[tokio::test]
async fn other_types_and_bad_namespaces_are_config_errors() {
    let (source, sink) = memory();
    let caps = Capabilities::new(vec![DataType::Other {
        engine: "postgres".into(),
        name: "point".into(),
    }]);
    let err = sink_round_trip(&source, &sink, "x", &caps)
        .await
        .expect_err("Other is refused");
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = sink_round_trip(&source, &sink, "a.b", &Capabilities::all())
        .await
        .expect_err("dotted namespace");
    assert_eq!(err.kind(), ErrorKind::Config);
}

// ---------------------------------------------------------------------------------
// Broken connectors

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// The writer turns NaN floats into 0.
    NanToZero,
    /// The writer rounds decimals to 2 places by cutting the text.
    CutDecimals,
    /// The writer makes every batch visible at once.
    WritesThrough,
    /// `DoNothing` creates a missing table.
    DoNothingCreates,
    /// `Truncate` keeps the rows.
    TruncateKeeps,
    /// `DropAndCreate` keeps the old table if there is one.
    DropKeeps,
    /// `finish` reports one row too many.
    MiscountsFinish,
}

struct FaultySink {
    inner: MemorySink,
    fault: Fault,
}

struct FaultyWriter {
    inner: MemoryWriter,
    store: MemoryStore,
    fault: Fault,
}

fn mangle(fault: Fault, value: &mut Value) {
    match (fault, &mut *value) {
        (Fault::NanToZero, Value::Float64(f)) if f.is_nan() => *f = 0.0,
        (Fault::CutDecimals, Value::Decimal(Decimal::Finite(text))) => {
            if let Some((int, frac)) = text.split_once('.')
                && frac.len() > 2
            {
                *text = format!("{int}.{}", &frac[..2]).into();
            }
        }
        (_, Value::Array(array)) => array.values.iter_mut().for_each(|v| mangle(fault, v)),
        _ => {}
    }
}

impl Sink for FaultySink {
    type Writer = FaultyWriter;
    type Applier = crate::NoApplier;

    fn engine(&self) -> &'static str {
        "faulty"
    }

    fn convert_schema(
        &self,
        source_engine: &str,
        schema: &TableSchema,
    ) -> Result<(TableSchema, Vec<Finding>)> {
        self.inner.convert_schema(source_engine, schema)
    }

    async fn prepare_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        let exists = self.inner.store().schema(&schema.id).is_some();
        let prep = match (self.fault, prep) {
            (Fault::DoNothingCreates, TablePrep::DoNothing) if !exists => TablePrep::DropAndCreate,
            (Fault::TruncateKeeps, TablePrep::Truncate) if exists => TablePrep::DoNothing,
            (Fault::DropKeeps, TablePrep::DropAndCreate) if exists => TablePrep::DoNothing,
            (_, prep) => prep,
        };
        self.inner.prepare_table(schema, prep).await
    }

    async fn open_writer(
        &self,
        schema: Arc<TableSchema>,
        policy: BadDataPolicy,
    ) -> Result<FaultyWriter> {
        Ok(FaultyWriter {
            inner: self.inner.open_writer(schema, policy).await?,
            store: self.inner.store().clone(),
            fault: self.fault,
        })
    }

    async fn finish_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        self.inner.finish_table(schema, prep).await
    }
}

impl TableWriter for FaultyWriter {
    async fn write(&mut self, mut batch: Batch) -> Result<()> {
        for event in &mut batch.events {
            for value in event.after.iter_mut().flatten() {
                mangle(self.fault, value);
            }
        }
        if self.fault == Fault::WritesThrough {
            let sink = MemorySink::with_store(self.store.clone());
            let mut writer = sink
                .open_writer(Arc::clone(&batch.schema), BadDataPolicy::Fail)
                .await?;
            writer.write(batch).await?;
            writer.finish().await?;
            return Ok(());
        }
        self.inner.write(batch).await
    }

    async fn finish(self) -> Result<LoadReport> {
        let mut report = self.inner.finish().await?;
        if self.fault == Fault::MiscountsFinish {
            report.rows += 1;
        }
        Ok(report)
    }
}

fn faulty(fault: Fault) -> (MemorySource, FaultySink) {
    let (source, inner) = memory();
    (source, FaultySink { inner, fault })
}

fn message(result: Result<Report>) -> String {
    match result {
        Ok(report) => panic!("the check passed a broken connector:\n{report}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_changed_value_is_reported_with_table_column_and_row() {
    let (source, sink) = faulty(Fault::NanToZero);
    let msg = message(sink_round_trip(&source, &sink, "conf", &caps()).await);
    assert!(
        msg.contains("conformance check sink_round_trip failed"),
        "{msg}"
    );
    assert!(msg.contains("table conf.ferry_conf_values"), "{msg}");
    // The first difference in key order happens to be inside the float64 array.
    assert!(
        msg.contains("column c28_float64_array (array(float64))"),
        "{msg}"
    );
    assert!(msg.contains("row (id=Int64("), "{msg}");
    assert!(
        msg.contains(
            "first difference at element 11: expected Float64(NaN), read back Float64(0.0)"
        ),
        "{msg}"
    );
    let only_floats = Capabilities {
        types: vec![DataType::Float64],
        ..caps()
    };
    let msg = message(sink_round_trip(&source, &sink, "conf", &only_floats).await);
    assert!(msg.contains("column c00_float64 (float64)"), "{msg}");
    assert!(
        msg.contains("expected Float64(NaN), read back Float64(0.0)"),
        "{msg}"
    );

    let (source, sink) = faulty(Fault::CutDecimals);
    let msg = message(sink_round_trip(&source, &sink, "conf", &caps()).await);
    assert!(msg.contains("column c07_decimal (decimal)"), "{msg}");
}

#[tokio::test]
async fn visible_before_finish_is_caught() {
    let (source, sink) = faulty(Fault::WritesThrough);
    let msg = message(unfinished_writer(&source, &sink, "conf", &caps()).await);
    assert!(msg.contains("must not be visible yet"), "{msg}");
    assert!(msg.contains("was read back but not expected"), "{msg}");
}

#[tokio::test]
async fn do_nothing_that_creates_is_caught() {
    let (source, sink) = faulty(Fault::DoNothingCreates);
    let msg = message(do_nothing(&source, &sink, "conf", &caps()).await);
    assert!(msg.contains("which does not exist, succeeded"), "{msg}");
}

#[tokio::test]
async fn truncate_that_keeps_rows_is_caught() {
    let (source, sink) = faulty(Fault::TruncateKeeps);
    let msg = message(truncate_reload(&source, &sink, "conf", &caps()).await);
    assert!(msg.contains("right after prepare_table(Truncate)"), "{msg}");
}

#[tokio::test]
async fn drop_that_keeps_the_table_is_caught() {
    let (source, sink) = faulty(Fault::DropKeeps);
    // The first run creates the table; the broken drop shows on the second create.
    let msg = message(drop_and_create_twice(&source, &sink, "conf", &caps()).await);
    assert!(msg.contains("ferry_conf_recreate"), "{msg}");
}

#[tokio::test]
async fn a_miscounting_finish_is_caught() {
    let (source, sink) = faulty(Fault::MiscountsFinish);
    let msg = message(partitions_agree(&source, &sink, "conf", &caps()).await);
    assert!(msg.contains("but finish returned"), "{msg}");
}

/// A source whose partitions overlap by one row, or whose discovery ignores the filter.
struct FaultySource {
    inner: MemorySource,
    overlap: bool,
    ignore_filter: bool,
}

impl Source for FaultySource {
    fn engine(&self) -> &'static str {
        "faulty"
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Catalog> {
        if self.ignore_filter {
            self.inner.discover(&TableFilter::default()).await
        } else {
            self.inner.discover(filter).await
        }
    }

    async fn begin_snapshot(&self) -> Result<Snapshot> {
        self.inner.begin_snapshot().await
    }

    async fn partitions(
        &self,
        snapshot: &Snapshot,
        table: &TableSchema,
        max: usize,
    ) -> Result<Vec<Partition>> {
        let mut parts = self.inner.partitions(snapshot, table, max).await?;
        if self.overlap {
            for p in parts.iter_mut().skip(1) {
                if let PartitionRange::Pages { start, .. } = &mut p.range {
                    *start = start.saturating_sub(1);
                }
            }
        }
        Ok(parts)
    }

    async fn read_partition(
        &self,
        snapshot: &Snapshot,
        table: Arc<TableSchema>,
        partition: Partition,
        policy: BadDataPolicy,
        out: BatchSender,
    ) -> Result<LoadReport> {
        self.inner
            .read_partition(snapshot, table, partition, policy, out)
            .await
    }

    async fn end_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.inner.end_snapshot(snapshot).await
    }
}

#[tokio::test]
async fn overlapping_partitions_are_caught() {
    let sink = MemorySink::new();
    let source = FaultySource {
        inner: sink.source(),
        overlap: true,
        ignore_filter: false,
    };
    let msg = message(partitions_agree(&source, &sink, "conf", &caps()).await);
    assert!(msg.contains("read as up to 4 partitions"), "{msg}");
    assert!(msg.contains("read back twice"), "{msg}");
}

#[tokio::test]
async fn discovery_that_ignores_the_filter_is_caught() {
    let sink = MemorySink::new();
    let source = FaultySource {
        inner: sink.source(),
        overlap: false,
        ignore_filter: true,
    };
    // Another table in the store, which the filter never selects.
    sink.store()
        .insert_table(
            TableSchema::new(TableId::new("elsewhere", "t"), vec![]),
            vec![],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let msg = message(schema_round_trip(&source, &sink, "conf", &caps()).await);
    assert!(msg.contains("which the filter does not select"), "{msg}");
}

#[tokio::test]
async fn a_step_that_hangs_times_out() {
    struct Hangs(MemorySink);
    impl Sink for Hangs {
        type Writer = MemoryWriter;
        type Applier = crate::NoApplier;
        fn engine(&self) -> &'static str {
            "hangs"
        }
        fn convert_schema(
            &self,
            source_engine: &str,
            schema: &TableSchema,
        ) -> Result<(TableSchema, Vec<Finding>)> {
            self.0.convert_schema(source_engine, schema)
        }
        async fn prepare_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
            self.0.prepare_table(schema, prep).await
        }
        async fn open_writer(
            &self,
            schema: Arc<TableSchema>,
            policy: BadDataPolicy,
        ) -> Result<MemoryWriter> {
            self.0.open_writer(schema, policy).await
        }
        async fn finish_table(&self, _schema: &TableSchema, _prep: TablePrep) -> Result<()> {
            std::future::pending().await
        }
    }
    let sink = Hangs(MemorySink::new());
    let source = sink.0.source();
    let caps = Capabilities {
        step_timeout: Duration::from_millis(50),
        ..caps()
    };
    let msg = message(sink_round_trip(&source, &sink, "conf", &caps).await);
    assert!(msg.contains("finish_table(DropAndCreate)"), "{msg}");
    assert!(msg.contains("did not complete within"), "{msg}");
}

#[test]
fn enum_names_compare_without_namespace() {
    let mood = |name: &str, labels: &[&str]| DataType::Enum {
        name: name.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    assert!(same_type(&mood("public.m", &["a"]), &mood("m", &["a"])));
    assert!(same_type(
        &DataType::Array(Box::new(mood("s.m", &["a"]))),
        &DataType::Array(Box::new(mood("\"s\".\"m\"", &["a"])))
    ));
    assert!(!same_type(&mood("s.m", &["a"]), &mood("s.m", &["a", "b"])));
    assert!(!same_type(&mood("s.m", &["a"]), &mood("s.n", &["a"])));
    assert!(!same_type(&DataType::Int32, &DataType::Int64));
}
