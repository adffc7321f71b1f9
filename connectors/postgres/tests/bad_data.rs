//! Bad-data policies of the PostgreSQL sink, against a real server: a table read
//! from a `MemorySource` holding NUL bytes, over-long strings and out-of-range
//! numbers is loaded under each policy, and the test checks exactly which rows and
//! values land and what the report says.

use ferry_core::test_utils::MemorySource;
use ferry_core::{
    BadDataPolicy, Column, DataType, ErrorKind, LoadReport, Result, Row, Sink, Source, TableId,
    TablePrep, TableSchema, TableWriter, Text, Value, batch_channel,
};
use ferry_postgres::PgSink;
use std::sync::Arc;

fn column(name: &str, data_type: DataType, nullable: bool) -> Column {
    Column {
        name: name.into(),
        data_type,
        nullable,
        default: None,
        source_type: String::new(),
    }
}

/// The source table: `note` is unbounded text and `qty` a bigint at the source.
fn source_schema() -> TableSchema {
    let mut s = TableSchema::new(
        TableId::new("public", "legacy"),
        vec![
            column("id", DataType::Int64, false),
            column("name", DataType::text(), false),
            column("note", DataType::text(), true),
            column("qty", DataType::Int64, true),
        ],
    );
    s.primary_key = vec!["id".into()];
    s
}

/// The target narrows them: `note varchar(5)`, `qty smallint`.
fn target_schema(sink: &PgSink) -> TableSchema {
    let (mut t, _) = sink
        .convert_schema("memory", &source_schema())
        .expect("converts");
    t.columns[2].data_type = DataType::Text {
        max_len: Some(5),
        fixed: false,
    };
    t.columns[2].source_type = "character varying(5)".into();
    t.columns[3].data_type = DataType::Int16;
    t.columns[3].source_type = "smallint".into();
    t
}

fn text(s: &str) -> Value {
    Value::Text(Text::from(s))
}

fn row(id: i64, name: &str, note: Option<&str>, qty: Option<i64>) -> Row {
    vec![
        Value::Int64(id),
        text(name),
        note.map_or(Value::Null, text),
        qty.map_or(Value::Null, Value::Int64),
    ]
}

/// 1 is clean; 2 has a NUL in the NOT NULL `name`; 3 an over-long `note`; 4 a NUL in
/// `note` and an out-of-range `qty`; 5 an out-of-range negative `qty`.
fn rows(with_row_2: bool) -> Vec<Row> {
    let mut rows = vec![
        row(1, "ok", Some("short"), Some(1)),
        row(2, "a\0b", Some("x"), Some(2)),
        row(3, "c", Some("toolongvalue"), Some(3)),
        row(4, "d", Some("n\0te"), Some(70_000)),
        row(5, "e", None, Some(-70_000)),
    ];
    if !with_row_2 {
        rows.remove(1);
    }
    rows
}

/// Reads the table from a `MemorySource` and loads it through the sink as the
/// runner does; returns the writer's report and the target database.
async fn load(policy: BadDataPolicy, with_row_2: bool) -> (Result<LoadReport>, String) {
    let pg = ferry_tests::postgres_or_panic();
    let db = pg.create_database("bad_data").expect("test database");
    let sink = PgSink::connect(&pg.url(&db)).await.expect("connect");
    let source = MemorySource::from_tables([(source_schema(), rows(with_row_2))])
        .expect("valid source")
        .with_batch_rows(2);
    let target = Arc::new(target_schema(&sink));
    sink.prepare_table(&target, TablePrep::DropAndCreate)
        .await
        .expect("prepare");
    let snapshot = source.begin_snapshot().await.expect("snapshot");
    let parts = source
        .partitions(&snapshot, &source_schema(), 1)
        .await
        .expect("partitions");
    let (tx, mut rx) = batch_channel(4, 1 << 20);
    let table = Arc::new(source_schema());
    let read = source.read_partition(&snapshot, table, parts[0].clone(), policy, tx);
    let write = async {
        let mut writer = sink.open_writer(Arc::clone(&target), policy).await?;
        while let Some(mut batch) = rx.recv().await {
            batch.schema = Arc::clone(&target);
            writer.write(batch).await?;
        }
        writer.finish().await
    };
    let (read, written) = tokio::join!(read, write);
    let read = read.expect("read");
    assert_eq!(read.rows, rows(with_row_2).len() as u64);
    source.end_snapshot(snapshot).await.expect("end");
    if written.is_ok() {
        sink.finish_table(&target, TablePrep::DropAndCreate)
            .await
            .expect("keys");
    }
    (written, db)
}

