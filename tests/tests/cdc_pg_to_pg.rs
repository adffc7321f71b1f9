//! PostgreSQL → PostgreSQL change data capture, end to end through the `ferry`
//! binary: full-load-and-cdc under a steady writer, `kill -9` at random moments,
//! a source restart, an idle slot, a 2,000,000-row transaction under a memory
//! cap, and columns added and dropped mid-stream.

mod cdc;
mod common;
mod cross_engine;

use cdc::{
    Ferry, Rng, Writer, cdc_task, pg_rows, pg_source_tables, pg_workload_sql, same_pg_rows,
    status_json, wait_for,
};
use common::TempDir;
use ferry_tests::{PgService, postgres_or_panic, private_postgres};
use std::time::Duration;

const TABLES: [&str; 4] = ["accounts", "docs", "nopk", "counter"];

fn converged(pg: &PgService, src: &str, dst: &str) -> Result<(), String> {
    for t in TABLES {
        same_pg_rows(pg, src, dst, t)?;
    }
    Ok(())
}

fn phase(task_file: &std::path::Path) -> String {
    status_json(task_file)
        .and_then(|s| s["phase"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn start_writer(pg: &PgService, db: &str, seed_rows: u64, seed: u64) -> Writer {
    let pg = pg.clone();
    let db = db.to_string();
    let mut rng = Rng(seed);
    Writer::start(move |i| {
        // Failures (a server being restarted) only mean this transaction did not
        // happen: the source stays the truth the target is compared with.
        let _ = pg.psql(&db, &pg_workload_sql(i, &mut rng, seed_rows));
    })
}

#[test]
fn full_load_and_cdc_converges_under_a_steady_writer() {
    let (pg, src, dst) = cdc::pg_databases("cdc_src", "cdc_dst");
    pg.psql(&src, &pg_source_tables(100_000))
        .expect("source schema");
    let dir = TempDir::new("cdc-pg-pg");
    let writer = start_writer(&pg, &src, 100_000, 7);
    writer.wait_steps(5, Duration::from_secs(60));
    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.*"],
        "",
    );
    let ferry = Ferry::start(&dir, "steady", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    let steps = writer.done();
    writer.wait_steps(steps + 60, Duration::from_secs(120));
    let total = writer.stop();
    assert!(total > 60, "the writer ran {total} transactions");
    wait_for("the target to converge", Duration::from_secs(120), || {
        converged(&pg, &src, &dst)
    });

    // The status file is rewritten every second and counts commits as the
    // runner makes them: wait for the commit that follows convergence.
    wait_for(
        "the status to show a commit",
        Duration::from_secs(30),
        || {
            let s = status_json(&ferry.task_file).unwrap_or_default();
            if s["commits"].as_u64() > Some(0) && s["lag_seconds"].as_f64().is_some() {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    );
    let status = status_json(&ferry.task_file).expect("status");
    let accounts = status["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["source"] == "public.accounts"))
        .expect("accounts in status")
        .clone();
    assert_eq!(
        accounts["full_load_rows"].as_u64().map(|n| n >= 100_000),
        Some(true),
        "{status}"
    );
    assert!(accounts["inserts"].as_u64() > Some(0), "{status}");
    assert!(accounts["updates"].as_u64() > Some(0), "{status}");
    assert!(accounts["deletes"].as_u64() > Some(0), "{status}");
    assert!(
        status["position_text"]
            .as_str()
            .is_some_and(|p| p.contains('/')),
        "{status}"
    );
    assert!(status["lag_seconds"].as_f64().is_some(), "{status}");
    let text = std::process::Command::new(common::ferry_binary())
        .arg("status")
        .arg(&ferry.task_file)
        .output()
        .expect("ferry status");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("public.accounts") && text.contains("applying"),
        "{text}"
    );

    let (code, output) = ferry.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "SIGTERM ends CDC cleanly:\n{output}");
    assert!(
        output.contains("change capture: stopped on request"),
        "{output}"
    );

    // The slot and publication are the task's; cleanup removes them.
    let slot = pg
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry_steady'",
        )
        .expect("slots");
    assert_eq!(slot.trim(), "1");
    let out = std::process::Command::new(common::ferry_binary())
        .arg("cleanup")
        .arg(dir.join("steady.toml"))
        .output()
        .expect("ferry cleanup");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slot = pg
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry_steady'",
        )
        .expect("slots");
    assert_eq!(slot.trim(), "0", "{text}");
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let (pg, src, dst) = cdc::pg_databases("crash_src", "crash_dst");
    pg.psql(&src, &pg_source_tables(200_000))
        .expect("source schema");
    let dir = TempDir::new("cdc-crash");
    let writer = start_writer(&pg, &src, 200_000, 99);
    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.*"],
        "commit-rows = 50\n",
    );
    let mut rng = Rng(12345);
    let mut kills = Vec::new();
    for round in 0..7 {
        let env_failpoint = round == 3;
        let ferry = if env_failpoint {
            // Exactly between a target commit and the slot acknowledgement.
            let task_file = dir.join("crash.toml");
            std::fs::write(&task_file, &task).expect("task file");
            let log = dir.join("crash.failpoint.log");
            let out = std::fs::File::create(&log).expect("log");
            let status = std::process::Command::new(common::ferry_binary())
                .arg("run")
                .arg(&task_file)
                .arg("--no-progress")
                .env("FERRY_FAILPOINT", "after-commit:3")
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .status()
                .expect("ferry");
            assert!(!status.success(), "the failpoint aborts ferry");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(text.contains("failpoint after-commit:3"), "{text}");
            kills.push("failpoint after the 3rd commit".to_string());
            continue;
        } else {
            Ferry::start(&dir, "crash", &task, &[])
        };
        let task_file = ferry.task_file.clone();
        let moment = if round == 0 {
            // During the full load.
            wait_for(
                "the full load to start",
                Duration::from_secs(60),
                || match phase(&task_file).as_str() {
                    "full-load" | "cdc" => Ok(()),
                    other => Err(other.to_string()),
                },
            );
            "full load".to_string()
        } else {
            let wanted = 20 + rng.below(400);
            wait_for("changes to be applied", Duration::from_secs(180), || {
                let s = status_json(&task_file).unwrap_or_default();
                if s["phase"] == "failed" {
                    panic!("ferry failed: {}", ferry.output());
                }
                let applied = s["changes_applied"].as_u64().unwrap_or(0);
                if s["phase"] == "cdc" && applied >= wanted {
                    Ok(())
                } else {
                    Err(format!("{} {applied}", s["phase"]))
                }
            });
            format!("CDC after {wanted} changes")
        };
        kills.push(moment);
        ferry.kill9();
    }
    let total = writer.stop();
    let ferry = Ferry::start(&dir, "crash", &task, &[]);
    wait_for(
        "the target to converge after the crashes",
        Duration::from_secs(180),
        || converged(&pg, &src, &dst),
    );
    let (code, output) = ferry.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{output}");
    assert!(kills.len() >= 6, "{kills:?}");
    // Exactly once: the append-only counter and the table without a key match row
    // for row (a change applied twice would add a row, a lost one would miss one).
    let counter = pg_rows(&pg, &dst, "counter");
    assert!(
        counter.len() as u64 >= total / 2,
        "{} counter rows after {total} transactions",
        counter.len()
    );
    cdc::cleanup(&dir.join("crash.toml"));
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

#[test]
fn the_task_reconnects_by_itself_after_a_source_restart() {
    let source = private_postgres("pgrestart").expect("private source server");
    let svc = &source.service;
    let src = svc.create_database("restart_src").expect("source db");
    svc.psql(&src, &pg_source_tables(1_000))
        .expect("source schema");
    let pg = postgres_or_panic();
    let dst = pg.create_database("restart_dst").expect("target db");
    let dir = TempDir::new("cdc-restart");
    let task = cdc_task(
        &svc.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.*"],
        "",
    );
    let ferry = Ferry::start(&dir, "restart", &task, &[]);
    let writer = start_writer(svc, &src, 1_000, 5);
    cdc::wait_for_cdc(&ferry);
    writer.wait_steps(writer.done() + 20, Duration::from_secs(60));
    source.stop().expect("stop the source");
    wait_for(
        "ferry to notice the lost source",
        Duration::from_secs(60),
        || {
            let s = status_json(&ferry.task_file).unwrap_or_default();
            if s["reconnects"].as_u64() > Some(0) {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    );
    source.start().expect("start the source again");
    writer.wait_steps(writer.done() + 30, Duration::from_secs(60));
    writer.stop();
    let same = |t: &str| {
        let a = pg_rows(svc, &src, t);
        let b = pg_rows(&pg, &dst, t);
        cdc::diff_rows(t, &a, &b)
    };
    wait_for(
        "the target to converge after the restart",
        Duration::from_secs(120),
        || TABLES.iter().try_for_each(|t| same(t)),
    );
    cdc::stop_and_clean_up(ferry);
    let _ = pg.drop_database(&dst);
}

#[test]
fn an_idle_slot_does_not_retain_wal() {
    let (pg, src, dst) = cdc::pg_databases_with(
        "idle_src",
        "idle_dst",
        "CREATE TABLE selected (id int PRIMARY KEY, v text); INSERT INTO selected VALUES (1, 'a');
         CREATE TABLE unselected (id serial PRIMARY KEY, v text);",
    );
    let dir = TempDir::new("cdc-idle");
    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.selected"],
        "",
    );
    let ferry = Ferry::start(&dir, "idle", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    for _ in 0..5 {
        pg.psql(
            &src,
            "INSERT INTO unselected (v) SELECT repeat('x', 500) FROM generate_series(1, 20000)",
        )
        .expect("writes to the unselected table");
    }
    let after = pg.psql(&src, "SELECT pg_current_wal_lsn()").expect("lsn");
    let after = after.trim().to_string();
    wait_for(
        "the slot to confirm WAL past the unselected writes",
        Duration::from_secs(60),
        || {
            let behind = pg
                .psql(
                    "postgres",
                    &format!(
                        "SELECT confirmed_flush_lsn >= '{after}'::pg_lsn FROM pg_replication_slots \
                     WHERE slot_name = 'ferry_idle'"
                    ),
                )
                .map_err(|e| e.to_string())?;
            if behind.trim() == "t" {
                Ok(())
            } else {
                Err(format!("slot behind {after}: {behind}"))
            }
        },
    );
    cdc::stop_and_clean_up(ferry);
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

/// Peak resident memory of a process, from `/proc/<pid>/status` (`VmHWM`, KiB).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn a_two_million_row_transaction_is_applied_in_bounded_memory() {
    let (pg, src, dst) = cdc::pg_databases_with(
        "big_src",
        "big_dst",
        "CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL)",
    );
    let dir = TempDir::new("cdc-big");
    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.big"],
        "",
    );
    let mut ferry = Ferry::start(&dir, "big", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    // About 2,000,000 × 130 bytes = 260 MB of row data in one transaction.
    pg.psql(
        &src,
        "INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 2000000) g",
    )
    .expect("the big transaction");
    wait_for(
        "the big transaction to arrive",
        Duration::from_secs(600),
        || {
            assert!(ferry.running(), "ferry stopped: {}", ferry.output());
            let n = pg
                .psql(&dst, "SELECT count(*) FROM big")
                .map_err(|e| e.to_string())?;
            if n.trim() == "2000000" {
                Ok(())
            } else {
                Err(n)
            }
        },
    );
    let peak_mib = peak_rss_kib(ferry.pid()).expect("peak RSS") / 1024;
    cdc::stop_and_clean_up(ferry);
    assert!(
        peak_mib < 200,
        "ferry's peak RSS was {peak_mib} MiB for a ~260 MB transaction (cap 200 MiB)"
    );
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

#[test]
fn columns_added_and_dropped_mid_stream_follow_or_stop_per_ddl_policy() {
    let (pg, src, dst) = cdc::pg_databases_with(
        "ddl_src",
        "ddl_dst",
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);
         INSERT INTO items VALUES (1, 'one', 1), (2, 'two', 2);",
    );
    let dir = TempDir::new("cdc-ddl");
    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.items"],
        "",
    );
    let ferry = Ferry::start(&dir, "ddl", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    pg.psql(
        &src,
        "INSERT INTO items VALUES (3, 'three', 3);
         ALTER TABLE items ADD COLUMN price numeric(10,2);
         INSERT INTO items VALUES (4, 'four', 4, 4.50);
         UPDATE items SET price = 1.25 WHERE id = 1;
         ALTER TABLE items DROP COLUMN qty;
         INSERT INTO items VALUES (5, 'five', 5.75);
         ALTER TABLE items ALTER COLUMN name TYPE varchar(200);
         UPDATE items SET name = 'TWO' WHERE id = 2;",
    )
    .expect("changes");
    wait_for(
        "the target to follow the new shape",
        Duration::from_secs(60),
        || same_pg_rows(&pg, &src, &dst, "items"),
    );
    let columns = "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) \
                   FROM information_schema.columns WHERE table_name = 'items'";
    assert_eq!(
        pg.psql(&dst, columns).expect("target columns"),
        pg.psql(&src, columns).expect("source columns")
    );
    let (code, output) = ferry.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{output}");

    // ddl-policy = "stop": the task stops at the change, naming table and column.
    let stop_task = format!("{task}ddl-policy = \"stop\"\n");
    let mut ferry = Ferry::start(&dir, "ddl", &stop_task, &[]);
    cdc::wait_for_cdc(&ferry);
    pg.psql(
        &src,
        "ALTER TABLE items ADD COLUMN colour text; INSERT INTO items VALUES (6, 'six', 6, 'red');",
    )
    .expect("change");
    let (code, output) = ferry.wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("public.items")
            && output.contains("added column colour")
            && output.contains("ddl-policy"),
        "{output}"
    );
    cdc::cleanup(&dir.join("ddl.toml"));
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

#[test]
fn truncate_streams_and_a_table_without_identity_is_refused_with_the_fix() {
    let (pg, src, dst) = cdc::pg_databases_with(
        "trunc_src",
        "trunc_dst",
        "CREATE TABLE keyed (id int PRIMARY KEY, v text);
         INSERT INTO keyed SELECT g, 'v' || g FROM generate_series(1, 100) g;
         CREATE TABLE loose (a int, b text);",
    );
    let dir = TempDir::new("cdc-trunc");

    // A table without a key and with REPLICA IDENTITY DEFAULT cannot be captured.
    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.*"],
        "",
    );
    let mut ferry = Ferry::start(&dir, "refused", &task, &[]);
    let (code, output) = ferry.wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("public.loose") && output.contains("REPLICA IDENTITY FULL"),
        "{output}"
    );
    let slots = pg
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry_refused'",
        )
        .expect("slots");
    assert_eq!(
        slots.trim(),
        "0",
        "nothing is created before the checks pass"
    );

    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.keyed"],
        "",
    );
    let ferry = Ferry::start(&dir, "trunc", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    pg.psql(
        &src,
        "INSERT INTO keyed VALUES (1000, 'before');
         TRUNCATE keyed;
         INSERT INTO keyed VALUES (1, 'after'), (2, 'after');",
    )
    .expect("changes");
    wait_for(
        "the truncate to reach the target",
        Duration::from_secs(60),
        || same_pg_rows(&pg, &src, &dst, "keyed"),
    );
    cdc::stop_and_clean_up(ferry);
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

#[test]
fn a_partitioned_table_streams_and_generated_columns_are_refused() {
    let (pg, src, dst) = cdc::pg_databases_with("part_src", "part_dst", "CREATE TABLE events (id int, at date, what text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO events VALUES (1, '2024-05-01', 'a'), (2, '2025-05-01', 'b');
         CREATE TABLE priced (id int PRIMARY KEY, net int, gross int GENERATED ALWAYS AS (net * 2) STORED);");
    let dir = TempDir::new("cdc-part");

    let refused = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.priced"],
        "",
    );
    let mut ferry = Ferry::start(&dir, "gen", &refused, &[]);
    let (code, output) = ferry.wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("public.priced") && output.contains("gross"),
        "{output}"
    );

    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.events"],
        "",
    );
    let ferry = Ferry::start(&dir, "part", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    pg.psql(
        &src,
        "INSERT INTO events VALUES (3, '2024-06-01', 'c'), (4, '2025-06-01', 'd');
         UPDATE events SET what = 'B' WHERE id = 2;
         DELETE FROM events WHERE id = 1;",
    )
    .expect("changes");
    wait_for("the partitions' changes", Duration::from_secs(60), || {
        same_pg_rows(&pg, &src, &dst, "events")
    });
    cdc::stop_and_clean_up(ferry);
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}
