//! Connecting with clear, secret-free errors; identifier quoting; server flavour.

use ferry_core::{Error, ErrorKind, TableId};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use std::time::Duration;

/// How long establishing a connection may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest MySQL/MariaDB identifier (database, table, column, index), in characters.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Seconds a session may sit idle or wait on the network before the server drops it.
/// Long: a reader blocked by backpressure or a snapshot connection waiting for its
/// next partition must not be cut off by the server's defaults (30–60 s for
/// `net_read_timeout`/`net_write_timeout`, 8 h for `wait_timeout`).
const SESSION_TIMEOUT_SECS: u32 = 86_400;

/// `sql_mode` of every Ferry session: strict, so that the target never stores a
/// truncated or adjusted value silently, and without `ANSI_QUOTES` or
/// `NO_BACKSLASH_ESCAPES`, which would change how Ferry's own statements parse.
pub(crate) const SQL_MODE: &str = "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,\
ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO";

/// Which server Ferry talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Oracle MySQL (or Percona Server).
    MySql,
    /// MariaDB.
    MariaDb,
}

impl Flavor {
    /// The engine name Ferry uses for type mapping (`mysql` or `mariadb`).
    pub fn engine(self) -> &'static str {
        match self {
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
        }
    }
}

/// What the server said about itself at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerInfo {
    pub(crate) flavor: Flavor,
    /// `(major, minor, patch)`.
    pub(crate) version: (u16, u16, u16),
}

impl ServerInfo {
    /// The binary, NO PAD utf8mb4 collation this server has: comparisons and unique
    /// keys then behave like PostgreSQL's (case, accents and trailing spaces count).
    pub(crate) fn binary_collation(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDb if self.version >= (10, 2, 0) => "utf8mb4_nopad_bin",
            Flavor::MySql if self.version >= (8, 0, 0) => "utf8mb4_0900_bin",
            _ => "utf8mb4_bin",
        }
    }
}

/// A parsed connection target: the driver options and a printable, password-free
/// description.
#[derive(Clone)]
pub(crate) struct Target {
    opts: Opts,
    /// The URL's database. Connections do not select it (a target database may not
    /// exist yet); every statement qualifies its tables.
    database: Option<String>,
    /// `mysql://user@host:port/db`, never with the password.
    pub(crate) display: String,
}

impl Target {
    /// Parses a `mysql://` or `mariadb://` URL.
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::config("MySQL URL must start with mysql:// or mariadb://"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "mysql" && scheme != "mariadb" {
            return Err(Error::config(format!(
                "MySQL URL has scheme {scheme}://; use mysql:// or mariadb://"
            )));
        }
        // The driver's URL errors never echo the password (it is not a parameter).
        let opts = Opts::from_url(&format!("mysql://{rest}"))
            .map_err(|e| Error::config(format!("invalid {scheme}:// URL: {e}")))?;
        let database = opts.db_name().filter(|d| !d.is_empty()).map(str::to_string);
        let opts: Opts = OptsBuilder::from_opts(opts)
            .db_name(None::<String>)
            .prefer_socket(false)
            .tcp_nodelay(true)
            .stmt_cache_size(16)
            .into();
        let display = format!(
            "{scheme}://{}@{}:{}/{}",
            opts.user().unwrap_or(""),
            opts.ip_or_hostname(),
            opts.tcp_port(),
            database.as_deref().unwrap_or("")
        );
        Ok(Target {
            opts,
            database,
            display,
        })
    }

    /// The same target, with connections whose `UPDATE` reports the rows it
    /// matched rather than the rows it changed (`CLIENT_FOUND_ROWS`).
    pub(crate) fn with_found_rows(&self) -> Target {
        let mut target = self.clone();
        target.opts = OptsBuilder::from_opts(self.opts.clone())
            .client_found_rows(true)
            .into();
        target
    }

    /// The database named in the URL, if any.
    pub(crate) fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// Opens a connection and sets up the session: utf8mb4, UTC, strict `sql_mode`,
    /// long network timeouts.
    pub(crate) async fn connect(&self) -> Result<Conn, Error> {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.opts.clone()));
        let mut conn = match attempt.await {
            Ok(result) => result.map_err(|e| self.error(e, "cannot connect"))?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "cannot connect to {}: no answer within {}s",
                        self.display,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ));
            }
        };
        let setup = format!(
            "SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = '{SQL_MODE}', \
             wait_timeout = {SESSION_TIMEOUT_SECS}, net_read_timeout = {SESSION_TIMEOUT_SECS}, \
             net_write_timeout = {SESSION_TIMEOUT_SECS}"
        );
        conn.query_drop(setup)
            .await
            .map_err(|e| self.error(e, "cannot set up the session"))?;
        Ok(conn)
    }

    /// Asks the server what it is.
    pub(crate) async fn server_info(&self, conn: &mut Conn) -> Result<ServerInfo, Error> {
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| self.error(e, "cannot read the server version"))?;
        let version = version.unwrap_or_default();
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        Ok(ServerInfo {
            flavor,
            version: conn.server_version(),
        })
    }

    /// Turns a driver error into a core error with the kind it deserves.
    pub(crate) fn error(&self, e: mysql_async::Error, doing: &str) -> Error {
        classify(e, &format!("{doing} ({})", self.display))
    }
}

