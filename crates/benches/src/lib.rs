//! Criterion micro-benchmarks of the `ScoreWindows` stages, one window at a time: see
//! `benches/stages.rs` (`cargo bench -p sensor-anomaly-benches`). The library is empty; the
//! crate exists so that criterion is built only when benchmarks are.
