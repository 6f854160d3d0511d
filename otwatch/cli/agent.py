"""``otwatch agent …``: run the sensor pipeline on live interfaces or on capture files."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from otwatch.agent.capture.config import (
    CAPTURE_METHODS,
    DIRECTIONS,
    CaptureConfig,
    EvidenceConfig,
    RingConfig,
    default_method,
    evidence_directory,
    parse_size,
    ring_directory,
)
from otwatch.agent.decode.flows import DEFAULT_MAX_FLOWS
from otwatch.agent.replay import DetectionOptions
from otwatch.agent.replay import replay as run_replay
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.metrics_options import metrics_address, metrics_options
from otwatch.cli.output import format_option
from otwatch.errors import OtwatchError
from otwatch.timeutil import parse_duration_ns

__all__ = ["agent"]


def duration(_ctx: Any, _param: Any, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration_ns(value)
    except OtwatchError as exc:
        raise click.BadParameter(str(exc)) from None


def size(_ctx: Any, _param: Any, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except OtwatchError as exc:
        raise click.BadParameter(str(exc)) from None


def ring_options(default_on: bool | None) -> Callable[[Callable], Callable]:
    """The PCAP ring and evidence options shared by ``agent run`` and ``agent replay``.

    Values left out come from the configuration's ``[pcap]`` section (``agent run``) or the
    built-in defaults shown (``agent replay``).
    """
    options = [
        click.option(
            "--ring/--no-ring",
            "ring",
            default=default_on,
            help="Write every frame to the rolling PCAP ring and cut per-alert evidence "
            f"[default: {'on' if default_on is not False else 'off'}].",
        ),
        click.option(
            "--ring-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Ring directory (default: DATA_DIR/pcap/ring).",
        ),
        click.option(
            "--ring-segment-size", callback=size, metavar="SIZE",
            help="Rotate a segment at this size [pcap.segment_size, 64MiB].",
        ),
        click.option(
            "--ring-segment-time", callback=duration, metavar="DURATION",
            help="Rotate a segment after this much traffic time [pcap.segment_duration, 5m].",
        ),
        click.option(
            "--ring-max-size", callback=size, metavar="SIZE",
            help="Disk budget of the ring, 0 for none [pcap.ring_budget, 4GiB].",
        ),
        click.option(
            "--ring-max-percent", type=click.FloatRange(0, 100), metavar="PERCENT",
            help="Budget as a share of the filesystem, 0 for none; the smaller budget applies "
            "[pcap.ring_budget_percent, 20].",
        ),
        click.option(
            "--evidence-before", callback=duration, metavar="DURATION",
            help="Evidence starts this long before an alert's first detection "
            "[pcap.evidence_before, 30s].",
        ),
        click.option(
            "--evidence-after", callback=duration, metavar="DURATION",
            help="Evidence ends this long after an alert's last detection "
            "[pcap.evidence_after, 30s].",
        ),
        click.option(
            "--evidence-max-size", callback=size, metavar="SIZE",
            help="Budget of all evidence files, oldest deleted first [pcap.evidence_budget, 1GiB].",
        ),
        click.option(
            "--evidence-alert-max-size", callback=size, metavar="SIZE",
            help="Budget of one alert's evidence file, its oldest packets go first "
            "[pcap.evidence_alert_budget, 32MiB].",
        ),
    ]  # fmt: skip

    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def ring_configs(
    data_dir: Path,
    params: dict[str, Any],
    ring: RingConfig | None = None,
    evidence: EvidenceConfig | None = None,
) -> tuple[RingConfig | None, EvidenceConfig | None]:
    """The ring and evidence settings: ``ring``/``evidence`` (from the configuration, else
    the defaults) with the options given on the command line on top (popped from params)."""
    enabled = params.pop("ring")
    ring = ring or RingConfig(directory=ring_directory(data_dir))
    evidence = evidence or EvidenceConfig(directory=evidence_directory(data_dir))
    ring_changes: dict[str, Any] = {}
    if params.get("ring_dir"):
        ring_changes["directory"] = Path(params["ring_dir"])
    if params.get("ring_segment_size") is not None:
        ring_changes["segment_bytes"] = params["ring_segment_size"]
    if params.get("ring_segment_time") is not None:
        ring_changes["segment_seconds"] = params["ring_segment_time"] / 1e9
    if params.get("ring_max_size") is not None:
        ring_changes["max_bytes"] = params["ring_max_size"] or None
    if params.get("ring_max_percent") is not None:
        ring_changes["max_percent"] = params["ring_max_percent"] or None
    evidence_changes: dict[str, Any] = {}
    for option, name, scale in (
        ("evidence_before", "before_s", 1e-9),
        ("evidence_after", "after_s", 1e-9),
        ("evidence_max_size", "max_bytes", 1),
        ("evidence_alert_max_size", "alert_max_bytes", 1),
    ):
        if params.get(option) is not None:
            evidence_changes[name] = params[option] * scale
    for key in (
        "ring_dir", "ring_segment_size", "ring_segment_time", "ring_max_size",
        "ring_max_percent", "evidence_before", "evidence_after", "evidence_max_size",
        "evidence_alert_max_size",
    ):  # fmt: skip
        params.pop(key, None)
    if not enabled:
        return None, None
    return replace(ring, **ring_changes), replace(evidence, **evidence_changes)


@click.group()
def agent() -> None:
    """The sensor agent: capture, detection and alerting."""


@agent.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--learning-period",
    callback=duration,
    metavar="DURATION",
    help="Learn the baseline for this much traffic time first (e.g. 10m, 2h, 14d); "
    "policy alerts stay silent meanwhile. Default: continue the stored state.",
)
@click.option("--sensor-id", help="Sensor id to record on alerts (remembered; default hostname).")
@click.option("--site", help="Site name to record on alerts (remembered).")
@click.option("--zone", help="Zone name to record on alerts (remembered).")
@ring_options(default_on=False)
@format_option(choices=("table", "json"))
@pass_cli
def replay(
    cli: CliContext,
    files: tuple[str, ...],
    learning_period: int | None,
    sensor_id: str | None,
    site: str | None,
    zone: str | None,
    fmt: str,
    **ring_params: Any,
) -> None:
    """Replay pcap/pcapng FILES in order through the detection pipeline.

    Alerts and the learned baseline are stored in the data directory, so a later replay
    (or the live agent) continues from them. With --ring the frames also go to the PCAP
    ring and the alerts get their evidence (``otwatch pcap get``).
    """
    from otwatch.agent.config_check import load_sensor_config

    detection = DetectionOptions.from_config(load_sensor_config(cli.config_path))
    ring, evidence = ring_configs(cli.data_dir, ring_params)
    store = cli.store()
    # Files done of all, and the current one's packets, on stderr when it is a terminal.
    bar = click.progressbar(
        length=len(files),
        label="replay",
        show_pos=True,
        item_show_func=lambda item: item,
        file=sys.stderr if fmt == "table" and sys.stderr.isatty() else io.StringIO(),
    )
    current: list[str] = []  # the file being replayed

    def progress(path: str, packets: int) -> None:
        if current and current[0] != path:
            bar.update(1)
        current[:] = [path]
        bar.update(0, f"{path}: {packets:,} packets")

    with bar:
        summary = run_replay(
            files,
            store,
            sensor_id=sensor_id,
            site=site,
            zone=zone,
            learning_period_ns=learning_period,
            progress=progress,
            ring=ring,
            evidence=evidence,
            detection=detection,
        )
        bar.update(len(files) - bar.pos)
    if fmt == "json":
        click.echo(json.dumps(summary.as_dict()))
    else:
        rate = summary.packets / summary.seconds if summary.seconds else 0.0
        click.echo(
            f"replayed {summary.files} file(s): {summary.packets:,} packets, "
            f"{summary.bytes:,} bytes in {summary.seconds:.2f} s ({rate:,.0f} packets/s)"
        )
        click.echo(
            f"alerts: {summary.alerts_new} new, {summary.alerts_updated} updated "
            f"({summary.detections:,} detections, {summary.suppressed:,} suppressed by "
            f"learn/mute/exclusion rules); {summary.malformed:,} malformed packets"
        )
        if summary.learning_remaining_s > 0:
            click.echo(f"learning mode: {summary.learning_remaining_s:,.0f} s of traffic left")
        if summary.ring_packets is not None:
            click.echo(
                f"PCAP ring: {summary.ring_packets:,} frames written; "
                f"{summary.evidence_files} evidence file(s) cut"
            )
    for problem in summary.problems:
        click.echo(f"error: {problem}", err=True)
    if summary.problems:
        sys.exit(1)


@agent.command()
@click.option(
    "--interface",
    "-i",
    "interfaces",
    multiple=True,
    metavar="IF",
    help="Capture interface; repeat for several (-i eth1 -i eth2) [capture.interfaces].",
)
@click.option(
    "--bpf",
    metavar="EXPR",
    help="Capture filter (tcpdump syntax), applied in the kernel [capture.bpf].",
)
@click.option(
    "--learning-period",
    callback=duration,
    metavar="DURATION",
    help="Learn the baseline for this much traffic time first (e.g. 14d); policy alerts stay "
    "silent meanwhile [detection.learning_period; default: continue the stored state].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Capture processes; the kernel spreads flows over them (PACKET_FANOUT hash).",
)
@click.option(
    "--method",
    type=click.Choice(CAPTURE_METHODS),
    help="tpacket: Linux mmap ring; scapy/libpcap: portable, slower "
    f"[capture.method, {default_method()}].",
)
@click.option(
    "--block-size",
    default="1MiB",
    show_default=True,
    callback=size,
    metavar="SIZE",
    help="TPACKET_V3 block size (a power of two).",
)
@click.option(
    "--block-count",
    type=click.IntRange(2, 1 << 16),
    default=128,
    show_default=True,
    help="TPACKET_V3 blocks per socket; size x count is the burst the kernel holds.",
)
@click.option(
    "--block-timeout",
    "block_timeout_ms",
    type=click.IntRange(1, 60_000),
    default=50,
    show_default=True,
    help="Milliseconds before a partly filled block is handed over.",
)
@click.option("--promisc/--no-promisc", default=None, help="[capture.promisc, on]")
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    help="in: skip frames this host sends itself [capture.direction, inout].",
)
@click.option(
    "--max-flows",
    type=click.IntRange(1_000, 50_000_000),
    default=DEFAULT_MAX_FLOWS,
    show_default=True,
    help="Flow table size per worker (the oldest flows are evicted beyond it).",
)
@click.option(
    "--max-backlog",
    type=click.IntRange(1_000, 100_000_000),
    default=500_000,
    show_default=True,
    help="Frames captured but not yet analysed, per worker; beyond it the oldest are "
    "recorded in the ring only (counted in `pcap status`).",
)
@click.option(
    "--ot-subnet",
    "ot_subnets",
    multiple=True,
    metavar="CIDR",
    help="Plant subnet, repeatable [detection.ot_subnets; default: private ranges].",
)
@click.option("--sensor-id", help="Sensor id to record on alerts [sensor.id].")
@click.option("--site", help="Site name to record on alerts [sensor.site].")
@click.option("--zone", help="Zone name to record on alerts [sensor.zone].")
@ring_options(default_on=None)
@metrics_options
@pass_cli
def run(
    cli: CliContext,
    interfaces: tuple[str, ...],
    bpf: str | None,
    learning_period: int | None,
    workers: int,
    method: str | None,
    block_size: int,
    block_count: int,
    block_timeout_ms: int,
    promisc: bool | None,
    direction: str | None,
    max_flows: int,
    max_backlog: int,
    ot_subnets: tuple[str, ...],
    sensor_id: str | None,
    site: str | None,
    zone: str | None,
    **ring_params: Any,
) -> None:
    """Capture live traffic on the interfaces and detect until SIGTERM/SIGINT.

    Every frame goes to the PCAP ring (unless --no-ring) and through the same pipeline as
    ``agent replay``. Rules learned or muted elsewhere apply within a second. Under systemd
    (Type=notify) it reports READY, STATUS and WATCHDOG heartbeats. Options override the
    configuration file; [in brackets] the key and its default.
    """
    from otwatch.agent.capture.bpf import compile_filter
    from otwatch.agent.capture.source import interface_linktype
    from otwatch.agent.daemon import DaemonOptions, run_daemon
    from otwatch.cli.config import require_config
    from otwatch.metrics import SensorCollector, start_metrics

    cfg = require_config(sensor=True)
    metrics = metrics_address(cfg, "agent", ring_params)
    base = CaptureConfig.from_section(cfg.capture)
    interfaces = interfaces or base.interfaces
    if not interfaces:
        raise click.UsageError(
            "no capture interface: give --interface IF or set capture.interfaces in the "
            "configuration"
        )
    if len(set(interfaces)) != len(interfaces):
        raise click.BadParameter("an interface is given twice", param_hint="--interface")
    bpf = base.bpf if bpf is None else (bpf or None)
    linktypes = {name: interface_linktype(name) for name in interfaces}
    if bpf:
        for linktype in set(linktypes.values()):
            compile_filter(bpf, linktype)  # a bad filter fails now, with libpcap's reason
    if ring_params["ring"] is None:
        ring_params["ring"] = True
    ring, evidence = ring_configs(
        cli.data_dir,
        ring_params,
        RingConfig.from_section(cfg.pcap, cli.data_dir),
        EvidenceConfig.from_section(cfg.pcap, cli.data_dir),
    )
    detection = DetectionOptions.from_config(cfg)  # the same engines and settings replay uses
    options = DaemonOptions(
        capture=replace(
            base,
            interfaces=tuple(interfaces),
            method=method or base.method,
            bpf=bpf,
            promisc=base.promisc if promisc is None else promisc,
            direction=direction or base.direction,
            block_size=block_size,
            block_count=block_count,
            block_timeout_ms=block_timeout_ms,
        ),
        ring=ring,
        evidence=evidence,
        workers=workers,
        learning_period_ns=(
            learning_period if learning_period is not None else cfg.detection.learning_period_ns
        ),
        sensor_id=sensor_id or cfg.sensor.id or None,
        site=site if site is not None else (cfg.sensor.site or None),
        zone=zone if zone is not None else (cfg.sensor.zone or None),
        max_flows=max_flows,
        ot_subnets=ot_subnets or detection.ot_subnets,
        max_backlog=max_backlog,
        engines=tuple(engine.name for engine in detection.engines),
        settings=detection.settings,
        alert_rate=detection.alert_rate,
    )
    cli.close()  # the daemon opens its own store connections
    code = run_daemon(
        cli.data_dir, options, lambda store: start_metrics(metrics, SensorCollector(store, "agent"))
    )
    if code:
        sys.exit(code)
