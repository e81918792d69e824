"""escapes.py: terminal control sequences a hostile host may print (issue 28), between plain words."""

import sys

OSC52 = b"\x1b]52;c;ZWNobyBwd25lZA==\x07"  # write "echo pwned" to the clipboard
TITLE = b"\x1b]0;owned\x1b\\"  # set the window's title (ST-terminated)
QUERY = b"\x1b[6n"  # ask for the cursor's position: the terminal types its answer into the shell
C1_OSC = "\u009d52;c;ZWNobyBwd25lZA==\u009c".encode()  # the same as an 8-bit OSC
COLOR = b"\x1b[31mred\x1b[0m"  # allowed: colors
BAR = b"\r50%\x1b[K\r100%\n"  # allowed: a progress bar's redraw and erase-in-line

if __name__ == "__main__":  # the tests import the sequences
    sys.stdout.buffer.write(b"before " + OSC52 + b" " + TITLE + b" " + QUERY + b" " + C1_OSC + b" after\n")
    sys.stdout.buffer.write(COLOR + b"\n" + BAR)
    sys.stdout.buffer.flush()
