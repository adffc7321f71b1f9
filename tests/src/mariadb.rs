//! MariaDB 10.11 for tests (DESIGN.md §7), shared like PostgreSQL:
//!
//! - `FERRY_TEST_MARIADB_URL` set (`mysql://user:password@host:port`): that server
//!   is used and nothing is started.
//! - Otherwise one instance per workspace checkout in `<kit dir>/mariadb`, guarded
//!   by `<kit dir>/mariadb.lock`, reused while it runs. Its data directory is a copy
//!   of a cached template (`<kit dir>/mariadb-template`, made once by
//!   `mariadb-install-db`): a copy takes well under a second, install-db seconds.
//!   The server runs detached (`setsid -f`), so it outlives the test process that
//!   started it; it is stopped with SIGTERM.
//!
//! The instance has its own port, socket and data directory, and ignores every
//! option file (`--no-defaults`), so it never clashes with a system MariaDB.
//! Tests connect as [`MARIADB_USER`] with password [`MARIADB_PASSWORD`] over TCP;
//! `root` (no password) stays reachable over the unix socket, and
//! [`MariaService::sql`] uses it.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    KIT_DIR_ENV, KitError, MAX_SOCKET_PATH, Password, ServiceUrl, UrlSpec, describe,
    find_program_in, free_port, io_err, kit_dir, lock_file, run_checked, running_as_root,
    unique_name, user_exists, user_ids, write_atomic,
};

/// Environment variable holding the base URL of the MariaDB server tests use
/// (`mysql://ferry:ferry-test-pw@127.0.0.1:PORT`, no database part).
pub const MARIADB_URL_ENV: &str = "FERRY_TEST_MARIADB_URL";

/// The one command that installs what the MariaDB service needs (run as root).
pub const MARIADB_INSTALL_HINT: &str =
    "apt-get update && apt-get install -y mariadb-server mariadb-client";

/// The password-authenticated user the kit creates on its MariaDB instance, with
/// every privilege (`ALL PRIVILEGES ON *.* WITH GRANT OPTION`, which includes the
/// replication ones CDC needs).
pub const MARIADB_USER: &str = "ferry";

/// The password of [`MARIADB_USER`] on the kit's instance. A test password, fine to
/// show in URLs.
pub const MARIADB_PASSWORD: &str = "ferry-test-pw";

/// The OS user that owns the data directory and runs the server when we are root.
const MARIADB_OS_USER: &str = "mysql";

/// Where Debian puts `mariadbd`; searched before `PATH`.
const SERVER_DIRS: &[&str] = &["/usr/sbin"];

/// Where Debian puts `mariadb-install-db`, `mariadb` and `setsid`; searched before `PATH`.
const CLIENT_DIRS: &[&str] = &["/usr/bin"];

/// How long a start may take before the kit gives up (a loaded 2-core machine
/// running a whole test suite can be slow).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// `mysql://` URLs.
const MARIADB_URL_SPEC: UrlSpec = UrlSpec {
    env: MARIADB_URL_ENV,
    schemes: &["mysql", "mariadb"],
    default_port: 3306,
};

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// A running MariaDB server that tests may use.
#[derive(Clone)]
pub struct MariaService {
    /// Base URL without a database, e.g.
    /// `mysql://ferry:ferry-test-pw@127.0.0.1:33061`. For the kit's instance the
    /// password is the test password [`MARIADB_PASSWORD`]; one from
    /// `FERRY_TEST_MARIADB_URL` may be real: never print it (use
    /// [`MariaService::redacted_url`]).
    pub base_url: String,
    /// TCP port on the host in `base_url`.
    pub port: u16,
    parsed: ServiceUrl,
    /// The unix socket `root` can use, when the kit manages this instance.
    socket: Option<PathBuf>,
    /// Service directory when the kit manages this instance; `None` for an external one.
    dir: Option<PathBuf>,
    /// Whether this process started the server (as opposed to reusing one).
    started_here: bool,
}

impl fmt::Debug for MariaService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaService")
            .field("base_url", &self.redacted_url(""))
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("started_here", &self.started_here)
            .finish()
    }
}

/// Returns the one shared MariaDB 10.11 instance for this run, starting it if needed.
///
/// Uses `FERRY_TEST_MARIADB_URL` when set (starting nothing); otherwise the kit's
/// own instance (see [`local_mariadb`]). Returns [`KitError::Missing`] with an
/// `apt-get` hint when the binaries are not installed.
pub fn mariadb() -> Result<MariaService, KitError> {
    match std::env::var(MARIADB_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => MariaService::from_url(url.trim()),
        _ => local_mariadb(),
    }
}

