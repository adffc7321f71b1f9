//! Closed enums over the connectors compiled in ([`AnySource`], [`AnySink`],
//! [`AnyWriter`]), one arm per connector behind its cargo feature, built from a URL
//! whose scheme picks the connector (DESIGN.md §4).
//!
//! Adding a connector: a variant in each enum and an arm in `dispatch!`, the two
//! `connect_timeout` functions, `AnySink::open_writer` and `AnySink::ddl_only`,
//! behind its cargo feature (and in the `not(any(...))` lists below).

// A build without any connector compiles (the enums are empty) but does nothing.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql")),
    allow(unused_variables, unused_imports, unreachable_patterns, dead_code)
)]

use crate::config::{EndpointConfig, redact_url, url_scheme};
use ferry_core::{
    ApplyTable, BadDataPolicy, Batch, BatchSender, Catalog, ChangeApplier, Error, ErrorKind,
    Finding, LoadReport, Partition, Position, Result, SchemaDdl, Sink, Snapshot, Source,
    TableFilter, TablePrep, TableSchema, TableWriter,
};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting to an endpoint may take before the task fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connector a URL scheme selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// MySQL (`mysql://`).
    Mysql,
    /// MariaDB (`mariadb://`).
    Mariadb,
    /// SQLite (`sqlite://`).
    Sqlite,
    /// MongoDB (`mongodb://`).
    Mongodb,
    /// Amazon S3 (`s3://`).
    S3,
    /// Amazon Kinesis (`kinesis://`).
    Kinesis,
    /// Amazon DynamoDB (`dynamodb://`).
    Dynamodb,
    /// Apache Kafka (`kafka://`).
    Kafka,
}

/// Every scheme the task file accepts (DESIGN.md §5a).
pub const SCHEMES: &[(&str, Connector)] = &[
    ("postgres", Connector::Postgres),
    ("postgresql", Connector::Postgres),
    ("mysql", Connector::Mysql),
    ("mariadb", Connector::Mariadb),
    ("sqlite", Connector::Sqlite),
    ("mongodb", Connector::Mongodb),
    ("s3", Connector::S3),
    ("kinesis", Connector::Kinesis),
    ("dynamodb", Connector::Dynamodb),
    ("kafka", Connector::Kafka),
];

/// Which side of the task an endpoint is on (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `[source]`.
    Source,
    /// `[target]`.
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// The connector for `url`'s scheme; a config error (listing the valid schemes) for
/// an unknown one, an unsupported error for a known scheme whose connector is not
/// built yet (or not compiled into this binary).
pub fn connector_for(side: Side, url: &str) -> Result<Connector> {
    let scheme = url_scheme(url).to_ascii_lowercase();
    let connector = SCHEMES
        .iter()
        .find(|(s, _)| *s == scheme)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let valid: Vec<String> = SCHEMES.iter().map(|(s, _)| format!("{s}://")).collect();
            let what = if scheme.is_empty() {
                "has no scheme".to_string()
            } else {
                format!("has unknown scheme `{scheme}://`")
            };
            Error::config(format!(
                "{side} url {} {what}; valid schemes: {}",
                redact_url(url),
                valid.join(", ")
            ))
        })?;
    match connector {
        #[cfg(feature = "postgres")]
        Connector::Postgres => Ok(connector),
        #[cfg(feature = "mysql")]
        Connector::Mysql | Connector::Mariadb => Ok(connector),
        _ => Err(Error::unsupported(format!(
            "{side}: connector for scheme {scheme}:// is not built yet{}",
            if connector == Connector::Postgres {
                " (this binary was compiled without the `postgres` feature)"
            } else {
                ""
            }
        ))),
    }
}

fn check_no_options(side: Side, endpoint: &EndpointConfig, connector: &str) -> Result<()> {
    match endpoint.options.keys().next() {
        None => Ok(()),
        Some(key) => Err(Error::config(format!(
            "{side}.options.{key}: the {connector} connector takes no options yet"
        ))),
    }
}

