//! `cargo xtask bench`: Ferry's full loads against the reference tools, measured
//! in the same run on the same servers (DESIGN.md §8). Two sections:
//!
//! - PostgreSQL → PostgreSQL (this file), against psql COPY pipes and
//!   `pg_dump`/`pg_restore`;
//! - MySQL → PostgreSQL (`bench_mysql.rs`), from the kit's MariaDB, against
//!   `pgloader`.
//!
//! The PostgreSQL section's source is `pgbench -i -s SCALE` (100,000 `pgbench_accounts` rows per scale
//! unit) plus `bench_wide`, a table of mixed types with 20,000 rows per scale
//! unit. Each method copies it into a fresh database and must end with the same
//! rows, primary keys and indexes as the source (checked), so every wall-clock
//! time includes creating the tables and building the indexes.
//!
//! Environment: `FERRY_BENCH_SCALE` (default 50), `FERRY_BENCH_PARALLELISM`
//! (default 4: Ferry's `parallelism`, `pg_dump`/`pg_restore -j` and pgloader's
//! `workers`), `FERRY_BENCH_RUNS` (default 1: rounds over every method, the report
//! gives each method's median), `FERRY_BENCH_FRESH=1` to regenerate a source left
//! by an earlier run, `FERRY_BENCH_ONLY=pg|mysql` to run one section.
//!
//! Each section also goes to `target/bench/report-<section>.md`; `report.md` joins
//! the latest of each, so running one section keeps the other's last figures.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::PgService;

use crate::Result;
use crate::common::{self, TaskUrls, quote_ident, quote_literal, thousands};

#[path = "bench_cdc.rs"]
mod cdc;
#[path = "bench_mysql.rs"]
mod mysql;

const SOURCE_DB: &str = "ferry_bench_source";
/// Stored as the source database's comment once it is complete; a later run
/// with the same tag reuses the source instead of generating it again.
const SOURCE_TAG: &str = "ferry-bench source v1";

const DEFAULT_SCALE: u64 = 50;
const DEFAULT_PARALLELISM: u64 = 4;
/// `bench_wide` rows per scale unit (1,000,000 at the default scale).
const WIDE_ROWS_PER_SCALE: u64 = 20_000;

/// What the issue asks of Ferry against the COPY pipe (ratio of rows/s).
const COPY_PIPE_TARGET: f64 = 0.9;

/// The mixed-type table (`{rows}` is replaced by the row count).
const WIDE_TABLE: &str = r#"
CREATE TABLE bench_wide (
    id         int8 NOT NULL,
    amount     numeric(14, 4),
    label      text,
    created_at timestamptz,
    payload    jsonb,
    ref        uuid,
    flag       bool,
    score      float8,
    blob       bytea
);
INSERT INTO bench_wide
SELECT i,
       CASE WHEN i % 10 = 0 THEN NULL ELSE ((i * 7919) % 100000000) / 10000.0 - 5000 END,
       'label ' || i || ' ' || md5(i::text),
       timestamptz '2020-01-01 00:00:00+00' + i * interval '1.5 seconds',
       CASE WHEN i % 7 = 0 THEN NULL
            ELSE jsonb_build_object('id', i, 'kind', (ARRAY['a', 'b', 'c'])[1 + i % 3],
                                    'tags', jsonb_build_array(i % 5, i % 11), 'ok', i % 2 = 0) END,
       md5('ref' || i)::uuid,
       i % 2 = 0,
       i / 7.0::float8,
       CASE WHEN i % 4 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END
FROM generate_series(1::int8, {rows}) AS i;
ALTER TABLE bench_wide ADD PRIMARY KEY (id);
CREATE INDEX bench_wide_created_at_idx ON bench_wide (created_at);
VACUUM ANALYZE bench_wide;
"#;

/// A section of the benchmark (`FERRY_BENCH_ONLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// PostgreSQL → PostgreSQL.
    Pg,
    /// MySQL (the kit's MariaDB) → PostgreSQL.
    Mysql,
    /// PostgreSQL → PostgreSQL change capture under write load.
    Cdc,
}

impl Section {
    /// The section's report file in `target/bench`.
    fn report_file(self) -> &'static str {
        match self {
            Section::Pg => "report-pg.md",
            Section::Mysql => "report-mysql.md",
            Section::Cdc => "report-cdc.md",
        }
    }
}

/// Every section, in report order.
const SECTIONS: [Section; 3] = [Section::Pg, Section::Mysql, Section::Cdc];

/// The benchmark's settings, from the environment.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    scale: u64,
    parallelism: u64,
    runs: u64,
    fresh: bool,
    /// `FERRY_BENCH_ONLY`: one section, or (`None`) all of them.
    only: Option<Section>,
}

impl Config {
    fn from_env() -> Result<Config> {
        let var = |name: &str| env::var(name).ok();
        Config::parse(
            var("FERRY_BENCH_SCALE").as_deref(),
            var("FERRY_BENCH_PARALLELISM").as_deref(),
            var("FERRY_BENCH_RUNS").as_deref(),
            var("FERRY_BENCH_FRESH").as_deref(),
            var("FERRY_BENCH_ONLY").as_deref(),
        )
    }

