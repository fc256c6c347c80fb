"""Command line: ``python -m condspace COMMAND [options]`` (also installed as ``condspace``).

Run ``python -m condspace --help`` for the list of commands and ``python -m condspace COMMAND
--help`` for the options of one.

Adding a command (e.g. ``dics``, ``population``, ``infer``, ``reachability``) is one line here:

1. In your own module, build a :class:`condspace.cli.Command`::

       from condspace.cli import Command

       def _add_arguments(parser):          # argparse.ArgumentParser of your subcommand
           parser.add_argument("--cell", default="stg", help="cell type (default: %(default)s)")

       def _run(args) -> int:               # argparse.Namespace; return the exit code (0 = success)
           ...

       CLI = Command(_add_arguments, _run, description="What the command does, in a paragraph.")

2. Register it in :data:`COMMANDS` below: ``"dics": ("condspace.dics:CLI", "one-line summary")``.

The module is imported only when its command runs (or shows its ``--help``), so a slow import
(torch for ``infer``) never slows other commands down, and a broken one cannot break them.
``run`` signals bad input by raising ``ValueError``/``KeyError``/``OSError`` (or
:class:`condspace.cli.CLIError`) with a clear message: :func:`main` prints it on stderr and exits
with status 2, without a traceback (``--debug`` shows it). A request that cannot fit in memory
is refused the same way (``MemoryError`` included).

Ctrl-C ends every command with one line on stderr (what was interrupted, which finished files
were kept) and exit status 130. A command that writes files as it goes appends each finished
file to ``args._kept`` (a list set by :func:`main`), so that this line can name them. A command
that processes several recordings returns 1 when any of them failed, and names them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: command name → ("module:attribute" of its :class:`condspace.cli.Command`, one-line summary).
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("condspace.cli:SIMULATE", "simulate neurons from a conductance table; write spike times + features"),
    "features": ("condspace.cli:FEATURES", "classify recorded spike trains and compute their features"),
    "dics": ("condspace.cli_dics:DICS", "threshold voltage and dynamic input conductances of a conductance table"),
    "population": ("condspace.cli_dics:POPULATION", "degenerate population at a DIC target (g_s, g_u)"),
    "infer": ("condspace.cli_infer:CLI", "infer conductance posteriors from recorded spike times (NPE)"),
    "reachability": ("condspace.cli_reachability:CLI",
                     "reachable fraction and cost of every channel pair along a (g_s, g_u) path"),
    "identify": ("condspace.cli_identify:CLI",
                 "rank the channel subsets a neuromodulator targeted, from spike times before and after"),
}

PROG = "python -m condspace"


def _load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; only the command named in ``argv`` gets its options (lazy imports).

    Args:
        argv: The command-line arguments (without the program name). Pass ``[name]`` to get a
            parser whose ``name`` subcommand is fully populated.
    """
    from condspace import __version__  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Degenerate conductance-based neuron populations from the command line.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"condspace {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (target, summary) in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=summary)
            continue
        command = _load(target)
        cmd_parser = sub.add_parser(name, help=summary, description=command.description or summary,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(cmd_parser)
        cmd_parser.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit status.

    Returns:
        0 on success, 2 on bad usage or bad input (message on stderr), 130 when interrupted by
        Ctrl-C (one line on stderr), or what the command returns (1: some recordings failed).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    args = None
    try:
        parser = build_parser(argv)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version or a usage error already printed by argparse
            return int(exc.code or 0) if not isinstance(exc.code, str) else 2
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        args._kept = []
        return _run(args)
    except KeyboardInterrupt:
        kept = getattr(args, "_kept", [])
        what = "nothing was written" if not kept else \
            f"kept {len(kept)} finished file(s): {', '.join(map(str, kept[:5]))}{' ...' if len(kept) > 5 else ''}"
        print(f"{PROG} {command}: interrupted (Ctrl-C); {what}", file=sys.stderr)
        return 130


def _run(args) -> int:
    """Run the parsed command; user errors become one line on stderr and status 2."""
    from condspace.cli import CLIError  # noqa: PLC0415

    try:
        return int(args._run(args) or 0)
    except (CLIError, ValueError, KeyError, OSError, MemoryError) as err:
        if args.debug:
            raise
        if isinstance(err, MemoryError):
            message = "out of memory; ask for less (fewer neurons, points or a coarser grid)"
        else:
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
