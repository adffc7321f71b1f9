//! `cargo xtask bench`, MySQL → PostgreSQL section: Ferry's full load from the
//! kit's MariaDB into the kit's PostgreSQL against `pgloader` (Debian's package),
//! measured in the same run on the same servers (issue 3, DESIGN.md §8).
//!
//! The source is MariaDB database [`SOURCE_DB`]: `accounts`, shaped like pgbench's
//! accounts (`INT` key, two `INT`s, `CHAR(84)`), 100,000 rows per scale unit, and
//! `wide`, a table of mixed MySQL types with a secondary index, 20,000 rows per
//! scale unit (6,000,000 rows in all at the default scale 50), generated server-side
//! from MariaDB's sequence engine. A later run reuses it when its tables, indexes
//! and row counts are as expected.
//!
//! Each method copies it into a fresh PostgreSQL database and must end with the
//! source's row count, a primary key and as many indexes as the source in every
//! table (checked in whatever schema the tool chose: both put the tables in a
//! schema named after the MySQL database), so the wall-clock times include
//! creating the tables and building the indexes.
//!
//! pgloader runs from a load command file with `workers` = `FERRY_BENCH_PARALLELISM`
//! and `concurrency` = `FERRY_BENCH_PGLOADER_CONCURRENCY` (default 1, pgloader's
//! own default) and its default casting rules.

use std::env;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::{MariaService, PgService};

use super::{
    Config, Section, SectionReport, command_line, commit, cpu_busy_percent, cpu_model,
    load_average, memory, positive, rate,
};
use crate::Result;
use crate::common::{self, TaskUrls, quote_ident, quote_literal, thousands, toml_string};

/// The MariaDB source database (and so the PostgreSQL schema both tools load into).
const SOURCE_DB: &str = "ferry_bench_mysql";

/// What the issue asks of Ferry against pgloader (ratio of rows/s).
const PGLOADER_TARGET: f64 = 3.0;

/// Rows per `INSERT ... SELECT` while generating the source.
const CHUNK_ROWS: u64 = 1_000_000;

/// One table of the source.
struct SourceTable {
    name: &'static str,
    /// `CREATE TABLE`, keys and indexes included.
    ddl: &'static str,
    /// `INSERT ... SELECT ... FROM seq_{from}_to_{to}`.
    insert: &'static str,
    rows_per_scale: u64,
    /// Indexes, the primary key included.
    indexes: u64,
}

const TABLES: [SourceTable; 2] = [
    SourceTable {
        name: "accounts",
        ddl: "CREATE TABLE accounts (
    aid      INT NOT NULL,
    bid      INT,
    abalance INT,
    filler   CHAR(84),
    PRIMARY KEY (aid)
) ENGINE = InnoDB",
        insert: "INSERT INTO accounts
SELECT seq, 1 + (seq - 1) DIV 100000, 0, '' FROM seq_{from}_to_{to}",
        rows_per_scale: 100_000,
        indexes: 1,
    },
    SourceTable {
        name: "wide",
        ddl: "CREATE TABLE wide (
    id         BIGINT NOT NULL,
    amount     DECIMAL(14, 4),
    label      VARCHAR(100),
    created_at DATETIME(6),
    updated_at TIMESTAMP NULL,
    payload    JSON,
    ref        BINARY(16),
    flag       TINYINT(1),
    score      DOUBLE,
    data       BLOB,
    PRIMARY KEY (id),
    KEY wide_created_at_idx (created_at)
) ENGINE = InnoDB",
        insert: "INSERT INTO wide
SELECT seq,
       CASE WHEN seq % 10 = 0 THEN NULL ELSE ((seq * 7919) % 100000000) / 10000.0 - 5000 END,
       CONCAT('label ', seq, ' ', MD5(seq)),
       TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (seq * 1500000) MICROSECOND,
       FROM_UNIXTIME(1577836800 + seq),
       CASE WHEN seq % 7 = 0 THEN NULL
            ELSE JSON_OBJECT('id', seq, 'kind', ELT(1 + seq % 3, 'a', 'b', 'c'),
                             'tags', JSON_ARRAY(seq % 5, seq % 11), 'ok', seq % 2 = 0) END,
       UNHEX(MD5(CONCAT('ref', seq))),
       seq % 2 = 0,
       seq / 7e0,
       CASE WHEN seq % 4 = 0 THEN NULL ELSE UNHEX(MD5(seq)) END
FROM seq_{from}_to_{to}",
        rows_per_scale: 20_000,
        indexes: 2,
    },
];

/// The source's total rows at `config`'s scale.
pub(super) fn expected_rows(config: &Config) -> u64 {
    TABLES.iter().map(|t| t.rows_per_scale * config.scale).sum()
}

/// Installs what this section needs (MariaDB server and client, or just the client
/// for `FERRY_TEST_MARIADB_URL`; pgloader) when run as root; returns pgloader's path.
pub(super) fn prerequisites() -> Result<PathBuf> {
    crate::ensure_test_prerequisites()?;
    crate::ensure_pgloader()
}

