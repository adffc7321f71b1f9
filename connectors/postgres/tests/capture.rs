//! Change capture from logical replication (`pgoutput`) against the kit's real
//! PostgreSQL: row images (TOAST left out, REPLICA IDENTITY FULL before images),
//! transaction end positions, restart after an acknowledged position, the
//! snapshot hand-over, idle markers moving the slot, cleanup.

use ferry_core::{
    Batch, BatchReceiver, Catalog, Operation, Position, Result, Source, TableFilter, Value,
    batch_channel,
};
use ferry_postgres::PgSource;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(60);

struct Db {
    pg: ferry_tests::PgService,
    name: String,
}

impl Db {
    fn new(prefix: &str) -> Db {
        let pg = ferry_tests::postgres_or_panic();
        let name = pg.create_database(prefix).expect("test database");
        Db { pg, name }
    }

    fn sql(&self, sql: &str) -> String {
        self.pg
            .psql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn source(&self) -> Arc<PgSource> {
        Arc::new(
            PgSource::connect(&self.pg.url(&self.name))
                .await
                .expect("source connects"),
        )
    }

    async fn catalog(&self, source: &PgSource, pattern: &str) -> Catalog {
        let filter = TableFilter::new(&[pattern.to_string()], &[]).expect("filter parses");
        source.discover(&filter).await.expect("discover")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.pg.psql(
            &self.name,
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE database = current_database() AND NOT active",
        );
        let _ = self.pg.drop_database(&self.name);
    }
}

struct Capture {
    handle: JoinHandle<Result<()>>,
    rx: BatchReceiver,
}

fn start(source: &Arc<PgSource>, task: &str, from: Position, catalog: &Catalog) -> Capture {
    let (tx, rx) = batch_channel(64, 64 << 20);
    let source = Arc::clone(source);
    let catalog = catalog.clone();
    let task = task.to_string();
    let handle =
        tokio::spawn(async move { source.stream_changes(&task, from, &catalog, tx).await });
    Capture { handle, rx }
}

impl Capture {
    /// Receives batches until `done` says so, or fails after [`WAIT`].
    async fn until(&mut self, mut done: impl FnMut(&[Batch]) -> bool) -> Vec<Batch> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(b)) => got.push(b),
                Ok(None) => {
                    let result = (&mut self.handle).await;
                    panic!("stream ended early: {result:?}; got {} batches", got.len());
                }
                Err(_) => panic!("timed out; got {} batches", got.len()),
            }
        }
        got
    }

    /// Ends the stream (closing the channel) and checks it ended cleanly.
    async fn stop(self) {
        drop(self.rx);
        let result = tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("stream stops when its channel closes")
            .expect("stream task");
        result.expect("stream ended without error");
    }
}

/// A change as (operation, before, after).
type Change = (Operation, Option<Vec<Value>>, Option<Vec<Value>>);

fn changes(batches: &[Batch]) -> Vec<Change> {
    batches
        .iter()
        .flat_map(|b| b.events.iter())
        .map(|e| (e.op, e.before.clone(), e.after.clone()))
        .collect()
}

fn count_changes(batches: &[Batch]) -> usize {
    batches.iter().map(|b| b.events.len()).sum()
}

