"""The command line: click commands that parse options, call one library function and print its result.

One module per command (train, provision, jobs, status, wait, logs, cancel, clean, submit, cluster, cache,
config_show, completion); group.py is the `driver` group that holds them, app.py the one wrapper of every
command (logging, errors mapped to exit codes), options.py the options several commands share, render.py
how a job's end is shown.
"""

from driver.cli.group import main

__all__ = ["main"]
