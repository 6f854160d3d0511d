"""Every lazily loaded command group imports and answers --help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from otwatch.cli.main import SUBCOMMANDS, cli


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_loads_and_shows_help(name):
    result = CliRunner().invoke(cli, [name, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_root_help_lists_every_command():
    output = CliRunner().invoke(cli, ["--help"]).output
    for name in SUBCOMMANDS:
        assert name in output