fn table_contents(db: &str) -> String {
    ferry_tests::postgres_or_panic()
        .psql(
            db,
            "SELECT id, replace(name, ' ', '_'), coalesce(note, '<null>'), \
             coalesce(qty::text, '<null>') FROM legacy ORDER BY id",
        )
        .expect("query")
}

fn keys(report: &LoadReport) -> Vec<String> {
    report
        .bad_rows
        .iter()
        .map(|b| format!("{} {} {}", b.key, b.column, b.action))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_stops_and_names_table_column_row_and_the_keys_to_change() {
    let (result, db) = load(BadDataPolicy::Fail, true).await;
    let e = result.expect_err("fail policy stops");
    assert_eq!(e.kind(), ErrorKind::Conversion);
    let msg = e.to_string();
    for part in [
        "table public.legacy",
        "column name",
        "row (id=2)",
        "NUL",
        "bad-data = ",
        "[task.bad-data-tables]",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(table_contents(&db), "", "nothing is loaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_loads_null_and_refuses_not_null_columns() {
    let (result, _) = load(BadDataPolicy::Null, true).await;
    let msg = result.expect_err("name is NOT NULL").to_string();
    assert!(
        msg.contains("row (id=2)") && msg.contains("NOT NULL"),
        "{msg}"
    );

    let (result, db) = load(BadDataPolicy::Null, false).await;
    let report = result.expect("loads");
    assert_eq!(report.rows, 4);
    assert_eq!(report.skipped_rows, 0);
    assert_eq!(report.bad_row_count, 4);
    assert_eq!(
        keys(&report),
        vec![
            "(id=3) note null",
            "(id=4) note null",
            "(id=4) qty null",
            "(id=5) qty null"
        ]
    );
    assert_eq!(
        table_contents(&db),
        "1|ok|short|1\n3|c|<null>|3\n4|d|<null>|<null>\n5|e|<null>|<null>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamp_strips_nul_truncates_and_bounds_numbers() {
    let (result, db) = load(BadDataPolicy::Clamp, true).await;
    let report = result.expect("loads");
    assert_eq!(report.rows, 5);
    assert_eq!(
        keys(&report),
        vec![
            "(id=2) name clamp",
            "(id=3) note clamp",
            "(id=4) note clamp",
            "(id=4) qty clamp",
            "(id=5) qty clamp"
        ]
    );
    assert!(
        report.bad_rows[1].problem.contains("12 characters")
            && report.bad_rows[1].problem.contains("5"),
        "{:?}",
        report.bad_rows[1]
    );
    assert_eq!(
        table_contents(&db),
        "1|ok|short|1\n2|ab|x|2\n3|c|toolo|3\n4|d|nte|32767\n5|e|<null>|-32768"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_row_leaves_bad_rows_out_and_records_their_keys() {
    let (result, db) = load(BadDataPolicy::SkipRow, true).await;
    let report = result.expect("loads");
    assert_eq!(report.rows, 1);
    assert_eq!(report.skipped_rows, 4);
    assert_eq!(
        keys(&report),
        vec![
            "(id=2) name skip-row",
            "(id=3) note skip-row",
            "(id=4) note skip-row",
            "(id=5) qty skip-row"
        ]
    );
    assert_eq!(table_contents(&db), "1|ok|short|1");
}
