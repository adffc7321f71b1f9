//! Binary `COPY` streams: [`CopyReader`] parses `COPY ... TO STDOUT (FORMAT binary)`
//! into rows of [`Value`]s, [`CopyWriter`] builds `COPY ... FROM STDIN (FORMAT binary)`.
//!
//! The stream is the 11-byte signature, a 32-bit flags field and a header extension
//! (length-prefixed), then one tuple per row (a 16-bit field count, each field a
//! 32-bit length, -1 for NULL, and its bytes) and the 16-bit trailer -1.

use crate::codec::{self, CodecError, PgColumnType};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use ferry_core::Value;
use std::collections::VecDeque;

/// The binary COPY signature.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags 0, no header extension.
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Field count -1.
const TRAILER: &[u8; 2] = b"\xff\xff";
/// Flags bit 16: tuples carry OIDs (before PostgreSQL 12).
const FLAG_OIDS: u32 = 1 << 16;
/// Flags bits 17-31 are critical: a reader must stop on any it does not know.
const FLAGS_CRITICAL_UNKNOWN: u32 = 0xFFFE_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    Rows,
    Done,
}

/// How far a partly received frame (header or tuple) has been checked, so that a
/// frame arriving in many small chunks is scanned once.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Bytes of the frame known to be complete fields.
    pos: usize,
    /// Fields still to check; `None` until the field count is read.
    fields_left: Option<usize>,
}

/// The outcome of measuring the frame at the start of a buffer.
enum Measure {
    /// The frame is complete and this long.
    Complete(usize),
    /// The buffer must hold at least this many bytes before the frame can progress.
    Need(usize),
}

#[inline]
fn be_u32(b: &[u8], pos: usize) -> u32 {
    u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]])
}

/// Measures the frame at the start of `buf` (which holds at least the bytes of the
/// frame already recorded in `scan`).
fn measure(phase: Phase, ncols: usize, scan: &mut Scan, buf: &[u8]) -> Result<Measure, CodecError> {
    match phase {
        Phase::Header => {
            if buf.len() < HEADER.len() {
                return Ok(Measure::Need(HEADER.len()));
            }
            if &buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(CodecError::Stream(
                    "bad signature (not COPY ... (FORMAT binary) output)".into(),
                ));
            }
            let flags = be_u32(buf, 11);
            if flags & FLAG_OIDS != 0 {
                return Err(CodecError::Stream(
                    "tuples with OIDs are not supported".into(),
                ));
            }
            if flags & FLAGS_CRITICAL_UNKNOWN != 0 {
                return Err(CodecError::Stream(format!(
                    "unknown critical header flags 0x{flags:08x}"
                )));
            }
            let ext = be_u32(buf, 15) as usize;
            let total = HEADER
                .len()
                .checked_add(ext)
                .filter(|_| ext <= i32::MAX as usize)
                .ok_or_else(|| CodecError::Stream(format!("header extension of {ext} bytes")))?;
            Ok(if buf.len() < total {
                Measure::Need(total)
            } else {
                Measure::Complete(total)
            })
        }
        Phase::Rows => {
            let mut left = match scan.fields_left {
                Some(left) => left,
                None => {
                    if buf.len() < 2 {
                        return Ok(Measure::Need(2));
                    }
                    let count = i16::from_be_bytes([buf[0], buf[1]]);
                    if count == -1 {
                        return Ok(Measure::Complete(2));
                    }
                    let count = usize::try_from(count).map_err(|_| {
                        CodecError::Stream(format!("tuple with field count {count}"))
                    })?;
                    if count != ncols {
                        return Err(CodecError::FieldCount {
                            got: count,
                            expected: ncols,
                        });
                    }
                    scan.pos = 2;
                    count
                }
            };
            let mut pos = scan.pos;
            let result = loop {
                if left == 0 {
                    break Measure::Complete(pos);
                }
                if buf.len() < pos + 4 {
                    break Measure::Need(pos + 4);
                }
                let len = be_u32(buf, pos) as i32;
                let end = if len == -1 {
                    pos + 4
                } else if len < 0 {
                    return Err(CodecError::Stream(format!("field length {len}")));
                } else {
                    pos + 4 + len as usize
                };
                if buf.len() < end {
                    break Measure::Need(end);
                }
                pos = end;
                left -= 1;
            };
            scan.pos = pos;
            scan.fields_left = Some(left);
            Ok(result)
        }
        Phase::Done => Ok(Measure::Complete(0)),
    }
}

