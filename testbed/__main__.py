"""`python -m testbed` runs the CLI."""

from testbed.cli.main import main

main()
