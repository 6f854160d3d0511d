"""The central HTTP API."""

from otwatch.central.api.app import Commander, LocalCommander, create_app

__all__ = ["Commander", "LocalCommander", "create_app"]
