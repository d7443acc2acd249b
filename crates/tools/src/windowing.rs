//! Window features with Azure Stream Analytics semantics, so that the model is trained on and
//! scores exactly what the production query (`infra/stream-analytics/windows.asaql`) emits.
//!
//! - Timelines are per device (`PARTITION BY`/`GROUP BY device_id`).
//! - A window covers `(end - size, end]`: start exclusive, end inclusive; windows are aligned to
//!   multiples of the hop (the size, for tumbling windows) from the epoch, and `window_end` is
//!   `System.Timestamp()`.
//! - `std` is the sample standard deviation (`STDEV`, n-1); null for fewer than two values.
//! - Only windows with at least one event are emitted; null channel values are ignored, as SQL
//!   aggregates ignore nulls.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::schema::{CHANNELS, STATS};
use domain::time as timefmt;

#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("window size must be a positive number of seconds")]
    Size,
    #[error("hop must be positive and at most the window size (got hop {hop}s, size {size}s)")]
    Hop { hop: i64, size: i64 },
    #[error(
        "window size {size}s is more than Stream Analytics' limit of 7 days ({MAX_WINDOW_SECS}s)"
    )]
    TooLong { size: i64 },
    #[error("a {size}s window hopping every {hop}s puts each sample in {per_sample} windows; at most {MAX_WINDOWS_PER_SAMPLE} are allowed (use a larger hop)")]
    TooManyWindows {
        size: i64,
        hop: i64,
        per_sample: i64,
    },
    #[error("line {line}: {problem}")]
    Input { line: usize, problem: String },
}

/// One raw telemetry sample (what a device sends), optionally labelled by the simulator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub device_id: String,
    pub timestamp: String,
    #[serde(flatten)]
    pub values: BTreeMap<String, Value>,
    #[serde(default)]
    pub fault_kind: Option<String>,
    #[serde(default)]
    pub fault_channel: Option<String>,
}

/// Stream Analytics' largest window: 7 days.
pub const MAX_WINDOW_SECS: i64 = 7 * 24 * 3600;
/// Each sample lands in `size / hop` windows: bound the work (and memory) per sample. An hour
/// hopping every second is the most this allows.
pub const MAX_WINDOWS_PER_SAMPLE: i64 = 3600;

#[derive(Debug, Clone, Copy)]
pub struct WindowSpec {
    pub size_secs: i64,
    pub hop_secs: i64,
}

impl WindowSpec {
    pub fn tumbling(size_secs: i64) -> Result<Self, WindowError> {
        Self::hopping(size_secs, size_secs)
    }

    pub fn hopping(size_secs: i64, hop_secs: i64) -> Result<Self, WindowError> {
        if size_secs <= 0 {
            return Err(WindowError::Size);
        }
        if hop_secs <= 0 || hop_secs > size_secs {
            return Err(WindowError::Hop {
                hop: hop_secs,
                size: size_secs,
            });
        }
        if size_secs > MAX_WINDOW_SECS {
            return Err(WindowError::TooLong { size: size_secs });
        }
        let per_sample = (size_secs + hop_secs - 1) / hop_secs;
        if per_sample > MAX_WINDOWS_PER_SAMPLE {
            return Err(WindowError::TooManyWindows {
                size: size_secs,
                hop: hop_secs,
                per_sample,
            });
        }
        Ok(WindowSpec {
            size_secs,
            hop_secs,
        })
    }

    /// Ends (unix seconds) of every window containing instant `t` (unix seconds, fractional):
    /// multiples `e` of the hop with `e - size < t <= e`.
    pub fn window_ends(&self, t: f64) -> impl Iterator<Item = i64> {
        let hop = self.hop_secs;
        let first = (t / hop as f64).ceil() as i64 * hop;
        let size = self.size_secs;
        (0..)
            .map(move |k| first + k * hop)
            .take_while(move |&e| ((e - size) as f64) < t)
    }
}

