//! Ferry's test-service kit: real servers, started from installed binaries into a
//! throwaway directory, shared by every test process of a run (DESIGN.md §7).
//!
//! Tests find PostgreSQL through [`postgres_or_panic`] (or [`postgres`]) and
//! MariaDB through [`mariadb_or_panic`] (or [`mariadb`]):
//!
//! - If `FERRY_TEST_PG_URL` / `FERRY_TEST_MARIADB_URL` is set (by
//!   `cargo xtask test`, by `cargo xtask services env`, or by hand), that server is
//!   used and nothing is started.
//! - Otherwise the kit owns one PostgreSQL 15 and one MariaDB 10.11 instance per
//!   workspace checkout in `/tmp/ferry-<hash of the workspace path>/{pg,mariadb}`
//!   (or under `$FERRY_KIT_DIR`). An exclusive lock file per service guards
//!   start-up, so concurrent test processes start each once and then share it; an
//!   instance left running by an earlier process is reused.
//!   `cargo xtask services down` (or [`stop_all`]) stops them.
//!
//! Every test creates its own database with [`PgService::create_database`] /
//! [`MariaService::create_database`], so tests run in parallel and never see each
//! other's data.
//!
//! A test never silently skips: when the binaries are missing, [`postgres`] and
//! [`mariadb`] return [`KitError::Missing`] with the one-line `apt-get` command
//! that installs them, and the `_or_panic` variants panic with it. Callers that
//! choose to skip locally (see [`require_or_skip`]) must still fail when `CI=true`.
//!
//! The kit uses the standard library only, because `xtask` depends on it.

#![warn(missing_docs)]

mod mariadb;

pub use mariadb::{
    MARIADB_INSTALL_HINT, MARIADB_PASSWORD, MARIADB_URL_ENV, MARIADB_USER, MariaService,
    check_mariadb_binaries, local_mariadb, mariadb, mariadb_or_panic, running_mariadb,
};

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable holding the base URL of the PostgreSQL server tests use
/// (`postgres://postgres@127.0.0.1:PORT`, no database part).
pub const PG_URL_ENV: &str = "FERRY_TEST_PG_URL";

/// Environment variable overriding the kit's service directory
/// (default `/tmp/ferry-<hash of the workspace path>`).
pub const KIT_DIR_ENV: &str = "FERRY_KIT_DIR";

/// Environment variable overriding the PostgreSQL binary directory
/// (default [`PG_BIN_DIR`]).
pub const PG_BIN_ENV: &str = "FERRY_PG_BIN";

/// Where Debian's PostgreSQL 15 packages put the server binaries.
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The one command that installs what the PostgreSQL service needs (run as root).
pub const PG_INSTALL_HINT: &str = "apt-get update && apt-get install -y postgresql";

/// The PostgreSQL superuser the kit's instance is initialised with.
const PG_SUPERUSER: &str = "postgres";

/// The OS user that owns the data directory when the kit runs as root.
const PG_OS_USER: &str = "postgres";

/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes with NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Everything that can go wrong while providing a test service.
#[derive(Debug)]
pub enum KitError {
    /// The service's binaries are not installed.
    Missing {
        /// What is missing, and the one-line `apt-get` command that installs it.
        hint: String,
    },
    /// A filesystem or process operation failed.
    Io {
        /// What the kit was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// An external command (initdb, pg_ctl, psql, ...) exited unsuccessfully.
    Command {
        /// The command line, with any password removed.
        command: String,
        /// How it exited.
        status: String,
        /// Its standard error (and, where useful, the tail of the server log).
        stderr: String,
    },
    /// `FERRY_TEST_PG_URL`, `FERRY_TEST_MARIADB_URL` (or another URL) could not be
    /// understood.
    InvalidUrl {
        /// Why the URL was rejected (the URL itself is not repeated: it may hold a password).
        reason: String,
    },
    /// The kit's directory is unusable (for example, its socket path is too long).
    Path {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// No kit-managed instance is running (for `cargo xtask services env`).
    NotRunning {
        /// Which service.
        service: &'static str,
    },
}

impl fmt::Display for KitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KitError::Missing { hint } => write!(f, "{hint}"),
            KitError::Io { context, source } => write!(f, "{context}: {source}"),
            KitError::Command {
                command,
                status,
                stderr,
            } => {
                write!(f, "`{command}` failed ({status})")?;
                let stderr = stderr.trim();
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            KitError::InvalidUrl { reason } => write!(f, "invalid service URL: {reason}"),
            KitError::Path { path, reason } => write!(f, "{}: {reason}", path.display()),
            KitError::NotRunning { service } => write!(
                f,
                "no kit-managed {service} instance is running; start one with `cargo xtask services up`"
            ),
        }
    }
}

