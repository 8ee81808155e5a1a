"""Fixtures for the Kafka I/O tests (real embedded Tansu broker)."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

# Make the in-tree package importable when anomalyd is not pip-installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from anomalyd.broker.embedded import EmbeddedBroker  # noqa: E402


@pytest.fixture(scope="session")
def broker():
    """One in-memory Tansu broker on a free port for the whole test session."""
    b = EmbeddedBroker(port=0)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def topic_name(request):
    """A topic name unique to the test (the session broker is shared)."""

    def make(suffix: str = "") -> str:
        base = request.node.name.replace("[", "-").replace("]", "")
        return f"t-{base}{suffix}-{uuid.uuid4().hex[:8]}"

    return make
