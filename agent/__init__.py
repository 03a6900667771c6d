"""centre-agent: the device agent of centre-devices."""

__version__ = "0.1.0"