/// The `host:port` part of a URL (after `@`, before the path).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Runs `connect` with [`CONNECT_TIMEOUT`] (or `timeout`), naming the endpoint by its
/// redacted URL in every error.
async fn connect_with<T>(
    side: Side,
    url: &str,
    timeout: Duration,
    connect: impl Future<Output = Result<T>>,
) -> Result<T> {
    let redacted = redact_url(url);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(endpoint)) => Ok(endpoint),
        // Connectors name their endpoint (without the password) in their own errors.
        Ok(Err(e)) if e.message().contains(host_of(&redacted)) => Err(e.context(side)),
        Ok(Err(e)) => Err(e.context(format!("{side} {redacted}"))),
        Err(_) => Err(Error::new(
            ErrorKind::Connection,
            format!(
                "{side} {redacted}: could not connect within {} s",
                timeout.as_secs()
            ),
        )),
    }
}

/// A `[source.options]`/`[target.options]` value as the MySQL connector reads it.
#[cfg(feature = "mysql")]
fn mysql_option(value: &toml::Value) -> ferry_mysql::OptionValue<'_> {
    match value {
        toml::Value::Boolean(b) => ferry_mysql::OptionValue::Bool(*b),
        toml::Value::Integer(n) => ferry_mysql::OptionValue::Int(*n),
        toml::Value::String(s) => ferry_mysql::OptionValue::Str(s),
        _ => ferry_mysql::OptionValue::Other,
    }
}

/// `[target.options]` of a MySQL/MariaDB target.
#[cfg(feature = "mysql")]
fn mysql_sink_options(endpoint: &EndpointConfig) -> Result<ferry_mysql::SinkOptions> {
    let mut options = ferry_mysql::SinkOptions::default();
    for (key, value) in &endpoint.options {
        options.set(key, mysql_option(value))?;
    }
    Ok(options)
}

/// `[target.options]` of a PostgreSQL target.
#[cfg(feature = "postgres")]
fn pg_sink_options(endpoint: &EndpointConfig) -> Result<ferry_postgres::SinkOptions> {
    let mut options = ferry_postgres::SinkOptions::default();
    for (key, value) in &endpoint.options {
        let text = value.as_str().ok_or_else(|| {
            Error::config(format!(
                "target.options.{key}: expected a string, found {value}"
            ))
        })?;
        options.set(key, text)?;
    }
    Ok(options)
}

/// A source of any compiled-in connector.
// One per task (writers: one per partition in flight), so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnySource {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(ferry_postgres::PgSource),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    Mysql(ferry_mysql::MySqlSource),
}

/// A sink of any compiled-in connector.
// One per task (writers: one per partition in flight), so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnySink {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(ferry_postgres::PgSink),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    Mysql(ferry_mysql::MySqlSink),
}

/// The table writer of an [`AnySink`].
// One per task (writers: one per partition in flight), so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnyWriter {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(<ferry_postgres::PgSink as Sink>::Writer),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    Mysql(<ferry_mysql::MySqlSink as Sink>::Writer),
}

/// The change applier of an [`AnySink`].
#[allow(clippy::large_enum_variant)]
pub enum AnyApplier {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(<ferry_postgres::PgSink as Sink>::Applier),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    Mysql(<ferry_mysql::MySqlSink as Sink>::Applier),
}

impl std::fmt::Debug for AnySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnySource({})", self.engine())
    }
}

impl std::fmt::Debug for AnySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnySink({})", self.engine())
    }
}

/// `match` over every arm of an `Any*` enum, binding the inner value to `$v`.
macro_rules! dispatch {
    ($enum:ident, $value:expr, $v:ident => $body:expr) => {
        match $value {
            #[cfg(feature = "postgres")]
            $enum::Postgres($v) => $body,
            #[cfg(feature = "mysql")]
            $enum::Mysql($v) => $body,
            #[cfg(not(any(feature = "postgres", feature = "mysql")))]
            _ => unreachable!("no connector is compiled in, so no endpoint exists"),
        }
    };
}

impl AnySource {
    /// Connects to the source endpoint (bounded by [`CONNECT_TIMEOUT`]).
    pub async fn connect(endpoint: &EndpointConfig) -> Result<Self> {
        Self::connect_timeout(endpoint, CONNECT_TIMEOUT).await
    }

    /// Connects for a task that reads `parallelism` partitions at once: a source
    /// that holds its snapshot on a fixed set of connections (MySQL's
    /// `snapshot-connections`) gets that many unless its options say otherwise.
    pub async fn connect_for_task(endpoint: &EndpointConfig, parallelism: usize) -> Result<Self> {
        Self::connect_inner(endpoint, CONNECT_TIMEOUT, Some(parallelism)).await
    }

