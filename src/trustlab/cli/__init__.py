"""The ``trustlab`` command: one thin module per command group, shared options in ``options``.

User mistakes (TrustlabError, bad options) print one line on stderr and exit with code 2;
Ctrl-C exits with 130 and leaves completed results and checkpoints in place for a resume.
The work itself lives in the capabilities' ``checks`` modules, importable without click.
"""

from __future__ import annotations

import sys

import click

from trustlab._version import __version__
from trustlab.cli import alarm, audit, backdoor, explain, fairness, models, robustness, serve, shift, study
from trustlab.core.allocator import tune_allocator
from trustlab.core.exceptions import TrustlabError
from trustlab.core.progress import set_quiet

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trustlab")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def cli(quiet: bool) -> None:
    """Audit a trained classifier and report how far to trust it."""
    set_quiet(quiet)


for _module in (audit, models, robustness, alarm, explain, backdoor, fairness, shift, study, serve):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    tune_allocator()
    try:
        code = cli.main(args=argv, prog_name="trustlab", standalone_mode=False)
    except TrustlabError as exc:
        click.echo(f"trustlab: error: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"trustlab: error: {exc.format_message()} (see --help)", err=True)
        sys.exit(EXIT_USER_ERROR)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("trustlab: interrupted; completed results are kept, re-run the same command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
