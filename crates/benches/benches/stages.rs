//! Each `ScoreWindows` stage on the bench workload's invocation shape (100 windows, one per
//! event, as `scripts/bench.py` sends them), reported per window so a regression shows where
//! it is:
//! - `decode/request`: the host's request bytes → its `Data` and `Metadata`, the trigger's
//!   encoded array of bodies decoded in the same scan (`host::parse_request`);
//! - `decode/events`: the trigger's events with their lineage;
//! - `decode/records`: the event bodies → window records (the plain path; pass three);
//! - `decode/records_general`: the same through the general path (`Value` trees), the
//!   fallback for anything the plain path does not take;
//! - `score/run`: ONNX Runtime alone on the batch; `score/assess`: the run and every window's
//!   score, severity and channel split; `score/explain`: the full explanation of one window;
//! - `pipeline/memory`: decode to outputs with the in-memory store (classify included);
//! - `persist/sqlite`: one batch of anomaly rows into SQLite, first delivery and re-delivery;
//! - `response`: the host's response with its alerts.
//!
//!     cargo bench -p sensor-anomaly-benches
//!     cargo bench -p sensor-anomaly-benches -- decode    # one group

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::Value;

use domain::WindowRecord;
use ingress::host::{self, BatchInfo, InvocationRequest, TriggerEvent};
use pipeline::{decode_events, DecodePolicy, Pipeline, PipelineOptions};
use scoring::Model;
use sensor_anomaly::simulate::{self, SimConfig};
use sensor_anomaly::windowing::WindowSpec;
use sinks::{AnomalyStore, MemoryStore, SqliteStore};

const WINDOWS: usize = 100;

struct Fixture {
    model: Model,
    /// The request bytes as the host sends them.
    request: Vec<u8>,
    events: Vec<TriggerEvent>,
    records: Vec<WindowRecord>,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.onnx");
    let model = Model::load_file(&path).expect("the default model (scripts/setup.sh fetches ONNX Runtime)");
    let config = SimConfig {
        devices: 40,
        hours: 1.0,
        // Faults often enough that the batch has anomalies to explain, store and alert on.
        fault_rate: 1.0,
        seed: 42,
        ..SimConfig::default()
    };
    let windows = simulate::windows(&config, WindowSpec::tumbling(60).expect("valid"), false);
    let bodies: Vec<String> = windows
        .records
        .into_iter()
        .skip(1000)
        .take(WINDOWS)
        .map(|w| Value::Object(w).to_string())
        .collect();
    let request =
        host::many_string_invocation("events", &bodies, "0", 0, "2026-01-01T00:00:00.5").to_string();
    let parsed: InvocationRequest = serde_json::from_str(&request).expect("a request");
    let events = host::trigger_events(&parsed, "events").expect("events");
    let decoded = decode_events(&events, &model.info.feature_names, policy());
    assert_eq!(decoded.records.len(), WINDOWS, "every window decodes");
    let anomalies = model.score(&decoded.records).expect("scores").iter().filter(|w| w.is_anomaly).count();
    assert!(anomalies > 0, "the batch has anomalies");
    eprintln!("fixture: {WINDOWS} windows, {anomalies} anomalous");
    Fixture {
        model,
        request: request.into_bytes(),
        events,
        records: decoded.records,
    }
}

fn policy() -> DecodePolicy {
    DecodePolicy::at(i64::MAX / 2, 600)
}

fn decode(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(WINDOWS as u64));
    let names = &f.model.info.feature_names;
    group.bench_function("request", |b| {
        b.iter(|| host::parse_request(black_box(&f.request)).expect("parses"))
    });
    let parsed: InvocationRequest = host::parse_request(&f.request).expect("parses");
    group.bench_function("events", |b| {
        b.iter(|| host::trigger_events(black_box(&parsed), "events").expect("events"))
    });
    group.bench_function("records", |b| {
        b.iter(|| decode_events(black_box(&f.events), names, policy()))
    });
    group.bench_function("records_general", |b| {
        b.iter(|| {
            f.events
                .iter()
                .flat_map(|e| ingress::events::decode_event_items(black_box(&e.body)))
                .map(|item| ingress::events::extract(&item.record.expect("a record"), names).expect("valid"))
                .count()
        })
    });
    group.finish();
}