    fn parse(
        scale: Option<&str>,
        parallelism: Option<&str>,
        runs: Option<&str>,
        fresh: Option<&str>,
        only: Option<&str>,
    ) -> Result<Config> {
        Ok(Config {
            scale: positive("FERRY_BENCH_SCALE", scale, DEFAULT_SCALE)?,
            parallelism: positive("FERRY_BENCH_PARALLELISM", parallelism, DEFAULT_PARALLELISM)?,
            runs: positive("FERRY_BENCH_RUNS", runs, 1)?,
            fresh: matches!(
                fresh.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
                Some("1" | "true" | "yes")
            ),
            only: match only.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
                None | Some("" | "all") => None,
                Some("pg" | "postgres" | "postgresql") => Some(Section::Pg),
                Some("mysql" | "mariadb") => Some(Section::Mysql),
                Some("cdc") => Some(Section::Cdc),
                Some(other) => {
                    return Err(format!(
                        "FERRY_BENCH_ONLY must be `pg`, `mysql` or `cdc` (or unset for all), \
                         not {other:?}"
                    )
                    .into());
                }
            },
        })
    }

    /// Whether this run includes `section`.
    fn runs(&self, section: Section) -> bool {
        self.only.is_none_or(|only| only == section)
    }

    fn wide_rows(&self) -> u64 {
        self.scale * WIDE_ROWS_PER_SCALE
    }
}

/// A positive integer setting; `default` when unset or empty.
fn positive(name: &str, value: Option<&str>, default: u64) -> Result<u64> {
    match value.map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 && n <= 100_000 => Ok(n),
            _ => Err(format!("{name} must be a positive integer, not {v:?}").into()),
        },
    }
}

/// The ways of copying the source that the benchmark compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Ferry,
    CopyPipe,
    DumpRestore,
    DumpRestoreParallel,
}

const METHODS: [Method; 4] = [
    Method::Ferry,
    Method::CopyPipe,
    Method::DumpRestore,
    Method::DumpRestoreParallel,
];

impl Method {
    fn label(self, parallelism: u64) -> String {
        match self {
            Method::Ferry => format!("ferry full load (parallelism {parallelism})"),
            Method::CopyPipe => "psql binary COPY pipe, table by table".to_owned(),
            Method::DumpRestore => "pg_dump -Fc | pg_restore".to_owned(),
            Method::DumpRestoreParallel => {
                format!("pg_dump -Fd -j {parallelism} + pg_restore -j {parallelism}")
            }
        }
    }

    /// The method as shell commands, for the report.
    fn commands(self, parallelism: u64) -> String {
        match self {
            Method::Ferry => format!(
                "ferry run task.toml --no-progress   # full-load, drop-and-create, \
                 include public.*, parallelism {parallelism}"
            ),
            Method::CopyPipe => "pg_dump --schema-only --section=pre-data SRC | psql DST\n\
                 for each table T: psql SRC -c 'COPY T TO STDOUT (FORMAT binary)' \
                 | psql DST -c 'COPY T FROM STDIN (FORMAT binary)'\n\
                 pg_dump --section=post-data SRC | psql DST"
                .to_owned(),
            Method::DumpRestore => "pg_dump -Fc SRC | pg_restore --exit-on-error -d DST".to_owned(),
            Method::DumpRestoreParallel => format!(
                "pg_dump -Fd -j {parallelism} -f DIR SRC && \
                 pg_restore -j {parallelism} --exit-on-error -d DST DIR"
            ),
        }
    }

    /// The target database of this method.
    fn database(self) -> &'static str {
        match self {
            Method::Ferry => "ferry_bench_ferry",
            Method::CopyPipe => "ferry_bench_copy_pipe",
            Method::DumpRestore => "ferry_bench_dump_restore",
            Method::DumpRestoreParallel => "ferry_bench_dump_restore_j",
        }
    }
}

/// Runs every method once per round, `runs` rounds, printing each run; a method that
/// fails is not run again. `verified` describes a successful run's check.
fn run_rounds<M: Copy>(
    methods: &[M],
    runs: u64,
    label: impl Fn(M) -> String,
    mut measure: impl FnMut(M) -> std::result::Result<Run, String>,
    verified: impl Fn(&Run) -> String,
) -> Vec<Outcome<M>> {
    let mut outcomes: Vec<Outcome<M>> = methods.iter().copied().map(Outcome::new).collect();
    for round in 1..=runs {
        for (i, outcome) in outcomes.iter_mut().enumerate() {
            if outcome.error.is_some() {
                continue;
            }
            let round_label = if runs > 1 {
                format!("round {round}/{runs}, ")
            } else {
                String::new()
            };
            println!(
                "\n==> [{round_label}{}/{}] {}",
                i + 1,
                methods.len(),
                label(outcome.method)
            );
            match measure(outcome.method) {
                Ok(run) => {
                    println!("    {:.1} s; {}", run.elapsed.as_secs_f64(), verified(&run));
                    outcome.runs.push(run);
                }
                Err(e) => {
                    eprintln!("    FAILED: {e}");
                    outcome.error = Some(e);
                }
            }
        }
    }
    outcomes
}

