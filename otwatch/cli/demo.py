"""``otwatch demo``: the whole system on one machine, in about a minute.

A private Mosquitto on a free loopback port, central on SQLite with its HTTP API, the sensor's
sync daemon, and a sensor agent replaying a plant capture the project generates (normal
Modbus operations to learn, then an intrusion). Then, as an analyst would: the alerts as
central sees them, a status change and a learn made centrally and applied on the sensor, a
sensor-only mute, the device inventory at central with a name given there and applied on
the sensor, one alert's PCAP pulled through central, and the health of both sides.
Every command shown is run as a real ``otwatch`` process. At the end it prints the web
portal's address and a demo sign-in; run from a terminal, everything keeps running until
Ctrl-C so a person can click through the portal, otherwise everything stops at once.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

import click

from otwatch.demo.parts import (
    HOST,
    Broker,
    DemoError,
    Process,
    find_mosquitto,
    free_port,
    otwatch_args,
    wait_until,
)
from otwatch.errors import OtwatchError
from otwatch.simulate.plant import ATTACK_STEPS, PlantProfile, write_plant_capture

__all__ = ["demo"]

SENSOR = "demo-sensor"
WAIT_S = 60.0

P = TypeVar("P", bound=Process)


def _step(title: str) -> None:
    """A numbered heading."""
    click.secho(f"\n== {title}", bold=True)


class Story:
    """The demo's state: paths, processes, and how to run ``otwatch`` commands."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir.resolve()
        self.sensor = self.dir / "sensor"
        self.central_dir = self.dir / "central"
        self.logs = self.dir / "logs"
        self.config = self.dir / "otwatch.toml"
        self.env = {"OTWATCH_CONFIG": str(self.config)}
        self.processes: list[Process] = []
        self.url = ""
        self.token = ""
        self.portal_user = ("demo", secrets.token_urlsafe(9))

    def otwatch(
        self, *args: str, central: bool = False, show: bool = True, ok: tuple[int, ...] = (0,)
    ) -> str:
        """Run ``otwatch args`` (against central's API with ``central``); echo the command
        and its output when ``show``; return stdout."""
        prefix = ["--central", self.url, "--token", self.token] if central else []
        shown = ["--central", self.url, "--token", "$TOKEN"] if central else []
        if show:
            click.secho("$ otwatch " + " ".join([*shown, *args]), fg="cyan")
        result = subprocess.run(
            otwatch_args(*prefix, *args),
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if not show else None,  # progress lines go straight out
            text=True,
            check=False,
        )
        if show and result.stdout.strip():
            click.echo(result.stdout.rstrip())
        if result.returncode not in ok:
            detail = (result.stderr or "").strip() or result.stdout.strip()
            raise DemoError(f"'otwatch {' '.join(args)}' failed ({result.returncode}): {detail}")
        return result.stdout

    def sensor_json(self, *args: str) -> Any:
        return json.loads(
            self.otwatch("--data-dir", str(self.sensor), *args, "--format", "json", show=False)
        )

    def api(self, path: str) -> Any:
        """GET from central's API in this process (polling needs no new process)."""
        from otwatch.cli.central_client import CentralApiError, CentralClient

        try:
            return CentralClient(self.url, self.token, timeout=5).get(path)
        except CentralApiError:
            return None

    def sensor_alert(self, alert_id: int) -> dict[str, Any] | None:
        from otwatch.agent.store.models import Alert
        from otwatch.agent.store.readonly import open_for_reading

        store = open_for_reading(self.sensor)
        try:
            with store.session() as session:
                alert = session.get(Alert, alert_id)
                return None if alert is None else {
                    "status": alert.status, "close_reason": alert.close_reason
                }  # fmt: skip
        finally:
            store.close()

    def start(self, process: P) -> P:
        self.processes.append(process)
        return process.start()

    def stop_all(self) -> list[tuple[str, int | None]]:
        return [(p.name, p.stop()) for p in reversed(self.processes)]


def _by_type(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["type"]: row for row in reversed(rows)}  # newest first: keep the first seen


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-data"),
    show_default=True,
    help="Where the capture, databases, logs and the pulled PCAP go (recreated).",
)
@click.option(
    "--install/--no-install",
    default=True,
    show_default=True,
    help="Install Mosquitto with apt-get when it is missing (only when running as root).",
)
@click.option(
    "--wait/--no-wait",
    "wait",
    default=None,
    help="Keep everything running until Ctrl-C at the end (default: when run in a terminal).",
)
def demo(workdir: Path, install: bool, wait: bool | None) -> None:
    """Run the end-to-end demo: plant → sensor → sync → central → triage → PCAP → portal."""
    started = time.monotonic()
    _fresh_workdir(workdir)
    mosquitto = find_mosquitto(install, click.echo)
    story = Story(workdir)
    story.config.write_text(
        "# The demo's configuration: built-in defaults; the daemons get their broker,\n"
        "# database and listen addresses on the command line (see `otwatch config show`).\n"
    )
    try:
        _run(story, mosquitto)
        if sys.stdin.isatty() if wait is None else wait:
            _keep_running(story)
    finally:
        stopped = story.stop_all()
    _step("Stopped")
    for name, code in stopped:
        click.echo(f"{name}: exit status {code}")
    click.echo(
        f"finished in {time.monotonic() - started:.0f} s. The data stays in {story.dir}:\n"
        f"  sensor database and PCAP ring  {story.sensor}\n"
        f"  central database               {story.central_dir / 'central.db'}\n"
        f"  pulled PCAP                    {story.dir / 'scan.pcap'}\n"
        f"  daemon logs                    {story.logs}\n"
        f"try: otwatch --data-dir {story.sensor} alerts list --status new"
    )


