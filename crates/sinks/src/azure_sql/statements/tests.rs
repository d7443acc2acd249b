use serde_json::json;
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;

use super::*;

fn row(i: usize) -> AnomalyRow {
    AnomalyRow {
        device_id: format!("pump-{:03}", i % 50),
        window_end: format!(
            "2026-01-01T{:02}:{:02}:{:02}Z",
            i / 3600 % 24,
            i / 60 % 60,
            i % 60
        ),
        model_version: "ae-1".into(),
        score: 2.5 + i as f64,
        threshold: 1.0,
        severity: domain::Severity::Medium,
        contributions: json!({"vibration": 2.0, "sound": 0.5}),
        features: json!({"vibration_mean": 1.25}),
        top_channel: "vibration".into(),
        explanation: "vibration mean is 4.0 sd above normal".into(),
        lineage: Lineage {
            partition_id: Some("3".into()),
            sequence_number: Some(i as i64),
            offset: Some(format!("{}", i * 512)),
            enqueued_time: None,
        },
        inserted_at: None,
    }
}

#[test]
fn any_batch_is_one_statement_with_one_json_parameter() {
    for n in [1usize, 100, 5000] {
        let rows: Vec<AnomalyRow> = (0..n).map(row).collect();
        let statement = insert(&rows, "2026-01-01T01:00:00Z").unwrap();
        assert_eq!(statement.sql, INSERT_ANOMALIES);
        let [Param::Text(Some(json))] = &statement.params[..] else {
            panic!("one text parameter, got {:?}", statement.params.len());
        };
        let payload: Vec<Value> = serde_json::from_str(json).unwrap();
        assert_eq!(payload.len(), n);
        let first = &payload[0];
        assert_eq!(first["device_id"], "pump-000");
        assert_eq!(first["window_end_ms"], 1_767_225_600_000i64);
        // JSON columns travel as text, stored as SQLite stores them.
        assert_eq!(
            first["contributions"],
            json!({"vibration": 2.0, "sound": 0.5}).to_string()
        );
        assert_eq!(first["enqueued_time"], Value::Null);
        assert_eq!(first["inserted_at"], "2026-01-01T01:00:00Z");
        let last = &payload[n - 1];
        assert_eq!(last["sequence_number"], (n - 1) as i64);
    }
}

#[test]
fn every_payload_field_is_a_column_of_the_openjson_clause() {
    let statement = insert(&[row(1)], "2026-01-01T01:00:00Z").unwrap();
    let [Param::Text(Some(json))] = &statement.params[..] else {
        panic!()
    };
    let payload: Vec<Value> = serde_json::from_str(json).unwrap();
    for key in payload[0].as_object().unwrap().keys() {
        assert!(
            INSERT_ANOMALIES.contains(&format!("'$.{key}'")),
            "{key} not shredded"
        );
        if key == "ordinal" {
            // The row's position in the batch: orders repeated windows, is not stored.
            assert!(INSERT_ANOMALIES.contains("ORDER BY j.ordinal"));
            continue;
        }
        assert!(
            INSERT_ANOMALIES.contains(&format!("'$.{key}'")),
            "{key} not shredded"
        );
        assert!(
            INSERT_ANOMALIES.contains(&format!("b.{key}")),
            "{key} not inserted"
        );
    }
}

#[test]
fn rows_the_columns_cannot_hold_are_refused_before_sending() {
    let mut long = row(1);
    long.device_id = "d".repeat(129);
    let err = insert(&[row(0), long], "t").unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("device_id"), "{err}");
    let mut bad_time = row(1);
    bad_time.window_end = "soon".into();
    assert!(insert(&[bad_time], "t").is_err());
}

#[test]
fn history_parameters_follow_the_query() {
    let q = HistoryQuery {
        device_id: Some("pump-7".into()),
        since: Some("2026-01-01T00:00:01Z".into()),
        limit: 25,
    };
    let statement = history(&q).unwrap();
    assert_eq!(
        statement.params,
        [
            Param::BigInt(Some(25)),
            Param::Text(Some("pump-7".into())),
            Param::BigInt(Some(1_767_225_601_000)),
        ]
    );
    let all = history(&HistoryQuery {
        limit: 5,
        ..HistoryQuery::default()
    })
    .unwrap();
    assert_eq!(all.params[1..], [Param::Text(None), Param::BigInt(None)]);
}

