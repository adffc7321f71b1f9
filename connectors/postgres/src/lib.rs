//! PostgreSQL source and sink for Ferry.
//!
//! The source discovers tables from the catalog and snapshots them with binary
//! `COPY ... TO STDOUT`, in parallel across and within tables (CTID ranges), all
//! workers reading one exported snapshot. The sink creates tables, loads them with
//! binary `COPY ... FROM STDIN` and builds keys and indexes after the load.

mod apply;
mod assess;
mod bad_data;
mod capture;
mod catalog;
pub mod codec;
mod connect;
pub mod copy;
mod ddl;
mod legacy_text;
mod options;
mod pgoutput;
mod replication;
mod sink;
mod source;

pub use apply::PgApplier;
pub use ddl::schema_ddl;
pub use options::{EnumAs, SinkOptions};
pub use sink::{PgSink, PgTableWriter};
pub use source::PgSource;
