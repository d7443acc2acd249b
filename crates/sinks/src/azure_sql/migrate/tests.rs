use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::azure_sql::statements::tests::parse_tsql;

#[test]
fn the_list_matches_the_sql_folder_and_versions_are_contiguous() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("sql");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(files, listed);
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version, i as i64 + 1);
        assert!(
            m.name.starts_with(&format!("V{:03}__", m.version)),
            "{}",
            m.name
        );
        let on_disk = std::fs::read_to_string(dir.join(m.name)).unwrap();
        assert_eq!(checksum(&on_disk), checksum(m.sql));
    }
}

#[test]
fn every_respelled_construct_occurs_in_a_migration() {
    for (tsql, _) in crate::azure_sql::statements::tests::RESPELLED {
        assert!(MIGRATIONS.iter().any(|m| m.sql.contains(tsql)), "{tsql}");
    }
}

#[test]
fn the_key_columns_end_up_binary_and_the_key_is_rebuilt_on_them() {
    let v2 = MIGRATIONS.iter().find(|m| m.version == 2).unwrap().sql;
    for column in ["device_id", "window_end", "model_version"] {
        assert!(
            v2.contains(&format!("ALTER COLUMN {column} ")) && v2.contains("COLLATE Latin1_General_100_BIN2 NOT NULL"),
            "{column}"
        );
    }
    let drop_key = v2.find("DROP CONSTRAINT uq_anomalies_window").unwrap();
    let alter = v2.find("ALTER COLUMN device_id").unwrap();
    let add_key = v2.find("ADD CONSTRAINT uq_anomalies_window UNIQUE (device_id, window_end, model_version)").unwrap();
    assert!(drop_key < alter && alter < add_key);
    for index in ["ix_anomalies_by_window", "ix_anomalies_by_device"] {
        assert!(v2.contains(&format!("DROP INDEX {index}")) && v2.contains(&format!("CREATE INDEX {index}")), "{index}");
    }
}

#[test]
fn v4_keys_windows_and_trackers_without_the_model_version_keeping_the_first_row() {
    let v4 = MIGRATIONS.iter().find(|m| m.version == 4).unwrap().sql;
    let at = |needle: &str| v4.find(needle).unwrap_or_else(|| panic!("{needle}"));
    // Anomalies: drop the key, keep each window's first row (lowest id), key on the window alone.
    let (drop, dedupe, add) = (
        at("DROP CONSTRAINT uq_anomalies_window"),
        at("PARTITION BY device_id, window_end ORDER BY id) AS occurrence"),
        at("ADD CONSTRAINT uq_anomalies_window UNIQUE (device_id, window_end);"),
    );
    assert!(drop < dedupe && dedupe < add && at("DELETE FROM ranked WHERE occurrence > 1") < add);
    // Trackers: the most recently written one per device, keyed on the device alone.
    let (drop, keep, add) = (
        at("DROP CONSTRAINT pk_incident_trackers"),
        at("PARTITION BY device_id ORDER BY updated_at DESC, version DESC) AS recency"),
        at("ADD CONSTRAINT pk_incident_trackers PRIMARY KEY CLUSTERED (device_id);"),
    );
    assert!(drop < keep && keep < add && at("DELETE FROM ranked WHERE recency > 1") < add);
    // Guarded on the old key's columns, so a second run changes nothing; and on the key being
    // absent, so a run by hand that died between the drop and the add finishes next time.
    assert_eq!(v4.matches("AND c.name = N'model_version'").count(), 2);
    assert_eq!(v4.matches(") OR NOT EXISTS (").count(), 2);
    assert_eq!(v4.matches("IF EXISTS (SELECT 1 FROM sys.key_constraints WHERE name = N'").count(), 2, "drop only a key that is there");
}

