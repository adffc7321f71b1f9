//! Shared pieces of the change-data-capture end-to-end tests: a `ferry run` in
//! the background, writers that keep a source busy, and row comparisons.
#![allow(dead_code)]

use crate::common::{TempDir, ferry_binary};
use ferry_tests::{MariaService, PgService};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A `ferry run` in the background; killed on drop.
pub struct Ferry {
    child: Child,
    pub log: PathBuf,
    pub task_file: PathBuf,
}

impl Ferry {
    /// Writes `toml` to `<dir>/<name>.toml` and starts `ferry run` on it with
    /// `extra` arguments; output goes to `<dir>/<name>.<n>.log`.
    pub fn start(dir: &TempDir, name: &str, toml: &str, extra: &[&str]) -> Ferry {
        let task_file = dir.join(&format!("{name}.toml"));
        std::fs::write(&task_file, toml).expect("write task file");
        let mut n = 0;
        let log = loop {
            let candidate = dir.join(&format!("{name}.{n}.log"));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(ferry_binary())
            .arg("run")
            .arg(&task_file)
            .args(["--no-progress"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start ferry");
        Ferry {
            child,
            log,
            task_file,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`, then reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(timeout)
    }

    /// Waits (at most `timeout`) for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code(), self.output());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "ferry did not exit within {timeout:?}; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 300 ms until it returns `Ok` or `timeout` passes; then
/// panics with its last complaint.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Waits (at most two minutes) until the task streams changes; panics with its
/// output if it fails first.
pub fn wait_for_cdc(ferry: &Ferry) {
    wait_for("the CDC phase", Duration::from_secs(120), || {
        let s = status_json(&ferry.task_file).unwrap_or_default();
        match s["phase"].as_str() {
            Some("cdc") => Ok(()),
            Some("failed") => panic!("ferry failed: {}", ferry.output()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// The shared PostgreSQL with a fresh source and target database.
pub fn pg_databases(source: &str, target: &str) -> (PgService, String, String) {
    let pg = ferry_tests::postgres_or_panic();
    let src = pg.create_database(source).expect("source db");
    let dst = pg.create_database(target).expect("target db");
    (pg, src, dst)
}

/// [`pg_databases`] with `schema` run in the source database.
pub fn pg_databases_with(source: &str, target: &str, schema: &str) -> (PgService, String, String) {
    let (pg, src, dst) = pg_databases(source, target);
    pg.psql(&src, schema).expect("source schema");
    (pg, src, dst)
}

/// `ferry status <task> --format json`, parsed.
pub fn status_json(task_file: &std::path::Path) -> Option<serde_json::Value> {
    let out = Command::new(ferry_binary())
        .arg("status")
        .arg(task_file)
        .args(["--format", "json"])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// A small deterministic pseudo-random generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// In `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A thread that runs `step` in a loop until stopped; counts the steps.
pub struct Writer {
    stop: Arc<AtomicBool>,
    pub steps: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts calling `step(i)` with i = 0, 1, 2, ... until [`Writer::stop`].
    pub fn start(mut step: impl FnMut(u64) + Send + 'static) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicU64::new(0));
        let (s, n) = (Arc::clone(&stop), Arc::clone(&steps));
        let handle = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::SeqCst) {
                step(i);
                i += 1;
                n.store(i, Ordering::SeqCst);
            }
        });
        Writer {
            stop,
            steps,
            handle: Some(handle),
        }
    }

    /// Steps done so far.
    pub fn done(&self) -> u64 {
        self.steps.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` steps are done.
    pub fn wait_steps(&self, n: u64, timeout: Duration) {
        wait_for("the writer's steps", timeout, || {
            let d = self.done();
            if d >= n {
                Ok(())
            } else {
                Err(format!("{d} of {n} steps"))
            }
        });
    }

    /// Stops after the current step and waits for it.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("writer thread panicked");
        }
        self.done()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One PostgreSQL transaction of the mixed workload on the tables of
/// [`PG_SOURCE_TABLES`]: inserts, updates (one leaving the TOASTed `docs.body`
/// unchanged), a delete, rows in the table without a primary key, and a counter
/// row. `i` makes it deterministic.
pub fn pg_workload_sql(i: u64, rng: &mut Rng, seed_rows: u64) -> String {
    let new_id = 10_000_000 + i;
    let a = 1 + rng.below(seed_rows);
    let b = 1 + rng.below(seed_rows);
    let doc = 1 + rng.below(20);
    let mut sql = String::from("BEGIN;\n");
    sql.push_str(&format!(
        "INSERT INTO accounts (id, balance, note, touched) VALUES ({new_id}, {}, 'new {i} ✓', now());\n",
        rng.below(1000)
    ));
    sql.push_str(&format!(
        "UPDATE accounts SET balance = balance + 1, touched = now() WHERE id = {a};\n"
    ));
    sql.push_str(&format!(
        "UPDATE docs SET version = version + 1 WHERE id = {doc};\n"
    ));
    if i.is_multiple_of(3) {
        sql.push_str(&format!("DELETE FROM accounts WHERE id = {b};\n"));
    }
    if i.is_multiple_of(5) {
        sql.push_str(&format!(
            "UPDATE accounts SET note = NULL WHERE id = {};\n",
            10_000_000 + i / 2
        ));
    }
    sql.push_str(&format!("INSERT INTO nopk VALUES ({}, 'dup');\n", i % 7));
    if i.is_multiple_of(4) {
        sql.push_str(&format!(
            "DELETE FROM nopk WHERE ctid = (SELECT ctid FROM nopk WHERE a = {} LIMIT 1);\n",
            (i + 3) % 7
        ));
    }
    sql.push_str(&format!("INSERT INTO counter (v) VALUES ({i});\n"));
    if i.is_multiple_of(10) {
        sql.push_str(&format!(
            "UPDATE docs SET body = repeat('changed {i} ', 4000) WHERE id = {doc};\n"
        ));
    }
    sql.push_str("COMMIT;\n");
    sql
}

/// The PostgreSQL source schema of the workload, with `seed_rows` accounts.
pub fn pg_source_tables(seed_rows: u64) -> String {
    format!(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, note text, \
           touched timestamptz);\n\
         INSERT INTO accounts SELECT g, g % 1000, 'seed ' || g, \
           '2024-02-29 12:34:56.789012+00'::timestamptz + g * interval '1 second' \
           FROM generate_series(1, {seed_rows}) g;\n\
         CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, version int NOT NULL);\n\
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n\
         INSERT INTO docs SELECT g, repeat(md5(g::text), 2000), 0 FROM generate_series(1, 20) g;\n\
         CREATE TABLE nopk (a int, b text);\n\
         ALTER TABLE nopk REPLICA IDENTITY FULL;\n\
         INSERT INTO nopk SELECT g % 7, 'dup' FROM generate_series(1, 50) g;\n\
         CREATE TABLE counter (id bigserial PRIMARY KEY, v bigint NOT NULL);\n"
    )
}

/// Every row of a PostgreSQL table as text, sorted.
pub fn pg_rows(pg: &PgService, db: &str, table: &str) -> Vec<String> {
    let out = pg
        .psql(db, &format!("SELECT t::text FROM {table} t ORDER BY 1"))
        .expect("read rows");
    out.lines().map(str::to_string).collect()
}

/// Row count and a digest of every row of a PostgreSQL table.
pub fn pg_digest(pg: &PgService, db: &str, table: &str) -> String {
    pg.psql(
        db,
        &format!(
            "SELECT count(*) || ' rows, md5 ' || coalesce(md5(string_agg(t::text, E'\\n' \
             ORDER BY t::text)), '-') FROM {table} t"
        ),
    )
    .expect("digest rows")
}

/// `Ok` when the two tables hold the same rows (compared by digest, so a poll
/// stays cheap on big tables; small tables show the differing rows).
pub fn same_pg_rows(
    pg: &PgService,
    source_db: &str,
    target_db: &str,
    table: &str,
) -> Result<(), String> {
    let a = pg_digest(pg, source_db, table);
    let b = pg_digest(pg, target_db, table);
    if a == b {
        return Ok(());
    }
    let small = |d: &str| {
        d.split(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n <= 10_000)
    };
    if small(&a) && small(&b) {
        diff_rows(
            table,
            &pg_rows(pg, source_db, table),
            &pg_rows(pg, target_db, table),
        )
    } else {
        Err(format!("{table}: source {a}, target {b}"))
    }
}

/// `Ok` when equal, else counts and the first differing rows.
pub fn diff_rows(table: &str, source: &[String], target: &[String]) -> Result<(), String> {
    if source == target {
        return Ok(());
    }
    let in_source: std::collections::HashSet<&String> = source.iter().collect();
    let in_target: std::collections::HashSet<&String> = target.iter().collect();
    let missing: Vec<&String> = source
        .iter()
        .filter(|r| !in_target.contains(r))
        .take(3)
        .collect();
    let extra: Vec<&String> = target
        .iter()
        .filter(|r| !in_source.contains(r))
        .take(3)
        .collect();
    Err(format!(
        "{table}: source {} rows, target {} rows; missing at target {missing:?}, extra {extra:?}",
        source.len(),
        target.len()
    ))
}

/// Every row of a MariaDB table in the canonical text of
/// `cross_engine::canonical`, sorted, and the same for its PostgreSQL copy.
pub fn canonical_rows(
    maria: &MariaService,
    maria_db: &str,
    pg: &PgService,
    pg_db: &str,
    pg_schema: &str,
    table: &str,
) -> (Vec<String>, Vec<String>) {
    use crate::cross_engine::{fetch_canonical, maria_columns, pg_columns};
    let mcols = maria_columns(maria, maria_db, table);
    let pcols = pg_columns(pg, pg_db, pg_schema, table);
    if mcols.len() != pcols.len() {
        return (
            vec![format!("columns {mcols:?}")],
            vec![format!("columns {pcols:?}")],
        );
    }
    let (_, mut m, mut p) =
        fetch_canonical(maria, maria_db, pg, pg_db, pg_schema, table, &mcols, &pcols);
    m.sort();
    p.sort();
    (m, p)
}

/// A CDC task file between two URLs.
pub fn cdc_task(source: &str, target: &str, mode: &str, include: &[&str], extra: &str) -> String {
    let include = include
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[source]\nurl = {source:?}\n\n[target]\nurl = {target:?}\n\n[task]\nmode = {mode:?}\n\
         include = [{include}]\nparallelism = 2\n{extra}"
    )
}

/// The MariaDB source schema of the workload, with `seed_rows` accounts. The
/// same wall-clock timestamp is written by the seed and by the workload, so the
/// snapshot and the change stream must agree on its time zone.
pub fn maria_source_tables(seed_rows: u64) -> String {
    format!(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, note varchar(200), \
           touched datetime(6), stamp timestamp(6) NULL, price decimal(12,2));\n\
         INSERT INTO accounts SELECT seq, seq % 1000, CONCAT('seed ', seq), \
           TIMESTAMP'2024-02-29 12:34:56.789012' + INTERVAL seq SECOND, \
           TIMESTAMP'2024-02-29 12:34:56.789012', seq / 100 FROM seq_1_to_{seed_rows};\n\
         CREATE TABLE docs (id int PRIMARY KEY, body longtext NOT NULL, version int NOT NULL);\n\
         INSERT INTO docs SELECT seq, REPEAT(MD5(seq), 2000), 0 FROM seq_1_to_20;\n\
         CREATE TABLE nopk (a int, b varchar(10));\n\
         INSERT INTO nopk SELECT seq % 7, 'dup' FROM seq_1_to_50;\n\
         CREATE TABLE counter (id bigint AUTO_INCREMENT PRIMARY KEY, v bigint NOT NULL);\n"
    )
}

/// One MariaDB transaction of the workload (see [`pg_workload_sql`]).
pub fn maria_workload_sql(i: u64, rng: &mut Rng, seed_rows: u64) -> String {
    let new_id = 10_000_000 + i;
    let a = 1 + rng.below(seed_rows);
    let b = 1 + rng.below(seed_rows);
    let doc = 1 + rng.below(20);
    let mut sql = String::from("START TRANSACTION;\n");
    sql.push_str(&format!(
        "INSERT INTO accounts VALUES ({new_id}, {}, 'new {i} ✓', \
         TIMESTAMP'2024-02-29 12:34:56.789012', TIMESTAMP'2024-02-29 12:34:56.789012', {}.25);\n",
        rng.below(1000),
        rng.below(100000)
    ));
    sql.push_str(&format!(
        "UPDATE accounts SET balance = balance + 1, touched = NOW(6), stamp = NOW(6) WHERE id = {a};\n"
    ));
    sql.push_str(&format!(
        "UPDATE docs SET version = version + 1 WHERE id = {doc};\n"
    ));
    if i.is_multiple_of(3) {
        sql.push_str(&format!("DELETE FROM accounts WHERE id = {b};\n"));
    }
    sql.push_str(&format!("INSERT INTO nopk VALUES ({}, 'dup');\n", i % 7));
    if i.is_multiple_of(4) {
        sql.push_str(&format!(
            "DELETE FROM nopk WHERE a = {} LIMIT 1;\n",
            (i + 3) % 7
        ));
    }
    sql.push_str(&format!("INSERT INTO counter (v) VALUES ({i});\n"));
    sql.push_str("COMMIT;\n");
    sql
}

/// Stops the task with SIGTERM (it must exit 0) and removes its slot,
/// publication and checkpoint.
pub fn stop_and_clean_up(ferry: Ferry) {
    let task_file = ferry.task_file.clone();
    let (code, output) = ferry.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "SIGTERM ends the task cleanly:\n{output}");
    cleanup(&task_file);
}

/// `ferry cleanup <task file>`: removes the task's slot, publication and
/// checkpoint, so a test leaves no replication slot retaining WAL behind.
pub fn cleanup(task_file: &std::path::Path) {
    let out = Command::new(ferry_binary())
        .arg("cleanup")
        .arg(task_file)
        .output()
        .expect("ferry cleanup");
    assert!(
        out.status.success(),
        "ferry cleanup failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
