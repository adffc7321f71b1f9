//! The PostgreSQL change applier against a real server: inserts, updates, deletes,
//! truncates and schema changes land as the source made them, and the task's
//! checkpoint commits in the same transaction as the data.

use ferry_core::{
    ApplyTable, BadDataPolicy, Batch, ChangeApplier, ChangeEvent, Column, DataType, ErrorKind,
    Operation, Position, Row, Sink, TableId, TablePrep, TableSchema, Text, Value,
};
use ferry_postgres::PgSink;
use std::sync::Arc;

fn column(name: &str, data_type: DataType, pg_type: &str, nullable: bool) -> Column {
    Column {
        name: name.into(),
        data_type,
        nullable,
        default: None,
        source_type: pg_type.into(),
    }
}

fn text(s: &str) -> Value {
    Value::Text(Text::from(s))
}

fn pos(n: u64) -> Position {
    Position::from_bytes(n.to_be_bytes().to_vec())
}

/// `items(id int primary key, name text, qty bigint)` (no key when `keyed` is false).
fn items(keyed: bool) -> TableSchema {
    let mut s = TableSchema::new(
        TableId::new("public", "items"),
        vec![
            column("id", DataType::Int32, "integer", !keyed),
            column("name", DataType::text(), "text", true),
            column("qty", DataType::Int64, "bigint", true),
        ],
    );
    if keyed {
        s.primary_key = vec!["id".into()];
    }
    s
}

fn item(id: i32, name: &str, qty: Option<i64>) -> Row {
    vec![
        Value::Int32(id),
        text(name),
        qty.map_or(Value::Null, Value::Int64),
    ]
}

fn insert(row: Row) -> ChangeEvent {
    ChangeEvent::insert(row)
}

fn update(before: Option<Row>, after: Row) -> ChangeEvent {
    ChangeEvent {
        op: Operation::Update,
        before,
        after: Some(after),
        commit_time: None,
    }
}

fn delete(before: Row) -> ChangeEvent {
    ChangeEvent {
        op: Operation::Delete,
        before: Some(before),
        after: None,
        commit_time: None,
    }
}

fn op(op: Operation) -> ChangeEvent {
    ChangeEvent {
        op,
        before: None,
        after: None,
        commit_time: None,
    }
}

fn batch(schema: &Arc<TableSchema>, events: Vec<ChangeEvent>, end: Option<Position>) -> Batch {
    let mut b = Batch::new(Arc::clone(schema));
    for e in events {
        b.push(e);
    }
    b.end_position = end;
    b
}

/// A fresh database holding `schema`'s table, created as the runner would.
struct Fixture {
    pg: ferry_tests::PgService,
    db: String,
    sink: PgSink,
}

impl Fixture {
    async fn new(prefix: &str, schemas: &[&Arc<TableSchema>]) -> Self {
        let pg = ferry_tests::postgres_or_panic();
        let db = pg.create_database(prefix).expect("test database");
        let sink = PgSink::connect(&pg.url(&db)).await.expect("connect");
        for schema in schemas {
            sink.prepare_table(schema, TablePrep::DropAndCreate)
                .await
                .expect("create");
            sink.finish_table(schema, TablePrep::DropAndCreate)
                .await
                .expect("keys");
        }
        Fixture { pg, db, sink }
    }

    async fn applier(
        &self,
        task: &str,
        schemas: &[&Arc<TableSchema>],
    ) -> ferry_postgres::PgApplier {
        self.applier_with(task, schemas, BadDataPolicy::Fail).await
    }

    async fn applier_with(
        &self,
        task: &str,
        schemas: &[&Arc<TableSchema>],
        policy: BadDataPolicy,
    ) -> ferry_postgres::PgApplier {
        let tables = schemas
            .iter()
            .map(|s| ApplyTable {
                schema: Arc::clone(s),
                policy,
            })
            .collect();
        self.sink.open_applier(task, tables).await.expect("applier")
    }

    fn sql(&self, sql: &str) -> String {
        self.pg.psql(&self.db, sql).expect("query")
    }

