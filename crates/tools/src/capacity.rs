//! `sensor-anomaly capacity`: what a fleet needs in Azure, from what was measured here and what
//! Azure documents, with every other figure named as an assumption the user can change.
//!
//! The flow sized: devices send samples to the telemetry hub; Stream Analytics writes one window
//! record per device per hop to the windows hub; `ScoreWindows` reads it in invocations of up to
//! `maxEventBatchSize` events, stores anomalies (one write per invocation that has any) and
//! publishes alerts. Throughput units, partitions and streaming units follow from bytes and
//! events per second; function instances from the handler's measured throughput with headroom;
//! the database from anomaly rows per second and their measured size.

use serde::Serialize;

/// What the plan is computed from. The defaults are this repository's measurements (README:
/// Performance) and Azure's documented limits; prices are list prices, an order of magnitude.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    pub devices: u64,
    pub window_secs: f64,
    pub hop_secs: f64,
    /// Seconds between a device's samples.
    pub sample_secs: f64,
    /// Samples a device packs into one event (a gateway's batching; 1: one event per sample).
    pub samples_per_event: u64,
    /// Bytes of one sample as JSON (the simulator's: 192).
    pub sample_bytes: f64,
    /// Bytes of one window record as Stream Analytics writes it (the simulator's: about 750).
    pub window_bytes: f64,
    /// Bytes of one alert message (measured: 44 alerts of the bench's workload, 748 to 778,
    /// mean 762).
    pub alert_bytes: f64,
    /// Fraction of windows that are anomalous (the demo's: 657 of 7,200, a fleet with a fault
    /// every two hours per device; a healthy plant is quieter).
    pub anomaly_rate: f64,
    /// Window records Stream Analytics packs into one event (LineSeparated).
    pub windows_per_event: u64,
    /// `maxEventBatchSize` in host.json.
    pub events_per_invocation: u64,
    /// Windows per second one function instance scores (`scripts/bench.py`, per core, on this
    /// machine: see the README); the host's own cost is not in it.
    pub instance_windows_per_sec: f64,
    /// The share of that throughput planned for (the rest is for the host's own work, bursts,
    /// catching up after an outage).
    pub utilization: f64,
    /// Bytes of one stored anomaly, indexes included (SQLite, measured on the demo: 1,509).
    pub row_bytes: f64,
    pub retention_days: f64,
    pub prices: Prices,
}

/// List prices in USD (pay-as-you-go, a US region, late 2026): an order of magnitude only.
#[derive(Debug, Clone, Serialize)]
pub struct Prices {
    pub event_hubs_tu_hour: f64,
    pub event_hubs_million_events: f64,
    /// Flex Consumption on-demand execution, per GB-second of instance memory.
    pub flex_gb_second: f64,
    pub flex_instance_gb: f64,
    pub stream_analytics_su_hour: f64,
    /// Azure SQL General Purpose, per vCore-hour (compute and licence, storage apart).
    pub sql_vcore_hour: f64,
    pub sql_gb_month: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            event_hubs_tu_hour: 0.03,
            event_hubs_million_events: 0.028,
            flex_gb_second: 0.000026,
            flex_instance_gb: 2.0,
            stream_analytics_su_hour: 0.11,
            sql_vcore_hour: 0.25,
            sql_gb_month: 0.115,
        }
    }
}

impl Inputs {
    pub fn new(devices: u64, window_secs: f64, hop_secs: f64) -> Self {
        Inputs {
            devices,
            window_secs,
            hop_secs,
            sample_secs: 1.0,
            samples_per_event: 1,
            sample_bytes: 192.0,
            window_bytes: 750.0,
            alert_bytes: 762.0,
            anomaly_rate: 657.0 / 7200.0,
            windows_per_event: 4,
            events_per_invocation: 48,
            instance_windows_per_sec: 100_000.0,
            utilization: 0.5,
            row_bytes: 1509.0,
            retention_days: 30.0,
            prices: Prices::default(),
        }
    }
}

/// Why a plan cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
    #[error("--{0} must be a positive number")]
    NotPositive(&'static str),
    #[error("--utilization must be in (0, 1]")]
    Utilization,
    #[error("--anomaly-rate must be in [0, 1]")]
    AnomalyRate,
}

