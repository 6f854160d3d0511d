"""IOC list files: formats, matching, and errors naming file and line."""

from __future__ import annotations

import pytest

from otwatch.agent.rules.ioc import IocError, load_iocs


def test_files_and_matching(tmp_path):
    (tmp_path / "ip").write_text("# comment\n203.0.113.5\n198.51.100.0/24 # range\n2001:db8::1\n")
    (tmp_path / "dom").write_text("Evil.Example.\n*.c2.example\n")
    (tmp_path / "url").write_text("/a/b.php\nhttps://x.example/c/*\n/q?x=1\n")
    iocs = load_iocs([tmp_path / "ip"], [tmp_path / "dom"], [tmp_path / "url"])
    assert iocs.ip_matches("203.0.113.5") and iocs.ip_matches("198.51.100.77")
    assert iocs.ip_matches("2001:db8::1") and not iocs.ip_matches("192.0.2.1")
    assert iocs.domain_matches("evil.example") and iocs.domain_matches("a.b.c2.example")
    assert not iocs.domain_matches("c2.example") and not iocs.domain_matches("x.evil.example")
    assert iocs.path_matches("/a/b.php") and iocs.path_matches("/c/d/e") and iocs.path_matches("/q")
    assert not iocs.path_matches("/a/b.php5") and not iocs.path_matches("/cc")


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("ip_files", "203.0.113.1\n300.1.1.1\n", r"line 2: '300\.1\.1\.1' is not an IP"),
        ("domain_files", "ok.example\nbad domain\n", r"line 2: 'bad domain' is not a domain"),
        ("url_files", "/ok\nftp://x/y\n", r"line 2: 'ftp://x/y' is not a URL path"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, kind, text, message):
    path = tmp_path / "list.txt"
    path.write_text(text)
    with pytest.raises(IocError, match=rf"IOC file .*list\.txt {message}"):
        load_iocs(**{kind: [path]})


def test_unreadable_file(tmp_path):
    with pytest.raises(IocError, match="cannot read it"):
        load_iocs(ip_files=[tmp_path / "missing.txt"])
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(IocError, match="not UTF-8"):
        load_iocs(ip_files=[tmp_path / "bin"])
