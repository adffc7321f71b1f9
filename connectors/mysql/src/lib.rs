//! MySQL and MariaDB source and sink for Ferry, on `mysql_async`.
//!
//! URLs: `mysql://user:password@host:3306/database` or `mariadb://...` (the same
//! connector; the server's flavour is detected at connect time and decides the
//! engine name, `mysql` or `mariadb`, used for type mapping). A MySQL "namespace" is
//! a database. When the task's include patterns do not name databases (empty, or
//! `%.*`), the source reads only the URL's database; name other databases in the
//! patterns (or leave the database out of the URL) to read them.
//!
//! # Source
//!
//! - **Discovery** from `information_schema`: exact column types (`COLUMN_TYPE`
//!   with `unsigned`/`zerofill`, character set and collation), `ENUM`/`SET`
//!   members, generated columns, the primary key, unique keys, indexes (prefix key
//!   parts as `` `col`(n) `` expressions) and foreign keys. Types map to Ferry's
//!   logical types by the table in [`types::SOURCE_TYPES`].
//! - **Consistent snapshot**: MySQL and MariaDB cannot share a snapshot between
//!   connections, so [`MySqlSource::begin_snapshot`] opens a pool of
//!   `snapshot-connections` connections and, while holding `FLUSH TABLES WITH READ
//!   LOCK` for a moment, starts `START TRANSACTION WITH CONSISTENT SNAPSHOT` on each
//!   and records the binlog position (`SHOW MASTER STATUS`, plus
//!   `gtid_binlog_pos`/`gtid_executed`) — the mydumper/Debezium approach. Without
//!   the RELOAD privilege it falls back to `LOCK TABLES ... READ` on the selected
//!   tables. The position is [`position::BinlogPosition`], encoded so that byte order
//!   is position order.
//! - **Partitions**: tables of at least 32 MiB with an integer first primary-key
//!   column are split into key ranges (`MIN`/`MAX`, the outer ranges open); other
//!   tables are read whole. Partitions of many tables run in parallel.
//! - **Reads** stream the binary protocol row by row into bounded batches; nothing
//!   buffers a table. `TIMESTAMP` is read in UTC (`time_zone = '+00:00'`); all text
//!   arrives as utf8mb4 (`SET NAMES utf8mb4`: the server converts latin1 and other
//!   character sets). Zero dates (`0000-00-00`, `2024-00-10`), invalid UTF-8 and
//!   other values without a valid logical value are handed to the table's bad-data
//!   policy, which names table, column and row key.
//!
//! # Sink
//!
//! - **Where**: when the target URL names a database, every table (and every table
//!   a foreign key references) is created in it, whatever its source namespace (a
//!   PostgreSQL schema, another MySQL database); without a database in the URL, each
//!   table goes to the database named by its source namespace (created if missing).
//! - Tables are created from the converted schema ([`types::TARGET_TYPES`]; same
//!   engine: the source's own column types), identifiers quoted with backticks
//!   (reserved words are fine), `utf8mb4` with a binary NO PAD collation so that
//!   unique keys compare like PostgreSQL's. Identifiers longer than 64 characters,
//!   unbounded text in primary/unique keys (→ `VARCHAR(768)`), TEXT in indexes (→ a
//!   255-character prefix), expression, partial and non-B-tree indexes from other
//!   engines, and rows wider than 65,535 bytes are reported as findings.
//! - **Bulk load**: `LOAD DATA LOCAL INFILE` fed from memory in 16 MiB statements,
//!   in one transaction per partition, with `foreign_key_checks = 0`. Measured on a
//!   2-core machine, MariaDB 10.11 → MariaDB (same server), 2,000,000 rows of 8
//!   columns (~390 bytes each), 4 partitions: `LOAD DATA` 148,000–182,000 rows/s,
//!   multi-row `INSERT` (4 MiB statements) 123,000–146,000 rows/s, so `LOAD DATA` is
//!   the default. `unique_checks` stays on: with both checks off MariaDB ≥ 10.6
//!   bulk-loads an empty table under a table lock, which serialises the partitions'
//!   writers (tables created by Ferry have no unique index until after the load). Every session runs with a strict `sql_mode`; since `LOAD
//!   DATA LOCAL` downgrades errors to warnings, any warning or a row count mismatch
//!   fails the load with the row's key. Values the target cannot hold (NaN,
//!   infinities, intervals with months, text longer than `VARCHAR(n)`, ...) are
//!   checked before sending and handled by the bad-data policy.
//! - **After the load**: one `ALTER TABLE` adds the primary key, `AUTO_INCREMENT`,
//!   unique keys and indexes; foreign keys are added after every table (with
//!   `foreign_key_checks = 0`: the rows come from one consistent snapshot).
//!
//! # Options
//!
//! `[source.options]`: `tinyint1-as-bool` (default `true`), `snapshot-connections`
//! (default 4; set it to the task's `parallelism`). `[target.options]`:
//! `load-method` = `"load-data"` (default; falls back to `"insert"` when the server
//! has `local_infile=OFF`) or `"insert"`.
//!
//! # Prerequisites
//!
//! Source user: `SELECT` on the migrated databases; `RELOAD` for the snapshot lock
//! (`FLUSH TABLES WITH READ LOCK`) or, without it, `LOCK TABLES`; `REPLICATION
//! CLIENT` (MariaDB ≥ 10.5: `BINLOG MONITOR`) to record the binlog position; `SHOW
//! VIEW`, `TRIGGER` and `EVENT` let `ferry assess` list those objects. For CDC
//! (later): `log_bin` on, `binlog_format = ROW`, `binlog_row_image = FULL`,
//! `binlog_row_metadata = FULL` (MySQL ≥ 8.0.1 / MariaDB ≥ 10.5), a unique
//! `server_id`, binlog retention longer than the full load, and `REPLICATION SLAVE`.
//!
//! Target user: `CREATE`, `DROP`, `ALTER`, `INDEX`, `INSERT`, `SELECT` (and
//! `REFERENCES` for foreign keys) on the target databases, and `FILE`-free
//! `LOAD DATA LOCAL`: the server needs `local_infile = ON` (MariaDB's default; MySQL
//! 8 defaults to OFF, then Ferry uses `INSERT`).
//!
//! Passwords never appear in errors or logs: endpoints are shown as
//! `mysql://user@host:port/db`.