/// Like [`mariadb`], but panics with a clear message (including the install hint
/// when binaries are missing). This is what tests call: a test never silently skips.
pub fn mariadb_or_panic() -> MariaService {
    match mariadb() {
        Ok(m) => m,
        Err(e) => panic!("test service MariaDB is unavailable: {e}"),
    }
}

/// Returns the kit's own MariaDB instance (ignoring `FERRY_TEST_MARIADB_URL`),
/// starting it if needed; `cargo xtask services up` uses this.
///
/// Start-up is guarded by an exclusive lock on `<kit dir>/mariadb.lock`, so
/// concurrent processes start the server once. A running instance recorded in the
/// directory (a `mariadbd` process on its data directory that answers `SELECT 1`
/// as [`MARIADB_USER`] over TCP) is reused.
pub fn local_mariadb() -> Result<MariaService, KitError> {
    let mut cached = LOCAL_MARIA.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = cached.as_ref() {
        return Ok(m.clone());
    }
    let m = MariaLayout::resolve()?.acquire()?;
    *cached = Some(m.clone());
    Ok(m)
}

/// Returns the kit's MariaDB instance if one is running, without starting it
/// (`cargo xtask services env`). Ignores `FERRY_TEST_MARIADB_URL`.
pub fn running_mariadb() -> Result<Option<MariaService>, KitError> {
    let layout = MariaLayout::resolve()?;
    if !layout.dir.exists() {
        return Ok(None);
    }
    check_mariadb_binaries()?;
    let _lock = lock_file(&layout.lock)?;
    layout.running_instance()
}

/// Checks that the MariaDB server and client binaries (`mariadbd`,
/// `mariadb-install-db`, `mariadb`), `setsid` and, when we are root, the `mysql` OS
/// user exist; returns [`KitError::Missing`] with the install hint if not.
pub fn check_mariadb_binaries() -> Result<(), KitError> {
    Binaries::find().map(|_| ())
}

/// Stops the kit's instance and removes its directory ([`crate::stop_all`]).
pub(crate) fn stop_local_mariadb() -> Result<(), KitError> {
    let layout = MariaLayout::resolve()?;
    {
        let mut cached = LOCAL_MARIA.lock().unwrap_or_else(|e| e.into_inner());
        *cached = None;
    }
    if layout.dir.exists() {
        let _lock = lock_file(&layout.lock)?;
        layout.stop_and_remove()?;
    }
    Ok(())
}

impl MariaService {
    /// Builds a service handle for an external server from a base URL such as
    /// `mysql://user:password@host:port` (`mariadb://` also works; a database path
    /// and a `?query` are allowed, [`MariaService::url`] replaces the database and
    /// keeps the query). Needs the `mariadb` client for [`MariaService::sql`].
    pub fn from_url(url: &str) -> Result<MariaService, KitError> {
        let parsed = ServiceUrl::parse(url, &MARIADB_URL_SPEC)?;
        client_path()?;
        Ok(MariaService {
            base_url: parsed.base(),
            port: parsed.port,
            parsed,
            socket: None,
            dir: None,
            started_here: false,
        })
    }

    fn local(port: u16, layout: &MariaLayout, started_here: bool) -> MariaService {
        let parsed = ServiceUrl {
            scheme: "mysql".into(),
            user: Some(MARIADB_USER.into()),
            password: Some(MARIADB_PASSWORD.into()),
            host: "127.0.0.1".into(),
            port,
            query: None,
        };
        MariaService {
            base_url: parsed.base(),
            port,
            parsed,
            socket: Some(layout.socket.clone()),
            dir: Some(layout.dir.clone()),
            started_here,
        }
    }

    /// The URL of `database` on this server (`<base_url>/<database>`; just the base
    /// URL when `database` is empty).
    pub fn url(&self, database: &str) -> String {
        self.parsed.with_database(database, Password::Reveal)
    }

    /// [`MariaService::url`] with any password replaced by `***`, safe to print.
    pub fn redacted_url(&self, database: &str) -> String {
        self.parsed.with_database(database, Password::Redact)
    }

    /// The user in the URL ([`MARIADB_USER`] for the kit's instance).
    pub fn user(&self) -> &str {
        self.parsed.user.as_deref().unwrap_or_default()
    }

    /// Whether this process started the server (rather than reusing a running one
    /// or using `FERRY_TEST_MARIADB_URL`). `cargo xtask test` stops only what it started.
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Whether the kit manages this instance (as opposed to `FERRY_TEST_MARIADB_URL`).
    pub fn is_kit_managed(&self) -> bool {
        self.dir.is_some()
    }

