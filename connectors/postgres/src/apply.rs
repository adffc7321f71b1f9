//! The PostgreSQL change applier (CDC into PostgreSQL): changes in source commit
//! order, many per target transaction, with the task's checkpoint written in the
//! same transaction.
//!
//! Statements are prepared once per table, operation and column set, take binary
//! parameters encoded by the COPY codec, and are **pipelined**: each is sent as it
//! is built and its result checked later, in order, so the connection never waits
//! for a round trip per change. One connection executes in send order, so the
//! order of changes is kept. The applier drives that connection itself (no
//! spawned task), so statements leave in large writes. Every statement's result
//! is checked before `COMMIT` is sent: an update or delete that found no row
//! fails the transaction, and a failed applier refuses further work.
//!
//! A row changed [`HOT_ROW_CHANGES`] times in one target transaction makes the
//! applier commit (data and checkpoint) at the next source transaction boundary
//! by itself: the versions such a row leaves cannot be pruned while the
//! transaction runs, and each later change walks them all.

use crate::bad_data;
use crate::catalog::{self, PgTable};
use crate::codec::{self, CodecError, PgColumnType};
use crate::connect::{Connection, Target, quote_ident, quote_table};
use crate::ddl;
use bytes::{Buf, Bytes, BytesMut};
use ferry_core::policy::{Action, BadDataRecorder, ValueProblem, row_key};
use ferry_core::{
    ApplyTable, Batch, ChangeApplier, ChangeEvent, DataType, Error, Operation, Position, Result,
    TableId, TableSchema, Value,
};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Statement};

/// The control table holding each task's checkpoint.
pub(crate) const CHECKPOINT_TABLE: &str = "public.ferry_checkpoints";
/// Statements sent and not yet checked, at most.
const MAX_IN_FLIGHT: usize = 8192;
/// Statements held back and then sent together, so the connection writes them
/// in one go rather than one system call each.
const SEND_AT_ONCE: usize = 128;
/// Changes to one row within one target transaction after which the applier
/// commits at the next source transaction boundary. Every change adds a row
/// version the transaction cannot prune, and finding the row again walks them
/// all, so a hot row (a pgbench branch, a counter) costs quadratically in the
/// transaction's length.
const HOT_ROW_CHANGES: u32 = 12;
/// Rows whose changes are counted at most (the count starts over beyond), so
/// memory stays flat in a transaction of any size.
const HOT_ROW_TRACKED: usize = 1 << 16;
/// Rows per multi-row `INSERT`, at most (fewer for wide tables: 65,535 parameters).
const MAX_INSERT_ROWS: usize = 128;

/// `CREATE TABLE IF NOT EXISTS` for [`CHECKPOINT_TABLE`].
pub(crate) const CREATE_CHECKPOINT_TABLE: &str = "CREATE TABLE IF NOT EXISTS public.ferry_checkpoints (\
     task text PRIMARY KEY, position text NOT NULL, source_time bigint, \
     updated_at timestamptz NOT NULL DEFAULT now())";

/// Upserts a task's checkpoint: `$1` task, `$2` position hex, `$3` source time.
const UPSERT_CHECKPOINT: &str = "INSERT INTO public.ferry_checkpoints (task, position, source_time, updated_at) \
     VALUES ($1, $2, $3, now()) ON CONFLICT (task) DO UPDATE SET position = EXCLUDED.position, \
     source_time = EXCLUDED.source_time, updated_at = EXCLUDED.updated_at";

/// One parameter, already in PostgreSQL's binary form (`None` is NULL).
#[derive(Debug)]
struct Param(Option<Bytes>);

