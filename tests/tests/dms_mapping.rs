//! AWS DMS table-mapping files used as they are (`mapping = "..."`): selection
//! with wildcards and exclusions, schema/table/column renames and case changes,
//! for full load and CDC, PostgreSQL → PostgreSQL and MariaDB → PostgreSQL. The
//! target's exact schema and rows are asserted.

mod cdc;
mod common;
mod cross_engine;

use cdc::{Ferry, wait_for};
use common::TempDir;
use ferry_tests::{PgService, mariadb_or_panic, postgres_or_panic};
use std::time::Duration;

const PG_MAPPING: &str = r#"{
  "rules": [
    {"rule-type": "selection", "rule-id": "1", "rule-name": "everything",
     "object-locator": {"schema-name": "public", "table-name": "%"},
     "rule-action": "include", "filters": []},
    {"rule-type": "selection", "rule-id": "2", "rule-name": "no scratch tables",
     "object-locator": {"schema-name": "public", "table-name": "tmp%"},
     "rule-action": "exclude"},
    {"rule-type": "transformation", "rule-id": "3", "rule-name": "schema",
     "rule-target": "schema", "object-locator": {"schema-name": "public"},
     "rule-action": "rename", "value": "sales"},
    {"rule-type": "transformation", "rule-id": "4", "rule-name": "prefix",
     "rule-target": "table", "object-locator": {"schema-name": "public", "table-name": "ord%"},
     "rule-action": "add-prefix", "value": "t_"},
    {"rule-type": "transformation", "rule-id": "5", "rule-name": "qty",
     "rule-target": "column",
     "object-locator": {"schema-name": "public", "table-name": "orders", "column-name": "qty"},
     "rule-action": "rename", "value": "quantity"},
    {"rule-type": "transformation", "rule-id": "6", "rule-name": "upper",
     "rule-target": "column",
     "object-locator": {"schema-name": "public", "table-name": "customers", "column-name": "%"},
     "rule-action": "convert-uppercase"},
    {"rule-type": "transformation", "rule-id": "7", "rule-name": "suffix",
     "rule-target": "table", "object-locator": {"schema-name": "public", "table-name": "customers"},
     "rule-action": "replace-suffix", "old-value": "ers", "value": "er_list"},
    {"rule-type": "transformation", "rule-id": "8", "rule-name": "no notes",
     "rule-target": "column",
     "object-locator": {"schema-name": "public", "table-name": "orders", "column-name": "no%"},
     "rule-action": "remove-column"},
    {"rule-type": "transformation", "rule-id": "9", "rule-name": "key",
     "rule-target": "table", "object-locator": {"schema-name": "public", "table-name": "visits"},
     "rule-action": "define-primary-key",
     "primary-key-def": {"name": "visits_pk", "origin": "primary-key", "columns": ["a"]}}
  ]
}"#;

/// `table: col type, ...` for every table of `schema` in `db`.
fn shape(pg: &PgService, db: &str, schema: &str) -> String {
    pg.psql(
        db,
        &format!(
            "SELECT string_agg(table_name || ': ' || cols, ' | ' ORDER BY table_name) FROM ( \
               SELECT table_name, string_agg(column_name || ' ' || data_type, ', ' \
                 ORDER BY ordinal_position) cols \
               FROM information_schema.columns WHERE table_schema = '{schema}' \
               GROUP BY table_name) t"
        ),
    )
    .expect("shape")
}

fn rows(pg: &PgService, db: &str, sql: &str) -> String {
    pg.psql(db, sql).expect("rows")
}

