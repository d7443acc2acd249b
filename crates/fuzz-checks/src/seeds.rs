//! Starting inputs for each target, in the shapes production sends, so the fuzzer mutates
//! real invocations instead of discovering JSON from nothing. `scripts/fuzz.sh` writes them into
//! the corpus folder before a run.

use serde_json::{json, Value};

use sensor_anomaly::simulate::{self, SimConfig};
use sensor_anomaly::windowing::WindowSpec;
use test_support::host;

/// Simulated windows of two devices, faults frequent enough that some are anomalous.
fn windows() -> Vec<Value> {
    let config = SimConfig {
        devices: 2,
        hours: 0.25,
        fault_rate: 6.0,
        ..SimConfig::default()
    };
    let spec = WindowSpec::tumbling(60).expect("valid");
    simulate::windows(&config, spec, false)
        .records
        .into_iter()
        .map(Value::Object)
        .collect()
}

fn samples(n: usize) -> Vec<String> {
    let config = SimConfig {
        devices: 2,
        hours: 0.05,
        ..SimConfig::default()
    };
    let mut lines = Vec::new();
    simulate::simulate(&config, |s| {
        if lines.len() < n {
            lines.push(serde_json::to_string(&s).expect("a sample serializes"));
        }
    });
    lines
}

pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let text = |v: &Value| v.to_string().into_bytes();
    match target {
        "event_body" => {
            let w = windows();
            let lines: Vec<String> = w[..3].iter().map(Value::to_string).collect();
            vec![
                text(&w[0]),
                text(&json!(w[..4])),
                lines.join("\n").into_bytes(),
                format!("{}\n{{broken\n{}", lines[0], lines[1]).into_bytes(),
                text(&Value::String(w[1].to_string())),
                host::b64(&w[2].to_string()).into_bytes(),
                b"[1, null, \"x\", {\"device_id\": 7}]".to_vec(),
            ]
        }
        "invocation" => {
            let w = windows();
            let bodies: Vec<String> = w.chunks(6).take(5).map(|c| json!(c).to_string()).collect();
            let many = ingress::host::many_string_invocation(
                "events",
                &bodies,
                "3",
                100,
                "2026-01-01T00:20:00.5",
            );
            let single = host::invocation(w[3].clone(), host::one_metadata(7));
            let mixed = host::invocation(
                json!([w[4].to_string(), host::b64(&w[5].to_string()), "{oops", 12]),
                host::many_metadata(4, 40),
            );
            vec![
                text(&many),
                text(&host::with_retry(&many, 2, 5)),
                text(&single),
                text(&mixed),
            ]
        }
        "timestamp" => [
            "2026-11-21T10:00:00Z",
            "2026-11-21T10:00:00.0000000Z",
            "2024-05-01T12:34:56.789",
            "2026-01-01T00:00:00+01:00",
            "2020-03-09 10:14:33",
            "9999-12-31T23:59:59.999999999-00:30",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "connection_string" => [
            "Server=tcp:x.database.windows.net,1433;Database=anomalies;Authentication=Active Directory Managed Identity;Encrypt=True",
            "Server=tcp:x.database.windows.net;Initial Catalog=db;Authentication=Active Directory Default",
            "Data Source=localhost,1433;Database=anomalies;User Id=sa;Password='p;w=\"d\"';TrustServerCertificate=True;Encrypt=True",
            "server=a;database=b;authentication=\"Active Directory Managed Identity\";user id=0f8fad5b-d9cb-469f-a165-70867728950e;Connect Timeout=5;Command Timeout=10",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "windowing" => {
            let lines = samples(30);
            vec![
                lines.join("\n").into_bytes(),
                b"datetime;Accelerometer1RMS;Temperature;anomaly\n2020-03-09 10:14:33;0.02;89.0;0\n2020-03-09 10:14:34;0.03;89.1;1\n2020-03-09 10:16:01;;90.2;0\n".to_vec(),
                b"timestamp,device_id,temperature,label\n2026-01-01T00:00:00Z,a,1.5,0\n2026-01-01T00:00:30Z,a,2.5,1\n2026-01-01T00:01:10Z,b,3,0\n".to_vec(),
            ]
        }
        "window_record" => vec![
            b"\x00\x10\x20\x30\x40\x50\x60\x70pump-001".to_vec(),
            (0u8..=255).collect(),
        ],
        other => panic!("no target {other}"),
    }
}
