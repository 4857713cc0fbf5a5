"""Firmware emission: C sources, arena header, op resolver, templates."""
