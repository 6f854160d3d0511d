"""docs/openapi.json is what ``scripts/openapi.py`` produces from the code now."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]


def load_script():
    spec = importlib.util.spec_from_file_location("openapi_doc", REPO / "scripts" / "openapi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_openapi_is_current(tmp_path, monkeypatch):
    script = load_script()
    rendered = script.render()
    committed = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert rendered == committed, (
        "docs/openapi.json is stale: run .venv/bin/python scripts/openapi.py and commit it"
    )
    assert "/api/v1/alerts" in json.loads(committed)["paths"]

    # The check the script offers can fail: a stale copy is reported with exit status 1.
    stale = tmp_path / "openapi.json"
    stale.write_text(committed.replace("/api/v1/alerts", "/api/v1/alarms", 1))
    monkeypatch.setattr(script, "OUTPUT", stale)
    assert script.main(["--check"]) == 1
    assert script.main([]) == 0 and stale.read_text() == rendered
