//! The MySQL/MariaDB change applier (CDC into MySQL): changes in source commit
//! order, many per target transaction, with the task's checkpoint written in the
//! same transaction (`ferry_checkpoints`).
//!
//! Values are rendered as SQL literals by the same code as the bulk writer's
//! `INSERT` path (bad-data policies included). Runs of inserts become multi-row
//! `INSERT`s; updates and deletes find their row by primary key, or by every
//! column (`<=>`, `LIMIT 1`) in a table without one. MySQL commits implicitly
//! around DDL, so a schema change first commits what is pending (with the
//! checkpoint of the last whole source transaction) and alters the table in its
//! own statement.

use crate::catalog::{self, DiscoverOptions};
use crate::codec::Encode;
use crate::connect::{ServerInfo, Target, quote_ident, quote_literal, quote_table};
use crate::sink::{encoders, push_sql_literal, render_value};
use ferry_core::policy::{BadDataRecorder, row_key};
use ferry_core::{
    ApplyTable, Batch, ChangeApplier, ChangeEvent, Error, ErrorKind, Operation, Position, Result,
    TableId, TableSchema, Value,
};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes of SQL per multi-row `INSERT`, at most.
const INSERT_BYTES: usize = 512 << 10;

/// The database of the checkpoint table: the URL's, or `ferry`.
pub(crate) fn checkpoint_database(target: &Target) -> String {
    target.database().unwrap_or("ferry").to_owned()
}

fn checkpoint_table(target: &Target) -> String {
    format!(
        "{}.`ferry_checkpoints`",
        quote_ident(&checkpoint_database(target))
    )
}

/// Creates the checkpoint table (and its database) if absent.
async fn create_checkpoint_table(conn: &mut Conn, target: &Target) -> Result<()> {
    let database = checkpoint_database(target);
    let sql = format!(
        "CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4; \
         CREATE TABLE IF NOT EXISTS {table} (task varchar(64) NOT NULL PRIMARY KEY, \
         position text NOT NULL, source_time bigint NULL, \
         updated_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
        db = quote_ident(&database),
        table = checkpoint_table(target)
    );
    conn.query_drop(sql)
        .await
        .map_err(|e| target.error(e, "cannot create the checkpoint table ferry_checkpoints"))
}

fn upsert_checkpoint(
    target: &Target,
    task: &str,
    position: &Position,
    time: Option<i64>,
) -> String {
    format!(
        "INSERT INTO {} (task, position, source_time) VALUES ({}, '{}', {}) \
         ON DUPLICATE KEY UPDATE position = VALUES(position), source_time = VALUES(source_time), \
         updated_at = CURRENT_TIMESTAMP(6)",
        checkpoint_table(target),
        quote_literal(task),
        position.to_hex(),
        time.map_or_else(|| "NULL".to_owned(), |t| t.to_string())
    )
}

/// One target table as the applier writes it.
struct Table {
    schema: Arc<TableSchema>,
    encoders: Vec<Encode>,
    key: Vec<usize>,
    recorder: BadDataRecorder,
    context: String,
}

/// Applies a change stream to MySQL or MariaDB (see the module docs).
pub struct MySqlApplier {
    target: Target,
    server: ServerInfo,
    conn: Conn,
    task: String,
    tables: HashMap<TableId, Table>,
    open: bool,
    applied: Option<Position>,
    applied_time: Option<i64>,
    committed: Option<Position>,
    cell: Vec<u8>,
}

impl MySqlApplier {
    /// Opens the applier's connection and reads the target's view of `tables`.
    pub(crate) async fn open(
        target: &Target,
        server: ServerInfo,
        task: &str,
        tables: Vec<ApplyTable>,
    ) -> Result<Self> {
        let target = target.with_found_rows();
        let mut conn = target.connect().await?;
        create_checkpoint_table(&mut conn, &target).await?;
        conn.query_drop("SET foreign_key_checks = 0")
            .await
            .map_err(|e| target.error(e, "cannot set up the apply session"))?;
        let mut applier = MySqlApplier {
            target,
            server,
            conn,
            task: task.to_owned(),
            tables: HashMap::new(),
            open: false,
            applied: None,
            applied_time: None,
            committed: None,
            cell: Vec::with_capacity(4096),
        };
        for table in tables {
            let recorder = BadDataRecorder::new(table.schema.id.clone(), table.policy);
            applier.load_table(table.schema, recorder).await?;
        }
        Ok(applier)
    }

