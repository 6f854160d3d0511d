"""The web portal: server-rendered page shells (Jinja2) and hand-written ES modules that read
and change alerts through the same ``/api/v1`` the CLI uses (see ``routes``)."""

from otwatch.central.portal.routes import router

__all__ = ["router"]