/// One method's results over the rounds (`M`: the section's methods).
#[derive(Debug, Clone)]
struct Outcome<M = Method> {
    method: M,
    /// Every verified run, in order.
    runs: Vec<Run>,
    /// Why the method failed (to run, or to reproduce the source's rows, keys and
    /// indexes); it is not run again after a failure.
    error: Option<String>,
}

/// One timed, verified run of a method.
#[derive(Debug, Clone)]
struct Run {
    elapsed: Duration,
    /// Anything worth a footnote (the phases of a two-step method).
    note: Option<String>,
}

impl<M> Outcome<M> {
    fn new(method: M) -> Outcome<M> {
        Outcome {
            method,
            runs: Vec::new(),
            error: None,
        }
    }

    /// The median wall-clock time; `None` when the method failed or never ran.
    fn time(&self) -> Option<Duration> {
        if self.error.is_some() {
            return None;
        }
        median(self.runs.iter().map(|r| r.elapsed).collect())
    }
}

/// The median of `times`; `None` when empty.
fn median(mut times: Vec<Duration>) -> Option<Duration> {
    times.sort();
    let n = times.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(times[n / 2]),
        _ => Some((times[n / 2 - 1] + times[n / 2]) / 2),
    }
}

/// Everything the report says about the run besides the outcomes.
#[derive(Debug, Clone)]
struct RunInfo {
    date: String,
    cpus: usize,
    cpu_model: String,
    memory: String,
    pg_version: String,
    commit: String,
    /// How busy the CPUs were (0–100 %) during one second just before the
    /// timings began.
    busy: Option<u32>,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages then.
    load_average: String,
    scale: u64,
    parallelism: u64,
    runs: u64,
    tables: Vec<(String, u64)>,
}

impl RunInfo {
    fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    /// `"3% CPU busy, load average 1.20 0.80 0.50"`: what else the machine was doing.
    fn load(&self) -> String {
        let busy = self.busy.map_or_else(
            || "unknown CPU use".to_owned(),
            |b| format!("{b}% CPU busy"),
        );
        format!("{busy}, load average {}", self.load_average)
    }
}

/// One section's results, ready for the terminal and the report.
struct SectionReport {
    section: Section,
    /// The plain-text summary printed at the end of the run.
    text: String,
    /// The section of `report.md` (starting with a `##` heading).
    markdown: String,
    /// Whether a method failed (to run, or to reproduce the source).
    failed: bool,
}

