"""The sync protocol: the one contract the sensor's sync daemon and central both import.

Pure code only: topic layout (``topics``), message schemas and limits (``messages``), the
per-field merge rule (``merge``) and the sequence/ack state machines (``streams``).
See ``docs/protocol.md``.
"""
