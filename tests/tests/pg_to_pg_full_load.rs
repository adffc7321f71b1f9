//! PostgreSQL → PostgreSQL full load, end to end through the `ferry` binary.

mod common;

use common::{TempDir, ferry_run, full_load_task};
use ferry_tests::{PgService, postgres_or_panic};

/// Every type the foundation issue lists, with edge values and NULLs, in 9 tables
/// (one of 1,000,000 rows, one without a primary key, one with a composite key).
const FIXTURE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s "complicated"');
CREATE SCHEMA "Sales";

CREATE TABLE scalars (
  id int PRIMARY KEY,
  b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
  n numeric, n12 numeric(12,3), t text, vc varchar(20), c5 char(5), ba bytea,
  d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
  u uuid, j json, jb jsonb, ip inet, net cidr, mac macaddr, m mood
);
INSERT INTO scalars VALUES
 (1, true, 32767, 2147483647, 9223372036854775807, 'NaN', 'Infinity',
  'NaN', 123456789.123, '', 'varchar ✓', 'ab', '\x00ff10'::bytea,
  'infinity', '24:00:00', '23:59:59.999999+14', 'infinity', 'infinity', '-178000000 years',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50, null], "b": "x"}', '{"z": 1, "a": {"b": []}}',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 'happy'),
 (2, false, -32768, -2147483648, -9223372036854775808, '-Infinity', '-Infinity',
  '-Infinity', -0.001, 'emoji 🦀 and ünïcödé and "quotes" and \ backslash', '', '     ', ''::bytea,
  '-infinity', '00:00:00', '00:00:00-15:59', '-infinity', '-infinity', '-1 mon -2 days -00:00:00.000001',
  '00000000-0000-0000-0000-000000000000', '[]', '"just a string"',
  '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', 'it''s "complicated"'),
 (3, null, 0, 0, 0, 1.17549435e-38, 2.2250738585072014e-308,
  'Infinity', 0.000, E'tab\there\nnewline', 'x', 'abcde', '\x'::bytea,
  '4713-01-01 BC', '12:34:56.789', '12:00:00+05:30', '4713-01-01 00:00:00 BC', '294276-12-31 23:59:59.999999+00', '1 year 2 mons 3 days 04:05:06.789',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', 'null', 'null',
  '2001:db8:85a3::8a2e:370:7334/64', '192.168.100.128/25', '00:00:00:00:00:00', 'sad'),
 (4, true, 1, 1, 1, 3.4028235e38, 1.7976931348623157e308,
  '0.000000000000000000000000000000000000000000000000000000000000000000000000000001', 99999999.999, repeat('long text ', 5000), 'twenty chars exactly', 'abc  ', decode(repeat('deadbeef', 4096), 'hex'),
  '5874897-12-31', '00:00:00.000001', '23:59:59+00', '2000-01-01 00:00:00', '1970-01-01 00:00:00+00', '0',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '{"deep": {"deeper": {"deepest": [true, false]}}}', '{"num": 1.000000000000000000001}',
  '0.0.0.0/0', '0.0.0.0/0', '01:23:45:67:89:ab', 'ok'),
 (5, null, null, null, null, null, null, null, null, null, null, null, null,
  null, null, null, null, null, null, null, null, null, null, null, null, null),
 (6, false, -1, -1, -1, -0.0, -0.0, -0.5, -0.5, 'tricky ''quote''', 'tab	in', 'e', '\x5c'::bytea,
  '2000-02-29', '13:00', '13:00-00:30', '1999-12-31 23:59:59.999999', '2024-03-10 02:30:00-05', '-3 days 12:00',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', '{"dup": 1, "dup": 2}', '{"dup": 1, "dup": 2}',
  '::ffff:1.2.3.4', '::/0', '12:34:56:78:9a:bc', 'sad');
INSERT INTO scalars (id, n) VALUES (7, ('9' || repeat('8', 998) || '.' || repeat('7', 500))::numeric),
  (8, -(repeat('1', 1000))::numeric), (9, 1.50), (10, 1e-300), (11, 0);