#[test]
fn history_rows_decode_in_column_order() {
    let cells = vec![
        Cell::Text("pump-7".into()),
        Cell::Text("2026-01-01T00:01:00Z".into()),
        Cell::Text("ae-1".into()),
        Cell::Float(3.5),
        Cell::Float(1.0),
        Cell::Text("medium".into()),
        Cell::Text("{\"a\":3.5}".into()),
        Cell::Text("{\"a_mean\":1.0}".into()),
        Cell::Text("a".into()),
        Cell::Text("a is off".into()),
        Cell::Text("3".into()),
        Cell::Int(42),
        Cell::Null,
        Cell::Null,
        Cell::Text("2026-01-01T00:01:02Z".into()),
    ];
    let r = anomaly_row(cells).unwrap();
    assert_eq!(r.contributions, json!({"a": 3.5}));
    assert_eq!(r.lineage.sequence_number, Some(42));
    assert_eq!(r.lineage.offset, None);
    assert_eq!(r.inserted_at.as_deref(), Some("2026-01-01T00:01:02Z"));
    assert!(anomaly_row(vec![Cell::Int(1)]).is_err());
    assert_eq!(inserted_count(&[vec![Cell::Int(3)]]).unwrap(), 3);
    assert!(inserted_count(&[]).is_err());
}

/// T-SQL that sqlparser's MS SQL dialect does not know (0.59), taken out before parsing. A
/// construct found here and not in the SQL is an error, so the list stays true.
const NOT_IN_THE_DIALECT: [&str; 1] = ["OPTION (RECOMPILE)"];

/// T-SQL forms the dialect parses only in another spelling: `ALTER COLUMN c type COLLATE x NOT
/// NULL` (sqlparser 0.59 knows only `SET DATA TYPE t`, without a collation), parsed in that
/// spelling; `migrate::tests` checks the collation itself. Each must occur in
/// a migration (checked in `migrate::tests`), so the list stays true.
pub(crate) const RESPELLED: [(&str, &str); 3] = [
    (
        "ALTER COLUMN device_id nvarchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL",
        "ALTER COLUMN device_id SET DATA TYPE nvarchar(128)",
    ),
    (
        "ALTER COLUMN window_end nvarchar(40) COLLATE Latin1_General_100_BIN2 NOT NULL",
        "ALTER COLUMN window_end SET DATA TYPE nvarchar(40)",
    ),
    (
        "ALTER COLUMN model_version nvarchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL",
        "ALTER COLUMN model_version SET DATA TYPE nvarchar(128)",
    ),
];

/// Parses T-SQL with sqlparser's MS SQL dialect, without the constructs it lacks; returns the
/// number of statements.
pub(crate) fn parse_tsql(sql: &str) -> Result<usize, String> {
    let mut text = sql.to_string();
    for construct in NOT_IN_THE_DIALECT {
        text = text.replace(construct, "");
    }
    for (tsql, spelling) in RESPELLED {
        text = text.replace(tsql, spelling);
    }
    Parser::parse_sql(&MsSqlDialect {}, &text)
        .map(|statements| statements.len())
        .map_err(|e| e.to_string())
}

#[test]
fn every_statement_parses_as_tsql() {
    for (name, sql, statements) in [
        ("insert", INSERT_ANOMALIES, 3),
        ("history", HISTORY, 1),
        ("ping", PING, 1),
    ] {
        let parsed = parse_tsql(sql);
        assert_eq!(parsed, Ok(statements), "{name}\n{sql}");
    }
    for construct in NOT_IN_THE_DIALECT {
        assert!(
            [INSERT_ANOMALIES, HISTORY, PING]
                .iter()
                .any(|s| s.contains(construct)),
            "{construct} is no longer used"
        );
        assert!(
            Parser::parse_sql(&MsSqlDialect {}, &format!("SELECT 1 {construct}")).is_err(),
            "the dialect now knows {construct}: drop it from the list"
        );
    }
}
