"""Orchestration: inputs -> engines for one command (flows, explain). No printing, no exit codes."""
