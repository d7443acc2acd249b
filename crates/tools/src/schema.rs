//! The sensor channels and window features shared by the simulator, the windowing, the
//! Stream Analytics query and the default model.

/// Channels of the simulated (and default-model) device, in feature order.
pub const CHANNELS: [&str; 5] = ["temperature", "humidity", "vibration", "pressure", "sound"];

/// Per-channel window statistics, in feature order (`std` is the sample standard deviation, as
/// Stream Analytics `STDEV`).
pub const STATS: [&str; 4] = ["mean", "std", "min", "max"];

/// `<channel>_<stat>` for every channel and statistic, in the order the default model expects.
pub fn feature_names() -> Vec<String> {
    CHANNELS
        .iter()
        .flat_map(|c| STATS.iter().map(move |s| format!("{c}_{s}")))
        .collect()
}