CREATE TABLE arrays (
  id int PRIMARY KEY,
  ab bool[], a2 int2[], a4 int4[], a8 int8[], af4 float4[], af8 float8[], an numeric[],
  at text[], avc varchar(10)[], aby bytea[], ad date[], atm time[], attz timetz[], ats timestamp[],
  atstz timestamptz[], aiv interval[], au uuid[], aj json[], ajb jsonb[], aip inet[], anet cidr[],
  amac macaddr[], am mood[], grid int4[][]
);
INSERT INTO arrays VALUES
 (1, '{true,false,null}', '{1,-2,null}', '{2147483647,null,-2147483648}', '{9223372036854775807}',
  '{NaN,Infinity,-Infinity,1.5}', '{NaN,-0,1e308}', '{NaN,1.50,-0.000,Infinity,-Infinity,null}',
  '{"a,b","with \"quote\"","🦀",null,""}', '{"x","NULL"}', '{"\\x00ff",null,"\\x"}',
  '{infinity,-infinity,2000-01-01,null}', '{00:00,24:00}', '{"10:00+02"}',
  '{infinity,"2020-01-01 12:00"}', '{"-infinity","2020-01-01 12:00+03"}', '{"1 day","-1 mon"}',
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,null}', ARRAY['{"a":1}'::json, '[]'::json], ARRAY['{"b":2}'::jsonb, null],
  '{1.2.3.4/32,::1/128,null}', '{10.0.0.0/8}', '{08:00:2b:01:02:03}', '{happy,sad,null}', '{{1,2,3},{4,null,6}}'),
 (2, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
  '{}', '{}', '{}', '{}', '{}', '{}', '{}'),
 (3, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, null, null, null, null, null, null, null),
 (4, '[0:1]={true,false}', '[-5:-4]={7,8}', '{null}', '{null,null}', '{null}', '{null}', '{null}',
  '{null}', '{null}', '{null}', '{null}', '{null}', '{null}', '{null}', '{null}', '{null}', '{null}',
  ARRAY[null::json], '{null}', '{null}', '{null}', '{null}', '{null}', '{{{1}},{{2}}}');

CREATE TABLE big (
  id bigint PRIMARY KEY, k int NOT NULL, label text, amount numeric(14,2), at timestamptz, flag bool
);
INSERT INTO big
SELECT g, g % 1000, 'row ' || g || repeat('x', g % 17), (g * 7.31)::numeric(14,2),
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second', g % 3 = 0
FROM generate_series(1, 1000000) g;
CREATE INDEX big_k_idx ON big (k);

CREATE TABLE no_pk (a int, b text);
INSERT INTO no_pk SELECT g % 10, 'dup' FROM generate_series(1, 500) g;
INSERT INTO no_pk VALUES (null, null), (null, null);

CREATE TABLE composite_key (
  region text, n int, payload jsonb, PRIMARY KEY (region, n)
);
INSERT INTO composite_key SELECT r, g, jsonb_build_object('g', g)
FROM unnest(ARRAY['eu', 'us', 'ap']) r, generate_series(1, 300) g;

CREATE TABLE other_types (
  id int PRIMARY KEY, p point, tsv tsvector, r int4range, mon money, x xml, bits bit(8), vbits varbit,
  ch "char", hs int8range[]
);
INSERT INTO other_types VALUES
 (1, '(1.5,-2)', 'a fat cat:3 sat', '[1,10)', 12.34, '<a>b</a>', B'10101010', B'101', 'x', '{"[1,2)","empty"}'),
 (2, null, null, 'empty', -0.01, null, null, B'', null, null);

CREATE TABLE "Sales"."Order Lines" (
  "Line ID" int PRIMARY KEY, "SKU" text UNIQUE, qty int CHECK (qty > 0), tags text[],
  "createdAt" timestamptz DEFAULT now()
);
INSERT INTO "Sales"."Order Lines" SELECT g, 'sku-' || g, g, ARRAY['t' || g], '2024-01-01' FROM generate_series(1, 1000) g;

CREATE TABLE indexed (
  id int PRIMARY KEY, email text, doc jsonb, active bool, CONSTRAINT indexed_email_key UNIQUE (email)
);
CREATE INDEX indexed_lower_email ON indexed (lower(email));
CREATE INDEX indexed_active ON indexed (id) WHERE active;
CREATE INDEX indexed_doc ON indexed USING gin (doc);
INSERT INTO indexed SELECT g, 'user' || g || '@example.com', jsonb_build_object('n', g), g % 2 = 0 FROM generate_series(1, 2000) g;