/// Event Hubs Standard: 1 MB/s or 1,000 events/s in, 2 MB/s or 4,096 events/s out per TU
/// (Azure docs, "Scaling with Event Hubs"); at most 40 TUs (20 without a support request), 32
/// partitions per hub, and about 1 MB/s per partition.
const TU_IN_BYTES: f64 = 1_000_000.0;
const TU_IN_EVENTS: f64 = 1000.0;
const TU_OUT_BYTES: f64 = 2_000_000.0;
const TU_OUT_EVENTS: f64 = 4096.0;
const STANDARD_MAX_TU: u64 = 40;
const STANDARD_MAX_PARTITIONS: u64 = 32;
const PARTITION_BYTES: f64 = 1_000_000.0;
/// Stream Analytics: an assumption, not a measurement (no Stream Analytics here): one streaming
/// unit for about 1 MB/s of input of a simple windowed aggregate.
const SU_BYTES: f64 = 1_000_000.0;
/// Azure SQL: an assumption: one vCore takes about 500 small batched inserts a second.
const SQL_WRITES_PER_VCORE: f64 = 500.0;
const HOURS_PER_MONTH: f64 = 730.0;
/// Azure SQL General Purpose's largest database (Azure docs, vCore resource limits).
const SQL_GENERAL_PURPOSE_MAX_GB: f64 = 4096.0;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub inputs: Inputs,
    pub windows_per_sec: f64,
    pub telemetry_events_per_sec: f64,
    pub telemetry_bytes_per_sec: f64,
    pub window_events_per_sec: f64,
    pub window_bytes_per_sec: f64,
    pub alerts_per_sec: f64,
    /// Namespace-wide ingress and egress (Stream Analytics and the function read; alerts out).
    pub throughput_units: u64,
    pub telemetry_partitions: u64,
    pub windows_partitions: u64,
    pub streaming_units: u64,
    pub invocations_per_sec: f64,
    pub function_instances: u64,
    /// Store writes per second: one per invocation with at least one anomaly.
    pub sql_writes_per_sec: f64,
    pub sql_rows_per_sec: f64,
    pub sql_vcores: u64,
    pub database_gb: f64,
    pub monthly_usd: MonthlyCost,
    /// What the plan runs into (Standard's limits, say).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthlyCost {
    pub event_hubs: f64,
    pub functions: f64,
    pub stream_analytics: f64,
    pub sql: f64,
    pub total: f64,
}

fn positive(value: f64, name: &'static str) -> Result<f64, CapacityError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(CapacityError::NotPositive(name))
    }
}

fn whole(x: f64) -> u64 {
    // Capacity is bought in whole units, at least one.
    (x.ceil() as u64).max(1)
}

