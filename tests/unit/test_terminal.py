"""What a host's text may do to a terminal (driver/cli/terminal.py, issue 28)."""

from __future__ import annotations

import io

from driver.cli.terminal import for_terminal, neutralise


def test_drawing_passes_and_commands_are_shown():
    assert neutralise("\r 50%|#####     |\x1b[K\t\b\a") == "\r 50%|#####     |\x1b[K\t\b\a"
    assert neutralise("\x1b[1;31mred\x1b[0m \x1b[2A\x1b[G") == "\x1b[1;31mred\x1b[0m \x1b[2A\x1b[G"
    assert neutralise("\x1b]52;c;cHduZWQ=\x07") == "^[]52;c;cHduZWQ=\x07"  # OSC 52: the clipboard
    assert neutralise("\x1b]8;;http://evil\x1b\\x") == "^[]8;;http://evil^[\\x"  # a hyperlink
    assert neutralise("\x1b[6n\x1b[c\x1b[?1049h\x1bc\x1bP1$r\x1b\\") == "^[[6n^[[c^[[?1049h^[c^[P1$r^[\\"
    assert neutralise("\u009b6n\u009d0;t\u009c") == "^[[6n^[]0;t^[\\"  # 8-bit C1 controls
    assert neutralise("\udc9b6n \udce9") == "^[[6n \udce9"  # a raw 0x9b byte; other bytes pass
    assert neutralise("\x0e\x00\x7f") == "^N^@^?"
    # An allowed sequence cut short, or with too many parameters, is not one.
    assert neutralise("\x1b[31") == "^[[31"
    assert neutralise("\x1b[" + "1;" * 40 + "m").startswith("^[[")


def test_only_a_terminal_gets_them_neutralised():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert for_terminal("\x1b]52;c;x\x07", io.StringIO()) == "\x1b]52;c;x\x07"
    assert for_terminal("\x1b]52;c;x\x07", Tty()) == "^[]52;c;x\x07"
