"""``trustlab audit``: every applicable check on one model, one report opening with a trust scorecard."""

from __future__ import annotations

from pathlib import Path

import click

from trustlab.cli.options import (
    backend_options,
    batch_size_option,
    data_dir_option,
    data_format_options,
    model_options,
    new_run,
    open_data,
    open_model,
    out_option,
    summaries,
)

FAIL_ON = ("red", "amber", "never")


def echo_plan(ctx, planned) -> None:
    """Print the plan before anything runs: each step with its estimated time, or why it is skipped."""
    total = sum(p.seconds for p in planned)
    click.echo(
        f"audit plan: profile {ctx.profile.name}, {len(ctx.data):,} examples of {ctx.data.name}/{ctx.data.split}; "
        f"estimated {total:.0f} s"
    )
    for number, item in enumerate(planned, 1):
        when = f"skipped: {item.skip_reason}" if item.skip_reason else f"~{item.seconds:.0f} s"
        click.echo(f"  {number}. {item.step.name:<20} {item.step.description} ({when})")


def echo_step(item, status: str, remaining: float) -> None:
    """One line as each check starts and ends, with the estimated time left in the audit."""
    if status == "running":
        click.echo(f"- {item.step.name}: running (estimated {remaining:.0f} s left in the audit)")
    elif status != "skipped":
        click.echo(f"- {item.step.name}: {status}")


def run_and_report(run, ctx, planned, *, source: str, policy, title: str, fail_on: str) -> None:
    """Run the audit, print the scorecard and where everything is, and exit 1 when a gate fails
    at or beyond ``fail_on``."""
    from trustlab.audit.runner import JUNIT_FILE, SCORECARD_FILE, run_audit

    echo_plan(ctx, planned)
    outcome = run_audit(run, ctx, planned, source=source, policy=policy, title=title, on_step=echo_step)
    for line in summaries([r for r in run.results.values() if r.kind != "scorecard"]):
        click.echo(line)
    click.echo("trust scorecard:")
    for line in summaries([outcome.scorecard]):
        click.echo(f"  {line}")
    click.echo(f"scorecard: {run.path / SCORECARD_FILE} and {run.path / JUNIT_FILE}")
    click.echo(f"report written to {outcome.report}")
    failing = {"red": ("red",), "amber": ("red", "amber"), "never": ()}[fail_on]
    bad = [g for g in outcome.scorecard.gates if g.verdict in failing]
    if bad:
        click.echo(
            f"trustlab: {len(bad)} gate(s) at {' or '.join(failing)}: {', '.join(g.name for g in bad)}", err=True
        )
        click.get_current_context().exit(1)


@click.command()
@model_options
@click.option(
    "--data", "--dataset", "dataset", required=True,
    help="data set name (see `trustlab datasets`), an .npz file, a CSV file (with --label-column) or an image folder",
)  # fmt: skip
@data_format_options
@click.option("--split", default=None, help="split (default: the data set's default, e.g. test)")
@click.option(
    "--ood-data",
    "ood_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="your own out-of-distribution inputs: .npy, or .npz with array x (repeatable)",
)
@click.option(
    "--detector",
    "detector_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a detector you trained (e.g. a VAE saved with trustlab.ood.save_detector), added to the alarm (repeatable)",
)
@click.option(
    "--profile", type=click.Choice(["quick", "standard", "full"]), default="standard", show_default=True,
    help="depth: quick (~1 min for MNIST-sized data), standard (~10 min), full",
)  # fmt: skip
@click.option(
    "--eps", multiple=True, type=click.FloatRange(min=0, min_open=True),
    help="robust-accuracy budget, L-inf in input units (repeatable; default 0.05, 0.1, 0.2 of the input range)",
)  # fmt: skip
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), default=None, help="TOML thresholds")
@click.option(
    "--fail-on", type=click.Choice(FAIL_ON), default="never", show_default=True,
    help="exit 1 when a gate is at this verdict or worse (for CI)",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@batch_size_option
@out_option("runs/audit", "run directory (re-running the same command resumes)")
@data_dir_option
@backend_options
def audit(
    model, arch, allow_pickle, dataset, split, ood_files, detector_files, profile, eps, policy, fail_on, seed,
    batch_size, out, data_dir,
) -> None:  # fmt: skip
    """Audit a model on every axis that applies and write one report that opens with a trust scorecard."""
    from trustlab.audit.runner import prepare
    from trustlab.audit.scorecard import load_policy
    from trustlab.data.io import ood_sets_from_files

    load_policy(policy)  # a bad policy is reported before anything is loaded
    data = open_data(dataset, split, data_dir)
    classifier, source = open_model(model, arch, allow_pickle, data.input_shape, batch_size)
    ood = ood_sets_from_files(ood_files, classifier.input_shape)
    ctx, planned = prepare(
        classifier, data, profile=profile, eps=eps, ood_sets=ood, detector_files=detector_files, data_dir=data_dir,
        seed=seed,
    )  # fmt: skip
    run = new_run(out, seed=seed)
    run_and_report(run, ctx, planned, source=source, policy=policy, title="trustlab audit", fail_on=fail_on)


COMMANDS = (audit,)
