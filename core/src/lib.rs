//! Engine-neutral core of Ferry: the data model (types, values, schemas, change
//! events, batches, positions) and the [`Source`] and [`Sink`] traits that every
//! connector implements. This crate knows no database engine.
#![deny(missing_docs)]

pub mod channel;
pub mod error;
pub mod event;
pub mod filter;
pub mod mapping;
pub mod policy;
pub mod schema;
#[cfg(feature = "test-utils")]
pub mod test_utils;
pub mod traits;
pub mod types;
pub mod value;

pub use channel::{BatchReceiver, BatchSender, batch_channel};
pub use error::{Error, ErrorKind, Result};
pub use event::{Batch, ChangeEvent, Operation, Position, Row};
pub use filter::TableFilter;
pub use mapping::TableMapping;
pub use policy::{BadDataPolicy, BadRow, LoadReport};
pub use schema::{
    AUTO_INCREMENT, Catalog, Column, Finding, FindingLevel, ForeignKey, Index, IndexPart,
    ReferentialAction, TableCache, TableId, TableSchema, UniqueKey, finding_code,
};
pub use traits::{
    ApplyTable, ChangeApplier, NoApplier, Partition, PartitionRange, SchemaDdl, Sink, Snapshot,
    Source, TablePrep, TableWriter,
};
pub use types::DataType;
pub use value::{Array, ArrayDim, Decimal, Interval, Text, Value};
