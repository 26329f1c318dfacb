"""`python -m charter` runs the CLI."""

from charter.cli import entry

entry()
