"""Fixtures shared by the unit tests.

``device`` is the one list of devices the tests run on: the CPU always, CUDA and Apple MPS
when present (skipped with the reason otherwise). A test that takes a ``device`` argument
runs once per device and gets the device name as a string (``"cpu"``, ``"cuda"``, ``"mps"``).
"""

from __future__ import annotations

import pytest
import torch


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available"),
    ),
    pytest.param(
        "mps",
        id="mps",
        marks=pytest.mark.skipif(not _mps_available(), reason="Apple MPS is not available"),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Each available device in turn, as a string (the one device list of the test suite)."""
    return request.param