impl ToSql for Param {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The value [`codec::encode`] just wrote into `scratch` (after its 4-byte
/// length), split off without a copy: values share `scratch`'s allocation.
fn take_param(scratch: &mut BytesMut) -> Param {
    let mut value = scratch.split();
    value.advance(4);
    Param(Some(value.freeze()))
}

/// A statement's shape: table, operation, which columns it sets and which it
/// matches on, and rows (multi-row inserts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    table: TableId,
    op: Kind,
    set: Vec<bool>,
    matched: Vec<bool>,
    rows: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Insert,
    Update,
    Delete,
}

/// What a statement's result must be.
enum Check {
    /// Anything.
    Any,
    /// Exactly one row changed: the update or delete found its row.
    OneRow {
        what: &'static str,
        table: TableId,
        key: String,
    },
}

type Pending =
    Pin<Box<dyn Future<Output = std::result::Result<u64, tokio_postgres::Error>> + Send>>;

/// A statement sent and not yet checked.
struct InFlight {
    result: Pending,
    check: Check,
    /// What it was doing, for errors.
    context: Arc<str>,
}

/// One target table as the applier writes it.
struct Table {
    schema: Arc<TableSchema>,
    /// Codec type of each column of `schema`, from the target's catalog.
    types: Vec<PgColumnType>,
    /// Primary key column indices; empty when the table has none.
    key: Vec<usize>,
    bad: BadDataRecorder,
    context: Arc<str>,
}

/// Applies a change stream to PostgreSQL (see the module docs).
pub struct PgApplier {
    target: Target,
    client: Arc<Client>,
    /// The connection's I/O, driven by the applier itself (not a spawned task) so
    /// that queued statements leave in large writes and no thread hand-over is
    /// paid per statement; `None` once it has closed.
    connection: Option<Connection>,
    task: String,
    tables: HashMap<TableId, Table>,
    statements: HashMap<Shape, Statement>,
    in_flight: VecDeque<InFlight>,
    /// Statements built and not yet sent, in order.
    unsent: Vec<InFlight>,
    /// A target transaction is open.
    open: bool,
    /// Changes per row (hash of table and key) in the open transaction.
    touched: HashMap<u64, u32>,
    /// A row reached [`HOT_ROW_CHANGES`] in the open transaction.
    hot: bool,
    /// An error left the transaction incomplete: nothing more may be applied.
    failed: bool,
    /// The last position applied (batch end or marker), committed or not.
    applied: Option<Position>,
    applied_time: Option<i64>,
    /// The position the last commit stored.
    committed: Option<Position>,
    scratch: BytesMut,
}

impl PgApplier {
    /// Opens the applier's connection and reads the target's view of `tables`.
    pub(crate) async fn open(target: &Target, task: &str, tables: Vec<ApplyTable>) -> Result<Self> {
        let (client, connection) = target.connect_undriven().await?;
        let mut connection = Some(connection);
        drive(
            &mut connection,
            client.batch_execute(CREATE_CHECKPOINT_TABLE),
        )
        .await
        .map_err(|e| {
            target.error(
                e,
                "cannot create the checkpoint table public.ferry_checkpoints",
            )
        })?;
        let mut applier = PgApplier {
            target: target.clone(),
            client: Arc::new(client),
            connection,
            task: task.to_owned(),
            tables: HashMap::new(),
            statements: HashMap::new(),
            in_flight: VecDeque::new(),
            unsent: Vec::new(),
            open: false,
            touched: HashMap::new(),
            hot: false,
            failed: false,
            applied: None,
            applied_time: None,
            committed: None,
            scratch: BytesMut::with_capacity(64 << 10),
        };
        for table in tables {
            applier.load_table(table.schema, table.policy).await?;
        }
        Ok(applier)
    }

    /// (Re)reads `schema`'s table from the target catalog.
    async fn load_table(
        &mut self,
        schema: Arc<TableSchema>,
        policy: ferry_core::BadDataPolicy,
    ) -> Result<()> {
        let found: PgTable = drive(
            &mut self.connection,
            catalog::discover_one(&self.client, &self.target, &schema.id),
        )
        .await?
        .ok_or_else(|| {
            Error::schema(format!(
                "table {} does not exist in the target {}: CDC applies to existing tables \
                     (run a full load first, or set mode = \"full-load-and-cdc\")",
                schema.id, self.target.display
            ))
        })?;
        let mut types = Vec::with_capacity(schema.columns.len());
        for column in &schema.columns {
            let index = found.schema.column_index(&column.name).ok_or_else(|| {
                Error::schema(format!(
                    "column {} of table {} does not exist in the target {}",
                    column.name, schema.id, self.target.display
                ))
            })?;
            types.push(found.types[index].clone());
        }
        let key = schema.primary_key_indices();
        let context: Arc<str> = format!("applying changes to {}", schema.id).into();
        self.statements.retain(|shape, _| shape.table != schema.id);
        self.tables.insert(
            schema.id.clone(),
            Table {
                bad: BadDataRecorder::new(schema.id.clone(), policy),
                schema,
                types,
                key,
                context,
            },
        );
        Ok(())
    }