/// Running statistics of one channel in one window (Welford, for a stable sample variance).
#[derive(Debug, Clone, Copy, Default)]
struct ChannelAcc {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl ChannelAcc {
    fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
        }
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn stat(&self, stat: &str) -> Option<f64> {
        match (stat, self.n) {
            (_, 0) => None,
            ("mean", _) => Some(self.mean),
            ("std", 1) => None,
            ("std", n) => Some((self.m2 / (n - 1) as f64).max(0.0).sqrt()),
            ("min", _) => Some(self.min),
            ("max", _) => Some(self.max),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct WindowAcc {
    count: u64,
    channels: Vec<ChannelAcc>,
    faulty: u64,
    /// (kind, channel) -> samples, to name the window's dominant fault.
    faults: BTreeMap<(String, String), u64>,
}

/// Fraction of a window's samples that must be faulty for the window to be labelled anomalous.
pub const LABEL_MIN_FAULTY_FRACTION: f64 = 0.5;

/// Accumulates samples into windows per device.
pub struct Windower {
    spec: WindowSpec,
    channels: Vec<String>,
    windows: BTreeMap<(i64, String), WindowAcc>,
    /// Per device: the latest instant seen and its timestamp text.
    latest: HashMap<String, (f64, String)>,
    order: TimestampOrder,
}

/// Samples whose timestamps are out of order within their device. Windows do not depend on
/// arrival order (each sample lands in the windows its timestamp falls in, as in Stream
/// Analytics with its out-of-order policy), but a file that goes back in time or repeats an
/// instant is usually a merge or export mistake, so it is reported instead of accepted silently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimestampOrder {
    /// Samples earlier than one already seen for the same device.
    pub backwards: u64,
    pub first_backwards: Option<OrderExample>,
    /// Samples at exactly the instant of the previous latest sample of the same device (both
    /// are counted in the window, as Stream Analytics would count both events).
    pub duplicates: u64,
    pub first_duplicate: Option<OrderExample>,
}

/// Where an ordering problem was first seen.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderExample {
    /// 1-based line of the input (0 when the samples did not come from a file).
    pub line: usize,
    pub device: String,
    pub timestamp: String,
    /// The device's latest timestamp before this sample.
    pub previous: String,
}

impl TimestampOrder {
    /// One line per kind of problem, for stderr; empty when the input was in order.
    pub fn warnings(&self) -> Vec<String> {
        let at = |e: &OrderExample| {
            format!(
                "first at line {}: device {:?} at {} after {}",
                e.line, e.device, e.timestamp, e.previous
            )
        };
        let mut out = Vec::new();
        if let Some(e) = &self.first_backwards {
            out.push(format!(
                "{} sample(s) go back in time within their device ({}); windows are computed \
                 as if the input were sorted",
                self.backwards,
                at(e)
            ));
        }
        if let Some(e) = &self.first_duplicate {
            out.push(format!(
                "{} sample(s) repeat their device's previous timestamp ({}); both samples are \
                 counted",
                self.duplicates,
                at(e)
            ));
        }
        out
    }
}

/// Window records plus what was noticed about the input's order.
#[derive(Debug)]
pub struct Windowed {
    pub records: Vec<Map<String, Value>>,
    pub order: TimestampOrder,
}

impl Windower {
    /// Windows the default channels ([`CHANNELS`]).
    pub fn new(spec: WindowSpec) -> Self {
        Self::with_channels(spec, CHANNELS.iter().map(|c| c.to_string()).collect())
    }

    /// Windows the named channels: features are `<channel>_<stat>` in this order.
    pub fn with_channels(spec: WindowSpec, channels: Vec<String>) -> Self {
        Windower {
            spec,
            channels,
            windows: BTreeMap::new(),
            latest: HashMap::new(),
            order: TimestampOrder::default(),
        }
    }

    /// Adds one sample (`line`: where it came from, for reports; 0 if not from a file).
    pub fn push(&mut self, sample: &Sample, line: usize) -> Result<(), String> {
        // The id as the handler reads it: windowing writes only windows the handler can score.
        let device =
            domain::device_id(&sample.device_id).map_err(|e| format!("device_id {e}"))?;
        let t = timefmt::parse(&sample.timestamp)
            .ok_or_else(|| format!("timestamp {:?} is not RFC 3339", sample.timestamp))?;
        let seconds = t.unix_timestamp() as f64 + f64::from(t.nanosecond()) / 1e9;
        self.note_order(sample, device, seconds, line);
        for end in self.spec.window_ends(seconds) {
            let acc = self
                .windows
                .entry((end, device.to_string()))
                .or_default();
            acc.count += 1;
            if acc.channels.is_empty() {
                acc.channels = vec![ChannelAcc::default(); self.channels.len()];
            }
            for (i, channel) in self.channels.iter().enumerate() {
                if let Some(v) = sample
                    .values
                    .get(channel)
                    .and_then(Value::as_f64)
                    .filter(|v| v.is_finite())
                {
                    acc.channels[i].push(v);
                }
            }
            if let Some(kind) = &sample.fault_kind {
                acc.faulty += 1;
                let channel = sample.fault_channel.clone().unwrap_or_default();
                *acc.faults.entry((kind.clone(), channel)).or_default() += 1;
            }
        }
        Ok(())
    }

