"""Every otwatch module has a namesake test module, or says here where it is tested.

The namesake of ``otwatch/a/b/c.py`` is ``tests/unit/a/b/test_c.py`` (mitmproxy checks the
same with a small script). Modules without one are listed below with the test module that
covers them, so a newcomer finds a module's tests from its path. The check fails when a new
module has neither, when an entry names a test file that does not exist, and when an entry is
stale (its module is gone or has gained a namesake). Migrations are not listed: their tests are
``tests/unit/*/store/test_migrations.py``.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "otwatch"

COVERED_ELSEWHERE: dict[str, str] = {
    # added in the second wave (portal, security, inventory)
    "agent/inventory/engine.py": "tests/unit/agent/inventory/test_inventory_store.py",
    "agent/inventory/identify.py": "tests/unit/agent/inventory/test_identify_corpus.py",
    "agent/inventory/roles.py": "tests/unit/agent/inventory/test_inventory_store.py",
    "agent/inventory/table.py": "tests/unit/agent/inventory/test_devices_merge.py",
    "agent/inventory/vendors.py": "tests/unit/agent/inventory/test_inventory_store.py",
    "agent/store/devices.py": "tests/unit/agent/inventory/test_devices_merge.py",
    "agent/store/devices_query.py": "tests/unit/cli/test_cli_devices.py",
    "agent/store/models_devices.py": "tests/unit/agent/inventory/test_devices_merge.py",
    "central/alertextras.py": "tests/unit/central/api/test_portal_api.py",
    "central/api/devices.py": "tests/unit/central/api/test_devices_api.py",
    "central/deviceviews.py": "tests/unit/central/api/test_devices_api.py",
    "central/store/devices.py": "tests/unit/central/api/test_devices_api.py",
    "central/store/models_devices.py": "tests/unit/central/api/test_devices_api.py",
    "central/api/auth_routes.py": "tests/unit/central/api/test_portal_auth.py",
    "central/api/headers.py": "tests/unit/central/api/test_portal_auth.py",
    "central/api/limits.py": "tests/security/test_request_bodies.py",
    "central/api/portal.py": "tests/unit/central/api/test_portal_auth.py",
    "central/api/preauth.py": "tests/security/test_request_bodies.py",
    "central/api/prefs.py": "tests/unit/central/api/test_portal_auth.py",
    "central/api/sessions.py": "tests/unit/central/api/test_portal_auth.py",
    "central/api/throttle.py": "tests/unit/central/api/test_portal_auth.py",
    "central/clockbound.py": "tests/security/test_forged_clock.py",
    "central/placement.py": "tests/security/test_placement.py",
    "central/portal/routes.py": "tests/unit/central/api/test_portal_pages.py",
    "central/store/models_portal.py": "tests/unit/central/api/test_portal_users_cli.py",
    "central/store/portal_sessions.py": "tests/unit/central/api/test_portal_auth.py",
    "central/store/prefs.py": "tests/unit/central/api/test_portal_auth.py",
    "central/store/users.py": "tests/unit/central/api/test_portal_users_cli.py",
    "cli/central_sensor.py": "tests/security/test_placement.py",
    "cli/central_users.py": "tests/unit/central/api/test_portal_users_cli.py",
    "cli/devices.py": "tests/unit/cli/test_cli_devices.py",
    "csvsafe.py": "tests/security/test_csv_injection.py",
    "listen_address.py": "tests/security/test_config_attacks.py",
    "nesting.py": "tests/security/test_config_attacks.py",
    "seclog.py": "tests/security/test_forged_clock.py",
    "secretfile.py": "tests/security/test_config_attacks.py",
    # the sensor: capture, decode, engines
    "agent/alerts/build.py": "tests/unit/agent/alerts/test_triage.py",
    "agent/capture/config.py": "tests/unit/agent/test_daemon.py",
    "agent/capture/evidence_export.py": "tests/unit/agent/capture/test_evidence.py",
    "agent/capture/evidence_files.py": "tests/unit/agent/capture/test_evidence_cut.py",
    "agent/capture/evidence_hosts.py": "tests/unit/agent/capture/test_evidence.py",
    "agent/capture/evidence_indexed.py": "tests/unit/agent/capture/test_evidence_cut.py",
    "agent/capture/evidence_twins.py": "tests/unit/agent/capture/test_evidence_cut.py",
    "agent/capture/evidence_window.py": "tests/unit/agent/capture/test_evidence.py",
    "agent/capture/pcapformat.py": "tests/unit/agent/capture/test_pcapfile.py",
    "agent/capture/pcapng_blocks.py": "tests/unit/agent/capture/test_pcapfile.py",
    "agent/capture/pcapwrite.py": "tests/unit/agent/capture/test_pcapfile.py",
    "agent/capture/ring_repair.py": "tests/unit/agent/capture/test_ring.py",
    "agent/capture/ring_segments.py": "tests/unit/agent/capture/test_ring.py",
    "agent/decode/ipv6.py": "tests/unit/agent/decode/test_headers.py",
    "agent/capture/opener.py": "tests/unit/agent/capture/test_tpacket.py",
    "agent/capture/source.py": "tests/unit/agent/test_worker.py",
    "agent/capture/status.py": "tests/unit/agent/test_daemon.py",
    "agent/decode/flows.py": "tests/unit/agent/engines/test_ot_support.py",
    "agent/decode/modbus.py": "tests/unit/agent/engines/test_modbus.py",
    "agent/decode/ports.py": "tests/unit/bench/test_gen_capture.py",
    "agent/engines/assets.py": "tests/unit/agent/test_type_gate.py",
    "agent/engines/base.py": "tests/unit/agent/test_pipeline_hooks.py",
    "agent/engines/baseline.py": "tests/unit/agent/engines/test_ot_support.py",
    "agent/engines/detection.py": "tests/unit/agent/engines/test_ot_support.py",
    "agent/engines/gate.py": "tests/unit/agent/test_type_gate.py",
    "agent/engines/network.py": "tests/integration/test_corpus_network.py",
    "agent/engines/registry.py": "tests/unit/agent/test_type_gate.py",
    "agent/engines/scans.py": "tests/unit/agent/engines/test_port_scan_bounds.py",
    "agent/pipeline.py": "tests/unit/agent/test_pipeline_hooks.py",
    "agent/sensor.py": "tests/unit/agent/alerts/test_triage.py",
    # the sensor store
    "agent/store/alerts.py": "tests/unit/agent/alerts/test_manager.py",
    "agent/store/baseline.py": "tests/unit/agent/test_pipeline_hooks.py",
    "agent/store/db.py": "tests/unit/agent/store/test_readonly.py",
    "agent/store/models.py": "tests/unit/agent/store/test_migrations.py",
    "agent/store/models_pcap.py": "tests/unit/agent/store/test_migrations.py",
    "agent/store/models_rules.py": "tests/unit/agent/store/test_migrations.py",
    "agent/store/rules.py": "tests/unit/cli/test_rules.py",
    "agent/store/schema.py": "tests/unit/agent/store/test_migrations.py",
    "agent/store/state.py": "tests/unit/agent/test_daemon.py",
    # the alert domain and central
    "alerts/views.py": "tests/unit/cli/test_cli_alerts.py",
    "central/alertviews.py": "tests/unit/central/store/test_derived.py",
    "central/api/alerts.py": "tests/unit/central/api/test_api.py",
    "central/api/app.py": "tests/unit/central/api/test_api.py",
    "central/api/auth.py": "tests/unit/central/api/test_tokens_listen.py",
    "central/api/deps.py": "tests/unit/central/api/test_api.py",
    "central/api/filters.py": "tests/unit/central/api/test_api.py",
    "central/api/pcap.py": "tests/unit/central/api/test_pcap_and_jobs.py",
    "central/api/sensors.py": "tests/unit/central/api/test_api.py",
    "central/api/triage.py": "tests/unit/central/api/test_api.py",
    "central/command_acks.py": "tests/unit/central/test_ingest.py",
    "central/commands.py": "tests/unit/central/test_ingest.py",
    "central/health.py": "tests/unit/cli/test_cli_status.py",
    "central/maintenance.py": "tests/unit/central/api/test_pcap_and_jobs.py",
    "central/node.py": "tests/unit/central/api/test_api.py",
    "central/pcap_requests.py": "tests/unit/central/api/test_pcap_and_jobs.py",
    "central/pcapstore.py": "tests/unit/central/api/test_api.py",
    "central/server.py": "tests/unit/central/api/test_tokens_listen.py",
    "central/store/commands.py": "tests/unit/cli/test_cli_commands.py",
    "central/store/models.py": "tests/unit/central/store/test_db.py",
    "central/store/models_api.py": "tests/unit/central/store/test_db.py",
    "central/store/schema.py": "tests/unit/central/store/test_db.py",
    "central/store/search.py": "tests/unit/central/test_ingest.py",
    "central/store/sensors.py": "tests/unit/test_metrics.py",
    "central/store/tokens.py": "tests/unit/central/api/test_tokens_listen.py",
    # the command line: each command group is tested through ``otwatch ...`` invocations
    "cli/agent.py": "tests/unit/agent/test_replay.py",
    "cli/alerts.py": "tests/unit/cli/test_cli_alerts.py",
    "cli/central_client.py": "tests/integration/test_central_pcap.py",
    "cli/central.py": "tests/integration/test_central_api.py",
    "cli/central_api.py": "tests/integration/test_central_api.py",
    "cli/central_devices.py": "tests/integration/test_devices_sync.py",
    "cli/config.py": "tests/unit/cli/test_cli_config.py",
    "cli/context.py": "tests/unit/cli/test_cli_config.py",
    "cli/demo.py": "tests/integration/test_demo.py",
    "cli/main.py": "tests/unit/cli/test_cli_bad_input.py",
    "cli/mqtt_options.py": "tests/unit/test_gctune.py",
    "cli/pcap.py": "tests/unit/cli/test_cli_pcap.py",
    "cli/status.py": "tests/unit/cli/test_cli_status.py",
    "cli/sync.py": "tests/integration/test_sync_mqtt.py",
    # shared plumbing
    "config_engines.py": "tests/unit/test_config.py",
    "config_problems.py": "tests/unit/test_config.py",
    "config_values.py": "tests/unit/test_config.py",
    "dbcommon.py": "tests/unit/central/store/test_db.py",
    "demo/parts.py": "tests/integration/test_demo.py",
    "errors.py": "tests/unit/agent/capture/test_pcapfile.py",
    "health.py": "tests/unit/cli/test_cli_status.py",
    "metrics_address.py": "tests/unit/test_metrics.py",
    "simulate/plant.py": "tests/integration/test_false_positives.py",
    "units.py": "tests/unit/agent/capture/test_ring.py",
    # forwarding (issue 17): tested per concern in tests/unit/forwarding/
    "agent/store/forwarding.py": "tests/unit/forwarding/test_delivery_sensor.py",
    "agent/store/models_forwarding.py": "tests/unit/forwarding/test_delivery_sensor.py",
    "central/api/forwarding.py": "tests/unit/forwarding/test_api.py",
    "central/store/forwarding.py": "tests/unit/forwarding/test_delivery_central.py",
    "central/store/models_forwarding.py": "tests/unit/forwarding/test_delivery_central.py",
    "cli/forwarding.py": "tests/unit/forwarding/test_delivery_sensor.py",
    "forwarding/alert_rows.py": "tests/unit/forwarding/test_output_pinned.py",
    "forwarding/cef.py": "tests/unit/forwarding/test_formats.py",
    "forwarding/check.py": "tests/unit/forwarding/test_config_check.py",
    "forwarding/child.py": "tests/unit/forwarding/test_central_child.py",
    "forwarding/ecs.py": "tests/unit/forwarding/test_formats.py",
    "forwarding/leef.py": "tests/unit/forwarding/test_formats.py",
    "forwarding/probe.py": "tests/integration/forwarding/test_rsyslog.py",
    "forwarding/repository.py": "tests/integration/forwarding/test_kill.py",
    "forwarding/rfc5424.py": "tests/unit/forwarding/test_formats.py",
    "forwarding/targets/base.py": "tests/integration/forwarding/test_rsyslog.py",
    "forwarding/targets/syslog.py": "tests/integration/forwarding/test_rsyslog.py",
    "forwarding/targets/webhook.py": "tests/integration/forwarding/test_webhook.py",
    "forwarding/text.py": "tests/unit/forwarding/test_formats.py",
    "forwarding/worker.py": "tests/unit/forwarding/test_delivery_sensor.py",
    # sync
    "sync/daemon.py": "tests/integration/test_sync_mqtt.py",
    "sync/outbox.py": "tests/unit/sync/test_sensor_sync.py",
    "sync/pcap.py": "tests/unit/sync/test_pcap_encode.py",
    "sync/tracker.py": "tests/unit/cli/test_cli_status.py",
    "sync/transport.py": "tests/integration/test_sync_mqtt.py",
    "timeutil.py": "tests/unit/agent/test_replay.py",
}

NO_TEST_MODULE_YET = {
    # Covered only through their callers' tests (and the integration runs); each is owed a
    # namesake test module. Listed so that the gap is visible and cannot grow unnoticed.
    "agent/alerts/exclusions.py",
    "agent/capture/scapy_source.py",
    "agent/engines/netutil.py",
    "agent/engines/port_zero.py",
    "agent/engines/signin.py",
    "agent/evidence_process.py",
    "central/inbound.py",
    "central/service.py",
    "cli/__main__.py",
    "cli/catalog.py",
    "cli/maintenance.py",
    "cli/metrics_options.py",
    "cli/output.py",
    "forwarding/backend.py",
    "forwarding/events.py",
    "forwarding/health.py",
    "forwarding/migration.py",
    "forwarding/schema.py",
    "forwarding/source.py",
    "forwarding/targets/factory.py",
    "forwarding/targets/file.py",
    "sync/commands.py",
    "sync/pcap_evidence.py",
    "sync/protocol/outgoing.py",
    "sync/supervision.py",
    "sync/tasks.py",
}


def _modules() -> set[str]:
    return {
        path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*.py")
        if path.name != "__init__.py" and "migrations" not in path.parts
    }


def _namesake(module: str) -> Path:
    path = Path(module)
    return REPO / "tests" / "unit" / path.parent / f"test_{path.stem}.py"


def test_every_module_has_a_namesake_test_or_an_entry() -> None:
    unlisted = sorted(
        module
        for module in _modules()
        if not _namesake(module).exists()
        and module not in COVERED_ELSEWHERE
        and module not in NO_TEST_MODULE_YET
    )
    assert not unlisted, f"add tests/unit/.../test_<name>.py (or an entry here) for {unlisted}"


def test_entries_name_existing_tests() -> None:
    missing = {m: t for m, t in COVERED_ELSEWHERE.items() if not (REPO / t).is_file()}
    assert not missing


def test_no_stale_entries() -> None:
    modules = _modules()
    listed = set(COVERED_ELSEWHERE) | NO_TEST_MODULE_YET
    gone = sorted(listed - modules)
    with_namesake = sorted(m for m in listed & modules if _namesake(m).exists())
    assert not gone and not with_namesake and not set(COVERED_ELSEWHERE) & NO_TEST_MODULE_YET
