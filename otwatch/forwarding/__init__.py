"""Alert forwarding to SIEMs: rules, formats (RFC 5424 text, CEF, LEEF, ECS JSON), targets
(syslog UDP/TCP/TLS, JSON-lines file, webhook) and the delivery worker.

One implementation serves a standalone sensor and central: the worker reads committed alert
changes from either store by a durable per-target cursor (``source``), so detection and
ingest do nothing extra. See ``docs/forwarding.md``.
"""
