"""Mutated and random frames through the agent pipeline: every decoder and engine, no
exception, bounded memory.

The default run feeds each seed group a few hundred mutants (about 25k frames, seconds); the
``slow`` run feeds until every engine has been given ``OTWATCH_FUZZ_FRAMES`` frames (default
1,000,000) and writes its figures to ``OTWATCH_FUZZ_REPORT`` when set (docs/reliability.md).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.fuzz.frames import PCAPS, describe, env_count, fuzz_pipeline, seed_groups

# The growth allowed from the end of the first seed group to the end of the run. Engines keep
# bounded state (flow table 50,000 here, per-engine caches), so growth levels off; what keeps
# growing is the alert manager's index of open alerts (~135 B each). Recorded full run
# (docs/reliability.md): +303 MiB over 22.4M frames with 387k alerts open, of which ~50 MiB
# that index; 189 MiB of it came in the first 5.6M frames, as the caches filled.
RSS_GROWTH_MIB = {"short": 120, "full": 350}


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    if not PCAPS.is_dir():
        pytest.skip(f"capture corpus not found at {PCAPS}")
    return seed_groups(tmp_path_factory.mktemp("seeds"))


def check(report, target: int, groups, kind: str) -> None:
    text = describe(report)
    assert report.crash_count == 0, text
    every = {name for name, count in report.per_engine.items() if count}
    assert len(every) >= 30, text  # every engine that inspects packets was reached
    starved = {n: c for n, c in report.per_engine.items() if c < target}
    assert not starved, f"engines given fewer than {target:,} frames: {starved}\n{text}"
    assert set(report.groups) == {*groups, "random"}
    assert report.rss_end_mib - report.rss_warm_mib < RSS_GROWTH_MIB[kind], text


def test_pipeline_survives_mutated_frames(groups, store, tmp_path):
    target = env_count("OTWATCH_FUZZ_FRAMES_SHORT", 600)
    report = fuzz_pipeline(store, tmp_path, groups, target, other_share=0.5, seed=7)
    check(report, target, groups, "short")
    assert report.detections > 0  # the mutants still look like traffic to the engines


def save(report, path: str) -> None:
    with open(path, "w") as f:
        json.dump(
            {
                "frames": report.frames,
                "seconds": round(report.seconds, 1),
                "exceptions": report.crash_count,
                "per_engine": dict(report.per_engine),
                "groups": report.groups,
                "rss_mib": [report.rss_start_mib, report.rss_warm_mib, report.rss_end_mib],
                "rss_checkpoints": report.rss_checkpoints,
                "detections": report.detections,
                "alerts": report.alerts,
                "crashes": [c.__dict__ | {"frame": repr(c.frame)} for c in report.crashes],
            },
            f,
            indent=1,
        )


@pytest.mark.slow
def test_pipeline_survives_a_million_mutated_frames_per_engine(groups, store, tmp_path):
    target = env_count("OTWATCH_FUZZ_FRAMES", 1_000_000)
    out = os.environ.get("OTWATCH_FUZZ_REPORT")
    progress = (lambda report: save(report, out)) if out else None
    seed = int(os.environ.get("SEED", 1))
    report = fuzz_pipeline(store, tmp_path, groups, target, seed=seed, progress=progress)
    if out:
        save(report, out)
    check(report, target, groups, "full")
