"""Fixtures shared by the root integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.labs import RootSnapshot


@pytest.fixture
def root_before() -> RootSnapshot:
    """The root namespace before the test: a lab must leave it exactly so."""
    return RootSnapshot.take()


@pytest.fixture(scope="module")
def root_unchanged() -> Iterator[None]:
    """Set up before a module's labs, torn down after them: the root netns must be as before."""
    before = RootSnapshot.take()
    yield
    assert RootSnapshot.take() == before, "the root namespace changed"
