"""``otwatch pcap …``: the rolling PCAP ring and per-alert evidence."""

from __future__ import annotations

from typing import Any

import click

from otwatch.agent.capture.evidence import export_alert_pcap
from otwatch.agent.capture.status import format_bytes, pcap_status
from otwatch.cli.central_client import ALERT_ID_MAX
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import force_option, format_option, print_json
from otwatch.fileout import check_output, is_stdout
from otwatch.timeutil import format_iso

__all__ = ["pcap"]


@click.group()
def pcap() -> None:
    """Packet captures: the rolling ring and the evidence of each alert."""


@pcap.command()
@click.argument("alert_id", type=click.IntRange(1, ALERT_ID_MAX))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File to write (classic pcap; opens in Wireshark/tshark); '-' for standard output.",
)
@force_option
@click.option(
    "--before",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds before the first detection when extracting from the ring now "
    "(default: the agent's setting, 30).",
)
@click.option(
    "--after",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds after the last detection (default: the agent's setting, 30).",
)
@pass_cli
def get(
    cli: CliContext,
    alert_id: int,
    output: str,
    before: float | None,
    after: float | None,
    force: bool = False,
) -> None:
    """Write the packets of alert ALERT_ID to a pcap file.

    The alert's evidence file when the agent has cut it (completed from the ring if the
    alert was detected again since), otherwise an extraction from the ring now, as long as
    the ring still holds the window.
    """
    check_output(output, force=force)
    store = cli.store(read_only=True)
    settings = (pcap_status_settings(store) or {}) if before is None or after is None else {}
    result = export_alert_pcap(
        store,
        alert_id,
        output,
        before_s=before if before is not None else settings.get("before_s", 30.0),
        after_s=after if after is not None else settings.get("after_s", 30.0),
        force=force,
    )
    origin = "evidence file" if result.source == "evidence" else "ring"
    click.echo(
        f"wrote {result.packets:,} packets ({format_bytes(result.bytes)}) of alert {alert_id} "
        f"to {'standard output' if is_stdout(output) else result.path} (from the {origin})",
        err=is_stdout(output),
    )
    if result.note:
        click.echo(f"note: {result.note}", err=True)


def pcap_status_settings(store: Any) -> dict[str, Any] | None:
    from otwatch.agent.capture.status import CAPTURE_STATE
    from otwatch.agent.store.state import get_state

    with store.session() as session:
        status = get_state(session, CAPTURE_STATE, None) or {}
    return status.get("evidence")


@pcap.command()
@format_option(choices=("table", "json"))
@pass_cli
def status(cli: CliContext, fmt: str) -> None:
    """Ring and evidence usage, oldest packet kept, kernel drops and disk-full events."""
    info = pcap_status(cli.store(read_only=True))
    if fmt == "json":
        print_json(info)
        return
    ring, evidence, capture = info["ring"], info["evidence"], info["capture"]
    budget = ring["budget_bytes"]
    used = format_bytes(ring["bytes"])
    share = f" of {format_bytes(budget)} ({100 * ring['bytes'] / budget:.1f}%)" if budget else ""
    lines = [
        f"ring:      {ring['segments']} segment(s) ({ring['open_segments']} open), "
        f"{used}{share}, {ring['packets']:,} packets",
        f"           oldest {format_iso(ring['oldest_ns']) or '-'}, "
        f"newest {format_iso(ring['newest_ns']) or '-'}",
    ]
    if ring["last_eviction_ns"]:
        lines.append(
            f"           rotated out up to {format_iso(ring['evicted_until_ns'])} "
            f"(last at {format_iso(ring['last_eviction_ns'])})"
        )
    if ring["disk_full"]:
        lines.append(
            f"           DISK FULL {ring['disk_full']} time(s), last at "
            f"{format_iso(ring['last_disk_full_ns'])}: oldest segments evicted, "
            f"{ring['dropped_frames']:,} frame(s) not written"
        )
    ebudget = evidence["budget_bytes"]
    by_status = ", ".join(f"{k} {v}" for k, v in evidence["by_status"].items()) or "none"
    lines.append(
        f"evidence:  {evidence['files']} file(s), {format_bytes(evidence['bytes'])}"
        + (f" of {format_bytes(ebudget)}" if ebudget else "")
        + f" ({by_status})"
    )
    lines.append(
        f"capture:   {capture['state']}"
        + (f" (pid {capture['pid']}, {capture['workers']} worker(s))" if capture["pid"] else "")
        + (f", updated {format_iso(capture['updated_ns'])}" if capture["updated_ns"] else "")
    )
    for name, counters in capture["interfaces"].items():
        lines.append(
            f"           {name}: {counters['received']:,} received, "
            f"{counters['kernel_drops']:,} dropped by the kernel"
        )
    for note in capture["notes"]:
        lines.append(f"           note: {note}")
    click.echo("\n".join(lines))
