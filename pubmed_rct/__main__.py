"""`python -m pubmed_rct ...`: the same commands as `pubmed-rct ...` (cli.py)."""
import sys

from .cli import main

sys.exit(main(prog="python -m pubmed_rct"))