impl std::error::Error for KitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KitError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> KitError {
    let context = context.into();
    move |source| KitError::Io { context, source }
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// A running PostgreSQL server that tests may use.
#[derive(Clone)]
pub struct PgService {
    /// Base URL without a database, e.g. `postgres://postgres@127.0.0.1:54321`.
    /// May contain a password when it came from `FERRY_TEST_PG_URL`: never print it
    /// (use [`PgService::redacted_url`]).
    pub base_url: String,
    /// TCP port on the host in `base_url`.
    pub port: u16,
    parsed: ServiceUrl,
    /// Service directory when the kit manages this instance; `None` for an external one.
    dir: Option<PathBuf>,
    /// Whether this process started the server (as opposed to reusing one).
    started_here: bool,
}

impl fmt::Debug for PgService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgService")
            .field("base_url", &self.redacted_url(""))
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("started_here", &self.started_here)
            .finish()
    }
}

/// Returns the one shared PostgreSQL 15 instance for this run, starting it if needed.
///
/// Uses `FERRY_TEST_PG_URL` when set (starting nothing); otherwise the kit's own
/// instance (see [`local_postgres`]). Returns [`KitError::Missing`] with an
/// `apt-get` hint when the binaries are not installed.
pub fn postgres() -> Result<PgService, KitError> {
    match std::env::var(PG_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => PgService::from_url(url.trim()),
        _ => local_postgres(),
    }
}

/// Like [`postgres`], but panics with a clear message (including the install hint
/// when binaries are missing). This is what tests call: a test never silently skips.
pub fn postgres_or_panic() -> PgService {
    match postgres() {
        Ok(pg) => pg,
        Err(e) => panic!("test service PostgreSQL is unavailable: {e}"),
    }
}

/// Turns a service result into `Some(service)`, or `None` when the binaries are
/// missing and the caller may skip.
///
/// Semantics: a [`KitError::Missing`] prints the install hint to stderr and returns
/// `None` — **except under `CI=true`, where it panics**, because CI must never
/// pass by skipping. Any other error panics. Ferry's own tests use
/// [`postgres_or_panic`] instead; this exists for ad-hoc local tooling.
pub fn require_or_skip<T>(result: Result<T, KitError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(KitError::Missing { hint }) if !is_ci() => {
            eprintln!("SKIPPED (service binaries missing): {hint}");
            None
        }
        Err(e) => panic!("test service unavailable: {e}"),
    }
}

/// Whether `CI` is set to a true value (`true`/`1`/`yes`).
pub fn is_ci() -> bool {
    matches!(
        std::env::var("CI").map(|v| v.trim().to_ascii_lowercase()),
        Ok(v) if v == "true" || v == "1" || v == "yes"
    )
}

/// Returns the kit's own PostgreSQL instance (ignoring `FERRY_TEST_PG_URL`),
/// starting it if needed; `cargo xtask services up` uses this.
///
/// Start-up is guarded by an exclusive lock on `<kit dir>/pg.lock`, so concurrent
/// processes start the server once. A running instance recorded in the directory
/// (port file + `pg_ctl status` + `SELECT 1`) is reused.
pub fn local_postgres() -> Result<PgService, KitError> {
    let mut cached = LOCAL_PG.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pg) = cached.as_ref() {
        return Ok(pg.clone());
    }
    let layout = PgLayout::resolve()?;
    check_pg_binaries(&layout.bin, true)?;
    let _lock = lock_file(&layout.lock)?;
    let pg = match layout.running_instance()? {
        Some(pg) => pg,
        None => layout.start()?,
    };
    *cached = Some(pg.clone());
    Ok(pg)
}

/// Returns the kit's PostgreSQL instance if one is running, without starting it
/// (`cargo xtask services env`). Ignores `FERRY_TEST_PG_URL`.
pub fn running_postgres() -> Result<Option<PgService>, KitError> {
    let layout = PgLayout::resolve()?;
    if !layout.dir.exists() {
        return Ok(None);
    }
    check_pg_binaries(&layout.bin, true)?;
    let _lock = lock_file(&layout.lock)?;
    layout.running_instance()
}

/// A PostgreSQL instance of its own, for a test that stops and starts the server
/// (the shared one must stay up for the other tests). Stopped and removed on drop.
pub struct PrivatePg {
    layout: PgLayout,
    /// The running server.
    pub service: PgService,
    port: u16,
}

