//! The connector conformance suite of `ferry-core`, against a real MariaDB.

use ferry_core::test_utils::conformance::{self, Capabilities};
use ferry_core::{DataType, Result};
use ferry_mysql::{MySqlSink, MySqlSource};

async fn endpoints() -> Result<(MySqlSource, MySqlSink, String)> {
    let maria = ferry_tests::mariadb_or_panic();
    let db = maria.create_database("conformance").expect("test database");
    let url = maria.url(&db);
    Ok((
        MySqlSource::connect(&url).await?,
        MySqlSink::connect(&url).await?,
        db,
    ))
}

/// What MySQL/MariaDB can hold and give back as the same logical type, and why the
/// rest is left out.
fn caps() -> Capabilities {
    let unsupported = [
        // MySQL's TIME is a signed duration: a time of day is stored as TIME(6) and
        // read back as an interval (the mapping is documented; values survive).
        DataType::Time,
        // No time-with-zone type: stored as text.
        DataType::TimeTz,
        // TIMESTAMP only reaches 2038, so timestamptz is stored as DATETIME(6) in UTC
        // and read back as a timestamp without zone (values survive).
        DataType::TimestampTz,
        // TIME holds no months and at most ±838:59:59; the suite's intervals go
        // beyond (those that fit are covered by the codec's property tests).
        DataType::Interval,
        // No uuid, inet, cidr or macaddr types: stored as text and read back as text.
        DataType::Uuid,
        DataType::Inet,
        DataType::Cidr,
        DataType::MacAddr,
        // MariaDB's JSON keeps the text, but Ferry reads every JSON column as the
        // normalised (binary) kind; `json` text comes back as `jsonb`.
        DataType::Json { binary: false },
        // Arrays are stored as JSON documents.
        DataType::Array(Box::new(DataType::Int32)),
        DataType::Array(Box::new(DataType::text())),
        DataType::Array(Box::new(DataType::Float64)),
        // DECIMAL holds at most 65 digits: an unconstrained numeric becomes
        // DECIMAL(65,30), which changes the scale of every value.
        DataType::Decimal {
            precision: None,
            scale: None,
        },
    ];
    let mut caps = Capabilities::all();
    for t in &unsupported {
        caps = caps.without(t);
    }
    Capabilities {
        // MySQL has no NaN or infinities in FLOAT/DOUBLE, DECIMAL or dates.
        float_specials: false,
        decimal_specials: false,
        infinite_datetimes: false,
        // Large enough (> 2 × 16 MiB of table data) that the key-range split runs.
        bulk_rows: 200_000,
        ..caps
    }
}

macro_rules! check {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() -> Result<()> {
            let (source, sink, db) = endpoints().await?;
            let report = conformance::$name(&source, &sink, &db, &caps()).await?;
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
