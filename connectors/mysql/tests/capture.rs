//! Change capture from the binlog against the kit's real MariaDB 10.11: row
//! changes in multi-statement transactions, restart positions, binlog rotation,
//! ALTER/TRUNCATE, snapshot hand-over, value equality between snapshot and stream,
//! bounded batches of a big transaction, heartbeats.

use ferry_core::{
    Batch, BatchReceiver, Catalog, ErrorKind, Operation, Position, Result, Row, Source,
    TableFilter, Value, batch_channel,
};
use ferry_mysql::{BinlogPosition, MySqlSource};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(60);

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

    fn sql(&self, sql: &str) -> String {
        self.maria
            .sql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn source(&self) -> Arc<MySqlSource> {
        Arc::new(
            MySqlSource::connect(&self.maria.url(&self.name))
                .await
                .expect("source connects"),
        )
    }

    async fn catalog(&self, source: &MySqlSource) -> Catalog {
        let filter = TableFilter::new(&[format!("{}.*", self.name)], &[]).expect("filter parses");
        source.discover(&filter).await.expect("discover")
    }
}

struct Capture {
    handle: JoinHandle<Result<()>>,
    rx: BatchReceiver,
}

fn start(source: &Arc<MySqlSource>, task: &str, from: Position, catalog: &Catalog) -> Capture {
    let (tx, rx) = batch_channel(64, 64 << 20);
    let source = Arc::clone(source);
    let catalog = catalog.clone();
    let task = task.to_string();
    let handle =
        tokio::spawn(async move { source.stream_changes(&task, from, &catalog, tx).await });
    Capture { handle, rx }
}

impl Capture {
    /// Receives batches until `done` says so (markers included), or fails after
    /// [`WAIT`].
    async fn until(&mut self, mut done: impl FnMut(&[Batch]) -> bool) -> Vec<Batch> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(b)) => got.push(b),
                Ok(None) => {
                    let result = (&mut self.handle).await;
                    panic!("stream ended early: {result:?}; got {}", describe(&got));
                }
                Err(_) => panic!("timed out; got {}", describe(&got)),
            }
        }
        got
    }

    /// Receives until `n` data transactions ended (batches with events and an end
    /// position); returns the data batches only.
    async fn transactions(&mut self, n: usize) -> Vec<Batch> {
        let got = self
            .until(|b| {
                b.iter()
                    .filter(|b| !b.is_empty() && b.end_position.is_some())
                    .count()
                    >= n
            })
            .await;
        got.into_iter().filter(|b| !b.is_empty()).collect()
    }

    async fn stop(self) -> Result<()> {
        drop(self.rx);
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("stream stops when the receiver goes away")
            .expect("stream task")
    }
}

