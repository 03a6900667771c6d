"""Provisioning of a counter PC: enrolment with the gateway, its identity files, discovery."""
