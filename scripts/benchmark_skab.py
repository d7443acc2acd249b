#!/usr/bin/env python3
"""`scripts/benchmark_skab.py` keeps working: it runs `sensor_anomaly_training.benchmark_skab` (the training package in
`training/`, installed into .venv by `scripts/setup.sh --python`)."""
import sys

from sensor_anomaly_training.benchmark_skab import main

sys.exit(main())
