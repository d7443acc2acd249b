//! The commands that read and write files: `simulate` (to a file), `window`, `score`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::args::{CsvArgs, SimArgs};
use super::io::{lines_from, read_input, writer};
use scoring::Model;
use sensor_anomaly::simulate;
use sensor_anomaly::windowing::{self, Channels, WindowSpec};
use sensor_anomaly::{schema, score_file, track_file};

/// `simulate`: the fleet's samples as JSON lines.
pub(crate) fn simulate_to_file(sim: SimArgs, out: Option<PathBuf>) -> Result<()> {
    let config = sim.config()?;
    let mut w = writer(&out)?;
    let mut result = Ok(());
    simulate::simulate(&config, |sample| {
        if result.is_ok() {
            result = serde_json::to_writer(&mut w, &sample)
                .map_err(anyhow::Error::from)
                .and_then(|_| Ok(w.write_all(b"\n")?));
        }
    });
    result?;
    w.flush()?;
    Ok(())
}

/// `window`: Stream Analytics window features from telemetry (JSON lines or CSV).
pub(crate) fn window(
    input: PathBuf,
    out: Option<PathBuf>,
    size_secs: i64,
    hop_secs: Option<i64>,
    channels: Vec<String>,
    csv: CsvArgs,
) -> Result<()> {
    let spec = WindowSpec::hopping(size_secs, hop_secs.unwrap_or(size_secs))?;
    let channels = match channels.as_slice() {
        [] => Channels::Named(schema::CHANNELS.iter().map(|c| c.to_string()).collect()),
        [auto] if auto == "auto" => Channels::Auto,
        names => Channels::Named(names.iter().map(|c| c.trim().to_string()).collect()),
    };
    let text = read_input(&input)?;
    let windows = if csv.is_csv(&input) {
        windowing::window_csv(&text, spec, &channels, &csv.layout(&input)?)
    } else {
        windowing::window_lines(&text, spec, &channels)
    }
    .with_context(|| format!("{}", input.display()))?;
    for warning in windows.order.warnings() {
        eprintln!("warning: {}: {warning}", input.display());
    }
    let mut w = writer(&out)?;
    for record in windows.records {
        serde_json::to_writer(&mut w, &record)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

/// `score`: window records scored offline.
pub(crate) fn score(model: PathBuf, input: PathBuf, out: Option<PathBuf>) -> Result<()> {
    let model = Model::load_file(&model)?;
    let reader = lines_from(&input)?;
    let mut w = writer(&out)?;
    let summary = score_file::score_lines(&model, reader, &mut w, |line, reason| {
        eprintln!("line {line}: refused: {reason}")
    })?;
    w.flush()?;
    eprintln!(
        "scored {} windows with model {} ({} refused)",
        summary.scored, model.info.model_version, summary.refused
    );
    Ok(())
}

/// `incidents`: scored windows through the handler's incident rules.
pub(crate) fn incidents(input: PathBuf, out: Option<PathBuf>) -> Result<()> {
    let policy = service::configuration::incident_policy(&|name: &str| std::env::var(name).ok())?;
    let reader = lines_from(&input)?;
    let mut w = writer(&out)?;
    let s = track_file::track_lines(&policy, reader, &mut w, |line, reason| {
        eprintln!("line {line}: refused: {reason}")
    })?;
    eprintln!(
        "{} windows ({} refused, {} late): {} incidents opened, {} escalated, {} resolved, {} still open \
         (open {} of {} or one {}, resolve after {} quiet windows or a {} s gap)",
        s.windows, s.refused, s.late, s.opened, s.escalated, s.resolved, s.open_at_end,
        policy.open_after, policy.open_of, policy.open_at.as_str(), policy.resolve_after, policy.gap_secs
    );
    Ok(())
}

pub(crate) fn bench_model(
    model: PathBuf,
    windows: PathBuf,
    batches: Vec<usize>,
    seconds: f64,
) -> Result<()> {
    if !(seconds.is_finite() && seconds > 0.0) {
        anyhow::bail!("--seconds must be a positive number");
    }
    let model = Model::load_file(&model)?;
    let reader = BufReader::new(
        File::open(&windows).with_context(|| format!("cannot read {}", windows.display()))?,
    );
    let mut records = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", windows.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = score_file::window_record(&line, &model.info.feature_names)
            .map_err(|reason| anyhow::anyhow!("{} line {}: {reason}", windows.display(), i + 1))?;
        records.push(record);
    }
    let report = sensor_anomaly::model_bench::bench(
        &model,
        &records,
        &batches,
        std::time::Duration::from_secs_f64(seconds),
    )?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
