//! The CLI's Stream Analytics windowing over JSON-lines and CSV telemetry: every window it
//! writes is one the handler's decoder reads back unchanged (or refuses for a statistic beyond
//! 32-bit float range, as it refuses Stream Analytics' own).

use serde_json::{Map, Value};

use domain::RecordError;

use sensor_anomaly::schema::STATS;
use sensor_anomaly::windowing::{window_csv, window_lines, Channels, CsvLayout, WindowSpec};

pub fn check_windowing(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    for (size, hop) in [(60, 60), (60, 20)] {
        let spec = WindowSpec::hopping(size, hop).expect("a valid spec");
        let per_sample = ((size + hop - 1) / hop) as usize;
        if let Ok(windowed) = window_lines(text, spec, &Channels::Auto) {
            check_windows(&windowed.records, lines * per_sample, spec);
        }
        if let Ok(windowed) = window_csv(text, spec, &Channels::Auto, &CsvLayout::default()) {
            check_windows(&windowed.records, lines * per_sample, spec);
        }
    }
}

fn check_windows(records: &[Map<String, Value>], bound: usize, spec: WindowSpec) {
    assert!(records.len() <= bound, "{} windows from at most {bound}", records.len());
    for record in records {
        let features: Vec<String> = record
            .iter()
            .filter(|(k, v)| v.is_number() && STATS.iter().any(|s| k.ends_with(&format!("_{s}"))))
            .map(|(k, _)| k.clone())
            .collect();
        let decoded = match ingress::events::extract(record, &features) {
            Ok(decoded) => decoded,
            // Stream Analytics computes in 64-bit floats, and so does windowing; the model reads
            // 32-bit ones, so a statistic beyond f32's range is refused (and dead-lettered) by
            // the handler. That is the only refusal allowed.
            Err(RecordError::InvalidFeature { feature, .. })
                if record[&feature]
                    .as_f64()
                    .is_some_and(|v| v.abs() > f64::from(f32::MAX)) =>
            {
                continue
            }
            Err(e) => panic!("the handler refuses a window the CLI wrote: {e}\n{record:?}"),
        };
        assert_eq!(Some(&Value::String(decoded.device_id.clone())), record.get("device_id"));
        assert_eq!(Some(&Value::String(decoded.window_end.clone())), record.get("window_end"));
        let start = record
            .get("window_start")
            .and_then(Value::as_str)
            .and_then(sinks::unix_ms)
            .expect("window_start is a timestamp");
        assert_eq!(decoded.window_end_ms - start, spec.size_secs * 1000);
        assert!(record["sample_count"].as_u64().is_some_and(|n| n >= 1));
    }
}