DEMO_MARK = ".otwatch-demo"
"""Marks a directory the demo made, the only kind it deletes to start afresh."""


def _fresh_workdir(workdir: Path) -> None:
    """Recreate ``workdir``: an empty directory or an earlier demo's is deleted first;
    anything else is refused (``--workdir /etc`` must not delete /etc)."""
    if workdir.is_symlink() or (workdir.exists() and not workdir.is_dir()):
        raise OtwatchError(f"--workdir {workdir} is not a directory; choose another")
    if workdir.exists():
        if any(workdir.iterdir()) and not (workdir / DEMO_MARK).is_file():
            raise OtwatchError(
                f"--workdir {workdir} exists and is not a directory the demo made (no "
                f"{DEMO_MARK} in it); choose another, or remove it yourself"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / DEMO_MARK).write_text("made by `otwatch demo`, which deletes it when re-run\n")


def _run(story: Story, mosquitto: str) -> None:
    profile = PlantProfile()
    capture = story.dir / "plant.pcap"
    _step("1. Simulating a plant: 2 HMIs polling 3 PLCs over Modbus/TCP, then an intrusion")
    packets = write_plant_capture(capture, profile)
    click.echo(
        f"wrote {capture} ({packets:,} packets); attack steps after "
        f"{profile.learning_s:.0f} s of normal traffic:"
    )
    for step in ATTACK_STEPS:
        click.echo(f"  - {step}")

    _step("2. A private MQTT broker (Mosquitto) on a free loopback port")
    broker = story.start(Broker(mosquitto, story.dir / "broker"))
    click.echo(f"mosquitto listening on {broker.url} (log: {broker.log})")

    _step("3. Central on SQLite with its HTTP API, and an API token for the analyst")
    db = f"sqlite:///{story.central_dir / 'central.db'}"
    story.central_dir.mkdir(parents=True)
    token_file = story.central_dir / "token"
    args = ("central", "token", "create", "--name", "demo-analyst", "--role", "admin", "--db", db)
    click.secho(f"$ TOKEN=$(otwatch {' '.join(args)})", fg="cyan")
    story.token = story.otwatch(*args, show=False).strip()
    token_file.write_text(story.token + "\n")
    token_file.chmod(0o600)
    click.echo(f"(an admin token for the API, kept in {token_file})")
    name, password = story.portal_user
    password_file = story.central_dir / "demo-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    story.otwatch("central", "user", "add", name, "--role", "admin", "--password-file",
                  str(password_file), "--db", db)  # fmt: skip
    port = free_port()
    story.url = f"http://{HOST}:{port}"
    central = story.start(
        Process(
            "central",
            otwatch_args("central", "run", "--db", db, "--broker", broker.url, "--listen",
                         f"{HOST}:{port}", "--pcap-dir", str(story.central_dir / "pcap")),
            story.logs / "central.log",
            story.env,
        )
    )  # fmt: skip

    def api_up() -> bool:
        central.check()
        return story.api("/whoami") is not None

    wait_until(api_up, WAIT_S, "central's API", central.log)
    click.echo(f"central running: API on {story.url} (log: {central.log})")

    _step("4. The sensor agent replays the plant: 5 minutes of learning, then the attack")
    story.otwatch("--log-level", "warning", "--data-dir", str(story.sensor), "agent", "replay",
                  str(capture), "--ring", "--learning-period", "5m", "--sensor-id", SENSOR,
                  "--site", "demo-plant", "--zone", "cell-1")  # fmt: skip
    local = story.sensor_json("alerts", "list")
    click.echo("the sensor's device inventory (type and Purdue level guessed from the traffic):")
    story.otwatch("--data-dir", str(story.sensor), "devices", "list")

    _step("5. The sensor's sync daemon: the alerts go to central, commands come back")
    sync = story.start(
        Process(
            "sync",
            otwatch_args("--data-dir", str(story.sensor), "sync", "run", "--broker", broker.url,
                         "--sensor-id", SENSOR, "--status-interval", "2"),
            story.logs / "sync.log",
            story.env,
        )
    )  # fmt: skip

    def sensor_online() -> bool:
        sync.check()
        central.check()
        return any(s["online"] for s in story.api("/sensors") or ())

    wait_until(sensor_online, WAIT_S, f"{SENSOR} online at central", sync.log)
    click.echo(f"sync running; central sees {SENSOR} online (log: {sync.log})")

    def all_at_central() -> list[dict[str, Any]]:
        sync.check()
        rows = (story.api("/alerts?limit=1000") or {}).get("alerts", [])
        return rows if len(rows) >= len(local) else []

    wait_until(all_at_central, WAIT_S, f"central to hold the sensor's {len(local)} alerts")

    _step("6. The alerts, as central sees them")
    text = story.otwatch("alerts", "list", "--format", "json", central=True, show=False)
    story.otwatch("alerts", "list", central=True)
    rows = json.loads(text)
    central_types = _by_type(rows)
    scan = central_types["port_scan_detected"]["id"]
    exception = central_types["modbus_exception"]["id"]
    diagnostics = next(
        r["id"]
        for r in rows
        if r["type"] == "unpermitted_usage_of_modbus_function_code"
        and r["source_address"] == "192.0.2.10"
    )

    def on_sensor(central_id: str, status: str, reason: str | None = None) -> dict[str, Any]:
        alert_id = central_id.split("-", 1)[0]

        def applied() -> dict[str, Any] | None:
            sync.check()
            shown = story.sensor_alert(int(alert_id))
            ok = shown and shown["status"] == status and shown["close_reason"] == reason
            return shown if ok else None

        return wait_until(applied, WAIT_S, f"alert {alert_id} to be {status} on the sensor")

    _step("7. Triage from central: the scan is being investigated → Active on the sensor")
    story.otwatch("alerts", "set-status", "active", scan, central=True)
    on_sensor(scan, "active")
    story.otwatch("--data-dir", str(story.sensor), "alerts", "list", "--type",
                  "port_scan_detected")  # fmt: skip

    _step("8. Learn from central: the HMI's diagnostics requests are a planned maintenance job")
    story.otwatch("alerts", "learn", diagnostics, central=True)
    on_sensor(diagnostics, "closed", "learned")
    story.otwatch("--data-dir", str(story.sensor), "alerts", "show", diagnostics.split("-")[0])
    click.echo("(a type that is not learnable is refused, with the reason:)")
    story.otwatch("alerts", "learn", exception, central=True, ok=(1,))

    _step("9. Sensor-only actions: mute the PLC's exception noise on the sensor itself")
    story.otwatch("--data-dir", str(story.sensor), "alerts", "mute", exception.split("-")[0])

    def muted_at_central() -> bool:
        shown = story.api(f"/alerts/{exception}") or {}
        return shown.get("status") == "closed" and shown.get("close_reason") == "muted"

    wait_until(muted_at_central, WAIT_S, "the mute to reach central")
    click.echo("central now shows it closed (muted) too:")
    story.otwatch("alerts", "list", "--group-by", "status", central=True)

    _step("10. The device inventory, as central sees it; a name given centrally")
    _central_devices(story, sync)

    _step("11. The scan's PCAP, pulled from the sensor through central (with progress)")
    story.otwatch("alerts", "pcap", scan, "-o", str(story.dir / "scan.pcap"), central=True)

    _step("12. Health: the sensor and central")
    story.otwatch("--data-dir", str(story.sensor), "status")
    story.otwatch("status", central=True)

    _step("13. The web portal")
    name, password = story.portal_user
    click.echo(f"portal: {story.url}/  (sign in as {name!r}, password {password!r}; "
               f"more users: otwatch central user add NAME --role reader --db {db})")  # fmt: skip