/// Starts a private PostgreSQL instance named `name` under the kit directory
/// (same settings as the shared one), replacing a leftover of the same name.
pub fn private_postgres(name: &str) -> Result<PrivatePg, KitError> {
    let base = kit_dir()?;
    let layout = PgLayout::for_dir(base.join(name), base.join(format!("{name}.lock")))?;
    check_pg_binaries(&layout.bin, true)?;
    let _lock = lock_file(&layout.lock)?;
    layout.stop_and_remove()?;
    let service = layout.start()?;
    let port = service.port;
    Ok(PrivatePg {
        layout,
        service,
        port,
    })
}

impl PrivatePg {
    /// Stops the server (`pg_ctl stop -m fast`: sessions are disconnected).
    pub fn stop(&self) -> Result<(), KitError> {
        self.layout.pg_ctl_stop("fast")
    }

    /// Starts the stopped server again on the same port.
    pub fn start(&self) -> Result<(), KitError> {
        self.layout.pg_ctl_start(self.port)?;
        self.service.psql("postgres", "SELECT 1").map(|_| ())
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if let Ok(_lock) = lock_file(&self.layout.lock) {
            let _ = self.layout.stop_and_remove();
        }
    }
}

/// Stops every kit-managed service of this workspace (PostgreSQL and MariaDB) and
/// removes its directory (`cargo xtask services down`); the lock files and the
/// cached MariaDB template data directory in the kit directory stay. Does nothing
/// to a server named by `FERRY_TEST_PG_URL` or `FERRY_TEST_MARIADB_URL`. Succeeds
/// when nothing is running; tries every service even when one fails, and returns
/// the first error.
pub fn stop_all() -> Result<(), KitError> {
    let pg = stop_local_postgres();
    let maria = mariadb::stop_local_mariadb();
    pg.and(maria)
}

fn stop_local_postgres() -> Result<(), KitError> {
    let layout = PgLayout::resolve()?;
    {
        let mut cached = LOCAL_PG.lock().unwrap_or_else(|e| e.into_inner());
        *cached = None;
    }
    if layout.dir.exists() {
        let _lock = lock_file(&layout.lock)?;
        layout.stop_and_remove()?;
    }
    // The lock files stay: deleting a lock file another process is waiting on
    // would let two processes hold "the" lock at once.
    Ok(())
}

/// The workspace root this kit was compiled in (the directory whose `Cargo.toml`
/// has a `[workspace]` table).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dir: &Path = &manifest_dir;
    loop {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&manifest)
            && text.lines().any(|l| l.trim() == "[workspace]")
        {
            return dir.to_path_buf();
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => return manifest_dir,
        }
    }
}

/// The kit's service directory: `$FERRY_KIT_DIR`, or
/// `/tmp/ferry-<hash of the workspace path>`.
pub fn kit_dir() -> Result<PathBuf, KitError> {
    if let Some(dir) = std::env::var_os(KIT_DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            return Err(KitError::Path {
                path: dir,
                reason: format!("{KIT_DIR_ENV} must be an absolute path"),
            });
        }
        return Ok(dir);
    }
    let root = workspace_root();
    let hash = fnv1a64(root.as_os_str().as_encoded_bytes());
    Ok(PathBuf::from(format!("/tmp/ferry-{hash:016x}")))
}

