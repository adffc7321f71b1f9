//! `ferry schema` and `ferry assess` against real PostgreSQL databases.

mod common;

use common::{TempDir, ferry_binary, ferry_run};
use ferry_tests::{PgService, postgres_or_panic};
use std::process::Command;

/// Output and exit code of one `ferry <command> <task> <args>`.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ferry(dir: &TempDir, command: &str, task_toml: &str, args: &[&str]) -> Out {
    let task = dir.join(&format!("{command}.toml"));
    std::fs::write(&task, task_toml).expect("write task file");
    let out = Command::new(ferry_binary())
        .arg(command)
        .arg(&task)
        .args(args)
        .output()
        .expect("run ferry");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn task(source: &str, target: &str, prep: &str) -> String {
    format!(
        "[source]\nurl = {source:?}\n[target]\nurl = {target:?}\n[task]\n\
         include = [\"shop.*\"]\ntable-prep = {prep:?}\n"
    )
}

/// A schema with an enum, arrays, keys, a multi-column and an expression index, a
/// partial index, foreign keys (one self-referencing, one with actions), a
/// generated column and a sequence default.
const RICH_SCHEMA: &str = r#"
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('happy', 'it''s complicated', 'sad');
CREATE TABLE shop.customers (
    id int PRIMARY KEY,
    email varchar(200) NOT NULL,
    name text,
    mood shop.mood DEFAULT 'happy',
    moods shop.mood[],
    referred_by int REFERENCES shop.customers (id),
    CONSTRAINT customers_email_key UNIQUE (email)
);
CREATE INDEX customers_lower_name ON shop.customers (lower(name));
CREATE TABLE shop.orders (
    id bigserial,
    customer_id int NOT NULL,
    line smallint NOT NULL,
    qty int NOT NULL,
    price numeric(10,2) NOT NULL,
    total numeric GENERATED ALWAYS AS (qty * price) STORED,
    tags text[],
    CONSTRAINT orders_pk PRIMARY KEY (id, line),
    CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES shop.customers (id)
        ON DELETE CASCADE ON UPDATE RESTRICT
);
CREATE INDEX orders_customer_qty ON shop.orders (customer_id, qty);
CREATE INDEX orders_big ON shop.orders (price) WHERE qty > 10;
INSERT INTO shop.customers VALUES
    (1, 'a@x', 'Ann', 'sad', '{happy,sad}', NULL),
    (2, 'b@x', 'Bob', 'it''s complicated', NULL, 1);
INSERT INTO shop.orders (customer_id, line, qty, price, tags) VALUES
    (1, 1, 3, 9.99, '{a,b}'), (2, 1, 20, 1.50, NULL), (2, 2, 1, 100.00, '{}');
"#;

/// Constraints and indexes of schema `shop`, comparable between databases.
fn structure(pg: &PgService, db: &str) -> String {
    pg.psql(
        db,
        "SELECT conrelid::regclass, conname, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE connamespace = 'shop'::regnamespace ORDER BY 1, 2; \
         SELECT indexdef FROM pg_indexes WHERE schemaname = 'shop' ORDER BY indexname; \
         SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns \
         WHERE table_schema = 'shop' ORDER BY table_name, ordinal_position",
    )
    .expect("structure")
}

fn contents(pg: &PgService, db: &str) -> String {
    pg.psql(
        db,
        "SELECT c::text FROM shop.customers c ORDER BY id; \
         SELECT o::text FROM shop.orders o ORDER BY id, line",
    )
    .expect("contents")
}