// ---------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------

/// Generates the source database, or reuses a complete one of the same scale.
pub(super) fn prepare_source(maria: &MariaService, config: &Config) -> Result<()> {
    let expected: Vec<(String, u64)> = TABLES
        .iter()
        .map(|t| (t.name.to_owned(), t.rows_per_scale * config.scale))
        .collect();
    if !config.fresh {
        match source_counts(maria) {
            Ok(counts) if counts == expected && source_indexes(maria)? == expected_indexes() => {
                eprintln!(
                    "xtask: reusing MariaDB database {SOURCE_DB} from an earlier run (scale {}); \
                     FERRY_BENCH_FRESH=1 regenerates it",
                    config.scale
                );
                return Ok(());
            }
            _ => {}
        }
    }
    let started = Instant::now();
    eprintln!(
        "xtask: generating MariaDB database {SOURCE_DB}: {}",
        expected
            .iter()
            .map(|(t, n)| format!("{t} ({} rows)", thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    maria.drop_database(SOURCE_DB)?;
    maria.sql(
        "",
        &format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            my_ident(SOURCE_DB)
        ),
    )?;
    // The kit's server writes a binary log (for CDC): generating millions of rows
    // into it would only cost time and disk, so skip it where allowed.
    let mut session = String::new();
    if maria.sql("", "SET SESSION sql_log_bin = 0").is_ok() {
        session.push_str("SET SESSION sql_log_bin = 0;\n");
    }
    session.push_str("SET SESSION time_zone = '+00:00';\n");
    for table in &TABLES {
        maria.sql(SOURCE_DB, &format!("{};", table.ddl))?;
    }
    // Both tables at once (one server thread each).
    let results: Vec<std::result::Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = TABLES
            .iter()
            .map(|table| {
                let session = &session;
                scope.spawn(move || fill(maria, table, config.scale, session))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a source generator thread panicked".to_owned()))
            })
            .collect()
    });
    for result in results {
        result?;
    }
    let names: Vec<String> = TABLES.iter().map(|t| my_ident(t.name)).collect();
    maria.sql(
        SOURCE_DB,
        &format!("ANALYZE TABLE {} PERSISTENT FOR ALL;", names.join(", ")),
    )?;
    let counts = source_counts(maria)?;
    if counts != expected {
        return Err(format!(
            "generating {SOURCE_DB} went wrong: expected {expected:?} rows, found {counts:?}"
        )
        .into());
    }
    eprintln!(
        "xtask: MariaDB source generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Fills `table` with its rows, [`CHUNK_ROWS`] per statement.
fn fill(
    maria: &MariaService,
    table: &SourceTable,
    scale: u64,
    session: &str,
) -> std::result::Result<(), String> {
    let rows = table.rows_per_scale * scale;
    let mut from = 1;
    while from <= rows {
        let to = (from + CHUNK_ROWS - 1).min(rows);
        let insert = table
            .insert
            .replace("{from}", &from.to_string())
            .replace("{to}", &to.to_string());
        maria
            .sql(SOURCE_DB, &format!("{session}{insert};"))
            .map_err(|e| format!("filling {SOURCE_DB}.{}: {e}", table.name))?;
        from = to + 1;
    }
    Ok(())
}

/// Exact row counts of the source's tables, in [`TABLES`] order (an error when a
/// table or the database is missing).
fn source_counts(maria: &MariaService) -> Result<Vec<(String, u64)>> {
    let sql = TABLES
        .iter()
        .map(|t| {
            format!(
                "SELECT {}, COUNT(*) FROM {}",
                quote_literal(t.name),
                my_ident(t.name)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let out = maria.sql(SOURCE_DB, &format!("{sql};"))?;
    parse_tab_pairs(&out)
}

/// The source's tables with their number of indexes (the primary key included),
/// by name: every table of the database, so a stray one shows.
fn source_indexes(maria: &MariaService) -> Result<Vec<(String, u64)>> {
    let out = maria.sql(
        "",
        &format!(
            "SELECT t.TABLE_NAME, (SELECT COUNT(DISTINCT s.INDEX_NAME) \
             FROM information_schema.STATISTICS s \
             WHERE s.TABLE_SCHEMA = t.TABLE_SCHEMA AND s.TABLE_NAME = t.TABLE_NAME) \
             FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = {} ORDER BY 1;",
            quote_literal(SOURCE_DB)
        ),
    )?;
    parse_tab_pairs(&out)
}

/// What [`source_indexes`] returns for a complete source.
fn expected_indexes() -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = TABLES
        .iter()
        .map(|t| (t.name.to_owned(), t.indexes))
        .collect();
    v.sort();
    v
}

/// Lines of `name<TAB>number`.
fn parse_tab_pairs(out: &str) -> Result<Vec<(String, u64)>> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, n) = l
                .split_once('\t')
                .ok_or_else(|| format!("unexpected mariadb output line: {l:?}"))?;
            let n = n
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("not a number in mariadb output line: {l:?}"))?;
            Ok((name.to_owned(), n))
        })
        .collect()
}