pub fn plan(inputs: Inputs) -> Result<Plan, CapacityError> {
    positive(inputs.devices as f64, "devices")?;
    let window = positive(inputs.window_secs, "window-secs")?;
    let hop = positive(inputs.hop_secs, "hop-secs")?;
    let sample = positive(inputs.sample_secs, "sample-secs")?;
    let per_instance = positive(inputs.instance_windows_per_sec, "instance-windows-per-sec")?;
    positive(inputs.samples_per_event as f64, "samples-per-event")?;
    positive(inputs.windows_per_event as f64, "windows-per-event")?;
    positive(inputs.events_per_invocation as f64, "events-per-invocation")?;
    positive(inputs.retention_days, "retention-days")?;
    if !(inputs.utilization > 0.0 && inputs.utilization <= 1.0) {
        return Err(CapacityError::Utilization);
    }
    if !(0.0..=1.0).contains(&inputs.anomaly_rate) {
        return Err(CapacityError::AnomalyRate);
    }
    let devices = inputs.devices as f64;
    let mut notes = Vec::new();
    if hop > window {
        notes.push(format!(
            "the hop ({hop} s) is longer than the window ({window} s): samples between windows are never scored"
        ));
    }

    let samples_per_sec = devices / sample;
    let telemetry_events_per_sec = samples_per_sec / inputs.samples_per_event as f64;
    let telemetry_bytes_per_sec = samples_per_sec * inputs.sample_bytes;
    let windows_per_sec = devices / hop;
    let window_events_per_sec = windows_per_sec / inputs.windows_per_event as f64;
    let window_bytes_per_sec = windows_per_sec * inputs.window_bytes;
    let alerts_per_sec = windows_per_sec * inputs.anomaly_rate;
    let alert_bytes_per_sec = alerts_per_sec * inputs.alert_bytes;

    // Ingress: samples, windows (from Stream Analytics), alerts (from the function). Egress:
    // Stream Analytics reads the samples, the function reads the windows, a consumer the alerts.
    let ingress_tu = ((telemetry_bytes_per_sec + window_bytes_per_sec + alert_bytes_per_sec)
        / TU_IN_BYTES)
        .max((telemetry_events_per_sec + window_events_per_sec + alerts_per_sec) / TU_IN_EVENTS);
    let egress_tu = ((telemetry_bytes_per_sec + window_bytes_per_sec + alert_bytes_per_sec)
        / TU_OUT_BYTES)
        .max((telemetry_events_per_sec + window_events_per_sec + alerts_per_sec) / TU_OUT_EVENTS);
    let throughput_units = whole(ingress_tu.max(egress_tu));
    if throughput_units > STANDARD_MAX_TU {
        notes.push(format!(
            "{} throughput units is past Event Hubs Standard's {STANDARD_MAX_TU}: use Premium (processing units) or Dedicated, or have gateways pack samples into fewer events (--samples-per-event)",
            group(throughput_units)
        ));
    }

    let invocation_windows = (inputs.events_per_invocation * inputs.windows_per_event) as f64;
    let invocations_per_sec = windows_per_sec / invocation_windows;
    let function_instances = whole(windows_per_sec / (per_instance * inputs.utilization));
    // A partition is read by one instance at a time: at least one partition per instance, and
    // enough for the bytes.
    let windows_partitions =
        whole(window_bytes_per_sec / PARTITION_BYTES).max(function_instances);
    let telemetry_partitions = whole(telemetry_bytes_per_sec / PARTITION_BYTES);
    for (hub, partitions) in [("windows", windows_partitions), ("telemetry", telemetry_partitions)] {
        if partitions > STANDARD_MAX_PARTITIONS {
            notes.push(format!(
                "the {hub} hub needs {partitions} partitions, past Standard's {STANDARD_MAX_PARTITIONS} per hub: Premium or Dedicated (up to 100 or 1,024), or several hubs"
            ));
        }
    }
    let streaming_units = whole(telemetry_bytes_per_sec / SU_BYTES);

    let sql_rows_per_sec = alerts_per_sec;
    // An invocation writes once if any of its windows is anomalous.
    let p_any = 1.0 - (1.0 - inputs.anomaly_rate).powf(invocation_windows);
    let sql_writes_per_sec = invocations_per_sec * p_any;
    let sql_vcores = whole(sql_writes_per_sec / SQL_WRITES_PER_VCORE).max(2);
    let database_gb =
        sql_rows_per_sec * 86_400.0 * inputs.retention_days * inputs.row_bytes / 1e9;
    if database_gb > SQL_GENERAL_PURPOSE_MAX_GB {
        notes.push(format!(
            "{} GB of anomalies is past General Purpose's {} GB: Hyperscale, a shorter --retention-days, or a lower anomaly rate (a quieter model)",
            group(database_gb.round() as u64), group(SQL_GENERAL_PURPOSE_MAX_GB as u64)
        ));
    }

    let p = &inputs.prices;
    let monthly_events = (telemetry_events_per_sec + window_events_per_sec + alerts_per_sec)
        * 3600.0
        * HOURS_PER_MONTH;
    let event_hubs = throughput_units as f64 * HOURS_PER_MONTH * p.event_hubs_tu_hour
        + monthly_events / 1e6 * p.event_hubs_million_events;
    // Instances busy in proportion to the load they carry, at the planned utilization.
    let busy_instances = windows_per_sec / (per_instance * inputs.utilization);
    let functions =
        busy_instances * 3600.0 * HOURS_PER_MONTH * p.flex_instance_gb * p.flex_gb_second;
    let stream_analytics = streaming_units as f64 * HOURS_PER_MONTH * p.stream_analytics_su_hour;
    let sql = sql_vcores as f64 * HOURS_PER_MONTH * p.sql_vcore_hour
        + database_gb.max(1.0) * p.sql_gb_month;
    let total = event_hubs + functions + stream_analytics + sql;
    Ok(Plan {
        windows_per_sec,
        telemetry_events_per_sec,
        telemetry_bytes_per_sec,
        window_events_per_sec,
        window_bytes_per_sec,
        alerts_per_sec,
        throughput_units,
        telemetry_partitions,
        windows_partitions,
        streaming_units,
        invocations_per_sec,
        function_instances,
        sql_writes_per_sec,
        sql_rows_per_sec,
        sql_vcores,
        database_gb,
        monthly_usd: MonthlyCost {
            event_hubs,
            functions,
            stream_analytics,
            sql,
            total,
        },
        notes,
        inputs,
    })
}