/// Whether this process runs as root (effective uid 0).
pub fn running_as_root() -> bool {
    if let Ok(meta) = fs::metadata("/proc/self") {
        return meta.uid() == 0;
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The PostgreSQL server binary directory: `$FERRY_PG_BIN` or [`PG_BIN_DIR`].
pub fn pg_bin_dir() -> PathBuf {
    std::env::var_os(PG_BIN_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PG_BIN_DIR))
}

/// Checks that the PostgreSQL 15 server binaries (`initdb`, `pg_ctl`, `postgres`,
/// `psql`) are installed; returns [`KitError::Missing`] with the install hint if not.
pub fn check_postgres_binaries() -> Result<(), KitError> {
    check_pg_binaries(&pg_bin_dir(), true)
}

impl PgService {
    /// Builds a service handle for an external server from a base URL such as
    /// `postgres://user:password@host:port` (a database path and a `?query` are
    /// allowed; [`PgService::url`] replaces the database and keeps the query).
    pub fn from_url(url: &str) -> Result<PgService, KitError> {
        let parsed = ServiceUrl::parse(url, &PG_URL_SPEC)?;
        check_psql()?;
        Ok(PgService {
            base_url: parsed.base(),
            port: parsed.port,
            parsed,
            dir: None,
            started_here: false,
        })
    }

    fn local(port: u16, dir: PathBuf, started_here: bool) -> PgService {
        let parsed = ServiceUrl {
            scheme: "postgres".into(),
            user: Some(PG_SUPERUSER.into()),
            password: None,
            host: "127.0.0.1".into(),
            port,
            query: None,
        };
        PgService {
            base_url: parsed.base(),
            port,
            parsed,
            dir: Some(dir),
            started_here,
        }
    }

    /// The URL of `database` on this server (`<base_url>/<database>`; just the base
    /// URL when `database` is empty).
    pub fn url(&self, database: &str) -> String {
        self.parsed.with_database(database, Password::Reveal)
    }

    /// [`PgService::url`] with any password replaced by `***`, safe to print.
    pub fn redacted_url(&self, database: &str) -> String {
        self.parsed.with_database(database, Password::Redact)
    }

    /// Whether this process started the server (rather than reusing a running one
    /// or using `FERRY_TEST_PG_URL`). `cargo xtask test` stops only what it started.
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Whether the kit manages this instance (as opposed to `FERRY_TEST_PG_URL`).
    pub fn is_kit_managed(&self) -> bool {
        self.dir.is_some()
    }

    /// Creates a database with a unique name starting with `prefix`
    /// (`<prefix>_<pid>_<counter>_<random>`, lower-case, at most 63 bytes) and
    /// returns its name.
    pub fn create_database(&self, prefix: &str) -> Result<String, KitError> {
        let name = unique_name(prefix);
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(name)
    }

    /// Drops `database` (if it exists), terminating its connections.
    pub fn drop_database(&self, database: &str) -> Result<(), KitError> {
        let quoted = database.replace('"', "\"\"");
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{quoted}\" WITH (FORCE)"),
        )?;
        Ok(())
    }

    /// Runs `sql` (one or more statements) in `database` with
    /// `psql -X -A -t -q -v ON_ERROR_STOP=1` and returns its standard output with
    /// trailing newlines removed: one line per row, columns separated by `|`.
    /// Handy for server-side checks such as
    /// `SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM t`.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, KitError> {
        let psql = psql_path()?;
        let mut cmd = Command::new(&psql);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.parsed.with_database(database, Password::Omit))
            .args(["-f", "-"])
            .env_remove("PGPASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(password) = &self.parsed.password {
            cmd.env("PGPASSWORD", password);
        }
        let description = format!("psql -d {}", self.redacted_url(database));
        let mut child = cmd
            .spawn()
            .map_err(io_err(format!("running {}", psql.display())))?;
        let stdin = child.stdin.take();
        let sql_owned = sql.to_owned();
        // Feed stdin from a thread so a large result cannot deadlock the pipes.
        let writer = std::thread::spawn(move || -> io::Result<()> {
            if let Some(mut stdin) = stdin {
                stdin.write_all(sql_owned.as_bytes())?;
                stdin.write_all(b"\n")?;
            }
            Ok(())
        });
        let output = child
            .wait_with_output()
            .map_err(io_err(format!("waiting for {description}")))?;
        let write_result = writer.join();
        if !output.status.success() {
            return Err(KitError::Command {
                command: description,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        if let Ok(Err(e)) = write_result {
            return Err(KitError::Io {
                context: format!("sending SQL to {description}"),
                source: e,
            });
        }
        let mut out = String::from_utf8_lossy(&output.stdout).into_owned();
        while out.ends_with('\n') || out.ends_with('\r') {
            out.pop();
        }
        Ok(out)
    }

    /// Stops this instance (`pg_ctl stop -m fast`) and removes its directory when
    /// the kit manages it; does nothing for a server from `FERRY_TEST_PG_URL`.
    pub fn stop(&self) -> Result<(), KitError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        {
            let mut cached = LOCAL_PG.lock().unwrap_or_else(|e| e.into_inner());
            *cached = None;
        }
        // `<kit dir>/pg` → `<kit dir>/pg.lock`, as in `PgLayout::resolve`.
        let layout = PgLayout::for_dir(dir.clone(), dir.with_extension("lock"))?;
        let _lock = lock_file(&layout.lock)?;
        layout.stop_and_remove()
    }
}

// ---------------------------------------------------------------------------
// The kit-managed instance
// ---------------------------------------------------------------------------

static LOCAL_PG: Mutex<Option<PgService>> = Mutex::new(None);

/// Paths of the kit's PostgreSQL instance.
struct PgLayout {
    /// `<kit dir>/pg`, owned by the `postgres` OS user when running as root;
    /// holds the unix socket, the log, the port file and the data directory.
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port_file: PathBuf,
    lock: PathBuf,
    bin: PathBuf,
    as_root: bool,
}

impl PgLayout {
    fn resolve() -> Result<PgLayout, KitError> {
        let base = kit_dir()?;
        PgLayout::for_dir(base.join("pg"), base.join("pg.lock"))
    }

