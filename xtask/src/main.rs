//! `cargo xtask`: Ferry's developer and CI tasks.
//!
//! ```text
//! cargo xtask test [-- ARGS]         install prerequisites, start services, run the
//!                                    whole workspace's tests, stop services
//! cargo xtask services up|down|env   manage the shared test services by hand
//! cargo xtask demo                   end-to-end demonstration
//! cargo xtask bench                  benchmarks against the reference tools
//! ```
//!
//! The alias in `.cargo/config.toml` builds this into `target/xtask`, so it never
//! invalidates the main build. Dependencies: `ferry-tests` (the test-service kit)
//! and std only.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use ferry_tests::{KitError, MARIADB_URL_ENV, MariaService, PG_URL_ENV, PgService};

mod bench;
mod common;
mod demo;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- ARGS]        install missing prerequisites (as root), start the test
                        services, run every test of the workspace (doc tests, then
                        cargo nextest if installed, else cargo test), stop the
                        services it started; exits with the tests' exit code.
                        ARGS go to the runner (and skip the doc tests), e.g.
                        `cargo xtask test -- -p ferry-tests`
  services up           start the shared test services and print their environment
  services env          print the environment of the running test services
  services down         stop the test services and remove their directory
  demo                  seed a sample shop database, migrate it with the release
                        `ferry`, verify row counts and checksums; leaves the
                        services running for a look around
  bench                 full load benchmarks (report in target/bench/report.md):
                        PostgreSQL to PostgreSQL, ferry against psql COPY pipes
                        and pg_dump/pg_restore; MySQL to PostgreSQL, ferry
                        against pgloader. Environment: FERRY_BENCH_ONLY (pg or
                        mysql: one section), FERRY_BENCH_SCALE (pgbench scale,
                        50), FERRY_BENCH_PARALLELISM (4), FERRY_BENCH_RUNS
                        (rounds, 1; medians are reported), FERRY_BENCH_FRESH=1
                        (regenerate the source databases),
                        FERRY_BENCH_PGLOADER_CONCURRENCY (1)
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["test", rest @ ..] => test(rest),
        ["services", "up"] => services_up(),
        ["services", "env"] => services_env(),
        ["services", "down"] => services_down(),
        ["demo"] => demo::demo(),
        ["bench"] => bench::bench(),
        [] | ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprint!("unknown command: {}\n\n{USAGE}", args.join(" "));
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors of xtask itself (the tests' own failures are an exit code, not an error).
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------
// cargo xtask test
// ---------------------------------------------------------------------------

/// Prerequisites, services, the whole workspace's tests, then services down
/// (also when the tests fail). Extra arguments go to the test runner.
fn test(extra: &[&str]) -> Result<ExitCode> {
    let extra: Vec<&str> = match extra {
        ["--", rest @ ..] => rest.to_vec(),
        other => other.to_vec(),
    };

    ensure_test_prerequisites()?;

    let pg = ferry_tests::postgres()?;
    announce("PostgreSQL", &pg.redacted_url(""), pg.started_here());
    let maria = match ferry_tests::mariadb() {
        Ok(m) => m,
        Err(e) => {
            stop_started(&pg, None);
            return Err(e.into());
        }
    };
    announce("MariaDB", &maria.redacted_url(""), maria.started_here());

    let env = [
        (PG_URL_ENV, pg.base_url.as_str()),
        (MARIADB_URL_ENV, maria.base_url.as_str()),
    ];
    let status = run_tests(&env, &extra);

    // Stop what this run started, whatever the tests did.
    stop_started(&pg, Some(&maria));

    let code = status?;
    Ok(ExitCode::from(code))
}

fn announce(service: &str, redacted_url: &str, started_here: bool) {
    eprintln!(
        "xtask: {service} for tests at {redacted_url}{}",
        if started_here {
            " (started for this run)"
        } else {
            " (already running; left running afterwards)"
        }
    );
}

/// Stops the services this process started (not ones it found running, nor
/// external ones); only warns when that fails.
fn stop_started(pg: &PgService, maria: Option<&MariaService>) {
    if pg.started_here()
        && let Err(e) = pg.stop()
    {
        eprintln!("xtask: warning: could not stop PostgreSQL: {e}");
    }
    if let Some(maria) = maria
        && maria.started_here()
        && let Err(e) = maria.stop()
    {
        eprintln!("xtask: warning: could not stop MariaDB: {e}");
    }
}

// ---------------------------------------------------------------------------
// Prerequisites
// ---------------------------------------------------------------------------

/// Something a command needs that Debian packages provide.
struct Need {
    /// What is missing, for the message.
    what: String,
    /// The Debian packages that provide it.
    packages: Vec<&'static str>,
}

/// Whether `var` is unset or empty (then the kit starts its own server).
fn env_unset(var: &str) -> bool {
    env::var_os(var).is_none_or(|v| v.is_empty())
}

/// What is missing for PostgreSQL: the server binaries (just `psql` when
/// `FERRY_TEST_PG_URL` names a server), then the client programs `tools`.
fn missing_postgres(tools: &[&str]) -> Result<Vec<Need>> {
    const PACKAGES: &[&str] = &["postgresql"];
    let mut tools = tools.to_vec();
    if env_unset(PG_URL_ENV) {
        match ferry_tests::check_postgres_binaries() {
            Ok(()) => {}
            Err(KitError::Missing { hint }) => {
                return Ok(vec![Need {
                    what: hint,
                    packages: PACKAGES.to_vec(),
                }]);
            }
            Err(e) => return Err(e.into()),
        }
    } else if !tools.contains(&"psql") {
        tools.push("psql");
    }
    let missing: Vec<&str> = tools
        .into_iter()
        .filter(|t| !common::has_pg_tool(t))
        .collect();
    Ok(if missing.is_empty() {
        Vec::new()
    } else {
        vec![Need {
            what: format!("{} not found (PostgreSQL 15)", missing.join(", ")),
            packages: PACKAGES.to_vec(),
        }]
    })
}

/// What is missing for MariaDB: server and client (just the `mariadb` client when
/// `FERRY_TEST_MARIADB_URL` names a server).
fn missing_mariadb() -> Result<Vec<Need>> {
    if env_unset(MARIADB_URL_ENV) {
        return match ferry_tests::check_mariadb_binaries() {
            Ok(()) => Ok(Vec::new()),
            Err(KitError::Missing { hint }) => Ok(vec![Need {
                what: hint,
                packages: vec!["mariadb-server", "mariadb-client"],
            }]),
            Err(e) => Err(e.into()),
        };
    }
    let client =
        Path::new("/usr/bin/mariadb").is_file() || ferry_tests::find_program("mariadb").is_some();
    Ok(if client {
        Vec::new()
    } else {
        vec![Need {
            what: "the mariadb client not found".into(),
            packages: vec!["mariadb-client"],
        }]
    })
}

/// Makes sure the PostgreSQL server binaries and the client programs in `tools`
/// (`pg_dump`, `pgbench`...) are installed: installs the packages when something
/// is missing and we run as root; otherwise prints the one `apt-get` line needed
/// and fails. `demo` and `bench` start here (`test` uses
/// [`ensure_test_prerequisites`]).
pub(crate) fn ensure_prerequisites(tools: &[&str]) -> Result<()> {
    install_missing(&|| missing_postgres(tools))
}

/// [`ensure_prerequisites`] for `cargo xtask test`: PostgreSQL and MariaDB
/// (server and client, or just the clients for servers named by
/// `FERRY_TEST_PG_URL` / `FERRY_TEST_MARIADB_URL`), with one `apt-get install`
/// for everything missing.
pub(crate) fn ensure_test_prerequisites() -> Result<()> {
    install_missing(&|| {
        let mut needs = missing_postgres(&[])?;
        needs.extend(missing_mariadb()?);
        needs.extend(missing_chromium());
        Ok(needs)
    })
}

/// Debian's Chromium, for the status-page test (headless `--dump-dom`).
fn missing_chromium() -> Vec<Need> {
    if ferry_tests::find_program("chromium").is_some() {
        Vec::new()
    } else {
        vec![Need {
            what: "chromium not found (the status-page test loads the page in it)".into(),
            packages: vec!["chromium"],
        }]
    }
}

/// Makes sure `pgloader` (Debian package `pgloader`) is installed, installing it
/// when we run as root (otherwise prints the `apt-get` line and fails); returns
/// the program's path. For `bench`'s comparison with pgloader.
#[allow(dead_code)] // Called by bench.rs once its pgloader comparison lands.
pub(crate) fn ensure_pgloader() -> Result<PathBuf> {
    ensure_programs(&[("pgloader", "pgloader")])?;
    ferry_tests::find_program("pgloader").ok_or_else(|| "pgloader not found on PATH".into())
}

/// Makes sure every `(program, Debian package)` pair's program is on `PATH`,
/// installing the packages of the missing ones (one `apt-get install`) when we run
/// as root; otherwise prints the `apt-get` line and fails. E.g.
/// `ensure_programs(&[("pgcopydb", "pgcopydb")])`.
#[allow(dead_code)] // For bench.rs (reference tools such as pgcopydb).
pub(crate) fn ensure_programs(programs: &[(&str, &'static str)]) -> Result<()> {
    install_missing(&|| {
        Ok(programs
            .iter()
            .filter(|(program, _)| ferry_tests::find_program(program).is_none())
            .map(|(program, package)| Need {
                what: format!("{program} not found"),
                packages: vec![*package],
            })
            .collect())
    })
}

/// The one `apt-get` line that installs `needs`.
fn install_line(needs: &[Need]) -> String {
    let mut packages: Vec<&str> = Vec::new();
    for package in needs.iter().flat_map(|n| n.packages.iter().copied()) {
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    format!(
        "apt-get update && apt-get install -y {}",
        packages.join(" ")
    )
}

/// Installs what `missing` reports (one `apt-get install`, as root), then checks
/// again; when not root, prints the line to run and fails. Installs only what is
/// missing, so already-installed servers (such as a running system MariaDB) are
/// neither upgraded nor restarted.
fn install_missing(missing: &dyn Fn() -> Result<Vec<Need>>) -> Result<()> {
    let needs = missing()?;
    if needs.is_empty() {
        return Ok(());
    }
    for need in &needs {
        eprintln!("xtask: {}", need.what);
    }
    let line = install_line(&needs);
    if !ferry_tests::running_as_root() {
        return Err(format!("missing prerequisites; run as root: {line}").into());
    }
    eprintln!("xtask: installing: {line}");
    let mut install: Vec<&str> = vec![
        "install",
        "-y",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ];
    for package in needs.iter().flat_map(|n| n.packages.iter().copied()) {
        if !install.contains(&package) {
            install.push(package);
        }
    }
    for args in [&["update"][..], &install[..]] {
        let status = Command::new("apt-get")
            // Wait for a concurrent apt/dpkg instead of failing at once.
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("running apt-get: {e}"))?;
        if !status.success() {
            return Err(format!("`apt-get {}` failed ({status})", args.join(" ")).into());
        }
    }
    let still = missing()?;
    if !still.is_empty() {
        let what: Vec<String> = still.into_iter().map(|n| n.what).collect();
        return Err(format!("still missing after installing: {}", what.join("; ")).into());
    }
    Ok(())
}

/// Runs the workspace's tests with `env` (`FERRY_TEST_PG_URL`,
/// `FERRY_TEST_MARIADB_URL`) set; returns their exit code.
fn run_tests(env: &[(&str, &str)], extra: &[&str]) -> Result<u8> {
    let root = ferry_tests::workspace_root();
    let use_nextest = cargo(&root)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());

    // Doc tests run only for the full run: extra arguments select tests, and
    // they mean the runner's selection.
    let run_doc = extra.is_empty();
    // `-p NAME` in ARGS narrows the run; otherwise it is the whole workspace.
    let scope: &[&str] = if extra
        .iter()
        .any(|a| *a == "-p" || a.starts_with("--package"))
    {
        &[]
    } else {
        &["--workspace"]
    };
    if use_nextest {
        // nextest does not run doc tests: run them first, so that nextest's
        // summary is the closing line of the run.
        let doc = if run_doc {
            run_cargo(&root, env, &["test", "--workspace", "--doc"])?
        } else {
            0
        };
        let mut args = vec!["nextest", "run", "--no-fail-fast"];
        args.extend_from_slice(scope);
        args.extend_from_slice(extra);
        let code = run_cargo(&root, env, &args)?;
        Ok(if code != 0 { code } else { doc })
    } else {
        let mut args = vec!["test", "--all-targets", "--no-fail-fast"];
        args.extend_from_slice(scope);
        args.extend_from_slice(extra);
        let code = run_cargo(&root, env, &args)?;
        if code != 0 || !run_doc {
            return Ok(code);
        }
        run_cargo(&root, env, &["test", "--workspace", "--doc"])
    }
}

fn run_cargo(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Result<u8> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = cargo(root)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    // Killed by a signal (no code), or an out-of-range code: report a failure.
    Ok(match status.code() {
        Some(c) => u8::try_from(c).unwrap_or(1),
        None => 1,
    })
}

/// `cargo` (the one that runs us) in the workspace root, without the package
/// variables `cargo run` set for xtask itself. `CI` and everything else pass through.
fn cargo(root: &Path) -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(root);
    for (key, _) in env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("CARGO_PKG_")
            || matches!(
                key_str.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

// ---------------------------------------------------------------------------
// cargo xtask services
// ---------------------------------------------------------------------------

/// Starts the kit's own instances (ignoring any `FERRY_TEST_PG_URL` and
/// `FERRY_TEST_MARIADB_URL`) and prints `export` lines for a shell:
/// `eval "$(cargo xtask services up)"`.
fn services_up() -> Result<ExitCode> {
    ensure_prerequisites_or_hint()?;
    let pg = ferry_tests::local_postgres()?;
    let maria = ferry_tests::local_mariadb()?;
    print_pg_env(&pg);
    print_mariadb_env(&maria);
    Ok(ExitCode::SUCCESS)
}

/// Prints `export` lines for the running instances; fails if none runs.
fn services_env() -> Result<ExitCode> {
    let pg = ferry_tests::running_postgres()?;
    let maria = ferry_tests::running_mariadb()?;
    if pg.is_none() && maria.is_none() {
        return Err(KitError::NotRunning {
            service: "PostgreSQL or MariaDB",
        }
        .into());
    }
    match pg {
        Some(pg) => print_pg_env(&pg),
        None => eprintln!("xtask: no kit-managed PostgreSQL instance is running"),
    }
    match maria {
        Some(maria) => print_mariadb_env(&maria),
        None => eprintln!("xtask: no kit-managed MariaDB instance is running"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops the kit's instances and removes their directories.
fn services_down() -> Result<ExitCode> {
    ferry_tests::stop_all()?;
    eprintln!("xtask: test services stopped");
    Ok(ExitCode::SUCCESS)
}

/// Like [`ensure_test_prerequisites`] but never installs: `services up` only
/// tells (one line for everything missing).
fn ensure_prerequisites_or_hint() -> Result<()> {
    let mut needs = Vec::new();
    for (check, packages) in [
        (
            ferry_tests::check_postgres_binaries as fn() -> std::result::Result<(), KitError>,
            &["postgresql"][..],
        ),
        (
            ferry_tests::check_mariadb_binaries,
            &["mariadb-server", "mariadb-client"][..],
        ),
    ] {
        match check() {
            Ok(()) => {}
            Err(KitError::Missing { hint }) => needs.push(Need {
                what: hint,
                packages: packages.to_vec(),
            }),
            Err(e) => return Err(e.into()),
        }
    }
    if needs.is_empty() {
        return Ok(());
    }
    for need in &needs {
        eprintln!("xtask: {}", need.what);
    }
    Err(format!(
        "missing prerequisites; install them with: {}",
        install_line(&needs)
    )
    .into())
}

fn print_pg_env(pg: &PgService) {
    // The kit's own instance has no password (trust auth on loopback); the URL is
    // safe to print. Never echo one that carries a password.
    if pg.redacted_url("") != pg.url("") {
        println!("# {PG_URL_ENV} holds a password and is not printed");
    } else {
        println!("export {PG_URL_ENV}={}", pg.base_url);
    }
}

fn print_mariadb_env(maria: &MariaService) {
    // The kit's own instance has only the fixed test password, which tests need in
    // the URL; a URL from elsewhere is never echoed.
    if maria.is_kit_managed() {
        println!("export {MARIADB_URL_ENV}={}", maria.base_url);
    } else {
        println!("# {MARIADB_URL_ENV} holds a password and is not printed");
    }
}
