//! Change data capture across engines, end to end through the `ferry` binary:
//! MariaDB → PostgreSQL and PostgreSQL → MariaDB in full-load-and-cdc under a
//! steady writer, compared row by row through the type mapping (timestamps
//! written the same way before and after the snapshot included).

mod cdc;
mod common;
mod cross_engine;

use cdc::{
    Ferry, Rng, Writer, canonical_rows, cdc_task, diff_rows, maria_source_tables,
    maria_workload_sql, pg_source_tables, pg_workload_sql, wait_for,
};
use common::TempDir;
use ferry_tests::{mariadb_or_panic, postgres_or_panic};
use std::time::Duration;

const TABLES: [&str; 4] = ["accounts", "docs", "nopk", "counter"];

#[test]
fn mariadb_to_postgres_full_load_and_cdc_converges() {
    let maria = mariadb_or_panic();
    let pg = postgres_or_panic();
    let src = maria.create_database("cdc_my").expect("source db");
    maria
        .sql(&src, &maria_source_tables(20_000))
        .expect("source schema");
    // The same instant written before the snapshot and after it, in a session
    // whose time zone is not UTC: the copy and the stream must agree on it.
    let tz_row = |id: u32| {
        format!(
            "SET time_zone = '+05:30'; INSERT INTO tz VALUES ({id}, \
             TIMESTAMP'2024-02-29 23:59:59.123456', TIMESTAMP'2024-02-29 23:59:59.123456')"
        )
    };
    maria
        .sql(
            &src,
            "CREATE TABLE tz (id int PRIMARY KEY, ts timestamp(6) NULL, dt datetime(6))",
        )
        .expect("tz table");
    maria.sql(&src, &tz_row(1)).expect("tz row 1");
    let dst = pg.create_database("cdc_my_pg").expect("target db");
    let dir = TempDir::new("cdc-my-pg");
    let writer = {
        let maria = maria.clone();
        let src = src.clone();
        let mut rng = Rng(31);
        Writer::start(move |i| {
            maria
                .sql(&src, &maria_workload_sql(i, &mut rng, 20_000))
                .expect("workload");
        })
    };
    writer.wait_steps(5, Duration::from_secs(60));
    let task = cdc_task(
        &maria.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &[&format!("{src}.*")],
        "",
    );
    let ferry = Ferry::start(&dir, "mypg", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    maria.sql(&src, &tz_row(2)).expect("tz row 2");
    writer.wait_steps(writer.done() + 60, Duration::from_secs(120));
    writer.stop();
    wait_for("the target to converge", Duration::from_secs(120), || {
        TABLES.iter().try_for_each(|t| {
            let (m, p) = canonical_rows(&maria, &src, &pg, &dst, &src, t);
            diff_rows(t, &m, &p)
        })
    });
    wait_for("the streamed tz row", Duration::from_secs(60), || {
        let out = pg
            .psql(&dst, &format!("SELECT count(*) FROM \"{src}\".tz"))
            .map_err(|e| e.to_string())?;
        if out.trim() == "2" { Ok(()) } else { Err(out) }
    });
    let tz = pg
        .psql(
            &dst,
            &format!(
                "SELECT string_agg(ts::text || ' ' || dt::text, ',' ORDER BY id) \
                 FROM \"{src}\".tz"
            ),
        )
        .expect("tz rows");
    let rows: Vec<&str> = tz.split(',').collect();
    assert_eq!(rows.len(), 2, "{tz}");
    assert_eq!(
        rows[0], rows[1],
        "snapshot and stream disagree on the same instant: {tz}"
    );
    cdc::stop_and_clean_up(ferry);
    let _ = maria.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

#[test]
fn postgres_to_mariadb_full_load_and_cdc_converges() {
    let pg = postgres_or_panic();
    let maria = mariadb_or_panic();
    let src = pg.create_database("cdc_pg_my").expect("source db");
    pg.psql(&src, &pg_source_tables(20_000))
        .expect("source schema");
    let tz_row = |id: u32| {
        format!(
            "SET TimeZone = 'Asia/Kolkata'; INSERT INTO tz VALUES ({id}, \
             '2024-02-29 23:59:59.123456+05:30', '2024-02-29 23:59:59.123456')"
        )
    };
    pg.psql(
        &src,
        "CREATE TABLE tz (id int PRIMARY KEY, ts timestamptz, dt timestamp)",
    )
    .expect("tz table");
    pg.psql(&src, &tz_row(1)).expect("tz row 1");
    let dst = maria.create_database("cdc_pg_my").expect("target db");
    let dir = TempDir::new("cdc-pg-my");
    let writer = {
        let pg = pg.clone();
        let src = src.clone();
        let mut rng = Rng(77);
        Writer::start(move |i| {
            pg.psql(&src, &pg_workload_sql(i, &mut rng, 20_000))
                .expect("workload");
        })
    };
    writer.wait_steps(5, Duration::from_secs(60));
    let task = cdc_task(
        &pg.url(&src),
        &maria.url(&dst),
        "full-load-and-cdc",
        &["public.*"],
        "",
    );
    let ferry = Ferry::start(&dir, "pgmy", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    pg.psql(&src, &tz_row(2)).expect("tz row 2");
    writer.wait_steps(writer.done() + 60, Duration::from_secs(120));
    writer.stop();
    wait_for("the target to converge", Duration::from_secs(120), || {
        TABLES.iter().try_for_each(|t| {
            let (m, p) = canonical_rows(&maria, &dst, &pg, &src, "public", t);
            diff_rows(t, &p, &m)
        })
    });
    wait_for("the streamed tz row", Duration::from_secs(60), || {
        let out = maria
            .sql(&dst, "SELECT count(*) FROM tz")
            .map_err(|e| e.to_string())?;
        if out.trim() == "2" { Ok(()) } else { Err(out) }
    });
    let tz = maria
        .sql(
            &dst,
            "SET time_zone = '+00:00'; SELECT GROUP_CONCAT(CONCAT(ts, ' ', dt) ORDER BY id) FROM tz",
        )
        .expect("tz rows");
    let rows: Vec<&str> = tz.trim().split(',').collect();
    assert_eq!(rows.len(), 2, "{tz}");
    assert_eq!(
        rows[0], rows[1],
        "snapshot and stream disagree on the same instant: {tz}"
    );
    assert!(
        rows[0].starts_with("2024-02-29 18:29:59.123456"),
        "UTC instant kept: {tz}"
    );
    cdc::stop_and_clean_up(ferry);
    let _ = pg.drop_database(&src);
    let _ = maria.drop_database(&dst);
}

#[test]
fn cdc_mode_starts_at_a_given_binlog_position() {
    let maria = mariadb_or_panic();
    let pg = postgres_or_panic();
    let src = maria.create_database("cdc_at").expect("source db");
    maria
        .sql(&src, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20)); INSERT INTO t VALUES (1, 'before');")
        .expect("schema");
    let status = maria
        .sql(&src, "SHOW MASTER STATUS")
        .expect("binlog position");
    let mut fields = status.split_whitespace();
    let (file, offset) = (
        fields.next().expect("binlog file").to_string(),
        fields.next().expect("binlog offset").to_string(),
    );
    // After the position: these are the changes the task must apply.
    maria
        .sql(
            &src,
            "INSERT INTO t VALUES (2, 'after'); UPDATE t SET v = 'changed' WHERE id = 1;",
        )
        .expect("changes");
    let dst = pg.create_database("cdc_at").expect("target db");
    let dir = TempDir::new("cdc-at");
    // The target table exists with the row as it was at the position.
    let load = cdc_task(
        &maria.url(&src),
        &pg.url(&dst),
        "full-load",
        &[&format!("{src}.t")],
        "",
    );
    let mut loader = Ferry::start(&dir, "load", &load, &[]);
    let (code, output) = loader.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{output}");
    pg.psql(
        &dst,
        &format!("DELETE FROM \"{src}\".t WHERE id = 2; UPDATE \"{src}\".t SET v = 'before'"),
    )
    .expect("rewind the target to the position");

    let bad = cdc_task(
        &maria.url(&src),
        &pg.url(&dst),
        "cdc",
        &[&format!("{src}.t")],
        "table-prep = \"do-nothing\"\nstart-position = \"no-such-binlog.000001:4\"\n",
    );
    let mut ferry = Ferry::start(&dir, "at-bad", &bad, &[]);
    let (code, output) = ferry.wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("no-such-binlog.000001") && output.contains("SHOW BINARY LOGS"),
        "{output}"
    );

    let task = cdc_task(
        &maria.url(&src),
        &pg.url(&dst),
        "cdc",
        &[&format!("{src}.t")],
        &format!("table-prep = \"do-nothing\"\nstart-position = \"{file}:{offset}\"\n"),
    );
    let ferry = Ferry::start(&dir, "at", &task, &[]);
    maria
        .sql(&src, "INSERT INTO t VALUES (3, 'later');")
        .expect("later change");
    wait_for(
        "the changes since the position",
        Duration::from_secs(60),
        || {
            let rows = pg
                .psql(
                    &dst,
                    &format!("SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM \"{src}\".t"),
                )
                .map_err(|e| e.to_string())?;
            if rows.trim() == "1=changed,2=after,3=later" {
                Ok(())
            } else {
                Err(rows)
            }
        },
    );
    cdc::stop_and_clean_up(ferry);
    let _ = maria.drop_database(&src);
    let _ = pg.drop_database(&dst);
}