    fn for_dir(dir: PathBuf, lock: PathBuf) -> Result<PgLayout, KitError> {
        // `<dir>/.s.PGSQL.65535` must fit in sun_path.
        let socket_len = dir.as_os_str().len() + "/.s.PGSQL.65535".len();
        if socket_len > MAX_SOCKET_PATH {
            return Err(KitError::Path {
                path: dir,
                reason: format!(
                    "unix socket path would be {socket_len} bytes (limit {MAX_SOCKET_PATH}); \
                     set {KIT_DIR_ENV} to a shorter absolute path"
                ),
            });
        }
        Ok(PgLayout {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            port_file: dir.join("port"),
            lock,
            bin: pg_bin_dir(),
            as_root: running_as_root(),
            dir,
        })
    }

    /// A command for a PostgreSQL server binary, run as the `postgres` OS user when
    /// we are root (initdb and pg_ctl refuse to run as root).
    fn pg_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", PG_OS_USER, "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // A cwd the postgres user cannot enter (e.g. /root) makes the tools complain.
        cmd.current_dir(if self.dir.is_dir() {
            &self.dir
        } else {
            Path::new("/")
        });
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The running instance recorded in the directory, if it is healthy.
    /// Caller holds the lock.
    fn running_instance(&self) -> Result<Option<PgService>, KitError> {
        if !self.data.join("PG_VERSION").exists() {
            return Ok(None);
        }
        if !self.is_running()? {
            return Ok(None);
        }
        let port = fs::read_to_string(&self.port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok());
        if let Some(port) = port {
            let pg = PgService::local(port, self.dir.clone(), false);
            if pg.psql("postgres", "SELECT 1").is_ok() {
                return Ok(Some(pg));
            }
        }
        // Running but unusable (port file lost, or not answering): stop it so that
        // `start` can begin again from a clean state.
        let _ = self.pg_ctl_stop("immediate");
        Ok(None)
    }

