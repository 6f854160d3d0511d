"""``otwatch.config``: defaults, the file, environment overrides and one message per problem."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from otwatch.agent.capture.config import CaptureConfig, EvidenceConfig, RingConfig
from otwatch.agent.config_check import load_sensor_config
from otwatch.agent.replay import DetectionOptions
from otwatch.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from otwatch.sync.transport import BrokerConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "otwatch.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otwatch.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    """What ``config check`` reports: the loader's problems, then the sensor's
    (``load_sensor_config``: BPF filter and ``[engines]``, tested here with the rest)."""
    with pytest.raises(ConfigError) as info:
        load_sensor_config(write(tmp_path, text), env or {})
    assert str(info.value).count("\n") == 0
    return info.value.problems


def test_empty_file_is_valid_and_has_defaults(tmp_path):
    cfg = load_config(write(tmp_path, ""), {})
    assert cfg.model_dump() == Config().model_dump()
    assert cfg.sync.broker == "mqtts://127.0.0.1:8883"
    assert cfg.detection.learning_period_ns is None
    assert cfg.engines.settings == {} and cfg.engines.disabled == ()
    assert [e.name for e in DetectionOptions.from_config(cfg).engines][:1] == ["assets"]
    assert cfg.source == str(tmp_path / "otwatch.toml")


def test_absent_default_file_means_defaults():
    if DEFAULT_CONFIG_PATH.exists():
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists on this machine")
    assert load_config(None, {}).source == "built-in defaults"


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="file does not exist — fix: create it"):
        load_config(tmp_path / "nope.toml", {})


def test_toml_syntax_error_names_the_line(tmp_path):
    [problem] = problems(tmp_path, "[sensor]\nid = \n")
    assert "line 2" in problem and "fix: correct the TOML syntax" in problem


def test_the_example_file_is_valid_and_documents_every_key():
    cfg = load_config(EXAMPLE, {})
    text = EXAMPLE.read_text()
    for section, model in Config.model_fields.items():
        assert f"[{section}]" in text, section
        for key in model.annotation.model_fields:
            if section == "engines" and key == "settings":
                continue
            assert f"{key} =" in text, f"{section}.{key} is not documented in {EXAMPLE}"
    assert cfg.sensor.id  # the example sets a sensor id
    tomllib.loads(text)


def test_brief_example_broker_problem(tmp_path):
    [problem] = problems(tmp_path, '[sync]\nbroker = "mqtt:/x"\n')
    assert problem.startswith("sync.broker: 'mqtt:/x' is not a URL like mqtts://")
    assert " — fix: " in problem


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ('[sensor]\nid = "bad id!"', "sensor.id", "not a valid sensor id"),
        ('[capture]\ninterfaces = ["eth0", "a/b"]', "capture.interfaces[1]", "interface name"),
        ('[capture]\nmethod = "pcapng"', "capture.method", "is not one of"),
        ('[capture]\nbpf = "tcp portx 5"', "capture.bpf", "invalid capture filter"),
        ('[capture]\npromisc = "maybe"', "capture.promisc", "not true or false"),
        ('[detection]\not_subnets = ["10.0.0.0/33"]', "detection.ot_subnets[0]", "not a subnet"),
        ('[detection]\nlearning_period = "2 weeks"', "detection.learning_period", "duration"),
        ('[engines.ioc]\nip_files = ["/nonexistent/iocs.txt"]', "engines.ioc", "iocs.txt"),
        ('[engines.arp_scan]\nenable = ["port_scan_detected"]', "engines.arp_scan", "not a type"),
        ('[engines.arp_scan]\nenable = "*"', "engines.arp_scan", "must be a list"),
        ('[pcap]\nring_budget = "lots"', "pcap.ring_budget", "is not a size"),
        ("[pcap]\nring_budget_percent = 0", "pcap.ring_budget_percent", "greater than 0"),
        ('[sync]\nbroker = "mqtt://broker.example"', "sync.broker", "in clear"),
        ('[sync]\nbroker = "mqtts://u:pw@host"', "sync.broker", "carries a password"),
        ('[sync]\nbroker = "mqtts://host:99999"', "sync.broker", "port"),
        ('[sync]\npassword = "hunter2"', "sync.password", "password_file"),
        ('[central]\ndb = "mysql://h/db"', "central.db", "not a database URL"),
        ('[central]\ndb = "postgresql://u:pw@h/db"', "central.db", "carries a password"),
        ('[central]\nlisten = "8080"', "central.listen", "HOST:PORT"),
        ('[log]\nlevel = "loud"', "log.level", "is not one of"),
        ("[snesor]", "snesor", "unknown setting"),
        ('[sensor]\nsite_name = "x"', "sensor.site_name", "known: id, site, zone"),
        ("sensor = 5", "sensor", "is not a table"),
        ('[engines]\ndisabled = ["nope"]', "engines.disabled", "no engine named 'nope'"),
        ("[engines.nope]\nx = 1", "engines.nope", "no engine named"),
        ('[engines.port_scan]\nthreshold = "many"', "engines.port_scan.threshold", "whole number"),
        ("[engines.port_scan]\nthresh = 3", "engines.port_scan.thresh", "known: threshold"),
        ("[engines.port_scan]\nthreshold = 0", "engines.port_scan", "positive number"),
    ],
)
def test_each_problem_names_its_key_and_a_fix(tmp_path, text, key, needle):
    found = problems(tmp_path, text + "\n")
    assert len(found) == 1, found
    assert found[0].startswith(f"{key}: "), found[0]
    assert needle in found[0] and " — fix: " in found[0], found[0]


def test_all_problems_are_reported_at_once(tmp_path):
    text = '[sensor]\nid = "!"\n[log]\nformat = "xml"\n[pcap]\nsegment_size = "x"\n'
    found = problems(tmp_path, text)
    assert [p.split(":")[0] for p in found] == ["sensor.id", "pcap.segment_size", "log.format"]


def test_tls_pairs(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    [problem] = problems(tmp_path, f'[sync]\ncert_file = "{cert}"\n')
    assert problem.startswith("sync.key_file:") and "set key_file" in problem
    text = f'[sync]\nbroker = "mqtt://127.0.0.1:1883"\ncert_file = "{cert}"\nkey_file = "{cert}"\n'
    [problem] = problems(tmp_path, text)
    assert problem.startswith("sync.cert_file:") and "use mqtts://" in problem


def test_environment_overrides_file_and_is_named_in_problems(tmp_path):
    path = write(tmp_path, '[sensor]\nid = "from-file"\nsite = "north"\n')
    env = {
        "OTWATCH_SENSOR_ID": "from-env",
        "OTWATCH_DETECTION_OT_SUBNETS": "192.0.2.0/24, 198.51.100.0/24",
        "OTWATCH_ENGINES_DISABLED": "port_scan",
        "OTWATCH_CAPTURE_PROMISC": "false",
        "OTWATCH_DATA_DIR": "/elsewhere",  # a CLI option, not a section: ignored
        "OTWATCH_CONFIG": "/x",
        "HOME": "/root",
    }
    cfg = load_config(path, env)
    assert (cfg.sensor.id, cfg.sensor.site) == ("from-env", "north")
    assert cfg.detection.ot_subnets == ["192.0.2.0/24", "198.51.100.0/24"]
    assert "port_scan" not in [e.name for e in DetectionOptions.from_config(cfg).engines]
    assert cfg.capture.promisc is False
    assert cfg.source.endswith("+ environment")

    found = problems(tmp_path, "", {"OTWATCH_SYNC_BROKER": "mqtt:/x", "OTWATCH_SENSOR_IDD": "a"})
    assert found[0].startswith("OTWATCH_SYNC_BROKER (sync.broker): 'mqtt:/x'")
    assert found[1].startswith("OTWATCH_SENSOR_IDD: unknown setting sensor.idd")
    [secret] = problems(tmp_path, "", {"OTWATCH_SYNC_PASSWORD": "hunter2"})
    assert "hunter2" not in secret and "password_file" in secret


def test_engine_settings_reach_the_pipeline_as_overrides_only(tmp_path):
    cfg = load_config(write(tmp_path, "[engines.port_scan]\nthreshold = 40\nwindow_s = 60\n"), {})
    assert cfg.engines.settings == {"port_scan": {"threshold": 40, "window_s": 60}}
    from otwatch.agent.engines.scans import Config as ScanConfig

    assert ScanConfig(**cfg.engines.settings["port_scan"]).threshold == 40


def test_capture_ring_and_evidence_settings_convert(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            '[capture]\ninterfaces = ["eth1"]\nbpf = "tcp port 502"\n'
            '[pcap]\nring_budget = "10GiB"\nsegment_duration = "1m"\nevidence_before = 10\n'
            '[detection]\nlearning_period = "14d"\n',
        ),
        {},
    )
    capture = CaptureConfig.from_section(cfg.capture)
    assert capture.interfaces == ("eth1",) and capture.bpf == "tcp port 502"
    ring = RingConfig.from_section(cfg.pcap, tmp_path)
    assert ring.max_bytes == 10 << 30 and ring.segment_seconds == 60.0
    assert ring.directory.is_relative_to(tmp_path)
    assert EvidenceConfig.from_section(cfg.pcap, tmp_path).before_s == 10.0
    assert cfg.detection.learning_period_ns == 14 * 86400 * 10**9


def test_password_is_read_from_its_file_only(tmp_path):
    secret = tmp_path / "sync.password"
    secret.write_text("s3cret\nignored\n")
    secret.chmod(0o600)
    cfg = load_config(write(tmp_path, f'[sync]\npassword_file = "{secret}"\nusername = "s1"\n'), {})
    assert cfg.sync.read_password() == "s3cret"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.redacted())
    broker = BrokerConfig.from_section(cfg.sync)
    assert (broker.username, broker.password, broker.tls) == ("s1", "s3cret", True)
    secret.unlink()
    with pytest.raises(ConfigError, match="cannot read"):
        cfg.sync.read_password()


def test_redacted_masks_url_credentials():
    cfg = Config.model_validate({"central": {"db": "postgresql+psycopg://otwatch@db.example/ot"}})
    assert cfg.redacted()["central"]["db"] == "postgresql+psycopg://otwatch@db.example/ot"
    from otwatch.config import _redact

    assert _redact({"db": "postgresql://u:pw@h/d", "token": "abc"}) == {
        "db": "postgresql://u:***@h/d",
        "token": "***",
    }