    /// Connects with an explicit timeout.
    pub async fn connect_timeout(endpoint: &EndpointConfig, timeout: Duration) -> Result<Self> {
        Self::connect_inner(endpoint, timeout, None).await
    }

    async fn connect_inner(
        endpoint: &EndpointConfig,
        timeout: Duration,
        parallelism: Option<usize>,
    ) -> Result<Self> {
        let url = endpoint.url.expose_secret();
        match connector_for(Side::Source, url)? {
            #[cfg(feature = "postgres")]
            Connector::Postgres => {
                check_no_options(Side::Source, endpoint, "postgres")?;
                connect_with(
                    Side::Source,
                    url,
                    timeout,
                    ferry_postgres::PgSource::connect(url),
                )
                .await
                .map(AnySource::Postgres)
            }
            #[cfg(feature = "mysql")]
            Connector::Mysql | Connector::Mariadb => {
                let mut options = ferry_mysql::SourceOptions::default();
                if let Some(workers) = parallelism {
                    let workers = i64::try_from(workers.clamp(1, 256)).unwrap_or(256);
                    options.set(
                        "snapshot-connections",
                        ferry_mysql::OptionValue::Int(workers),
                    )?;
                }
                for (key, value) in &endpoint.options {
                    options.set(key, mysql_option(value))?;
                }
                connect_with(
                    Side::Source,
                    url,
                    timeout,
                    ferry_mysql::MySqlSource::connect_with(url, options),
                )
                .await
                .map(AnySource::Mysql)
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::internal(format!("no source arm for {other:?}"))),
        }
    }
}

impl AnySink {
    /// Connects to the target endpoint (bounded by [`CONNECT_TIMEOUT`]).
    pub async fn connect(endpoint: &EndpointConfig) -> Result<Self> {
        Self::connect_timeout(endpoint, CONNECT_TIMEOUT).await
    }

    /// Connects with an explicit timeout.
    pub async fn connect_timeout(endpoint: &EndpointConfig, timeout: Duration) -> Result<Self> {
        let url = endpoint.url.expose_secret();
        match connector_for(Side::Target, url)? {
            #[cfg(feature = "postgres")]
            Connector::Postgres => {
                let options = pg_sink_options(endpoint)?;
                connect_with(
                    Side::Target,
                    url,
                    timeout,
                    ferry_postgres::PgSink::connect(url),
                )
                .await
                .map(|sink| AnySink::Postgres(sink.with_options(options)))
            }
            #[cfg(feature = "mysql")]
            Connector::Mysql | Connector::Mariadb => {
                let options = mysql_sink_options(endpoint)?;
                connect_with(
                    Side::Target,
                    url,
                    timeout,
                    ferry_mysql::MySqlSink::connect_with(url, options),
                )
                .await
                .map(AnySink::Mysql)
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::internal(format!("no sink arm for {other:?}"))),
        }
    }
}

impl AnySink {
    /// A sink of the target's connector that does not connect: it converts schemas
    /// and prints DDL ([`Sink::schema_ddl`]) for `ferry schema`, and refuses
    /// everything else. A connector that cannot do this offline is unsupported here.
    pub fn ddl_only(endpoint: &EndpointConfig) -> Result<Self> {
        let url = endpoint.url.expose_secret();
        match connector_for(Side::Target, url)? {
            #[cfg(feature = "postgres")]
            Connector::Postgres => {
                let options = pg_sink_options(endpoint)?;
                Ok(AnySink::Postgres(
                    ferry_postgres::PgSink::ddl_only().with_options(options),
                ))
            }
            #[cfg(feature = "mysql")]
            Connector::Mysql | Connector::Mariadb => {
                mysql_sink_options(endpoint)?;
                Ok(AnySink::Mysql(ferry_mysql::MySqlSink::ddl_only(url)?))
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::unsupported(format!(
                "target: the {other:?} connector cannot print DDL without connecting yet"
            ))),
        }
    }
}

impl Source for AnySource {
    fn engine(&self) -> &'static str {
        dispatch!(AnySource, self, s => s.engine())
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Catalog> {
        dispatch!(AnySource, self, s => s.discover(filter).await)
    }

    async fn begin_snapshot(&self) -> Result<Snapshot> {
        dispatch!(AnySource, self, s => s.begin_snapshot().await)
    }

    async fn partitions(
        &self,
        snapshot: &Snapshot,
        table: &TableSchema,
        max: usize,
    ) -> Result<Vec<Partition>> {
        dispatch!(AnySource, self, s => s.partitions(snapshot, table, max).await)
    }

