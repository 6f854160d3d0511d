"""Forwarding targets: settings and errors (``base``), one module per kind (``syslog``,
``file``, ``webhook``) and ``factory.build_target``."""
