//! The connector conformance suite of `ferry-core`, against a real PostgreSQL.

use ferry_core::test_utils::conformance::{self, Capabilities};
use ferry_core::{DataType, Result};
use ferry_postgres::{PgSink, PgSource};

async fn endpoints() -> Result<(PgSource, PgSink)> {
    let pg = ferry_tests::postgres_or_panic();
    let db = pg.create_database("conformance").expect("test database");
    let url = pg.url(&db);
    Ok((PgSource::connect(&url).await?, PgSink::connect(&url).await?))
}

fn caps() -> Capabilities {
    Capabilities {
        // PostgreSQL's real range: 4714-11-24 BC … 5874897-12-31 / 294276 AD.
        min_date: conformance::days_since_2000(-4713, 11, 24),
        max_date: conformance::days_since_2000(5_874_897, 12, 31),
        // Large enough (> 2 × 16 MiB) that the CTID split is exercised.
        bulk_rows: 200_000,
        // PostgreSQL has no unsigned 64-bit type: it is stored as numeric(20,0) and
        // read back as a decimal, which the cross-engine tests cover.
        ..Capabilities::all().without(&DataType::UInt64)
    }
}

macro_rules! check {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() -> Result<()> {
            let (source, sink) = endpoints().await?;
            let report = conformance::$name(&source, &sink, "public", &caps()).await?;
            println!("{report}");
            Ok(())
        }
    };
}

check!(sink_round_trip);
check!(truncate_reload);
check!(drop_and_create_twice);
check!(do_nothing);
check!(unfinished_writer);
check!(partitions_agree);
check!(schema_round_trip);
