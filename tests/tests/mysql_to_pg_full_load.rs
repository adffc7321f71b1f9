//! MariaDB → PostgreSQL full load of a Sakila-style schema, compared row by row
//! through the type mapping.

mod common;
mod cross_engine;

use common::{TempDir, ferry_run, full_load_task};
use cross_engine::assert_same_table;
use ferry_tests::{mariadb_or_panic, postgres_or_panic};

const FIXTURE: &str = include_str!("fixtures/sakila_mariadb.sql");

const TABLES: &[&str] = &[
    "language",
    "country",
    "city",
    "address",
    "category",
    "actor",
    "film",
    "film_actor",
    "film_category",
    "store",
    "staff",
    "customer",
    "inventory",
    "rental",
    "payment",
    "type_zoo",
];

#[test]
fn sakila_moves_from_mariadb_to_postgres_row_for_row() {
    let maria = mariadb_or_panic();
    let pg = postgres_or_panic();
    let source = maria.create_database("sakila").expect("source db");
    maria.sql(&source, FIXTURE).expect("load fixture");
    let target = pg.create_database("sakila_pg").expect("target db");

    let dir = TempDir::new("my2pg");
    let task = full_load_task(
        &maria.url(&source),
        &pg.url(&target),
        &[&format!("{source}.*")],
        "drop-and-create",
    );
    let run = ferry_run(&dir, &task, &[]);
    assert!(run.status.success(), "ferry failed:\n{}", run.all_output());

    let mut rows = 0;
    for table in TABLES {
        rows += assert_same_table(&maria, &source, &pg, &target, &source, table);
    }
    assert!(rows > 500_000, "only {rows} rows compared");

    // AUTO_INCREMENT continues after the loaded rows on the target.
    let next = pg
        .psql(
            &target,
            &format!(
                "INSERT INTO \"{source}\".language (name, last_update) \
                 VALUES ('Klingon', now()) RETURNING language_id"
            ),
        )
        .expect("insert without id");
    assert_eq!(next, "5");
    pg.psql(
        &target,
        &format!("DELETE FROM \"{source}\".language WHERE language_id = 5"),
    )
    .expect("clean up");

    // Keys and foreign keys exist on the target after the load.
    let count = |sql: &str| pg.psql(&target, sql).expect("catalog query");
    let schema = &source;
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname = '{schema}' AND c.contype = 'p'"
        )),
        TABLES.len().to_string(),
        "every table has its primary key"
    );
    let maria_fks = maria
        .sql(
            &source,
            &format!(
                "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = '{source}'"
            ),
        )
        .expect("mariadb fks");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname = '{schema}' AND c.contype = 'f'"
        )),
        maria_fks.trim(),
        "foreign keys are created after the load"
    );
}