#[test]
fn a_dms_mapping_selects_and_renames_for_full_load_and_cdc() {
    let (pg, src, dst) = cdc::pg_databases_with(
        "dms_src",
        "dms_dst",
        "CREATE TABLE orders (id int PRIMARY KEY, qty int NOT NULL, note text);
         CREATE TABLE customers (id int PRIMARY KEY, name text);
         CREATE TABLE tmp_scratch (id int PRIMARY KEY);
         CREATE TABLE visits (a int NOT NULL, b text);
         ALTER TABLE visits REPLICA IDENTITY FULL;
         INSERT INTO visits VALUES (1, 'one'), (2, 'two'), (3, 'three');
         INSERT INTO orders SELECT g, g * 10, 'n' || g FROM generate_series(1, 50) g;
         INSERT INTO customers VALUES (1, 'Ada'), (2, 'Brian');
         INSERT INTO tmp_scratch VALUES (1);",
    );
    let dir = TempDir::new("dms-pg");
    std::fs::write(dir.join("table-mappings.json"), PG_MAPPING).expect("mapping file");
    let task = format!(
        "mapping = \"table-mappings.json\"\n[source]\nurl = {:?}\n[target]\nurl = {:?}\n\
         [task]\nmode = \"full-load-and-cdc\"\n",
        pg.url(&src),
        pg.url(&dst)
    );
    let ferry = Ferry::start(&dir, "dms", &task, &[]);
    cdc::wait_for_cdc(&ferry);
    pg.psql(
        &src,
        "BEGIN;
         INSERT INTO orders VALUES (51, 510, 'new');
         UPDATE orders SET qty = qty + 1 WHERE id = 2;
         DELETE FROM orders WHERE id = 3;
         UPDATE customers SET name = 'Brian K.' WHERE id = 2;
         INSERT INTO tmp_scratch VALUES (2);
         UPDATE visits SET b = 'uno' WHERE a = 1;
         DELETE FROM visits WHERE a = 2;
         COMMIT;",
    )
    .expect("changes");
    let expected_orders = rows(
        &pg,
        &src,
        "SELECT string_agg(id || ':' || qty, ',' ORDER BY id) FROM orders",
    );
    wait_for(
        "the changes under their new names",
        Duration::from_secs(60),
        || {
            let got = pg
                .psql(
                    &dst,
                    "SELECT string_agg(id || ':' || quantity, ',' ORDER BY id) FROM sales.t_orders",
                )
                .map_err(|e| e.to_string())?;
            if got == expected_orders {
                Ok(())
            } else {
                Err(got)
            }
        },
    );
    assert_eq!(
        shape(&pg, &dst, "sales"),
        "customer_list: ID integer, NAME text | t_orders: id integer, quantity integer | visits: a integer, b text"
    );
    assert_eq!(
        rows(
            &pg,
            &dst,
            "SELECT string_agg(\"ID\" || '=' || \"NAME\", ',' ORDER BY \"ID\") FROM sales.customer_list"
        ),
        "1=Ada,2=Brian K."
    );
    // A table without a key at the source gets the rule's key, and CDC finds its
    // rows by it.
    wait_for("the keyed table's changes", Duration::from_secs(60), || {
        let got = rows(
            &pg,
            &dst,
            "SELECT string_agg(a || '=' || b, ',' ORDER BY a) FROM sales.visits",
        );
        if got == "1=uno,3=three" {
            Ok(())
        } else {
            Err(got)
        }
    });
    assert_eq!(
        rows(
            &pg,
            &dst,
            "SELECT conname FROM pg_constraint WHERE conrelid = 'sales.visits'::regclass AND contype = 'p'"
        ),
        "visits_pk"
    );
    assert_eq!(
        rows(
            &pg,
            &dst,
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'tmp%'"
        ),
        "0",
        "excluded tables stay out"
    );
    assert_eq!(
        rows(
            &pg,
            &dst,
            "SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'sales.t_orders'::regclass AND i.indisprimary"
        ),
        "id"
    );
    cdc::stop_and_clean_up(ferry);
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

#[test]
fn a_dms_mapping_renames_a_mariadb_database_for_postgres() {
    let maria = mariadb_or_panic();
    let pg = postgres_or_panic();
    let src = maria.create_database("dms_my").expect("source db");
    maria
        .sql(
            &src,
            "CREATE TABLE Items (Id int PRIMARY KEY, Label varchar(20), Price decimal(8,2));
             INSERT INTO Items VALUES (1, 'pen', 1.50), (2, 'ink', 7.25);
             CREATE TABLE Logs (Id int PRIMARY KEY);",
        )
        .expect("source");
    let dst = pg.create_database("dms_my_pg").expect("target db");
    let mapping = format!(
        r#"{{"rules": [
          {{"rule-type": "selection", "rule-id": "10", "rule-name": "items",
            "object-locator": {{"schema-name": "{src}", "table-name": "It%"}}, "rule-action": "include"}},
          {{"rule-type": "transformation", "rule-id": "11", "rule-name": "db",
            "rule-target": "schema", "object-locator": {{"schema-name": "{src}"}},
            "rule-action": "rename", "value": "catalog"}},
          {{"rule-type": "transformation", "rule-id": "12", "rule-name": "lower tables",
            "rule-target": "table", "object-locator": {{"schema-name": "%", "table-name": "%"}},
            "rule-action": "convert-lowercase"}},
          {{"rule-type": "transformation", "rule-id": "13", "rule-name": "lower columns",
            "rule-target": "column", "object-locator": {{"schema-name": "%", "table-name": "%", "column-name": "%"}},
            "rule-action": "convert-lowercase"}}
        ]}}"#
    );
    let dir = TempDir::new("dms-my");
    std::fs::write(dir.join("dms.json"), mapping).expect("mapping file");
    let task = format!(
        "mapping = \"dms.json\"\n[source]\nurl = {:?}\n[target]\nurl = {:?}\n[task]\nmode = \"full-load\"\n",
        maria.url(&src),
        pg.url(&dst)
    );
    let mut ferry = Ferry::start(&dir, "dmsmy", &task, &[]);
    let (code, output) = ferry.wait(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(
        shape(&pg, &dst, "catalog"),
        "items: id integer, label character varying, price numeric"
    );
    assert_eq!(
        rows(
            &pg,
            &dst,
            "SELECT string_agg(id || '=' || label || '=' || price, ',' ORDER BY id) FROM catalog.items"
        ),
        "1=pen=1.50,2=ink=7.25"
    );

    // A rule Ferry cannot carry out is refused, naming its id and action.
    std::fs::write(
        dir.join("dms.json"),
        format!(
            r#"{{"rules": [
              {{"rule-type": "selection", "rule-id": "1", "object-locator": {{"schema-name": "{src}", "table-name": "%"}}, "rule-action": "include"}},
              {{"rule-type": "transformation", "rule-id": "42", "rule-target": "column",
                "object-locator": {{"schema-name": "{src}", "table-name": "Items"}},
                "rule-action": "add-column", "value": "total", "expression": "$Price * 2", "data-type": {{"type": "int8"}}}}
            ]}}"#
        ),
    )
    .expect("mapping file");
    let mut ferry = Ferry::start(&dir, "dmsmy", &task, &[]);
    let (code, output) = ferry.wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("rule 42") && output.contains("add-column"),
        "{output}"
    );
    let _ = maria.drop_database(&src);
    let _ = pg.drop_database(&dst);
}
