//! The `ScoreWindows` bindings as the host will use them, read from its `function.json`.
//!
//! The host puts the trigger's events under `Data.<binding name>`. If `ANOMALY_TRIGGER_BINDING`
//! names another binding, every invocation is a 400, the host retries and then checkpoints past
//! the batch: every batch would be lost without an error anywhere. So start-up compares the two
//! and refuses to start on a mismatch. Likewise an output the handler fills but `function.json`
//! does not declare would be dropped by the host.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::host::{ALERTS_OUTPUT, DEAD_LETTER_OUTPUT, INCIDENTS_OUTPUT};

/// Where `function.json` may sit relative to the app root (the folder holding `host.json`):
/// the host's layout (`<root>/ScoreWindows/`) and this repository's (`<root>/functions/ScoreWindows/`).
const CANDIDATES: [&str; 2] = [
    "ScoreWindows/function.json",
    "functions/ScoreWindows/function.json",
];

#[derive(Debug, thiserror::Error)]
pub enum FunctionJsonError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} declares no eventHubTrigger binding")]
    NoTrigger { path: PathBuf },
    #[error("ANOMALY_TRIGGER_BINDING is {setting:?} but the trigger binding in {path} is named {declared:?}: every batch would be refused; make them the same")]
    TriggerMismatch {
        setting: String,
        declared: String,
        path: PathBuf,
    },
    #[error("{path} declares no output binding named {name:?}; the handler's {name} output would be dropped by the host")]
    MissingOutput { name: &'static str, path: PathBuf },
}

/// Checks the `ScoreWindows` bindings when `root` is a Functions app (it holds `host.json`).
/// Returns the `function.json` checked, or `None` when there is nothing to check (the demo,
/// tests, a handler started outside an app folder).
pub fn check_score_windows(
    root: &Path,
    trigger_binding: &str,
) -> Result<Option<PathBuf>, FunctionJsonError> {
    if !root.join("host.json").is_file() {
        return Ok(None);
    }
    let Some(path) = CANDIDATES
        .iter()
        .map(|c| root.join(c))
        .find(|p| p.is_file())
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| FunctionJsonError::Read {
        path: path.clone(),
        source,
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|source| FunctionJsonError::Json {
        path: path.clone(),
        source,
    })?;
    let bindings = json
        .get("bindings")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let field = |b: &Value, key: &str| {
        b.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let trigger = bindings
        .iter()
        .find(|b| field(b, "type").eq_ignore_ascii_case("eventHubTrigger"))
        .ok_or_else(|| FunctionJsonError::NoTrigger { path: path.clone() })?;
    let declared = field(trigger, "name");
    // The handler looks the binding up without regard to case, as the host's JSON does.
    if !declared.eq_ignore_ascii_case(trigger_binding) {
        return Err(FunctionJsonError::TriggerMismatch {
            setting: trigger_binding.to_string(),
            declared,
            path,
        });
    }
    for name in [ALERTS_OUTPUT, INCIDENTS_OUTPUT, DEAD_LETTER_OUTPUT] {
        let declared = bindings
            .iter()
            .any(|b| field(b, "direction").eq_ignore_ascii_case("out") && field(b, "name") == name);
        if !declared {
            return Err(FunctionJsonError::MissingOutput { name, path });
        }
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempApp(PathBuf);

    impl TempApp {
        fn new(tag: &str, function_dir: &str, function_json: &str) -> Self {
            let root = std::env::temp_dir()
                .join(format!("sensor-anomaly-fj-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join(function_dir)).unwrap();
            std::fs::write(root.join("host.json"), "{}").unwrap();
            std::fs::write(root.join(function_dir).join("function.json"), function_json).unwrap();
            TempApp(root)
        }
    }

    impl Drop for TempApp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn repo_function_json() -> String {
        std::fs::read_to_string(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("functions/ScoreWindows/function.json"),
        )
        .unwrap()
    }

    #[test]
    fn the_committed_function_json_matches_the_default_binding() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let checked = check_score_windows(root, "events").unwrap();
        assert_eq!(
            checked,
            Some(root.join("functions/ScoreWindows/function.json"))
        );
        // The host's own layout is found too.
        let app = TempApp::new("host-layout", "ScoreWindows", &repo_function_json());
        assert!(check_score_windows(&app.0, "events").unwrap().is_some());
    }

    #[test]
    fn a_different_trigger_name_is_refused_naming_both() {
        let app = TempApp::new("mismatch", "ScoreWindows", &repo_function_json());
        let err = check_score_windows(&app.0, "windows").unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, FunctionJsonError::TriggerMismatch { .. }),
            "{text}"
        );
        assert!(
            text.contains("ANOMALY_TRIGGER_BINDING is \"windows\"")
                && text.contains("named \"events\""),
            "{text}"
        );
    }

    #[test]
    fn missing_outputs_and_triggers_are_refused() {
        let json = repo_function_json().replace("\"deadletter\"", "\"dlq\"");
        let app = TempApp::new("outputs", "ScoreWindows", &json);
        let err = check_score_windows(&app.0, "events").unwrap_err();
        assert!(
            matches!(
                err,
                FunctionJsonError::MissingOutput {
                    name: "deadletter",
                    ..
                }
            ),
            "{err}"
        );
        // A function.json from before incidents: their messages would be dropped by the host.
        let json = repo_function_json().replace("\"incidents\"", "\"other\"");
        let app = TempApp::new("no-incidents", "ScoreWindows", &json);
        assert!(matches!(
            check_score_windows(&app.0, "events"),
            Err(FunctionJsonError::MissingOutput { name: "incidents", .. })
        ));
        let app = TempApp::new("no-trigger", "ScoreWindows", r#"{"bindings": []}"#);
        assert!(matches!(
            check_score_windows(&app.0, "events"),
            Err(FunctionJsonError::NoTrigger { .. })
        ));
        let app = TempApp::new("broken", "ScoreWindows", "{");
        assert!(matches!(
            check_score_windows(&app.0, "events"),
            Err(FunctionJsonError::Json { .. })
        ));
    }

    #[test]
    fn outside_a_functions_app_there_is_nothing_to_check() {
        let dir = std::env::temp_dir();
        assert!(check_score_windows(&dir.join("no-such-app"), "anything")
            .unwrap()
            .is_none());
    }
}
