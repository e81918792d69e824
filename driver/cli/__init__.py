"""The command line: click commands that parse options, call one library function and print its result."""

from driver.cli.commands import main

__all__ = ["main"]
