"""Shared test configuration: every async test runs on asyncio and on asyncio+uvloop.

Warnings are errors and each test has a timeout (both set in pyproject.toml).
"""

from __future__ import annotations

import sys

import pytest

_BACKENDS = [pytest.param(("asyncio", {}), id="asyncio")]
if sys.platform != "win32":
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return request.param  # type: ignore[no-any-return]
