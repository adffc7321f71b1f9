//! Change events, rows, batches and source positions.

use crate::schema::TableSchema;
use crate::value::Value;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// One row image: a value per column of the batch's schema, in column order.
pub type Row = Vec<Value>;

/// What a [`ChangeEvent`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// A new row (snapshot rows are inserts too).
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
    /// All rows removed.
    Truncate,
    /// The table's schema changed; the batch's schema is the new one.
    SchemaChange,
}

/// One change to one row (or to the whole table for truncate and schema change).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// What happened.
    pub op: Operation,
    /// The row before the change, where the source gives it (updates, deletes).
    /// For a delete without a full before image, the key columns are set and the
    /// rest are [`Value::Null`].
    pub before: Option<Row>,
    /// The row after the change (inserts, updates).
    pub after: Option<Row>,
    /// Commit time in microseconds since 2000-01-01 UTC, if the source knows it.
    pub commit_time: Option<i64>,
}

impl ChangeEvent {
    /// A snapshot row or an insert.
    pub fn insert(row: Row) -> Self {
        ChangeEvent {
            op: Operation::Insert,
            before: None,
            after: Some(row),
            commit_time: None,
        }
    }

    /// Approximate size in bytes.
    pub fn approx_size(&self) -> usize {
        let row = |r: &Option<Row>| {
            r.as_ref()
                .map(|r| r.iter().map(Value::approx_size).sum::<usize>())
                .unwrap_or(0)
        };
        std::mem::size_of::<Self>() + row(&self.before) + row(&self.after)
    }
}

/// A source position (PostgreSQL LSN, binlog coordinates, resume token): opaque
/// bytes whose order, where positions are ordered, is the source's order.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(Bytes);

impl Position {
    /// Wraps the source's encoding.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Position(bytes.into())
    }

    /// The source's encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex of the encoding, as stored in checkpoints.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`Position::to_hex`] output.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Position(Bytes::from(bytes)))
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Position({})", self.to_hex())
    }
}

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Position::from_hex(&text).ok_or_else(|| serde::de::Error::custom("invalid position hex"))
    }
}

/// Many events for one table and one schema version.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The schema every row of this batch follows.
    pub schema: Arc<TableSchema>,
    /// The events, in source order.
    pub events: Vec<ChangeEvent>,
    /// Approximate size of the events in bytes.
    pub bytes: usize,
    /// The position reached when the batch ends at a transaction boundary: every
    /// change up to and including this position has been sent. Batches of one
    /// source transaction before its last carry `None`.
    pub end_position: Option<Position>,
    /// Source clock at `end_position`, in microseconds since 2000-01-01 UTC: the
    /// transaction's commit time, or for a [`Batch::marker`] the time the source
    /// reported it had nothing more to send. Lag is measured from it.
    pub source_time: Option<i64>,
    /// Set on a [`Batch::marker`] sent when the source had sent everything it had
    /// (a keepalive or heartbeat): a target that has applied up to here is caught up.
    pub caught_up: bool,
}

impl Batch {
    /// An empty batch for `schema`.
    pub fn new(schema: Arc<TableSchema>) -> Self {
        Batch {
            schema,
            events: Vec::new(),
            bytes: 0,
            end_position: None,
            source_time: None,
            caught_up: false,
        }
    }

    /// A batch without events that only moves the stream to `position` (a
    /// transaction with no change to the selected tables, or a keepalive /
    /// heartbeat when `caught_up`). Lets a sink checkpoint, and the source release
    /// upstream resources, while the selected tables are idle.
    pub fn marker(position: Position, source_time: Option<i64>, caught_up: bool) -> Self {
        Batch {
            end_position: Some(position),
            source_time,
            caught_up,
            ..Batch::new(Arc::new(TableSchema::new(
                crate::schema::TableId::new("", ""),
                Vec::new(),
            )))
        }
    }

    /// Whether this batch only carries a position (see [`Batch::marker`]).
    pub fn is_marker(&self) -> bool {
        self.events.is_empty() && self.end_position.is_some()
    }

    /// An empty batch with room for `capacity` events.
    pub fn with_capacity(schema: Arc<TableSchema>, capacity: usize) -> Self {
        Batch {
            events: Vec::with_capacity(capacity),
            ..Batch::new(schema)
        }
    }

    /// Appends an event and accounts its size.
    pub fn push(&mut self, event: ChangeEvent) {
        self.bytes += event.approx_size();
        self.events.push(event);
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_hex_round_trip_and_order() {
        let a = Position::from_bytes(vec![0u8, 1, 255]);
        let b = Position::from_bytes(vec![0u8, 2, 0]);
        assert!(a < b);
        assert_eq!(Position::from_hex(&a.to_hex()), Some(a.clone()));
        assert_eq!(Position::from_hex("abc"), None);
        assert_eq!(Position::from_hex("zz"), None);
    }
}
