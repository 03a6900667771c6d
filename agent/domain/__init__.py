"""Domain types shared by drivers, the core and the API edge: frozen, slotted dataclasses.

Protobuf never appears here; :mod:`agent.api.convert` maps these to and from the wire.
"""
