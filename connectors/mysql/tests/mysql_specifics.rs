//! What the conformance suite cannot check generically, against a real MariaDB:
//! MySQL-only types read through the source, zero dates under every bad-data
//! policy, values the sink cannot store, reserved words as names.

use ferry_core::policy::ValueProblem;
use ferry_core::{
    Array, BadDataPolicy, Batch, ChangeEvent, Column, DataType, Decimal, ErrorKind, Interval,
    LoadReport, Result, Row, Sink, Source, TableFilter, TableId, TablePrep, TableSchema,
    TableWriter, Text, Value, batch_channel,
};
use ferry_mysql::{MySqlSink, MySqlSource, SourceOptions};
use std::sync::Arc;

struct Db {
    maria: ferry_tests::MariaService,
    name: String,
}

impl Db {
    fn new(prefix: &str) -> Db {
        let maria = ferry_tests::mariadb_or_panic();
        let name = maria.create_database(prefix).expect("test database");
        Db { maria, name }
    }

    fn sql(&self, sql: &str) {
        self.maria
            .sql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn url(&self) -> String {
        self.maria.url(&self.name)
    }
}

/// Reads one table whole through the source, the way the runner does.
async fn read_table(
    source: &MySqlSource,
    id: &TableId,
    policy: BadDataPolicy,
) -> Result<(TableSchema, Vec<Row>, LoadReport)> {
    let filter = TableFilter::new(&[format!("{}.{}", id.namespace, id.name)], &[])?;
    let catalog = source.discover(&filter).await?;
    let schema = Arc::new(catalog.tables.into_iter().next().expect("table discovered"));
    let snapshot = source.begin_snapshot().await?;
    let parts = source.partitions(&snapshot, &schema, 1).await?;
    let (tx, mut rx) = batch_channel(16, 1 << 20);
    let read = source.read_partition(&snapshot, Arc::clone(&schema), parts[0].clone(), policy, tx);
    let collect = async {
        let mut rows = Vec::new();
        while let Some(batch) = rx.recv().await {
            rows.extend(batch.events.into_iter().filter_map(|e| e.after));
        }
        rows
    };
    let (report, mut rows) = tokio::join!(read, collect);
    source.end_snapshot(snapshot).await?;
    rows.sort_by(|a, b| format!("{:?}", a[0]).cmp(&format!("{:?}", b[0])));
    Ok(((*schema).clone(), rows, report?))
}

fn text(s: &str) -> Value {
    Value::Text(Text::from(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_types_read_exactly() -> Result<()> {
    let db = Db::new("mytypes");
    db.sql(
        "CREATE TABLE `order` (
           `select` INT UNSIGNED ZEROFILL NOT NULL PRIMARY KEY,
           flag TINYINT(1), big BIGINT UNSIGNED, bits BIT(12), bit1 BIT(1), yr YEAR,
           dur TIME(3), ts TIMESTAMP(6) NULL DEFAULT NULL, dt DATETIME(6),
           e ENUM('a', 'happy 😀', 'it''s'), s SET('x', 'y', 'z'), j JSON,
           c CHAR(4), l1 VARCHAR(10) CHARACTER SET latin1, d DECIMAL(20,5) UNSIGNED,
           g INT AS (`select` + 1) VIRTUAL,
           KEY ix_c (c(2))
         );
         SET time_zone = '+05:00';
         INSERT INTO `order` (`select`, flag, big, bits, bit1, yr, dur, ts, dt, e, s, j, c, l1, d) VALUES
           (1, 1, 18446744073709551615, b'101010101010', b'1', 2155, '-838:59:59.000',
            '2038-01-19 08:14:07.5', '9999-12-31 23:59:59.999999', 'happy 😀', 'x,z',
            '{\"k\": [1, \"😀\"]}', 'ab', 'café', 123456789012345.00001),
           (2, 0, 0, b'0', b'0', 1901, '00:00:00.001', '1970-01-01 05:00:01', '1000-01-01 00:00:00',
            'it''s', '', '[]', '', '', 0),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let source = MySqlSource::connect(&db.url()).await?;
    let id = TableId::new(&db.name, "order");
    let (schema, rows, report) = read_table(&source, &id, BadDataPolicy::Fail).await?;

    let types: Vec<(String, DataType)> = schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    let t = |name: &str| {
        types
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    };
    assert_eq!(t("select"), Some(DataType::Int64));
    assert_eq!(t("flag"), Some(DataType::Bool));
    assert_eq!(t("big"), Some(DataType::UInt64));
    assert_eq!(t("bits"), Some(DataType::Bytes));
    assert_eq!(t("bit1"), Some(DataType::Bool));
    assert_eq!(t("yr"), Some(DataType::Int16));
    assert_eq!(t("dur"), Some(DataType::Interval));
    assert_eq!(t("ts"), Some(DataType::TimestampTz));
    assert_eq!(t("dt"), Some(DataType::Timestamp));
    assert_eq!(
        t("e"),
        Some(DataType::Enum {
            name: "order_e".into(),
            labels: vec!["a".into(), "happy 😀".into(), "it's".into()]
        })
    );
    assert_eq!(t("s"), Some(DataType::Array(Box::new(DataType::text()))));
    assert_eq!(t("j"), Some(DataType::Json { binary: true }));
    assert_eq!(
        t("c"),
        Some(DataType::Text {
            max_len: Some(4),
            fixed: true
        })
    );
    assert_eq!(t("g"), Some(DataType::Int32));
    assert_eq!(schema.primary_key, vec!["select".to_string()]);
    assert_eq!(
        schema.indexes[0].parts,
        vec![ferry_core::IndexPart::Expression("`c`(2)".into())]
    );
    let source_type = |name: &str| schema.column(name).map(|c| c.source_type.clone());
    assert_eq!(
        source_type("select").as_deref(),
        Some("int(10) unsigned zerofill")
    );
    assert!(
        source_type("l1").is_some_and(|s| s.contains("CHARACTER SET latin1")),
        "{:?}",
        source_type("l1")
    );

    assert_eq!(report.rows, 3);
    assert!(!report.has_bad_data());
    let r = &rows[0];
    let v = |name: &str| r[schema.column_index(name).expect("column")].clone();
    assert_eq!(v("select"), Value::Int64(1));
    assert_eq!(v("flag"), Value::Bool(true));
    assert_eq!(v("big"), Value::UInt64(u64::MAX));
    assert_eq!(
        v("bits"),
        Value::Bytes(bytes::Bytes::from_static(&[0x0a, 0xaa]))
    );
    assert_eq!(v("bit1"), Value::Bool(true));
    assert_eq!(v("yr"), Value::Int16(2155));
    assert_eq!(
        v("dur"),
        Value::Interval(Interval {
            months: 0,
            days: 0,
            micros: -(838 * 3600 + 59 * 60 + 59) * 1_000_000
        })
    );
    // 2038-01-19 08:14:07.5 at +05:00 is 03:14:07.5 UTC.
    let ts_2038 =
        ferry_core::test_utils::conformance::micros_since_2000(2038, 1, 19, 3, 14, 7, 500_000);
    assert_eq!(v("ts"), Value::TimestampTz(ts_2038));
    assert_eq!(
        v("dt"),
        Value::Timestamp(ferry_core::test_utils::conformance::micros_since_2000(
            9999, 12, 31, 23, 59, 59, 999_999
        ))
    );
    assert_eq!(v("e"), Value::Enum(Text::from("happy 😀")));
    assert_eq!(
        v("s"),
        Value::Array(Box::new(Array::one_dimensional(vec![text("x"), text("z")])))
    );
    assert_eq!(v("c"), text("ab  "));
    assert_eq!(v("l1"), text("café"));
    assert_eq!(
        v("d"),
        Value::Decimal(Decimal::Finite("123456789012345.00001".into()))
    );
    assert_eq!(v("g"), Value::Int32(2));
    let r2 = &rows[1];
    assert_eq!(
        r2[schema.column_index("s").expect("s")],
        Value::Array(Box::new(Array::one_dimensional(vec![])))
    );
    assert_eq!(r2[schema.column_index("c").expect("c")], text("    "));
    assert!(
        rows[2][1..]
            .iter()
            .all(|v| *v == Value::Null || matches!(v, Value::Int32(_)))
    );

    // tinyint1-as-bool = false keeps TINYINT(1) an integer.
    let source = MySqlSource::connect_with(
        &db.url(),
        SourceOptions {
            tinyint1_as_bool: false,
            ..SourceOptions::default()
        },
    )
    .await?;
    let (schema, rows, _) = read_table(&source, &id, BadDataPolicy::Fail).await?;
    assert_eq!(
        schema.column("flag").map(|c| c.data_type.clone()),
        Some(DataType::Int16)
    );
    assert_eq!(rows[0][1], Value::Int16(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_dates_follow_the_bad_data_policy() -> Result<()> {
    let db = Db::new("zerodates");
    db.sql(
        "SET sql_mode = '';
         CREATE TABLE z (id INT PRIMARY KEY, d DATE, dt DATETIME, n INT);
         INSERT INTO z VALUES (1, '0000-00-00', '2024-00-10 10:00:00', 1),
                              (2, '2024-01-02', '2024-01-02 03:04:05', 2),
                              (3, '2024-05-00', '0000-00-00 00:00:00', 3);",
    );
    let source = MySqlSource::connect(&db.url()).await?;
    let id = TableId::new(&db.name, "z");

    let e = read_table(&source, &id, BadDataPolicy::Fail)
        .await
        .expect_err("zero date fails by default");
    assert_eq!(e.kind(), ErrorKind::Conversion);
    let msg = e.to_string();
    assert!(msg.contains(&format!("table {}.z", db.name)), "{msg}");
    assert!(msg.contains("column d"), "{msg}");
    assert!(msg.contains("row (id=1)"), "{msg}");
    assert!(msg.contains("zero date 0000-00-00"), "{msg}");

    let (_, rows, report) = read_table(&source, &id, BadDataPolicy::Null).await?;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][1], Value::Null);
    assert_eq!(rows[0][2], Value::Null);
    assert_eq!(rows[2][1], Value::Null);
    assert_eq!(report.bad_row_count, 4);
    assert_eq!(report.bad_rows[0].key, "(id=1)");
    assert_eq!(report.bad_rows[0].column, "d");

    let (_, rows, report) = read_table(&source, &id, BadDataPolicy::SkipRow).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], Value::Int32(2));
    assert_eq!(report.rows, 1);
    assert_eq!(report.skipped_rows, 2);

    // Clamp moves a zero month or day to the 1st, but a zero date has no nearest value.
    let e = read_table(&source, &id, BadDataPolicy::Clamp)
        .await
        .expect_err("0000-00-00 cannot be clamped");
    assert!(e.to_string().contains("no nearest valid value"), "{e}");
    db.sql("DELETE FROM z WHERE id <> 2; SET sql_mode = ''; INSERT INTO z VALUES (4, '2024-05-00', '2024-00-10 10:00:00', 4);");
    let (_, rows, report) = read_table(&source, &id, BadDataPolicy::Clamp).await?;
    let day = |y, m, d| ferry_core::test_utils::conformance::days_since_2000(y, m, d);
    assert_eq!(rows[1][1], Value::Date(day(2024, 5, 1)));
    assert_eq!(
        rows[1][2],
        Value::Timestamp(ferry_core::test_utils::conformance::micros_since_2000(
            2024, 1, 10, 10, 0, 0, 0
        ))
    );
    assert_eq!(report.bad_row_count, 2);
    assert!(matches!(report.bad_rows[0].action, BadDataPolicy::Clamp));
    Ok(())
}

fn column(name: &str, data_type: DataType) -> Column {
    Column {
        name: name.into(),
        source_type: data_type.to_string(),
        data_type,
        nullable: true,
        default: None,
    }
}

/// A table from "another engine" with values MySQL cannot hold.
fn foreign_table(db: &str) -> (TableSchema, Vec<Row>) {
    let mut schema = TableSchema::new(
        TableId::new(db, "select"),
        vec![
            Column {
                nullable: false,
                ..column("from", DataType::Int64)
            },
            column("iv", DataType::Interval),
            column("f", DataType::Float64),
            column("u", DataType::Uuid),
        ],
    );
    schema.primary_key = vec!["from".into()];
    let rows = vec![
        vec![
            Value::Int64(1),
            Value::Interval(Interval {
                months: 0,
                days: 1,
                micros: 5,
            }),
            Value::Float64(1.5),
            Value::Uuid([0xab; 16]),
        ],
        vec![
            Value::Int64(2),
            Value::Interval(Interval {
                months: 3,
                days: 0,
                micros: 0,
            }),
            Value::Float64(f64::NAN),
            Value::Null,
        ],
    ];
    (schema, rows)
}

async fn load(
    sink: &MySqlSink,
    schema: &TableSchema,
    rows: &[Row],
    policy: BadDataPolicy,
) -> Result<(TableSchema, LoadReport)> {
    let (target, _findings) = sink.convert_schema("postgres", schema)?;
    sink.prepare_table(&target, TablePrep::DropAndCreate)
        .await?;
    let target = Arc::new(target);
    let mut writer = sink.open_writer(Arc::clone(&target), policy).await?;
    let mut batch = Batch::new(Arc::clone(&target));
    for row in rows {
        batch.push(ChangeEvent::insert(row.clone()));
    }
    writer.write(batch).await?;
    let report = writer.finish().await?;
    sink.finish_table(&target, TablePrep::DropAndCreate).await?;
    Ok(((*target).clone(), report))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_checks_values_before_sending() -> Result<()> {
    let db = Db::new("sinkbad");
    let sink = MySqlSink::connect(&db.url()).await?;
    let (schema, rows) = foreign_table(&db.name);

    let e = load(&sink, &schema, &rows, BadDataPolicy::Fail)
        .await
        .expect_err("months do not fit TIME");
    let msg = e.to_string();
    assert!(
        msg.contains("column iv") && msg.contains("row (from=2)"),
        "{msg}"
    );

    let (_, report) = load(&sink, &schema, &rows, BadDataPolicy::Null).await?;
    assert_eq!(report.rows, 2);
    assert_eq!(report.bad_row_count, 2);
    assert_eq!(
        db.maria
            .sql(&db.name, "SELECT `from`, iv, f, u FROM `select` ORDER BY 1")
            .expect("rows"),
        "1\t24:00:00.000005\t1.5\tabababab-abab-abab-abab-abababababab\n2\tNULL\tNULL\tNULL"
    );

    let (_, report) = load(&sink, &schema, &rows, BadDataPolicy::SkipRow).await?;
    assert_eq!((report.rows, report.skipped_rows), (1, 1));
    assert!(matches!(report.bad_rows[0].problem.as_str(), p if p.contains("month")));
    let _ = ValueProblem::NulInText;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_longer_than_64_characters_are_refused() -> Result<()> {
    let db = Db::new("longnames");
    let sink = MySqlSink::connect(&db.url()).await?;
    let schema = TableSchema::new(
        TableId::new(&db.name, "t".repeat(70)),
        vec![column("a", DataType::Int32)],
    );
    let (_, findings) = sink.convert_schema("postgres", &schema)?;
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.level == ferry_core::FindingLevel::Error)
        .map(|f| f.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{findings:?}");
    assert!(
        errors[0].contains("70 characters") && errors[0].contains("64"),
        "{}",
        errors[0]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assess_lists_what_does_not_migrate_cleanly() -> Result<()> {
    let db = Db::new("assess");
    db.sql(
        "SET sql_mode = '';
         CREATE TABLE nokey (a INT, d DATE, l VARCHAR(10) CHARACTER SET latin1,
                             g INT AS (a * 2) STORED) ENGINE=MyISAM;
         INSERT INTO nokey (a, d, l) VALUES (1, '0000-00-00', 'x'), (2, '2024-01-01', 'y');
         CREATE TABLE keyed (id INT PRIMARY KEY, p POINT);
         CREATE TRIGGER trg BEFORE INSERT ON keyed FOR EACH ROW SET NEW.id = NEW.id;
         CREATE VIEW v AS SELECT a FROM nokey;
         CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1;",
    );
    let source = MySqlSource::connect(&db.url()).await?;
    let catalog = source
        .discover(&TableFilter::new(&[format!("{}.%", db.name)], &[])?)
        .await?;
    let findings = source.assess(&catalog).await?;
    let codes: Vec<(String, Option<String>)> = findings
        .iter()
        .map(|f| (f.code.clone(), f.column.clone()))
        .collect();
    let has = |code: &str, column: Option<&str>| {
        codes
            .iter()
            .any(|(c, col)| c == code && col.as_deref() == column)
    };
    use ferry_core::finding_code as code;
    // Table sizes and missing primary keys are the runner's (engine-neutral) findings.
    assert!(!has(code::NO_PRIMARY_KEY, None), "{findings:#?}");
    assert!(has(code::GENERATED_COLUMN, Some("g")), "{findings:#?}");
    assert!(has(code::CHARSET, Some("l")), "{findings:#?}");
    assert!(has(code::BAD_DATA, Some("d")), "{findings:#?}");
    assert!(has(code::TYPE_MAPPING, Some("p")), "{findings:#?}");
    assert!(has(code::TRIGGER, None), "{findings:#?}");
    assert!(has(code::VIEW, None), "{findings:#?}");
    assert!(has(code::ROUTINE, None), "{findings:#?}");
    assert!(!has(code::TABLE_SIZE, None), "{findings:#?}");
    assert!(
        findings.iter().any(|f| f.message.contains("MyISAM")),
        "{findings:#?}"
    );
    let zero = findings
        .iter()
        .find(|f| f.code == code::BAD_DATA)
        .map(|f| f.message.clone())
        .unwrap_or_default();
    assert!(zero.starts_with("1 row(s)"), "{zero}");
    Ok(())
}