def _central_devices(story: Story, sync: Process) -> None:
    """Central's device list once it holds every device of the sensor, then a name set
    centrally and applied on the sensor."""
    count = len(story.sensor_json("devices", "list"))

    def all_at_central() -> list[dict[str, Any]]:
        sync.check()
        page = story.api("/devices?limit=1000") or {}
        return page.get("items", []) if page.get("total", 0) >= count else []

    rows = wait_until(all_at_central, WAIT_S, f"central to hold the sensor's {count} devices")
    story.otwatch("central", "devices", "list", "--type", "PLC", central=True)
    plc = next((r for r in rows if r["type"] == "PLC"), rows[0])
    story.otwatch("central", "devices", "set", str(plc["id"]), "--name", "PLC-line-1",
                  central=True)  # fmt: skip

    def named_on_sensor() -> bool:
        sync.check()
        shown = story.sensor_json("devices", "show", plc["ip"] or plc["key"])
        return shown["name"] == "PLC-line-1"

    wait_until(named_on_sensor, WAIT_S, "the sensor to apply the name")
    story.otwatch("--data-dir", str(story.sensor), "devices", "list", "--type", "PLC")

    def applied_at_central() -> bool:
        shown = story.api(f"/devices/{plc['id']}") or {}
        return ((shown.get("overrides") or {}).get("central") or {}).get("state") == "applied"

    wait_until(applied_at_central, WAIT_S, "central to show the name applied")
    click.echo("central shows the name applied by the sensor")


def _keep_running(story: Story) -> None:
    """Until Ctrl-C (or a process dies): the portal stays up for a person to click through."""
    click.secho("\nEverything keeps running: open the portal above. Press Ctrl-C to stop.",
                bold=True)  # fmt: skip
    try:
        while True:
            for process in story.processes:
                process.check()
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("\nstopping…")
