//! What `demo` and `bench` share: PostgreSQL client tools, building and running the
//! release `ferry` binary, task files, and catalog queries over `psql`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use ferry_tests::PgService;

use crate::Result;

// ---------------------------------------------------------------------------
// PostgreSQL client tools
// ---------------------------------------------------------------------------

/// A PostgreSQL client program (`psql`, `pg_dump`, `pgbench`...): from the server
/// binary directory (`$FERRY_PG_BIN` or `/usr/lib/postgresql/15/bin`) when it is
/// there, so client and server versions match, else from `PATH`.
pub fn pg_tool(name: &str) -> PathBuf {
    let bundled = ferry_tests::pg_bin_dir().join(name);
    if bundled.is_file() {
        return bundled;
    }
    find_on_path(name).unwrap_or_else(|| PathBuf::from(name))
}

/// Whether `name` is installed (in the server binary directory or on `PATH`).
pub fn has_pg_tool(name: &str) -> bool {
    ferry_tests::pg_bin_dir().join(name).is_file() || find_on_path(name).is_some()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = env::var_os("PATH")?;
    env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `psql` quiet and strict, connected to `url` (which may carry a password, so it
/// never goes into a message: describe commands with [`PgService::redacted_url`]).
pub fn psql(url: &str) -> Command {
    let mut cmd = Command::new(pg_tool("psql"));
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]);
    cmd
}

/// Runs `cmd` with inherited standard error; fails naming `what` unless it exits 0.
pub fn run_status(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    check_status(status, what)
}

fn check_status(status: ExitStatus, what: &str) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})").into())
    }
}

/// `producer | consumer`: the producer's standard output feeds the consumer's
/// standard input through one kernel pipe (as `sh -c 'a | b'` would), both
/// standard errors are inherited, and both exit statuses are checked (the
/// `pipefail` that `sh` lacks).
pub fn run_pipe(producer: &mut Command, consumer: &mut Command, what: &str) -> Result<()> {
    let mut first = producer
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let Some(out) = first.stdout.take() else {
        let _ = first.kill();
        let _ = first.wait();
        return Err(format!("{what}: no pipe to the producer").into());
    };
    let second = consumer.stdin(Stdio::from(out)).spawn();
    let mut second = match second {
        Ok(child) => child,
        Err(e) => {
            let _ = first.kill();
            let _ = first.wait();
            return Err(format!("cannot start {what}: {e}").into());
        }
    };
    let consumer_status = second.wait();
    let producer_status = first.wait();
    let producer_status = producer_status.map_err(|e| format!("waiting for {what}: {e}"))?;
    let consumer_status = consumer_status.map_err(|e| format!("waiting for {what}: {e}"))?;
    check_status(producer_status, &format!("{what} (producing side)"))?;
    check_status(consumer_status, &format!("{what} (consuming side)"))
}

// ---------------------------------------------------------------------------
// The ferry binary
// ---------------------------------------------------------------------------

/// A release build of `ferry` running in the background while the caller seeds
/// its databases.
pub struct FerryBuild {
    child: Child,
    binary: PathBuf,
}

