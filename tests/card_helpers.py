"""Helpers shared by the model-card tests: the real data, and reading values back out of a card."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CHECKPOINT = SHARED / "arc-meshchop" / "fold_0_restart_0" / "final.pt"
RESULTS = SHARED / "arc-meshchop" / "fold_0_restart_0" / "results.json"
CHECKPOINT_2 = SHARED / "arc-meshchop" / "fold_0_restart_2" / "final.pt"
RESULTS_2 = SHARED / "arc-meshchop" / "fold_0_restart_2" / "results.json"
T1 = SHARED / "brainchop" / "t1_crop.nii.gz"
CONFIG = REPO / "meshrelease.toml"
CROP = 32  # parity crop for test builds: small, so the suite stays fast on 2 cores

_FILE_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<format>[^|]+) \| (?P<precision>[^|]+) \| (?P<size>[\d,]+) \| "
                       r"`(?P<sha256>[0-9a-f]{64})` \|", re.M)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def card_files(card_text: str) -> dict[str, dict]:
    """The card's file table: path -> {format, precision, size, sha256}."""
    return {
        m["path"]: {"format": m["format"].strip(), "precision": m["precision"].strip(),
                    "size": int(m["size"].replace(",", "")), "sha256": m["sha256"]}
        for m in _FILE_ROW.finditer(card_text)
    }


def results(path: Path = RESULTS) -> dict:
    return json.loads(Path(path).read_text())


def recomputed_means(path: Path = RESULTS) -> dict[str, float]:
    """Dice, AVD and MCC recomputed from the per-subject lists of a results.json."""
    data = results(path)
    return {k: statistics.fmean(data[f"per_subject_{k}"]) for k in ("dice", "avd", "mcc")}
