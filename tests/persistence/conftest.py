"""The persistence tests run against every store: see `_stores.store`."""

from __future__ import annotations

from _stores import store as store