    fn note_order(&mut self, sample: &Sample, device: &str, seconds: f64, line: usize) {
        let previous = match self.latest.get_mut(device) {
            None => {
                self.latest.insert(
                    device.to_string(),
                    (seconds, sample.timestamp.clone()),
                );
                return;
            }
            Some((latest, text)) if seconds > *latest => {
                *latest = seconds;
                text.clone_from(&sample.timestamp);
                return;
            }
            Some((latest, text)) => (*latest, text.clone()),
        };
        let example = || OrderExample {
            line,
            device: device.to_string(),
            timestamp: sample.timestamp.clone(),
            previous: previous.1.clone(),
        };
        if seconds == previous.0 {
            self.order.duplicates += 1;
            self.order.first_duplicate.get_or_insert_with(example);
        } else {
            self.order.backwards += 1;
            self.order.first_backwards.get_or_insert_with(example);
        }
    }

    /// What was noticed about the order of the samples pushed so far.
    pub fn order(&self) -> &TimestampOrder {
        &self.order
    }

    /// The windows and the order report.
    pub fn finish_with_order(self, with_labels: bool) -> Windowed {
        let order = self.order.clone();
        Windowed {
            records: self.finish(with_labels),
            order,
        }
    }

    /// The windows in (window end, device) order, as Stream Analytics output records.
    pub fn finish(self, with_labels: bool) -> Vec<Map<String, Value>> {
        let size = self.spec.size_secs;
        self.windows
            .into_iter()
            .map(|((end, device), acc)| {
                let mut m = Map::new();
                m.insert("device_id".into(), Value::String(device));
                m.insert(
                    "window_start".into(),
                    Value::String(timefmt::format(timefmt::from_unix_seconds(end - size))),
                );
                m.insert(
                    "window_end".into(),
                    Value::String(timefmt::format(timefmt::from_unix_seconds(end))),
                );
                m.insert("sample_count".into(), Value::from(acc.count));
                for (i, channel) in self.channels.iter().enumerate() {
                    for stat in STATS {
                        let v = acc.channels[i]
                            .stat(stat)
                            .and_then(serde_json::Number::from_f64)
                            .map_or(Value::Null, Value::Number);
                        m.insert(format!("{channel}_{stat}"), v);
                    }
                }
                if with_labels {
                    let anomalous = acc.count > 0
                        && acc.faulty as f64 >= LABEL_MIN_FAULTY_FRACTION * acc.count as f64;
                    let dominant = acc
                        .faults
                        .iter()
                        .max_by_key(|(_, n)| **n)
                        .map(|((k, c), _)| (k.clone(), c.clone()));
                    m.insert("label".into(), Value::from(u8::from(anomalous)));
                    m.insert("faulty_samples".into(), Value::from(acc.faulty));
                    let (kind, channel) = dominant.map_or((Value::Null, Value::Null), |(k, c)| {
                        let channel = if c.is_empty() {
                            Value::Null
                        } else {
                            Value::String(c)
                        };
                        (Value::String(k), channel)
                    });
                    m.insert("fault_kind".into(), kind);
                    m.insert("fault_channel".into(), channel);
                }
                m
            })
            .collect()
    }
}

/// Which channels to window.
#[derive(Debug, Clone, PartialEq)]
pub enum Channels {
    /// These, in this order.
    Named(Vec<String>),
    /// Every numeric field of the first sample, in name order (not the device, timestamp or labels).
    Auto,
}

/// Fields of a sample that are never channels.
const RESERVED_FIELDS: [&str; 5] = [
    "device_id",
    "timestamp",
    "fault_kind",
    "fault_channel",
    "label",
];

/// The fault kind given to samples that a user's 0/1 label column marks as anomalous.
pub const LABELLED_KIND: &str = "labelled";

/// Reads a 0/1 label (also `true`/`false`, `"0"`/`"1"`); `None` for anything else.
fn label_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
        Value::String(s) => label_text(s),
        _ => None,
    }
}