/// A MariaDB identifier in backticks.
fn my_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

// ---------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------

/// The ways of copying the source that this section compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Ferry,
    Pgloader,
}

const METHODS: [Method; 2] = [Method::Ferry, Method::Pgloader];

/// How the methods run: parallelism settings, for labels and commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    /// Ferry's `parallelism` and pgloader's `workers`.
    parallelism: u64,
    /// pgloader's `concurrency`.
    concurrency: u64,
}

impl Method {
    fn label(self, s: Settings) -> String {
        match self {
            Method::Ferry => format!("ferry full load (parallelism {})", s.parallelism),
            Method::Pgloader => format!(
                "pgloader (workers {}, concurrency {})",
                s.parallelism, s.concurrency
            ),
        }
    }

    /// The target database of this method.
    fn database(self) -> &'static str {
        match self {
            Method::Ferry => "ferry_bench_my_ferry",
            Method::Pgloader => "ferry_bench_my_pgloader",
        }
    }

    /// The method as shell commands, for the report.
    fn commands(self, s: Settings) -> String {
        match self {
            Method::Ferry => "ferry run task.toml --no-progress".to_owned(),
            Method::Pgloader => format!(
                "pgloader --logfile pgloader.log ferry_bench.load\n\n\
                 # ferry_bench.load (URLs from the environment):\n{}",
                pgloader_load_file(s)
            ),
        }
    }
}

/// The environment variables holding the URLs of pgloader's load file.
const PGLOADER_SOURCE_ENV: &str = "FERRY_XTASK_MYSQL_URL";
const PGLOADER_TARGET_ENV: &str = "FERRY_XTASK_PG_URL";

/// pgloader's load command file: the whole database, default casting rules and
/// options, the parallelism set.
fn pgloader_load_file(s: Settings) -> String {
    format!(
        "LOAD DATABASE\n  FROM {{{{{PGLOADER_SOURCE_ENV}}}}}\n  INTO {{{{{PGLOADER_TARGET_ENV}}}}}\n  \
         WITH workers = {}, concurrency = {};\n",
        s.parallelism, s.concurrency
    )
}

/// A full-load task file: every table of the source database, drop-and-create.
fn ferry_task(urls: &TaskUrls, parallelism: u64, state_dir: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `cargo xtask bench`; rewritten on every run."
    );
    let _ = writeln!(s, "[source]\nurl = {}\n", toml_string(&urls.source));
    let _ = writeln!(s, "[target]\nurl = {}\n", toml_string(&urls.target));
    let _ = writeln!(s, "[task]");
    let _ = writeln!(s, "mode = \"full-load\"");
    let _ = writeln!(s, "table-prep = \"drop-and-create\"");
    let _ = writeln!(s, "include = [{}]", toml_string(&format!("{SOURCE_DB}.*")));
    let _ = writeln!(s, "parallelism = {parallelism}");
    let _ = writeln!(
        s,
        "state-dir = {}",
        toml_string(&state_dir.display().to_string())
    );
    s
}

/// The URLs of the Ferry task: written into the file when they hold no secret (the
/// kit's servers: PostgreSQL without a password, MariaDB with the test password),
/// otherwise `${VAR}` references with the URLs in the environment.
fn ferry_urls(maria: &MariaService, pg: &PgService, target_db: &str) -> TaskUrls {
    const SOURCE: &str = "FERRY_XTASK_SOURCE_URL";
    const TARGET: &str = "FERRY_XTASK_TARGET_URL";
    let mut urls = TaskUrls {
        source: maria.url(SOURCE_DB),
        target: pg.url(target_db),
        env: Vec::new(),
    };
    if !maria.is_kit_managed() && maria.redacted_url("") != maria.url("") {
        urls.env.push((SOURCE.to_owned(), urls.source.clone()));
        urls.source = format!("${{{SOURCE}}}");
    }
    if pg.redacted_url("") != pg.url("") {
        urls.env.push((TARGET.to_owned(), urls.target.clone()));
        urls.target = format!("${{{TARGET}}}");
    }
    urls
}

/// `postgres://...` as pgloader wants it (`postgresql://`).
fn pgloader_pg_url(url: &str) -> String {
    match url.strip_prefix("postgres://") {
        Some(rest) => format!("postgresql://{rest}"),
        None => url.to_owned(),
    }
}

/// What this section runs against.
pub(super) struct Env<'a> {
    pub pg: &'a PgService,
    pub maria: &'a MariaService,
    pub ferry: &'a Path,
    pub pgloader: &'a Path,
    pub root: &'a Path,
    pub out_dir: &'a Path,
}

/// One method's results over the rounds.
type Outcome = super::Outcome<Method>;
use super::Run;

