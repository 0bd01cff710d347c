"""Option checks shared by several sub-commands."""

from __future__ import annotations

import click


def udp_ports(_ctx: click.Context, _param: click.Parameter, values: tuple[int, ...]) -> tuple[int, ...]:
    """click callback for repeated port options (``--vxlan-port N ...``): each must be 1-65535."""
    for value in values:
        if not 0 < value < 65536:
            raise click.BadParameter(f"{value} is not a UDP port (1-65535)")
    return values
