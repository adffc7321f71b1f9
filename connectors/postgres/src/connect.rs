//! Connecting with clear, secret-free errors.

use ferry_core::{Error, ErrorKind};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};

/// The I/O half of a connection (a future that runs until the connection closes).
pub(crate) type Connection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// How long establishing a connection may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed connection target: the driver configuration and a printable,
/// password-free description.
#[derive(Clone)]
pub(crate) struct Target {
    config: Config,
    /// `postgres://user@host:port/db`, never with the password.
    pub(crate) display: String,
    /// Built without a server ([`Target::offline`]): connecting is refused.
    offline: bool,
}

impl Target {
    /// Parses a `postgres://` URL (or key=value string).
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let mut config = Config::from_str(url).map_err(|e| {
            // The driver's parse errors never echo the input, so the password stays out.
            Error::config(format!("invalid PostgreSQL URL: {e}"))
        })?;
        if config.get_dbname().is_none() {
            return Err(Error::config(
                "PostgreSQL URL names no database: add /<database> to the URL",
            ));
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("ferry");
        let display = describe(&config);
        Ok(Target {
            config,
            display,
            offline: false,
        })
    }

    /// A target that is never connected to (DDL generation only).
    pub(crate) fn offline() -> Self {
        Target {
            config: Config::new(),
            display: "PostgreSQL (DDL only, not connected)".into(),
            offline: true,
        }
    }

    /// Opens a new connection; the connection's I/O runs on a spawned task.
    pub(crate) async fn connect(&self) -> Result<Client, Error> {
        let (client, connection) = self.connect_undriven().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        Ok(client)
    }

    /// Opens a new connection whose I/O half the caller drives (polls) itself:
    /// requests queue until it does, so many go out in one write.
    pub(crate) async fn connect_undriven(&self) -> Result<(Client, Connection), Error> {
        if self.offline {
            return Err(Error::internal(
                "this PostgreSQL sink was built to print DDL only (PgSink::ddl_only) and \
                 cannot connect; use PgSink::connect to load data",
            ));
        }
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT * 2, self.config.connect(NoTls));
        let (client, connection) = match attempt.await {
            Ok(result) => result.map_err(|e| self.error(e, "cannot connect"))?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "cannot connect to {}: no answer within {}s",
                        self.display,
                        (CONNECT_TIMEOUT * 2).as_secs()
                    ),
                ));
            }
        };
        Ok((client, connection))
    }

    /// The driver configuration (host, port, user, password, database).
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Turns a driver error into a core error with the kind it deserves.
    pub(crate) fn error(&self, e: tokio_postgres::Error, doing: &str) -> Error {
        classify(e, &format!("{doing} ({})", self.display))
    }
}

/// `postgres://user@host:port/db` without the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// Classifies a driver error; `context` says what was being done and where.
pub(crate) fn classify(e: tokio_postgres::Error, context: &str) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = match &code[..2] {
            "28" => ErrorKind::Auth,
            "08" | "57" => ErrorKind::Connection,
            "3D" | "42" => ErrorKind::Schema,
            "22" => ErrorKind::Conversion,
            _ => ErrorKind::Target,
        };
        let mut message = format!("{context}: {} (SQLSTATE {code})", db.message());
        if let Some(detail) = db.detail() {
            message.push_str(&format!("; {detail}"));
        }
        if let Some(where_) = db.where_() {
            message.push_str(&format!("; where: {where_}"));
        }
        if kind == ErrorKind::Auth {
            message.push_str("; check the user name and password in the URL");
        }
        let retry = kind == ErrorKind::Connection || code == "40001" || code == "40P01";
        return Error::new(kind, message).retryable(retry);
    }
    let text = e.to_string();
    let closed = e.is_closed();
    let io = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let detail = if io.is_empty() || text.contains(&io) {
        text
    } else {
        format!("{text}: {io}")
    };
    let kind = if closed || e.code().is_none() {
        ErrorKind::Connection
    } else {
        ErrorKind::Target
    };
    Error::new(kind, format!("{context}: {detail}"))
}

/// Quotes an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a table name as `"schema"."table"`.
pub(crate) fn quote_table(id: &ferry_core::TableId) -> String {
    format!("{}.{}", quote_ident(&id.namespace), quote_ident(&id.name))
}

/// Quotes an SQL string literal.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_omits_password() {
        let t = Target::parse("postgres://alice:s3cret@db.example:6543/shop").expect("parses");
        assert_eq!(t.display, "postgres://alice@db.example:6543/shop");
        assert!(!t.display.contains("s3cret"));
    }

    #[test]
    fn url_without_database_is_rejected() {
        let e = Target::parse("postgres://alice@db").err().expect("error");
        assert!(e.message().contains("names no database"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
