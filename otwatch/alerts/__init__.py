"""The alert domain shared by the sensor, sync and central: what an alert type is
(``catalog``), how an alert may change (``lifecycle``), the alert columns both stores map
(``columns``) and how alerts are filtered and shown (``views``).

Pure of I/O apart from SQLAlchemy expressions; it imports nothing from ``otwatch.agent``,
``otwatch.sync`` or ``otwatch.central``, which all import it.
"""
