"""Training, evaluation and parity for the sensor-anomaly handler's ONNX models.

- `train`: windows (or raw telemetry, windowed by the Rust CLI) -> a fitted detector exported as
  ONNX with the contract's metadata (`sensor-anomaly-train`);
- `detectors`: the autoencoder, PCA and isolation forest, and their ONNX graphs;
- `parity`: Python and the Rust scorer agree on every window (`sensor-anomaly-parity`);
- `benchmark_skab`, `cross_validate_skab`: SKAB's protocol and the settings chosen by
  cross-validation (`sensor-anomaly-benchmark-skab`, `sensor-anomaly-cross-validate-skab`);
- `contract`: the model contract (`schemas/model-contract.json`), `binary`: running the CLI.
"""