    fn items(&self) -> String {
        self.sql("SELECT id, name, coalesce(qty::text, '-') FROM items ORDER BY id, name, qty")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_updates_deletes_and_truncate_land_in_order() {
    let schema = Arc::new(items(true));
    let f = Fixture::new("apply_dml", &[&schema]).await;
    let mut applier = f.applier("dml", &[&schema]).await;
    applier
        .apply(batch(
            &schema,
            vec![
                insert(item(1, "one", Some(1))),
                insert(item(2, "two", Some(2))),
                insert(item(3, "three", None)),
                insert(item(4, "four", Some(4))),
                // By key from the after image (no before image).
                update(None, item(2, "two!", Some(20))),
                // A key change: the before image names the old key.
                update(Some(item(3, "three", None)), item(30, "thirty", Some(30))),
                delete(item(4, "four", Some(4))),
                // Same row touched twice in one run: order matters.
                update(None, item(1, "uno", Some(11))),
                update(None, item(1, "eins", Some(111))),
                insert(item(5, "five", None)),
            ],
            Some(pos(10)),
        ))
        .await
        .expect("apply");
    assert_eq!(applier.commit().await.expect("commit"), Some(pos(10)));
    assert_eq!(f.items(), "1|eins|111\n2|two!|20\n5|five|-\n30|thirty|30");

    applier
        .apply(batch(
            &schema,
            vec![op(Operation::Truncate), insert(item(7, "seven", Some(7)))],
            Some(pos(11)),
        ))
        .await
        .expect("apply");
    assert_eq!(applier.commit().await.expect("commit"), Some(pos(11)));
    assert_eq!(f.items(), "7|seven|7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_commits_in_the_same_transaction_as_the_data() {
    let schema = Arc::new(items(true));
    let f = Fixture::new("apply_ckpt", &[&schema]).await;
    assert_eq!(f.sink.read_checkpoint("ckpt").await.expect("read"), None);

    let mut applier = f.applier("ckpt", &[&schema]).await;
    assert_eq!(applier.commit().await.expect("empty commit"), None);
    let mut first = batch(&schema, vec![insert(item(1, "a", None))], Some(pos(5)));
    first.source_time = Some(123_456);
    applier.apply(first).await.expect("apply");
    assert_eq!(applier.commit().await.expect("commit"), Some(pos(5)));
    assert_eq!(
        f.sink.read_checkpoint("ckpt").await.expect("read"),
        Some(pos(5))
    );
    assert_eq!(
        f.sql("SELECT position, source_time FROM ferry_checkpoints WHERE task = 'ckpt'"),
        format!("{}|123456", pos(5).to_hex())
    );
    // Nothing new: the last position again.
    assert_eq!(applier.commit().await.expect("commit"), Some(pos(5)));

    // Only a newer marker: just the checkpoint moves.
    applier
        .apply(Batch::marker(pos(6), Some(999), true))
        .await
        .expect("marker");
    assert_eq!(applier.commit().await.expect("commit"), Some(pos(6)));
    assert_eq!(
        f.sink.read_checkpoint("ckpt").await.expect("read"),
        Some(pos(6))
    );

    // A source transaction split over batches, then dropped before commit: neither
    // its rows nor its checkpoint survive.
    applier
        .apply(batch(&schema, vec![insert(item(2, "b", None))], None))
        .await
        .expect("apply");
    applier
        .apply(batch(
            &schema,
            vec![update(None, item(1, "a2", Some(1)))],
            Some(pos(7)),
        ))
        .await
        .expect("apply");
    drop(applier);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The server rolls back when it notices the closed connection.
    while f.sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND state LIKE 'idle in transaction%'",
        f.db
    )) != "0"
    {
        assert!(std::time::Instant::now() < deadline, "the session lingers");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(f.items(), "1|a|-");
    assert_eq!(
        f.sink.read_checkpoint("ckpt").await.expect("read"),
        Some(pos(6))
    );

    // A second task's checkpoint is its own row.
    let mut other = f.applier("other", &[&schema]).await;
    assert_eq!(other.commit().await.expect("commit"), None);
    other
        .apply(batch(
            &schema,
            vec![insert(item(3, "c", None))],
            Some(pos(1)),
        ))
        .await
        .expect("apply");
    assert_eq!(other.commit().await.expect("commit"), Some(pos(1)));
    assert_eq!(
        f.sink.read_checkpoint("ckpt").await.expect("read"),
        Some(pos(6))
    );
    assert_eq!(
        f.sink.read_checkpoint("other").await.expect("read"),
        Some(pos(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_and_remove_checkpoint_round_trip() {
    let pg = ferry_tests::postgres_or_panic();
    let db = pg.create_database("apply_rw").expect("test database");
    let sink = PgSink::connect(&pg.url(&db)).await.expect("connect");
    // No control table yet.
    assert_eq!(sink.read_checkpoint("t").await.expect("read"), None);
    assert!(!sink.remove_checkpoint("t").await.expect("remove"));

    sink.write_checkpoint("t", &pos(42)).await.expect("write");
    assert_eq!(
        sink.read_checkpoint("t").await.expect("read"),
        Some(pos(42))
    );
    sink.write_checkpoint("t", &pos(43))
        .await
        .expect("overwrite");
    assert_eq!(
        sink.read_checkpoint("t").await.expect("read"),
        Some(pos(43))
    );
    assert_eq!(sink.read_checkpoint("u").await.expect("read"), None);

    assert!(sink.remove_checkpoint("t").await.expect("remove"));
    assert_eq!(sink.read_checkpoint("t").await.expect("read"), None);
    assert!(!sink.remove_checkpoint("t").await.expect("remove again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_columns_keep_their_target_value() {
    let schema = Arc::new(items(true));
    let f = Fixture::new("apply_unch", &[&schema]).await;
    let mut applier = f.applier("unch", &[&schema]).await;
    let big = "x".repeat(10_000);
    applier
        .apply(batch(
            &schema,
            vec![
                insert(item(1, &big, Some(1))),
                insert(item(2, "b", Some(2))),
            ],
            Some(pos(1)),
        ))
        .await
        .expect("apply");
    applier
        .apply(batch(
            &schema,
            vec![
                update(
                    None,
                    vec![Value::Int32(1), Value::Unchanged, Value::Int64(5)],
                ),
                update(None, vec![Value::Int32(2), text("b2"), Value::Unchanged]),
            ],
            Some(pos(2)),
        ))
        .await
        .expect("apply");
    applier.commit().await.expect("commit");
    assert_eq!(
        f.sql("SELECT id, length(name), left(name, 2), qty FROM items ORDER BY id"),
        "1|10000|xx|5\n2|2|b2|2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_without_key_changes_exactly_one_matching_row() {
    let schema = Arc::new(items(false));
    let f = Fixture::new("apply_nokey", &[&schema]).await;
    let mut applier = f.applier("nokey", &[&schema]).await;
    applier
        .apply(batch(
            &schema,
            vec![
                insert(item(1, "same", None)),
                insert(item(1, "same", None)),
                insert(item(2, "twin", Some(2))),
                insert(item(2, "twin", Some(2))),
                insert(item(3, "other", Some(3))),
            ],
            Some(pos(1)),
        ))
        .await
        .expect("apply");
    applier
        .apply(batch(
            &schema,
            vec![
                // NULL-safe matching: qty is NULL in both rows.
                delete(item(1, "same", None)),
                update(Some(item(2, "twin", Some(2))), item(2, "twin", Some(22))),
            ],
            Some(pos(2)),
        ))
        .await
        .expect("apply");
    applier.commit().await.expect("commit");
    assert_eq!(f.items(), "1|same|-\n2|twin|2\n2|twin|22\n3|other|3");

    // A delete that matches nothing is an error naming the row.
    applier
        .apply(batch(
            &schema,
            vec![delete(item(9, "gone", None))],
            Some(pos(3)),
        ))
        .await
        .expect("sent");
    let e = applier.commit().await.expect_err("no such row");
    let msg = e.to_string();
    assert!(
        msg.contains("public.items") && msg.contains("gone"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_rows_and_duplicate_keys_are_errors_naming_table_and_key() {
    let schema = Arc::new(items(true));
    let f = Fixture::new("apply_missing", &[&schema]).await;

    let mut applier = f.applier("missing", &[&schema]).await;
    applier
        .apply(batch(
            &schema,
            vec![insert(item(1, "a", None))],
            Some(pos(1)),
        ))
        .await
        .expect("apply");
    applier.commit().await.expect("commit");

    // Errors may surface at apply (pipeline full) or at commit; either is fine.
    async fn fails(applier: &mut ferry_postgres::PgApplier, b: Batch) -> ferry_core::Error {
        match applier.apply(b).await {
            Err(e) => e,
            Ok(()) => applier.commit().await.expect_err("must fail"),
        }
    }

    let e = fails(
        &mut applier,
        batch(
            &schema,
            vec![update(None, item(42, "x", None))],
            Some(pos(2)),
        ),
    )
    .await;
    let msg = e.to_string();
    assert_ne!(e.kind(), ErrorKind::Connection, "{msg}");
    assert!(
        msg.contains("public.items") && msg.contains("(id=42)") && msg.contains("update"),
        "{msg}"
    );
    assert!(!e.is_retryable(), "{msg}");

    let mut applier = f.applier("missing", &[&schema]).await;
    let e = fails(
        &mut applier,
        batch(&schema, vec![delete(item(43, "x", None))], Some(pos(2))),
    )
    .await;
    let msg = e.to_string();
    assert!(
        msg.contains("public.items") && msg.contains("(id=43)") && msg.contains("delete"),
        "{msg}"
    );

    let mut applier = f.applier("missing", &[&schema]).await;
    let e = fails(
        &mut applier,
        batch(
            &schema,
            vec![insert(item(2, "b", None)), insert(item(1, "again", None))],
            Some(pos(2)),
        ),
    )
    .await;
    let msg = e.to_string();
    assert!(
        msg.contains("public.items") && msg.contains("(id)=(1)"),
        "duplicate key: {msg}"
    );

    // Nothing of the failed transactions stayed; the checkpoint did not move.
    assert_eq!(f.items(), "1|a|-");
    assert_eq!(
        f.sink.read_checkpoint("missing").await.expect("read"),
        Some(pos(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_change_adds_drops_and_widens_columns() {
    let old = Arc::new({
        let mut s = TableSchema::new(
            TableId::new("public", "evolving"),
            vec![
                column("id", DataType::Int32, "integer", false),
                column("small", DataType::Int32, "integer", true),
                column(
                    "label",
                    DataType::Text {
                        max_len: Some(5),
                        fixed: false,
                    },
                    "character varying(5)",
                    true,
                ),
                column("gone", DataType::text(), "text", true),
            ],
        );
        s.primary_key = vec!["id".into()];
        s
    });
    let f = Fixture::new("apply_ddl", &[&old]).await;
    let mut applier = f.applier("ddl", &[&old]).await;
    applier
        .apply(batch(
            &old,
            vec![insert(vec![
                Value::Int32(1),
                Value::Int32(7),
                text("short"),
                text("bye"),
            ])],
            Some(pos(1)),
        ))
        .await
        .expect("apply");

    let new = Arc::new({
        let mut s = TableSchema::new(
            TableId::new("public", "evolving"),
            vec![
                column("id", DataType::Int32, "integer", false),
                column("small", DataType::Int64, "bigint", true),
                column(
                    "label",
                    DataType::Text {
                        max_len: Some(20),
                        fixed: false,
                    },
                    "character varying(20)",
                    true,
                ),
                column("added", DataType::Float64, "double precision", true),
                column(
                    "mood",
                    DataType::Enum {
                        name: "mood".into(),
                        labels: vec!["sad".into(), "happy".into()],
                    },
                    r#""public"."mood""#,
                    true,
                ),
            ],
        );
        s.primary_key = vec!["id".into()];
        s
    });
    applier
        .apply(batch(
            &new,
            vec![
                op(Operation::SchemaChange),
                insert(vec![
                    Value::Int32(2),
                    Value::Int64(1 << 40),
                    text("a longer label"),
                    Value::Float64(2.5),
                    Value::Enum(Text::from("happy")),
                ]),
                update(
                    None,
                    vec![
                        Value::Int32(1),
                        Value::Int64(8),
                        Value::Unchanged,
                        Value::Null,
                        Value::Null,
                    ],
                ),
            ],
            Some(pos(2)),
        ))
        .await
        .expect("schema change");
    assert_eq!(applier.commit().await.expect("commit"), Some(pos(2)));
    assert_eq!(
        f.sql(
            "SELECT column_name, data_type, coalesce(character_maximum_length::text, '') \
             FROM information_schema.columns WHERE table_name = 'evolving' ORDER BY ordinal_position"
        ),
        "id|integer|\nsmall|bigint|\nlabel|character varying|20\n\
         added|double precision|\nmood|USER-DEFINED|"
    );
    assert_eq!(
        f.sql(
            "SELECT id, small, label, coalesce(added::text, '-'), coalesce(mood::text, '-') \
             FROM evolving ORDER BY id"
        ),
        "1|8|short|-|-\n2|1099511627776|a longer label|2.5|happy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_follow_the_table_policy() {
    let schema = Arc::new(items(true));
    let f = Fixture::new("apply_bad", &[&schema]).await;

    let rows = || {
        vec![
            insert(item(1, "ok", Some(1))),
            insert(item(2, "nul\0here", Some(2))),
            update(None, item(1, "n\0", Some(3))),
        ]
    };

    let mut applier = f.applier_with("bad", &[&schema], BadDataPolicy::Fail).await;
    let e = match applier.apply(batch(&schema, rows(), Some(pos(1)))).await {
        Err(e) => e,
        Ok(()) => applier.commit().await.expect_err("fails"),
    };
    let msg = e.to_string();
    assert!(
        msg.contains("public.items") && msg.contains("(id=2)") && msg.contains("name"),
        "{msg}"
    );
    drop(applier);

    let mut applier = f
        .applier_with("bad", &[&schema], BadDataPolicy::SkipRow)
        .await;
    applier
        .apply(batch(&schema, rows(), Some(pos(1))))
        .await
        .expect("skips");
    applier.commit().await.expect("commit");
    assert_eq!(f.items(), "1|ok|1");

    f.sql("TRUNCATE items");
    let mut applier = f
        .applier_with("bad", &[&schema], BadDataPolicy::Clamp)
        .await;
    applier
        .apply(batch(&schema, rows(), Some(pos(2))))
        .await
        .expect("clamps");
    applier.commit().await.expect("commit");
    assert_eq!(f.items(), "1|n|3\n2|nulhere|2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_is_retryable_and_loses_nothing_committed() {
    let schema = Arc::new(items(true));
    let f = Fixture::new("apply_conn", &[&schema]).await;
    let mut applier = f.applier("conn", &[&schema]).await;
    applier
        .apply(batch(
            &schema,
            vec![insert(item(1, "a", None))],
            Some(pos(1)),
        ))
        .await
        .expect("apply");
    applier.commit().await.expect("commit");
    applier
        .apply(batch(
            &schema,
            vec![insert(item(2, "b", None))],
            Some(pos(2)),
        ))
        .await
        .expect("apply");
    f.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid() AND application_name = 'ferry'",
        f.db
    ));
    let e = match applier
        .apply(batch(
            &schema,
            vec![insert(item(3, "c", None))],
            Some(pos(3)),
        ))
        .await
    {
        Err(e) => e,
        Ok(()) => applier.commit().await.expect_err("connection is gone"),
    };
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(f.items(), "1|a|-");
    assert_eq!(
        f.sink.read_checkpoint("conn").await.expect("read"),
        Some(pos(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_row_commits_early_but_only_at_a_source_transaction_boundary() {
    let schema = Arc::new(items(true));
    let f = Fixture::new("apply_hot", &[&schema]).await;
    let mut applier = f.applier("hot", &[&schema]).await;
    applier
        .apply(batch(
            &schema,
            vec![insert(item(1, "a", Some(0)))],
            Some(pos(1)),
        ))
        .await
        .expect("apply");
    // One source transaction changing the same row many times, in many batches.
    for n in 1..40 {
        applier
            .apply(batch(
                &schema,
                vec![update(None, item(1, "a", Some(n)))],
                None,
            ))
            .await
            .expect("apply");
        // Not at a boundary: nothing is committed yet.
        assert_eq!(f.sink.read_checkpoint("hot").await.expect("read"), None);
        assert_eq!(f.sql("SELECT count(*) FROM items"), "0");
    }
    applier
        .apply(batch(
            &schema,
            vec![update(None, item(1, "a", Some(40)))],
            Some(pos(2)),
        ))
        .await
        .expect("apply");
    // The boundary after the hot row: committed without waiting for the runner.
    assert_eq!(
        f.sink.read_checkpoint("hot").await.expect("read"),
        Some(pos(2))
    );
    assert_eq!(f.items(), "1|a|40");
    assert_eq!(applier.commit().await.expect("commit"), Some(pos(2)));

    // A row changed a few times does not commit early.
    for n in 41..44 {
        applier
            .apply(batch(
                &schema,
                vec![update(None, item(1, "a", Some(n)))],
                Some(pos(n as u64)),
            ))
            .await
            .expect("apply");
    }
    assert_eq!(
        f.sink.read_checkpoint("hot").await.expect("read"),
        Some(pos(2))
    );
    assert_eq!(applier.commit().await.expect("commit"), Some(pos(43)));
    assert_eq!(f.items(), "1|a|43");
}