    /// Creates a database (`CHARACTER SET utf8mb4`) with a unique name starting
    /// with `prefix` (`<prefix>_<pid>_<counter>_<random>`, lower-case, at most 63
    /// bytes) and returns its name.
    pub fn create_database(&self, prefix: &str) -> Result<String, KitError> {
        let name = unique_name(prefix);
        self.sql(
            "",
            &format!(
                "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                quote_ident(&name)
            ),
        )?;
        Ok(name)
    }

    /// Drops `database` if it exists.
    pub fn drop_database(&self, database: &str) -> Result<(), KitError> {
        self.sql(
            "",
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(database)),
        )?;
        Ok(())
    }

    /// Runs `sql` (one or more `;`-terminated statements, fed on standard input)
    /// in `database` (none when empty) with the `mariadb` client
    /// (`--batch --skip-column-names --raw --default-character-set=utf8mb4`) and
    /// returns its standard output with trailing newlines removed: one line per
    /// row, columns separated by tabs, values unescaped (SQL NULL prints as
    /// `NULL`). Stops at the first error.
    ///
    /// On the kit's instance this runs as `root` over the unix socket; on an
    /// external server as the URL's user over TCP.
    pub fn sql(&self, database: &str, sql: &str) -> Result<String, KitError> {
        match &self.socket {
            Some(socket) => run_client(&Login::RootSocket(socket), database, sql),
            None => run_client(
                &Login::Tcp {
                    host: self.tcp_host(),
                    port: self.port,
                    user: self.parsed.user.as_deref(),
                    password: self.parsed.password.as_deref(),
                },
                database,
                sql,
            ),
        }
    }

    /// Like [`MariaService::sql`], but over TCP as `user` with `password` (which
    /// is never shown in errors); for testing authentication and privileges.
    pub fn sql_as(
        &self,
        user: &str,
        password: &str,
        database: &str,
        sql: &str,
    ) -> Result<String, KitError> {
        run_client(
            &Login::Tcp {
                host: self.tcp_host(),
                port: self.port,
                user: Some(user),
                password: Some(password),
            },
            database,
            sql,
        )
    }

    /// The URL's host as the client wants it (no IPv6 brackets).
    fn tcp_host(&self) -> &str {
        self.parsed
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.parsed.host)
    }

    /// Stops this instance (SIGTERM, waiting until it exits) and removes its
    /// directory when the kit manages it; does nothing for a server from
    /// `FERRY_TEST_MARIADB_URL`.
    pub fn stop(&self) -> Result<(), KitError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        {
            let mut cached = LOCAL_MARIA.lock().unwrap_or_else(|e| e.into_inner());
            if cached.as_ref().is_some_and(|m| m.dir == self.dir) {
                *cached = None;
            }
        }
        let base = dir.parent().unwrap_or(Path::new("/")).to_path_buf();
        let layout = MariaLayout::in_base(&base, &base)?;
        let _lock = lock_file(&layout.lock)?;
        layout.stop_and_remove()
    }
}

/// A MariaDB identifier in backticks.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

// ---------------------------------------------------------------------------
// Binaries and the client
// ---------------------------------------------------------------------------

/// The programs the kit's instance needs.
struct Binaries {
    server: PathBuf,
    install_db: PathBuf,
    setsid: PathBuf,
}

impl Binaries {
    fn find() -> Result<Binaries, KitError> {
        let server = find_program_in("mariadbd", SERVER_DIRS)
            .ok_or_else(|| missing("MariaDB server binary /usr/sbin/mariadbd"))?;
        let install_db = find_program_in("mariadb-install-db", CLIENT_DIRS)
            .ok_or_else(|| missing("mariadb-install-db"))?;
        client_path()?;
        // util-linux is essential on Debian, so this is only for odd systems.
        let setsid = find_program_in("setsid", CLIENT_DIRS).ok_or_else(|| KitError::Missing {
            hint: "setsid not found; install util-linux".into(),
        })?;
        if running_as_root() && !user_exists(MARIADB_OS_USER) {
            return Err(missing(&format!("OS user `{MARIADB_OS_USER}`")));
        }
        Ok(Binaries {
            server,
            install_db,
            setsid,
        })
    }
}

fn missing(what: &str) -> KitError {
    KitError::Missing {
        hint: format!(
            "{what} not found; install MariaDB 10.11 with: {MARIADB_INSTALL_HINT}{}",
            if running_as_root() { "" } else { " (as root)" }
        ),
    }
}

fn client_path() -> Result<PathBuf, KitError> {
    find_program_in("mariadb", CLIENT_DIRS).ok_or_else(|| missing("the mariadb client"))
}

/// How the client logs in.
enum Login<'a> {
    /// `root` (no password) over the kit instance's unix socket.
    RootSocket(&'a Path),
    /// A user over TCP.
    Tcp {
        host: &'a str,
        port: u16,
        user: Option<&'a str>,
        password: Option<&'a str>,
    },
}

