"""Chip ID-card readers: the PC/SC layer and the ICAO 9303 (eMRTD / CCCD) protocol and data layer."""
