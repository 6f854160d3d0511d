"""Detector settings: unknown keys and wrong types are clear errors."""

from __future__ import annotations

import pytest

from otwatch.agent.engines.config import EngineSettingsError, engine_config
from otwatch.agent.engines.internet import Config as InternetConfig
from otwatch.agent.engines.sessions import Config as SessionsConfig


def test_overrides_and_lists():
    assert engine_config(SessionsConfig, {"threshold": 10}, "sessions").threshold == 10
    config = engine_config(InternetConfig, {"fqdn_allowlist": ["*.a.example"]}, "internet")
    assert config.fqdn_allowlist == ("*.a.example",)


@pytest.mark.parametrize(
    ("cls", "settings", "message"),
    [
        (SessionsConfig, {"treshold": 1}, "unknown key"),
        (SessionsConfig, {"threshold": "50"}, "positive number"),
        (SessionsConfig, {"window_s": 0}, "positive number"),
        (InternetConfig, {"internal_subnets": "192.0.2.0/24"}, "must be a list"),
    ],
)
def test_bad_settings(cls, settings, message):
    with pytest.raises(EngineSettingsError, match=message):
        engine_config(cls, settings, "x")
