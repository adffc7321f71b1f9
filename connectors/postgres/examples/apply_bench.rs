//! Throughput of the PostgreSQL change applier with a pgbench-like change mix:
//! each source transaction updates one account, one teller and one branch by key
//! and inserts one history row (75 % updates, 25 % inserts), batched per table as
//! a capture would send them, committed every 10,000 changes as the runner does.
//!
//! ```text
//! cargo run --release -p ferry-postgres --example apply_bench [-- TRANSACTIONS [SCALE [COMMIT_ROWS [spread]]]]
//! ```
//!
//! Uses the test kit's PostgreSQL (or `FERRY_TEST_PG_URL`).

use ferry_core::{
    ApplyTable, BadDataPolicy, Batch, ChangeApplier, ChangeEvent, Column, DataType, Operation,
    Position, Sink, TableId, TableSchema, Text, Value,
};
use ferry_postgres::PgSink;
use std::sync::Arc;
use std::time::Instant;

/// Changes per target transaction by default (the runner's default `commit-rows`).
const COMMIT_ROWS: usize = 10_000;

fn column(name: &str, data_type: DataType, pg_type: &str) -> Column {
    Column {
        name: name.into(),
        data_type,
        nullable: true,
        default: None,
        source_type: pg_type.into(),
    }
}

fn char_n(n: u32) -> DataType {
    DataType::Text {
        max_len: Some(n),
        fixed: true,
    }
}

fn table(name: &str, columns: Vec<Column>, key: Option<&str>) -> Arc<TableSchema> {
    let mut s = TableSchema::new(TableId::new("public", name), columns);
    if let Some(key) = key {
        s.primary_key = vec![key.into()];
    }
    Arc::new(s)
}

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn update(after: Vec<Value>) -> ChangeEvent {
    ChangeEvent {
        op: Operation::Update,
        before: None,
        after: Some(after),
        commit_time: None,
    }
}