/// Everything the report says about the run besides the outcomes.
#[derive(Debug, Clone)]
struct Info {
    date: String,
    cpus: usize,
    cpu_model: String,
    memory: String,
    pg_version: String,
    maria_version: String,
    /// `@@innodb_buffer_pool_size` in bytes.
    buffer_pool: Option<u64>,
    pgloader_version: String,
    commit: String,
    busy: Option<u32>,
    load_average: String,
    scale: u64,
    settings: Settings,
    runs: u64,
    tables: Vec<(String, u64)>,
}

impl Info {
    fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    fn load(&self) -> String {
        let busy = self.busy.map_or_else(
            || "unknown CPU use".to_owned(),
            |b| format!("{b}% CPU busy"),
        );
        format!("{busy}, load average {}", self.load_average)
    }
}

/// The MySQL → PostgreSQL section: both methods, `config.runs` rounds.
pub(super) fn section(env: &Env<'_>, config: &Config) -> Result<SectionReport> {
    let settings = Settings {
        parallelism: config.parallelism,
        concurrency: positive(
            "FERRY_BENCH_PGLOADER_CONCURRENCY",
            env::var("FERRY_BENCH_PGLOADER_CONCURRENCY").ok().as_deref(),
            1,
        )?,
    };
    let tables = source_counts(env.maria)?;
    let pgloader_version = Command::new(env.pgloader)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "unknown version".to_owned());
    let maria_vars = env
        .maria
        .sql("", "SELECT VERSION(), @@innodb_buffer_pool_size;")?;
    let (maria_version, buffer_pool) = match maria_vars.split_once('\t') {
        Some((v, b)) => (v.to_owned(), b.trim().parse().ok()),
        None => (maria_vars.clone(), None),
    };
    println!("\n=== MySQL → PostgreSQL full load");
    let info = Info {
        date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpu_model(),
        memory: memory(),
        pg_version: env.pg.psql("postgres", "SHOW server_version")?,
        maria_version,
        buffer_pool,
        pgloader_version,
        commit: commit(env.root),
        busy: cpu_busy_percent(Duration::from_secs(1)),
        load_average: load_average(),
        scale: config.scale,
        settings,
        runs: config.runs,
        tables,
    };
    if info.busy.is_some_and(|b| b > 25) {
        eprintln!(
            "xtask: warning: {}: other work on this machine will distort the timings \
             (FERRY_BENCH_RUNS=3 reports medians)",
            info.load()
        );
    }
    let outcomes = super::run_rounds(
        &METHODS,
        config.runs,
        |m| m.label(settings),
        |m| measure(env, m, &info),
        |run| {
            format!(
                "target verified: {} rows, primary keys and indexes as in the source{}",
                thousands(info.total_rows()),
                run.note
                    .as_deref()
                    .map_or_else(String::new, |n| format!(" ({n})"))
            )
        },
    );
    Ok(SectionReport {
        section: Section::Mysql,
        text: render_text(&info, &outcomes),
        markdown: render_markdown(&info, &outcomes),
        failed: outcomes.iter().any(|o| o.error.is_some()),
    })
}

/// Runs `method` into a fresh database, times it, and checks the result.
fn measure(env: &Env<'_>, method: Method, info: &Info) -> std::result::Result<Run, String> {
    let db = method.database();
    let result = (|| -> Result<Run> {
        common::recreate_database(env.pg, db)?;
        let (elapsed, logged) = run_method(env, method, info.settings)?;
        let schemas = match verify(env.pg, db, &info.tables) {
            Ok(schemas) => schemas,
            Err(e) => {
                return Err(match &logged {
                    Some(errors) => format!(
                        "{e}\n{} reported (verbatim):\n{errors}",
                        method.label(info.settings)
                    ),
                    None => e.to_string(),
                }
                .into());
            }
        };
        // Verified: make room for the next method (a failed target stays for
        // inspection).
        env.pg.drop_database(db)?;
        let mut note = format!("tables in schema {}", schemas.join(", "));
        if let Some(errors) = logged {
            let first = errors.lines().next().unwrap_or_default();
            let _ = write!(note, "; it logged errors all the same, first: {first}");
        }
        Ok(Run {
            elapsed,
            note: Some(note),
        })
    })();
    result.map_err(|e| format!("{e}\n(target database {db} left for inspection)"))
}