fn label_text(s: &str) -> Option<bool> {
    match s.trim() {
        "0" | "0.0" | "false" | "False" | "FALSE" => Some(false),
        "1" | "1.0" | "true" | "True" | "TRUE" => Some(true),
        _ => None,
    }
}

fn channel_names(channels: &Channels, candidates: impl Iterator<Item = String>) -> Vec<String> {
    match channels {
        Channels::Named(names) => names.clone(),
        Channels::Auto => candidates.collect(),
    }
}

/// Windows JSON-lines samples; returns the records, or the first unreadable line.
///
/// A sample may carry a user's `label` (0/1) instead of the simulator's `fault_kind`.
pub fn window_lines(
    text: &str,
    spec: WindowSpec,
    channels: &Channels,
) -> Result<Windowed, WindowError> {
    let mut windower: Option<Windower> = None;
    let mut labelled = false;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |problem: String| WindowError::Input {
            line: i + 1,
            problem,
        };
        let mut sample: Sample = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let windower = windower.get_or_insert_with(|| {
            let auto = sample
                .values
                .iter()
                .filter(|(k, v)| v.is_number() && !RESERVED_FIELDS.contains(&k.as_str()))
                .map(|(k, _)| k.clone());
            Windower::with_channels(spec, channel_names(channels, auto))
        });
        if let Some(label) = sample.values.get("label").filter(|v| !v.is_null()) {
            let anomalous =
                label_value(label).ok_or_else(|| bad(format!("label {label} is not 0 or 1")))?;
            if anomalous && sample.fault_kind.is_none() {
                sample.fault_kind = Some(LABELLED_KIND.into());
            }
            labelled = true;
        }
        labelled |= sample.fault_kind.is_some() || line.contains("\"fault_kind\"");
        windower.push(&sample, i + 1).map_err(bad)?;
    }
    Ok(windower.map_or_else(
        || Windowed {
            records: Vec::new(),
            order: TimestampOrder::default(),
        },
        |w| w.finish_with_order(labelled),
    ))
}

/// Where things are in a CSV telemetry file: one row per sample, one column per channel.
#[derive(Debug, Clone)]
pub struct CsvLayout {
    /// Field separator; `None` guesses from the header (`;`, tab or `,`).
    pub delimiter: Option<u8>,
    /// Timestamp column; `None` takes the first of `timestamp`, `datetime`, `time`.
    pub timestamp: Option<String>,
    /// Device column; when absent from the file every row belongs to `default_device`.
    pub device: String,
    pub default_device: String,
    /// Optional 0/1 anomaly label column.
    pub label: String,
    /// Columns that are neither channels nor labels (for `Channels::Auto`).
    pub ignore: Vec<String>,
}

impl Default for CsvLayout {
    fn default() -> Self {
        CsvLayout {
            delimiter: None,
            timestamp: None,
            device: "device_id".into(),
            default_device: "device".into(),
            label: "label".into(),
            ignore: Vec::new(),
        }
    }
}

fn guess_delimiter(header: &str) -> u8 {
    [b';', b'\t', b',']
        .into_iter()
        .max_by_key(|d| header.bytes().filter(|b| b == d).count())
        .filter(|d| header.as_bytes().contains(d))
        .unwrap_or(b',')
}

