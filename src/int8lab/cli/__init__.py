"""The `int8lab` command line. User errors end with a one-line message and exit code 2."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings

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


@contextlib.contextmanager
def library_chatter_aside():
    """Keep the libraries' log lines off the terminal; show the native ones only if the run crashes.

    TensorFlow's absl logging (before absl is initialised, so no setting silences it) and the
    converter's calibration write straight to file descriptor 2: a dozen lines a command, dozens
    in a sweep. They go to a temporary file here, while Python's own stderr (progress, error
    messages) stays on the terminal. Deprecation notices and info logs that torch and its helpers
    address to their own developers are dropped. INT8LAB_LIBRARY_LOGS=1 lets everything through.
    """
    if os.environ.get("INT8LAB_LIBRARY_LOGS") == "1":
        yield
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("TORCH_LOGS", "-all")  # torch sets its loggers' levels from this on import
    for name in ("torchao", "litert_torch", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stderr.flush()
    terminal = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        python_stderr, sys.stderr = sys.stderr, os.fdopen(os.dup(terminal), "w", buffering=1)
        try:
            yield
        except (Int8labError, SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(terminal, 2)
            os.close(terminal)


def main() -> None:
    try:
        with library_chatter_aside():
            app()
    except Int8labError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