    /// Queues a statement: it is sent (its future polled once, which hands its
    /// request to the connection) with the next [`SEND_AT_ONCE`] others, and
    /// checked later, in order.
    fn push(&mut self, result: Pending, check: Check, context: Arc<str>) {
        self.unsent.push(InFlight {
            result,
            check,
            context,
        });
        if self.unsent.len() >= SEND_AT_ONCE {
            self.send_queued();
        }
    }

    /// Sends every queued statement, in order.
    fn send_queued(&mut self) {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        for mut statement in self.unsent.drain(..) {
            if let Poll::Ready(done) = statement.result.as_mut().poll(&mut cx) {
                statement.result = Box::pin(std::future::ready(done));
            }
            self.in_flight.push_back(statement);
        }
        self.pump();
    }

    /// Turns the connection once without waiting: writes the statements handed
    /// to it and reads the replies already there, so the server works while
    /// more statements are built.
    fn pump(&mut self) {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        if let Some(connection) = self.connection.as_mut()
            && let Poll::Ready(result) = Pin::new(connection).poll(&mut cx)
        {
            closed(&mut self.connection, result);
        }
    }

    /// Sends a simple statement (no parameters) in the pipeline.
    fn push_simple(&mut self, sql: String, context: Arc<str>) {
        let client = Arc::clone(&self.client);
        let result: Pending = Box::pin(async move { client.batch_execute(&sql).await.map(|()| 0) });
        self.push(result, Check::Any, context);
    }