    fn is_running(&self) -> Result<bool, KitError> {
        let out = self
            .pg_command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&self.data)
            .output()
            .map_err(io_err("running pg_ctl status"))?;
        Ok(out.status.success())
    }

    /// Starts the server (initialising the data directory if needed). Caller holds
    /// the lock and has checked nothing healthy is running.
    fn start(&self) -> Result<PgService, KitError> {
        let fresh_init = !self.data.join("PG_VERSION").exists();
        if fresh_init {
            self.init()?;
        }
        match self.start_on_free_port() {
            Ok(pg) => Ok(pg),
            Err(_) if !fresh_init => {
                // A stale data directory (crashed run, other version...): start over.
                let _ = self.pg_ctl_stop("immediate");
                self.init()?;
                self.start_on_free_port()
            }
            Err(e) => Err(e),
        }
    }

    fn start_on_free_port(&self) -> Result<PgService, KitError> {
        let mut last_err = None;
        // Another process may grab the port between our probe and the bind; retry.
        for _ in 0..3 {
            let port = free_port()?;
            match self.pg_ctl_start(port) {
                Ok(()) => {
                    write_atomic(&self.port_file, format!("{port}\n").as_bytes())?;
                    let pg = PgService::local(port, self.dir.clone(), true);
                    pg.psql("postgres", "SELECT 1")?;
                    return Ok(pg);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| KitError::Command {
            command: "pg_ctl start".into(),
            status: "not attempted".into(),
            stderr: String::new(),
        }))
    }

    /// (Re)creates the directory and runs initdb with the kit's settings.
    fn init(&self) -> Result<(), KitError> {
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir)
                .map_err(io_err(format!("removing {}", self.dir.display())))?;
        }
        if let Some(base) = self.dir.parent() {
            fs::create_dir_all(base).map_err(io_err(format!("creating {}", base.display())))?;
            // The postgres OS user must be able to traverse it.
            fs::set_permissions(base, fs::Permissions::from_mode(0o755))
                .map_err(io_err(format!("setting permissions of {}", base.display())))?;
        }
        fs::create_dir(&self.dir).map_err(io_err(format!("creating {}", self.dir.display())))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755)).map_err(io_err(
            format!("setting permissions of {}", self.dir.display()),
        ))?;
        if self.as_root {
            chown_to_postgres(&self.dir)?;
        }
        let mut cmd = self.pg_command("initdb");
        cmd.arg("-D")
            .arg(&self.data)
            .args([
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "-U",
                PG_SUPERUSER,
            ])
            .env_remove("PGDATA");
        run_checked(cmd, "initdb")?;
        // Settings CDC needs (DESIGN.md §7). Kept in postgresql.conf rather than on
        // the command line so a manual `pg_ctl restart` keeps them.
        let settings = format!(
            "\n# Ferry test-service kit\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             wal_level = logical\n\
             max_replication_slots = 32\n\
             max_wal_senders = 32\n\
             track_commit_timestamp = on\n\
             fsync = off\n\
             synchronous_commit = on\n\
             full_page_writes = off\n\
             max_connections = 200\n\
             shared_buffers = 256MB\n",
            self.dir.display().to_string().replace('\'', "''")
        );
        let conf = self.data.join("postgresql.conf");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_err(format!("opening {}", conf.display())))?;
        file.write_all(settings.as_bytes())
            .map_err(io_err(format!("writing {}", conf.display())))?;
        // The superuser needs no password; every other role must give its own, so
        // tests can check what a wrong password does.
        let hba = format!(
            "# Ferry test-service kit\n\
             local all {PG_SUPERUSER} trust\n\
             host all {PG_SUPERUSER} 127.0.0.1/32 trust\n\
             host replication {PG_SUPERUSER} 127.0.0.1/32 trust\n\
             local all all scram-sha-256\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host replication all 127.0.0.1/32 scram-sha-256\n"
        );
        let hba_path = self.data.join("pg_hba.conf");
        fs::write(&hba_path, hba).map_err(io_err(format!("writing {}", hba_path.display())))?;
        Ok(())
    }

    fn pg_ctl_start(&self, port: u16) -> Result<(), KitError> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("start")
            .arg("-w")
            .args(["-t", "60"])
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .arg("-o")
            .arg(format!("-p {port}"));
        run_checked(cmd, "pg_ctl start").map_err(|e| self.with_log_tail(e))?;
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), KitError> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("stop")
            .arg("-w")
            .args(["-t", "60", "-m", mode])
            .arg("-D")
            .arg(&self.data);
        run_checked(cmd, "pg_ctl stop")?;
        Ok(())
    }

    /// Stops the server if running and removes the directory. Caller holds the lock.
    fn stop_and_remove(&self) -> Result<(), KitError> {
        if self.data.join("PG_VERSION").exists()
            && self.is_running()?
            && let Err(e) = self.pg_ctl_stop("fast")
        {
            self.pg_ctl_stop("immediate").map_err(|_| e)?;
        }
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir)
                .map_err(io_err(format!("removing {}", self.dir.display())))?;
        }
        Ok(())
    }

    /// Appends the end of the server log to a command error: that is where
    /// PostgreSQL says why it did not start.
    fn with_log_tail(&self, err: KitError) -> KitError {
        match err {
            KitError::Command {
                command,
                status,
                mut stderr,
            } => {
                if let Ok(log) = fs::read_to_string(&self.log) {
                    let lines: Vec<&str> = log.lines().collect();
                    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                    stderr.push_str(&format!(
                        "\n--- last lines of {} ---\n{tail}",
                        self.log.display()
                    ));
                }
                KitError::Command {
                    command,
                    status,
                    stderr,
                }
            }
            other => other,
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn missing_hint(what: &str) -> KitError {
    KitError::Missing {
        hint: format!(
            "{what} not found; install PostgreSQL 15 with: {PG_INSTALL_HINT}{}",
            if running_as_root() { "" } else { " (as root)" }
        ),
    }
}

fn check_pg_binaries(bin: &Path, server: bool) -> Result<(), KitError> {
    if server {
        for program in ["initdb", "pg_ctl", "postgres"] {
            let path = bin.join(program);
            if !path.is_file() {
                return Err(missing_hint(&format!(
                    "PostgreSQL server binary {}",
                    path.display()
                )));
            }
        }
        if running_as_root() && !user_exists(PG_OS_USER) {
            return Err(missing_hint(&format!("OS user `{PG_OS_USER}`")));
        }
    }
    check_psql()
}

fn check_psql() -> Result<(), KitError> {
    psql_path().map(|_| ())
}

/// `psql` from the server binary directory, else from `PATH`.
fn psql_path() -> Result<PathBuf, KitError> {
    let bundled = pg_bin_dir().join("psql");
    if bundled.is_file() {
        return Ok(bundled);
    }
    find_program("psql").ok_or_else(|| missing_hint("psql"))
}

/// The first `name` on `PATH` that is a file (what a shell would run), if any.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn chown_to_postgres(path: &Path) -> Result<(), KitError> {
    let (uid, gid) =
        user_ids(PG_OS_USER).ok_or_else(|| missing_hint(&format!("OS user `{PG_OS_USER}`")))?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(io_err(format!("chown {} to {PG_OS_USER}", path.display())))
}

/// The uid and primary gid of OS user `user`, if it exists.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// `name` from the first of `dirs` that has it, else from `PATH`.
fn find_program_in(name: &str, dirs: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .or_else(|| find_program(name))
}

fn run_checked(mut cmd: Command, name: &str) -> Result<Output, KitError> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(io_err(format!("running {name}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.trim().is_empty() {
            stderr = format!("{}\n{}", stdout.trim(), stderr);
        }
        Err(KitError::Command {
            command: describe(&cmd),
            status: out.status.to_string(),
            stderr,
        })
    }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Takes an exclusive lock on `path` (created if needed), held until the returned
/// file is dropped.
#[allow(clippy::incompatible_msrv)] // File::lock: Rust 1.89; the toolchain is 1.95.
fn lock_file(path: &Path) -> Result<File, KitError> {
    if let Some(parent) = path.parent()
        && !parent.exists()
    {
        fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).map_err(io_err(format!(
            "setting permissions of {}",
            parent.display()
        )))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(format!("opening lock file {}", path.display())))?;
    file.lock()
        .map_err(io_err(format!("locking {}", path.display())))?;
    Ok(file)
}

fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), KitError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, contents).map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_err(format!("renaming to {}", path.display())))
}

