"""Registries cannot rot silently: every format and every command is documented for users."""

from __future__ import annotations

import pytest

from lib.commands import COMMANDS
from lib.ingest import formats
from tests.conftest import PROJECT_DIR

README = (PROJECT_DIR / "README.md").read_text()


@pytest.mark.parametrize("fmt", formats.registered(), ids=lambda f: f.name)
def test_every_format_has_a_doc_line_and_is_in_the_readme(fmt):
    assert fmt.doc.strip(), f"format {fmt.name} has no doc line"
    assert f"`{fmt.name}`" in README, f"README's format table does not list {fmt.name}"


def test_format_names_are_unique():
    names = [f.name for f in formats.registered()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.NAME)
def test_every_command_is_in_the_readme(command):
    assert command.HELP.strip()
    assert f"`{command.NAME}" in README, f"README's command table does not list {command.NAME}"
