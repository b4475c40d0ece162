"""Request dependencies every router shares: the caller's hub and the app's index.

    HubDep = Annotated[Hub, Depends(hub_for)]      # in a route's signature

They live here, not in ``app.py``, so the routers ``app.py`` includes do not
import ``app.py`` back.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ..hub import Hub
from ..index import HubIndex, default_index_path

__all__ = ["close_index", "hub_for", "index_for"]

_INDEX_KEY = "creative_hub_index"


async def hub_for(request: Request) -> Hub:
    """The hub as the caller may use it (set by the Guard middleware)."""
    hub: Hub = request.state.hub
    return hub


def index_for(app: Any, hub: Hub) -> HubIndex:
    """The app's index (made on first use, beside ``hub``'s log): search, storylines and MCP share it."""
    ix: HubIndex | None = getattr(app.state, _INDEX_KEY, None)
    if ix is None:
        ix = HubIndex(default_index_path(str(hub.url)))
        setattr(app.state, _INDEX_KEY, ix)
    return ix


def close_index(app: Any) -> None:
    """Close the app's index, if it was opened (when the app stops)."""
    ix: HubIndex | None = getattr(app.state, _INDEX_KEY, None)
    if ix is not None:
        ix.close()
        setattr(app.state, _INDEX_KEY, None)