/// Runs the `mariadb` client with `sql` on standard input; returns standard output
/// without trailing newlines. Passwords travel in `MYSQL_PWD`, never on the
/// command line or in messages.
fn run_client(login: &Login<'_>, database: &str, sql: &str) -> Result<String, KitError> {
    let client = client_path()?;
    let mut cmd = Command::new(&client);
    // `--no-defaults` must come first: no option file of the system server applies.
    cmd.args([
        "--no-defaults",
        "--batch",
        "--skip-column-names",
        "--raw",
        "--default-character-set=utf8mb4",
        "--connect-timeout=10",
    ]);
    let mut description = String::from("mariadb");
    match login {
        Login::RootSocket(socket) => {
            cmd.arg("--protocol=SOCKET")
                .arg(format!("--socket={}", socket.display()))
                .arg("--user=root")
                .env_remove("MYSQL_PWD");
            description.push_str(&format!(" --socket={} --user=root", socket.display()));
        }
        Login::Tcp {
            host,
            port,
            user,
            password,
        } => {
            cmd.arg("--protocol=TCP")
                .arg(format!("--host={host}"))
                .arg(format!("--port={port}"));
            description.push_str(&format!(" --host={host} --port={port}"));
            if let Some(user) = user {
                cmd.arg(format!("--user={user}"));
                description.push_str(&format!(" --user={user}"));
            }
            match password {
                Some(pw) => {
                    cmd.env("MYSQL_PWD", pw);
                    description.push_str(" (password from MYSQL_PWD)");
                }
                None => {
                    cmd.env_remove("MYSQL_PWD");
                }
            }
        }
    }
    if !database.is_empty() {
        cmd.arg(format!("--database={database}"));
        description.push_str(&format!(" --database={database}"));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(io_err(format!("running {}", client.display())))?;
    let stdin = child.stdin.take();
    let sql_owned = sql.to_owned();
    // Feed stdin from a thread so a large result cannot deadlock the pipes.
    let writer = thread::spawn(move || -> io::Result<()> {
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

// ---------------------------------------------------------------------------
// The kit-managed instance
// ---------------------------------------------------------------------------

static LOCAL_MARIA: Mutex<Option<MariaService>> = Mutex::new(None);

/// Paths of a kit-managed MariaDB instance.
struct MariaLayout {
    /// `<base>/mariadb`, owned by the `mysql` OS user when running as root; holds
    /// the data directory, socket, binary logs, error log, pid and port files.
    dir: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    pid_file: PathBuf,
    port_file: PathBuf,
    log: PathBuf,
    binlog: PathBuf,
    /// `<base>/mariadb.lock`: guards start and stop.
    lock: PathBuf,
    /// `<template base>/mariadb-template`: `data/` made by install-db, and
    /// `version` (which `mariadbd` binary made it).
    template: PathBuf,
    /// `<template base>/mariadb-template.lock`: guards making the template.
    template_lock: PathBuf,
    as_root: bool,
}

impl MariaLayout {
    fn resolve() -> Result<MariaLayout, KitError> {
        let base = kit_dir()?;
        MariaLayout::in_base(&base, &base)
    }

    fn in_base(base: &Path, template_base: &Path) -> Result<MariaLayout, KitError> {
        let dir = base.join("mariadb");
        let socket = dir.join("mysqld.sock");
        let socket_len = socket.as_os_str().len();
        if socket_len > MAX_SOCKET_PATH {
            return Err(KitError::Path {
                path: socket,
                reason: format!(
                    "unix socket path is {socket_len} bytes (limit {MAX_SOCKET_PATH}); \
                     set {KIT_DIR_ENV} to a shorter absolute path"
                ),
            });
        }
        Ok(MariaLayout {
            data: dir.join("data"),
            socket,
            pid_file: dir.join("mariadbd.pid"),
            port_file: dir.join("port"),
            log: dir.join("error.log"),
            binlog: dir.join("binlog"),
            lock: base.join("mariadb.lock"),
            template: template_base.join("mariadb-template"),
            template_lock: template_base.join("mariadb-template.lock"),
            as_root: running_as_root(),
            dir,
        })
    }

    /// The running instance, or a freshly started one (under the lock).
    fn acquire(&self) -> Result<MariaService, KitError> {
        let binaries = Binaries::find()?;
        let _lock = lock_file(&self.lock)?;
        match self.running_instance()? {
            Some(m) => Ok(m),
            None => self.start(&binaries),
        }
    }

    /// The running instance recorded in the directory, if it is healthy; an
    /// unhealthy one is stopped. Caller holds the lock.
    fn running_instance(&self) -> Result<Option<MariaService>, KitError> {
        if self.server_pids().is_empty() {
            return Ok(None);
        }
        let port = fs::read_to_string(&self.port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok());
        if let Some(port) = port {
            let m = MariaService::local(port, self, false);
            // A few tries: a busy server in use by other test processes must not
            // be mistaken for a broken one.
            for attempt in 0..5 {
                match m.sql_as(MARIADB_USER, MARIADB_PASSWORD, "", "SELECT 1") {
                    Ok(out) if out == "1" => return Ok(Some(m)),
                    Err(e) if e.to_string().contains("Too many connections") => return Err(e),
                    _ if attempt < 4 => thread::sleep(Duration::from_millis(200)),
                    _ => {}
                }
            }
        }
        // Running but unusable (half-started, port file lost, not answering): stop
        // it so that `start` begins again from a clean state.
        self.stop_servers()?;
        Ok(None)
    }

    /// Starts a server on a fresh copy of the template. Caller holds the lock and
    /// has checked nothing healthy is running.
    fn start(&self, binaries: &Binaries) -> Result<MariaService, KitError> {
        self.stop_servers()?;
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir)
                .map_err(io_err(format!("removing {}", self.dir.display())))?;
        }
        make_service_dir(&self.dir, self.as_root)?;
        let template = self.ensure_template(binaries)?;
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(&template).arg(&self.data);
        run_checked(cp, "cp")?;

        let mut last_err = None;
        // Another process may grab the port between our probe and the bind; retry.
        for _ in 0..3 {
            let port = free_port()?;
            match self.start_on(binaries, port) {
                Ok(m) => return Ok(m),
                Err(e) => {
                    let _ = self.stop_servers();
                    let port_taken = fs::read_to_string(&self.log).is_ok_and(|log| {
                        log.contains("Address already in use") || log.contains("Bind on TCP/IP")
                    });
                    last_err = Some(e);
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| KitError::Command {
            command: "mariadbd".into(),
            status: "not attempted".into(),
            stderr: String::new(),
        }))
    }

    fn start_on(&self, binaries: &Binaries, port: u16) -> Result<MariaService, KitError> {
        // Each attempt's log on its own, so a failure shows the reason for this one.
        let _ = fs::remove_file(&self.log);
        let _ = fs::remove_file(&self.port_file);
        let mut cmd = Command::new(&binaries.setsid);
        // `setsid -f` forks: the server runs in its own session, outlives us (and
        // a Ctrl-C to our terminal), and is reaped by init, not by us.
        cmd.arg("-f").arg(&binaries.server);
        cmd.arg("--no-defaults"); // must be the first argument of mariadbd
        if self.as_root {
            cmd.arg(format!("--user={MARIADB_OS_USER}"));
        }
        cmd.arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--log-bin={}", self.binlog.display()))
            .args([
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--server-id=1",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
            ])
            .arg(format!("--log-error={}", self.log.display()))
            .arg(format!("--pid-file={}", self.pid_file.display()))
            .args([
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=2",
                "--sync-binlog=0",
                "--innodb-buffer-pool-size=256M",
                "--innodb-buffer-pool-dump-at-shutdown=OFF",
                "--innodb-buffer-pool-load-at-startup=OFF",
                "--max-connections=300",
                "--local-infile=1",
                "--max-allowed-packet=256M",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = cmd
            .status()
            .map_err(io_err(format!("running {}", binaries.setsid.display())))?;
        if !status.success() {
            return Err(KitError::Command {
                command: describe(&cmd),
                status: status.to_string(),
                stderr: String::new(),
            });
        }
        self.wait_ready(port)
            .map_err(|e| self.with_log_tail(e, &describe(&cmd)))?;
        // The test user, with password authentication and every privilege
        // (ALL includes REPLICATION SLAVE, BINLOG MONITOR = REPLICATION CLIENT,
        // RELOAD...). `root` keeps its password-less socket access.
        let m = MariaService::local(port, self, true);
        m.sql(
            "",
            &format!(
                "CREATE USER IF NOT EXISTS '{MARIADB_USER}'@'%' IDENTIFIED BY '{MARIADB_PASSWORD}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO '{MARIADB_USER}'@'%' WITH GRANT OPTION;\n\
                 DROP USER IF EXISTS ''@'localhost';\n\
                 FLUSH PRIVILEGES;"
            ),
        )?;
        m.sql_as(MARIADB_USER, MARIADB_PASSWORD, "", "SELECT 1")?;
        write_atomic(&self.port_file, format!("{port}\n").as_bytes())?;
        Ok(m)
    }

    /// Polls a query as `root` over TCP (`mariadb-admin ping` answers before the
    /// server accepts queries) until it succeeds, the server gives up, or the
    /// deadline passes. The query returns the server's socket path, so a server
    /// of someone else's that took the port in the meantime is not mistaken for ours.
    fn wait_ready(&self, port: u16) -> Result<(), KitError> {
        let started = Instant::now();
        let login = Login::Tcp {
            host: "127.0.0.1",
            port,
            user: Some("root"),
            password: None,
        };
        let ours = self.socket.display().to_string();
        let mut last_err;
        loop {
            match run_client(&login, "", "SELECT @@socket") {
                Ok(out) if out == ours => return Ok(()),
                Ok(out) => {
                    last_err = KitError::Command {
                        command: "mariadb (SELECT @@socket)".into(),
                        status: "another server answers on this port".into(),
                        stderr: out,
                    }
                }
                Err(e) => last_err = e,
            }
            let aborted = fs::read_to_string(&self.log).is_ok_and(|l| l.contains("Aborting"));
            // `setsid -f` may not have exec'd the server yet right after it returns.
            let vanished =
                started.elapsed() > Duration::from_secs(10) && self.server_pids().is_empty();
            if aborted || vanished || started.elapsed() > START_TIMEOUT {
                let why = if aborted {
                    "the server aborted"
                } else if vanished {
                    "the server exited"
                } else {
                    "timed out waiting for SELECT 1"
                };
                return Err(KitError::Command {
                    command: format!("mariadbd on port {port}"),
                    status: why.into(),
                    stderr: last_err.to_string(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes the template data directory with `mariadb-install-db` unless a current
    /// one exists (made by the same `mariadbd` binary); returns its path.
    fn ensure_template(&self, binaries: &Binaries) -> Result<PathBuf, KitError> {
        let _lock = lock_file(&self.template_lock)?;
        let data = self.template.join("data");
        let version_file = self.template.join("version");
        let version = binary_version(&binaries.server)?;
        if data.join("mysql").is_dir()
            && fs::read_to_string(&version_file).is_ok_and(|v| v == version)
        {
            return Ok(data);
        }
        if self.template.exists() {
            fs::remove_dir_all(&self.template)
                .map_err(io_err(format!("removing {}", self.template.display())))?;
        }
        // Made beside it and renamed into place, so a half-made template (an
        // interrupted run) is never used; leftovers of such runs go now.
        if let (Some(parent), Some(name)) = (self.template.parent(), self.template.file_name()) {
            let prefix = format!("{}.tmp", name.to_string_lossy());
            for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let path = entry.path();
                    fs::remove_dir_all(&path)
                        .map_err(io_err(format!("removing {}", path.display())))?;
                }
            }
        }
        let tmp = self
            .template
            .with_extension(format!("tmp{}", std::process::id()));
        make_service_dir(&tmp, self.as_root)?;
        let mut cmd = Command::new(&binaries.install_db);
        cmd.arg("--no-defaults");
        if self.as_root {
            cmd.arg(format!("--user={MARIADB_OS_USER}"));
        }
        cmd.arg(format!("--datadir={}", tmp.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .current_dir(&tmp)
            .stdin(Stdio::null());
        if let Err(e) = run_checked(cmd, "mariadb-install-db") {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        fs::write(tmp.join("version"), &version)
            .map_err(io_err(format!("writing {}", tmp.join("version").display())))?;
        fs::rename(&tmp, &self.template).map_err(io_err(format!(
            "renaming {} to {}",
            tmp.display(),
            self.template.display()
        )))?;
        Ok(data)
    }

    /// Live `mariadbd` processes running on this data directory (found in `/proc`,
    /// so a stale or missing pid file does not matter).
    fn server_pids(&self) -> Vec<u32> {
        let needle = format!("--datadir={}", self.data.display());
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let mut args = cmdline.split(|b| *b == 0);
                let is_server = args.next().is_some_and(|argv0| {
                    let name = argv0.rsplit(|b| *b == b'/').next().unwrap_or(argv0);
                    name == b"mariadbd" || name == b"mysqld"
                });
                is_server && args.any(|a| a == needle.as_bytes()) && is_alive(*pid)
            })
            .collect()
    }

    /// SIGTERM to every server on this data directory, waiting until they exit
    /// (SIGKILL after [`STOP_TIMEOUT`]). Caller holds the lock.
    fn stop_servers(&self) -> Result<(), KitError> {
        let pids = self.server_pids();
        if pids.is_empty() {
            return Ok(());
        }
        for pid in &pids {
            signal(*pid, "TERM")?;
        }
        if wait_exit(&pids, STOP_TIMEOUT) {
            return Ok(());
        }
        for pid in &pids {
            signal(*pid, "KILL")?;
        }
        if wait_exit(&pids, Duration::from_secs(10)) {
            Ok(())
        } else {
            Err(KitError::Command {
                command: format!("kill -KILL {pids:?}"),
                status: "still running".into(),
                stderr: format!("mariadbd on {} did not exit", self.data.display()),
            })
        }
    }

    /// Stops the server if running and removes the directory. Caller holds the lock.
    fn stop_and_remove(&self) -> Result<(), KitError> {
        self.stop_servers()?;
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir)
                .map_err(io_err(format!("removing {}", self.dir.display())))?;
        }
        Ok(())
    }

    /// Adds the end of the error log to a start failure: that is where MariaDB
    /// says why it did not start.
    fn with_log_tail(&self, err: KitError, command: &str) -> KitError {
        let mut stderr = err.to_string();
        if let Ok(log) = fs::read_to_string(&self.log) {
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            stderr.push_str(&format!(
                "\n--- last lines of {} ---\n{tail}",
                self.log.display()
            ));
        }
        KitError::Command {
            command: command.to_owned(),
            status: "did not become ready".into(),
            stderr,
        }
    }
}

/// Creates `dir` (mode 0755, parents traversable) owned by the `mysql` OS user
/// when we are root.
fn make_service_dir(dir: &Path, as_root: bool) -> Result<(), KitError> {
    if let Some(base) = dir.parent()
        && !base.exists()
    {
        fs::create_dir_all(base).map_err(io_err(format!("creating {}", base.display())))?;
        fs::set_permissions(base, fs::Permissions::from_mode(0o755))
            .map_err(io_err(format!("setting permissions of {}", base.display())))?;
    }
    fs::create_dir(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("setting permissions of {}", dir.display())))?;
    if as_root {
        let (uid, gid) = user_ids(MARIADB_OS_USER)
            .ok_or_else(|| missing(&format!("OS user `{MARIADB_OS_USER}`")))?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io_err(format!(
            "chown {} to {MARIADB_OS_USER}",
            dir.display()
        )))?;
    }
    Ok(())
}

/// Identifies the server binary (path, size, modification time): a template made
/// by another build is remade.
fn binary_version(server: &Path) -> Result<String, KitError> {
    let meta = fs::metadata(server).map_err(io_err(format!("reading {}", server.display())))?;
    Ok(format!(
        "{} {} {}\n",
        server.display(),
        meta.len(),
        meta.mtime()
    ))
}

/// Whether `pid` exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Waits until none of `pids` is alive; false on timeout.
fn wait_exit(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pids.iter().any(|pid| is_alive(*pid)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `kill -s SIG pid` (the shell's builtin, which every system has). Its exit
/// status is ignored: a failure means the process is already gone.
fn signal(pid: u32, sig: &str) -> Result<(), KitError> {
    Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\" 2>/dev/null", "sh", sig])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status()
        .map(|_| ())
        .map_err(io_err(format!("sending SIG{sig} to {pid}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_mariadb_with_binlog_and_creates_databases() {
        let m = mariadb_or_panic();
        assert!(m.port > 0);
        assert_eq!(m.sql("", "SELECT 1").expect("SELECT 1"), "1");
        assert_eq!(
            m.sql(
                "",
                "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, \
                 @@binlog_row_metadata, @@character_set_server"
            )
            .expect("server variables"),
            "1\tROW\tFULL\tFULL\tutf8mb4"
        );
        let a = m.create_database("kit_test").expect("first database");
        let b = m.create_database("kit_test").expect("second database");
        assert_ne!(a, b);
        for db in [&a, &b] {
            let out = m
                .sql(
                    db,
                    "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));\n\
                     INSERT INTO t VALUES (1, 'a'), (2, 'ß→😀');\n\
                     SELECT DATABASE(), COUNT(*), MAX(v) FROM t;",
                )
                .expect("query in new database");
            assert_eq!(out, format!("{db}\t2\tß→😀"));
            assert_eq!(
                m.sql(db, "SELECT @@character_set_database")
                    .expect("database charset"),
                "utf8mb4"
            );
            assert!(m.url(db).ends_with(&format!(":{}/{db}", m.port)));
        }
        // Same instance on a second call.
        assert_eq!(mariadb_or_panic().port, m.port);
        m.drop_database(&a).expect("drop first");
        m.drop_database(&b).expect("drop second");
        let left = m
            .sql("", &format!("SHOW DATABASES LIKE '{a}'"))
            .expect("show databases");
        assert_eq!(left, "");
    }

    #[test]
    fn password_authentication_and_privileges() {
        let m = mariadb_or_panic();
        let user = m.user().to_owned();
        let password = m.parsed.password.clone().unwrap_or_default();
        if m.is_kit_managed() {
            assert_eq!(user, MARIADB_USER);
            assert_eq!(
                m.url(""),
                format!(
                    "mysql://{MARIADB_USER}:{MARIADB_PASSWORD}@127.0.0.1:{}",
                    m.port
                )
            );
        }
        let who = m
            .sql_as(&user, &password, "", "SELECT CURRENT_USER()")
            .expect("password login over TCP");
        assert!(who.starts_with(&format!("{user}@")), "{who}");
        // What CDC needs: reading binlog positions and streaming them.
        m.sql_as(
            &user,
            &password,
            "",
            "SHOW BINARY LOGS;\nSHOW MASTER STATUS;",
        )
        .expect("binlog monitor privilege");
        let grants = m
            .sql_as(&user, &password, "", "SHOW GRANTS")
            .expect("show grants");
        assert!(grants.contains("ALL PRIVILEGES ON *.*"), "{grants}");
        assert!(grants.contains("WITH GRANT OPTION"), "{grants}");

        let err = m
            .sql_as(&user, "wrong-password-xyz", "", "SELECT 1")
            .expect_err("a wrong password must fail");
        let text = err.to_string();
        assert!(text.contains("Access denied"), "{text}");
        assert!(!text.contains("wrong-password-xyz"), "{text}");
    }

    #[test]
    fn sql_reports_errors() {
        let m = mariadb_or_panic();
        let db = m.create_database("kit_err").expect("database");
        let err = m
            .sql(&db, "SELECT 1;\nSELECT * FROM no_such_table_xyz;")
            .expect_err("must fail");
        assert!(err.to_string().contains("no_such_table_xyz"), "{err}");
        m.drop_database(&db).expect("drop");
    }

    #[test]
    fn concurrent_callers_share_one_server() {
        let handles: Vec<_> = (0..6)
            .map(|_| thread::spawn(|| mariadb().map(|m| (m.port, m.base_url))))
            .collect();
        let results: Vec<(u16, String)> = handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("mariadb()"))
            .collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");

        if std::env::var_os(MARIADB_URL_ENV).is_some_and(|v| !v.is_empty()) {
            // An external server was named: the kit must start nothing.
            return;
        }
        // A private instance started by racing threads, bypassing the in-process
        // cache: the lock file alone must make them share one server.
        let shared = kit_dir().expect("kit dir");
        let base = PathBuf::from(format!("{}-race{}", shared.display(), std::process::id()));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (base, shared) = (base.clone(), shared.clone());
                thread::spawn(move || {
                    MariaLayout::in_base(&base, &shared)
                        .and_then(|l| l.acquire())
                        .map(|m| (m.port, m.started_here()))
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let layout = MariaLayout::in_base(&base, &shared).expect("layout");
        let pids = layout.server_pids();
        let _ = layout.stop_and_remove();
        let _ = fs::remove_dir_all(&base);
        let results: Vec<(u16, bool)> = results.into_iter().map(|r| r.expect("acquire")).collect();
        assert!(results.windows(2).all(|w| w[0].0 == w[1].0), "{results:?}");
        assert_eq!(
            results.iter().filter(|(_, started)| *started).count(),
            1,
            "{results:?}"
        );
        assert_eq!(pids.len(), 1, "{pids:?}");
        assert!(layout.server_pids().is_empty(), "stopped");
    }

    #[test]
    fn external_service_never_shows_its_password() {
        let m = MariaService::from_url("mysql://bob:hunter2@127.0.0.1:1/ignored")
            .expect("external service");
        assert_eq!(m.port, 1);
        assert!(!m.is_kit_managed());
        assert_eq!(m.url("db"), "mysql://bob:hunter2@127.0.0.1:1/db");
        assert_eq!(m.redacted_url("db"), "mysql://bob:***@127.0.0.1:1/db");
        assert!(!format!("{m:?}").contains("hunter2"));
        let err = m.sql("db", "SELECT 1").expect_err("nothing listens there");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        m.stop().expect("stopping an external server is a no-op");
    }

    #[test]
    fn mysql_url_parsing() {
        let u = ServiceUrl::parse("mariadb://u@db.example", &MARIADB_URL_SPEC).expect("parse");
        assert_eq!(u.port, 3306);
        assert!(ServiceUrl::parse("postgres://u@h:1", &MARIADB_URL_SPEC).is_err());
        let u = ServiceUrl::parse(
            "mysql://u:p%40ss@h:7/x?ssl-mode=DISABLED",
            &MARIADB_URL_SPEC,
        )
        .expect("parse");
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(
            u.with_database("y", Password::Redact),
            "mysql://u:***@h:7/y?ssl-mode=DISABLED"
        );
    }

    #[test]
    fn socket_path_fits() {
        let layout = MariaLayout::resolve().expect("layout");
        assert!(layout.socket.as_os_str().len() <= MAX_SOCKET_PATH);
        assert!(quote_ident("a`b") == "`a``b`");
    }
}