/// Runs one method; returns its wall-clock time (preparation excluded) and the
/// errors it logged while exiting 0 (pgloader does that).
fn run_method(
    env: &Env<'_>,
    method: Method,
    settings: Settings,
) -> Result<(Duration, Option<String>)> {
    let pg = env.pg;
    let db = method.database();
    match method {
        Method::Ferry => {
            let dir = env.out_dir.join("mysql-ferry");
            let state_dir = dir.join("state");
            let urls = ferry_urls(env.maria, pg, db);
            let task = ferry_task(&urls, settings.parallelism, &state_dir);
            let task_path = common::write_task(&dir, &task, &state_dir)?;
            common::checkpoint(pg);
            let started = Instant::now();
            common::run_ferry(env.ferry, &task_path, &["--no-progress"], &urls)?;
            Ok((started.elapsed(), None))
        }
        Method::Pgloader => {
            let dir = env.out_dir.join("pgloader");
            fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let load = dir.join("ferry_bench.load");
            fs::write(&load, pgloader_load_file(settings))
                .map_err(|e| format!("writing {}: {e}", load.display()))?;
            let log = dir.join("pgloader.log");
            let output_path = dir.join("output.txt");
            for stale in [&log, &output_path] {
                if stale.exists() {
                    fs::remove_file(stale)
                        .map_err(|e| format!("removing {}: {e}", stale.display()))?;
                }
            }
            let output =
                File::create(&output_path).map_err(|e| format!("creating output file: {e}"))?;
            let errors = output
                .try_clone()
                .map_err(|e| format!("duplicating a file handle: {e}"))?;
            let mut cmd = Command::new(env.pgloader);
            cmd.arg("--root-dir")
                .arg(dir.join("work"))
                .arg("--logfile")
                .arg(&log)
                .arg(&load)
                .env(PGLOADER_SOURCE_ENV, env.maria.url(SOURCE_DB))
                .env(PGLOADER_TARGET_ENV, pgloader_pg_url(&pg.url(db)))
                .stdin(Stdio::null())
                .stdout(output)
                .stderr(errors);
            common::checkpoint(pg);
            let started = Instant::now();
            let status = cmd
                .status()
                .map_err(|e| format!("cannot run {}: {e}", env.pgloader.display()))?;
            let elapsed = started.elapsed();
            let printed = fs::read_to_string(&output_path).unwrap_or_default();
            if !status.success() {
                return Err(format!(
                    "pgloader failed ({status}); its output ({}):\n{}",
                    output_path.display(),
                    pgloader_failure(&printed)
                )
                .into());
            }
            Ok((elapsed, pgloader_errors(&printed)))
        }
    }
}

/// At most this many lines of pgloader's output go into a message.
const EXCERPT_LINES: usize = 40;

/// pgloader's error report, verbatim: from its first `ERROR`/`FATAL` line (or
/// Lisp condition, which spans lines) on; `None` when it logged no error.
/// pgloader exits 0 even when it could not connect, so its output is read
/// whatever its exit status.
fn pgloader_errors(output: &str) -> Option<String> {
    const MARKERS: [&str; 6] = [
        " ERROR ",
        " FATAL ",
        "KABOOM",
        "unhandled error",
        "Heap exhausted",
        "debugger invoked",
    ];
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .position(|l| MARKERS.iter().any(|m| l.contains(m)))?;
    Some(excerpt(&lines, start))
}

/// Why pgloader failed, verbatim: its error report, else the tail of its output.
fn pgloader_failure(output: &str) -> String {
    pgloader_errors(output).unwrap_or_else(|| {
        let lines: Vec<&str> = output.lines().collect();
        let out = excerpt(&lines, lines.len().saturating_sub(EXCERPT_LINES));
        if out.trim().is_empty() {
            "(no output)".to_owned()
        } else {
            out
        }
    })
}