    /// Checks the oldest statements until at most `keep` are in flight.
    async fn settle(&mut self, keep: usize) -> Result<()> {
        if keep == 0 || self.in_flight.len() > keep {
            self.send_queued();
        }
        while self.in_flight.len() > keep {
            let Some(next) = self.in_flight.pop_front() else {
                break;
            };
            let rows = match drive(&mut self.connection, next.result).await {
                Ok(rows) => rows,
                Err(e) => {
                    self.in_flight.clear();
                    self.unsent.clear();
                    return Err(self.target.error(e, &next.context));
                }
            };
            if let Check::OneRow { what, table, key } = next.check
                && rows != 1
            {
                self.in_flight.clear();
                self.unsent.clear();
                return Err(Error::new(
                    ferry_core::ErrorKind::Target,
                    format!(
                        "{what} of {table} row {key} found {rows} rows at the target {} (expected \
                     exactly 1): the target table does not hold what the source had",
                        self.target.display
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn begin_if_needed(&mut self) {
        if !self.open {
            self.push_simple("BEGIN".into(), "opening a target transaction".into());
            self.open = true;
        }
    }

    async fn statement(&mut self, shape: &Shape) -> Result<Statement> {
        if let Some(s) = self.statements.get(shape) {
            return Ok(s.clone());
        }
        let table = self
            .tables
            .get(&shape.table)
            .ok_or_else(|| Error::internal(format!("no applier table {}", shape.table)))?;
        let sql = statement_sql(&table.schema, shape);
        // Check what is in flight first: an earlier failure is the error to report
        // (not the aborted transaction the new statement would meet), and no
        // response waits unread while this one is awaited.
        self.settle(0).await?;
        let prepared = drive(&mut self.connection, self.client.prepare(&sql))
            .await
            .map_err(|e| {
                self.target
                    .error(e, &format!("preparing a statement for {}", shape.table))
            })?;
        self.statements.insert(shape.clone(), prepared.clone());
        Ok(prepared)
    }

    /// Encodes `value` for column `i` of `table` into a parameter, applying the
    /// table's bad-data policy; `Ok(None)` means "skip this row".
    fn encode(
        scratch: &mut BytesMut,
        table: &mut Table,
        i: usize,
        value: &Value,
        row: &[Value],
    ) -> Result<Option<Param>> {
        if matches!(value, Value::Null) {
            return Ok(Some(Param(None)));
        }
        let ty = &table.types[i];
        scratch.clear();
        let error = match codec::encode(ty, value, scratch) {
            Ok(()) => return Ok(Some(take_param(scratch))),
            Err(e @ CodecError::Unrepresentable { .. }) => e,
            Err(e) => {
                return Err(Error::conversion(format!(
                    "{}, column {}, row {}: {e}",
                    table.context,
                    table.schema.columns[i].name,
                    row_key(&table.schema, row)
                )));
            }
        };
        let column = &table.schema.columns[i];
        let problem =
            bad_data::diagnose(ty, value).unwrap_or(ValueProblem::Other(error.to_string()));
        let schema = Arc::clone(&table.schema);
        match table
            .bad
            .handle(column, || row_key(&schema, row), &problem)?
        {
            Action::Null => Ok(Some(Param(None))),
            Action::Clamp => match bad_data::clamp(ty, value) {
                Some(fixed) => {
                    scratch.clear();
                    codec::encode(ty, &fixed, scratch).map_err(|e| {
                        Error::conversion(format!("{}, column {}: {e}", table.context, column.name))
                    })?;
                    Ok(Some(take_param(scratch)))
                }
                None => Err(Error::conversion(format!(
                    "{}, column {}, row {}: {problem}; the bad-data policy is \"clamp\" but \
                     the value has no nearest valid value",
                    table.context,
                    column.name,
                    row_key(&schema, row)
                ))),
            },
            Action::SkipRow => {
                table.bad.row_skipped();
                Ok(None)
            }
            Action::Fail(_) => Err(Error::conversion(format!(
                "{}, column {}, row {}: {error}",
                table.context,
                column.name,
                row_key(&schema, row)
            ))),
        }
    }

    /// Sends a run of inserts as multi-row `INSERT`s.
    async fn insert_rows(&mut self, id: &TableId, rows: Vec<Vec<Value>>) -> Result<()> {
        let Some(table) = self.tables.get_mut(id) else {
            return Err(Error::internal(format!("no applier table {id}")));
        };
        let width = table.schema.columns.len().max(1);
        let context = Arc::clone(&table.context);
        let max_rows = (60_000 / width).clamp(1, MAX_INSERT_ROWS);
        let mut encoded: Vec<Vec<Param>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut params = Vec::with_capacity(width);
            let mut skip = false;
            for (i, value) in row.iter().enumerate().take(table.types.len()) {
                match Self::encode(&mut self.scratch, table, i, value, row)? {
                    Some(p) => params.push(p),
                    None => {
                        skip = true;
                        break;
                    }
                }
            }
            if !skip {
                encoded.push(params);
            }
        }
        let columns = table.schema.columns.len();
        let mut rest = encoded.into_iter().peekable();
        let mut remaining = rest.len();
        while remaining > 0 {
            // Powers of two keep the number of prepared shapes small.
            let mut n = max_rows.min(remaining);
            n = 1 << (usize::BITS - 1 - n.leading_zeros());
            let shape = Shape {
                table: id.clone(),
                op: Kind::Insert,
                set: vec![true; columns],
                matched: Vec::new(),
                rows: n,
            };
            let statement = self.statement(&shape).await?;
            let params: Vec<Param> = rest.by_ref().take(n).flatten().collect();
            remaining -= n;
            let client = Arc::clone(&self.client);
            let result: Pending =
                Box::pin(async move { client.execute_raw(&statement, params).await });
            self.push(result, Check::Any, Arc::clone(&context));
            self.settle(MAX_IN_FLIGHT).await?;
        }
        Ok(())
    }

    /// Sends one update or delete.
    async fn change_row(&mut self, id: &TableId, event: ChangeEvent) -> Result<()> {
        let Some(table) = self.tables.get_mut(id) else {
            return Err(Error::internal(format!("no applier table {id}")));
        };
        let columns = table.schema.columns.len();
        let kind = if event.op == Operation::Update {
            Kind::Update
        } else {
            Kind::Delete
        };
        let after = event.after.unwrap_or_default();
        let before = event.before;
        // The row's identity: its key (from the before image when there is one),
        // or for a table without a key every comparable column of the before image.
        let identity: &[Value] = match (&before, kind) {
            (Some(b), _) => b,
            (None, Kind::Update) if !table.key.is_empty() => &after,
            (None, _) if !table.key.is_empty() => {
                return Err(Error::new(
                    ferry_core::ErrorKind::Source,
                    format!(
                        "{}: a delete arrived without the row's key (the source sent no old \
                         row image)",
                        table.context
                    ),
                ));
            }
            (None, _) => {
                let what = if kind == Kind::Update {
                    "an update"
                } else {
                    "a delete"
                };
                return Err(Error::new(
                    ferry_core::ErrorKind::Source,
                    format!(
                        "{}: {what} without the row's old values arrived for a table without \
                         a primary key; set REPLICA IDENTITY FULL on the source table",
                        table.context
                    ),
                ));
            }
        };
        let matched: Vec<bool> = if table.key.is_empty() {
            (0..columns)
                .map(|i| {
                    comparable(&table.schema.columns[i].data_type)
                        && identity
                            .get(i)
                            .is_some_and(|v| !matches!(v, Value::Unchanged))
                })
                .collect()
        } else {
            (0..columns).map(|i| table.key.contains(&i)).collect()
        };
        let set: Vec<bool> = if kind == Kind::Update {
            (0..columns)
                .map(|i| after.get(i).is_some_and(|v| !matches!(v, Value::Unchanged)))
                .collect()
        } else {
            Vec::new()
        };
        let row_for_errors: &[Value] = if after.is_empty() { identity } else { &after };
        let mut params = Vec::new();
        for (i, value) in after.iter().enumerate() {
            if set.get(i) == Some(&true) {
                match Self::encode(&mut self.scratch, table, i, value, row_for_errors)? {
                    Some(p) => params.push(p),
                    None => return Ok(()),
                }
            }
        }
        for (i, on) in matched.iter().enumerate() {
            if *on {
                let value = identity.get(i).unwrap_or(&Value::Null);
                match Self::encode(&mut self.scratch, table, i, value, identity)? {
                    Some(p) => params.push(p),
                    None => return Ok(()),
                }
            }
        }
        let key = key_text(&table.schema, &table.key, identity);
        let context = Arc::clone(&table.context);
        let identity_params = matched.iter().filter(|on| **on).count();
        let identity_params = &params[params.len().saturating_sub(identity_params)..];
        if self.touched.len() >= HOT_ROW_TRACKED {
            self.touched.clear();
        }
        let changes = self
            .touched
            .entry(row_hash(id, identity_params))
            .or_insert(0);
        *changes += 1;
        if *changes >= HOT_ROW_CHANGES {
            self.hot = true;
        }
        let shape = Shape {
            table: id.clone(),
            op: kind,
            set,
            matched,
            rows: 1,
        };
        let statement = self.statement(&shape).await?;
        let client = Arc::clone(&self.client);
        let result: Pending = Box::pin(async move { client.execute_raw(&statement, params).await });
        let what = if kind == Kind::Update {
            "update"
        } else {
            "delete"
        };
        self.push(
            result,
            Check::OneRow {
                what,
                table: id.clone(),
                key,
            },
            context,
        );
        self.settle(MAX_IN_FLIGHT).await
    }

    /// Alters the target table to `new` (added, dropped and retyped columns).
    async fn change_schema(&mut self, new: Arc<TableSchema>) -> Result<()> {
        self.settle(0).await?;
        let Some(old) = self.tables.get(&new.id) else {
            return Err(Error::internal(format!("no applier table {}", new.id)));
        };
        let policy = old.bad.policy();
        let table = quote_table(&new.id);
        // Enum types of added or retyped columns first (created unless they exist).
        let retyped: Vec<ferry_core::Column> = new
            .columns
            .iter()
            .filter(|c| {
                old.schema.column(&c.name).is_none_or(|was| {
                    was.data_type != c.data_type || was.source_type != c.source_type
                })
            })
            .cloned()
            .collect();
        let mut statements = Vec::new();
        for (schema, qualified, labels) in
            ddl::enum_types(&TableSchema::new(new.id.clone(), retyped))
        {
            statements.push(format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
            statements.push(ddl::create_enum(&qualified, &labels));
        }
        for column in &old.schema.columns {
            if new.column(&column.name).is_none() {
                statements.push(format!(
                    "ALTER TABLE {table} DROP COLUMN IF EXISTS {}",
                    quote_ident(&column.name)
                ));
            }
        }
        for column in &new.columns {
            match old.schema.column(&column.name) {
                None => statements.push(format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {}",
                    ddl::column_definition(column)
                )),
                Some(was)
                    if was.data_type != column.data_type
                        || was.source_type != column.source_type =>
                {
                    let name = quote_ident(&column.name);
                    statements.push(format!(
                        "ALTER TABLE {table} ALTER COLUMN {name} TYPE {ty} USING {name}::{ty}",
                        ty = column.source_type
                    ));
                }
                Some(_) => {}
            }
        }
        self.begin_if_needed().await;
        for sql in statements {
            tracing::info!(table = %new.id, statement = %sql, "applying a source schema change");
            self.push_simple(
                sql,
                format!("altering {} to the source's new shape", new.id).into(),
            );
        }
        self.settle(0).await?;
        self.load_table(new, policy).await
    }

    /// Queues the checkpoint upsert for `position`.
    async fn push_checkpoint(&mut self, position: &Position) -> Result<()> {
        let statement = match self.statements.get(&checkpoint_shape()) {
            Some(s) => s.clone(),
            None => {
                self.settle(0).await?;
                let s = drive(&mut self.connection, self.client.prepare(UPSERT_CHECKPOINT))
                    .await
                    .map_err(|e| self.target.error(e, "preparing the checkpoint statement"))?;
                self.statements.insert(checkpoint_shape(), s.clone());
                s
            }
        };
        let client = Arc::clone(&self.client);
        let task = self.task.clone();
        let hex = position.to_hex();
        let time = self.applied_time;
        let result: Pending =
            Box::pin(async move { client.execute(&statement, &[&task, &hex, &time]).await });
        self.push(
            result,
            Check::Any,
            format!(
                "writing task {}'s checkpoint to {CHECKPOINT_TABLE}",
                self.task
            )
            .into(),
        );
        Ok(())
    }
}

/// A hash of the row a change targets: its table and the values it is matched
/// on.
fn row_hash(table: &TableId, params: &[Param]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    table.hash(&mut h);
    for p in params {
        p.0.as_deref().hash(&mut h);
    }
    h.finish()
}

/// Awaits `work` on the applier's client while turning the connection, which
/// carries the requests out and the replies in.
async fn drive<F: Future>(connection: &mut Option<Connection>, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Some(c) = connection.as_mut()
            && let Poll::Ready(result) = Pin::new(c).poll(cx)
        {
            closed(connection, result);
        }
        work.as_mut().poll(cx)
    })
    .await
}

/// Drops a connection that has finished, so that every request still waiting
/// on it fails (as closed) instead of waiting for ever.
fn closed(
    connection: &mut Option<Connection>,
    result: std::result::Result<(), tokio_postgres::Error>,
) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "the applier's connection closed");
    }
    *connection = None;
}

/// The statement cache's key for the checkpoint upsert.
fn checkpoint_shape() -> Shape {
    Shape {
        table: TableId::new("public", "ferry_checkpoints"),
        op: Kind::Insert,
        set: Vec::new(),
        matched: Vec::new(),
        rows: 0,
    }
}

/// Whether PostgreSQL can compare the column with `IS NOT DISTINCT FROM` (json,
/// xml and unmapped types have no equality operator).
fn comparable(data_type: &DataType) -> bool {
    !matches!(
        data_type,
        DataType::Json { .. } | DataType::Other { .. } | DataType::Array(_)
    )
}

/// `(id=5)`: the row's key (or the first columns without one), for errors.
fn key_text(schema: &TableSchema, key: &[usize], row: &[Value]) -> String {
    if key.is_empty() {
        row_key(schema, row)
    } else {
        let mut key_row = vec![Value::Null; schema.columns.len()];
        for &i in key {
            if let Some(v) = row.get(i) {
                key_row[i] = v.clone();
            }
        }
        row_key(schema, &key_row)
    }
}

/// The SQL of a statement shape.
fn statement_sql(schema: &TableSchema, shape: &Shape) -> String {
    let table = quote_table(&schema.id);
    let mut n = 0usize;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    match shape.op {
        Kind::Insert => {
            let columns = schema
                .columns
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = (0..shape.rows)
                .map(|_| {
                    let values = (0..schema.columns.len())
                        .map(|_| next())
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("({values})")
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("INSERT INTO {table} ({columns}) VALUES {rows}")
        }
        Kind::Update | Kind::Delete => {
            let mut sql = if shape.op == Kind::Update {
                let set = schema
                    .columns
                    .iter()
                    .zip(&shape.set)
                    .filter(|(_, on)| **on)
                    .map(|(c, _)| format!("{} = {}", quote_ident(&c.name), next()))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("UPDATE {table} SET {set} WHERE ")
            } else {
                format!("DELETE FROM {table} WHERE ")
            };
            let keyed = !schema.primary_key.is_empty();
            let conditions = schema
                .columns
                .iter()
                .zip(&shape.matched)
                .filter(|(_, on)| **on)
                .map(|(c, _)| {
                    if keyed {
                        format!("{} = {}", quote_ident(&c.name), next())
                    } else {
                        format!("{} IS NOT DISTINCT FROM {}", quote_ident(&c.name), next())
                    }
                })
                .collect::<Vec<_>>();
            let conditions = if conditions.is_empty() {
                "true".to_owned()
            } else {
                conditions.join(" AND ")
            };
            if keyed {
                sql.push_str(&conditions);
            } else {
                // Exactly one of possibly identical rows.
                sql.push_str(&format!(
                    "ctid = (SELECT ctid FROM {table} WHERE {conditions} LIMIT 1)"
                ));
            }
            sql
        }
    }
}

impl ChangeApplier for PgApplier {
    async fn apply(&mut self, batch: Batch) -> Result<()> {
        self.check_usable()?;
        let result = self.apply_batch(batch).await;
        if result.is_err() {
            self.poison();
        }
        result
    }

    async fn commit(&mut self) -> Result<Option<Position>> {
        self.check_usable()?;
        let result = self.commit_transaction().await;
        if result.is_err() {
            self.poison();
        }
        result
    }
}

impl PgApplier {
    /// Refuses work after an error: the open transaction holds part of what was
    /// sent, and committing it would store a checkpoint past changes never applied.
    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::internal(
                "the PostgreSQL applier failed earlier and its transaction was abandoned; \
                 open a new applier and resume from the stored checkpoint",
            ));
        }
        Ok(())
    }

