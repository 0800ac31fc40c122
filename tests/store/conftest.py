"""Fixtures for the store's tests."""

from __future__ import annotations

import pytest

from lib.store import lake as lake_module


@pytest.fixture
def small_checkpoints(monkeypatch):
    """Manifest checkpoints every 4 commits, loaded once 2 commits are not in a lake's cache."""
    monkeypatch.setattr(lake_module, "CHECKPOINT_EVERY", 4)
    monkeypatch.setattr(lake_module, "CHECKPOINT_LOAD_MIN", 2)