/// Windows CSV telemetry (`timestamp;device_id;<channel>...;label`). Empty cells are missing
/// values (ignored, as SQL aggregates ignore nulls); anything else that is not a number is an
/// error naming the line and column, so a typo never becomes a silent gap.
pub fn window_csv(
    text: &str,
    spec: WindowSpec,
    channels: &Channels,
    layout: &CsvLayout,
) -> Result<Windowed, WindowError> {
    let header_line = text.lines().next().unwrap_or_default();
    let delimiter = layout
        .delimiter
        .unwrap_or_else(|| guess_delimiter(header_line));
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header_error = |problem: String| WindowError::Input { line: 1, problem };
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| header_error(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let listed = || headers.join(", ");
    let timestamp = match &layout.timestamp {
        Some(name) => column(name).ok_or_else(|| {
            header_error(format!(
                "no timestamp column {name:?} (columns: {})",
                listed()
            ))
        })?,
        None => ["timestamp", "datetime", "time"]
            .into_iter()
            .find_map(column)
            .ok_or_else(|| {
                header_error(format!(
                    "no timestamp column: name it timestamp, datetime or time, or pass \
                     --timestamp-column (columns: {})",
                    listed()
                ))
            })?,
    };
    let device = column(&layout.device);
    let label = column(&layout.label);
    let fault_channel = column("fault_channel");
    let not_channel = |i: usize| {
        Some(i) == device
            || Some(i) == label
            || Some(i) == fault_channel
            || i == timestamp
            || layout.ignore.contains(&headers[i])
    };
    let names = channel_names(
        channels,
        (0..headers.len())
            .filter(|&i| !not_channel(i))
            .map(|i| headers[i].clone()),
    );
    if names.is_empty() {
        return Err(header_error(format!(
            "no channel columns (columns: {})",
            listed()
        )));
    }
    let channel_columns = names
        .iter()
        .map(|name| {
            column(name).ok_or_else(|| {
                header_error(format!(
                    "no channel column {name:?} (columns: {})",
                    listed()
                ))
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let mut windower = Windower::with_channels(spec, names.clone());
    for (i, row) in reader.records().enumerate() {
        let line = row
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i + 2, |p| p.line() as usize);
        let bad = |problem: String| WindowError::Input { line, problem };
        let row = row.map_err(|e| bad(e.to_string()))?;
        let cell = |c: usize| row.get(c).unwrap_or("");
        let mut values = BTreeMap::new();
        for (name, &c) in names.iter().zip(&channel_columns) {
            let text = cell(c);
            let value = if text.is_empty() {
                Value::Null
            } else {
                let x: f64 = text
                    .parse()
                    .map_err(|_| bad(format!("column {name:?} has non-numeric value {text:?}")))?;
                serde_json::Number::from_f64(x)
                    .map(Value::Number)
                    .ok_or_else(|| bad(format!("column {name:?} has non-finite value {text:?}")))?
            };
            values.insert(name.clone(), value);
        }
        let anomalous = match label.map(cell).filter(|t| !t.is_empty()) {
            None => false,
            Some(text) => label_text(text).ok_or_else(|| {
                bad(format!(
                    "label column {:?} has {text:?}, not 0 or 1",
                    layout.label
                ))
            })?,
        };
        let device_id = match device {
            None => layout.default_device.clone(),
            Some(c) if cell(c).is_empty() => {
                return Err(bad(format!("column {:?} is empty", layout.device)))
            }
            Some(c) => cell(c).to_string(),
        };
        let sample = Sample {
            device_id,
            timestamp: cell(timestamp).to_string(),
            values,
            fault_kind: anomalous.then(|| LABELLED_KIND.to_string()),
            fault_channel: fault_channel
                .map(cell)
                .filter(|c| anomalous && !c.is_empty())
                .map(str::to_string),
        };
        windower.push(&sample, line).map_err(bad)?;
    }
    Ok(windower.finish_with_order(label.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(device: &str, ts: &str, temperature: f64) -> Sample {
        let mut values = BTreeMap::new();
        values.insert("temperature".into(), Value::from(temperature));
        Sample {
            device_id: device.into(),
            timestamp: ts.into(),
            values,
            fault_kind: None,
            fault_channel: None,
        }
    }

    #[test]
    fn tumbling_windows_are_start_exclusive_end_inclusive_per_device() {
        let spec = WindowSpec::tumbling(60).unwrap();
        let mut w = Windower::new(spec);
        // 00:00:00 belongs to the window ending at 00:00:00; 00:01:00 closes the next one.
        for (device, ts, v) in [
            ("a", "2026-01-01T00:00:00Z", 100.0),
            ("a", "2026-01-01T00:00:01Z", 1.0),
            ("a", "2026-01-01T00:00:30Z", 2.0),
            ("a", "2026-01-01T00:01:00Z", 6.0),
            ("a", "2026-01-01T00:01:00.5Z", 50.0),
            ("b", "2026-01-01T00:00:59Z", 7.0),
        ] {
            w.push(&sample(device, ts, v), 0).unwrap();
        }
        let out = w.finish(false);
        let keys: Vec<(String, String, u64)> = out
            .iter()
            .map(|m| {
                (
                    m["device_id"].as_str().unwrap().to_string(),
                    m["window_end"].as_str().unwrap().to_string(),
                    m["sample_count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a".into(), "2026-01-01T00:00:00Z".into(), 1),
                ("a".into(), "2026-01-01T00:01:00Z".into(), 3),
                ("b".into(), "2026-01-01T00:01:00Z".into(), 1),
                ("a".into(), "2026-01-01T00:02:00Z".into(), 1),
            ]
        );
        let a1 = &out[1];
        assert_eq!(a1["window_start"], "2026-01-01T00:00:00Z");
        // Values 1, 2, 6: mean 3, sample variance ((4 + 1 + 9) / 2) = 7.
        assert_eq!(a1["temperature_mean"].as_f64().unwrap(), 3.0);
        assert!((a1["temperature_std"].as_f64().unwrap() - 7f64.sqrt()).abs() < 1e-12);
        assert_eq!(a1["temperature_min"].as_f64().unwrap(), 1.0);
        assert_eq!(a1["temperature_max"].as_f64().unwrap(), 6.0);
        // One value: STDEV is null; a channel with no values has null features.
        assert_eq!(out[0]["temperature_std"], Value::Null);
        assert_eq!(out[0]["humidity_mean"], Value::Null);
    }

    #[test]
    fn window_counts_per_sample_are_capped_with_a_clear_error() {
        assert!(WindowSpec::hopping(3600, 1).is_ok());
        assert!(WindowSpec::tumbling(MAX_WINDOW_SECS).is_ok());
        let err = WindowSpec::hopping(10_000_000_000, 1).unwrap_err();
        assert!(matches!(err, WindowError::TooLong { .. }), "{err}");
        let err = WindowSpec::hopping(3601, 1).unwrap_err();
        assert!(
            matches!(
                err,
                WindowError::TooManyWindows {
                    per_sample: 3601,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("use a larger hop"), "{err}");
    }

    #[test]
    fn hopping_windows_cover_each_sample_size_over_hop_times() {
        let spec = WindowSpec::hopping(60, 20).unwrap();
        let ends: Vec<i64> = spec.window_ends(65.0).collect();
        assert_eq!(ends, vec![80, 100, 120]);
        let ends: Vec<i64> = spec.window_ends(60.0).collect();
        assert_eq!(ends, vec![60, 80, 100]);
        assert!(WindowSpec::hopping(60, 90).is_err());
        assert!(WindowSpec::tumbling(0).is_err());

        let mut w = Windower::new(spec);
        for (ts, v) in [
            ("2026-01-01T00:00:10Z", 1.0),
            ("2026-01-01T00:00:30Z", 3.0),
            ("2026-01-01T00:00:50Z", 8.0),
        ] {
            w.push(&sample("a", ts, v), 0).unwrap();
        }
        let out = w.finish(false);
        let summary: Vec<(String, u64, f64)> = out
            .iter()
            .map(|m| {
                (
                    m["window_end"].as_str().unwrap().to_string(),
                    m["sample_count"].as_u64().unwrap(),
                    m["temperature_mean"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("2026-01-01T00:00:20Z".into(), 1, 1.0),
                ("2026-01-01T00:00:40Z".into(), 2, 2.0),
                ("2026-01-01T00:01:00Z".into(), 3, 4.0),
                ("2026-01-01T00:01:20Z".into(), 2, 5.5),
                ("2026-01-01T00:01:40Z".into(), 1, 8.0),
            ]
        );
    }

    #[test]
    fn any_channels_can_be_windowed() {
        let text = "{\"device_id\":\"p\",\"timestamp\":\"2026-01-01T00:00:10Z\",\"flow\":2.0,\"current\":1.0,\"site\":\"A\",\"label\":0}\n\
                    {\"device_id\":\"p\",\"timestamp\":\"2026-01-01T00:00:20Z\",\"flow\":4.0,\"current\":3.0,\"site\":\"A\",\"label\":1}\n";
        let spec = WindowSpec::tumbling(60).unwrap();
        let auto = window_lines(text, spec, &Channels::Auto).unwrap().records;
        let keys: Vec<&str> = auto[0].keys().map(String::as_str).collect();
        assert!(
            keys.contains(&"current_mean") && keys.contains(&"flow_max"),
            "{keys:?}"
        );
        assert!(
            !keys
                .iter()
                .any(|k| k.starts_with("label_") || k.starts_with("site_")),
            "{keys:?}"
        );
        assert_eq!(auto[0]["flow_mean"], 3.0);
        let named = window_lines(text, spec, &Channels::Named(vec!["flow".into()]))
            .unwrap()
            .records;
        assert!(named[0].contains_key("flow_std") && !named[0].contains_key("current_mean"));
        assert!(window_lines("", spec, &Channels::Auto)
            .unwrap()
            .records
            .is_empty());
    }

    const SKAB_LIKE: &str = "datetime;Flow;Current;anomaly;changepoint\n\
        2020-03-09 10:14:31;1.0;5;0;0\n\
        2020-03-09 10:14:32;3.0;;0;0\n\
        2020-03-09 10:14:33;5.0;7;1;1\n";

    #[test]
    fn csv_telemetry_windows_like_json_lines() {
        let spec = WindowSpec::hopping(2, 1).unwrap();
        let layout = CsvLayout {
            label: "anomaly".into(),
            ignore: vec!["changepoint".into()],
            default_device: "valve1-0".into(),
            ..CsvLayout::default()
        };
        let out = window_csv(SKAB_LIKE, spec, &Channels::Auto, &layout)
            .unwrap()
            .records;
        let keys: Vec<&str> = out[0].keys().map(String::as_str).collect();
        assert!(
            keys.contains(&"Flow_mean") && keys.contains(&"Current_max"),
            "{keys:?}"
        );
        assert!(!keys
            .iter()
            .any(|k| k.starts_with("changepoint") || k.starts_with("anomaly_")));
        // Trailing windows (t-2s, t]: one per row plus the one the last row leaves.
        let ends: Vec<&str> = out
            .iter()
            .map(|m| m["window_end"].as_str().unwrap())
            .collect();
        assert_eq!(
            ends,
            [
                "2020-03-09T10:14:31Z",
                "2020-03-09T10:14:32Z",
                "2020-03-09T10:14:33Z",
                "2020-03-09T10:14:34Z"
            ]
        );
        assert_eq!(out[1]["Flow_mean"], 2.0);
        // The empty Current cell is a missing value, not a zero.
        assert_eq!(out[1]["Current_mean"], 5.0);
        assert_eq!(out[2]["Current_mean"], 7.0);
        assert_eq!(out[0]["device_id"], "valve1-0");
        assert_eq!(
            out.iter()
                .map(|m| m["label"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [0, 0, 1, 1]
        );

        let as_lines = "{\"device_id\":\"valve1-0\",\"timestamp\":\"2020-03-09T10:14:31Z\",\"Flow\":1.0,\"Current\":5,\"label\":0}\n\
            {\"device_id\":\"valve1-0\",\"timestamp\":\"2020-03-09T10:14:32Z\",\"Flow\":3.0,\"label\":0}\n\
            {\"device_id\":\"valve1-0\",\"timestamp\":\"2020-03-09T10:14:33Z\",\"Flow\":5.0,\"Current\":7,\"label\":1}\n";
        let channels = Channels::Named(vec!["Flow".into(), "Current".into()]);
        let from_lines = window_lines(as_lines, spec, &channels).unwrap().records;
        let from_csv = window_csv(SKAB_LIKE, spec, &channels, &layout)
            .unwrap()
            .records;
        assert_eq!(from_lines, from_csv);
    }

    #[test]
    fn out_of_order_and_repeated_timestamps_are_reported_with_the_first_example() {
        let text = "timestamp,device_id,value\n\
            2026-01-01T00:00:01Z,a,1\n\
            2026-01-01T00:00:02Z,a,2\n\
            2026-01-01T00:00:01Z,b,3\n\
            2026-01-01T00:00:02Z,a,4\n\
            2026-01-01T00:00:01Z,a,5\n\
            2026-01-01T00:00:00Z,a,6\n\
            2026-01-01T00:00:02Z,b,7\n";
        let spec = WindowSpec::tumbling(60).unwrap();
        let out = window_csv(text, spec, &Channels::Auto, &CsvLayout::default()).unwrap();
        assert_eq!(out.order.duplicates, 1);
        assert_eq!(out.order.backwards, 2);
        let dup = out.order.first_duplicate.as_ref().unwrap();
        assert_eq!((dup.line, dup.device.as_str()), (5, "a"));
        let back = out.order.first_backwards.as_ref().unwrap();
        assert_eq!(
            (back.line, back.timestamp.as_str(), back.previous.as_str()),
            (6, "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z")
        );
        let warnings = out.order.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("2 sample(s) go back in time"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("line 5"), "{warnings:?}");
        // Every sample still lands in its window, whatever the order.
        let counted: u64 = out
            .records
            .iter()
            .map(|m| m["sample_count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, 7);

        let sorted = "{\"device_id\":\"a\",\"timestamp\":\"2026-01-01T00:00:01Z\",\"v\":1}\n\
                      {\"device_id\":\"b\",\"timestamp\":\"2026-01-01T00:00:01Z\",\"v\":1}\n";
        let out = window_lines(sorted, spec, &Channels::Auto).unwrap();
        assert_eq!(out.order, TimestampOrder::default());
        assert!(out.order.warnings().is_empty());
    }

    #[test]
    fn csv_problems_name_the_line_and_column() {
        let spec = WindowSpec::tumbling(60).unwrap();
        let layout = CsvLayout {
            label: "anomaly".into(),
            ..CsvLayout::default()
        };
        let error = |text: &str, channels: &Channels| {
            window_csv(text, spec, channels, &layout)
                .unwrap_err()
                .to_string()
        };
        let typo = SKAB_LIKE.replace("3.0;", "3,0;");
        assert_eq!(
            error(&typo, &Channels::Named(vec!["Flow".into()])),
            "line 3: column \"Flow\" has non-numeric value \"3,0\""
        );
        let missing = error(SKAB_LIKE, &Channels::Named(vec!["Pressure".into()]));
        assert!(
            missing.starts_with("line 1: no channel column \"Pressure\""),
            "{missing}"
        );
        let no_time = error(&SKAB_LIKE.replace("datetime", "when"), &Channels::Auto);
        assert!(no_time.contains("no timestamp column"), "{no_time}");
        let bad_label = SKAB_LIKE.replace(";1;1", ";yes;1");
        assert_eq!(
            error(&bad_label, &Channels::Named(vec!["Flow".into()])),
            "line 4: label column \"anomaly\" has \"yes\", not 0 or 1"
        );
        let bad_time = SKAB_LIKE.replace("2020-03-09 10:14:32", "10:14:32");
        assert!(error(&bad_time, &Channels::Auto).starts_with("line 3: timestamp"));
    }

    #[test]
    fn labels_need_a_faulty_majority() {
        let spec = WindowSpec::tumbling(60).unwrap();
        let mut w = Windower::new(spec);
        for s in 1..=4 {
            let mut x = sample("a", &format!("2026-01-01T00:00:{:02}Z", s * 10), 1.0);
            if s >= 3 {
                x.fault_kind = Some("spike".into());
                x.fault_channel = Some("temperature".into());
            }
            w.push(&x, 0).unwrap();
        }
        let out = w.finish(true);
        assert_eq!(out[0]["label"], 1);
        assert_eq!(out[0]["fault_kind"], "spike");
        assert_eq!(out[0]["fault_channel"], "temperature");
    }

    #[test]
    fn device_ids_are_read_as_the_handler_reads_them() {
        // Found by the `windowing` fuzz target: a 135-character id made windows the handler
        // refuses. Ids are trimmed as the handler trims them; an empty or too long one is refused.
        let spec = WindowSpec::tumbling(60).unwrap();
        let mut w = Windower::new(spec);
        w.push(&sample("  pump-1 ", "2026-01-01T00:00:10Z", 1.0), 1).unwrap();
        w.push(&sample("pump-1", "2026-01-01T00:00:20Z", 2.0), 2).unwrap();
        let out = w.finish(false);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0]["device_id"], "pump-1");
        assert_eq!(out[0]["sample_count"], 2);
        let mut w = Windower::new(spec);
        let long = "p".repeat(domain::MAX_NAME_UNITS + 1);
        assert!(w.push(&sample(&long, "2026-01-01T00:00:10Z", 1.0), 1).unwrap_err().contains("longer than 128"));
        assert_eq!(w.push(&sample(" ", "2026-01-01T00:00:10Z", 1.0), 1).unwrap_err(), "device_id is empty");
    }
}
