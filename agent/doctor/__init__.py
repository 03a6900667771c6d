"""``centre-agent doctor``: the installer's acceptance check of a counter PC."""
