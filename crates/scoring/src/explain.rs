//! Explanations: the score split over channels, the feature that is off and by how much, and a
//! sentence a plant engineer can act on ("vibration std is 50.7 sd above normal; ...").

use super::model::Model;
use domain::{ScoredWindow, Severity, WindowRecord};

impl Model {
    /// `score / threshold`, the severity's measure.
    pub(super) fn ratio(&self, score: f64) -> f64 {
        if self.info.threshold > 0.0 {
            score / self.info.threshold
        } else {
            f64::INFINITY
        }
    }

    /// One window's full result from its row of the model's outputs and its per-channel sums
    /// (`by_channel`, in `info.channels` order).
    pub(super) fn explain(
        &self,
        record: &WindowRecord,
        feature_contrib: &[f32],
        expected: Option<&[f32]>,
        by_channel: &[f64],
        processing_time_us: f64,
    ) -> ScoredWindow {
        let info = &self.info;
        let score: f64 = by_channel.iter().sum();
        let top = by_channel
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let top_channel = info.channels.get(top).cloned().unwrap_or_default();
        // Within the top channel, the feature with the largest contribution, and how many training
        // sd it is from the value the model expected (or from the training mean).
        let (top_feature, z) = (0..feature_contrib.len())
            .filter(|&i| self.channel_of_feature[i] == top)
            .max_by(|&a, &b| feature_contrib[a].total_cmp(&feature_contrib[b]))
            .map(|i| {
                let normal = expected.map_or(info.feature_mean[i], |e| f64::from(e[i]));
                let sd = info.feature_std[i].max(1e-12);
                (
                    info.feature_names[i].clone(),
                    (f64::from(record.features[i]) - normal) / sd,
                )
            })
            .unwrap_or_default();
        let ratio = self.ratio(score);
        let severity = Severity::from_ratio(ratio);
        let share = if score > 0.0 {
            by_channel.get(top).copied().unwrap_or(0.0) / score
        } else {
            0.0
        };
        let explanation = explanation_text(severity, &top_channel, &top_feature, z, share, ratio);
        ScoredWindow {
            device_id: record.device_id.clone(),
            window_end: record.window_end.clone(),
            score,
            threshold: info.threshold,
            is_anomaly: severity != Severity::Normal,
            severity,
            contributions: info.channels.iter().cloned().zip(by_channel.iter().copied()).collect(),
            top_channel,
            top_feature,
            top_feature_z: z,
            explanation,
            model_version: info.model_version.clone(),
            processing_time_us,
        }
    }
}

fn explanation_text(
    severity: Severity,
    channel: &str,
    feature: &str,
    z: f64,
    share: f64,
    ratio: f64,
) -> String {
    let stat = feature
        .strip_prefix(channel)
        .map(|s| s.trim_start_matches('_'))
        .filter(|s| !s.is_empty())
        .unwrap_or(feature);
    let direction = if z >= 0.0 { "above" } else { "below" };
    let what = format!(
        "{channel} {stat} is {:.1} sd {direction} normal; {channel} explains {:.0}% of the error",
        z.abs(),
        share * 100.0
    );
    if severity == Severity::Normal {
        format!(
            "within normal range (score at {:.0}% of threshold); largest deviation: {what}",
            ratio * 100.0
        )
    } else {
        format!(
            "{what} (score {:.1}x threshold, {})",
            ratio,
            severity.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanation_names_channel_statistic_and_share() {
        let text = explanation_text(
            Severity::High,
            "vibration",
            "vibration_max",
            7.14,
            0.823,
            5.0,
        );
        assert!(
            text.starts_with(
                "vibration max is 7.1 sd above normal; vibration explains 82% of the error"
            ),
            "{text}"
        );
        let text = explanation_text(
            Severity::Low,
            "temperature",
            "temperature_std",
            -11.0,
            0.5,
            1.2,
        );
        assert!(
            text.contains("temperature std is 11.0 sd below normal"),
            "{text}"
        );
    }
}