    /// Marks the applier failed and abandons the open transaction (the server rolls
    /// it back; nothing of it is committed).
    fn poison(&mut self) {
        self.failed = true;
        self.in_flight.clear();
        if self.open {
            let client = Arc::clone(&self.client);
            let rollback: Pending =
                Box::pin(async move { client.batch_execute("ROLLBACK").await.map(|()| 0) });
            // Sent now, never awaited: the reply does not matter.
            self.unsent.clear();
            self.push(rollback, Check::Any, "rolling back".into());
            self.send_queued();
            self.in_flight.clear();
            self.open = false;
        }
    }

    async fn apply_batch(&mut self, batch: Batch) -> Result<()> {
        let boundary = batch.end_position.is_some();
        self.apply_events(batch).await?;
        if boundary && self.hot {
            // A source transaction ends here: commit now rather than let the
            // hot row's versions pile up (the runner's next commit then finds
            // nothing new, or carries on from here).
            tracing::debug!("committing early: a row changed many times in this transaction");
            self.commit_transaction().await?;
        }
        Ok(())
    }

    async fn apply_events(&mut self, batch: Batch) -> Result<()> {
        if let Some(position) = &batch.end_position {
            self.applied = Some(position.clone());
            if batch.source_time.is_some() {
                self.applied_time = batch.source_time;
            }
        }
        if batch.events.is_empty() {
            return Ok(());
        }
        let id = batch.schema.id.clone();
        let known = self
            .tables
            .get(&id)
            .map(|t| Arc::ptr_eq(&t.schema, &batch.schema) || *t.schema == *batch.schema);
        match known {
            None => {
                return Err(Error::internal(format!(
                    "the applier received changes of {id}, which it was not opened for"
                )));
            }
            Some(false) if !batch.events.iter().any(|e| e.op == Operation::SchemaChange) => {
                return Err(Error::internal(format!(
                    "the applier received {id} rows in a shape it was not told about"
                )));
            }
            _ => {}
        }
        self.begin_if_needed().await;
        let mut inserts: Vec<Vec<Value>> = Vec::new();
        for event in batch.events {
            if event.op != Operation::Insert && !inserts.is_empty() {
                self.insert_rows(&id, std::mem::take(&mut inserts)).await?;
            }
            match event.op {
                Operation::Insert => {
                    if let Some(row) = event.after {
                        inserts.push(row);
                    }
                }
                Operation::Update | Operation::Delete => self.change_row(&id, event).await?,
                Operation::Truncate => {
                    let context = self
                        .tables
                        .get(&id)
                        .map(|t| Arc::clone(&t.context))
                        .unwrap_or_else(|| "truncating".into());
                    self.push_simple(format!("TRUNCATE {}", quote_table(&id)), context);
                }
                Operation::SchemaChange => self.change_schema(Arc::clone(&batch.schema)).await?,
            }
        }
        if !inserts.is_empty() {
            self.insert_rows(&id, inserts).await?;
        }
        Ok(())
    }

