//! `ferry assess` and `ferry schema` on the Sakila-style MariaDB schema (plus a view,
//! a trigger, routines, a table without primary key, a generated column, a spatial
//! column and a zero date), towards PostgreSQL.

mod common;

use common::{TempDir, ferry_binary};
use ferry_tests::{mariadb_or_panic, postgres_or_panic};
use std::collections::BTreeSet;
use std::process::Command;

const FIXTURE: &str = include_str!("fixtures/sakila_mariadb.sql");
const EXTRAS: &str = include_str!("fixtures/sakila_mariadb_extras.sql");

fn write_task(dir: &TempDir, source: &str, target: &str, db: &str) -> std::path::PathBuf {
    let path = dir.join("task.toml");
    std::fs::write(
        &path,
        format!("[source]\nurl = {source:?}\n[target]\nurl = {target:?}\n[task]\ninclude = [\"{db}.*\"]\n"),
    )
    .expect("task file");
    path
}

#[test]
fn assess_lists_every_expected_finding_and_schema_applies_cleanly() {
    let maria = mariadb_or_panic();
    let pg = postgres_or_panic();
    let db = maria.create_database("sakila_assess").expect("source db");
    maria.sql(&db, FIXTURE).expect("fixture");
    maria.sql(&db, EXTRAS).expect("extras");
    let target = pg.create_database("sakila_assess_pg").expect("target db");
    let dir = TempDir::new("assess");
    let task = write_task(&dir, &maria.url(&db), &pg.url(&target), &db);

    let out = Command::new(ferry_binary())
        .args(["assess", "--format", "json"])
        .arg(&task)
        .output()
        .expect("run ferry assess");
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings only: exit 0\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["verdict"], "ready-with-warnings");
    let findings = report["findings"].as_array().expect("findings");
    let key = |f: &serde_json::Value| {
        (
            f["level"].as_str().unwrap_or("").to_string(),
            f["code"].as_str().unwrap_or("").to_string(),
            f["table"]["name"].as_str().unwrap_or("").to_string(),
            f["column"].as_str().unwrap_or("").to_string(),
        )
    };
    let warnings: BTreeSet<_> = findings.iter().map(key).filter(|k| k.0 != "info").collect();
    let expect = |items: &[(&str, &str, &str, &str)]| -> BTreeSet<_> {
        items
            .iter()
            .map(|(l, c, t, col)| (l.to_string(), c.to_string(), t.to_string(), col.to_string()))
            .collect()
    };
    assert_eq!(
        warnings,
        expect(&[
            ("warning", "trigger", "film", ""),
            ("warning", "no-primary-key", "film_text", ""),
            ("warning", "type-mapping", "film_text", ""),
            ("warning", "bad-data", "legacy", "opened"),
            ("warning", "generated-column", "legacy", "total_with_tax"),
            ("warning", "type-mapping", "legacy", "spot"),
            ("warning", "routine", "", ""),
            ("warning", "view", "", ""),
        ]),
        "{findings:#?}"
    );
    let objects: BTreeSet<String> = findings
        .iter()
        .filter(|f| matches!(f["code"].as_str(), Some("routine" | "view" | "trigger")))
        .map(|f| f["message"].as_str().unwrap_or("").to_string())
        .collect();
    for name in [
        "ins_film",
        "inventory_in_stock",
        "rewards_report",
        "actor_list",
    ] {
        assert!(
            objects.iter().any(|m| m.contains(name)),
            "{name} not reported: {objects:#?}"
        );
    }
    let infos: BTreeSet<_> = findings.iter().map(key).filter(|k| k.0 == "info").collect();
    for (code, table, column) in [
        ("charset", "type_zoo", "l1"),
        ("type-mapping", "type_zoo", "zf"),
        ("type-mapping", "type_zoo", "biu"),
        ("type-mapping", "rental", "inventory_id"),
        ("type-mapping", "type_zoo", "yr"),
        ("type-mapping", "type_zoo", "st"),
        ("type-mapping", "film", "special_features"),
    ] {
        assert!(
            infos.contains(&("info".into(), code.into(), table.into(), column.into())),
            "missing info {code} {table}.{column}: {infos:#?}"
        );
    }
    // A size for every table.
    let sized: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f["code"] == "table-size")
        .filter_map(|f| f["table"]["name"].as_str())
        .collect();
    assert_eq!(sized.len(), 18, "{sized:?}");

    // `ferry schema` writes DDL that an empty PostgreSQL database accepts as it is.
    let out = Command::new(ferry_binary())
        .arg("schema")
        .arg(&task)
        .output()
        .expect("run ferry schema");
    assert!(
        out.status.success(),
        "ferry schema failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ddl = String::from_utf8(out.stdout).expect("utf-8 DDL");
    pg.psql(&target, &ddl).expect("the DDL applies cleanly");
    let tables = pg
        .psql(
            &target,
            &format!("SELECT count(*) FROM information_schema.tables WHERE table_schema = '{db}'"),
        )
        .expect("count tables");
    assert_eq!(tables.trim(), "18");
    let fks = pg
        .psql(
            &target,
            &format!(
                "SELECT count(*) FROM information_schema.table_constraints \
                 WHERE table_schema = '{db}' AND constraint_type = 'FOREIGN KEY'"
            ),
        )
        .expect("count fks");
    let source_fks = maria
        .sql(
            &db,
            &format!(
                "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = '{db}'"
            ),
        )
        .expect("source fks");
    assert_eq!(
        fks.trim(),
        source_fks.trim(),
        "every foreign key is in the DDL"
    );
    assert_eq!(fks.trim(), "21", "Sakila's foreign keys");
}

#[test]
fn schema_for_a_mariadb_target_applies_cleanly() {
    let pg = postgres_or_panic();
    let maria = mariadb_or_panic();
    let source = pg.create_database("pagila_schema").expect("source db");
    let target = maria
        .create_database("pagila_schema_my")
        .expect("target db");
    pg.psql(
        &source,
        &format!(
            "\\set schema {target}\n{}",
            include_str!("fixtures/pagila_postgres.sql")
        ),
    )
    .expect("fixture");
    let dir = TempDir::new("schema_my");
    let task = write_task(&dir, &pg.url(&source), &maria.url(&target), &target);
    let out = Command::new(ferry_binary())
        .arg("schema")
        .arg(&task)
        .output()
        .expect("run ferry schema");
    assert!(
        out.status.success(),
        "ferry schema failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ddl = String::from_utf8(out.stdout).expect("utf-8 DDL");
    maria.sql(&target, &ddl).expect("the DDL applies cleanly");
    let count = |sql: &str| maria.sql(&target, sql).expect("count").trim().to_string();
    assert_eq!(
        count(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{target}'"
        )),
        "9"
    );
    assert_eq!(
        count(&format!(
            "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = '{target}'"
        )),
        "6"
    );
}