/// Starts `cargo build --release --package ferry --bin ferry` (output on our
/// standard error); [`FerryBuild::finish`] waits for it.
pub fn start_ferry_build(root: &Path) -> Result<FerryBuild> {
    eprintln!("xtask: building ferry (cargo build --release --package ferry --bin ferry)");
    let child = crate::cargo(root)
        .args(["build", "--release", "--package", "ferry", "--bin", "ferry"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("running cargo build: {e}"))?;
    Ok(FerryBuild {
        child,
        binary: cargo_target_dir(root).join("release").join("ferry"),
    })
}

impl FerryBuild {
    /// Stops the build (the caller failed before it needed the binary).
    pub fn abort(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the build; returns the path of the binary.
    pub fn finish(mut self) -> Result<PathBuf> {
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for cargo build: {e}"))?;
        if !status.success() {
            return Err(format!(
                "building ferry failed ({status}); see the compiler output above, or run \
                 `cargo build --release -p ferry`"
            )
            .into());
        }
        if !self.binary.is_file() {
            return Err(format!(
                "cargo build succeeded but {} does not exist",
                self.binary.display()
            )
            .into());
        }
        Ok(self.binary)
    }
}

/// Cargo's target directory for the main build: `$CARGO_TARGET_DIR` (relative to
/// the workspace root) or `<root>/target`.
fn cargo_target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Connection URLs as a task file should hold them. The kit's own server has no
/// password, so the URLs are written as they are; a server from
/// `FERRY_TEST_PG_URL` may have one, and then the file holds `${VAR}` references
/// (which `ferry` interpolates) and the URLs travel in the environment.
pub struct TaskUrls {
    /// `[source] url` as written in the file.
    pub source: String,
    /// `[target] url` as written in the file.
    pub target: String,
    /// Environment for `ferry run` when the file holds `${VAR}` references.
    pub env: Vec<(String, String)>,
}

impl TaskUrls {
    /// URLs of `source_db` and `target_db` on `pg`.
    pub fn new(pg: &PgService, source_db: &str, target_db: &str) -> TaskUrls {
        if pg.redacted_url("") == pg.url("") {
            TaskUrls {
                source: pg.url(source_db),
                target: pg.url(target_db),
                env: Vec::new(),
            }
        } else {
            const SOURCE: &str = "FERRY_XTASK_SOURCE_URL";
            const TARGET: &str = "FERRY_XTASK_TARGET_URL";
            TaskUrls {
                source: format!("${{{SOURCE}}}"),
                target: format!("${{{TARGET}}}"),
                env: vec![
                    (SOURCE.to_owned(), pg.url(source_db)),
                    (TARGET.to_owned(), pg.url(target_db)),
                ],
            }
        }
    }
}

/// A full-load task file (DESIGN.md §5a): every table of schema `public`,
/// drop-and-create on the target.
pub fn full_load_task(urls: &TaskUrls, parallelism: usize, state_dir: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Written by `cargo xtask`; rewritten on every run.");
    let _ = writeln!(s, "[source]\nurl = {}\n", toml_string(&urls.source));
    let _ = writeln!(s, "[target]\nurl = {}\n", toml_string(&urls.target));
    let _ = writeln!(s, "[task]");
    let _ = writeln!(s, "mode = \"full-load\"");
    let _ = writeln!(s, "table-prep = \"drop-and-create\"");
    let _ = writeln!(s, "include = [\"public.*\"]");
    let _ = writeln!(s, "parallelism = {parallelism}");
    let _ = writeln!(
        s,
        "state-dir = {}",
        toml_string(&state_dir.display().to_string())
    );
    s
}

/// A TOML basic string holding `s`.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes the task file (a fresh state directory beside it) and returns its path.
pub fn write_task(dir: &Path, contents: &str, state_dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if state_dir.exists() {
        // A stale checkpoint would make `ferry run` resume instead of load.
        fs::remove_dir_all(state_dir)
            .map_err(|e| format!("removing {}: {e}", state_dir.display()))?;
    }
    let path = dir.join("task.toml");
    fs::write(&path, contents).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// `ferry run <task> [extra]` with inherited standard streams.
pub fn run_ferry(ferry: &Path, task: &Path, extra: &[&str], urls: &TaskUrls) -> Result<()> {
    let mut cmd = Command::new(ferry);
    cmd.arg("run").arg(task).args(extra).stdin(Stdio::null());
    for (key, value) in &urls.env {
        cmd.env(key, value);
    }
    let what = format!("`ferry run {}`", task.display());
    run_status(&mut cmd, &what)
}

// ---------------------------------------------------------------------------
// Databases and catalog queries
// ---------------------------------------------------------------------------

/// Drops `name` if it exists (terminating its connections) and creates it empty.
pub fn recreate_database(pg: &PgService, name: &str) -> Result<()> {
    pg.drop_database(name)?;
    pg.psql(
        "postgres",
        &format!("CREATE DATABASE {}", quote_ident(name)),
    )?;
    Ok(())
}

/// Whether database `name` exists.
pub fn database_exists(pg: &PgService, name: &str) -> Result<bool> {
    let out = pg.psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            quote_literal(name)
        ),
    )?;
    Ok(out.trim() == "1")
}

/// The ordinary tables of schema `public` in `db`, by name.
pub fn public_tables(pg: &PgService, db: &str) -> Result<Vec<String>> {
    let out = pg.psql(
        db,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
         ORDER BY c.relname",
    )?;
    Ok(out.lines().map(str::to_owned).collect())
}

/// Exact row counts of `tables` (schema `public`) in `db`, in the same order.
pub fn row_counts(pg: &PgService, db: &str, tables: &[String]) -> Result<Vec<u64>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let sql = tables
        .iter()
        .enumerate()
        .map(|(i, t)| format!("SELECT {i}, count(*) FROM public.{}", quote_ident(t)))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
        + " ORDER BY 1";
    let out = pg.psql(db, &sql)?;
    let counts = parse_pairs(&out)?;
    if counts.len() != tables.len() {
        return Err(format!("expected {} row counts, got: {out}", tables.len()).into());
    }
    counts
        .into_iter()
        .map(|(_, n)| {
            n.parse::<u64>()
                .map_err(|_| format!("not a row count: {n:?}").into())
        })
        .collect()
}

