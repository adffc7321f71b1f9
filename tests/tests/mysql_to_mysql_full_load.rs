//! MariaDB → MariaDB full load of the Sakila-style fixture, end to end through the
//! `ferry` binary: every row equal (in the server's own text form), keys, indexes,
//! AUTO_INCREMENT and foreign keys re-created, all tables in the target URL's
//! database.

mod common;

use common::{TempDir, ferry_run, full_load_task};
use ferry_tests::mariadb_or_panic;

const FIXTURE: &str = include_str!("fixtures/sakila_mariadb.sql");

/// The rows of a table in the server's text form, sorted.
fn rows(maria: &ferry_tests::MariaService, db: &str, table: &str) -> Vec<String> {
    let out = maria
        .sql(
            db,
            &format!("SET time_zone = '+00:00'; SELECT * FROM `{table}`"),
        )
        .unwrap_or_else(|e| panic!("reading {db}.{table}: {e}"));
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    lines.sort_unstable();
    lines
}

fn catalog(maria: &ferry_tests::MariaService, db: &str, sql: &str) -> String {
    maria
        .sql(db, &sql.replace("{db}", db))
        .unwrap_or_else(|e| panic!("catalog query on {db}: {e}"))
}

#[test]
fn sakila_moves_from_mariadb_to_mariadb_exactly() {
    let maria = mariadb_or_panic();
    let source = maria.create_database("my2my_src").expect("source db");
    maria.sql(&source, FIXTURE).expect("load fixture");
    let target = maria.create_database("my2my_dst").expect("target db");

    let dir = TempDir::new("my2my");
    let task = full_load_task(
        &maria.url(&source),
        &maria.url(&target),
        &[&format!("{source}.*")],
        "drop-and-create",
    );
    let run = ferry_run(&dir, &task, &[]);
    assert!(run.status.success(), "ferry failed:\n{}", run.all_output());

    let tables = catalog(
        &maria,
        &source,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
         ORDER BY 1",
    );
    let tables: Vec<&str> = tables.lines().collect();
    assert!(tables.len() >= 15, "fixture tables: {tables:?}");
    let mut total = 0;
    for table in &tables {
        let want = rows(&maria, &source, table);
        let got = rows(&maria, &target, table);
        assert_eq!(want.len(), got.len(), "row count of {table}");
        if let Some((w, g)) = want.iter().zip(&got).find(|(w, g)| w != g) {
            panic!("{table}: first difference\n source: {w}\n target: {g}");
        }
        total += want.len();
    }
    assert!(total > 500_000, "only {total} rows compared");

    // Same engine: column types, keys, indexes and foreign keys are the source's.
    let columns = "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
                   COALESCE(CHARACTER_SET_NAME, ''), COALESCE(COLLATION_NAME, ''), EXTRA \
                   FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' \
                   AND EXTRA NOT LIKE '%GENERATED%' ORDER BY 1, ORDINAL_POSITION";
    let want = catalog(&maria, &source, columns);
    let got = catalog(&maria, &target, columns);
    assert_eq!(want, got, "column definitions");
    let keys = "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, \
                COALESCE(SUB_PART, '') FROM information_schema.STATISTICS \
                WHERE TABLE_SCHEMA = '{db}' ORDER BY 1, 2, 4";
    assert_eq!(
        catalog(&maria, &source, keys),
        catalog(&maria, &target, keys),
        "keys and indexes"
    );
    let fks = "SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, \
               DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS \
               WHERE CONSTRAINT_SCHEMA = '{db}' ORDER BY 1, 2";
    // Added after the load with foreign_key_checks = 0 (in place, no table copy),
    // MariaDB records RESTRICT as NO ACTION, which InnoDB treats identically.
    let same_rule = |s: String| s.replace("RESTRICT", "NO ACTION");
    let want_fks = same_rule(catalog(&maria, &source, fks));
    assert!(!want_fks.is_empty());
    assert_eq!(
        want_fks,
        same_rule(catalog(&maria, &target, fks)),
        "foreign keys"
    );
}
