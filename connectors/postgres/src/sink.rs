//! The PostgreSQL sink: table preparation, binary `COPY ... FROM STDIN`, keys and
//! indexes after the load.

use crate::bad_data;
use crate::catalog::{self, PgTable};
use crate::codec::{self, CodecError, PgColumnType};
use crate::connect::{Target, quote_ident, quote_table};
use crate::copy::CopyWriter;
use crate::ddl;
use bytes::{Bytes, BytesMut};
use ferry_core::policy::{Action, ValueProblem, fail_error, row_key};
use ferry_core::{
    BadDataPolicy, Batch, Error, Finding, FindingLevel, LoadReport, Result, SchemaDdl, Sink,
    TableId, TablePrep, TableSchema, TableWriter, Value, finding_code,
};
use futures_util::SinkExt;
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_postgres::{Client, CopyInSink};

/// Bytes buffered before they are sent to the server.
const SEND_BYTES: usize = 256 << 10;

/// Writes tables into a PostgreSQL database.
pub struct PgSink {
    target: Target,
    /// Serialises DDL on one connection; `None` for [`PgSink::ddl_only`].
    ddl: Option<tokio::sync::Mutex<Client>>,
    /// Tables this sink created, which get keys and indexes after the load.
    created: Mutex<HashSet<TableId>>,
    /// The target's own view of each prepared table (type OIDs for the codec).
    prepared: Mutex<HashMap<TableId, Arc<PgTable>>>,
    /// `[target.options]`.
    options: crate::options::SinkOptions,
}

impl PgSink {
    /// Connects to the database named in `url` (`postgres://user:pass@host:port/db`).
    pub async fn connect(url: &str) -> Result<Self> {
        let target = Target::parse(url)?;
        let client = target.connect().await?;
        Ok(PgSink {
            target,
            ddl: Some(tokio::sync::Mutex::new(client)),
            created: Mutex::new(HashSet::new()),
            prepared: Mutex::new(HashMap::new()),
            options: crate::options::SinkOptions::default(),
        })
    }

    /// A sink that never connects: [`Sink::convert_schema`] and [`Sink::schema_ddl`]
    /// work (they need no server), everything else fails. `ferry schema` uses it to
    /// print the target DDL without touching the target.
    pub fn ddl_only() -> Self {
        PgSink {
            target: Target::offline(),
            ddl: None,
            created: Mutex::new(HashSet::new()),
            prepared: Mutex::new(HashMap::new()),
            options: crate::options::SinkOptions::default(),
        }
    }

    /// The same sink with these `[target.options]`.
    pub fn with_options(mut self, options: crate::options::SinkOptions) -> Self {
        self.options = options;
        self
    }

    /// The DDL connection, locked.
    async fn ddl_client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>> {
        match &self.ddl {
            Some(client) => Ok(client.lock().await),
            None => Err(Error::internal(
                "this PostgreSQL sink was built to print DDL only (PgSink::ddl_only) and \
                 cannot change the target",
            )),
        }
    }

    /// The target as `postgres://user@host:port/db`, without the password.
    pub fn display(&self) -> &str {
        &self.target.display
    }

    fn lock_err() -> Error {
        Error::internal("sink state poisoned")
    }

    async fn execute(&self, client: &Client, sql: &str, context: &str) -> Result<()> {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| self.target.error(e, context))
    }

    /// Reads the target table back from the catalog and remembers it for writers.
    async fn refresh(&self, client: &Client, id: &TableId) -> Result<Arc<PgTable>> {
        let table = catalog::discover_one(client, &self.target, id)
            .await?
            .ok_or_else(|| {
                Error::schema(format!(
                    "table {id} does not exist in the target {}",
                    self.target.display
                ))
            })?;
        let table = Arc::new(table);
        self.prepared
            .lock()
            .map_err(|_| Self::lock_err())?
            .insert(id.clone(), Arc::clone(&table));
        Ok(table)
    }

    async fn create(&self, client: &Client, schema: &TableSchema, drop: bool) -> Result<()> {
        let context = format!("cannot create table {}", schema.id);
        let mut statements = ddl::pre_load(schema);
        if drop {
            // Before CREATE TABLE, which is last.
            let at = statements.len().saturating_sub(1);
            statements.insert(
                at,
                format!("DROP TABLE IF EXISTS {} CASCADE", quote_table(&schema.id)),
            );
        }
        let mut sql = String::from("BEGIN;\n");
        for statement in statements {
            sql.push_str(&statement);
            sql.push_str(";\n");
        }
        sql.push_str("COMMIT;");
        if let Err(e) = self.execute(client, &sql, &context).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
        self.created
            .lock()
            .map_err(|_| Self::lock_err())?
            .insert(schema.id.clone());
        Ok(())
    }
}

