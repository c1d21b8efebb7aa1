"""Fixtures shared by the root integration tests."""

from __future__ import annotations

import pytest

from tests.integration.labs import RootSnapshot


@pytest.fixture
def root_before() -> RootSnapshot:
    """The root namespace before the test: a lab must leave it exactly so."""
    return RootSnapshot.take()
