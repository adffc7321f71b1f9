//! A replication connection (`replication=database`): the small part of the
//! PostgreSQL wire protocol that tokio-postgres lacks — the simple query
//! protocol for replication commands and the CopyBoth stream of
//! `START_REPLICATION` (XLogData, primary keepalives, standby status updates).

use crate::connect::Target;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use ferry_core::{Error, ErrorKind, Result};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::config::Host;

/// How long connecting and authenticating may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One backend message: its tag and body.
pub(crate) struct Message {
    pub(crate) tag: u8,
    pub(crate) body: Bytes,
}

/// A connection in replication mode.
pub(crate) struct ReplicationConnection {
    stream: Box<dyn Stream>,
    read: BytesMut,
    write: BytesMut,
    display: String,
}

/// Microseconds since 2000-01-01 UTC, PostgreSQL's clock.
pub(crate) fn pg_now() -> i64 {
    const EPOCH_2000: u64 = 946_684_800;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_micros() as i64) - (EPOCH_2000 as i64) * 1_000_000
}

impl ReplicationConnection {
    /// Connects to `target`'s database as a logical replication client.
    pub(crate) async fn connect(target: &Target) -> Result<Self> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_now(target))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Connection,
                    format!(
                        "replication connection to {} timed out after {} s",
                        target.display,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                )
                .retryable(true)
            })?
    }

    async fn connect_now(target: &Target) -> Result<Self> {
        let config = target.config();
        let display = target.display.clone();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let lost = |e: std::io::Error| {
            Error::new(
                ErrorKind::Connection,
                format!("cannot open a replication connection to {display}: {e}"),
            )
            .retryable(true)
        };
        let stream: Box<dyn Stream> = match config.get_hosts().first() {
            Some(Host::Unix(dir)) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                Box::new(tokio::net::UnixStream::connect(path).await.map_err(lost)?)
            }
            Some(Host::Tcp(host)) => {
                let s = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(lost)?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            None => {
                let s = tokio::net::TcpStream::connect(("localhost", port))
                    .await
                    .map_err(lost)?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
        };
        let mut conn = ReplicationConnection {
            stream,
            read: BytesMut::with_capacity(256 << 10),
            write: BytesMut::with_capacity(8 << 10),
            display: target.display.clone(),
        };
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let database = config.get_dbname().unwrap_or("postgres").to_owned();
        let params = [
            ("user", user.as_str()),
            ("database", database.as_str()),
            ("replication", "database"),
            ("application_name", "ferry"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"),
        ];
        frontend::startup_message(params.iter().copied(), &mut conn.write)
            .map_err(|e| Error::internal(format!("encoding the startup message: {e}")))?;
        conn.flush().await?;
        conn.authenticate(&user, config.get_password()).await?;
        loop {
            let m = conn.next_message().await?;
            match m.tag {
                b'Z' => return Ok(conn),
                b'E' => return Err(conn.server_error(&m.body, "connecting for replication")),
                _ => {}
            }
        }
    }

    async fn authenticate(&mut self, user: &str, password: Option<&[u8]>) -> Result<()> {
        let need_password = || {
            Error::new(
                ErrorKind::Auth,
                "the server asks for a password for the replication connection, and the URL \
                 has none",
            )
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let m = self.next_message().await?;
            match m.tag {
                b'E' => return Err(self.server_error(&m.body, "authenticating")),
                b'R' => {}
                _ => continue,
            }
            let mut body = m.body.clone();
            if body.remaining() < 4 {
                return Err(self.protocol("short authentication message"));
            }
            match body.get_i32() {
                0 => return Ok(()),
                3 => {
                    let password = password.ok_or_else(need_password)?;
                    frontend::password_message(password, &mut self.write)
                        .map_err(|e| Error::internal(e.to_string()))?;
                    self.flush().await?;
                }
                5 => {
                    let password = password.ok_or_else(need_password)?;
                    if body.remaining() < 4 {
                        return Err(self.protocol("short MD5 salt"));
                    }
                    let mut salt = [0u8; 4];
                    body.copy_to_slice(&mut salt);
                    let hash = md5_hash(user.as_bytes(), password, salt);
                    frontend::password_message(hash.as_bytes(), &mut self.write)
                        .map_err(|e| Error::internal(e.to_string()))?;
                    self.flush().await?;
                }
                10 => {
                    let password = password.ok_or_else(need_password)?;
                    let mechanisms: Vec<&[u8]> = body.split(|b| *b == 0).collect();
                    if !mechanisms
                        .iter()
                        .any(|m| *m == sasl::SCRAM_SHA_256.as_bytes())
                    {
                        return Err(Error::new(
                            ErrorKind::Auth,
                            "the server offers no SASL mechanism Ferry supports (SCRAM-SHA-256)",
                        ));
                    }
                    let s = sasl::ScramSha256::new(password, sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        sasl::SCRAM_SHA_256,
                        s.message(),
                        &mut self.write,
                    )
                    .map_err(|e| Error::internal(e.to_string()))?;
                    self.flush().await?;
                    scram = Some(s);
                }
                11 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| self.protocol("SASL continue without start"))?;
                    s.update(&body).map_err(|e| {
                        Error::new(ErrorKind::Auth, format!("SCRAM authentication failed: {e}"))
                    })?;
                    frontend::sasl_response(s.message(), &mut self.write)
                        .map_err(|e| Error::internal(e.to_string()))?;
                    self.flush().await?;
                }
                12 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| self.protocol("SASL final without start"))?;
                    s.finish(&body).map_err(|e| {
                        Error::new(ErrorKind::Auth, format!("SCRAM authentication failed: {e}"))
                    })?;
                }
                other => {
                    return Err(Error::new(
                        ErrorKind::Auth,
                        format!(
                            "the server asks for an authentication method Ferry does not \
                             support on replication connections (code {other})"
                        ),
                    ));
                }
            }
        }
    }

    /// Runs a replication command with the simple query protocol; returns its rows
    /// as text (`None` for NULL).
    pub(crate) async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        frontend::query(sql, &mut self.write).map_err(|e| Error::internal(e.to_string()))?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let m = self.next_message().await?;
            match m.tag {
                b'D' => rows.push(parse_data_row(&m.body)?),
                b'E' => error = Some(self.server_error(&m.body, sql)),
                b'Z' => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    };
                }
                _ => {}
            }
        }
    }

    /// Sends `START_REPLICATION ...` and waits for the CopyBoth stream to open.
    pub(crate) async fn start_replication(&mut self, sql: &str) -> Result<()> {
        frontend::query(sql, &mut self.write).map_err(|e| Error::internal(e.to_string()))?;
        self.flush().await?;
        loop {
            let m = self.next_message().await?;
            match m.tag {
                b'W' => return Ok(()),
                b'E' => {
                    let e = self.server_error(&m.body, "starting replication");
                    // Drain up to ReadyForQuery so the error is the whole story.
                    return Err(e);
                }
                _ => {}
            }
        }
    }

    /// The next CopyData payload of the stream; `None` when the server ends it.
    pub(crate) async fn next_copy_data(&mut self) -> Result<Option<Bytes>> {
        loop {
            let m = self.next_message().await?;
            match m.tag {
                b'd' => return Ok(Some(m.body)),
                b'c' | b'C' | b'Z' => return Ok(None),
                b'E' => return Err(self.server_error(&m.body, "streaming changes")),
                _ => {}
            }
        }
    }

    /// Sends a standby status update: everything up to `flushed` is durable at
    /// the target; `reply` asks the server for a keepalive now.
    pub(crate) async fn send_status(&mut self, flushed: u64, reply: bool) -> Result<()> {
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(flushed);
        payload.put_u64(flushed);
        payload.put_u64(flushed);
        payload.put_i64(pg_now());
        payload.put_u8(u8::from(reply));
        self.write.put_u8(b'd');
        self.write.put_i32(4 + payload.len() as i32);
        self.write.extend_from_slice(&payload);
        self.flush().await
    }

    /// Ends the connection politely.
    pub(crate) async fn terminate(mut self) {
        frontend::terminate(&mut self.write);
        let _ = self.flush().await;
    }

    async fn flush(&mut self) -> Result<()> {
        if self.write.is_empty() {
            return Ok(());
        }
        let data = self.write.split();
        self.stream
            .write_all(&data)
            .await
            .map_err(|e| self.lost(e))?;
        self.stream.flush().await.map_err(|e| self.lost(e))
    }

    /// Reads the next backend message (cancel-safe: a cancelled call loses nothing).
    pub(crate) async fn next_message(&mut self) -> Result<Message> {
        loop {
            if self.read.len() >= 5 {
                let len =
                    i32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]);
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| *l >= 4)
                    .ok_or_else(|| self.protocol("invalid message length"))?;
                if self.read.len() > len {
                    let mut frame = self.read.split_to(len + 1).freeze();
                    let tag = frame[0];
                    frame.advance(5);
                    if tag == b'N' {
                        // Notices (e.g. about slot creation) are informational.
                        continue;
                    }
                    return Ok(Message { tag, body: frame });
                }
                self.read.reserve(len + 1 - self.read.len());
            } else {
                self.read.reserve(8192);
            }
            let n = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(|e| self.lost(e))?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "the replication connection to {} was closed by the server",
                        self.display
                    ),
                )
                .retryable(true));
            }
        }
    }

    fn lost(&self, e: std::io::Error) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!("replication connection to {} lost: {e}", self.display),
        )
        .retryable(true)
    }

    fn protocol(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!("replication protocol error from {}: {what}", self.display),
        )
        .retryable(true)
    }

    /// An `ErrorResponse` as a core error with the kind its SQLSTATE deserves.
    fn server_error(&self, body: &[u8], doing: &str) -> Error {
        let mut code = String::new();
        let mut message = String::new();
        let mut detail = String::new();
        let mut hint = String::new();
        for field in body.split(|b| *b == 0) {
            let Some((&kind, text)) = field.split_first() else {
                continue;
            };
            let text = String::from_utf8_lossy(text).into_owned();
            match kind {
                b'C' => code = text,
                b'M' => message = text,
                b'D' => detail = text,
                b'H' => hint = text,
                _ => {}
            }
        }
        let class = code.get(..2).unwrap_or("");
        let kind = match class {
            "28" => ErrorKind::Auth,
            "08" | "57" => ErrorKind::Connection,
            "42" | "3D" => ErrorKind::Schema,
            _ => ErrorKind::Source,
        };
        let mut text = format!("{doing} ({}): {message} (SQLSTATE {code})", self.display);
        if !detail.is_empty() {
            text.push_str(&format!("; {detail}"));
        }
        if !hint.is_empty() {
            text.push_str(&format!("; hint: {hint}"));
        }
        if code == "42501" || (kind == ErrorKind::Auth && message.contains("replication")) {
            text.push_str(
                "; the user needs the REPLICATION attribute (ALTER ROLE ... REPLICATION) and \
                 pg_hba.conf must allow it",
            );
        }
        Error::new(kind, text).retryable(kind == ErrorKind::Connection)
    }
}

fn parse_data_row(body: &[u8]) -> Result<Vec<Option<String>>> {
    let mut buf = body;
    let short = || {
        Error::new(
            ErrorKind::Connection,
            "short DataRow from the replication connection",
        )
    };
    if buf.remaining() < 2 {
        return Err(short());
    }
    let n = buf.get_i16();
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        if buf.remaining() < 4 {
            return Err(short());
        }
        let len = buf.get_i32();
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        if buf.remaining() < len {
            return Err(short());
        }
        row.push(Some(String::from_utf8_lossy(&buf[..len]).into_owned()));
        buf.advance(len);
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows_parse_with_nulls() {
        let mut body = BytesMut::new();
        body.put_i16(2);
        body.put_i32(3);
        body.put_slice(b"abc");
        body.put_i32(-1);
        assert_eq!(
            parse_data_row(&body).expect("parses"),
            vec![Some("abc".to_owned()), None]
        );
        assert!(parse_data_row(&body[..5]).is_err());
    }
}
