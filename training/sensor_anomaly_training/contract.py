"""The model contract, read from `schemas/model-contract.json`: the one definition both languages
use (the Rust loader's constants are held to the same file by its tests).

Input and output names, the metadata keys, the default channels and window statistics, the
feature naming and each detector's model-version prefix.
"""
from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CONTRACT_FILE = REPO_ROOT / "schemas" / "model-contract.json"

try:
    _CONTRACT = json.loads(CONTRACT_FILE.read_text(encoding="utf-8"))
except FileNotFoundError:
    raise ImportError(
        f"{CONTRACT_FILE} not found: the training package reads the repository it lives in (the "
        "model contract, the CLI binary). Install it editable from a checkout: "
        "`pip install -e training` (scripts/setup.sh --python does)"
    ) from None

CONTRACT_VERSION: str = _CONTRACT["contract"]
INPUT_NAME: str = _CONTRACT["input"]
OUTPUT_NAME: str = _CONTRACT["output"]
EXPECTED_NAME: str = _CONTRACT["expected"]
REQUIRED_METADATA: list[str] = list(_CONTRACT["metadata"]["required"])
OPTIONAL_METADATA: list[str] = list(_CONTRACT["metadata"]["optional"])
CHANNELS: list[str] = list(_CONTRACT["channels"])
STATS: list[str] = list(_CONTRACT["stats"])
VERSION_PREFIX: dict[str, str] = dict(_CONTRACT["detectors"])
DETECTORS: tuple[str, ...] = tuple(VERSION_PREFIX)


def feature_name(channel: str, stat: str) -> str:
    return _CONTRACT["feature_name"].format(channel=channel, stat=stat)


FEATURE_NAMES: list[str] = [feature_name(c, s) for c in CHANNELS for s in STATS]
