//! Bad-data policies end to end, MariaDB → PostgreSQL: MySQL zero dates (decoded by
//! the source) and NUL bytes in text (refused by the PostgreSQL sink), each policy on
//! its own table in one run, plus the default `fail`.

mod common;

use common::{TempDir, ferry_run};
use ferry_tests::{mariadb_or_panic, postgres_or_panic};

const FIXTURE: &str = "
SET SESSION sql_mode = '';
CREATE TABLE zd_null (id INT PRIMARY KEY, d DATE NULL, dt DATETIME NULL);
INSERT INTO zd_null VALUES (1, '2024-05-01', '2024-05-01 10:00:00'), (2, '0000-00-00', '0000-00-00 00:00:00'),
  (3, '2024-00-10', '2024-02-00 12:00:00'), (4, NULL, NULL);
CREATE TABLE zd_skip LIKE zd_null;
INSERT INTO zd_skip SELECT * FROM zd_null;
CREATE TABLE zd_fail LIKE zd_null;
INSERT INTO zd_fail SELECT * FROM zd_null;
CREATE TABLE zd_clamp LIKE zd_null;
INSERT INTO zd_clamp VALUES (1, '2024-05-01', '2024-05-01 10:00:00'), (3, '2024-00-10', '2024-02-00 12:00:00'),
  (4, NULL, NULL), (5, '2023-12-00', '2023-00-00 01:02:03');
CREATE TABLE nul_null (id INT PRIMARY KEY, t VARCHAR(20) NULL);
INSERT INTO nul_null VALUES (1, 'ok'), (2, CONCAT('a', CHAR(0), 'b')), (3, NULL);
CREATE TABLE nul_clamp LIKE nul_null;
INSERT INTO nul_clamp SELECT * FROM nul_null;
CREATE TABLE nul_skip LIKE nul_null;
INSERT INTO nul_skip SELECT * FROM nul_null;
";

fn task(source: &str, target: &str, db: &str, tables: &[&str], extra: &str) -> String {
    let include = tables
        .iter()
        .map(|t| format!("\"{db}.{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[source]\nurl = {source:?}\n\n[target]\nurl = {target:?}\n\n[task]\nmode = \"full-load\"\n\
         include = [{include}]\n{extra}"
    )
}

#[test]
fn each_policy_puts_the_right_rows_where_it_says_and_names_them() {
    let maria = mariadb_or_panic();
    let pg = postgres_or_panic();
    let db = maria.create_database("bad").expect("source db");
    maria.sql(&db, FIXTURE).expect("fixture");
    let target = pg.create_database("bad_pg").expect("target db");
    let dir = TempDir::new("baddata");
    let state = dir.join("state");
    let extra = format!(
        "state-dir = {:?}\nbad-data = \"fail\"\n\n[task.bad-data-tables]\n\
         \"{db}.zd_null\" = \"null\"\n\"{db}.nul_null\" = \"null\"\n\
         \"{db}.zd_skip\" = \"skip-row\"\n\"{db}.nul_skip\" = \"skip-row\"\n\
         \"{db}.zd_clamp\" = \"clamp\"\n\"{db}.nul_clamp\" = \"clamp\"\n",
        state.display().to_string()
    );
    let tables = [
        "zd_null",
        "zd_skip",
        "zd_clamp",
        "nul_null",
        "nul_clamp",
        "nul_skip",
    ];
    let run = ferry_run(
        &dir,
        &task(&maria.url(&db), &pg.url(&target), &db, &tables, &extra),
        &[],
    );
    let out = run.all_output();
    assert!(run.status.success(), "ferry failed:\n{out}");

    let rows = |table: &str| {
        pg.psql(
            &target,
            &format!("SELECT * FROM \"{db}\".\"{table}\" ORDER BY 1"),
        )
        .expect("select")
    };
    assert_eq!(
        rows("zd_null"),
        "1|2024-05-01|2024-05-01 10:00:00\n2||\n3||\n4||"
    );
    assert_eq!(rows("zd_skip"), "1|2024-05-01|2024-05-01 10:00:00\n4||");
    assert_eq!(
        rows("zd_clamp"),
        "1|2024-05-01|2024-05-01 10:00:00\n3|2024-01-10|2024-02-01 12:00:00\n4||\n5|2023-12-01|2023-01-01 01:02:03"
    );
    assert_eq!(rows("nul_null"), "1|ok\n2|\n3|");
    assert_eq!(rows("nul_clamp"), "1|ok\n2|ab\n3|");
    assert_eq!(rows("nul_skip"), "1|ok\n3|");

    // The report names every affected row: in the summary and in bad-rows.jsonl.
    let jsonl = std::fs::read_to_string(state.join("bad-rows.jsonl")).expect("bad-rows.jsonl");
    let expected = [
        ("zd_null", "(id=2)"),
        ("zd_null", "(id=3)"),
        ("zd_skip", "(id=2)"),
        ("zd_skip", "(id=3)"),
        ("zd_clamp", "(id=3)"),
        ("zd_clamp", "(id=5)"),
        ("nul_null", "(id=2)"),
        ("nul_clamp", "(id=2)"),
        ("nul_skip", "(id=2)"),
    ];
    for (table, key) in expected {
        assert!(
            jsonl
                .lines()
                .any(|l| l.contains(&format!("\"name\":\"{table}\"")) && l.contains(key)),
            "bad-rows.jsonl does not name {table} {key}:\n{jsonl}"
        );
        assert!(
            out.lines().any(|l| l.contains(key)),
            "the summary does not name {key}:\n{out}"
        );
    }
    for unaffected in ["(id=1)", "(id=4)"] {
        assert!(
            !jsonl.contains(unaffected),
            "{unaffected} is not bad data:\n{jsonl}"
        );
    }
}

#[test]
fn the_default_policy_stops_and_names_table_column_and_row() {
    let maria = mariadb_or_panic();
    let pg = postgres_or_panic();
    let db = maria.create_database("badfail").expect("source db");
    maria.sql(&db, FIXTURE).expect("fixture");
    let target = pg.create_database("badfail_pg").expect("target db");
    let dir = TempDir::new("badfail");
    for table in ["zd_fail", "nul_null"] {
        let run = ferry_run(
            &dir,
            &task(&maria.url(&db), &pg.url(&target), &db, &[table], ""),
            &[],
        );
        let out = run.all_output();
        assert!(!run.status.success(), "ferry must fail on {table}:\n{out}");
        let column = if table == "zd_fail" { "d" } else { "t" };
        for needle in [table, "(id=2)", "bad-data", column] {
            assert!(out.contains(needle), "{needle} not named:\n{out}");
        }
    }
}
