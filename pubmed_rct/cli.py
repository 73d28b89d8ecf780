"""The command line, a table of subcommands: each wing declares its own (`COMMANDS`: help, arguments, what
runs) and the table below lists the wings; this module only builds the parser and turns expected failures into
one line and an exit code (2: bad input or a failure to say; 130: stopped).

  pubmed-rct predict | export-onnx   (inference)     pubmed-rct label           (literature)
  pubmed-rct promote                 (tracking)      pubmed-rct index | search  (search)
  pubmed-rct serve                   (serving)
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys

WINGS = ("inference", "tracking", "literature", "search", "serving")  # each pubmed_rct.<wing>.command.COMMANDS


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (what is wrong, where --help is) and exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def parser(prog: str = "pubmed-rct") -> tuple[Parser, dict]:
    """The parser with every wing's subcommands, and what runs each."""
    top = Parser(prog=prog, description="Label each sentence of medical abstracts with its role; label, index and "
                                        "search whole literatures (README.md).")
    sub = top.add_subparsers(dest="command", required=True)
    runs = {}
    for wing in WINGS:
        for name, (help_text, add_arguments, run) in importlib.import_module(
                f"pubmed_rct.{wing}.command").COMMANDS.items():
            add_arguments(sub.add_parser(name, help=help_text))
            runs[name] = run
    return top, runs


def main(argv: list[str] | None = None, prog: str = "pubmed-rct") -> int:
    top, runs = parser(prog)
    args = top.parse_args(argv)
    from .io import OutputError
    from .lifetime import Busy
    from .text.sentences import InputError
    from .tracking.registry import RegistryError
    from .tracking.store import TrackingError
    try:
        return runs[args.command](args)
    except (InputError, OutputError, FileNotFoundError, ValueError, RegistryError, TrackingError, Busy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped: what was written is kept; the same command goes on from there", file=sys.stderr)
        return 130
