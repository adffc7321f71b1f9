//! PostgreSQL source and sink for Ferry.