/// Incremental parser of a `COPY ... TO STDOUT (FORMAT binary)` stream.
///
/// [`feed`](Self::feed) it the `CopyData` chunks as they arrive (a tuple may span
/// chunks, a chunk may hold many tuples) and take rows with
/// [`next_row`](Self::next_row) until it returns `None`. Fields are slices of the
/// chunks (no copy); only a tuple that straddles chunks is copied, once. After an
/// error the reader is unusable.
#[derive(Debug)]
pub struct CopyReader {
    columns: Vec<PgColumnType>,
    /// Received chunks not yet consumed, none empty.
    chunks: VecDeque<Bytes>,
    /// The start of a frame that straddles chunks, gathered contiguously.
    partial: BytesMut,
    scan: Scan,
    phase: Phase,
}

impl CopyReader {
    /// A reader of tuples with these columns, in order.
    pub fn new(columns: Vec<PgColumnType>) -> Self {
        CopyReader {
            columns,
            chunks: VecDeque::new(),
            partial: BytesMut::new(),
            scan: Scan::default(),
            phase: Phase::Header,
        }
    }

    /// The columns tuples are decoded as.
    pub fn columns(&self) -> &[PgColumnType] {
        &self.columns
    }

    /// Adds the next chunk of the stream.
    pub fn feed(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.chunks.push_back(chunk);
        }
    }

    /// Whether the trailer has been read: the stream is complete.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Decodes the next complete row; `None` when the data fed so far holds no
    /// complete row (feed more) or the stream has ended ([`finished`](Self::finished)).
    ///
    /// Errors name the 0-based column ([`CodecError::Column`]) where a value fails.
    pub fn next_row(&mut self) -> Result<Option<Vec<Value>>, CodecError> {
        loop {
            match self.phase {
                Phase::Done => {
                    if !self.partial.is_empty() || !self.chunks.is_empty() {
                        return Err(CodecError::Stream("data after the trailer".into()));
                    }
                    return Ok(None);
                }
                Phase::Header => {
                    if self.next_frame()?.is_none() {
                        return Ok(None);
                    }
                    self.phase = Phase::Rows;
                }
                Phase::Rows => {
                    let Some(frame) = self.next_frame()? else {
                        return Ok(None);
                    };
                    if frame.as_ref() == TRAILER {
                        self.phase = Phase::Done;
                        continue;
                    }
                    return self.decode_tuple(&frame).map(Some);
                }
            }
        }
    }

    /// Takes the next complete frame of the current phase, zero-copy when it lies in
    /// one chunk.
    fn next_frame(&mut self) -> Result<Option<Bytes>, CodecError> {
        let ncols = self.columns.len();
        loop {
            if self.partial.is_empty() {
                let Some(front) = self.chunks.front_mut() else {
                    return Ok(None);
                };
                match measure(self.phase, ncols, &mut self.scan, front)? {
                    Measure::Complete(n) => {
                        let frame = front.split_to(n);
                        if front.is_empty() {
                            self.chunks.pop_front();
                        }
                        self.scan = Scan::default();
                        return Ok(Some(frame));
                    }
                    Measure::Need(n) => {
                        // The chunk ends inside this frame: gather it (the scan so
                        // far stays valid, the frame starts the buffer either way).
                        if let Some(front) = self.chunks.pop_front() {
                            self.partial.reserve(n.max(front.len()));
                            self.partial.extend_from_slice(&front);
                        }
                    }
                }
            } else {
                match measure(self.phase, ncols, &mut self.scan, &self.partial)? {
                    Measure::Complete(n) => {
                        let frame = self.partial.split_to(n).freeze();
                        self.scan = Scan::default();
                        return Ok(Some(frame));
                    }
                    Measure::Need(n) => {
                        let Some(front) = self.chunks.front_mut() else {
                            return Ok(None);
                        };
                        let want = n - self.partial.len();
                        let take = want.min(front.len());
                        self.partial.reserve(want);
                        self.partial.extend_from_slice(&front[..take]);
                        front.advance(take);
                        if front.is_empty() {
                            self.chunks.pop_front();
                        }
                    }
                }
            }
        }
    }

    /// Decodes a complete tuple (already checked for framing by [`measure`]).
    fn decode_tuple(&self, frame: &Bytes) -> Result<Vec<Value>, CodecError> {
        let mut row = Vec::with_capacity(self.columns.len());
        let mut pos = 2;
        for (i, col) in self.columns.iter().enumerate() {
            let len = be_u32(frame, pos) as i32;
            pos += 4;
            if len < 0 {
                row.push(Value::Null);
                continue;
            }
            let end = pos + len as usize;
            let value = codec::decode_field(col, frame, pos, end).map_err(|e| e.at_column(i))?;
            row.push(value);
            pos = end;
        }
        Ok(row)
    }
}

