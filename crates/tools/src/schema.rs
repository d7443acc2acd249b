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

#[cfg(test)]
mod tests {
    #[test]
    fn channels_and_stats_are_the_contract_files() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/model-contract.json");
        let contract: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(contract["channels"], serde_json::json!(super::CHANNELS));
        assert_eq!(contract["stats"], serde_json::json!(super::STATS));
        let naming = contract["feature_name"].as_str().unwrap();
        assert_eq!(
            super::feature_names()[1],
            naming.replace("{channel}", super::CHANNELS[0]).replace("{stat}", super::STATS[1])
        );
    }
}