    async fn read_partition(
        &self,
        snapshot: &Snapshot,
        table: Arc<TableSchema>,
        partition: Partition,
        policy: BadDataPolicy,
        out: BatchSender,
    ) -> Result<LoadReport> {
        dispatch!(AnySource, self, s => s.read_partition(snapshot, table, partition, policy, out).await)
    }

    async fn end_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        dispatch!(AnySource, self, s => s.end_snapshot(snapshot).await)
    }

    async fn begin_capture_snapshot(&self, task: &str, catalog: &Catalog) -> Result<Snapshot> {
        dispatch!(AnySource, self, s => s.begin_capture_snapshot(task, catalog).await)
    }

    async fn capture_position(&self, task: &str, catalog: &Catalog) -> Result<Position> {
        dispatch!(AnySource, self, s => s.capture_position(task, catalog).await)
    }

    async fn start_position(&self, task: &str, catalog: &Catalog, text: &str) -> Result<Position> {
        dispatch!(AnySource, self, s => s.start_position(task, catalog, text).await)
    }

    async fn stream_changes(
        &self,
        task: &str,
        from: Position,
        catalog: &Catalog,
        out: BatchSender,
    ) -> Result<()> {
        dispatch!(AnySource, self, s => s.stream_changes(task, from, catalog, out).await)
    }

    async fn acknowledge(&self, task: &str, durable: &Position) -> Result<()> {
        dispatch!(AnySource, self, s => s.acknowledge(task, durable).await)
    }

    fn describe_position(&self, position: &Position) -> String {
        dispatch!(AnySource, self, s => s.describe_position(position))
    }

    async fn cleanup_capture(&self, task: &str) -> Result<Vec<String>> {
        dispatch!(AnySource, self, s => s.cleanup_capture(task).await)
    }

    async fn assess(&self, catalog: &Catalog) -> Result<Vec<Finding>> {
        dispatch!(AnySource, self, s => s.assess(catalog).await)
    }
}

impl Sink for AnySink {
    type Writer = AnyWriter;
    type Applier = AnyApplier;

    fn engine(&self) -> &'static str {
        dispatch!(AnySink, self, s => s.engine())
    }

    fn convert_schema(
        &self,
        source_engine: &str,
        schema: &TableSchema,
    ) -> Result<(TableSchema, Vec<Finding>)> {
        dispatch!(AnySink, self, s => s.convert_schema(source_engine, schema))
    }

    async fn prepare_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        dispatch!(AnySink, self, s => s.prepare_table(schema, prep).await)
    }

    async fn open_writer(
        &self,
        schema: Arc<TableSchema>,
        policy: BadDataPolicy,
    ) -> Result<AnyWriter> {
        match self {
            #[cfg(feature = "postgres")]
            AnySink::Postgres(s) => s.open_writer(schema, policy).await.map(AnyWriter::Postgres),
            #[cfg(feature = "mysql")]
            AnySink::Mysql(s) => s.open_writer(schema, policy).await.map(AnyWriter::Mysql),
            #[cfg(not(any(feature = "postgres", feature = "mysql")))]
            _ => unreachable!("no connector is compiled in, so no endpoint exists"),
        }
    }

    async fn finish_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        dispatch!(AnySink, self, s => s.finish_table(schema, prep).await)
    }

    async fn add_foreign_keys(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        dispatch!(AnySink, self, s => s.add_foreign_keys(schema, prep).await)
    }

    fn schema_ddl(&self, schema: &TableSchema) -> Result<SchemaDdl> {
        dispatch!(AnySink, self, s => s.schema_ddl(schema))
    }

    async fn assess(&self, schemas: &[TableSchema], prep: TablePrep) -> Result<Vec<Finding>> {
        dispatch!(AnySink, self, s => s.assess(schemas, prep).await)
    }

    async fn open_applier(&self, task: &str, tables: Vec<ApplyTable>) -> Result<AnyApplier> {
        match self {
            #[cfg(feature = "postgres")]
            AnySink::Postgres(s) => s.open_applier(task, tables).await.map(AnyApplier::Postgres),
            #[cfg(feature = "mysql")]
            AnySink::Mysql(s) => s.open_applier(task, tables).await.map(AnyApplier::Mysql),
            #[cfg(not(any(feature = "postgres", feature = "mysql")))]
            _ => unreachable!("no connector is compiled in, so no endpoint exists"),
        }
    }

    async fn read_checkpoint(&self, task: &str) -> Result<Option<Position>> {
        dispatch!(AnySink, self, s => s.read_checkpoint(task).await)
    }

    async fn write_checkpoint(&self, task: &str, position: &Position) -> Result<()> {
        dispatch!(AnySink, self, s => s.write_checkpoint(task, position).await)
    }

    async fn remove_checkpoint(&self, task: &str) -> Result<bool> {
        dispatch!(AnySink, self, s => s.remove_checkpoint(task).await)
    }
}

