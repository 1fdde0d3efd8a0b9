"""Reading config values the same way in every module of this package (torch-free): rlinf-core's
helpers (``rlinf_core.config.access``), under the names this package's modules import from here."""

from __future__ import annotations

from rlinf_core.config.access import get, plain

__all__ = ["get", "plain"]
