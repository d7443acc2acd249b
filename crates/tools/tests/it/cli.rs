//! The binary's edge: start-up refusals and bad options exit with a clear message.

use std::process::Command;

use crate::helpers::{serve_command, Scratch, BIN};

#[test]
fn serve_refuses_a_trigger_binding_that_function_json_does_not_declare() {
    let scratch = Scratch::new("cli-binding");
    let output = serve_command(&[
        (
            "ANOMALY_SQLITE_PATH",
            scratch.path("a.sqlite").display().to_string(),
        ),
        ("ANOMALY_TRIGGER_BINDING", "windows".into()),
    ])
    .output()
    .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ANOMALY_TRIGGER_BINDING is \"windows\"")
            && stderr.contains("named \"events\"")
            && stderr.contains("functions/ScoreWindows/function.json"),
        "{stderr}"
    );
    // Refused before anything was opened.
    assert!(!scratch.path("a.sqlite").exists());
}

#[test]
fn window_refuses_runaway_window_counts_with_exit_code_2() {
    for (size, hop, expected) in [
        ("10000000000", "1", "limit of 7 days"),
        ("3601", "1", "puts each sample in 3601 windows"),
    ] {
        let output = Command::new(BIN)
            .args([
                "window",
                "--input",
                "/dev/null",
                "--size-secs",
                size,
                "--hop-secs",
                hop,
            ])
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn incidents_reads_the_handlers_settings_and_names_a_bad_one() {
    use std::io::Write;
    // Two low windows in a row open an incident under the defaults, not under 3 of 3.
    let line = |minute: u32| {
        serde_json::json!({
            "device_id": "valve", "window_end": format!("2026-01-01T00:0{minute}:00Z"),
            "score": 1.5, "threshold": 1.0, "is_anomaly": true, "severity": "low",
            "contributions": {"flow": 1.5}, "top_channel": "flow", "top_feature": "flow_mean",
            "top_feature_z": 3.0, "explanation": "flow is off", "model_version": "m",
        })
        .to_string()
    };
    let input = format!("{}\n{}\n", line(1), line(2));
    let run = |env: &[(&str, &str)]| {
        let mut child = Command::new(BIN)
            .arg("incidents")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let output = run(&[]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let messages: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(messages.len(), 1, "{stdout}");
    assert_eq!(messages[0]["transition"], "opened");
    assert_eq!(messages[0]["incident"]["incident_id"], "valve/2026-01-01T00:01:00Z");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 incidents opened") && stderr.contains("1 still open"), "{stderr}");

    let output = run(&[("ANOMALY_INCIDENT_OPEN_AFTER", "3")]);
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "3 of 3 needs a third window");

    let output = run(&[("ANOMALY_INCIDENT_OPEN_OF", "0")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ANOMALY_INCIDENT_OPEN_OF"), "{stderr}");
}