/// Classifies a driver error; `context` says what was being done and where.
pub(crate) fn classify(e: mysql_async::Error, context: &str) -> Error {
    use mysql_async::Error as E;
    match e {
        E::Server(s) => {
            let (kind, retry, hint) = server_error_kind(s.code);
            let mut message = format!(
                "{context}: {} (MySQL error {}, SQLSTATE {})",
                s.message, s.code, s.state
            );
            if !hint.is_empty() {
                message.push_str("; ");
                message.push_str(hint);
            }
            Error::new(kind, message).retryable(retry)
        }
        E::Io(io) => Error::new(ErrorKind::Connection, format!("{context}: {io}")),
        E::Driver(d) => {
            let kind = match d {
                mysql_async::DriverError::ConnectionClosed
                | mysql_async::DriverError::PoolDisconnected => ErrorKind::Connection,
                _ => ErrorKind::Source,
            };
            Error::new(kind, format!("{context}: {d}"))
        }
        E::Url(u) => Error::config(format!("{context}: {u}")),
        E::Other(o) => Error::new(ErrorKind::Target, format!("{context}: {o}")),
    }
}

/// Kind, retryability and a hint for a server error code.
fn server_error_kind(code: u16) -> (ErrorKind, bool, &'static str) {
    match code {
        // Access denied for user / to database.
        1044 | 1045 | 1698 => (
            ErrorKind::Auth,
            false,
            "check the user name and password in the URL",
        ),
        // Command or privilege denied.
        1142 | 1143 | 1227 | 1370 => (
            ErrorKind::Auth,
            false,
            "grant the privilege named above to Ferry's user (see the ferry-mysql docs)",
        ),
        // Unknown database, table, column; bad identifiers.
        1046 | 1049 | 1051 | 1054 | 1059 | 1060 | 1061 | 1064 | 1072 | 1091 | 1146 | 1170
        | 1071 | 1118 => (ErrorKind::Schema, false, ""),
        // Values that do not fit.
        1048 | 1101 | 1264 | 1265 | 1292 | 1366 | 1367 | 1406 | 1411 | 3140 | 4025 => {
            (ErrorKind::Conversion, false, "")
        }
        // Duplicate key while building keys after the load.
        1062 | 1586 => (
            ErrorKind::Target,
            false,
            "the loaded rows violate a unique key; check the source data or the key definition",
        ),
        // Lock wait timeout, deadlock, query interrupted/killed, server shutdown,
        // too many connections, lost connection.
        1205 | 1213 | 1317 | 1053 | 1040 | 1927 | 2006 | 2013 | 1159 | 1161 => {
            (ErrorKind::Connection, true, "")
        }
        // LOAD DATA LOCAL refused by the server or client.
        1148 | 3948 | 4166 => (
            ErrorKind::Target,
            false,
            "the server refuses LOAD DATA LOCAL INFILE: set local_infile=ON on the server \
             or the target option load-method = \"insert\"",
        ),
        _ => (ErrorKind::Target, false, ""),
    }
}

/// Quotes an identifier with backticks (a backtick inside is doubled).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a table name as `` `db`.`table` ``.
pub(crate) fn quote_table(id: &TableId) -> String {
    format!("{}.{}", quote_ident(&id.namespace), quote_ident(&id.name))
}

/// Quotes a string literal for Ferry's sessions (backslash escapes on, see
/// [`SQL_MODE`]).
pub(crate) fn quote_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_omits_password() {
        let t = Target::parse("mariadb://alice:s3cret@db.example:3307/shop").expect("parses");
        assert_eq!(t.display, "mariadb://alice@db.example:3307/shop");
        assert!(!t.display.contains("s3cret"));
        assert_eq!(t.database(), Some("shop"));
        let t = Target::parse("mysql://bob@db").expect("parses");
        assert_eq!(t.display, "mysql://bob@db:3306/");
        assert_eq!(t.database(), None);
    }

    #[test]
    fn wrong_scheme_is_a_config_error() {
        let e = Target::parse("postgres://u:pw@h/db").err().expect("error");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!e.to_string().contains("pw"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_literal("it's \\ x"), "'it''s \\\\ x'");
        assert_eq!(
            quote_table(&TableId::new("select", "order")),
            "`select`.`order`"
        );
    }

    #[test]
    fn server_errors_are_classified() {
        assert_eq!(server_error_kind(1045).0, ErrorKind::Auth);
        assert_eq!(server_error_kind(1146).0, ErrorKind::Schema);
        assert_eq!(server_error_kind(1292).0, ErrorKind::Conversion);
        assert!(server_error_kind(1213).1);
        assert!(!server_error_kind(1062).1);
    }
}