fn describe(batches: &[Batch]) -> String {
    batches
        .iter()
        .map(|b| {
            format!(
                "[{} {:?} x{} end={}]",
                b.schema.id,
                b.events.first().map(|e| e.op),
                b.len(),
                b.end_position.is_some()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn pos(b: &Batch) -> BinlogPosition {
    BinlogPosition::decode(b.end_position.as_ref().expect("end position")).expect("decodes")
}

fn int(v: i32) -> Value {
    Value::Int32(v)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_across_two_tables_and_restart_without_resend() {
    let db = Db::new("cdc_dml");
    db.sql(
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20)); \
         CREATE TABLE b (id BIGINT PRIMARY KEY, n DECIMAL(10,2));",
    );
    let source = db.source().await;
    let catalog = db.catalog(&source).await;
    let from = source
        .capture_position("dml", &catalog)
        .await
        .expect("capture position");
    let mut cap = start(&source, "cdc-dml", from.clone(), &catalog);
    db.sql(
        "BEGIN; INSERT INTO a VALUES (1,'x'),(2,'y'); INSERT INTO b VALUES (10, 1.50); \
         UPDATE a SET v = 'z' WHERE id = 1; DELETE FROM b WHERE id = 10; COMMIT; \
         INSERT INTO a VALUES (3, 'w');",
    );
    let got = cap.transactions(2).await;
    assert_eq!(got.len(), 5, "{}", describe(&got));
    let ops: Vec<(String, Operation, usize, bool)> = got
        .iter()
        .map(|b| {
            (
                b.schema.id.name.clone(),
                b.events[0].op,
                b.len(),
                b.end_position.is_some(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("a".into(), Operation::Insert, 2, false),
            ("b".into(), Operation::Insert, 1, false),
            ("a".into(), Operation::Update, 1, false),
            ("b".into(), Operation::Delete, 1, true),
            ("a".into(), Operation::Insert, 1, true),
        ]
    );
    assert_eq!(got[0].events[0].after, Some(vec![int(1), text("x")]));
    assert_eq!(got[0].events[1].after, Some(vec![int(2), text("y")]));
    assert_eq!(
        got[1].events[0].after,
        Some(vec![
            Value::Int64(10),
            Value::Decimal(ferry_core::Decimal::Finite("1.50".into()))
        ])
    );
    assert_eq!(got[2].events[0].before, Some(vec![int(1), text("x")]));
    assert_eq!(got[2].events[0].after, Some(vec![int(1), text("z")]));
    assert_eq!(got[3].events[0].after, None);
    assert_eq!(
        got[3].events[0].before.as_ref().map(|r| r[0].clone()),
        Some(Value::Int64(10))
    );
    for b in &got {
        assert!(b.events.iter().all(|e| e.commit_time.is_some()));
    }
    let first_end = got[3].end_position.clone().expect("end");
    let second_end = got[4].end_position.clone().expect("end");
    assert!(from < first_end && first_end < second_end);
    assert!(got[3].source_time.is_some());
    let p = pos(&got[3]);
    assert!(
        p.gtid.is_some(),
        "MariaDB positions carry the GTID position"
    );
    cap.stop().await.expect("clean stop");

    // Restart from the end of the first transaction: only the second comes again.
    let mut cap = start(&source, "cdc-dml", first_end, &catalog);
    let again = cap.transactions(1).await;
    assert_eq!(again.len(), 1, "{}", describe(&again));
    assert_eq!(again[0].events[0].after, Some(vec![int(3), text("w")]));
    assert_eq!(again[0].end_position, Some(second_end.clone()));
    cap.stop().await.expect("clean stop");

    // Restart from the end: nothing but markers.
    let mut cap = start(&source, "cdc-dml", second_end.clone(), &catalog);
    let idle = cap
        .until(|b| b.iter().filter(|b| b.caught_up).count() >= 2)
        .await;
    assert!(idle.iter().all(|b| b.is_marker()), "{}", describe(&idle));
    assert!(
        idle.iter()
            .all(|b| b.end_position.as_ref() >= Some(&second_end))
    );
    cap.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_rotation_is_followed() {
    let db = Db::new("cdc_rot");
    db.sql("CREATE TABLE r (id INT PRIMARY KEY)");
    let source = db.source().await;
    let catalog = db.catalog(&source).await;
    let from = source
        .capture_position("rot", &catalog)
        .await
        .expect("position");
    let mut cap = start(&source, "cdc-rot", from, &catalog);
    db.sql("INSERT INTO r VALUES (1); FLUSH BINARY LOGS; INSERT INTO r VALUES (2);");
    let got = cap.transactions(2).await;
    assert_eq!(got.len(), 2, "{}", describe(&got));
    assert_eq!(got[1].events[0].after, Some(vec![int(2)]));
    let (p1, p2) = (pos(&got[0]), pos(&got[1]));
    assert!(p2.file_number() > p1.file_number(), "{p1:?} then {p2:?}");
    assert!(got[0].end_position < got[1].end_position);
    cap.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_and_truncate_mid_stream() {
    let db = Db::new("cdc_ddl");
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); CREATE TABLE other (x INT);");
    let source = db.source().await;
    let mut catalog = db.catalog(&source).await;
    catalog.tables.retain(|t| t.id.name == "t");
    let from = source
        .capture_position("ddl", &catalog)
        .await
        .expect("position");
    let mut cap = start(&source, "cdc-ddl", from, &catalog);
    db.sql(
        "INSERT INTO t VALUES (1, 'a'); \
         ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 5; \
         INSERT INTO t VALUES (2, 'b', 7); \
         ALTER TABLE t DROP COLUMN v; \
         INSERT INTO other VALUES (1); \
         INSERT INTO t VALUES (3, 8); \
         TRUNCATE TABLE t; \
         INSERT INTO t VALUES (4, 9);",
    );
    let got = cap.transactions(5).await;
    let shape: Vec<(Operation, usize)> = got
        .iter()
        .map(|b| (b.events[0].op, b.schema.columns.len()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (Operation::Insert, 2),
            (Operation::SchemaChange, 3),
            (Operation::Insert, 3),
            (Operation::SchemaChange, 2),
            (Operation::Insert, 2),
            (Operation::Truncate, 2),
            (Operation::Insert, 2),
        ],
        "{}",
        describe(&got)
    );
    // Row batches end their transactions.
    for b in got
        .iter()
        .filter(|b| b.events[0].op != Operation::SchemaChange)
    {
        assert!(b.end_position.is_some(), "{}", describe(&got));
    }
    assert_eq!(
        got[2].events[0].after,
        Some(vec![int(2), text("b"), int(7)])
    );
    assert_eq!(
        got[3]
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["id", "c"]
    );
    assert_eq!(got[4].events[0].after, Some(vec![int(3), int(8)]));
    assert_eq!(got[6].events[0].after, Some(vec![int(4), int(9)]));
    let ends: Vec<&Position> = got.iter().filter_map(|b| b.end_position.as_ref()).collect();
    for w in ends.windows(2) {
        assert!(w[0] < w[1]);
    }
    // An ALTER with no rows after it still reaches the stream once it is idle.
    db.sql("ALTER TABLE t ADD COLUMN z VARCHAR(5)");
    let more = cap
        .until(|b| {
            b.iter()
                .any(|b| !b.is_empty() && b.events[0].op == Operation::SchemaChange)
        })
        .await;
    let change = more.iter().find(|b| !b.is_empty()).expect("schema change");
    assert_eq!(
        change
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["id", "c", "z"]
    );
    assert!(change.end_position.as_ref() >= ends.last().copied());
    cap.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_selected_table_stops_with_a_schema_error() {
    let db = Db::new("cdc_drop");
    db.sql("CREATE TABLE gone (id INT PRIMARY KEY)");
    let source = db.source().await;
    let catalog = db.catalog(&source).await;
    let from = source
        .capture_position("drop", &catalog)
        .await
        .expect("position");
    let cap = start(&source, "cdc-drop", from, &catalog);
    db.sql("DROP TABLE gone");
    let result = tokio::time::timeout(WAIT, cap.handle)
        .await
        .expect("stream stops")
        .expect("task");
    let e = result.expect_err("drop is an error");
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert!(!e.is_retryable());
    assert!(e.message().contains("dropped"), "{e}");
    assert!(e.message().contains("gone"), "{e}");
}

/// Every column type whose value must read the same from the snapshot and from
/// the binlog.
const TYPES_TABLE: &str = "CREATE TABLE v (
    id INT PRIMARY KEY,
    b TINYINT(1), ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, mu MEDIUMINT UNSIGNED,
    bi BIGINT, bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, de DECIMAL(20,6), dn DECIMAL(5,0),
    c CHAR(5), cl CHAR(3) CHARACTER SET latin1, vc VARCHAR(30), vl VARCHAR(30) CHARACTER SET latin1,
    tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB, b1 BIT(1), b10 BIT(10),
    e ENUM('red','green','blue'), st SET('a','b','c'), j JSON,
    dt DATE, dtm DATETIME, dt6 DATETIME(6), ts TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL,
    tm TIME, tm2 TIME(2), y YEAR, u UUID, i6 INET6, i4 INET4
)";

fn values_row(id: i32) -> String {
    format!(
        "({id}, 1, -5, 250, -300, -8000000, 16000000, -9000000000, 18446744073709551615, 1.5, \
         -2.25e100, 12345678901234.123456, -99999, 'ab', 'é', 'héllo wörld', 'çà€', 'long text', \
         'ab', x'00ff', x'0102', b'1', b'1000000001', 'green', 'a,c', '{{\"k\": [1, 2]}}', \
         '2024-02-29', '1999-12-31 23:59:59', '2038-01-19 03:14:08.123456', \
         '2021-06-01 12:00:00', '1970-01-02 00:00:00.5', '-838:59:59', '12:34:56.78', 2155, \
         '123e4567-e89b-12d3-a456-426614174000', '2001:db8::1', '192.0.2.1')"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_hands_over_to_the_stream_with_equal_values() {
    let db = Db::new("cdc_snap");
    db.sql(TYPES_TABLE);
    db.sql("CREATE TABLE nulls LIKE v");
    db.sql(&format!(
        "INSERT INTO v VALUES {}, {}; INSERT INTO nulls (id) VALUES (1);",
        values_row(1),
        values_row(2)
    ));
    let source = db.source().await;
    let catalog = db.catalog(&source).await;
    let snapshot = source
        .begin_capture_snapshot("snap", &catalog)
        .await
        .expect("capture snapshot");
    let from = snapshot.position.clone().expect("snapshot position");
    // Changes after the snapshot.
    db.sql(&format!(
        "INSERT INTO v VALUES {}; UPDATE v SET vc = 'changed' WHERE id = 1; \
         INSERT INTO nulls (id) VALUES (2); DELETE FROM v WHERE id = 2;",
        values_row(3)
    ));
    let mut snap_rows: Vec<(String, Row)> = Vec::new();
    for table in &catalog.tables {
        let schema = Arc::new(table.clone());
        let parts = source
            .partitions(&snapshot, &schema, 1)
            .await
            .expect("partitions");
        let (tx, mut rx) = batch_channel(16, 16 << 20);
        let read = source.read_partition(
            &snapshot,
            Arc::clone(&schema),
            parts[0].clone(),
            ferry_core::BadDataPolicy::default(),
            tx,
        );
        let collect = async {
            let mut rows = Vec::new();
            while let Some(b) = rx.recv().await {
                rows.extend(b.events.into_iter().filter_map(|e| e.after));
            }
            rows
        };
        let (report, rows) = tokio::join!(read, collect);
        report.expect("read");
        snap_rows.extend(rows.into_iter().map(|r| (table.id.name.clone(), r)));
    }
    source.end_snapshot(snapshot).await.expect("end snapshot");
    let ids = |t: &str| -> Vec<Value> {
        let mut v: Vec<Value> = snap_rows
            .iter()
            .filter(|(n, _)| n == t)
            .map(|(_, r)| r[0].clone())
            .collect();
        v.sort_by_key(|x| format!("{x:?}"));
        v
    };
    assert_eq!(
        ids("v"),
        vec![int(1), int(2)],
        "snapshot sees only the rows before"
    );
    assert_eq!(ids("nulls"), vec![int(1)]);

    let mut cap = start(&source, "cdc-snap", from.clone(), &catalog);
    let got = cap.transactions(4).await;
    let events: Vec<(String, Operation)> = got
        .iter()
        .flat_map(|b| {
            b.events
                .iter()
                .map(move |e| (b.schema.id.name.clone(), e.op))
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("v".into(), Operation::Insert),
            ("v".into(), Operation::Update),
            ("nulls".into(), Operation::Insert),
            ("v".into(), Operation::Delete),
        ],
        "{}",
        describe(&got)
    );
    assert!(got.iter().all(|b| b.end_position.as_ref() > Some(&from)));
    // Row 3 (stream) carries the same literals as rows 1 and 2 (snapshot).
    let snap_row2 = snap_rows
        .iter()
        .find(|(n, r)| n == "v" && r[0] == int(2))
        .map(|(_, r)| r.clone())
        .expect("row 2");
    let streamed = got[0].events[0].after.clone().expect("after");
    let columns = &got[0].schema.columns;
    assert_eq!(streamed.len(), snap_row2.len());
    for (i, c) in columns.iter().enumerate().skip(1) {
        assert_eq!(
            streamed[i], snap_row2[i],
            "column {} ({})",
            c.name, c.source_type
        );
    }
    // The delete's before image is the full snapshot row.
    assert_eq!(got[3].events[0].before.as_ref(), Some(&snap_row2));
    // NULLs everywhere but the key.
    let nulls = got[2].events[0].after.clone().expect("after");
    assert!(nulls[1..].iter().all(Value::is_null), "{nulls:?}");
    cap.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_transaction_arrives_in_bounded_batches() {
    let db = Db::new("cdc_big");
    db.sql("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(100))");
    let source = db.source().await;
    let catalog = db.catalog(&source).await;
    let from = source
        .capture_position("big", &catalog)
        .await
        .expect("position");
    let mut cap = start(&source, "cdc-big", from, &catalog);
    db.sql(
        "INSERT INTO big SELECT seq, REPEAT('x', 100) FROM seq_1_to_100000; \
         INSERT INTO big VALUES (0, 'after');",
    );
    let got = cap.transactions(2).await;
    let (last, first_txn) = got.split_last().expect("batches");
    let rows: usize = first_txn.iter().map(Batch::len).sum();
    assert_eq!(rows, 100_000);
    assert!(first_txn.len() >= 100, "{} batches", first_txn.len());
    assert!(
        first_txn
            .iter()
            .all(|b| b.len() <= 1000 && b.bytes <= (1 << 20) + 4096)
    );
    let ends: Vec<bool> = first_txn.iter().map(|b| b.end_position.is_some()).collect();
    assert!(
        ends[..ends.len() - 1].iter().all(|e| !e),
        "only the last batch ends the transaction"
    );
    assert!(ends[ends.len() - 1]);
    assert_eq!(last.events[0].after, Some(vec![int(0), text("after")]));
    cap.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_flow_while_idle() {
    let db = Db::new("cdc_idle");
    db.sql("CREATE TABLE quiet (id INT PRIMARY KEY)");
    let source = db.source().await;
    let catalog = db.catalog(&source).await;
    let from = source
        .capture_position("idle", &catalog)
        .await
        .expect("position");
    let mut cap = start(&source, "cdc-idle", from.clone(), &catalog);
    let started = Instant::now();
    let got = cap
        .until(|b| b.iter().filter(|b| b.caught_up).count() >= 3)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    for b in got.iter().filter(|b| b.caught_up) {
        assert!(b.is_marker());
        assert!(b.source_time.is_some());
        assert!(b.end_position.as_ref() >= Some(&from));
    }
    cap.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dump_is_a_retryable_connection_error() {
    let db = Db::new("cdc_kill");
    db.sql("CREATE TABLE k (id INT PRIMARY KEY)");
    // A user of its own, so that its dump thread is the only one with that user.
    let user = format!("u{}", &db.name[db.name.len() - 6..]);
    db.sql(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; \
         GRANT ALL ON *.* TO '{user}'@'%';"
    ));
    let url = db.maria.url(&db.name);
    let (scheme, rest) = url.split_once("://").expect("url scheme");
    let (_, host) = rest.split_once('@').expect("url user");
    let source = Arc::new(
        MySqlSource::connect(&format!("{scheme}://{user}:pw@{host}"))
            .await
            .expect("connects"),
    );
    let catalog = db.catalog(&source).await;
    let from = source
        .capture_position("kill", &catalog)
        .await
        .expect("position");
    let mut cap = start(&source, "cdc-kill", from.clone(), &catalog);
    cap.until(|b| b.iter().any(|b| b.caught_up)).await;
    let ids = db.sql(&format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' \
         AND USER = '{user}'"
    ));
    assert_eq!(ids.lines().count(), 1, "one dump thread: {ids}");
    db.sql(&format!("KILL {}", ids.trim()));
    let result = tokio::time::timeout(WAIT, async {
        loop {
            tokio::select! {
                r = &mut cap.handle => break r,
                _ = cap.rx.recv() => {}
            }
        }
    })
    .await
    .expect("the stream ends")
    .expect("task");
    let e = result.expect_err("a killed dump is an error");
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.is_retryable());
    // A restart (what the runner does on a retryable error) carries on.
    let mut again = start(&source, "cdc-kill", from, &catalog);
    db.sql("INSERT INTO k VALUES (1)");
    let got = again.transactions(1).await;
    assert_eq!(got[0].events[0].after, Some(vec![int(1)]));
    again.stop().await.expect("clean stop");
    db.sql(&format!("DROP USER '{user}'@'%'"));
}