CREATE TABLE empty_table (id int PRIMARY KEY, v text);
CREATE TABLE domain_and_serial (id serial PRIMARY KEY, v text);
INSERT INTO domain_and_serial (v) VALUES ('a'), ('b');
"#;

/// Tables and the md5 of their rows in a stable order, computed by the server.
const TABLES: &[&str] = &[
    "public.scalars",
    "public.arrays",
    "public.big",
    "public.no_pk",
    "public.composite_key",
    "public.other_types",
    "\"Sales\".\"Order Lines\"",
    "public.indexed",
    "public.empty_table",
    "public.domain_and_serial",
];

fn checksum(pg: &PgService, db: &str, table: &str) -> String {
    let sql = format!(
        "SELECT count(*) || ':' || coalesce(md5(string_agg(r, E'\\n' ORDER BY r COLLATE \"C\")), '') \
         FROM (SELECT t::text AS r FROM {table} t) s"
    );
    pg.psql(db, &sql)
        .expect("checksum query")
        .trim()
        .to_string()
}

fn assert_tables_equal(pg: &PgService, source: &str, target: &str) {
    for table in TABLES {
        let a = checksum(pg, source, table);
        let b = checksum(pg, target, table);
        assert_eq!(a, b, "table {table} differs between source and target");
    }
}

fn setup() -> (PgService, String, String) {
    let pg = postgres_or_panic();
    let source = pg.create_database("e2e_src").expect("source db");
    let target = pg.create_database("e2e_dst").expect("target db");
    pg.psql(&source, FIXTURE).expect("load fixture");
    pg.psql(&source, "ANALYZE").expect("analyze");
    (pg, source, target)
}

#[test]
fn full_load_copies_every_type_and_table_exactly_and_reruns_cleanly() {
    let (pg, source, target) = setup();
    let dir = TempDir::new("pg2pg");
    let task = full_load_task(
        &pg.url(&source),
        &pg.url(&target),
        &["public.*", "Sales.*"],
        "drop-and-create",
    );
    let run = ferry_run(&dir, &task, &[]);
    assert!(run.status.success(), "ferry failed:\n{}", run.all_output());
    assert_tables_equal(&pg, &source, &target);

    // Unmapped types are passed through and named in the summary.
    let out = run.all_output();
    for t in ["point", "tsvector", "int4range", "money", "xml", "bit(8)"] {
        assert!(
            out.contains(t),
            "summary does not list passed-through type {t}:\n{out}"
        );
    }
    assert!(
        out.contains("1000000"),
        "summary lacks the big table's row count:\n{out}"
    );

    // Keys and indexes exist on the target after the load.
    let indexes = "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes \
                   WHERE schemaname IN ('public', 'Sales')";
    assert_eq!(
        pg.psql(&source, indexes).expect("source indexes"),
        pg.psql(&target, indexes).expect("target indexes"),
    );
    let defs = "SELECT string_agg(indexdef, E'\\n' ORDER BY indexname) FROM pg_indexes \
                WHERE tablename = 'indexed'";
    assert_eq!(
        pg.psql(&source, defs).expect("source defs"),
        pg.psql(&target, defs).expect("target defs"),
    );

    // A serial column continues after the loaded rows on the target.
    assert_eq!(
        pg.psql(
            &target,
            "INSERT INTO domain_and_serial (v) VALUES ('c') RETURNING id"
        )
        .expect("insert without id"),
        "3"
    );
    pg.psql(&target, "DELETE FROM domain_and_serial WHERE id = 3")
        .expect("clean up");

    // Rerun with drop-and-create, then truncate: same data, no duplicates.
    for prep in ["drop-and-create", "truncate"] {
        let task = full_load_task(
            &pg.url(&source),
            &pg.url(&target),
            &["public.*", "Sales.*"],
            prep,
        );
        let run = ferry_run(&dir, &task, &[]);
        assert!(
            run.status.success(),
            "rerun with {prep} failed:\n{}",
            run.all_output()
        );
        assert_tables_equal(&pg, &source, &target);
    }
}