    async fn commit_transaction(&mut self) -> Result<Option<Position>> {
        if self.applied == self.committed && !self.open {
            return Ok(self.committed.clone());
        }
        // Every change must be known to have found its row before COMMIT goes out:
        // an update that matched nothing is no SQL error, so the server would
        // commit the checkpoint past it.
        self.settle(0).await?;
        self.begin_if_needed().await;
        if let Some(position) = self.applied.clone()
            && self.applied != self.committed
        {
            self.push_checkpoint(&position).await?;
        }
        self.push_simple("COMMIT".into(), "committing the target transaction".into());
        self.open = false;
        self.touched.clear();
        self.hot = false;
        self.settle(0).await?;
        self.committed = self.applied.clone();
        Ok(self.committed.clone())
    }
}

/// A connection to the target when it has the checkpoint table, else `None`.
async fn checkpoint_client(target: &Target) -> Result<Option<Client>> {
    let client = target.connect().await?;
    let exists: Option<String> = client
        .query_one("SELECT to_regclass('public.ferry_checkpoints')::text", &[])
        .await
        .map_err(|e| target.error(e, "looking for the checkpoint table"))?
        .get(0);
    Ok(exists.map(|_| client))
}

/// The checkpoint stored for `task`, if any.
pub(crate) async fn read_checkpoint(target: &Target, task: &str) -> Result<Option<Position>> {
    let Some(client) = checkpoint_client(target).await? else {
        return Ok(None);
    };
    let row = client
        .query_opt(
            "SELECT position FROM public.ferry_checkpoints WHERE task = $1",
            &[&task],
        )
        .await
        .map_err(|e| target.error(e, "reading the task's checkpoint"))?;
    match row {
        None => Ok(None),
        Some(row) => {
            let hex: String = row.get(0);
            Position::from_hex(&hex).map(Some).ok_or_else(|| {
                Error::new(
                    ferry_core::ErrorKind::Target,
                    format!(
                        "the checkpoint of task {task} in {CHECKPOINT_TABLE} is not a position \
                     Ferry wrote ({hex:?}); remove the row with `ferry cleanup`"
                    ),
                )
            })
        }
    }
}

