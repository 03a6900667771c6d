"""Fingerprint sensors: libfprint (PyGObject), ZFM UART modules (pyserial), vendor SDKs (ctypes)."""
