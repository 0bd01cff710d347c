"""Frozen dataclasses shared by inputs, engines and reports. Standard library only; no I/O."""
