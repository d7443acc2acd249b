#!/usr/bin/env python3
"""`scripts/cross_validate_skab.py` keeps working: it runs `sensor_anomaly_training.cross_validate_skab` (the training package in
`training/`, installed into .venv by `scripts/setup.sh --python`)."""
import sys

from sensor_anomaly_training.cross_validate_skab import main

sys.exit(main())