fn free_port() -> Result<u16, KitError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_err("binding 127.0.0.1:0"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("reading the bound port"))?
        .port();
    Ok(port)
}

/// FNV-1a: a hash that is stable across processes and Rust versions.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<prefix>_<pid>_<counter>_<random>`: lower-case `[a-z0-9_]`, at most 63 bytes
/// (PostgreSQL's identifier limit), never starting with a digit.
fn unique_name(prefix: &str) -> String {
    let counter = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(counter);
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    let random = hasher.finish() & 0xff_ffff;
    let suffix = format!("_{}_{counter}_{random:06x}", std::process::id());
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean.insert(0, 't');
    }
    clean.truncate(63 - suffix.len());
    clean + &suffix
}

/// How a URL built from [`ServiceUrl`] shows its password.
#[derive(Clone, Copy)]
enum Password {
    /// As is (percent-encoded): for handing to clients.
    Reveal,
    /// As `***`: for messages.
    Redact,
    /// Left out: for command lines (the password goes in `PGPASSWORD`).
    Omit,
}

/// What the URLs of one kind of service look like.
pub(crate) struct UrlSpec {
    /// The environment variable such URLs usually come from (for messages).
    pub(crate) env: &'static str,
    /// Accepted schemes; the first is the canonical one.
    pub(crate) schemes: &'static [&'static str],
    /// The port when the URL has none.
    pub(crate) default_port: u16,
}

/// `postgres://` URLs.
const PG_URL_SPEC: UrlSpec = UrlSpec {
    env: PG_URL_ENV,
    schemes: &["postgres", "postgresql"],
    default_port: 5432,
};

/// A parsed service URL (`postgres://`, `mysql://`); just enough for the kit (no
/// percent-decoding of the user or host, which is not needed for test servers).
#[derive(Clone)]
pub(crate) struct ServiceUrl {
    scheme: String,
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: u16,
    query: Option<String>,
}