    async fn load_table(
        &mut self,
        schema: Arc<TableSchema>,
        recorder: BadDataRecorder,
    ) -> Result<()> {
        let found = catalog::discover_one(
            &mut self.conn,
            &self.target,
            self.server.flavor,
            &schema.id,
            DiscoverOptions {
                tinyint1_as_bool: true,
            },
        )
        .await?
        .ok_or_else(|| {
            Error::schema(format!(
                "table {} does not exist in the target {}: CDC applies to existing tables \
                 (run a full load first, or set mode = \"full-load-and-cdc\")",
                schema.id, self.target.display
            ))
        })?;
        let encoders = encoders(&schema, &found, &self.target)?;
        self.tables.insert(
            schema.id.clone(),
            Table {
                key: schema.primary_key_indices(),
                context: format!("applying changes to {}", schema.id),
                encoders,
                recorder,
                schema,
            },
        );
        Ok(())
    }

    async fn run(&mut self, sql: String, context: &str) -> Result<u64> {
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| self.target.error(e, context))?;
        Ok(self.conn.affected_rows())
    }

    async fn begin_if_needed(&mut self) -> Result<()> {
        if !self.open {
            self.run("START TRANSACTION".into(), "opening a target transaction")
                .await?;
            self.open = true;
        }
        Ok(())
    }

    /// Renders `row`'s column `i` as an SQL literal into `out`; `false` when the
    /// bad-data policy skips the row.
    fn literal(
        cell: &mut Vec<u8>,
        table: &mut Table,
        i: usize,
        row: &[Value],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let value = row.get(i).unwrap_or(&Value::Null);
        let Some(enc) = table.encoders.get(i) else {
            return Err(Error::internal(format!(
                "{}: a row has more values than the table has columns",
                table.context
            )));
        };
        match render_value(value, enc, &mut table.recorder, &table.schema, i, row, cell)? {
            Some(rendered) => {
                push_sql_literal(rendered, cell, out);
                Ok(true)
            }
            None => {
                table.recorder.row_skipped();
                Ok(false)
            }
        }
    }

    async fn insert_rows(&mut self, id: &TableId, rows: Vec<Vec<Value>>) -> Result<()> {
        let Some(table) = self.tables.get_mut(id) else {
            return Err(Error::internal(format!("no applier table {id}")));
        };
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote_table(id),
            table
                .schema
                .columns
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let context = table.context.clone();
        let mut statements = Vec::new();
        let mut sql: Vec<u8> = head.as_bytes().to_vec();
        let mut rows_in = 0;
        let mut row_sql = Vec::with_capacity(256);
        for row in &rows {
            row_sql.clear();
            row_sql.push(b'(');
            let mut keep = true;
            for i in 0..table.schema.columns.len() {
                if i > 0 {
                    row_sql.push(b',');
                }
                if !Self::literal(&mut self.cell, table, i, row, &mut row_sql)? {
                    keep = false;
                    break;
                }
            }
            if !keep {
                continue;
            }
            row_sql.push(b')');
            if rows_in > 0 {
                sql.push(b',');
            }
            sql.extend_from_slice(&row_sql);
            rows_in += 1;
            if sql.len() >= INSERT_BYTES {
                statements.push(std::mem::replace(&mut sql, head.as_bytes().to_vec()));
                rows_in = 0;
            }
        }
        if rows_in > 0 {
            statements.push(sql);
        }
        for statement in statements {
            let statement = String::from_utf8(statement)
                .map_err(|_| Error::internal(format!("{context}: INSERT is not UTF-8")))?;
            self.run(statement, &context).await?;
        }
        Ok(())
    }

    async fn change_row(&mut self, id: &TableId, event: ChangeEvent) -> Result<()> {
        let Some(table) = self.tables.get_mut(id) else {
            return Err(Error::internal(format!("no applier table {id}")));
        };
        let update = event.op == Operation::Update;
        let after = event.after.unwrap_or_default();
        let identity: Vec<Value> = match event.before {
            Some(b) => b,
            None if update && !table.key.is_empty() => after.clone(),
            None => {
                return Err(Error::new(
                    ErrorKind::Source,
                    format!(
                        "{}: a change without the row's old values arrived for a table without \
                         a primary key (the source must log full row images)",
                        table.context
                    ),
                ));
            }
        };
        let mut sql: Vec<u8> = Vec::with_capacity(256);
        if update {
            sql.extend_from_slice(format!("UPDATE {} SET ", quote_table(id)).as_bytes());
            let mut first = true;
            for i in 0..table.schema.columns.len() {
                if matches!(after.get(i), None | Some(Value::Unchanged)) {
                    continue;
                }
                if !first {
                    sql.extend_from_slice(b", ");
                }
                first = false;
                sql.extend_from_slice(quote_ident(&table.schema.columns[i].name).as_bytes());
                sql.extend_from_slice(b" = ");
                if !Self::literal(&mut self.cell, table, i, &after, &mut sql)? {
                    return Ok(());
                }
            }
            if first {
                return Ok(());
            }
        } else {
            sql.extend_from_slice(format!("DELETE FROM {}", quote_table(id)).as_bytes());
        }
        sql.extend_from_slice(b" WHERE ");
        let keyed = !table.key.is_empty();
        let columns: Vec<usize> = if keyed {
            table.key.clone()
        } else {
            (0..table.schema.columns.len())
                .filter(|i| !matches!(identity.get(*i), None | Some(Value::Unchanged)))
                .collect()
        };
        for (n, &i) in columns.iter().enumerate() {
            if n > 0 {
                sql.extend_from_slice(b" AND ");
            }
            sql.extend_from_slice(quote_ident(&table.schema.columns[i].name).as_bytes());
            sql.extend_from_slice(if keyed { b" = " } else { b" <=> " });
            if !Self::literal(&mut self.cell, table, i, &identity, &mut sql)? {
                return Ok(());
            }
        }
        if columns.is_empty() {
            sql.extend_from_slice(b"TRUE");
        }
        if !keyed {
            sql.extend_from_slice(b" LIMIT 1");
        }
        let context = table.context.clone();
        let key = row_key(&table.schema, &identity);
        let statement = String::from_utf8(sql)
            .map_err(|_| Error::internal(format!("{context}: statement is not UTF-8")))?;
        let rows = self.run(statement, &context).await?;
        if rows != 1 {
            return Err(Error::new(
                ErrorKind::Target,
                format!(
                    "{} of {id} row {key} found {rows} rows at the target {} (expected exactly 1): \
                     the target table does not hold what the source had",
                    if update { "update" } else { "delete" },
                    self.target.display
                ),
            ));
        }
        Ok(())
    }

    /// Commits what is pending with the checkpoint of the last whole source
    /// transaction (DDL would commit it implicitly anyway).
    async fn commit_pending(&mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        if let Some(position) = self.applied.clone()
            && self.applied != self.committed
        {
            let sql = upsert_checkpoint(&self.target, &self.task, &position, self.applied_time);
            self.run(sql, "writing the task's checkpoint").await?;
        }
        self.run("COMMIT".into(), "committing the target transaction")
            .await?;
        self.open = false;
        self.committed = self.applied.clone();
        Ok(())
    }

    async fn change_schema(&mut self, new: Arc<TableSchema>) -> Result<()> {
        self.commit_pending().await?;
        let Some(old) = self.tables.remove(&new.id) else {
            return Err(Error::internal(format!("no applier table {}", new.id)));
        };
        let table = quote_table(&new.id);
        let existing: Vec<String> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (new.id.namespace.as_str(), new.id.name.as_str()),
            )
            .await
            .map_err(|e| self.target.error(e, "reading the target table's columns"))?;
        let has = |name: &str| existing.iter().any(|c| c.eq_ignore_ascii_case(name));
        let mut parts = Vec::new();
        for column in &old.schema.columns {
            if new.column(&column.name).is_none() && has(&column.name) {
                parts.push(format!("DROP COLUMN {}", quote_ident(&column.name)));
            }
        }
        for column in &new.columns {
            match old.schema.column(&column.name) {
                None if !has(&column.name) => {
                    parts.push(format!(
                        "ADD COLUMN {}",
                        crate::ddl::column_definition(column)
                    ));
                }
                Some(was)
                    if was.source_type != column.source_type
                        || was.data_type != column.data_type =>
                {
                    parts.push(format!(
                        "MODIFY COLUMN {}",
                        crate::ddl::column_definition(column)
                    ));
                }
                _ => {}
            }
        }
        if !parts.is_empty() {
            let sql = format!("ALTER TABLE {table} {}", parts.join(", "));
            tracing::info!(table = %new.id, statement = %sql, "applying a source schema change");
            self.run(
                sql,
                &format!("altering {} to the source's new shape", new.id),
            )
            .await?;
        }
        self.load_table(new, old.recorder).await
    }
}

