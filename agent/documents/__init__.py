"""Documents built from device output (scanned PDFs)."""