#[test]
fn schema_output_applies_cleanly_to_an_empty_database() {
    let pg = postgres_or_panic();
    let source = pg.create_database("schema_src").expect("db");
    let target = pg.create_database("schema_dst").expect("db");
    pg.psql(&source, RICH_SCHEMA).expect("source schema");
    let dir = TempDir::new("schema");

    // The target is never contacted: an address where nothing listens works.
    let unreachable = "postgres://nobody:secret-pw@127.0.0.1:1/nowhere";
    let out = ferry(
        &dir,
        "schema",
        &task(&pg.url(&source), unreachable, "drop-and-create"),
        &[],
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let sql = out.stdout;
    assert!(!sql.contains("secret-pw") && !out.stderr.contains("secret-pw"));
    for part in [
        "-- 1. before the load",
        "CREATE TYPE \"shop\".\"mood\" AS ENUM ('happy', 'it''s complicated', 'sad')",
        "CREATE TABLE \"shop\".\"orders\"",
        "-- 2. after the load",
        "ADD CONSTRAINT \"orders_pk\" PRIMARY KEY (\"id\", \"line\")",
        "-- 3. after every table is loaded: foreign keys",
        "FOREIGN KEY (\"customer_id\") REFERENCES \"shop\".\"customers\" (\"id\") \
         ON DELETE CASCADE ON UPDATE RESTRICT",
        // The sequence default is not migrated, and says so.
        "-- conversion findings:",
        "uses a sequence",
    ] {
        assert!(sql.contains(part), "{part:?} missing from:\n{sql}");
    }

    // All of it applies cleanly to an empty database.
    let whole = pg.create_database("schema_whole").expect("db");
    pg.psql(&whole, &sql).expect("the whole script applies");
    let constraints = pg
        .psql(
            &whole,
            "SELECT count(*) FILTER (WHERE contype = 'p'), count(*) FILTER (WHERE contype = 'u'), \
             count(*) FILTER (WHERE contype = 'f') FROM pg_constraint \
             WHERE connamespace = 'shop'::regnamespace",
        )
        .expect("count");
    assert_eq!(constraints, "2|1|2");

    // The section-by-section workflow: pre-load, `ferry run` with do-nothing,
    // post-load and foreign keys; the result matches the source.
    let section = |name: &str| {
        let out = ferry(
            &dir,
            "schema",
            &task(&pg.url(&source), unreachable, "drop-and-create"),
            &["--section", name],
        );
        assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
        out.stdout
    };
    pg.psql(&target, &section("pre-load"))
        .expect("pre-load applies");
    let run = ferry_run(
        &dir,
        &task(&pg.url(&source), &pg.url(&target), "do-nothing"),
        &[],
    );
    assert!(run.status.success(), "{}", run.all_output());
    pg.psql(&target, &section("post-load"))
        .expect("post-load applies");
    pg.psql(&target, &section("foreign-keys"))
        .expect("foreign keys apply");
    assert_eq!(contents(&pg, &target), contents(&pg, &source));
    let (src, dst) = (structure(&pg, &source), structure(&pg, &target));
    // Identical but for what is reported as not migrated: the generated column
    // becomes a plain column (same type) and the sequence default is dropped.
    assert_eq!(src, dst, "constraints, indexes and columns differ");

    // JSON: per table, with the statements by section.
    let out = ferry(
        &dir,
        "schema",
        &task(&pg.url(&source), unreachable, "drop-and-create"),
        &["--format", "json"],
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(json["source_engine"], "postgres");
    assert_eq!(json["tables"][1]["target"]["name"], "orders");
    assert_eq!(
        json["tables"][1]["foreign_keys"].as_array().map(Vec::len),
        Some(1)
    );
}

const ASSESS_SCHEMA: &str = r#"
CREATE SCHEMA shop;
CREATE TABLE shop.orders (
    id int PRIMARY KEY,
    qty int NOT NULL,
    price numeric(10,2) NOT NULL,
    total numeric GENERATED ALWAYS AS (qty * price) STORED
);
CREATE TABLE shop.logs (at timestamptz, line text);
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON shop.orders
    FOR EACH ROW EXECUTE FUNCTION shop.touch();
CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE qty > 10;
CREATE SEQUENCE shop.invoice_no;
INSERT INTO shop.orders (id, qty, price) SELECT g, g, 1.5 FROM generate_series(1, 100) g;
INSERT INTO shop.logs VALUES (now(), 'hello');
ANALYZE shop.orders;
ANALYZE shop.logs;
"#;

#[test]
fn assess_lists_exactly_the_expected_findings() {
    let pg = postgres_or_panic();
    let source = pg.create_database("assess_src").expect("db");
    let target = pg.create_database("assess_dst").expect("db");
    pg.psql(&source, ASSESS_SCHEMA).expect("source schema");
    let dir = TempDir::new("assess");
    let task_toml = task(&pg.url(&source), &pg.url(&target), "drop-and-create");

    let out = ferry(&dir, "assess", &task_toml, &["--format", "json"]);
    assert_eq!(out.code, Some(0), "stderr: {}\n{}", out.stderr, out.stdout);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let findings: Vec<String> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
            let table = match &f["table"] {
                serde_json::Value::Null => String::new(),
                t => format!(
                    "{}.{}",
                    t["namespace"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or("")
                ),
            };
            format!(
                "{} {} {} {} {}",
                s("level"),
                s("code"),
                table,
                s("column"),
                s("object")
            )
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
        })
        .collect();
    assert_eq!(
        findings,
        vec![
            "warning no-primary-key shop.logs",
            "info table-size shop.logs",
            "warning generated-column shop.orders total",
            "warning trigger shop.orders trigger orders_touch",
            "info table-size shop.orders",
            "warning routine function shop.touch()",
            "warning sequence sequence shop.invoice_no",
            "warning view view shop.big_orders",
        ],
        "{}",
        out.stdout
    );
    assert_eq!(json["verdict"], "ready-with-warnings");
    assert_eq!(json["counts"]["warning"], 6);
    let orders = &json["tables"][1];
    assert_eq!(orders["source"]["name"], "orders");
    assert_eq!(orders["estimated_rows"], 100);
    assert!(
        json["source"]["url"]
            .as_str()
            .is_some_and(|u| u.contains(&source))
    );

    // The human-readable report: a table of findings and the verdict.
    let out = ferry(&dir, "assess", &task_toml, &[]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    for part in [
        "level    code",
        "warning  generated-column  shop.orders",
        "shop.orders (trigger orders_touch)",
        "view shop.big_orders",
        "verdict: ready-with-warnings (0 errors, 6 warnings, 2 info)",
    ] {
        assert!(
            out.stdout.contains(part),
            "{part:?} missing from:\n{}",
            out.stdout
        );
    }

    // Blocked: do-nothing into a target without the tables; exit code 2.
    let out = ferry(
        &dir,
        "assess",
        &task(&pg.url(&source), &pg.url(&target), "do-nothing"),
        &[],
    );
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("verdict: blocked (2 errors"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("error    target-exists"),
        "{}",
        out.stdout
    );

    // A table that exists at the target is reported (drop-and-create drops it).
    pg.psql(
        &target,
        "CREATE SCHEMA shop; CREATE TABLE shop.logs (x int)",
    )
    .expect("existing table");
    let out = ferry(&dir, "assess", &task_toml, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("warning  target-exists     shop.logs"),
        "{}",
        out.stdout
    );
}

#[test]
fn run_adds_foreign_keys_once_every_table_is_loaded() {
    let pg = postgres_or_panic();
    let source = pg.create_database("fk_src").expect("db");
    let target = pg.create_database("fk_dst").expect("db");
    pg.psql(&source, RICH_SCHEMA).expect("source schema");
    let dir = TempDir::new("fk");
    let task_toml = task(&pg.url(&source), &pg.url(&target), "drop-and-create");
    // Twice: the second run drops the tables (and the foreign keys between them)
    // and creates everything again.
    for _ in 0..2 {
        let run = ferry_run(&dir, &task_toml, &[]);
        assert!(run.status.success(), "{}", run.all_output());
        assert_eq!(contents(&pg, &target), contents(&pg, &source));
        assert_eq!(structure(&pg, &target), structure(&pg, &source));
    }

    // A foreign key to a table that is not selected is left out, with a warning.
    let only_orders = pg.create_database("fk_orders").expect("db");
    let task_toml = task(&pg.url(&source), &pg.url(&only_orders), "drop-and-create")
        .replace("include = [\"shop.*\"]", "include = [\"shop.orders\"]");
    let run = ferry_run(&dir, &task_toml, &[]);
    assert!(run.status.success(), "{}", run.all_output());
    assert!(
        run.stdout.contains(
            "warning shop.orders (foreign key orders_customer_fk): foreign key \
             orders_customer_fk references shop.customers, which is not selected"
        ),
        "{}",
        run.stdout
    );
    let fks = pg
        .psql(
            &only_orders,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
        )
        .expect("count");
    assert_eq!(fks, "0");
}