/// Builds a `COPY ... FROM STDIN (FORMAT binary)` stream: send
/// [`header`](Self::header), the rows written by [`write_row`](Self::write_row), then
/// [`trailer`](Self::trailer).
#[derive(Debug, Clone)]
pub struct CopyWriter {
    columns: Vec<PgColumnType>,
}

impl CopyWriter {
    /// A writer of rows with these (target) columns, in order.
    pub fn new(columns: Vec<PgColumnType>) -> Self {
        CopyWriter { columns }
    }

    /// The columns rows are encoded as.
    pub fn columns(&self) -> &[PgColumnType] {
        &self.columns
    }

    /// The stream header: signature, no flags, no extension.
    pub fn header() -> Bytes {
        Bytes::from_static(HEADER)
    }

    /// The stream trailer.
    pub fn trailer() -> Bytes {
        Bytes::from_static(TRAILER)
    }

    /// Appends one row as a tuple to `out`. On error `out` is left as it was, and the
    /// error names the 0-based column ([`CodecError::Column`]).
    pub fn write_row(&self, row: &[Value], out: &mut BytesMut) -> Result<(), CodecError> {
        let ncols = self.columns.len();
        if row.len() != ncols {
            return Err(CodecError::FieldCount {
                got: row.len(),
                expected: ncols,
            });
        }
        let count = i16::try_from(ncols).map_err(|_| {
            CodecError::Stream(format!("{ncols} columns, more than a tuple can hold"))
        })?;
        let mark = out.len();
        out.reserve(2 + 8 * ncols);
        out.put_i16(count);
        for (i, (col, value)) in self.columns.iter().zip(row).enumerate() {
            if let Err(e) = codec::encode_field(col, value, out) {
                out.truncate(mark);
                return Err(e.at_column(i));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::oid;
    use ferry_core::{Array, ArrayDim, DataType, Decimal, Interval, Text};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv6Addr};

    fn col(dt: DataType) -> PgColumnType {
        PgColumnType::builtin(dt).expect("a built-in type")
    }

    fn unhex(s: &str) -> Bytes {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>()
            .into()
    }

    fn columns() -> Vec<PgColumnType> {
        vec![
            col(DataType::Int64),
            col(DataType::text()),
            col(DataType::Decimal {
                precision: None,
                scale: None,
            }),
            col(DataType::Float64),
            col(DataType::Bytes),
            col(DataType::TimestampTz),
            col(DataType::Array(Box::new(DataType::Int32))),
            col(DataType::Json { binary: true }),
            col(DataType::Inet),
            col(DataType::Interval),
        ]
    }

    fn rows(n: usize) -> Vec<Vec<Value>> {
        (0..n)
            .map(|i| {
                let i64v = i as i64;
                vec![
                    Value::Int64(i64v * 1_000_003 - 7),
                    if i % 5 == 0 {
                        Value::Null
                    } else {
                        Value::Text(Text::from("row ".repeat(i % 7) + "✓"))
                    },
                    Value::Decimal(
                        Decimal::parse(&format!("{}.{:03}", i64v - 50, i % 1000)).expect("decimal"),
                    ),
                    Value::Float64(if i == 3 { f64::NAN } else { i as f64 / 3.0 }),
                    Value::Bytes(Bytes::from(vec![i as u8; i % 11])),
                    Value::TimestampTz(if i == 2 {
                        i64::MAX
                    } else {
                        i64v * 86_400_000_001
                    }),
                    Value::Array(Box::new(Array::one_dimensional(
                        (0..(i % 4) as i32)
                            .map(|k| if k == 1 { Value::Null } else { Value::Int32(k) })
                            .collect(),
                    ))),
                    Value::Json(Text::from(format!(r#"{{"i": {i}}}"#))),
                    Value::Inet {
                        addr: IpAddr::V6(Ipv6Addr::from(i as u128)),
                        prefix: 128,
                    },
                    Value::Interval(Interval {
                        months: -(i as i32),
                        days: i as i32,
                        micros: -(i64v),
                    }),
                ]
            })
            .collect()
    }

    fn stream(rows: &[Vec<Value>]) -> Bytes {
        let writer = CopyWriter::new(columns());
        let mut out = BytesMut::new();
        out.extend_from_slice(&CopyWriter::header());
        for row in rows {
            writer.write_row(row, &mut out).expect("write row");
        }
        out.extend_from_slice(&CopyWriter::trailer());
        out.freeze()
    }

    /// Feeds `chunks` one by one, draining rows after each.
    fn read(
        columns: Vec<PgColumnType>,
        chunks: impl IntoIterator<Item = Bytes>,
    ) -> Vec<Vec<Value>> {
        let mut reader = CopyReader::new(columns);
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk);
            while let Some(row) = reader.next_row().expect("row") {
                out.push(row);
            }
        }
        assert!(reader.finished());
        assert!(reader.next_row().expect("after the end").is_none());
        out
    }

    /// Row equality with NaN equal to NaN.
    fn same(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
        let norm = |v: &Value| match v {
            Value::Float64(f) if f.is_nan() => Value::Text(Text::from("NaN")),
            other => other.clone(),
        };
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| norm(p) == norm(q))
            })
    }

