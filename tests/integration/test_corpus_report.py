"""docs/corpus-report.md is what scripts/corpus_report.py produces from the shared corpus now."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "corpus_report", REPO / "scripts" / "corpus_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_is_current_and_counts_every_packet(pcaps):
    report = load_script().build_report(pcaps)
    committed = (REPO / "docs" / "corpus-report.md").read_text(encoding="utf-8")
    assert report == committed, (
        "docs/corpus-report.md is out of date: run .venv/bin/python scripts/corpus_report.py"
    )
    manifest = {
        row["file"]: int(row["packets"])
        for row in csv.DictReader((pcaps / "MANIFEST.tsv").open(), delimiter="\t")
    }
    for name, expected in manifest.items():
        match = re.search(rf"### {re.escape(name)}\n\n- packets counted: (\d+)", report)
        assert match and int(match.group(1)) == expected, name
