"""The `int8lab` command line. User errors end with a one-line message and exit code 2."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: no C++ chatter

import typer  # noqa: E402

from int8lab.cli import lab, model  # noqa: E402
from int8lab.cli.data import data_app  # noqa: E402
from int8lab.errors import Int8labError  # noqa: E402

app = typer.Typer(
    name="int8lab",
    help="A trained vision model in, a correct int8 TFLite/LiteRT model out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
model.register(app)
lab.register(app)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
):
    if version:
        from int8lab import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    try:
        app()
    except Int8labError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
