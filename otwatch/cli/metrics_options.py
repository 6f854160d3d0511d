"""``--metrics-listen``/``--metrics-port``/``--metrics-allow-remote``, shared by the daemons
(``agent run``, ``sync run``, ``central run``); the configuration's ``[metrics]`` keys are the
defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from otwatch.config import Config
from otwatch.metrics import MetricsError, parse_metrics_address

__all__ = ["metrics_address", "metrics_options"]


def metrics_options(func: Callable) -> Callable:
    options = [
        click.option(
            "--metrics-listen",
            metavar="HOST:PORT",
            help="Serve Prometheus metrics on this loopback address [metrics.<daemon>_listen; "
            "default: off].",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(1, 65535),
            help="Shorthand for --metrics-listen 127.0.0.1:PORT.",
        ),
        click.option(
            "--metrics-allow-remote",
            is_flag=True,
            default=None,
            help="Allow a non-loopback metrics address (it has no authentication) "
            "[metrics.allow_remote].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def metrics_address(cfg: Config, daemon: str, params: dict[str, Any]) -> tuple[str, int] | None:
    """Where ``daemon`` serves metrics (pops the options from ``params``); None: off."""
    listen, port = params.pop("metrics_listen", None), params.pop("metrics_port", None)
    allow = params.pop("metrics_allow_remote", None)
    if listen and port:
        raise click.UsageError("give --metrics-listen or --metrics-port, not both")
    allow = cfg.metrics.allow_remote if allow is None else allow
    text = listen or (str(port) if port else getattr(cfg.metrics, f"{daemon}_listen"))
    if not text:
        return None
    try:
        return parse_metrics_address(text, allow_remote=allow)
    except MetricsError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics-listen") from None
