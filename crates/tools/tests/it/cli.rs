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
