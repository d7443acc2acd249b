//! A seeded fleet of pumps with realistic, correlated channels, daily cycles, sensor noise and
//! labelled injected faults.
//!
//! Channels follow one plant: temperature has a daily cycle, humidity falls as it warms, and
//! vibration, pressure and sound follow the machine load (a shift pattern). Faults break those
//! relations on one channel, as a failing sensor or component would.

use std::collections::BTreeMap;
use std::f64::consts::TAU;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use time::OffsetDateTime;

use super::schema::CHANNELS;
use super::windowing::Sample;
use domain::time as timefmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Short bursts of large positive readings.
    Spike,
    /// A sustained drop of the reading.
    Dip,
    /// An offset ramping up over two minutes, then held (a de-calibrating sensor).
    Drift,
    /// The reading stuck at its last value (a frozen sensor).
    Flatline,
    /// Much larger noise (a loose connector, cavitation).
    NoiseBurst,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Spike,
        FaultKind::Dip,
        FaultKind::Drift,
        FaultKind::Flatline,
        FaultKind::NoiseBurst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Spike => "spike",
            FaultKind::Dip => "dip",
            FaultKind::Drift => "drift",
            FaultKind::Flatline => "flatline",
            FaultKind::NoiseBurst => "noise_burst",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == text || (text == "drop" && *k == FaultKind::Dip))
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub devices: usize,
    pub hours: f64,
    pub interval_secs: f64,
    pub seed: u64,
    /// Expected faults per device per hour.
    pub fault_rate: f64,
    pub fault_kinds: Vec<FaultKind>,
    /// Channels faults may hit (default: all).
    pub fault_channels: Vec<String>,
    pub fault_minutes: (f64, f64),
    pub start: OffsetDateTime,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            devices: 20,
            hours: 4.0,
            interval_secs: 1.0,
            seed: 42,
            fault_rate: 0.5,
            fault_kinds: FaultKind::ALL.to_vec(),
            fault_channels: CHANNELS.iter().map(|c| c.to_string()).collect(),
            fault_minutes: (8.0, 20.0),
            start: timefmt::from_unix_seconds(1_767_225_600), // 2026-01-01T00:00:00Z
        }
    }
}

/// Per channel: sensor noise sd, and the span that scales fault magnitudes.
const NOISE: [f64; 5] = [0.15, 0.8, 1.5, 0.04, 0.8];
const SPAN: [f64; 5] = [4.0, 6.0, 10.0, 0.4, 4.0];

struct Device {
    id: String,
    temp_base: f64,
    temp_amp: f64,
    phase: f64,
    humidity_offset: f64,
    load_offset: f64,
    vibration_offset: f64,
    fault: Option<ActiveFault>,
    next_fault_at: f64,
}

struct ActiveFault {
    kind: FaultKind,
    channel: usize,
    start: f64,
    end: f64,
    magnitude: f64,
    stuck_value: Option<f64>,
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller; 1 - u keeps the logarithm finite.
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
}

fn exponential(rng: &mut StdRng, rate_per_sec: f64) -> f64 {
    if rate_per_sec <= 0.0 {
        return f64::INFINITY;
    }
    -(1.0 - rng.random::<f64>()).ln() / rate_per_sec
}

