"""Document scanners: SANE (USB) and eSCL (network) backends behind one Scanner interface."""
