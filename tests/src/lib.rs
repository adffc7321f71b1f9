//! Test-service kit.