/// Generates the fleet's samples in time order, handing each to `emit`.
pub fn simulate(config: &SimConfig, mut emit: impl FnMut(Sample)) {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let rate = config.fault_rate / 3600.0;
    let allowed_channels: Vec<usize> = CHANNELS
        .iter()
        .enumerate()
        .filter(|(_, c)| config.fault_channels.iter().any(|a| a == *c))
        .map(|(i, _)| i)
        .collect();
    let mut devices: Vec<Device> = (0..config.devices)
        .map(|i| Device {
            id: format!("pump-{:03}", i + 1),
            temp_base: 25.0 + rng.random_range(-1.0..1.0),
            temp_amp: 8.0 + rng.random_range(-1.0..1.0),
            phase: rng.random_range(-0.3..0.3),
            humidity_offset: rng.random_range(-2.0..2.0),
            load_offset: rng.random_range(-0.03..0.03),
            vibration_offset: rng.random_range(-2.0..2.0),
            fault: None,
            next_fault_at: 0.0,
        })
        .collect();
    for d in &mut devices {
        // No fault in a device's first ten minutes, so every series starts healthy.
        d.next_fault_at = 600.0 + exponential(&mut rng, rate);
    }
    let steps = (config.hours * 3600.0 / config.interval_secs).round() as u64;
    let start_unix = config.start.unix_timestamp() as f64;
    for step in 1..=steps {
        let t = step as f64 * config.interval_secs;
        let absolute = start_unix + t;
        let day_phase = TAU * (absolute.rem_euclid(86_400.0)) / 86_400.0;
        let timestamp = timefmt::format(
            OffsetDateTime::from_unix_timestamp_nanos((absolute * 1e9).round() as i128)
                .unwrap_or(config.start),
        );
        for d in &mut devices {
            // Warmest mid-afternoon; load follows two shifts, peaking late morning.
            let temp_cycle = d.temp_amp * (day_phase - TAU * 9.0 / 24.0 + d.phase).sin();
            let load =
                (0.55 + d.load_offset + 0.3 * (day_phase - TAU * 5.0 / 24.0 + d.phase).sin())
                    .clamp(0.05, 1.0);
            let clean = [
                d.temp_base + temp_cycle + 3.0 * (load - 0.55),
                55.0 - 1.8 * temp_cycle + d.humidity_offset,
                20.0 + 50.0 * load + d.vibration_offset,
                1.5 + 2.5 * load,
                60.0 + 20.0 * load,
            ];
            let mut values = [0f64; 5];
            for i in 0..5 {
                values[i] = clean[i] + NOISE[i] * normal(&mut rng);
            }

            if d.fault.as_ref().is_some_and(|f| t >= f.end) {
                d.fault = None;
                d.next_fault_at = t + 600.0 + exponential(&mut rng, rate);
            }
            if d.fault.is_none()
                && t >= d.next_fault_at
                && !allowed_channels.is_empty()
                && !config.fault_kinds.is_empty()
            {
                let kind = config.fault_kinds[rng.random_range(0..config.fault_kinds.len())];
                let channel = allowed_channels[rng.random_range(0..allowed_channels.len())];
                let minutes = rng.random_range(
                    config.fault_minutes.0..=config.fault_minutes.1.max(config.fault_minutes.0),
                );
                let magnitude = match kind {
                    FaultKind::Spike => rng.random_range(2.5..4.0),
                    FaultKind::Dip => rng.random_range(1.5..2.5),
                    FaultKind::Drift => {
                        rng.random_range(1.5..2.5) * if rng.random::<bool>() { 1.0 } else { -1.0 }
                    }
                    FaultKind::Flatline => 0.0,
                    FaultKind::NoiseBurst => rng.random_range(5.0..8.0),
                };
                d.fault = Some(ActiveFault {
                    kind,
                    channel,
                    start: t,
                    end: t + minutes * 60.0,
                    magnitude,
                    stuck_value: None,
                });
            }
            let mut labels = (None, None);
            if let Some(f) = d.fault.as_mut() {
                let c = f.channel;
                let x = &mut values[c];
                match f.kind {
                    FaultKind::Spike => {
                        if rng.random::<f64>() < 0.08 {
                            *x += f.magnitude * SPAN[c] * rng.random_range(0.8..1.2);
                        }
                    }
                    FaultKind::Dip => *x -= f.magnitude * SPAN[c],
                    FaultKind::Drift => {
                        *x += f.magnitude * SPAN[c] * ((t - f.start) / 120.0).min(1.0)
                    }
                    FaultKind::Flatline => *x = *f.stuck_value.get_or_insert(*x),
                    FaultKind::NoiseBurst => {
                        *x += (f.magnitude - 1.0) * NOISE[c] * normal(&mut rng)
                    }
                }
                labels = (
                    Some(f.kind.name().to_string()),
                    Some(CHANNELS[c].to_string()),
                );
            }
            let mut map = BTreeMap::new();
            for (i, channel) in CHANNELS.iter().enumerate() {
                // Readings are reported with sensor resolution.
                map.insert(
                    channel.to_string(),
                    Value::from((values[i] * 1e4).round() / 1e4),
                );
            }
            emit(Sample {
                device_id: d.id.clone(),
                timestamp: timestamp.clone(),
                values: map,
                fault_kind: labels.0,
                fault_channel: labels.1,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &SimConfig) -> Vec<Sample> {
        let mut out = Vec::new();
        simulate(config, |s| out.push(s));
        out
    }

    #[test]
    fn same_seed_same_fleet_and_ranges_are_realistic() {
        let config = SimConfig {
            devices: 3,
            hours: 24.0,
            interval_secs: 10.0,
            fault_rate: 0.0,
            ..SimConfig::default()
        };
        let a = run(&config);
        assert_eq!(a, run(&config));
        assert_eq!(a.len(), 3 * 24 * 360);
        let range = |c: &str| {
            let v: Vec<f64> = a.iter().map(|s| s.values[c].as_f64().unwrap()).collect();
            (
                v.iter().cloned().fold(f64::INFINITY, f64::min),
                v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let within = |c: &str, lo: f64, hi: f64| {
            let (min, max) = range(c);
            assert!(
                min >= lo && max <= hi,
                "{c} in [{min}, {max}], expected within [{lo}, {hi}]"
            );
        };
        within("temperature", 15.0, 40.0);
        within("humidity", 30.0, 80.0);
        within("vibration", 0.0, 100.0);
        within("pressure", 1.0, 5.0);
        within("sound", 40.0, 100.0);
        assert!(a.iter().all(|s| s.fault_kind.is_none()));
        assert_ne!(a, run(&SimConfig { seed: 7, ..config }));
    }

    #[test]
    fn faults_are_labelled_with_kind_and_channel() {
        let config = SimConfig {
            devices: 4,
            hours: 6.0,
            fault_rate: 2.0,
            fault_kinds: vec![FaultKind::Flatline],
            fault_channels: vec!["vibration".into()],
            ..SimConfig::default()
        };
        let samples = run(&config);
        let faulty: Vec<&Sample> = samples.iter().filter(|s| s.fault_kind.is_some()).collect();
        assert!(!faulty.is_empty());
        assert!(faulty
            .iter()
            .all(|s| s.fault_kind.as_deref() == Some("flatline")
                && s.fault_channel.as_deref() == Some("vibration")));
        // A flatlined channel repeats one value for consecutive samples of a device.
        let device = faulty[0].device_id.clone();
        let stuck: Vec<f64> = faulty
            .iter()
            .filter(|s| s.device_id == device)
            .take(30)
            .map(|s| s.values["vibration"].as_f64().unwrap())
            .collect();
        assert!(stuck.windows(2).all(|w| w[0] == w[1]));
    }
}

/// A simulated fleet as Stream Analytics would window it.
#[derive(Debug)]
pub struct SimulatedWindows {
    /// Window records in time order (with `label`, `fault_kind` and `fault_channel` when asked).
    pub records: Vec<serde_json::Map<String, Value>>,
    pub samples: usize,
    /// Samples the windower refused, with the first reason (none, for the simulator's own).
    pub refused: usize,
    pub first_refusal: Option<String>,
}

/// Simulates `config` and windows every sample with `spec`: what the demo, `simulate --windows`
/// and the tests all need.
pub fn windows(
    config: &SimConfig,
    spec: super::windowing::WindowSpec,
    with_labels: bool,
) -> SimulatedWindows {
    let mut windower = super::windowing::Windower::new(spec);
    let (mut samples, mut refused, mut first_refusal) = (0, 0, None);
    simulate(config, |sample| {
        samples += 1;
        if let Err(reason) = windower.push(&sample, 0) {
            refused += 1;
            first_refusal.get_or_insert(reason);
        }
    });
    SimulatedWindows {
        records: windower.finish(with_labels),
        samples,
        refused,
        first_refusal,
    }
}
