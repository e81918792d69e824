"""The exit-code table is one table: README.md and `--help` say what driver/errors.py says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from driver import errors

REPO = Path(__file__).resolve().parents[2]
DRIVER = str(Path(sys.executable).parent / "driver")


def readme_table() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("### Exit codes") + len("### Exit codes")
    after = re.search(r"^#{1,3} ", text[start:], flags=re.M)  # the section ends at the next heading
    section = text[start : start + after.start()] if after else text[start:]
    rows = re.findall(r"^\| (\S+) \| (.+) \|$", section, flags=re.M)
    return [(code, meaning) for code, meaning in rows if code not in ("code", "---")]


def test_readme_table_is_the_exit_code_table():
    assert readme_table() == [(code, meaning.replace("|", "\\|")) for code, meaning in errors.EXIT_CODES]


def test_train_help_lists_every_code():
    out = subprocess.run([DRIVER, "train", "--help"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    for code, meaning in errors.EXIT_CODES:
        assert f"{code} {' '.join(meaning.split())}" in flat, code


def test_provision_help_lists_its_own_codes_only():
    out = subprocess.run([DRIVER, "provision", "--help"], capture_output=True, text=True, check=True).stdout
    assert "every host is ready" in out
    assert "the script's own exit code" not in out
    assert "--timeout reached" not in out


def test_every_error_class_has_a_documented_code():
    documented = {code for code, _ in errors.EXIT_CODES}
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.DriverError)]
    for cls in classes:
        if cls is not errors.Interrupted:
            assert str(cls.exit_code) in documented, cls.__name__