fn figure(x: f64) -> String {
    if x >= 100.0 {
        group(x.round() as u64)
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Plan {
    /// The plan as the command prints it: one line per resource, then the assumptions.
    pub fn text(&self) -> String {
        let i = &self.inputs;
        let m = &self.monthly_usd;
        let mut lines = vec![
            format!(
                "fleet: {} devices, a sample every {} s, windows of {} s every {} s: {} windows/s, {} alerts/s at an anomaly rate of {:.1}%",
                group(i.devices), i.sample_secs, i.window_secs, i.hop_secs,
                figure(self.windows_per_sec), figure(self.alerts_per_sec), i.anomaly_rate * 100.0
            ),
            format!(
                "event hubs (Standard): {} throughput units; telemetry hub {} partitions ({} events/s, {} MB/s), windows hub {} partitions ({} events/s, {} MB/s)",
                group(self.throughput_units), self.telemetry_partitions, figure(self.telemetry_events_per_sec),
                figure(self.telemetry_bytes_per_sec / 1e6), self.windows_partitions,
                figure(self.window_events_per_sec), figure(self.window_bytes_per_sec / 1e6)
            ),
            format!("stream analytics: {} streaming units", self.streaming_units),
            format!(
                "functions (Flex Consumption, {} GB instances): {} instances at {:.0}% of {} windows/s each; {} invocations/s",
                i.prices.flex_instance_gb, self.function_instances, i.utilization * 100.0,
                figure(i.instance_windows_per_sec), figure(self.invocations_per_sec)
            ),
            format!(
                "azure sql: {} writes/s ({} rows/s), {} vCores (General Purpose), {} GB for {} days",
                figure(self.sql_writes_per_sec), figure(self.sql_rows_per_sec), self.sql_vcores,
                figure(self.database_gb), i.retention_days
            ),
            format!(
                "monthly, order of magnitude (USD list prices): event hubs {}, functions {}, stream analytics {}, sql {}; total {}",
                figure(m.event_hubs), figure(m.functions), figure(m.stream_analytics), figure(m.sql), figure(m.total)
            ),
        ];
        for note in &self.notes {
            lines.push(format!("note: {note}"));
        }
        lines.push(
            "assumed, not measured here: 1 MB/s per partition and per streaming unit, 500 batched inserts/s per SQL vCore, the list prices (--json shows them); the handler's throughput is measured (scripts/bench.py), the Functions host's own cost is not".into(),
        );
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_scales_with_the_fleet_and_names_standards_limits() {
        let small = plan(Inputs::new(1000, 60.0, 60.0)).unwrap();
        assert!((small.windows_per_sec - 1000.0 / 60.0).abs() < 1e-9);
        assert_eq!(small.function_instances, 1);
        assert_eq!(small.throughput_units, 2, "1,000 sample events/s and 192 kB/s: 2 TUs by events");
        assert!(small.notes.is_empty(), "{:?}", small.notes);
        let big = plan(Inputs::new(1_000_000, 60.0, 60.0)).unwrap();
        // The handler is not what a million devices run into: Event Hubs is.
        assert_eq!(big.function_instances, 1);
        let mut slow = Inputs::new(1_000_000, 60.0, 60.0);
        slow.instance_windows_per_sec = 1000.0;
        let slow = plan(slow).unwrap();
        assert_eq!(slow.function_instances, 34, "16,667 windows/s at 500 per instance");
        assert!(slow.windows_partitions >= 34, "a partition per instance");
        assert!(big.throughput_units > STANDARD_MAX_TU);
        assert!(big.notes.iter().any(|n| n.contains("Premium")), "{:?}", big.notes);
        assert!(big.monthly_usd.total > small.monthly_usd.total);
        assert!(big.windows_partitions >= big.function_instances);
    }

    #[test]
    fn a_hop_shorter_than_the_window_scores_more_windows() {
        let tumbling = plan(Inputs::new(100_000, 60.0, 60.0)).unwrap();
        let hopping = plan(Inputs::new(100_000, 60.0, 15.0)).unwrap();
        assert!((hopping.windows_per_sec / tumbling.windows_per_sec - 4.0).abs() < 1e-9);
        let gappy = plan(Inputs::new(10, 60.0, 120.0)).unwrap();
        assert!(gappy.notes.iter().any(|n| n.contains("never scored")));
    }

    #[test]
    fn nonsense_inputs_are_refused_by_name() {
        assert_eq!(
            plan(Inputs::new(0, 60.0, 60.0)).unwrap_err(),
            CapacityError::NotPositive("devices")
        );
        assert_eq!(
            plan(Inputs::new(10, 60.0, f64::NAN)).unwrap_err(),
            CapacityError::NotPositive("hop-secs")
        );
        let mut bad = Inputs::new(10, 60.0, 60.0);
        bad.utilization = 1.5;
        assert_eq!(plan(bad).unwrap_err(), CapacityError::Utilization);
    }
}