fn text(s: &str) -> Value {
    Value::Text(
        ferry_core::Text::from_utf8(bytes::Bytes::copy_from_slice(s.as_bytes())).expect("utf-8"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_images_keep_toast_out_and_carry_full_before_images() {
    let db = Db::new("cap_images");
    db.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, n int NOT NULL);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
         INSERT INTO docs VALUES (1, repeat('x', 10000), 0);
         CREATE TABLE loose (a int, b text);
         ALTER TABLE loose REPLICA IDENTITY FULL;
         INSERT INTO loose VALUES (1, 'one');",
    );
    let source = db.source().await;
    let catalog = db.catalog(&source, "public.*").await;
    let from = source
        .capture_position("images", &catalog)
        .await
        .expect("slot and publication");
    let mut capture = start(&source, "images", from.clone(), &catalog);
    db.sql(
        "BEGIN;
         UPDATE docs SET n = 1 WHERE id = 1;
         UPDATE loose SET b = 'uno' WHERE a = 1;
         DELETE FROM loose WHERE a = 1;
         COMMIT;",
    );
    let got = capture
        .until(|b| count_changes(b) >= 3 && b.last().is_some_and(|l| l.end_position.is_some()))
        .await;
    let c = changes(&got);
    assert_eq!(c.len(), 3, "{c:?}");
    // The TOASTed body did not change: it is not sent, and says so.
    assert_eq!(c[0].0, Operation::Update);
    assert_eq!(
        c[0].2,
        Some(vec![Value::Int32(1), Value::Unchanged, Value::Int32(1)])
    );
    // REPLICA IDENTITY FULL: the whole old row comes along.
    assert_eq!(c[1].1, Some(vec![Value::Int32(1), text("one")]));
    assert_eq!(c[1].2, Some(vec![Value::Int32(1), text("uno")]));
    assert_eq!(c[2].0, Operation::Delete);
    assert_eq!(c[2].1, Some(vec![Value::Int32(1), text("uno")]));
    // One transaction: only its last batch carries the end position, after `from`,
    // with the commit time.
    let ends: Vec<&Batch> = got.iter().filter(|b| b.end_position.is_some()).collect();
    let last = ends.last().expect("an end position");
    assert!(last.end_position.as_ref().expect("position") > &from);
    assert!(last.source_time.is_some());
    capture.stop().await;
    source.cleanup_capture("images").await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_skips_what_was_acknowledged_and_idle_markers_move_the_slot() {
    let db = Db::new("cap_restart");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE other (id serial PRIMARY KEY, pad text);",
    );
    let source = db.source().await;
    let catalog = db.catalog(&source, "public.t").await;
    let from = source
        .capture_position("restart", &catalog)
        .await
        .expect("slot");
    let mut capture = start(&source, "restart", from, &catalog);
    db.sql("INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b');");
    let got = capture
        .until(|b| {
            b.iter()
                .filter(|b| !b.events.is_empty() && b.end_position.is_some())
                .count()
                >= 2
        })
        .await;
    let first_end = got
        .iter()
        .find(|b| !b.events.is_empty() && b.end_position.is_some())
        .and_then(|b| b.end_position.clone())
        .expect("first transaction's end");
    capture.stop().await;

    // From the first transaction's end, only the second comes again.
    let mut capture = start(&source, "restart", first_end.clone(), &catalog);
    let got = capture.until(|b| count_changes(b) >= 1).await;
    let c = changes(&got);
    assert_eq!(c[0].2, Some(vec![Value::Int32(2), text("b")]), "{c:?}");

    // Idle as far as the selected table goes: markers still come, and once
    // acknowledged the slot moves past the unselected writes.
    db.sql("INSERT INTO other (pad) SELECT repeat('p', 200) FROM generate_series(1, 5000)");
    let written = db.sql("SELECT pg_current_wal_lsn()");
    let marker = capture
        .until(|b| b.iter().any(|b| b.is_marker() && b.caught_up))
        .await
        .into_iter()
        .rev()
        .find(|b| b.is_marker())
        .and_then(|b| b.end_position)
        .expect("a marker");
    source.acknowledge("restart", &marker).await.expect("ack");
    let deadline = Instant::now() + WAIT;
    loop {
        let moved = db.sql(&format!(
            "SELECT confirmed_flush_lsn >= '{}'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'ferry_restart'",
            written.trim()
        ));
        if moved.trim() == "t" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot did not move past {written}"
        );
        let more = capture.until(|b| b.iter().any(Batch::is_marker)).await;
        if let Some(position) = more.iter().rev().find_map(|b| b.end_position.clone()) {
            source.acknowledge("restart", &position).await.expect("ack");
        }
    }
    capture.stop().await;
    let removed = source.cleanup_capture("restart").await.expect("cleanup");
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry_restart'")
            .trim(),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_snapshot_and_the_stream_meet_exactly() {
    let db = Db::new("cap_snapshot");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);");
    let source = db.source().await;
    let catalog = db.catalog(&source, "public.t").await;
    let snapshot = source
        .begin_capture_snapshot("snap", &catalog)
        .await
        .expect("slot with snapshot");
    // Committed after the slot: in the stream, not in the snapshot.
    db.sql("INSERT INTO t VALUES (101); DELETE FROM t WHERE id = 1;");
    let table = Arc::new(catalog.tables[0].clone());
    let partitions = source
        .partitions(&snapshot, &table, 1)
        .await
        .expect("partitions");
    let (tx, mut rx) = batch_channel(16, 16 << 20);
    let reader = {
        let source = Arc::clone(&source);
        let snapshot = snapshot.clone();
        let table = Arc::clone(&table);
        let partition = partitions[0].clone();
        tokio::spawn(async move {
            source
                .read_partition(
                    &snapshot,
                    table,
                    partition,
                    ferry_core::BadDataPolicy::Fail,
                    tx,
                )
                .await
        })
    };
    let mut rows = 0;
    while let Some(b) = rx.recv().await {
        rows += b.events.len();
    }
    reader.await.expect("reader").expect("read");
    assert_eq!(rows, 100, "the snapshot holds the rows before the slot");
    let from = snapshot.position.clone().expect("position");
    source.end_snapshot(snapshot).await.expect("end snapshot");
    let mut capture = start(&source, "snap", from, &catalog);
    let got = capture.until(|b| count_changes(b) >= 2).await;
    let c = changes(&got);
    assert_eq!(c[0].0, Operation::Insert);
    assert_eq!(c[0].2, Some(vec![Value::Int32(101)]));
    assert_eq!(c[1].0, Operation::Delete);
    assert_eq!(c[1].1, Some(vec![Value::Int32(1)]));
    capture.stop().await;
    source.cleanup_capture("snap").await.expect("cleanup");
}
