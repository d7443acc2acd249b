//! The published messages against their JSON Schemas (`schemas/`): alerts and dead letters the
//! running handler produced, covering every rejection kind, and the examples in
//! `docs/wire-formats.md`.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{
    alerts, dead_letters, encoded, invocation, invoke, many_metadata, repo_path, spawn_app, texts,
    windows,
};

fn validator(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_path(file)).expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{file} is not a valid schema: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, what: &str, message: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(message)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} {message} breaks its schema: {errors:#?}"
    );
}

#[tokio::test]
async fn produced_alerts_and_dead_letters_follow_their_schemas() {
    let alert_schema = validator("schemas/alert.v1.schema.json");
    let dead_schema = validator("schemas/dead-letter.v2.schema.json");
    let app = spawn_app().await;
    let w = windows(6, 2);
    let mut bodies = texts(&w);
    let mut without_device = w[1].clone();
    without_device.remove("device_id");
    let mut bad_time = w[1].clone();
    bad_time.insert("window_end".into(), json!("soon"));
    let mut null_feature = w[1].clone();
    null_feature.insert("sound_std".into(), Value::Null);
    let mut missing_feature = w[1].clone();
    missing_feature.remove("pressure_max");
    let mut runaway = w[3].clone();
    runaway.insert("sound_max".into(), json!(3.0e38));
    runaway.insert("sound_mean".into(), json!(-3.0e38));
    let mut future = w[2].clone();
    future.insert("window_end".into(), json!("2999-01-01T00:00:00Z"));
    let mut deep = Value::String("{}".into());
    for _ in 0..12 {
        deep = Value::String(serde_json::to_string(&deep).unwrap());
    }
    bodies.extend([
        Value::Object(without_device).to_string(),
        Value::Object(bad_time.clone()).to_string(),
        Value::Object(null_feature).to_string(),
        Value::Object(missing_feature).to_string(),
        Value::Object(runaway).to_string(),
        Value::Object(future).to_string(),
        "temperature=21.5".to_string(),
        "42".to_string(),
        deep.as_str().unwrap().to_string(),
        // LineSeparated output with one bad record: that record travels alone.
        format!(
            "{}\n{}",
            Value::Object(w[5].clone()),
            Value::Object(bad_time)
        ),
    ]);
    let n = bodies.len();
    let (status, reply) = invoke(
        &app,
        &invocation(encoded(json!(bodies)), many_metadata(n, 9000)),
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    let produced_alerts = alerts(&reply);
    assert!(produced_alerts.len() >= 3, "{reply}");
    for alert in &produced_alerts {
        assert_valid(&alert_schema, "alert", alert);
    }
    let dead = dead_letters(&reply);
    for letter in &dead {
        assert_valid(&dead_schema, "dead letter", letter);
    }
    let kinds: BTreeSet<&str> = dead.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let all: BTreeSet<&str> = [
        "not_json",
        "not_object",
        "too_deep",
        "missing_field",
        "invalid_field",
        "missing_feature",
        "invalid_feature",
        "non_finite_score",
        "future_window",
    ]
    .into();
    assert_eq!(
        kinds, all,
        "every rejection kind was produced and validated"
    );
    assert!(dead.iter().any(|d| d["record_index"] == 1), "{dead:?}");

    // A cardinality-one invocation without coordinates: lineage fields are null, still valid.
    let (status, reply) = invoke(
        &app,
        &json!({"Data": {"events": Value::Object(w[0].clone()).to_string()}, "Metadata": {}}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let alert = &alerts(&reply)[0];
    assert_eq!(alert["lineage"]["sequence_number"], Value::Null);
    assert_valid(&alert_schema, "alert", alert);
}

/// The fenced JSON block that follows `heading` in the wire-formats page.
fn example_after(page: &str, heading: &str) -> Value {
    let start = page
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} in docs/wire-formats.md"));
    let rest = &page[start..];
    let open = rest.find("```json\n").expect("a json block") + "```json\n".len();
    let close = rest[open..].find("```").expect("closing fence");
    serde_json::from_str(&rest[open..open + close]).expect("example is JSON")
}

#[test]
fn documented_examples_follow_the_schemas() {
    let page = std::fs::read_to_string(repo_path("docs/wire-formats.md")).unwrap();
    assert_valid(
        &validator("schemas/alert.v1.schema.json"),
        "documented alert",
        &example_after(&page, "### Example alert"),
    );
    assert_valid(
        &validator("schemas/dead-letter.v2.schema.json"),
        "documented dead letter",
        &example_after(&page, "### Example dead letter"),
    );
}

/// The dead-letter kinds no event body can produce (store and size failures) are checked where
/// they are produced; this holds the schema's list to the code's.
#[test]
fn the_dead_letter_schema_lists_every_kind_the_code_has() {
    let text = std::fs::read_to_string(repo_path("schemas/dead-letter.v2.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let listed: BTreeSet<String> = schema["properties"]["kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let code: BTreeSet<String> = domain::RejectionKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    assert_eq!(listed, code);
    let page = std::fs::read_to_string(repo_path("docs/wire-formats.md")).unwrap();
    for kind in &code {
        assert!(page.contains(&format!("| `{kind}` |")), "{kind} is documented");
    }
}

#[test]
fn schemas_refuse_internal_fields() {
    let page = std::fs::read_to_string(repo_path("docs/wire-formats.md")).unwrap();
    let mut alert = example_after(&page, "### Example alert");
    alert["processing_time_us"] = json!(0.9);
    assert!(!validator("schemas/alert.v1.schema.json").is_valid(&alert));
}