mod apply;
mod assess;
mod binlog;
mod capture;
mod catalog;
pub mod codec;
mod connect;
mod ddl;
pub mod position;
mod sink;
mod source;
pub mod types;

pub use apply::MySqlApplier;
pub use catalog::AUTO_INCREMENT;
pub use connect::{Flavor, MAX_IDENTIFIER_LEN};
pub use position::BinlogPosition;
pub use sink::{LoadMethod, MySqlSink, MySqlTableWriter, SinkOptions};
pub use source::{MySqlSource, SourceOptions};

use ferry_core::{Error, Result};

/// One value of `[source.options]` / `[target.options]`, as the runner read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionValue<'a> {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(&'a str),
    /// Anything else (tables, arrays, floats, dates).
    Other,
}

impl SourceOptions {
    /// Sets `key` from `[source.options]`; unknown keys and wrong types are config
    /// errors naming the key.
    pub fn set(&mut self, key: &str, value: OptionValue<'_>) -> Result<()> {
        match (key, value) {
            ("tinyint1-as-bool", OptionValue::Bool(b)) => self.tinyint1_as_bool = b,
            ("snapshot-connections", OptionValue::Int(n)) if (1..=256).contains(&n) => {
                self.snapshot_connections = n as usize;
            }
            ("tinyint1-as-bool", _) => {
                return Err(Error::config(
                    "source.options.tinyint1-as-bool must be true or false",
                ));
            }
            ("snapshot-connections", _) => {
                return Err(Error::config(
                    "source.options.snapshot-connections must be an integer from 1 to 256",
                ));
            }
            (other, _) => {
                return Err(Error::config(format!(
                    "source.options.{other}: unknown option of the MySQL source (known: \
                     tinyint1-as-bool, snapshot-connections)"
                )));
            }
        }
        Ok(())
    }
}

impl SinkOptions {
    /// Sets `key` from `[target.options]`; unknown keys and wrong types are config
    /// errors naming the key.
    pub fn set(&mut self, key: &str, value: OptionValue<'_>) -> Result<()> {
        match (key, value) {
            ("load-method", OptionValue::Str(s)) => {
                self.load_method = s
                    .parse()
                    .map_err(|e: Error| Error::config(format!("target.options.{}", e.message())))?;
            }
            ("load-method", _) => {
                return Err(Error::config(
                    "target.options.load-method must be \"load-data\" or \"insert\"",
                ));
            }
            (other, _) => {
                return Err(Error::config(format!(
                    "target.options.{other}: unknown option of the MySQL sink (known: load-method)"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        let mut s = SourceOptions::default();
        s.set("tinyint1-as-bool", OptionValue::Bool(false))
            .expect("ok");
        s.set("snapshot-connections", OptionValue::Int(8))
            .expect("ok");
        assert_eq!(
            s,
            SourceOptions {
                tinyint1_as_bool: false,
                snapshot_connections: 8
            }
        );
        assert!(s.set("snapshot-connections", OptionValue::Int(0)).is_err());
        let e = s.set("nope", OptionValue::Bool(true)).expect_err("unknown");
        assert!(e.message().contains("source.options.nope"));
        let mut t = SinkOptions::default();
        t.set("load-method", OptionValue::Str("insert"))
            .expect("ok");
        assert_eq!(t.load_method, LoadMethod::Insert);
        assert!(t.set("load-method", OptionValue::Str("copy")).is_err());
    }
}
