//! MySQL ENUM columns become PostgreSQL enum types by default, or text with a CHECK
//! constraint with the target option `enum-as = "text-check"`.

mod common;

use common::{TempDir, ferry_run};
use ferry_tests::{mariadb_or_panic, postgres_or_panic};

const FIXTURE: &str = "
CREATE TABLE shirt (id INT PRIMARY KEY, size ENUM('small', 'medium', 'large', 'it''s big') NOT NULL,
                    fit ENUM('slim', 'regular') NULL);
INSERT INTO shirt VALUES (1, 'small', 'slim'), (2, 'it''s big', NULL), (3, 'large', 'regular');
";

#[test]
fn enums_become_types_or_checked_text_as_asked() {
    let maria = mariadb_or_panic();
    let pg = postgres_or_panic();
    let db = maria.create_database("enums").expect("source");
    maria.sql(&db, FIXTURE).expect("fixture");
    let dir = TempDir::new("enums");
    for (option, expected_type) in [("", "USER-DEFINED"), ("enum-as = \"text-check\"", "text")] {
        let target = pg.create_database("enums_pg").expect("target");
        let task = format!(
            "[source]\nurl = {:?}\n[target]\nurl = {:?}\n[target.options]\n{option}\n\
             [task]\ninclude = [\"{db}.*\"]\n",
            maria.url(&db),
            pg.url(&target)
        );
        let run = ferry_run(&dir, &task, &[]);
        assert!(run.status.success(), "ferry failed:\n{}", run.all_output());
        let q = |sql: &str| pg.psql(&target, sql).expect("query");
        assert_eq!(
            q(&format!(
                "SELECT data_type FROM information_schema.columns \
                 WHERE table_schema = '{db}' AND column_name = 'size'"
            )),
            expected_type
        );
        assert_eq!(
            q(&format!(
                "SELECT id, size, fit FROM \"{db}\".shirt ORDER BY id"
            )),
            "1|small|slim\n2|it's big|\n3|large|regular"
        );
        // Either way the target refuses a value that is not a member.
        let bad = pg.psql(
            &target,
            &format!("INSERT INTO \"{db}\".shirt VALUES (4, 'huge', NULL)"),
        );
        assert!(bad.is_err(), "a non-member was accepted with {option:?}");
    }
    // An unknown option is refused, naming it.
    let target = pg.create_database("enums_pg").expect("target");
    let task = format!(
        "[source]\nurl = {:?}\n[target]\nurl = {:?}\n[target.options]\nenum-as = \"set\"\n\
         [task]\ninclude = [\"{db}.*\"]\n",
        maria.url(&db),
        pg.url(&target)
    );
    let run = ferry_run(&dir, &task, &[]);
    assert!(!run.status.success());
    assert!(run.all_output().contains("enum-as"), "{}", run.all_output());
}