#[test]
fn every_migration_and_runner_statement_parses_as_tsql() {
    for m in MIGRATIONS {
        for batch in batches(m.sql) {
            assert!(
                parse_tsql(&batch).is_ok(),
                "{}: {:?}\n{batch}",
                m.name,
                parse_tsql(&batch)
            );
        }
    }
    let m = &MIGRATIONS[0];
    for sql in [
        BOOTSTRAP.to_string(),
        begin(1),
        record(m, &checksum(m.sql)),
        ROLLBACK.to_string(),
    ] {
        assert!(parse_tsql(&sql).is_ok(), "{:?}\n{sql}", parse_tsql(&sql));
    }
    let odd = Migration {
        version: 9,
        name: "V009__o'brien.sql",
        sql: "",
    };
    assert!(record(&odd, "ab").contains("N'V009__o''brien.sql'"));
}

#[test]
fn batches_split_on_go_lines_only() {
    let sql = "CREATE TABLE a (x int);\nGO\n  go  \nSELECT 'GO' AS going;\nGO\n";
    assert_eq!(
        batches(sql),
        ["CREATE TABLE a (x int);\n", "SELECT 'GO' AS going;\n"]
    );
    assert_eq!(checksum("a\r\nb"), checksum("a\nb"));
    assert_ne!(checksum("a"), checksum("b"));
}

/// A test double for a SQL session: keeps `schema_migrations` in a map and records every
/// statement, so the runner's flow is checked without a server (the real run is gated on
/// ANOMALY_TEST_SQL_CONNECTION_STRING, see crates/tools/tests/it/azure_sql.rs).
#[derive(Default)]
struct ScriptedSessionDouble {
    recorded: BTreeMap<i64, String>,
    sent: Vec<String>,
    fail_on: Option<&'static str>,
}

impl Session for ScriptedSessionDouble {
    async fn run(&mut self, sql: &str) -> Result<Vec<Vec<Cell>>, SqlError> {
        self.sent.push(sql.to_string());
        if self.fail_on.is_some_and(|needle| sql.contains(needle)) {
            return Err(SqlError::permanent(
                "There is already an object named 'anomalies'",
            ));
        }
        for m in MIGRATIONS {
            if sql == begin(m.version) {
                return Ok(self
                    .recorded
                    .get(&m.version)
                    .map(|c| vec![vec![Cell::Text(c.clone())]])
                    .unwrap_or_default());
            }
            if sql == record(m, &checksum(m.sql)) {
                self.recorded.insert(m.version, checksum(m.sql));
            }
        }
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn unapplied_scripts_run_once_and_are_recorded() {
    let mut session = ScriptedSessionDouble::default();
    let report = migrate(&mut session, MIGRATIONS).await.unwrap();
    assert_eq!(
        report.iter().map(|r| &r.1).collect::<Vec<_>>(),
        vec![&Outcome::Applied; MIGRATIONS.len()]
    );
    assert!(session
        .sent
        .iter()
        .any(|s| s.contains("CREATE TABLE dbo.anomalies")));
    assert!(session
        .sent
        .last()
        .unwrap()
        .starts_with("INSERT INTO dbo.schema_migrations"));

    session.sent.clear();
    let report = migrate(&mut session, MIGRATIONS).await.unwrap();
    assert_eq!(report[0].1, Outcome::AlreadyApplied);
    assert!(!session
        .sent
        .iter()
        .any(|s| s.contains("CREATE TABLE dbo.anomalies")));
}

#[tokio::test]
async fn an_edited_script_is_refused_and_a_failing_one_rolls_back() {
    let mut session = ScriptedSessionDouble::default();
    session.recorded.insert(1, "0000000000000000".into());
    let err = migrate(&mut session, MIGRATIONS).await.unwrap_err();
    assert!(matches!(err, MigrateError::Changed { .. }), "{err}");
    assert!(err.to_string().contains("V001__anomalies.sql"), "{err}");

    let mut session = ScriptedSessionDouble {
        fail_on: Some("CREATE TABLE dbo.anomalies"),
        ..Default::default()
    };
    let err = migrate(&mut session, MIGRATIONS).await.unwrap_err();
    assert!(err.to_string().contains("V001__anomalies.sql"), "{err}");
    assert_eq!(session.sent.last().map(String::as_str), Some(ROLLBACK));
    assert!(session.recorded.is_empty());
}
