"""otwatch: an open-source OT/ICS network security sensor."""

__version__ = "0.1.0"
