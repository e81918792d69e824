"""`driver completion SHELL`: print click's completion script (the completers are driver/cli/complete.py)."""

from __future__ import annotations

import click

from driver.cli.app import command, write_line
from driver.errors import EXIT_OK, EXIT_USAGE


@command(name="completion", codes=((EXIT_OK, "the script was printed"), EXIT_USAGE))
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> int:
    """Print the completion script for SHELL (click's): job ids, inventory hosts, options.

    \b
    bash:  eval "$(driver completion bash)"     (e.g. in ~/.bashrc)
    zsh:   eval "$(driver completion zsh)"      (e.g. in ~/.zshrc)
    fish:  driver completion fish > ~/.config/fish/completions/driver.fish
    """
    from click.shell_completion import get_completion_class

    from driver.cli.group import main

    cls = get_completion_class(shell)
    assert cls is not None
    write_line(cls(main, {}, "driver", "_DRIVER_COMPLETE").source())
    return EXIT_OK