fn score(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("score");
    group.throughput(Throughput::Elements(WINDOWS as u64));
    let rows: Vec<f32> = f.records.iter().flat_map(|r| r.features.iter().copied()).collect();
    group.bench_function("run", |b| {
        b.iter(|| f.model.run(black_box(rows.clone()), WINDOWS).expect("runs"))
    });
    group.bench_function("assess", |b| {
        b.iter(|| f.model.assess(black_box(&f.records)).expect("runs").len())
    });
    let verdicts = f.model.assess(&f.records).expect("runs");
    group.throughput(Throughput::Elements(1));
    group.bench_function("explain", |b| {
        b.iter(|| verdicts.explain(black_box(7), &f.records[7]))
    });
    group.finish();
}

fn pipeline_and_store(c: &mut Criterion, f: &Fixture) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(WINDOWS as u64));
    group.bench_function("memory", |b| {
        b.iter_batched(
            || Pipeline::new(Arc::new(MemoryStore::new()), PipelineOptions::default()),
            |pipeline| {
                runtime
                    .block_on(pipeline.score_batch(&f.model, &f.events, BatchInfo::default()))
                    .expect("scores")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let outcome = runtime
        .block_on(
            Pipeline::new(Arc::new(MemoryStore::new()), PipelineOptions::default())
                .score_batch(&f.model, &f.events, BatchInfo::default()),
        )
        .expect("scores");
    let verdicts = f.model.assess(&f.records).expect("runs");
    let rows: Vec<domain::AnomalyRow> = (0..f.records.len())
        .map(|i| verdicts.explain(i, &f.records[i]))
        .filter(|w| w.is_anomaly)
        .map(|w| domain::AnomalyRow::new(&w, serde_json::Map::new(), &domain::Lineage::default()))
        .collect();
    let dir = std::env::temp_dir().join(format!("stages-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let mut group = c.benchmark_group("persist");
    group.throughput(Throughput::Elements(rows.len().max(1) as u64));
    let mut n = 0;
    group.bench_function("sqlite_first_delivery", |b| {
        b.iter_batched(
            || {
                n += 1;
                let store = SqliteStore::open(&dir.join(format!("{n}.sqlite")), Duration::from_secs(5)).expect("opens");
                (store, rows.clone())
            },
            |(store, rows)| runtime.block_on(store.insert(rows)).expect("stored"),
            BatchSize::PerIteration,
        )
    });
    let store = SqliteStore::open(&dir.join("redelivered.sqlite"), Duration::from_secs(5)).expect("opens");
    runtime.block_on(store.insert(rows.clone())).expect("stored");
    group.bench_function("sqlite_redelivery", |b| {
        b.iter_batched(
            || rows.clone(),
            |rows| runtime.block_on(store.insert(rows)).expect("stored"),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The bench script's steady state: a whole batch delivered again (anomalies already
    // stored, every device's tracker past its windows, the incident messages read back).
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(WINDOWS as u64));
    let store = SqliteStore::open(&dir.join("pipeline.sqlite"), Duration::from_secs(5)).expect("opens");
    let pipeline = Pipeline::new(Arc::new(store), PipelineOptions::default());
    runtime
        .block_on(pipeline.score_batch(&f.model, &f.events, BatchInfo::default()))
        .expect("scores");
    group.bench_function("sqlite_redelivery", |b| {
        b.iter(|| {
            runtime
                .block_on(pipeline.score_batch(&f.model, &f.events, BatchInfo::default()))
                .expect("scores")
        })
    });
    group.finish();
    drop(pipeline);
    let _ = std::fs::remove_dir_all(&dir);

    let mut group = c.benchmark_group("response");
    group.throughput(Throughput::Elements(WINDOWS as u64));
    group.bench_function("alerts", |b| {
        b.iter(|| host::response(black_box(&outcome.alerts), &outcome.incidents.messages, &outcome.dead_letters, Vec::new()).expect("serializes"))
    });
    group.finish();
}

fn stages(c: &mut Criterion) {
    let f = fixture();
    decode(c, &f);
    score(c, &f);
    pipeline_and_store(c, &f);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = stages
}
criterion_main!(benches);