impl ChangeApplier for AnyApplier {
    async fn apply(&mut self, batch: Batch) -> Result<()> {
        dispatch!(AnyApplier, self, a => a.apply(batch).await)
    }

    async fn commit(&mut self) -> Result<Option<Position>> {
        dispatch!(AnyApplier, self, a => a.commit().await)
    }
}

impl TableWriter for AnyWriter {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        dispatch!(AnyWriter, self, w => w.write(batch).await)
    }

    async fn finish(self) -> Result<LoadReport> {
        dispatch!(AnyWriter, self, w => w.finish().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TaskConfig;
    use std::path::Path;

    fn endpoint(url: &str, options: &str) -> EndpointConfig {
        let text =
            format!("[source]\nurl = \"{url}\"\n{options}\n[target]\nurl = \"postgres://h/db\"\n");
        TaskConfig::parse(&text, Path::new("t.toml"), |_| None)
            .expect("valid config")
            .source
    }

    #[test]
    fn schemes_pick_connectors() {
        assert_eq!(
            connector_for(Side::Source, "postgres://h/db").ok(),
            Some(Connector::Postgres)
        );
        assert_eq!(
            connector_for(Side::Target, "PostgreSQL://h/db").ok(),
            Some(Connector::Postgres)
        );
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_and_mariadb_schemes_pick_the_mysql_connector() {
        assert_eq!(
            connector_for(Side::Source, "mysql://u:pw@h/db").ok(),
            Some(Connector::Mysql)
        );
        assert_eq!(
            connector_for(Side::Target, "MariaDB://u:pw@h/db").ok(),
            Some(Connector::Mariadb)
        );
    }

    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_options_are_checked() {
        let ep = endpoint("mysql://u@127.0.0.1:1/db", "[source.options]\nfoo = 1\n");
        let e = AnySource::connect(&ep).await.expect_err("unknown option");
        assert!(e.to_string().contains("source.options.foo"), "{e}");
    }

    #[test]
    fn known_but_unbuilt_schemes_say_so() {
        for scheme in ["sqlite", "mongodb", "s3", "kinesis", "dynamodb", "kafka"] {
            let e = connector_for(Side::Source, &format!("{scheme}://u:pw@h/x"))
                .expect_err("not built");
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(
                e.message().contains(&format!(
                    "connector for scheme {scheme}:// is not built yet"
                )),
                "{e}"
            );
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn unknown_scheme_lists_valid_ones_without_password() {
        let e = connector_for(Side::Target, "oracle://u:hunter2@h/x").expect_err("unknown");
        assert_eq!(e.kind(), ErrorKind::Config);
        let msg = e.to_string();
        assert!(msg.contains("oracle://"), "{msg}");
        assert!(
            msg.contains("postgresql://") && msg.contains("kafka://"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        let e = connector_for(Side::Target, "h/x").expect_err("no scheme");
        assert!(e.to_string().contains("has no scheme"), "{e}");
    }

    #[tokio::test]
    async fn options_are_not_silently_ignored() {
        let ep = endpoint("postgres://h/db", "[source.options]\nfoo = 1\n");
        let e = AnySource::connect(&ep).await.expect_err("options rejected");
        assert!(e.to_string().contains("source.options.foo"), "{e}");
    }

    #[tokio::test]
    async fn connect_timeout_is_bounded_and_redacted() {
        let started = std::time::Instant::now();
        let e = connect_with(
            Side::Source,
            "postgres://u:hunter2@10.255.255.1/db",
            Duration::from_millis(50),
            std::future::pending::<Result<()>>(),
        )
        .await
        .expect_err("times out");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(e.kind(), ErrorKind::Connection);
        let msg = e.to_string();
        assert!(msg.contains("postgres://u:***@10.255.255.1/db"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
