//! Decoding of the replication stream: the CopyData messages of
//! `START_REPLICATION` (XLogData, primary keepalive) and the `pgoutput` logical
//! replication messages (protocol version 1) inside XLogData.

use bytes::{Buf, Bytes};

/// A stream message the capture loop acts on.
#[derive(Debug, PartialEq)]
pub(crate) enum StreamMessage {
    /// WAL data: the server's current end of WAL, and a pgoutput message.
    XLogData { server_end: u64, body: Bytes },
    /// The server's keepalive: the WAL position it has sent up to, its clock,
    /// and whether it wants a status update now.
    Keepalive {
        wal_end: u64,
        clock: i64,
        reply: bool,
    },
}

/// A column of a relation message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RelationColumn {
    pub(crate) name: String,
    pub(crate) type_oid: u32,
    pub(crate) typmod: i32,
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TupleValue {
    Null,
    /// An unchanged TOASTed value that the server did not send.
    Unchanged,
    Text(Bytes),
    Binary(Bytes),
}

/// A pgoutput message.
#[derive(Debug, PartialEq)]
pub(crate) enum Logical {
    Begin {
        final_lsn: u64,
        commit_time: i64,
    },
    Commit {
        end_lsn: u64,
        commit_time: i64,
    },
    Relation {
        oid: u32,
        namespace: String,
        name: String,
        columns: Vec<RelationColumn>,
    },
    Insert {
        oid: u32,
        new: Vec<TupleValue>,
    },
    Update {
        oid: u32,
        old: Option<Vec<TupleValue>>,
        new: Vec<TupleValue>,
    },
    Delete {
        oid: u32,
        old: Vec<TupleValue>,
    },
    Truncate {
        oids: Vec<u32>,
    },
    /// Origin, type, logical decoding messages: nothing to apply.
    Other,
}

/// A malformed message, described.
#[derive(Debug, PartialEq)]
pub(crate) struct Malformed(pub(crate) String);

fn need(buf: &Bytes, n: usize, what: &str) -> Result<(), Malformed> {
    if buf.remaining() < n {
        Err(Malformed(format!("{what} is cut short")))
    } else {
        Ok(())
    }
}

/// Parses one CopyData payload of the replication stream; `None` for messages
/// Ferry ignores.
pub(crate) fn parse_stream(mut data: Bytes) -> Result<Option<StreamMessage>, Malformed> {
    need(&data, 1, "stream message")?;
    match data.get_u8() {
        b'w' => {
            need(&data, 24, "XLogData header")?;
            let _start = data.get_u64();
            let server_end = data.get_u64();
            let _clock = data.get_i64();
            Ok(Some(StreamMessage::XLogData {
                server_end,
                body: data,
            }))
        }
        b'k' => {
            need(&data, 17, "keepalive")?;
            let wal_end = data.get_u64();
            let clock = data.get_i64();
            let reply = data.get_u8() != 0;
            Ok(Some(StreamMessage::Keepalive {
                wal_end,
                clock,
                reply,
            }))
        }
        _ => Ok(None),
    }
}

fn cstring(buf: &mut Bytes, what: &str) -> Result<String, Malformed> {
    let end = buf
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| Malformed(format!("{what} has no terminator")))?;
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.advance(end + 1);
    Ok(text)
}

fn tuple(buf: &mut Bytes) -> Result<Vec<TupleValue>, Malformed> {
    need(buf, 2, "tuple")?;
    let n = buf.get_i16().max(0) as usize;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        need(buf, 1, "tuple column")?;
        match buf.get_u8() {
            b'n' => values.push(TupleValue::Null),
            b'u' => values.push(TupleValue::Unchanged),
            kind @ (b't' | b'b') => {
                need(buf, 4, "tuple value length")?;
                let len = buf.get_i32().max(0) as usize;
                need(buf, len, "tuple value")?;
                let value = buf.split_to(len);
                values.push(if kind == b't' {
                    TupleValue::Text(value)
                } else {
                    TupleValue::Binary(value)
                });
            }
            other => return Err(Malformed(format!("unknown tuple column kind {other:#x}"))),
        }
    }
    Ok(values)
}

