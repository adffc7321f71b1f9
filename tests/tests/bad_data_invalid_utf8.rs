//! Invalid UTF-8 meets the bad-data policy. MariaDB 10.11 converts every text column
//! to valid utf8mb4 for Ferry (and replaces invalid bytes on insert), so the place
//! such text really exists is a PostgreSQL database created with `SQL_ASCII`, which
//! stores text unchecked: the PostgreSQL source reads it as bytes and checks it.

mod common;

use common::{TempDir, ferry_run};
use ferry_tests::postgres_or_panic;

const FIXTURE: &str = r"
CREATE TABLE ut_null (id int PRIMARY KEY, t text, v varchar(10));
INSERT INTO ut_null VALUES (1, 'ok', 'fine'), (2, E'caf\xe9', 'fine'), (3, NULL, E'\xff\xfe');
CREATE TABLE ut_clamp (LIKE ut_null INCLUDING ALL);
INSERT INTO ut_clamp SELECT * FROM ut_null;
CREATE TABLE ut_skip (LIKE ut_null INCLUDING ALL);
INSERT INTO ut_skip SELECT * FROM ut_null;
CREATE TABLE ut_fail (LIKE ut_null INCLUDING ALL);
INSERT INTO ut_fail SELECT * FROM ut_null;
";

#[test]
fn invalid_utf8_from_an_sql_ascii_database_follows_the_policy() {
    let pg = postgres_or_panic();
    // A name from the kit, recreated with the legacy encoding.
    let source = pg.create_database("sqlascii").expect("name");
    pg.drop_database(&source).expect("drop");
    pg.psql(
        "postgres",
        &format!(
            "CREATE DATABASE \"{source}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' \
             TEMPLATE template0"
        ),
    )
    .expect("SQL_ASCII database");
    pg.psql(&source, FIXTURE).expect("fixture");
    let target = pg.create_database("sqlascii_dst").expect("target");
    let dir = TempDir::new("utf8");
    let state = dir.join("state");
    let task = |tables: &[&str], extra: &str| {
        let include = tables
            .iter()
            .map(|t| format!("\"public.{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "[source]\nurl = {:?}\n[target]\nurl = {:?}\n[task]\ninclude = [{include}]\n{extra}",
            pg.url(&source),
            pg.url(&target)
        )
    };
    let extra = format!(
        "state-dir = {:?}\n[task.bad-data-tables]\n\"public.ut_null\" = \"null\"\n\
         \"public.ut_clamp\" = \"clamp\"\n\"public.ut_skip\" = \"skip-row\"\n",
        state.display().to_string()
    );
    let run = ferry_run(
        &dir,
        &task(&["ut_null", "ut_clamp", "ut_skip"], &extra),
        &[],
    );
    let out = run.all_output();
    assert!(run.status.success(), "ferry failed:\n{out}");
    let rows = |table: &str| {
        pg.psql(
            &target,
            &format!("SELECT * FROM public.{table} ORDER BY id"),
        )
        .expect("rows")
    };
    assert_eq!(rows("ut_null"), "1|ok|fine\n2||fine\n3||");
    assert_eq!(
        rows("ut_clamp"),
        "1|ok|fine\n2|caf\u{fffd}|fine\n3||\u{fffd}\u{fffd}"
    );
    assert_eq!(rows("ut_skip"), "1|ok|fine");
    let jsonl = std::fs::read_to_string(state.join("bad-rows.jsonl")).expect("bad rows");
    for (table, key, column) in [
        ("ut_null", "(id=2)", "t"),
        ("ut_null", "(id=3)", "v"),
        ("ut_clamp", "(id=2)", "t"),
        ("ut_skip", "(id=3)", "v"),
    ] {
        assert!(
            jsonl
                .lines()
                .any(|l| l.contains(&format!("\"name\":\"{table}\""))
                    && l.contains(key)
                    && l.contains(&format!("\"column\":\"{column}\""))
                    && l.contains("UTF-8")),
            "{table} {key} {column} not recorded:\n{jsonl}"
        );
    }

    let run = ferry_run(&dir, &task(&["ut_fail"], ""), &[]);
    let out = run.all_output();
    assert!(
        !run.status.success(),
        "the default policy must stop:\n{out}"
    );
    for needle in ["ut_fail", "(id=2)", "UTF-8", "bad-data"] {
        assert!(out.contains(needle), "{needle} not named:\n{out}");
    }
}
