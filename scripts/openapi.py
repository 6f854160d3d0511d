#!/usr/bin/env python3
"""Write central's OpenAPI document to docs/openapi.json, so API changes show in review.

    .venv/bin/python scripts/openapi.py            # regenerate after changing the API
    .venv/bin/python scripts/openapi.py --check    # exit 1 when the committed copy is stale

``tests/unit/central/api/test_openapi_doc.py`` fails while the committed file differs from
what the code produces. The app is built over a throw-away SQLite store; building the schema
calls no route.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "openapi.json"


def render() -> str:
    """The OpenAPI document as committed: indented JSON, FastAPI's key order, final newline."""
    from otwatch.central.api import LocalCommander, create_app
    from otwatch.central.store.db import open_central_store

    with tempfile.TemporaryDirectory(prefix="otwatch-openapi-") as tmp:
        store = open_central_store(f"sqlite:///{tmp}/central.db")
        try:
            schema = create_app(store, LocalCommander(None)).openapi()
        finally:
            store.close()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run scripts/openapi.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
