#!/usr/bin/env python3
"""`scripts/parity.py` keeps working: it runs `sensor_anomaly_training.parity` (the training package in
`training/`, installed into .venv by `scripts/setup.sh --python`)."""
import sys

from sensor_anomaly_training.parity import main

sys.exit(main())
