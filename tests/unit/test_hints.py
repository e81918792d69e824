"""Every error the driver prints has its `hint:` line (README: "one `error:` line ... and a `hint:` line")."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from driver import errors
from driver.cli.app import FALLBACK_HINT, finish

DRIVER = Path(errors.__file__).resolve().parent
ERROR_CLASSES = {
    name
    for name, value in vars(errors).items()
    if inspect.isclass(value) and issubclass(value, errors.DriverError)
}


def hintless_sites() -> set[tuple[str, str, int]]:
    found = set()
    for path in sorted(DRIVER.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id not in ERROR_CLASSES:
                continue
            hint = next((k.value for k in node.keywords if k.arg == "hint"), None)
            at = 2 if node.func.id == "Interrupted" else 1  # Interrupted(signal, message, hint)
            if hint is None and len(node.args) > at:
                hint = node.args[at]
            if hint is None or (isinstance(hint, ast.Constant) and not hint.value):
                found.add((str(path.relative_to(DRIVER.parent)), node.func.id, node.lineno))
    return found


def test_every_error_raised_has_a_hint():
    missing = sorted(hintless_sites())
    assert not missing, f"errors raised without a hint: {missing}"


def test_every_failure_kind_has_a_hint():
    assert all(hint for _, hint in errors.FAILURE_KINDS.values())


def test_an_error_without_a_hint_still_gets_the_hint_line(capsys):
    def fails() -> int:
        raise errors.DriverError("something broke", exit_code=errors.EXIT_DRIVER_FAILURE)

    with pytest.raises(SystemExit) as exited:
        finish(False, fails)
    assert exited.value.code == errors.EXIT_DRIVER_FAILURE
    assert capsys.readouterr().err.splitlines() == ["error: something broke", f"hint: {FALLBACK_HINT}"]