    fn split(data: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            out.push(data.slice(at..c));
            at = c;
        }
        out
    }

    #[test]
    fn reads_a_server_stream() {
        // COPY (SELECT 1::int4, 'hé'::text, NULL::int8 UNION ALL SELECT -2, '', 7)
        //   TO STDOUT WITH (FORMAT binary), from PostgreSQL 15.
        let data = unhex(
            "5047434f50590aff0d0a000000000000000000000300000004000000010000000368c3a9ffffffff\
             000300000004fffffffe00000000000000080000000000000007ffff",
        );
        let cols = vec![
            col(DataType::Int32),
            col(DataType::text()),
            col(DataType::Int64),
        ];
        let got = read(cols, [data]);
        assert_eq!(
            got,
            vec![
                vec![Value::Int32(1), Value::Text(Text::from("hé")), Value::Null],
                vec![
                    Value::Int32(-2),
                    Value::Text(Text::from("")),
                    Value::Int64(7)
                ],
            ]
        );
    }

    #[test]
    fn one_byte_chunks_read_like_one_chunk() {
        let want = rows(40);
        let data = stream(&want);
        let whole = read(columns(), [data.clone()]);
        assert!(same(&whole, &want));
        let bytes = read(columns(), (0..data.len()).map(|i| data.slice(i..i + 1)));
        assert!(same(&bytes, &want));
        // One chunk per tuple, as PostgreSQL sends them, plus empty chunks.
        let mut chunks = vec![data.slice(..19), Bytes::new()];
        let mut at = 19;
        let writer = CopyWriter::new(columns());
        for row in &want {
            let mut one = BytesMut::new();
            writer.write_row(row, &mut one).expect("row");
            chunks.push(data.slice(at..at + one.len()));
            at += one.len();
        }
        chunks.push(data.slice(at..));
        assert!(same(&read(columns(), chunks), &want));
    }

    #[test]
    fn fields_borrow_the_chunk() {
        let data = stream(&rows(3));
        let range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
        let mut reader = CopyReader::new(columns());
        reader.feed(data.clone());
        let row = reader.next_row().expect("row").expect("a row");
        let row = reader
            .next_row()
            .expect("row")
            .map(|r| (row, r))
            .expect("a row")
            .1;
        match &row[1] {
            Value::Text(t) => assert!(range.contains(&(t.as_bytes().as_ptr() as usize))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_stream_is_not_finished() {
        let data = stream(&rows(2));
        let mut reader = CopyReader::new(columns());
        assert!(reader.next_row().expect("nothing yet").is_none());
        reader.feed(data.slice(..data.len() - 1));
        assert!(reader.next_row().expect("row").is_some());
        assert!(reader.next_row().expect("row").is_some());
        assert!(reader.next_row().expect("no trailer yet").is_none());
        assert!(!reader.finished());
        reader.feed(data.slice(data.len() - 1..));
        assert!(reader.next_row().expect("trailer").is_none());
        assert!(reader.finished());
    }

    #[test]
    fn header_extension_and_flags() {
        let body = stream(&rows(1)).slice(19..);
        let mut with_ext = BytesMut::from(&SIGNATURE[..]);
        with_ext.put_u32(0x0000_8001); // non-critical bits are ignored
        with_ext.put_u32(5);
        with_ext.put_slice(b"12345");
        with_ext.put_slice(&body);
        let with_ext = with_ext.freeze();
        assert!(same(&read(columns(), [with_ext.clone()]), &rows(1)));
        assert!(same(
            &read(
                columns(),
                (0..with_ext.len()).map(|i| with_ext.slice(i..i + 1))
            ),
            &rows(1)
        ));

        let errs = |flags: u32| {
            let mut s = BytesMut::from(&SIGNATURE[..]);
            s.put_u32(flags);
            s.put_u32(0);
            let mut r = CopyReader::new(columns());
            r.feed(s.freeze());
            r.next_row().expect_err("must fail").to_string()
        };
        assert!(errs(FLAG_OIDS).contains("OIDs"));
        assert!(errs(1 << 20).contains("critical"));

        let mut r = CopyReader::new(columns());
        r.feed(Bytes::from_static(b"a,b,c\n1,2,3\n 01234567"));
        assert!(
            r.next_row()
                .expect_err("text COPY")
                .to_string()
                .contains("signature")
        );
    }

    #[test]
    fn framing_errors() {
        let data = stream(&rows(1));
        // Wrong number of fields.
        let mut r = CopyReader::new(columns()[..3].to_vec());
        r.feed(data.clone());
        assert!(matches!(
            r.next_row(),
            Err(CodecError::FieldCount {
                got: 10,
                expected: 3
            })
        ));
        // Data after the trailer.
        let mut r = CopyReader::new(columns());
        r.feed(data.clone());
        r.feed(Bytes::from_static(b"x"));
        assert!(r.next_row().expect("row").is_some());
        assert!(r.next_row().is_err());
        // A negative length other than -1.
        let mut bad = BytesMut::from(&CopyWriter::header()[..]);
        bad.put_i16(1);
        bad.put_i32(-2);
        let mut r = CopyReader::new(vec![col(DataType::Int32)]);
        r.feed(bad.freeze());
        assert!(r.next_row().is_err());
        // A field of the wrong size names its column.
        let mut bad = BytesMut::from(&CopyWriter::header()[..]);
        bad.put_i16(2);
        bad.put_i32(4);
        bad.put_i32(1);
        bad.put_i32(2);
        bad.put_i16(1);
        let mut r = CopyReader::new(vec![col(DataType::Int32), col(DataType::Int32)]);
        r.feed(bad.freeze());
        let err = r.next_row().expect_err("short field");
        assert!(matches!(err, CodecError::Column { column: 1, .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("column 1: invalid binary int32 value")
        );
    }

    #[test]
    fn writer_errors_leave_the_buffer_alone() {
        let writer = CopyWriter::new(vec![col(DataType::Int32), col(DataType::text())]);
        let mut out = BytesMut::from(&b"previous"[..]);
        let err = writer
            .write_row(&[Value::Int32(1), Value::Unchanged], &mut out)
            .expect_err("unchanged");
        assert!(
            matches!(&err, CodecError::Column { column: 1, error } if matches!(**error, CodecError::Unchanged))
        );
        assert_eq!(&out[..], b"previous");
        let err = writer
            .write_row(&[Value::Int32(1)], &mut out)
            .expect_err("too short");
        assert!(matches!(
            err,
            CodecError::FieldCount {
                got: 1,
                expected: 2
            }
        ));
        let err = writer
            .write_row(&[Value::Text(Text::from("x")), Value::Null], &mut out)
            .expect_err("mismatch");
        assert_eq!(
            err.to_string(),
            "column 0: cannot write a text value into a int32 column"
        );
        assert_eq!(&out[..], b"previous");
        writer
            .write_row(&[Value::Null, Value::Null], &mut out)
            .expect("nulls");
        assert_eq!(&out[8..], b"\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff");
    }

    #[test]
    fn empty_stream_and_zero_column_tuples() {
        let mut data = BytesMut::from(&CopyWriter::header()[..]);
        data.extend_from_slice(&CopyWriter::trailer());
        assert!(read(columns(), [data.freeze()]).is_empty());

        let writer = CopyWriter::new(vec![]);
        let mut data = BytesMut::from(&CopyWriter::header()[..]);
        writer.write_row(&[], &mut data).expect("empty row");
        data.extend_from_slice(&CopyWriter::trailer());
        assert_eq!(read(vec![], [data.freeze()]), vec![Vec::<Value>::new()]);
    }

    proptest! {
        #[test]
        fn prop_any_chunking_reads_the_same(cuts in proptest::collection::vec(any::<usize>(), 0..40), n in 0usize..12) {
            let want = rows(n);
            let data = stream(&want);
            let got = read(columns(), split(&data, &cuts));
            prop_assert!(same(&got, &want));
        }
    }

    /// A fresh database on the test kit's PostgreSQL.
    fn scratch_database() -> String {
        let pg = ferry_tests::postgres_or_panic();
        let db = pg.create_database("codec").expect("create database");
        pg.url(&db)
    }

    /// Every type through a real server: PostgreSQL writes binary COPY, the reader
    /// decodes it, the writer encodes it again and PostgreSQL loads it; the two tables
    /// must print the same.
    #[tokio::test]
    async fn server_round_trip() {
        use futures_util::{SinkExt, StreamExt};
        let url = scratch_database();
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute(
                "DROP TABLE IF EXISTS ferry_codec_src, ferry_codec_dst;
                 DROP TYPE IF EXISTS ferry_codec_mood;
                 CREATE TYPE ferry_codec_mood AS ENUM ('sad', 'ok', 'happy');
                 CREATE TABLE ferry_codec_src (
                    id int4, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
                    n numeric, n52 numeric(5,2), t text, vc varchar(5), bp char(3), nm name,
                    by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
                    iv interval, u uuid, j json, jb jsonb, ip inet, cd cidr, mac macaddr,
                    mood ferry_codec_mood, ai int4[], at text[], an numeric[],
                    amood ferry_codec_mood[], pt point);
                 CREATE TABLE ferry_codec_dst (LIKE ferry_codec_src);
                 SET TimeZone = 'Asia/Kolkata';",
            )
            .await
            .expect("schema");
        let thousand: String = (0..1000)
            .map(|i| char::from(b'0' + (i % 10) as u8))
            .collect();
        let tiny = format!("0.{}1", "0".repeat(900));
        client
            .batch_execute(&format!(
                "INSERT INTO ferry_codec_src VALUES
                 (1, true, 1, 2, 3, 1.5, 2.25, 1.50, 999.99, 'héllo', 'abcde', 'ab', 'nm',
                  '\\x00ff', '2024-02-29', '23:59:59.999999', '12:00:00+05:30',
                  '2024-01-01 00:00:00.000001', '2024-06-30 12:34:56.789+02',
                  '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                  '{{\"a\": [1, 2]}}', '{{\"b\": null, \"a\": 1}}', '192.168.1.7/24', '10.0.0.0/8',
                  '08:00:2b:01:02:03', 'happy', '{{1,NULL,3}}', '{{\"x,y\",NULL,\"\"}}',
                  '{{1.50,NaN,-0.5}}', '{{sad,ok}}', '(1.5,2)'),
                 (2, false, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity',
                  'NaN', -999.99, '', '', '', '', '\\x', 'infinity', '00:00', '24:00:00-15:59',
                  '-infinity', 'infinity', '-1 mons -2 days -00:00:03', '00000000-0000-0000-0000-000000000000',
                  '[]', '[]', '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', 'sad',
                  '{{{{1,2}},{{3,NULL}}}}', '{{}}', '[0:1]={{0.000,1e-20}}', '{{}}', '(0,0)'),
                 (3, NULL, NULL, NULL, NULL, 'Infinity', '-0', '{thousand}.{thousand}', 0,
                  NULL, NULL, NULL, NULL, NULL, '4713-01-01 BC', NULL, NULL,
                  '4713-01-01 00:00:00 BC', '294276-12-31 23:59:59.999999+00', NULL, NULL,
                  NULL, NULL, '2001:db8::1/64', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                 (4, NULL, NULL, NULL, NULL, '-Infinity', 1e-300, '-{tiny}', NULL, NULL, NULL,
                  NULL, NULL, NULL, '5874897-12-31', NULL, NULL, NULL, NULL, NULL, NULL,
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                 (5, NULL, NULL, NULL, NULL, NULL, NULL, '-0.000', NULL, NULL, NULL, NULL, NULL,
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                  NULL, NULL, NULL, NULL, NULL, NULL);"
            ))
            .await
            .expect("rows");
        let oid_of = |name: &str| {
            let client = &client;
            let name = name.to_string();
            async move {
                let row = client
                    .query_one(
                        "SELECT oid, typarray FROM pg_type WHERE typname = $1",
                        &[&name],
                    )
                    .await
                    .expect("type oid");
                (row.get::<_, u32>(0), row.get::<_, u32>(1))
            }
        };
        let (mood_oid, mood_array_oid) = oid_of("ferry_codec_mood").await;
        let point_oid = 600;
        let mood = DataType::Enum {
            name: "ferry_codec_mood".into(),
            labels: vec!["sad".into(), "ok".into(), "happy".into()],
        };
        let arr = |dt: DataType| col(DataType::Array(Box::new(dt)));
        let numeric = DataType::Decimal {
            precision: None,
            scale: None,
        };
        let columns = vec![
            col(DataType::Int32),
            col(DataType::Bool),
            col(DataType::Int16),
            col(DataType::Int32),
            col(DataType::Int64),
            col(DataType::Float32),
            col(DataType::Float64),
            col(numeric.clone()),
            col(DataType::Decimal {
                precision: Some(5),
                scale: Some(2),
            }),
            col(DataType::text()),
            col(DataType::Text {
                max_len: Some(5),
                fixed: false,
            }),
            col(DataType::Text {
                max_len: Some(3),
                fixed: true,
            }),
            PgColumnType::new(DataType::text(), oid::NAME, 0),
            col(DataType::Bytes),
            col(DataType::Date),
            col(DataType::Time),
            col(DataType::TimeTz),
            col(DataType::Timestamp),
            col(DataType::TimestampTz),
            col(DataType::Interval),
            col(DataType::Uuid),
            col(DataType::Json { binary: false }),
            col(DataType::Json { binary: true }),
            col(DataType::Inet),
            col(DataType::Cidr),
            col(DataType::MacAddr),
            PgColumnType::new(mood.clone(), mood_oid, 0),
            arr(DataType::Int32),
            arr(DataType::text()),
            arr(numeric),
            PgColumnType::new(DataType::Array(Box::new(mood)), mood_array_oid, mood_oid),
            PgColumnType::new(
                DataType::Other {
                    engine: "postgres".into(),
                    name: "point".into(),
                },
                point_oid,
                0,
            ),
        ];

        let mut reader = CopyReader::new(columns.clone());
        let out = client
            .copy_out("COPY ferry_codec_src TO STDOUT (FORMAT binary)")
            .await
            .expect("copy out");
        futures_util::pin_mut!(out);
        let mut rows = Vec::new();
        while let Some(chunk) = out.next().await {
            reader.feed(chunk.expect("chunk"));
            while let Some(row) = reader.next_row().expect("decode") {
                rows.push(row);
            }
        }
        assert!(reader.finished());
        assert_eq!(rows.len(), 5);

        // Decoded values print as PostgreSQL prints them.
        let printed = client
            .query(
                "SELECT n::text, ttz::text, d::text FROM ferry_codec_src ORDER BY id",
                &[],
            )
            .await
            .expect("printed");
        for (row, server) in rows.iter().zip(&printed) {
            let n: Option<String> = server.get(0);
            match &row[7] {
                Value::Decimal(d) => assert_eq!(Some(d.to_string()), n),
                other => assert_eq!(n, None, "{other:?}"),
            }
        }
        assert_eq!(
            rows[0][16],
            Value::TimeTz {
                micros: 12 * 3_600_000_000,
                offset_secs: 19_800
            }
        );
        assert_eq!(
            rows[0][7],
            Value::Decimal(Decimal::parse("1.50").expect("d"))
        );
        assert_eq!(rows[1][14], Value::Date(i32::MAX));
        assert_eq!(rows[2][14], Value::Date(-2_451_507));
        assert_eq!(rows[3][14], Value::Date(2_145_031_948));
        assert_eq!(rows[1][17], Value::Timestamp(i64::MIN));
        assert_eq!(
            rows[1][27],
            Value::Array(Box::new(Array {
                dims: vec![
                    ArrayDim {
                        len: 2,
                        lower_bound: 1
                    },
                    ArrayDim {
                        len: 2,
                        lower_bound: 1
                    }
                ],
                values: vec![
                    Value::Int32(1),
                    Value::Int32(2),
                    Value::Int32(3),
                    Value::Null
                ],
            }))
        );

        // Write them back through binary COPY FROM.
        let writer = CopyWriter::new(columns);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&CopyWriter::header());
        for row in &rows {
            writer.write_row(row, &mut buf).expect("encode");
        }
        buf.extend_from_slice(&CopyWriter::trailer());
        let sink = client
            .copy_in::<_, Bytes>("COPY ferry_codec_dst FROM STDIN (FORMAT binary)")
            .await
            .expect("copy in");
        futures_util::pin_mut!(sink);
        sink.send(buf.freeze()).await.expect("send");
        assert_eq!(sink.finish().await.expect("finish"), 5);

        let dump = |table: &'static str| {
            let client = &client;
            async move {
                client
                    .query(&format!("SELECT r::text FROM {table} r ORDER BY id"), &[])
                    .await
                    .expect("dump")
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
            }
        };
        let (src, dst) = (dump("ferry_codec_src").await, dump("ferry_codec_dst").await);
        assert_eq!(src, dst);
        client
            .batch_execute(
                "DROP TABLE ferry_codec_src, ferry_codec_dst; DROP TYPE ferry_codec_mood;",
            )
            .await
            .expect("clean up");
    }

    /// Numerics in bulk against the server: what it sends decodes to what it prints,
    /// and what the writer sends it prints back unchanged.
    #[tokio::test]
    async fn server_numerics() {
        use futures_util::{SinkExt, StreamExt};
        let url = scratch_database();
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        // Deterministic pseudo-random decimal texts of many shapes.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut texts = Vec::new();
        for _ in 0..3000 {
            let int_len = [0, 1, 1, 2, 4, 5, 8, 9, 17, 40, 300][next(11) as usize];
            let frac_len = [0, 0, 1, 2, 3, 4, 5, 7, 8, 20, 200][next(11) as usize];
            let zeros_first = next(3) == 0;
            let mut s = String::new();
            if next(2) == 0 {
                s.push('-');
            }
            if int_len == 0 {
                s.push('0');
            }
            for i in 0..int_len {
                let d = if i == 0 {
                    1 + next(9)
                } else if zeros_first {
                    0
                } else {
                    next(10)
                };
                s.push(char::from(b'0' + d as u8));
            }
            if frac_len > 0 {
                s.push('.');
                for i in 0..frac_len {
                    let d = if zeros_first && i + 1 < frac_len {
                        0
                    } else {
                        next(10)
                    };
                    s.push(char::from(b'0' + d as u8));
                }
            }
            texts.push(s);
        }
        // The extremes of the format: 131072 digits before the point, 16383 after.
        texts.push(format!("-9{}", "0".repeat(131_071)));
        texts.push(format!("1{}.{}1", "7".repeat(131_071), "0".repeat(16_381)));
        texts.push(format!("0.{}", "0".repeat(16_383)));
        client
            .batch_execute(
                "DROP TABLE IF EXISTS ferry_codec_num;
                 CREATE TABLE ferry_codec_num (id int4, n numeric, printed text)",
            )
            .await
            .expect("table");
        let columns = vec![
            col(DataType::Int32),
            col(DataType::Decimal {
                precision: None,
                scale: None,
            }),
            col(DataType::text()),
        ];
        let writer = CopyWriter::new(columns.clone());
        let mut buf = BytesMut::from(&CopyWriter::header()[..]);
        for (i, t) in texts.iter().enumerate() {
            let row = [
                Value::Int32(i as i32),
                Value::Decimal(Decimal::parse(t).expect("decimal")),
                Value::Text(Text::from(t.as_str())),
            ];
            writer.write_row(&row, &mut buf).expect("encode");
        }
        buf.extend_from_slice(&CopyWriter::trailer());
        let sink = client
            .copy_in::<_, Bytes>("COPY ferry_codec_num FROM STDIN (FORMAT binary)")
            .await
            .expect("copy in");
        futures_util::pin_mut!(sink);
        sink.send(buf.freeze()).await.expect("send");
        sink.finish().await.expect("finish");
        // The server's own reading of each text must equal what the writer sent.
        let mismatches = client
            .query(
                "SELECT printed, n::text FROM ferry_codec_num WHERE n::text <> printed::numeric::text",
                &[],
            )
            .await
            .expect("compare");
        let shown: Vec<(String, String)> = mismatches
            .iter()
            .take(5)
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert!(mismatches.is_empty(), "{shown:?}");

        let out = client
            .copy_out(
                "COPY (SELECT id, n, n::text FROM ferry_codec_num ORDER BY id) TO STDOUT (FORMAT binary)",
            )
            .await
            .expect("copy out");
        futures_util::pin_mut!(out);
        let mut reader = CopyReader::new(columns);
        let mut count = 0;
        while let Some(chunk) = out.next().await {
            reader.feed(chunk.expect("chunk"));
            while let Some(row) = reader.next_row().expect("decode") {
                let (Value::Decimal(d), Value::Text(printed)) = (&row[1], &row[2]) else {
                    panic!("{row:?}");
                };
                assert_eq!(d.to_string(), printed.as_str());
                count += 1;
            }
        }
        assert_eq!(count, texts.len());
        client
            .batch_execute("DROP TABLE ferry_codec_num")
            .await
            .expect("clean up");
    }
}
