"""``k8s-trace lab``: build flannel-style clusters in network namespaces, record them, tear them down."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click

from analyzer.errors import ExitStatus, InputError, LabError
from analyzer.lab.topology import LabParams

BACKENDS = ("vxlan", "host-gw")


def _scenario_names() -> list[str]:
    from analyzer.lab.scenarios import SCENARIOS

    return [sc.name for sc in SCENARIOS]


def _params_options(func):  # noqa: ANN001, ANN202 (click decorator)
    """The cluster knobs every scenario accepts; unset ones keep the scenario's own values."""
    options = [
        click.option("--nodes", type=click.IntRange(2, 9), help="Number of nodes (scenario default: 2)."),
        click.option("--pod-cidr", help="Cluster pod network, split in /24 per node (default 10.244.0.0/16)."),
        click.option("--service-cidr", help="Service ClusterIP range (default 10.96.0.0/12)."),
        click.option("--backend", type=click.Choice(BACKENDS), help="flannel backend (scenario default)."),
        click.option("--vxlan-port", type=click.IntRange(1, 65535), help="VXLAN UDP port (default 8472)."),
        click.option("--vni", type=click.IntRange(0, 16777215), help="VXLAN network identifier (default 1)."),
        click.option("--vxlan-mtu", type=click.IntRange(576, 9000), help="flannel.1 MTU (default 1450)."),
        click.option("--pod-mtu", type=click.IntRange(576, 9000), help="Pod eth0 / veth MTU (default 1450)."),
        click.option("--underlay-mtu", type=click.IntRange(576, 9000), help="Node eth0 MTU (default 1500)."),
        click.option("--tag", default="", help="Inserted in namespace names (k8sl-TAG-node1) to run labs side by side."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _overrides(kwargs: dict) -> dict:
    keys = ("nodes", "pod_cidr", "service_cidr", "backend", "vxlan_port", "vni", "vxlan_mtu", "pod_mtu",
            "underlay_mtu")
    return {k: kwargs[k] for k in keys if kwargs.get(k) is not None}


def _scenario_and_params(name: str, kwargs: dict):  # noqa: ANN202
    from analyzer.lab.scenarios import scenario

    try:
        sc = scenario(name)
    except KeyError:
        raise click.UsageError(
            f"unknown scenario {name!r}; `k8s-trace lab list` shows: {', '.join(_scenario_names())}"
        ) from None
    tag = kwargs.get("tag") or ""
    if tag and not all(c.isalnum() or c == "-" for c in tag):
        raise click.UsageError("--tag may hold letters, digits and '-' only")
    # the scenario's own parameters first, then what the user asked for on the command line
    from dataclasses import replace

    base = replace(sc.lab_params(LabParams()), tag=tag, **_overrides(kwargs))
    try:
        sc.check(base)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return sc, base


@click.group("lab")
def command() -> None:
    """Build, record and tear down flannel-style lab clusters in network namespaces (root, Linux).

    \b
    Every address lives only inside the lab's own namespaces (prefix k8sl-): nothing is connected
    to the host's namespace or routed to its network, and each namespace has its own resolv.conf.
    \b
      k8s-trace lab list
      sudo k8s-trace lab run cross-node --out rec/
      k8s-trace explain rec/node1 rec/node2
    """


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
def list_cmd(as_json: bool) -> None:
    """Describe the scenarios."""
    from analyzer.lab.scenarios import SCENARIOS

    if as_json:
        doc = [{"name": sc.name, "summary": sc.summary, "shows": sc.shows,
                "expect": [{"client": s.expect.client, "kind": s.expect.kind, "status": s.expect.status,
                            "finding": s.expect.finding} for s in sc.steps]} for sc in SCENARIOS]
        click.echo(json.dumps(doc, indent=2))
        return
    width = max(len(sc.name) for sc in SCENARIOS)
    for sc in SCENARIOS:
        outcomes = ", ".join(
            f"{s.expect.client}" + (f" ({s.expect.finding})" if s.expect.finding else "") for s in sc.steps
        )
        click.echo(f"{sc.name:<{width}}  {sc.summary}  [client: {outcomes}]")


@command.command("run")
@click.argument("scenario", metavar="SCENARIO")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for scenario.json and one bundle directory per node.")
@_params_options
@click.option("--sample", is_flag=True, help="Make it a shipped sample: drop empty captures, write README.md.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def run_cmd(scenario: str, out: Path, quiet: bool, sample: bool, **kwargs) -> int:
    """Build SCENARIO, run its traffic with captures on every interface, dump every node, tear down."""
    sc, params = _scenario_and_params(scenario, kwargs)
    if out.exists() and any(out.iterdir()):
        raise click.UsageError(f"{out} is not empty; give a new directory to --out")
    argv = ["k8s-trace", "lab", "run", *sys.argv[sys.argv.index("run") + 1:]] if "run" in sys.argv else None
    doc = _record(sc, params, out, shlex.join(argv) if argv else None, quiet, sample)
    return ExitStatus.OK if doc["matches_expected"] else ExitStatus.INCONCLUSIVE


def _load_recording(rec: Path) -> dict:
    """The ``scenario.json`` of a recording (a `lab run --out` directory or a sample)."""
    try:
        return json.loads((rec / "scenario.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(str(rec / "scenario.json"), f"not a lab recording: {exc}") from None


def _explain(rec: Path, doc: dict) -> dict:
    """The explain document of a recording's node bundles, with the recording's VXLAN port."""
    from analyzer.pipeline.explain import explain_inputs

    nodes = [str(rec / n["name"]) for n in doc["nodes"] if (rec / n["name"]).is_dir()]
    return explain_inputs(nodes, vxlan_ports={doc["params"]["vxlan_port"]}, warn=lambda _line: None)


def _check(out: Path, doc: dict) -> list[str]:
    """Run explain on a recording's node bundles and compare with its expectations."""
    from analyzer.lab.expect import compare

    return compare(doc, _explain(out, doc))


def _record(sc, params: LabParams, out: Path, command: str | None, quiet: bool, sample: bool) -> dict:  # noqa: ANN001
    from analyzer.lab.run import run_scenario
    from analyzer.lab.samples import make_sample

    progress = None if quiet else (lambda msg: click.echo(f"lab: {msg}", err=True))
    doc = run_scenario(sc, params, out, command=command, progress=progress)
    if sample:
        if progress:
            progress("checking the recording with explain")
        problems = _check(out, doc)
        for line in problems:
            click.echo(f"k8s-trace: explain disagrees: {line}", err=True)
        doc = make_sample(out, doc, problems)
    for step in doc["steps"]:
        mark = "as expected" if step["matches_expected"] else f"EXPECTED {step['expected']['client']}"
        extra = ""
        if step.get("served_by"):
            extra = " served by " + ", ".join(f"{k} x{v}" for k, v in sorted(step["served_by"].items(), key=str))
        click.echo(f"{step['client']} -> {step['address']} ({step['op']}): {step['outcome']}{extra} [{mark}]")
    click.echo(f"recorded {len(doc['captures'])} captures and {len(doc['dumps'])} node dumps in {out} "
               f"({doc['duration_s']} s)")
    return doc


@command.command("check")
@click.argument("recordings", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
def check_cmd(recordings: tuple[Path, ...]) -> int:
    """Explain each recording (a `lab run --out` directory) and compare with its scenario.json."""
    failed = 0
    for rec in recordings:
        doc = _load_recording(rec)
        problems = _check(rec, doc)
        click.echo(f"{rec}: {doc['scenario']}: " + ("explain agrees" if not problems else "DISAGREES"))
        for line in problems:
            click.echo(f"  {line}")
        failed += bool(problems)
    return ExitStatus.INCONCLUSIVE if failed else ExitStatus.OK


@command.command("reports")
@click.option("--samples", "samples_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("samples"), show_default=True, help="Where the recorded samples are.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="Directory for one <sample>.html per sample.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True, help="Report language.")
def reports_cmd(samples_dir: Path, out: Path, lang: str) -> None:
    """Write the HTML explain report of every sample (no root needed: it only reads the recordings)."""
    from analyzer.report.html import render_html

    docs = sorted(samples_dir.glob("*/scenario.json"))
    if not docs:
        raise InputError(str(samples_dir), "no lab sample here (no */scenario.json)")
    out.mkdir(parents=True, exist_ok=True)
    for doc_path in docs:
        doc = _load_recording(doc_path.parent)
        explained = _explain(doc_path.parent, doc)
        target = out / f"{doc['scenario']}.html"
        target.write_text(render_html(explained, lang=lang), encoding="utf-8")
        n = len(explained["flows"])
        click.echo(f"{target}: {n} flow{'' if n == 1 else 's'}")


@command.command("samples")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("samples"),
              show_default=True, help="The samples directory (each scenario's directory is replaced).")
@click.argument("names", nargs=-1, metavar="[SCENARIO]...")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def samples_cmd(out: Path, names: tuple[str, ...], quiet: bool) -> int:
    """Record every scenario (or the ones named) as a sample under --out and rewrite its README.md index."""
    import shutil

    from analyzer.lab.samples import write_index

    chosen = list(names) or _scenario_names()
    resolved = [_scenario_and_params(name, {}) for name in chosen]  # usage errors before anything runs
    out.mkdir(parents=True, exist_ok=True)
    differ = []
    for sc, params in resolved:
        target = out / sc.name
        if target.exists():
            if not (target / "scenario.json").is_file():
                raise LabError(f"{target} exists and is not a lab sample (no scenario.json); not replacing it")
            shutil.rmtree(target)
        command = shlex.join(["k8s-trace", "lab", "run", sc.name, "--out", str(target), "--sample"])
        doc = _record(sc, params, target, command, quiet, True)
        if not doc["matches_expected"] or doc["sample"].get("explain_check") != "agrees with every expectation":
            differ.append(sc.name)
    click.echo(f"index: {write_index(out)}")
    if differ:
        click.echo(f"k8s-trace: traffic or explain differs from the expectation in: {', '.join(differ)}", err=True)
        return ExitStatus.INCONCLUSIVE
    return ExitStatus.OK


@command.command("up")
@click.argument("scenario", metavar="SCENARIO")
@_params_options
def up_cmd(scenario: str, **kwargs) -> None:
    """Build SCENARIO and leave it running (servers started; no clients, no captures)."""
    from analyzer.lab.state import lab_up

    sc, params = _scenario_and_params(scenario, kwargs)
    state = lab_up(sc, params)
    click.echo(f"lab {scenario!r} is up ({len(state['namespaces'])} namespaces); state in {state['path']}")
    for name, ns in state["objects"].items():
        click.echo(f"  {name:<10} {ns}")
    click.echo("explore with `k8s-trace lab exec NAME -- CMD`, remove with `k8s-trace lab down`")


@command.command("down")
@click.option("--tag", default="", help="The --tag the lab was started with.")
@click.option("--force", is_flag=True,
              help="Also remove lab namespaces (k8sl-..., with the lab's resolv.conf) no state file knows.")
def down_cmd(tag: str, force: bool) -> None:
    """Tear down the lab `lab up` left running: its processes, namespaces and /etc/netns entries."""
    from analyzer.lab.state import lab_down

    removed, problems = lab_down(tag, force=force)
    click.echo(f"removed {len(removed)} namespaces" + (f": {', '.join(removed)}" if removed else ""))
    if problems:
        raise LabError("teardown left something behind: " + "; ".join(problems))


@command.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--tag", default="", help="The --tag the lab was started with.")
@click.argument("name", metavar="NAME")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(tag: str, name: str, cmd: tuple[str, ...]) -> int:
    """Run CMD in the namespace of lab object NAME (a pod, node1, external, router, switch)."""
    from analyzer.lab.netns import ns_argv
    from analyzer.lab.state import namespace_for

    if os.geteuid() != 0:
        raise LabError("entering a lab namespace needs root")
    ns, env, hostname = namespace_for(tag, name)
    # in a private UTS namespace named after the object, so `hostname` (and `collect`) say node1
    argv = ns_argv(ns, list(cmd), hostname)
    try:
        done = subprocess.run(argv, env={**os.environ, **env}, check=False)
    except OSError as exc:
        raise LabError(f"cannot run ip netns exec: {exc}") from None
    return done.returncode