/// Stores `position` as `task`'s checkpoint.
pub(crate) async fn write_checkpoint(
    target: &Target,
    task: &str,
    position: &Position,
) -> Result<()> {
    let client = target.connect().await?;
    client
        .batch_execute(CREATE_CHECKPOINT_TABLE)
        .await
        .map_err(|e| {
            target.error(
                e,
                "cannot create the checkpoint table public.ferry_checkpoints",
            )
        })?;
    let time: Option<i64> = None;
    client
        .execute(UPSERT_CHECKPOINT, &[&task, &position.to_hex(), &time])
        .await
        .map_err(|e| target.error(e, "writing the task's checkpoint"))?;
    Ok(())
}

/// Removes `task`'s checkpoint; whether there was one.
pub(crate) async fn remove_checkpoint(target: &Target, task: &str) -> Result<bool> {
    let Some(client) = checkpoint_client(target).await? else {
        return Ok(false);
    };
    let n = client
        .execute(
            "DELETE FROM public.ferry_checkpoints WHERE task = $1",
            &[&task],
        )
        .await
        .map_err(|e| target.error(e, "removing the task's checkpoint"))?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Column;

    fn schema(key: bool) -> TableSchema {
        let col = |name: &str| Column::nullable(name, DataType::Int32, "integer");
        let mut s = TableSchema::new(TableId::new("s", "t"), vec![col("id"), col("v")]);
        if key {
            s.primary_key = vec!["id".into()];
        }
        s
    }

    #[test]
    fn statements_match_by_key_or_by_every_column() {
        let keyed = schema(true);
        let update = Shape {
            table: keyed.id.clone(),
            op: Kind::Update,
            set: vec![false, true],
            matched: vec![true, false],
            rows: 1,
        };
        assert_eq!(
            statement_sql(&keyed, &update),
            r#"UPDATE "s"."t" SET "v" = $1 WHERE "id" = $2"#
        );
        let plain = schema(false);
        let delete = Shape {
            table: plain.id.clone(),
            op: Kind::Delete,
            set: vec![],
            matched: vec![true, true],
            rows: 1,
        };
        assert_eq!(
            statement_sql(&plain, &delete),
            r#"DELETE FROM "s"."t" WHERE ctid = (SELECT ctid FROM "s"."t" WHERE "id" IS NOT DISTINCT FROM $1 AND "v" IS NOT DISTINCT FROM $2 LIMIT 1)"#
        );
        let insert = Shape {
            table: keyed.id.clone(),
            op: Kind::Insert,
            set: vec![true, true],
            matched: vec![],
            rows: 2,
        };
        assert_eq!(
            statement_sql(&keyed, &insert),
            r#"INSERT INTO "s"."t" ("id", "v") VALUES ($1, $2), ($3, $4)"#
        );
    }
}