/// [`EXCERPT_LINES`] lines from `start`, `[...]` marking a cut.
fn excerpt(lines: &[&str], start: usize) -> String {
    let mut out = lines
        .iter()
        .skip(start)
        .take(EXCERPT_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > start + EXCERPT_LINES {
        out.push_str("\n[...]");
    }
    out
}

/// The target has every source table with the source's row count, a primary key
/// and as many indexes as the source. Returns the schemas holding the tables.
fn verify(pg: &PgService, db: &str, expected: &[(String, u64)]) -> Result<Vec<String>> {
    let mut schemas: Vec<String> = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    for (table, rows) in expected {
        let found = pg.psql(
            db,
            &format!(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = {} AND c.relkind IN ('r', 'p') \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
                quote_literal(table)
            ),
        )?;
        let found: Vec<&str> = found.lines().filter(|l| !l.is_empty()).collect();
        let schema = match found.as_slice() {
            [one] => *one,
            [] => {
                wrong.push(format!("table {table} is missing in the target"));
                continue;
            }
            many => {
                wrong.push(format!(
                    "table {table} is in several schemas of the target: {}",
                    many.join(", ")
                ));
                continue;
            }
        };
        if !schemas.iter().any(|s| s == schema) {
            schemas.push(schema.to_owned());
        }
        let qualified = format!("{}.{}", quote_ident(schema), quote_ident(table));
        let out = pg.psql(
            db,
            &format!(
                "SELECT (SELECT count(*) FROM {qualified}), \
                 (SELECT count(*) FROM pg_index WHERE indrelid = {rel}::regclass), \
                 (SELECT count(*) FROM pg_index WHERE indrelid = {rel}::regclass AND indisprimary)",
                rel = quote_literal(&qualified)
            ),
        )?;
        let numbers: Vec<u64> = out
            .trim()
            .split('|')
            .map(|n| n.parse::<u64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("unexpected psql output: {out:?}"))?;
        let [count, indexes, primary] = numbers[..] else {
            return Err(format!("unexpected psql output: {out:?}").into());
        };
        if count != *rows {
            wrong.push(format!(
                "{table}: {rows} rows in the source, {count} in the target ({schema}.{table})"
            ));
        }
        let source_indexes = TABLES
            .iter()
            .find(|t| t.name == table)
            .map_or(0, |t| t.indexes);
        if primary != 1 {
            wrong.push(format!("{table}: no primary key in the target"));
        }
        if indexes != source_indexes {
            wrong.push(format!(
                "{table}: {source_indexes} indexes in the source (primary key included), \
                 {indexes} in the target"
            ));
        }
    }
    if !wrong.is_empty() {
        return Err(format!("the target differs from the source: {}", wrong.join("; ")).into());
    }
    Ok(schemas)
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// Ferry's rows/s divided by `other`'s: above 1 means Ferry is faster.
fn ratio(outcomes: &[Outcome], other: Method) -> Option<f64> {
    let time = |m: Method| {
        outcomes
            .iter()
            .find(|o| o.method == m)
            .and_then(Outcome::time)
            .map(|d| d.as_secs_f64())
    };
    let (ferry, other) = (time(Method::Ferry)?, time(other)?);
    (ferry > 0.0).then(|| other / ferry)
}

const HEADER: [&str; 4] = ["method", "seconds", "rows/s", "ferry ÷ method"];

fn result_rows(info: &Info, outcomes: &[Outcome]) -> Vec<Vec<String>> {
    let rows = info.total_rows();
    outcomes
        .iter()
        .map(|o| {
            let label = o.method.label(info.settings);
            match o.time() {
                Some(d) => vec![
                    label,
                    format!("{:.1}", d.as_secs_f64()),
                    thousands(rate(rows, d).round() as u64),
                    ratio(outcomes, o.method)
                        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}×")),
                ],
                None => vec![label, "FAILED".into(), "-".into(), "-".into()],
            }
        })
        .collect()
}

/// The issue's target, with whether this run met it.
fn target_line(outcomes: &[Outcome]) -> String {
    let verdict = match ratio(outcomes, Method::Pgloader) {
        Some(r) if r >= PGLOADER_TARGET => format!("{r:.3}× — met"),
        Some(r) => format!("{r:.3}× — NOT met"),
        None => "not measured".to_owned(),
    };
    format!("Ferry ≥ {PGLOADER_TARGET:.0}× pgloader's rows/s: {verdict}")
}

fn source_line(info: &Info) -> String {
    let tables = info
        .tables
        .iter()
        .map(|(t, n)| format!("{t} {}", thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} rows in {} tables (scale {}; {tables})",
        thousands(info.total_rows()),
        info.tables.len(),
        info.scale
    )
}

fn render_text(info: &Info, outcomes: &[Outcome]) -> String {
    let mut s = format!("MySQL → PostgreSQL full load, {}\n\n", source_line(info));
    s.push_str(&common::text_table(
        &HEADER,
        &result_rows(info, outcomes),
        &[1, 2, 3],
    ));
    s.push('\n');
    let _ = writeln!(s, "target: {}", target_line(outcomes));
    for o in outcomes {
        if let Some(e) = &o.error {
            let _ = writeln!(s, "{} FAILED: {e}", o.method.label(info.settings));
        }
    }
    s
}

fn render_markdown(info: &Info, outcomes: &[Outcome]) -> String {
    let mut s = String::from("## MySQL → PostgreSQL full load\n\n");
    let _ = writeln!(s, "Written by `cargo xtask bench` on {}.\n", info.date);
    let _ = writeln!(
        s,
        "- machine: {} CPUs ({}), {}",
        info.cpus, info.cpu_model, info.memory
    );
    let _ = writeln!(
        s,
        "- source: MariaDB {} (the test-service kit's instance{}), database `{SOURCE_DB}`: {}",
        info.maria_version,
        info.buffer_pool.map_or_else(String::new, |b| format!(
            ", `innodb_buffer_pool_size` {} MiB",
            b / (1024 * 1024)
        )),
        source_line(info)
    );
    let _ = writeln!(
        s,
        "- target: PostgreSQL {} (the kit's instance, `fsync=off`), a fresh database per method",
        info.pg_version
    );
    let _ = writeln!(
        s,
        "- parallelism: {} (Ferry's `parallelism`, pgloader's `workers`; pgloader's \
         `concurrency` {})",
        info.settings.parallelism, info.settings.concurrency
    );
    let _ = writeln!(s, "- pgloader: {}", info.pgloader_version);
    let _ = writeln!(s, "- other work when the timings began: {}", info.load());
    let _ = writeln!(s, "- ferry: release build of commit {}\n", info.commit);

    let _ = writeln!(s, "| {} |", HEADER.join(" | "));
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for row in result_rows(info, outcomes) {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "Seconds are wall clock{}; rows/s is the source's total rows over them; \
         \"ferry ÷ method\" is Ferry's rows/s over the method's (above 1: Ferry is faster).\n",
        if info.runs > 1 {
            format!(", the median of {} runs", info.runs)
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "Target (issue 3):\n\n- {}\n", target_line(outcomes));

    s.push_str("### Source\n\n");
    let _ = writeln!(
        s,
        "Generated server-side from MariaDB's sequence engine ({} rows per `INSERT ... SELECT`; \
         `seq` runs over the row numbers); reused by later runs while its tables, indexes and \
         row counts match.\n",
        thousands(CHUNK_ROWS)
    );
    s.push_str("```sql\n");
    for table in &TABLES {
        let _ = writeln!(s, "{};\n{};\n", table.ddl, table.insert);
    }
    s.truncate(s.trim_end().len());
    s.push_str("\n```\n\n");

    s.push_str("### Methods\n\n");
    s.push_str(
        "Each method loads the source into a fresh, empty PostgreSQL database. The time runs \
         from starting the command to its exit, so it includes reading the MySQL catalog, \
         creating the tables and building primary keys and indexes. Afterwards every target \
         is checked: each source table exists in exactly one schema (both tools name it after \
         the MySQL database), with the source's row count, a primary key and as many indexes \
         as the source.\n\n",
    );
    for o in outcomes {
        let _ = writeln!(s, "**{}**", o.method.label(info.settings));
        let _ = writeln!(s, "\n```sh\n{}```\n", {
            let mut c = o.method.commands(info.settings);
            if !c.ends_with('\n') {
                c.push('\n');
            }
            c
        });
        if o.method == Method::Ferry {
            let urls = TaskUrls {
                source: format!("mysql://ferry:***@127.0.0.1:PORT/{SOURCE_DB}"),
                target: format!("postgres://postgres@127.0.0.1:PORT/{}", o.method.database()),
                env: Vec::new(),
            };
            let _ = writeln!(
                s,
                "```toml\n{}```\n",
                ferry_task(
                    &urls,
                    info.settings.parallelism,
                    Path::new("target/bench/mysql-ferry/state")
                )
            );
        }
        if !o.runs.is_empty() {
            let runs = o
                .runs
                .iter()
                .map(|r| match &r.note {
                    Some(note) => format!("{:.1} s ({note})", r.elapsed.as_secs_f64()),
                    None => format!("{:.1} s", r.elapsed.as_secs_f64()),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                s,
                "Run{}: {runs}.\n",
                if o.runs.len() > 1 { "s" } else { "" }
            );
        }
        if let Some(e) = &o.error {
            let _ = writeln!(s, "FAILED:\n\n```text\n{}\n```\n", e.trim_end());
        }
    }
    s.push_str(
        "pgloader runs with its default casting rules (e.g. `INT` → `bigint`, `DATETIME` → \
         `timestamptz`, `TINYINT(1)` → `boolean`, MariaDB's `JSON` → `text`); its log and \
         summary are in `target/bench/pgloader/`. Ferry uses its own type mapping.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            parallelism: 4,
            concurrency: 1,
        }
    }

    fn info() -> Info {
        Info {
            date: "2025-01-01 00:00 UTC".into(),
            cpus: 2,
            cpu_model: "Test CPU".into(),
            memory: "8 GiB RAM".into(),
            pg_version: "15.9".into(),
            maria_version: "10.11.19-MariaDB".into(),
            buffer_pool: Some(256 * 1024 * 1024),
            pgloader_version: "pgloader version \"3.6.7~devel\"".into(),
            commit: "abc1234".into(),
            busy: Some(2),
            load_average: "0.10 0.20 0.30".into(),
            scale: 10,
            settings: settings(),
            runs: 1,
            tables: vec![("accounts".into(), 1_000_000), ("wide".into(), 200_000)],
        }
    }

    fn ok(method: Method, secs: u64) -> Outcome {
        Outcome {
            method,
            runs: vec![Run {
                elapsed: Duration::from_secs(secs),
                note: Some("tables in schema ferry_bench_mysql".into()),
            }],
            error: None,
        }
    }

    #[test]
    fn scale_50_is_six_million_rows() {
        let config = Config::parse(None, None, None, None, None).expect("defaults");
        assert_eq!(expected_rows(&config), 6_000_000);
        assert_eq!(
            expected_indexes(),
            vec![("accounts".into(), 1), ("wide".into(), 2)]
        );
    }

    #[test]
    fn the_target_is_three_times_pgloader() {
        let met = vec![ok(Method::Ferry, 10), ok(Method::Pgloader, 30)];
        assert_eq!(
            target_line(&met),
            "Ferry ≥ 3× pgloader's rows/s: 3.000× — met"
        );
        let missed = vec![ok(Method::Ferry, 10), ok(Method::Pgloader, 29)];
        assert!(target_line(&missed).ends_with("2.900× — NOT met"));
        let mut failed = missed.clone();
        failed[1].error = Some("boom".into());
        assert!(target_line(&failed).ends_with("not measured"));
    }

    #[test]
    fn report_has_commands_runs_and_failures() {
        let mut outcomes = vec![ok(Method::Ferry, 2), ok(Method::Pgloader, 12)];
        let md = render_markdown(&info(), &outcomes);
        assert!(md.starts_with("## MySQL → PostgreSQL full load\n"), "{md}");
        assert!(md.contains("| ferry full load (parallelism 4) | 2.0 | 600,000 | 1.00× |"));
        assert!(md.contains("| pgloader (workers 4, concurrency 1) | 12.0 | 100,000 | 6.00× |"));
        assert!(md.contains("Ferry ≥ 3× pgloader's rows/s: 6.000× — met"));
        assert!(md.contains("WITH workers = 4, concurrency = 1;"));
        assert!(md.contains("FROM {{FERRY_XTASK_MYSQL_URL}}"));
        assert!(md.contains("include = [\"ferry_bench_mysql.*\"]"));
        assert!(md.contains("mysql://ferry:***@127.0.0.1:PORT/ferry_bench_mysql"));
        assert!(md.contains("FROM seq_{from}_to_{to}"));
        assert!(md.contains("Run: 12.0 s (tables in schema ferry_bench_mysql)."));
        assert!(md.contains("MariaDB 10.11.19-MariaDB (the test-service kit's instance, `innodb_buffer_pool_size` 256 MiB)"));
        assert!(
            md.contains("1,200,000 rows in 2 tables (scale 10; accounts 1,000,000, wide 200,000)")
        );
        assert!(!md.contains("ferry-test-pw"));

        outcomes[1].error = Some("pgloader failed (exit status: 12); its output:\nKABOOM!".into());
        let md = render_markdown(&info(), &outcomes);
        assert!(md.contains("| pgloader (workers 4, concurrency 1) | FAILED | - | - |"));
        assert!(md.contains(
            "FAILED:\n\n```text\npgloader failed (exit status: 12); its output:\nKABOOM!\n```"
        ));
        let text = render_text(&info(), &outcomes);
        assert!(text.contains("target: Ferry ≥ 3× pgloader's rows/s: not measured"));
        assert!(text.contains("pgloader (workers 4, concurrency 1) FAILED: pgloader failed"));
    }

    #[test]
    fn pgloader_errors_are_quoted_verbatim() {
        let out = "2025 LOG pgloader version\n2025 LOG Migrating\n\
                   2025 ERROR mysql: Failed to connect to mysql at \"127.0.0.1\" (port 1): \
                   Connection refused\nAn unhandled error condition has been signalled:\n   \
                   boom\n";
        let e = pgloader_errors(out).expect("an error");
        assert!(e.starts_with("2025 ERROR mysql: Failed to connect"), "{e}");
        assert!(e.ends_with("   boom"), "{e}");
        assert_eq!(pgloader_failure(out), e);
        let clean = "2025 LOG pgloader version\n table name     errors       rows\n";
        assert_eq!(pgloader_errors(clean), None);
        assert_eq!(pgloader_failure(clean), clean.trim_end());
        assert_eq!(pgloader_failure(""), "(no output)");
        let long: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let e = pgloader_failure(&long);
        assert!(e.starts_with("line 60\n") && e.ends_with("line 99"), "{e}");
        let long_error = format!("x ERROR y\n{long}");
        let e = pgloader_errors(&long_error).expect("an error");
        assert!(
            e.starts_with("x ERROR y\nline 0\n") && e.ends_with("line 38\n[...]"),
            "{e}"
        );
    }

    #[test]
    fn urls_and_parsing() {
        assert_eq!(
            pgloader_pg_url("postgres://postgres@127.0.0.1:5/db"),
            "postgresql://postgres@127.0.0.1:5/db"
        );
        assert_eq!(pgloader_pg_url("postgresql://x/db"), "postgresql://x/db");
        assert_eq!(
            parse_tab_pairs("accounts\t5\nwide\t1\n").expect("pairs"),
            vec![("accounts".into(), 5), ("wide".into(), 1)]
        );
        assert!(parse_tab_pairs("accounts 5").is_err());
        assert!(parse_tab_pairs("accounts\tx").is_err());
        assert_eq!(my_ident("a`b"), "`a``b`");
        assert_eq!(
            pgloader_load_file(settings()),
            "LOAD DATABASE\n  FROM {{FERRY_XTASK_MYSQL_URL}}\n  INTO {{FERRY_XTASK_PG_URL}}\n  \
             WITH workers = 4, concurrency = 1;\n"
        );
    }
}