/// Parses a pgoutput message.
pub(crate) fn parse_logical(mut buf: Bytes) -> Result<Logical, Malformed> {
    need(&buf, 1, "pgoutput message")?;
    let tag = buf.get_u8();
    match tag {
        b'B' => {
            need(&buf, 20, "Begin")?;
            let final_lsn = buf.get_u64();
            let commit_time = buf.get_i64();
            Ok(Logical::Begin {
                final_lsn,
                commit_time,
            })
        }
        b'C' => {
            need(&buf, 25, "Commit")?;
            buf.advance(1);
            let _commit_lsn = buf.get_u64();
            let end_lsn = buf.get_u64();
            let commit_time = buf.get_i64();
            Ok(Logical::Commit {
                end_lsn,
                commit_time,
            })
        }
        b'R' => {
            need(&buf, 4, "Relation")?;
            let oid = buf.get_u32();
            let namespace = cstring(&mut buf, "relation namespace")?;
            let name = cstring(&mut buf, "relation name")?;
            need(&buf, 3, "Relation")?;
            buf.advance(1);
            let n = buf.get_i16().max(0) as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                need(&buf, 1, "relation column")?;
                buf.advance(1);
                let name = cstring(&mut buf, "column name")?;
                need(&buf, 8, "relation column")?;
                let type_oid = buf.get_u32();
                let typmod = buf.get_i32();
                columns.push(RelationColumn {
                    name,
                    type_oid,
                    typmod,
                });
            }
            Ok(Logical::Relation {
                oid,
                namespace,
                name,
                columns,
            })
        }
        b'I' => {
            need(&buf, 5, "Insert")?;
            let oid = buf.get_u32();
            buf.advance(1);
            Ok(Logical::Insert {
                oid,
                new: tuple(&mut buf)?,
            })
        }
        b'U' => {
            need(&buf, 5, "Update")?;
            let oid = buf.get_u32();
            let mut kind = buf.get_u8();
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some(tuple(&mut buf)?);
                need(&buf, 1, "Update")?;
                kind = buf.get_u8();
            }
            if kind != b'N' {
                return Err(Malformed(format!("Update without a new tuple ({kind:#x})")));
            }
            Ok(Logical::Update {
                oid,
                old,
                new: tuple(&mut buf)?,
            })
        }
        b'D' => {
            need(&buf, 5, "Delete")?;
            let oid = buf.get_u32();
            buf.advance(1);
            Ok(Logical::Delete {
                oid,
                old: tuple(&mut buf)?,
            })
        }
        b'T' => {
            need(&buf, 5, "Truncate")?;
            let n = buf.get_u32() as usize;
            buf.advance(1);
            need(&buf, n * 4, "Truncate relations")?;
            Ok(Logical::Truncate {
                oids: (0..n).map(|_| buf.get_u32()).collect(),
            })
        }
        _ => Ok(Logical::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn updates_with_old_keys_and_unchanged_toast_parse() {
        let mut m = BytesMut::new();
        m.put_u8(b'U');
        m.put_u32(16384);
        m.put_u8(b'K');
        m.put_i16(2);
        m.put_u8(b'b');
        m.put_i32(4);
        m.put_i32(7);
        m.put_u8(b'n');
        m.put_u8(b'N');
        m.put_i16(2);
        m.put_u8(b'b');
        m.put_i32(4);
        m.put_i32(8);
        m.put_u8(b'u');
        let parsed = parse_logical(m.freeze()).expect("parses");
        assert_eq!(
            parsed,
            Logical::Update {
                oid: 16384,
                old: Some(vec![
                    TupleValue::Binary(Bytes::from_static(&[0, 0, 0, 7])),
                    TupleValue::Null
                ]),
                new: vec![
                    TupleValue::Binary(Bytes::from_static(&[0, 0, 0, 8])),
                    TupleValue::Unchanged
                ],
            }
        );
    }

    #[test]
    fn cut_messages_are_errors() {
        assert!(parse_logical(Bytes::from_static(b"C\x00\x01")).is_err());
        assert!(parse_stream(Bytes::from_static(b"k\x00")).is_err());
        let mut k = BytesMut::new();
        k.put_u8(b'k');
        k.put_u64(42);
        k.put_i64(7);
        k.put_u8(1);
        assert_eq!(
            parse_stream(k.freeze()).expect("keepalive"),
            Some(StreamMessage::Keepalive {
                wal_end: 42,
                clock: 7,
                reply: true
            })
        );
    }
}
