//! PostgreSQL → MariaDB full load of a Pagila-style schema, compared row by row
//! through the type mapping.

mod common;
mod cross_engine;

use common::{TempDir, ferry_run, full_load_task};
use cross_engine::assert_same_table;
use ferry_tests::{mariadb_or_panic, postgres_or_panic};

const FIXTURE: &str = include_str!("fixtures/pagila_postgres.sql");

const TABLES: &[&str] = &[
    "language",
    "actor",
    "category",
    "film",
    "film_actor",
    "customer",
    "rental",
    "payment",
    "type_zoo",
];

#[test]
fn pagila_moves_from_postgres_to_mariadb_row_for_row() {
    let pg = postgres_or_panic();
    let maria = mariadb_or_panic();
    let source = pg.create_database("pagila").expect("source db");
    // The MariaDB database is named like the PostgreSQL schema, so the tables land
    // in it whether the sink follows the namespace or the URL's database.
    let target = maria.create_database("pagila_my").expect("target db");
    let schema = target.clone();
    pg.psql(&source, &format!("\\set schema {schema}\n{FIXTURE}"))
        .expect("load fixture");

    let dir = TempDir::new("pg2my");
    let task = full_load_task(
        &pg.url(&source),
        &maria.url(&target),
        &[&format!("{schema}.*")],
        "drop-and-create",
    );
    let run = ferry_run(&dir, &task, &[]);
    assert!(run.status.success(), "ferry failed:\n{}", run.all_output());

    let mut rows = 0;
    for table in TABLES {
        rows += assert_same_table(&maria, &target, &pg, &source, &schema, table);
    }
    assert!(rows > 500_000, "only {rows} rows compared");

    let fks = maria
        .sql(
            &target,
            &format!(
                "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = '{target}'"
            ),
        )
        .expect("mariadb fks");
    let pg_fks = pg
        .psql(
            &source,
            &format!(
                "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE n.nspname = '{schema}' AND c.contype = 'f'"
            ),
        )
        .expect("pg fks");
    assert_eq!(
        fks.trim(),
        pg_fks.trim(),
        "foreign keys are created after the load"
    );
}
