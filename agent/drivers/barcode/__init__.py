"""Barcode / QR scanners: HID keyboard-wedge devices (evdev) and serial scanners (pyserial)."""