/// `cargo xtask bench`.
pub fn bench() -> Result<ExitCode> {
    let started = Instant::now();
    let config = Config::from_env()?;
    if config.runs(Section::Pg) || config.runs(Section::Cdc) {
        crate::ensure_prerequisites(&["psql", "pg_dump", "pg_restore", "pgbench"])?;
    } else {
        crate::ensure_prerequisites(&["psql"])?;
    }
    let pgloader = if config.runs(Section::Mysql) {
        Some(mysql::prerequisites()?)
    } else {
        None
    };
    let pg = ferry_tests::postgres()?;
    let maria = match &pgloader {
        Some(_) => Some(ferry_tests::mariadb()?),
        None => None,
    };
    let root = ferry_tests::workspace_root();
    let out_dir = root.join("target").join("bench");
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;

    eprintln!(
        "xtask: bench at scale {}, parallelism {}, runs {}: {}",
        config.scale,
        config.parallelism,
        config.runs,
        SECTIONS
            .iter()
            .filter(|s| config.runs(**s))
            .map(|s| match s {
                Section::Pg => format!(
                    "PostgreSQL → PostgreSQL (≈ {} rows, on {})",
                    thousands(config.scale * 100_000 + config.wide_rows()),
                    pg.redacted_url("")
                ),
                Section::Mysql => format!(
                    "MySQL → PostgreSQL (≈ {} rows, from {})",
                    thousands(mysql::expected_rows(&config)),
                    maria
                        .as_ref()
                        .map_or_else(String::new, |m| m.redacted_url(""))
                ),
                Section::Cdc => format!("CDC PostgreSQL → PostgreSQL (on {})", pg.redacted_url("")),
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    // The release build runs while the servers generate the sources.
    let build = common::start_ferry_build(&root)?;
    let prepared = (|| -> Result<()> {
        if config.runs(Section::Pg) {
            prepare_source(&pg, &config)?;
        }
        if let Some(maria) = &maria {
            mysql::prepare_source(maria, &config)?;
        }
        Ok(())
    })();
    if let Err(e) = prepared {
        build.abort();
        return Err(e);
    }
    let ferry = build.finish()?;

    let mut reports = Vec::new();
    if config.runs(Section::Pg) {
        reports.push(pg_section(&pg, &ferry, &root, &out_dir, &config)?);
    }
    if let (Some(maria), Some(pgloader)) = (&maria, &pgloader) {
        let env = mysql::Env {
            pg: &pg,
            maria,
            ferry: &ferry,
            pgloader,
            root: &root,
            out_dir: &out_dir,
        };
        reports.push(mysql::section(&env, &config)?);
    }
    if config.runs(Section::Cdc) {
        println!("\n=== CDC PostgreSQL → PostgreSQL");
        let info = run_info(&pg, &root, &config, Vec::new())?;
        reports.push(cdc::section(&pg, &ferry, &out_dir, info)?);
    }

    for report in &reports {
        println!("\n{}", report.text);
    }
    let report_path = write_report(&out_dir, &reports)?;
    println!(
        "report: {}",
        report_path
            .strip_prefix(&root)
            .unwrap_or(&report_path)
            .display()
    );
    println!("bench finished in {:.0} s", started.elapsed().as_secs_f64());
    if pg.is_kit_managed() || maria.as_ref().is_some_and(|m| m.is_kit_managed()) {
        println!("the services keep running; stop them with: cargo xtask services down");
    }
    if reports.iter().any(|r| r.failed) {
        eprintln!("bench FAILED: a method did not complete or did not reproduce the source");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes each section of this run to its own file, then `report.md`: the latest
/// file of every section (so a `FERRY_BENCH_ONLY` run keeps the other section's
/// last figures, each dated). Returns the path of `report.md`.
fn write_report(out_dir: &Path, reports: &[SectionReport]) -> Result<std::path::PathBuf> {
    for report in reports {
        let path = out_dir.join(report.section.report_file());
        fs::write(&path, &report.markdown)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let mut sections = Vec::new();
    for section in SECTIONS {
        let path = out_dir.join(section.report_file());
        match fs::read_to_string(&path) {
            Ok(text) => sections.push(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("reading {}: {e}", path.display()).into()),
        }
    }
    let path = out_dir.join("report.md");
    fs::write(&path, join_report(&sections))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// `report.md` from its sections.
fn join_report(sections: &[String]) -> String {
    let mut s = String::from("# Ferry benchmarks\n\n");
    s.push_str(
        "Written by `cargo xtask bench` (`FERRY_BENCH_ONLY=pg|mysql` runs one section; \
         the other keeps its latest figures). Each section says when and on what it was \
         measured.\n",
    );
    for section in sections {
        s.push('\n');
        s.push_str(section.trim_end());
        s.push('\n');
    }
    s
}

/// What the report says about the machine and the run, read now.
fn run_info(
    pg: &PgService,
    root: &Path,
    config: &Config,
    tables: Vec<(String, u64)>,
) -> Result<RunInfo> {
    Ok(RunInfo {
        date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpu_model(),
        memory: memory(),
        pg_version: pg.psql("postgres", "SHOW server_version")?,
        commit: commit(root),
        busy: cpu_busy_percent(Duration::from_secs(1)),
        load_average: load_average(),
        scale: config.scale,
        parallelism: config.parallelism,
        runs: config.runs,
        tables,
    })
}

/// The PostgreSQL → PostgreSQL section: every method, `config.runs` rounds.
fn pg_section(
    pg: &PgService,
    ferry: &Path,
    root: &Path,
    out_dir: &Path,
    config: &Config,
) -> Result<SectionReport> {
    let tables = common::public_tables(pg, SOURCE_DB)?;
    let counts = common::row_counts(pg, SOURCE_DB, &tables)?;
    let source_shape = shape(pg, SOURCE_DB)?;
    let info = run_info(
        pg,
        root,
        config,
        tables.iter().cloned().zip(counts.iter().copied()).collect(),
    )?;

    let ctx = Ctx {
        pg,
        ferry,
        out_dir,
        tables: &tables,
        parallelism: config.parallelism,
    };
    println!("\n=== PostgreSQL → PostgreSQL full load");
    if info.busy.is_some_and(|b| b > 25) {
        eprintln!(
            "xtask: warning: {}: other work on this machine will distort the timings \
             (FERRY_BENCH_RUNS=3 reports medians)",
            info.load()
        );
    }
    let outcomes = run_rounds(
        &METHODS,
        config.runs,
        |m| m.label(config.parallelism),
        |m| measure(&ctx, m, &counts, &source_shape),
        |_| {
            format!(
                "target verified: {} rows, same keys and indexes as the source",
                thousands(info.total_rows())
            )
        },
    );

    Ok(SectionReport {
        section: Section::Pg,
        text: render_text(&info, &outcomes),
        markdown: render_markdown(&info, &outcomes),
        failed: outcomes.iter().any(|o| o.error.is_some()),
    })
}

// ---------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------

/// Generates the source database, or reuses a complete one of the same scale.
fn prepare_source(pg: &PgService, config: &Config) -> Result<()> {
    let tag = format!("{SOURCE_TAG} scale={}", config.scale);
    if !config.fresh && common::database_exists(pg, SOURCE_DB)? {
        let comment = pg.psql(
            "postgres",
            &format!(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database \
                 WHERE datname = {}",
                quote_literal(SOURCE_DB)
            ),
        )?;
        if comment == tag {
            eprintln!(
                "xtask: reusing {SOURCE_DB} from an earlier run (scale {}); \
                 FERRY_BENCH_FRESH=1 regenerates it",
                config.scale
            );
            return Ok(());
        }
    }
    let started = Instant::now();
    eprintln!(
        "xtask: generating {SOURCE_DB}: pgbench -i -s {} and bench_wide ({} rows)",
        config.scale,
        thousands(config.wide_rows())
    );
    common::recreate_database(pg, SOURCE_DB)?;
    // pgbench (client-side generation) and the wide table (server-side) at once.
    let mut pgbench = Command::new(common::pg_tool("pgbench"))
        .args(["-i", "-q", "-s", &config.scale.to_string()])
        .arg(pg.url(SOURCE_DB))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("running pgbench: {e}"))?;
    let wide = pg.psql(
        SOURCE_DB,
        &WIDE_TABLE.replace("{rows}", &config.wide_rows().to_string()),
    );
    let status = pgbench
        .wait()
        .map_err(|e| format!("waiting for pgbench: {e}"))?;
    wide?;
    if !status.success() {
        return Err(format!("`pgbench -i -s {}` failed ({status})", config.scale).into());
    }
    pg.psql(
        "postgres",
        &format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(SOURCE_DB),
            quote_literal(&tag)
        ),
    )?;
    eprintln!(
        "xtask: source generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The source's keys, constraints and indexes, without their names (a method may
/// name an index differently; it may not leave one out).
fn shape(pg: &PgService, db: &str) -> Result<Vec<String>> {
    let out = pg.psql(
        db,
        r"SELECT 'index on ' || tablename || ': '
                 || regexp_replace(indexdef, '^CREATE (UNIQUE )?INDEX \S+ ON ', 'CREATE \1INDEX ON ')
          FROM pg_indexes WHERE schemaname = 'public'
          UNION ALL
          SELECT 'constraint on ' || conrelid::regclass::text || ': ' || pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace
          ORDER BY 1",
    )?;
    Ok(out.lines().map(str::to_owned).collect())
}

// ---------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------

struct Ctx<'a> {
    pg: &'a PgService,
    ferry: &'a Path,
    out_dir: &'a Path,
    tables: &'a [String],
    parallelism: u64,
}

/// Runs `method` into a fresh database, times it, and checks the result.
fn measure(
    ctx: &Ctx<'_>,
    method: Method,
    counts: &[u64],
    source_shape: &[String],
) -> std::result::Result<Run, String> {
    let db = method.database();
    let mut note = None;
    let result = (|| -> Result<Duration> {
        common::recreate_database(ctx.pg, db)?;
        let elapsed = run_method(ctx, method, &mut note)?;
        verify(ctx, db, counts, source_shape)?;
        // Verified: make room for the next method (a failed target stays for
        // inspection).
        ctx.pg.drop_database(db)?;
        Ok(elapsed)
    })();
    match result {
        Ok(elapsed) => Ok(Run { elapsed, note }),
        Err(e) => Err(format!("{e} (target database {db} left for inspection)")),
    }
}

/// Runs one method and returns its wall-clock time (preparation excluded).
fn run_method(ctx: &Ctx<'_>, method: Method, note: &mut Option<String>) -> Result<Duration> {
    let pg = ctx.pg;
    let src = pg.url(SOURCE_DB);
    let dst = pg.url(method.database());
    let p = ctx.parallelism.to_string();
    match method {
        Method::Ferry => {
            let dir = ctx.out_dir.join("ferry");
            let state_dir = dir.join("state");
            let urls = TaskUrls::new(pg, SOURCE_DB, method.database());
            let parallelism = usize::try_from(ctx.parallelism)?;
            let task = common::full_load_task(&urls, parallelism, &state_dir);
            let task_path = common::write_task(&dir, &task, &state_dir)?;
            common::checkpoint(pg);
            let started = Instant::now();
            common::run_ferry(ctx.ferry, &task_path, &["--no-progress"], &urls)?;
            Ok(started.elapsed())
        }
        Method::CopyPipe => {
            common::checkpoint(pg);
            let started = Instant::now();
            common::run_pipe(
                Command::new(common::pg_tool("pg_dump")).args([
                    "--schema-only",
                    "--section=pre-data",
                    "-d",
                    &src,
                ]),
                common::psql(&dst).stdout(Stdio::null()),
                "pg_dump --section=pre-data | psql",
            )?;
            let pre_data = started.elapsed();
            for table in ctx.tables {
                let name = format!("public.{}", quote_ident(table));
                common::run_pipe(
                    common::psql(&src)
                        .args(["-c", &format!("COPY {name} TO STDOUT (FORMAT binary)")]),
                    common::psql(&dst)
                        .args(["-c", &format!("COPY {name} FROM STDIN (FORMAT binary)")])
                        .stdout(Stdio::null()),
                    &format!("COPY pipe of {table}"),
                )?;
            }
            let copied = started.elapsed();
            common::run_pipe(
                Command::new(common::pg_tool("pg_dump")).args(["--section=post-data", "-d", &src]),
                common::psql(&dst).stdout(Stdio::null()),
                "pg_dump --section=post-data | psql",
            )?;
            let elapsed = started.elapsed();
            *note = Some(format!(
                "pre-data {:.1} s + copy {:.1} s + post-data {:.1} s",
                pre_data.as_secs_f64(),
                (copied - pre_data).as_secs_f64(),
                (elapsed - copied).as_secs_f64()
            ));
            Ok(elapsed)
        }
        Method::DumpRestore => {
            common::checkpoint(pg);
            let started = Instant::now();
            common::run_pipe(
                Command::new(common::pg_tool("pg_dump")).args(["-Fc", "-d", &src]),
                Command::new(common::pg_tool("pg_restore"))
                    .args(["--exit-on-error", "-d", &dst])
                    .stdout(Stdio::null()),
                "pg_dump -Fc | pg_restore",
            )?;
            Ok(started.elapsed())
        }
        Method::DumpRestoreParallel => {
            let dump_dir = ctx.out_dir.join("dump.d");
            remove_dir(&dump_dir)?;
            common::checkpoint(pg);
            let started = Instant::now();
            common::run_status(
                Command::new(common::pg_tool("pg_dump"))
                    .args(["-Fd", "-j", &p, "-f"])
                    .arg(&dump_dir)
                    .args(["-d", &src]),
                "pg_dump -Fd",
            )?;
            let dumped = started.elapsed();
            common::run_status(
                Command::new(common::pg_tool("pg_restore"))
                    .args(["-j", &p, "--exit-on-error", "-d", &dst])
                    .arg(&dump_dir)
                    .stdout(Stdio::null()),
                "pg_restore -j",
            )?;
            let elapsed = started.elapsed();
            *note = Some(format!(
                "dump {:.1} s + restore {:.1} s",
                dumped.as_secs_f64(),
                (elapsed - dumped).as_secs_f64()
            ));
            remove_dir(&dump_dir)?;
            Ok(elapsed)
        }
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// The target has the source's row counts, keys and indexes.
fn verify(ctx: &Ctx<'_>, db: &str, counts: &[u64], source_shape: &[String]) -> Result<()> {
    let present = common::public_tables(ctx.pg, db)?;
    let missing: Vec<&str> = ctx
        .tables
        .iter()
        .filter(|t| !present.contains(t))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!("tables missing in the target: {}", missing.join(", ")).into());
    }
    let got = common::row_counts(ctx.pg, db, ctx.tables)?;
    let wrong: Vec<String> = ctx
        .tables
        .iter()
        .zip(counts.iter().zip(&got))
        .filter(|(_, (s, t))| s != t)
        .map(|(name, (s, t))| format!("{name}: {s} rows in the source, {t} in the target"))
        .collect();
    if !wrong.is_empty() {
        return Err(format!("row counts differ: {}", wrong.join("; ")).into());
    }
    let target_shape = shape(ctx.pg, db)?;
    let lacking: Vec<&String> = source_shape
        .iter()
        .filter(|s| !target_shape.contains(s))
        .collect();
    let extra: Vec<&String> = target_shape
        .iter()
        .filter(|s| !source_shape.contains(s))
        .collect();
    if !lacking.is_empty() || !extra.is_empty() {
        let mut msg = String::from("the target's keys/indexes differ from the source's");
        for l in lacking {
            let _ = write!(msg, "\n      missing: {l}");
        }
        for e in extra {
            let _ = write!(msg, "\n      extra:   {e}");
        }
        return Err(msg.into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Machine facts
// ---------------------------------------------------------------------------

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The share of CPU time not idle over `window`, from `/proc/stat`.
fn cpu_busy_percent(window: Duration) -> Option<u32> {
    let sample = || -> Option<(u64, u64)> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        parse_cpu_line(stat.lines().next()?)
    };
    let (idle0, total0) = sample()?;
    std::thread::sleep(window);
    let (idle1, total1) = sample()?;
    let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
    let idle = idle1.saturating_sub(idle0).min(total);
    u32::try_from((total - idle) * 100 / total).ok()
}

/// (idle + iowait, total) jiffies from `/proc/stat`'s `cpu` line.
fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let values: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((idle, values.iter().sum()))
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn memory() -> String {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB RAM", kib as f64 / (1024.0 * 1024.0)))
        })
        .unwrap_or_else(|| "unknown RAM".to_owned())
}

fn commit(root: &Path) -> String {
    let root_arg = root.display().to_string();
    let Some(head) = command_line("git", &["-C", &root_arg, "rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let dirty = command_line(
        "git",
        &[
            "-C",
            &root_arg,
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} + uncommitted changes")
    } else {
        head
    }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// Rows per second of a run.
fn rate(rows: u64, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 { rows as f64 / secs } else { 0.0 }
}

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

/// Method, seconds, rows/s, Ferry ÷ method: one row per outcome.
fn result_rows(info: &RunInfo, outcomes: &[Outcome]) -> Vec<Vec<String>> {
    let rows = info.total_rows();
    outcomes
        .iter()
        .map(|o| {
            let label = o.method.label(info.parallelism);
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

/// The issue's targets, one line each, with whether this run met them.
fn target_lines(info: &RunInfo, outcomes: &[Outcome]) -> Vec<String> {
    let mut out = Vec::new();
    // Three decimals: two could show 0.90× for a ratio of 0.896 that misses 0.9.
    let verdict = |r: Option<f64>, ok: &dyn Fn(f64) -> bool| match r {
        Some(r) if ok(r) => format!("{r:.3}× — met"),
        Some(r) => format!("{r:.3}× — NOT met"),
        None => "not measured".to_owned(),
    };
    out.push(format!(
        "Ferry ≥ {COPY_PIPE_TARGET:.1}× the psql binary COPY pipe: {}",
        verdict(ratio(outcomes, Method::CopyPipe), &|r| r
            >= COPY_PIPE_TARGET)
    ));
    for m in [Method::DumpRestore, Method::DumpRestoreParallel] {
        out.push(format!(
            "Ferry faster than {}: {}",
            m.label(info.parallelism),
            verdict(ratio(outcomes, m), &|r| r > 1.0)
        ));
    }
    out
}

const HEADER: [&str; 4] = ["method", "seconds", "rows/s", "ferry ÷ method"];

fn source_line(info: &RunInfo) -> String {
    let tables = info
        .tables
        .iter()
        .map(|(t, n)| format!("{t} {}", thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} rows in {} tables (pgbench scale {}; {tables})",
        thousands(info.total_rows()),
        info.tables.len(),
        info.scale
    )
}

fn render_text(info: &RunInfo, outcomes: &[Outcome]) -> String {
    let mut s = format!(
        "PostgreSQL → PostgreSQL full load, {}\n\n",
        source_line(info)
    );
    s.push_str(&common::text_table(
        &HEADER,
        &result_rows(info, outcomes),
        &[1, 2, 3],
    ));
    s.push('\n');
    for line in target_lines(info, outcomes) {
        let _ = writeln!(s, "target: {line}");
    }
    for o in outcomes {
        if let Some(e) = &o.error {
            let _ = writeln!(s, "{} FAILED: {e}", o.method.label(info.parallelism));
        }
    }
    s
}

fn render_markdown(info: &RunInfo, outcomes: &[Outcome]) -> String {
    let mut s = String::from("## PostgreSQL → PostgreSQL full load\n\n");
    let _ = writeln!(s, "Written by `cargo xtask bench` on {}.\n", info.date);
    let _ = writeln!(
        s,
        "- machine: {} CPUs ({}), {}",
        info.cpus, info.cpu_model, info.memory
    );
    let _ = writeln!(
        s,
        "- PostgreSQL {} (the test-service kit's instance: source and targets on one server, `fsync=off`)",
        info.pg_version
    );
    let _ = writeln!(s, "- source: {}", source_line(info));
    let _ = writeln!(
        s,
        "- parallelism: {} (Ferry's `parallelism`, `pg_dump`/`pg_restore -j`)",
        info.parallelism
    );
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
    s.push_str("Targets:\n\n");
    for line in target_lines(info, outcomes) {
        let _ = writeln!(s, "- {line}");
    }
    s.push('\n');
    s.push_str("### Methods\n\n");
    s.push_str(
        "Each method copies the source into a fresh, empty database. The time runs from \
         the first command to the last and so includes creating the tables and building \
         primary keys and indexes (Ferry adds them after the load; `pg_dump` puts them in \
         its post-data section). Afterwards every target is checked: the same row count in \
         every table, and the same primary keys, constraints and indexes as the source.\n\n",
    );
    for o in outcomes {
        let _ = writeln!(s, "**{}**", o.method.label(info.parallelism));
        let _ = writeln!(s, "\n```sh\n{}\n```\n", o.method.commands(info.parallelism));
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
            let _ = writeln!(s, "FAILED: {e}\n");
        }
    }
    s.push_str(
        "`pg_dump -Fc` and `-Fd` compress with zlib by default, as users run them. \
         pgcopydb is not measured yet; pgloader is measured in the MySQL → PostgreSQL \
         section.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RunInfo {
        RunInfo {
            date: "2025-01-01 00:00 UTC".into(),
            cpus: 2,
            cpu_model: "Test CPU".into(),
            memory: "8 GiB RAM".into(),
            pg_version: "15.9".into(),
            commit: "abc1234".into(),
            busy: Some(2),
            load_average: "0.10 0.20 0.30".into(),
            scale: 10,
            parallelism: 4,
            runs: 1,
            tables: vec![
                ("bench_wide".into(), 200_000),
                ("pgbench_accounts".into(), 1_000_000),
            ],
        }
    }

    fn ok(method: Method, secs: u64) -> Outcome {
        Outcome {
            method,
            runs: vec![Run {
                elapsed: Duration::from_secs(secs),
                note: None,
            }],
            error: None,
        }
    }

    #[test]
    fn config_defaults_and_overrides() {
        let c = Config::parse(None, None, None, None, None).expect("defaults");
        assert_eq!(
            c,
            Config {
                scale: 50,
                parallelism: 4,
                runs: 1,
                fresh: false,
                only: None,
            }
        );
        assert_eq!(c.wide_rows(), 1_000_000);
        assert!(c.runs(Section::Pg) && c.runs(Section::Mysql));
        let c = Config::parse(Some(" 10 "), Some("2"), Some("3"), Some("1"), Some("MySQL"))
            .expect("set");
        assert_eq!((c.scale, c.parallelism, c.runs, c.fresh), (10, 2, 3, true));
        assert_eq!(c.only, Some(Section::Mysql));
        assert!(!c.runs(Section::Pg) && c.runs(Section::Mysql));
        let c = Config::parse(None, None, None, None, Some("pg")).expect("pg only");
        assert!(c.runs(Section::Pg) && !c.runs(Section::Mysql));
        assert!(Config::parse(None, None, None, None, Some("oracle")).is_err());
        assert!(Config::parse(Some("0"), None, None, None, None).is_err());
        assert!(Config::parse(Some("ten"), None, None, None, None).is_err());
        assert!(Config::parse(None, Some("-1"), None, None, None).is_err());
        assert!(Config::parse(None, None, Some("0"), None, None).is_err());
        assert_eq!(
            Config::parse(Some(""), None, None, Some("no"), Some(""))
                .expect("empty is default")
                .scale,
            50
        );
    }

    #[test]
    fn the_report_joins_the_sections() {
        let joined = join_report(&["## A\n\nbody a\n\n".into(), "## B\nbody b".into()]);
        assert!(joined.starts_with("# Ferry benchmarks\n\n"), "{joined}");
        assert!(
            joined.ends_with("\n## A\n\nbody a\n\n## B\nbody b\n"),
            "{joined}"
        );
    }

    #[test]
    fn ratios_compare_rows_per_second() {
        let outcomes = vec![
            ok(Method::Ferry, 10),
            ok(Method::CopyPipe, 9),
            ok(Method::DumpRestore, 30),
        ];
        let r = ratio(&outcomes, Method::CopyPipe).expect("ratio");
        assert!((r - 0.9).abs() < 1e-9);
        assert_eq!(ratio(&outcomes, Method::DumpRestoreParallel), None);
        let lines = target_lines(&info(), &outcomes);
        assert_eq!(
            lines[0],
            "Ferry ≥ 0.9× the psql binary COPY pipe: 0.900× — met"
        );
        assert_eq!(
            lines[1],
            "Ferry faster than pg_dump -Fc | pg_restore: 3.000× — met"
        );
        let slower = vec![ok(Method::Ferry, 1000), ok(Method::CopyPipe, 896)];
        assert!(target_lines(&info(), &slower)[0].ends_with("0.896× — NOT met"));
        assert!(lines[2].ends_with("not measured"), "{}", lines[2]);
    }

    #[test]
    fn report_lists_every_method_and_failure() {
        let mut outcomes: Vec<Outcome> = METHODS.iter().map(|m| ok(*m, 12)).collect();
        outcomes[3].error = Some("boom".into());
        outcomes[2].runs[0].note = Some("dump 1.0 s + restore 2.0 s".into());
        let md = render_markdown(&info(), &outcomes);
        assert!(md.contains("| method | seconds | rows/s | ferry ÷ method |"));
        assert!(md.contains("| ferry full load (parallelism 4) | 12.0 | 100,000 | 1.00× |"));
        assert!(md.contains("| pg_dump -Fd -j 4 + pg_restore -j 4 | FAILED | - | - |"));
        assert!(md.contains("| pg_dump -Fc \\| pg_restore | 12.0 |"));
        assert!(md.contains("FAILED: boom"));
        assert!(md.contains("Run: 12.0 s (dump 1.0 s + restore 2.0 s)."));
        assert!(md.contains("other work when the timings began: 2% CPU busy, load average"));
        assert!(md.contains("2 CPUs (Test CPU)"));
        assert!(md.contains("PostgreSQL 15.9"));
        assert!(md.contains("1,200,000 rows in 2 tables (pgbench scale 10;"));
        let text = render_text(&info(), &outcomes);
        assert!(text.contains("ferry full load (parallelism 4)"));
        assert!(text.contains("100,000"));
        assert!(text.contains("FAILED: boom"));
    }

    #[test]
    fn the_reported_time_is_the_median() {
        let run = |secs: u64| Run {
            elapsed: Duration::from_secs(secs),
            note: None,
        };
        let mut o = Outcome::new(Method::Ferry);
        assert_eq!(o.time(), None);
        o.runs = vec![run(9), run(5), run(7)];
        assert_eq!(o.time(), Some(Duration::from_secs(7)));
        o.runs.push(run(8));
        assert_eq!(o.time(), Some(Duration::from_millis(7500)));
        o.error = Some("failed in round 5".into());
        assert_eq!(o.time(), None);
    }

    #[test]
    fn proc_stat_cpu_line() {
        assert_eq!(
            parse_cpu_line("cpu  100 5 50 800 20 1 2 3 0 0"),
            Some((820, 981))
        );
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5 6 7 8"), None);
        assert_eq!(parse_cpu_line("cpu  x"), None);
    }
}