/// Lines of `a|b` as pairs.
pub fn parse_pairs(out: &str) -> Result<Vec<(String, String)>> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once('|')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| format!("unexpected psql output line: {l:?}").into())
        })
        .collect()
}

/// An SQL identifier, quoted.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `CHECKPOINT`, so that one run's dirty buffers are not written during the next
/// one's timing. Only a warning when not allowed (a non-superuser external server).
pub fn checkpoint(pg: &PgService) {
    if let Err(e) = pg.psql("postgres", "CHECKPOINT") {
        eprintln!("xtask: warning: CHECKPOINT failed (timings may be noisier): {e}");
    }
}

/// `12345678` → `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A plain-text table: columns padded to their widest cell; columns whose index
/// is in `right` are right-aligned.
pub fn text_table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right.contains(&i) {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if i + 1 < columns {
                    s.push_str(&" ".repeat(pad));
                }
            }
        }
        let mut s = s.trim_end().to_owned();
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("plain"), "\"plain\"");
        assert_eq!(toml_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(toml_string("\u{1}"), "\"\\u0001\"");
    }

    #[test]
    fn task_file_has_the_stable_keys() {
        let urls = TaskUrls {
            source: "postgres://postgres@127.0.0.1:5/src".into(),
            target: "${T}".into(),
            env: Vec::new(),
        };
        let task = full_load_task(&urls, 3, Path::new("/tmp/st"));
        assert!(task.contains("[source]\nurl = \"postgres://postgres@127.0.0.1:5/src\"\n"));
        assert!(task.contains("[target]\nurl = \"${T}\"\n"));
        assert!(task.contains("mode = \"full-load\"\n"));
        assert!(task.contains("table-prep = \"drop-and-create\"\n"));
        assert!(task.contains("include = [\"public.*\"]\n"));
        assert!(task.contains("parallelism = 3\n"));
        assert!(task.contains("state-dir = \"/tmp/st\"\n"));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(6_000_550), "6,000,550");
    }

    #[test]
    fn text_tables_align() {
        let t = text_table(
            &["name", "n"],
            &[
                vec!["a".into(), "1".into()],
                vec!["long".into(), "100".into()],
            ],
            &[1],
        );
        assert_eq!(t, "name    n\na       1\nlong  100\n");
    }

    #[test]
    fn pairs_parse() {
        let p = parse_pairs("0|12\n1|3\n").expect("pairs");
        assert_eq!(p, vec![("0".into(), "12".into()), ("1".into(), "3".into())]);
        assert!(parse_pairs("nope").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
