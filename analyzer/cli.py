"""The ``k8s-trace`` command line: the single error boundary of the program.

Each sub-command lives in ``analyzer/commands/<name>.py`` as a click command named ``command``
and is imported only when used, so ``k8s-trace decode`` does not pay for jinja2 or networkx.
Sub-commands raise ``TraceError`` for user errors; ``main`` turns them into one line on stderr
and the matching exit status. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import importlib
import sys

import click

from analyzer import __version__
from analyzer.errors import ExitStatus, TraceError

#: sub-command name -> (module, one-line help). Order is the order of ``--help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "explain": ("analyzer.commands.explain", "Explain each flow's path, hop by hop, with findings."),
    "decode": ("analyzer.commands.decode", "Print every frame with its outer and inner layers."),
    "flows": ("analyzer.commands.flows", "Conversation table of inner flows (through tunnels)."),
    "simulate": ("analyzer.commands.simulate", "Walk one packet through node dumps offline."),
    "collect": ("analyzer.commands.collect", "Print a shell script that collects a node bundle."),
    "lab": ("analyzer.commands.lab", "Build, record and tear down flannel-style lab clusters."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="k8s-trace")
@click.option("--traceback", is_flag=True, help="Show the Python traceback of an error (for bug reports).")
@click.pass_context
def cli(ctx: click.Context, traceback: bool) -> None:
    """Explain Kubernetes packet paths from captures and node dumps.

    \b
    Typical use:
      k8s-trace explain capture.pcap
      k8s-trace explain node1/ node2/ -o report.html
      k8s-trace simulate node1/ --src 10.244.0.5 --dst 10.96.0.10:53 --proto udp
    """
    ctx.obj = {"traceback": traceback}


def _wants_traceback(argv: list[str]) -> bool:
    return "--traceback" in argv


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; never lets a traceback reach the user by default."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = cli.main(args=args, prog_name="k8s-trace", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("k8s-trace: interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("k8s-trace: interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # `k8s-trace decode big.pcap | head`: stop quietly
        sys.stderr.close()
        sys.exit(ExitStatus.OK)
    except TraceError as exc:
        if _wants_traceback(args):
            raise
        click.echo(f"k8s-trace: error: {exc}", err=True)
        sys.exit(exc.exit_status)
    except Exception as exc:  # the single boundary: anything else is a bug
        if _wants_traceback(args):
            raise
        click.echo(
            f"k8s-trace: internal error: {type(exc).__name__}: {exc} (rerun with --traceback and report it)",
            err=True,
        )
        sys.exit(ExitStatus.INTERNAL)
    sys.exit(status if isinstance(status, int) else ExitStatus.OK)