fn one(schema: &Arc<TableSchema>, event: ChangeEvent) -> Batch {
    let mut b = Batch::new(Arc::clone(schema));
    b.push(event);
    b
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let transactions: usize = args.next().map_or(Ok(50_000), |a| a.parse())?;
    let scale: i32 = args.next().map_or(Ok(10), |a| a.parse())?;
    let commit_rows: usize = args.next().map_or(Ok(COMMIT_ROWS), |a| a.parse())?;
    // `spread`: as many tellers and branches as accounts (no hot rows).
    let spread = args.next().is_some_and(|a| a == "spread");
    let (n_tellers, n_branches) = if spread {
        (scale * 100_000, scale * 100_000)
    } else {
        (scale * 10, scale)
    };

    let pg = ferry_tests::postgres()?;
    let db = pg.create_database("apply_bench")?;
    pg.psql(
        &db,
        &format!(
            "CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
             CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
             CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
             CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
             INSERT INTO pgbench_branches SELECT b, 0, '' FROM generate_series(1, {n_branches}) b;
             INSERT INTO pgbench_tellers SELECT t, (t - 1) / 10 + 1, 0, '' FROM generate_series(1, {n_tellers}) t;
             INSERT INTO pgbench_accounts SELECT a, (a - 1) / 100000 + 1, 0, '' FROM generate_series(1, {scale} * 100000) a;
             VACUUM ANALYZE;"
        ),
    )?;
    let int = || DataType::Int32;
    let branches = table(
        "pgbench_branches",
        vec![
            column("bid", int(), "integer"),
            column("bbalance", int(), "integer"),
            column("filler", char_n(88), "character(88)"),
        ],
        Some("bid"),
    );
    let tellers = table(
        "pgbench_tellers",
        vec![
            column("tid", int(), "integer"),
            column("bid", int(), "integer"),
            column("tbalance", int(), "integer"),
            column("filler", char_n(84), "character(84)"),
        ],
        Some("tid"),
    );
    let accounts = table(
        "pgbench_accounts",
        vec![
            column("aid", int(), "integer"),
            column("bid", int(), "integer"),
            column("abalance", int(), "integer"),
            column("filler", char_n(84), "character(84)"),
        ],
        Some("aid"),
    );
    let history = table(
        "pgbench_history",
        vec![
            column("tid", int(), "integer"),
            column("bid", int(), "integer"),
            column("aid", int(), "integer"),
            column("delta", int(), "integer"),
            column("mtime", DataType::Timestamp, "timestamp without time zone"),
            column("filler", char_n(22), "character(22)"),
        ],
        None,
    );

    // The source's view: balances as the changes leave them.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut bbal = vec![0i32; n_branches as usize + 1];
    let mut tbal = vec![0i32; n_tellers as usize + 1];
    let mut abal = vec![0i32; scale as usize * 100_000 + 1];
    let pad = |n: usize| Value::Text(Text::from(" ".repeat(n)));
    let mut txns = Vec::with_capacity(transactions);
    for i in 0..transactions {
        let aid = rng.below(abal.len() as u64 - 1) as i32 + 1;
        let tid = rng.below(tbal.len() as u64 - 1) as i32 + 1;
        let bid = rng.below(bbal.len() as u64 - 1) as i32 + 1;
        let delta = rng.below(10_001) as i32 - 5_000;
        abal[aid as usize] += delta;
        tbal[tid as usize] += delta;
        bbal[bid as usize] += delta;
        let mut batches = vec![
            one(
                &accounts,
                update(vec![
                    Value::Int32(aid),
                    Value::Int32((aid - 1) / 100_000 + 1),
                    Value::Int32(abal[aid as usize]),
                    pad(84),
                ]),
            ),
            one(
                &tellers,
                update(vec![
                    Value::Int32(tid),
                    Value::Int32((tid - 1) / 10 + 1),
                    Value::Int32(tbal[tid as usize]),
                    pad(84),
                ]),
            ),
            one(
                &branches,
                update(vec![
                    Value::Int32(bid),
                    Value::Int32(bbal[bid as usize]),
                    pad(88),
                ]),
            ),
            one(
                &history,
                ChangeEvent::insert(vec![
                    Value::Int32(tid),
                    Value::Int32(bid),
                    Value::Int32(aid),
                    Value::Int32(delta),
                    Value::Timestamp(800_000_000_000_000 + i as i64),
                    pad(22),
                ]),
            ),
        ];
        if let Some(last) = batches.last_mut() {
            last.end_position = Some(Position::from_bytes((i as u64 + 1).to_be_bytes().to_vec()));
        }
        txns.push(batches);
    }

    let sink = PgSink::connect(&pg.url(&db)).await?;
    let tables = [&branches, &tellers, &accounts, &history]
        .into_iter()
        .map(|s| ApplyTable {
            schema: Arc::clone(s),
            policy: BadDataPolicy::Fail,
        })
        .collect();
    let mut applier = sink.open_applier("bench", tables).await?;
    let changes = transactions * 4;
    let started = Instant::now();
    let mut pending = 0;
    for batches in txns {
        for batch in batches {
            pending += batch.len();
            applier.apply(batch).await?;
        }
        if pending >= commit_rows {
            applier.commit().await?;
            pending = 0;
        }
    }
    applier.commit().await?;
    let elapsed = started.elapsed();
    println!(
        "{changes} changes ({transactions} source transactions, scale {scale}) in {:.2}s: {:.0} changes/s",
        elapsed.as_secs_f64(),
        changes as f64 / elapsed.as_secs_f64()
    );

    let check = pg.psql(
        &db,
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers), \
         (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history), \
         (SELECT count(*) FROM pgbench_history)",
    )?;
    let expected_sum: i64 = abal.iter().map(|&v| i64::from(v)).sum();
    let expected =
        format!("{expected_sum}|{expected_sum}|{expected_sum}|{expected_sum}|{transactions}");
    if check != expected {
        return Err(format!("target disagrees: {check} (expected {expected})").into());
    }
    println!("target matches the source (balances and history)");
    pg.drop_database(&db)?;
    Ok(())
}