impl ChangeApplier for MySqlApplier {
    async fn apply(&mut self, batch: Batch) -> Result<()> {
        let end = batch.end_position.clone();
        let time = batch.source_time;
        if !batch.events.is_empty() {
            let id = batch.schema.id.clone();
            if !self.tables.contains_key(&id) {
                return Err(Error::internal(format!(
                    "the applier received changes of {id}, which it was not opened for"
                )));
            }
            let mut inserts: Vec<Vec<Value>> = Vec::new();
            for event in batch.events {
                if event.op != Operation::Insert && !inserts.is_empty() {
                    self.begin_if_needed().await?;
                    self.insert_rows(&id, std::mem::take(&mut inserts)).await?;
                }
                match event.op {
                    Operation::Insert => {
                        if let Some(row) = event.after {
                            inserts.push(row);
                        }
                    }
                    Operation::Update | Operation::Delete => {
                        self.begin_if_needed().await?;
                        self.change_row(&id, event).await?;
                    }
                    Operation::Truncate => {
                        // DELETE, not TRUNCATE: TRUNCATE would commit implicitly.
                        self.begin_if_needed().await?;
                        let context = format!("emptying {id}");
                        self.run(format!("DELETE FROM {}", quote_table(&id)), &context)
                            .await?;
                    }
                    Operation::SchemaChange => {
                        self.change_schema(Arc::clone(&batch.schema)).await?;
                    }
                }
            }
            if !inserts.is_empty() {
                self.begin_if_needed().await?;
                self.insert_rows(&id, inserts).await?;
            }
        }
        if let Some(position) = end {
            self.applied = Some(position);
            if time.is_some() {
                self.applied_time = time;
            }
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<Option<Position>> {
        if self.applied == self.committed && !self.open {
            return Ok(self.committed.clone());
        }
        self.begin_if_needed().await?;
        self.commit_pending().await?;
        Ok(self.committed.clone())
    }
}

/// The checkpoint stored for `task`, if any.
pub(crate) async fn read_checkpoint(target: &Target, task: &str) -> Result<Option<Position>> {
    let mut conn = target.connect().await?;
    let database = checkpoint_database(target);
    let exists: Option<i64> = conn
        .exec_first(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'ferry_checkpoints'",
            (database.as_str(),),
        )
        .await
        .map_err(|e| target.error(e, "looking for the checkpoint table"))?;
    if exists.is_none() {
        return Ok(None);
    }
    let hex: Option<String> = conn
        .exec_first(
            format!(
                "SELECT position FROM {} WHERE task = ?",
                checkpoint_table(target)
            ),
            (task,),
        )
        .await
        .map_err(|e| target.error(e, "reading the task's checkpoint"))?;
    match hex {
        None => Ok(None),
        Some(hex) => Position::from_hex(&hex).map(Some).ok_or_else(|| {
            Error::new(
                ErrorKind::Target,
                format!(
                    "the checkpoint of task {task} in {} is not a position Ferry wrote ({hex:?}); \
                     remove it with `ferry cleanup`",
                    checkpoint_table(target)
                ),
            )
        }),
    }
}

/// Stores `position` as `task`'s checkpoint.
pub(crate) async fn write_checkpoint(
    target: &Target,
    task: &str,
    position: &Position,
) -> Result<()> {
    let mut conn = target.connect().await?;
    create_checkpoint_table(&mut conn, target).await?;
    conn.query_drop(upsert_checkpoint(target, task, position, None))
        .await
        .map_err(|e| target.error(e, "writing the task's checkpoint"))
}

/// Removes `task`'s checkpoint; whether there was one.
pub(crate) async fn remove_checkpoint(target: &Target, task: &str) -> Result<bool> {
    if read_checkpoint(target, task).await?.is_none() {
        return Ok(false);
    }
    let mut conn = target.connect().await?;
    conn.exec_drop(
        format!("DELETE FROM {} WHERE task = ?", checkpoint_table(target)),
        (task,),
    )
    .await
    .map_err(|e| target.error(e, "removing the task's checkpoint"))?;
    Ok(true)
}