impl ServiceUrl {
    pub(crate) fn parse(url: &str, spec: &UrlSpec) -> Result<ServiceUrl, KitError> {
        let invalid = |reason: &str| KitError::InvalidUrl {
            reason: format!("{}: {reason}", spec.env),
        };
        let schemes = spec
            .schemes
            .iter()
            .map(|s| format!("{s}://"))
            .collect::<Vec<_>>()
            .join(" or ");
        let canonical = spec.schemes.first().copied().unwrap_or("scheme");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(&format!("expected {canonical}://user@host:port")))?;
        if !spec.schemes.contains(&scheme) {
            return Err(invalid(&format!("scheme must be {schemes}")));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_owned())),
            None => (rest, None),
        };
        // Anything after the authority is a database name, which `url()` replaces.
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (Some(user.to_owned()), Some(percent_decode(pw))),
                None => (Some(u.to_owned()), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            let (h, after) = stripped
                .split_once(']')
                .ok_or_else(|| invalid("unterminated [IPv6] host"))?;
            (format!("[{h}]"), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| invalid("port is not a number"))?,
            None => spec.default_port,
        };
        Ok(ServiceUrl {
            scheme: scheme.to_owned(),
            user,
            password,
            host,
            port,
            query,
        })
    }

    #[cfg(test)]
    fn parse_pg(url: &str) -> Result<ServiceUrl, KitError> {
        ServiceUrl::parse(url, &PG_URL_SPEC)
    }

    fn authority(&self, password: Password) -> String {
        let mut s = String::new();
        if let Some(user) = &self.user {
            s.push_str(user);
            match (&self.password, password) {
                (Some(pw), Password::Reveal) => {
                    s.push(':');
                    s.push_str(&percent_encode(pw));
                }
                (Some(_), Password::Redact) => s.push_str(":***"),
                (None, _) | (Some(_), Password::Omit) => {}
            }
            s.push('@');
        }
        s.push_str(&format!("{}:{}", self.host, self.port));
        s
    }

    fn base(&self) -> String {
        let mut s = format!("{}://{}", self.scheme, self.authority(Password::Reveal));
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    fn with_database(&self, database: &str, password: Password) -> String {
        let mut s = format!("{}://{}", self.scheme, self.authority(password));
        if !database.is_empty() {
            s.push('/');
            s.push_str(&percent_encode(database));
        }
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            // Both digits are < 16, so the value fits in a byte.
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_postgres_and_creates_databases() {
        let pg = postgres_or_panic();
        assert!(pg.port > 0);
        assert_eq!(pg.psql("postgres", "SELECT 1").expect("SELECT 1"), "1");
        assert_eq!(
            pg.psql("postgres", "SHOW wal_level")
                .expect("SHOW wal_level"),
            "logical"
        );
        let a = pg.create_database("kit_test").expect("first database");
        let b = pg.create_database("kit_test").expect("second database");
        assert_ne!(a, b);
        for db in [&a, &b] {
            let out = pg
                .psql(
                    db,
                    "CREATE TABLE t (id int PRIMARY KEY, v text);\n\
                     INSERT INTO t VALUES (1, 'a'), (2, 'b');\n\
                     SELECT current_database(), count(*) FROM t;",
                )
                .expect("query in new database");
            assert_eq!(out, format!("{db}|2"));
            assert!(pg.url(db).ends_with(&format!("/{db}")));
        }
        // Same instance on a second call.
        let again = postgres_or_panic();
        assert_eq!(again.port, pg.port);
        pg.drop_database(&a).expect("drop first");
        pg.drop_database(&b).expect("drop second");
    }

    #[test]
    fn psql_reports_sql_errors() {
        let pg = postgres_or_panic();
        let err = pg
            .psql("postgres", "SELECT * FROM no_such_table_xyz")
            .expect_err("must fail");
        assert!(err.to_string().contains("no_such_table_xyz"), "{err}");
    }

    #[test]
    fn unique_names_are_valid_identifiers() {
        let long = "X".repeat(100);
        for prefix in ["", "9lives", "Ferry-Test", long.as_str()] {
            let name = unique_name(prefix);
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert!(!name.starts_with(|c: char| c.is_ascii_digit()), "{name}");
        }
        assert_ne!(unique_name("a"), unique_name("a"));
    }

    #[test]
    fn url_parsing_and_redaction() {
        let u =
            ServiceUrl::parse_pg("postgres://alice:p%40ss@db.example:6543/shop?sslmode=disable")
                .expect("parse");
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.port, 6543);
        assert_eq!(
            u.with_database("x", Password::Redact),
            "postgres://alice:***@db.example:6543/x?sslmode=disable"
        );
        assert_eq!(
            u.with_database("x", Password::Reveal),
            "postgres://alice:p%40ss@db.example:6543/x?sslmode=disable"
        );
        let u = ServiceUrl::parse_pg("postgresql://postgres@127.0.0.1").expect("parse");
        assert_eq!(u.port, 5432);
        assert_eq!(u.base(), "postgresql://postgres@127.0.0.1:5432");
        assert!(ServiceUrl::parse_pg("mysql://x@y").is_err());
        assert!(ServiceUrl::parse_pg("postgres://u@h:notaport").is_err());
    }

    #[test]
    fn external_service_never_shows_its_password() {
        let pg = PgService::from_url("postgres://bob:hunter2@127.0.0.1:6543/ignored")
            .expect("external service");
        assert_eq!(pg.port, 6543);
        assert!(!pg.is_kit_managed());
        assert!(!pg.started_here());
        assert_eq!(pg.url("db"), "postgres://bob:hunter2@127.0.0.1:6543/db");
        assert_eq!(
            pg.redacted_url("db"),
            "postgres://bob:***@127.0.0.1:6543/db"
        );
        assert!(!format!("{pg:?}").contains("hunter2"));
        let err = pg
            .psql("db", "SELECT 1")
            .expect_err("nothing listens there");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // Stopping an external server is a no-op.
        pg.stop().expect("no-op");
    }

    #[test]
    fn kit_dir_is_short_and_stable() {
        let dir = kit_dir().expect("kit dir");
        assert_eq!(dir, kit_dir().expect("kit dir"));
        assert!(dir.as_os_str().len() + "/pg/.s.PGSQL.65535".len() <= MAX_SOCKET_PATH);
    }
}