impl Sink for PgSink {
    type Writer = PgTableWriter;
    type Applier = crate::apply::PgApplier;

    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn open_applier(
        &self,
        task: &str,
        tables: Vec<ferry_core::ApplyTable>,
    ) -> Result<crate::apply::PgApplier> {
        crate::apply::PgApplier::open(&self.target, task, tables).await
    }

    async fn read_checkpoint(&self, task: &str) -> Result<Option<ferry_core::Position>> {
        crate::apply::read_checkpoint(&self.target, task).await
    }

    async fn write_checkpoint(&self, task: &str, position: &ferry_core::Position) -> Result<()> {
        crate::apply::write_checkpoint(&self.target, task, position).await
    }

    async fn remove_checkpoint(&self, task: &str) -> Result<bool> {
        crate::apply::remove_checkpoint(&self.target, task).await
    }

    fn convert_schema(
        &self,
        source_engine: &str,
        schema: &TableSchema,
    ) -> Result<(TableSchema, Vec<Finding>)> {
        Ok(ddl::convert(source_engine, schema, self.options.enum_as))
    }

    async fn prepare_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        let client = self.ddl_client().await?;
        let exists = catalog::discover_one(&client, &self.target, &schema.id)
            .await?
            .is_some();
        // Only tables created here get keys and indexes after the load.
        self.created
            .lock()
            .map_err(|_| Self::lock_err())?
            .remove(&schema.id);
        match prep {
            TablePrep::DropAndCreate => self.create(&client, schema, true).await?,
            TablePrep::Truncate if exists => {
                let sql = format!("TRUNCATE TABLE {}", quote_table(&schema.id));
                let context = format!(
                    "cannot truncate {} (if other tables reference it by foreign key, use \
                     table-prep = \"drop-and-create\" or drop those foreign keys first)",
                    schema.id
                );
                self.execute(&client, &sql, &context).await?;
            }
            TablePrep::Truncate => self.create(&client, schema, false).await?,
            TablePrep::DoNothing if exists => {}
            TablePrep::DoNothing => {
                return Err(Error::schema(format!(
                    "table {} does not exist in the target {}; table-prep = \"do-nothing\" \
                     needs it to exist (use \"drop-and-create\" or \"truncate\" to create it)",
                    schema.id, self.target.display
                )));
            }
        }
        self.refresh(&client, &schema.id).await?;
        Ok(())
    }

    async fn open_writer(
        &self,
        schema: Arc<TableSchema>,
        policy: BadDataPolicy,
    ) -> Result<PgTableWriter> {
        let cached = self
            .prepared
            .lock()
            .map_err(|_| Self::lock_err())?
            .get(&schema.id)
            .cloned();
        let client = self.target.connect().await?;
        let table = match cached {
            Some(t) => t,
            None => self.refresh(&client, &schema.id).await?,
        };
        let mut types = Vec::with_capacity(schema.columns.len());
        for column in &schema.columns {
            let index = table.schema.column_index(&column.name).ok_or_else(|| {
                Error::schema(format!(
                    "column {} of table {} does not exist in the target {}",
                    column.name, schema.id, self.target.display
                ))
            })?;
            types.push(table.types[index].clone());
        }
        let columns = schema
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let statement = format!(
            "COPY {} ({columns}) FROM STDIN (FORMAT binary)",
            quote_table(&schema.id)
        );
        let context = format!("loading {}", schema.id);
        let sink: CopyInSink<Bytes> = client
            .copy_in(statement.as_str())
            .await
            .map_err(|e| self.target.error(e, &context))?;
        let mut sink = Box::pin(sink);
        sink.send(CopyWriter::header())
            .await
            .map_err(|e| self.target.error(e, &context))?;
        Ok(PgTableWriter {
            _client: client,
            sink,
            writer: CopyWriter::new(types.clone()),
            types,
            buffer: BytesMut::with_capacity(SEND_BYTES * 2),
            bad: ferry_core::policy::BadDataRecorder::new(schema.id.clone(), policy),
            schema,
            target: self.target.clone(),
            context,
        })
    }

    async fn finish_table(&self, schema: &TableSchema, _prep: TablePrep) -> Result<()> {
        let created = self
            .created
            .lock()
            .map_err(|_| Self::lock_err())?
            .contains(&schema.id);
        // Keys and indexes are built on a connection of their own, so several
        // tables can build at once while other tables are still loading.
        let client = self.target.connect().await?;
        if created {
            for sql in ddl::post_load(schema) {
                let context = format!("cannot add keys/indexes to {}", schema.id);
                self.execute(&client, &sql, &context).await?;
            }
        }
        for sql in ddl::restart_sequences(schema) {
            let context = format!(
                "cannot move the sequences of {} past the loaded rows",
                schema.id
            );
            self.execute(&client, &sql, &context).await?;
        }
        // Statistics are left to autovacuum, which analyzes a freshly loaded table
        // within its naptime, as after pg_restore.
        Ok(())
    }

    async fn add_foreign_keys(&self, schema: &TableSchema, _prep: TablePrep) -> Result<()> {
        let created = self
            .created
            .lock()
            .map_err(|_| Self::lock_err())?
            .contains(&schema.id);
        // Like keys: only on tables this sink created; an existing table keeps its own.
        if !created {
            return Ok(());
        }
        let client = self.ddl_client().await?;
        for (sql, fk) in ddl::foreign_keys(schema).iter().zip(&schema.foreign_keys) {
            let context = format!(
                "cannot add foreign key {} to {} (referencing {}); rows that violate it \
                 are in the target now",
                fk.name, schema.id, fk.referenced_table
            );
            self.execute(&client, sql, &context).await?;
        }
        Ok(())
    }

    fn schema_ddl(&self, schema: &TableSchema) -> Result<SchemaDdl> {
        Ok(ddl::schema_ddl(schema))
    }

    async fn assess(&self, schemas: &[TableSchema], prep: TablePrep) -> Result<Vec<Finding>> {
        let client = self.ddl_client().await?;
        let mut findings = Vec::new();
        for schema in schemas {
            let Some(existing) = catalog::discover_one(&client, &self.target, &schema.id).await?
            else {
                if prep == TablePrep::DoNothing {
                    findings.push(
                        Finding::new(
                            FindingLevel::Error,
                            finding_code::TARGET_EXISTS,
                            format!(
                                "table does not exist in the target {}; table-prep = \
                                 \"do-nothing\" needs it (create it, e.g. with `ferry \
                                 schema`, or use \"drop-and-create\")",
                                self.target.display
                            ),
                        )
                        .table(&schema.id),
                    );
                }
                continue;
            };
            let rows = existing.schema.estimated_rows.unwrap_or(0);
            let (level, what) = match prep {
                TablePrep::DropAndCreate => (
                    FindingLevel::Warning,
                    "it will be dropped (with CASCADE) and created again",
                ),
                TablePrep::Truncate => (FindingLevel::Warning, "its rows will be deleted"),
                TablePrep::DoNothing => (
                    FindingLevel::Info,
                    "rows will be appended to it (table-prep = \"do-nothing\")",
                ),
            };
            findings.push(
                Finding::new(
                    level,
                    finding_code::TARGET_EXISTS,
                    format!(
                        "table already exists in the target {} (about {rows} rows); {what}",
                        self.target.display
                    ),
                )
                .table(&schema.id),
            );
        }
        Ok(findings)
    }
}

