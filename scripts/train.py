#!/usr/bin/env python3
"""`scripts/train.py` keeps working: it runs `sensor_anomaly_training.train` (the training package in
`training/`, installed into .venv by `scripts/setup.sh --python`)."""
import sys

from sensor_anomaly_training.train import main

sys.exit(main())
