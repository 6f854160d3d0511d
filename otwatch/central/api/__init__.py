"""The central HTTP API: ``create_app`` assembles one router module per concern."""

from otwatch.central.api.app import Commander, LocalCommander, create_app

__all__ = ["Commander", "LocalCommander", "create_app"]
