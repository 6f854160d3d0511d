"""central store: alerts from every sensor, audit, commands, sensors registry."""
