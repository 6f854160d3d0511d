"""``python -m otwatch.cli`` runs the ``otwatch`` command."""

from otwatch.cli.main import main

main()
