"""The moving parts of ``otwatch demo``: a private Mosquitto and the daemons as processes."""
