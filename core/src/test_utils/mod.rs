//! The connector kit (feature `test-utils`): an in-memory [`Source`](crate::Source)
//! and [`Sink`](crate::Sink), value comparison helpers, and the [`conformance`]
//! suite every connector crate runs against its real service.
//!
//! A connector crate enables it for its tests only:
//!
//! ```toml
//! [dev-dependencies]
//! ferry-core = { workspace = true, features = ["test-utils"] }
//! ```
//!
//! See `docs/writing-a-connector.md` for the walk-through.

pub mod compare;
pub mod conformance;
pub mod memory;

pub use compare::{
    compare_rows, compare_values, describe_difference, same_row, same_value, show_value, value_fits,
};
pub use conformance::{Capabilities, CheckReport, Report};
pub use memory::{MEMORY_ENGINE, MemorySink, MemorySource, MemoryStore, MemoryWriter};
