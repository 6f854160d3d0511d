"""The one exception root: every error a user may see derives from it.

The message of an ``OtwatchError`` is a single line written for the operator; the CLI prints it
as ``error: <message>`` and exits non-zero, never with a traceback.
"""

__all__ = ["OtwatchError"]


class OtwatchError(Exception):
    """A problem the operator can act on; ``str()`` is one line that says what and where."""