/// Loads one partition with binary `COPY ... FROM STDIN`.
pub struct PgTableWriter {
    /// Keeps the connection open while the COPY runs.
    _client: Client,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    writer: CopyWriter,
    types: Vec<PgColumnType>,
    buffer: BytesMut,
    schema: Arc<TableSchema>,
    target: Target,
    context: String,
    bad: ferry_core::policy::BadDataRecorder,
}

impl PgTableWriter {
    /// A message naming the table, column and row key of a value that failed.
    fn describe_failure(&self, row: &[Value], error: impl std::fmt::Display) -> Error {
        let mut scratch = BytesMut::new();
        let column = row
            .iter()
            .zip(&self.types)
            .position(|(v, t)| codec::encode(t, v, &mut scratch).is_err())
            .and_then(|i| self.schema.columns.get(i))
            .map(|c| format!(", column {}", c.name))
            .unwrap_or_default();
        Error::conversion(format!(
            "{}{column}, row {}: {error}",
            self.context,
            row_key(&self.schema, row)
        ))
    }

    /// A row the codec refused: applies the bad-data policy to every value
    /// PostgreSQL cannot hold and writes the repaired row, or skips it. Values of
    /// the wrong kind (a bug, not bad data) fail whatever the policy.
    fn repair(&mut self, row: &[Value]) -> Result<()> {
        let mut fixed: Vec<Value> = row.to_vec();
        let mut scratch = BytesMut::new();
        for i in 0..fixed.len().min(self.types.len()) {
            scratch.clear();
            let ty = &self.types[i];
            let error = match codec::encode(ty, &fixed[i], &mut scratch) {
                Ok(()) => continue,
                Err(e @ CodecError::Unrepresentable { .. }) => e,
                Err(e) => return Err(self.describe_failure(row, e)),
            };
            let Some(column) = self.schema.columns.get(i) else {
                return Err(self.describe_failure(row, error));
            };
            let problem =
                bad_data::diagnose(ty, &fixed[i]).unwrap_or(ValueProblem::Other(error.to_string()));
            let schema = &self.schema;
            let action = self.bad.handle(column, || row_key(schema, row), &problem)?;
            match action {
                Action::Null => fixed[i] = Value::Null,
                Action::Clamp => match bad_data::clamp(ty, &fixed[i]) {
                    Some(v) => fixed[i] = v,
                    None => {
                        return Err(fail_error(
                            &self.schema.id,
                            &column.name,
                            &row_key(&self.schema, row),
                            &problem,
                            "the bad-data policy is \"clamp\" but this value has no nearest \
                             valid value in the column's type",
                        ));
                    }
                },
                Action::SkipRow => {
                    self.bad.row_skipped();
                    return Ok(());
                }
                Action::Fail(_) => return Err(self.describe_failure(row, error)),
            }
        }
        if let Err(e) = self.writer.write_row(&fixed, &mut self.buffer) {
            return Err(self.describe_failure(&fixed, e));
        }
        Ok(())
    }
}

impl TableWriter for PgTableWriter {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        for event in &batch.events {
            let Some(row) = event.after.as_deref() else {
                return Err(Error::internal(format!(
                    "{}: bulk load received a {:?} event",
                    self.context, event.op
                )));
            };
            if self.writer.write_row(row, &mut self.buffer).is_err() {
                self.repair(row)?;
            }
            if self.buffer.len() >= SEND_BYTES {
                let chunk = self.buffer.split().freeze();
                // Make room for the next chunk now, while the buffer is empty: growing
                // it row by row later would copy what it already holds.
                self.buffer.reserve(SEND_BYTES * 2);
                self.sink
                    .send(chunk)
                    .await
                    .map_err(|e| self.target.error(e, &self.context))?;
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<LoadReport> {
        if !self.buffer.is_empty() {
            let chunk = self.buffer.split().freeze();
            self.sink
                .send(chunk)
                .await
                .map_err(|e| self.target.error(e, &self.context))?;
        }
        self.sink
            .send(CopyWriter::trailer())
            .await
            .map_err(|e| self.target.error(e, &self.context))?;
        let rows = self
            .sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| self.target.error(e, &self.context))?;
        let mut report = self.bad.into_report();
        report.rows = rows;
        Ok(report)
    }
}
