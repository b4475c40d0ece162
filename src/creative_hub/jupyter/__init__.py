"""Jupyter as a client of the hub: ``%load_ext creative_hub.jupyter`` and the ``%hub`` magics.

    %load_ext creative_hub.jupyter
    %hub connect http://127.0.0.1:8080        # token from $CREATIVE_HUB_TOKEN or --token
    %%hub publish creative.feedback.comment
    on: 0b7c...
    text: lovely opening

The magics talk to the hub's HTTP API (``client.py`` says why); results are
rich displays (``display.py``): plain MIME bundles that JupyterLab, the
classic notebook and nbconvert render with no front-end extension.  Needs the
``jupyter`` extra (IPython; PyYAML for YAML cell bodies).
"""

from __future__ import annotations

from typing import Any

from .client import HubClient, HubHTTPError
from .display import EventTable, EventView, LineageView, OutlineView, ReceiptView

__all__ = [
    "EventTable",
    "EventView",
    "HubClient",
    "HubHTTPError",
    "LineageView",
    "OutlineView",
    "ReceiptView",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext creative_hub.jupyter``: register the ``%hub`` magics."""
    from .magics import HubMagics

    ipython.register_magics(HubMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext creative_hub.jupyter``: stop recording (the magics stay until restart)."""
    magics = ipython.magics_manager.registry.get("HubMagics")
    if magics is not None and magics.session is not None:
        magics.shell.run_line_magic("hub", "record off")
