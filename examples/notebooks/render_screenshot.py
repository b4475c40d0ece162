"""Run hub-tour.ipynb against a fresh hub and screenshot its lineage, for the README.

    .venv/bin/python examples/notebooks/render_screenshot.py      # writes examples/notebooks/lineage.png

Starts ``python -m creative_hub.server`` on a free loopback port with a new
SQLite log and a principal ``alice``, executes the notebook with nbclient on
this venv's ipykernel (CREATIVE_HUB_URL / CREATIVE_HUB_TOKEN in the kernel's
environment), renders the draft -> revision -> published part with nbconvert's
HTML exporter and takes the picture with headless Chromium.  Needs the
``jupyter`` extra, nbconvert (``dev``) and chromium (scripts/install-browser.sh).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from creative_hub.hub import Hub

HERE = Path(__file__).resolve().parent
SHOWN = ("draft", "revise", "publish-draft", "lineage")  # the cells the picture shows


async def _alice(log_url: str) -> str:
    async with Hub.connect(log_url) as hub:
        await hub.registry.add("alice")
        return await hub.registry.issue_token("alice")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (scripts/install-browser.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        log_url = f"sqlite:///{tmp}/hub.db"
        token = asyncio.run(_alice(log_url))
        port = _port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "creative_hub.server", "--port", str(port), "--log", log_url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            os.environ.update(CREATIVE_HUB_URL=url, CREATIVE_HUB_TOKEN=token, JUPYTER_PLATFORM_DIRS="1")
            nb = nbformat.read(HERE / "hub-tour.ipynb", as_version=4)
            NotebookClient(
                nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp}}
            ).execute()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(15)
        shown = [c for c in nb.cells if c.cell_type == "code" and any(f"hub {w}" in c.source for w in SHOWN)]
        nb.cells = shown
        html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
        page = Path(tmp) / "tour.html"
        page.write_text(html)
        out = HERE / "lineage.png"
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--hide-scrollbars", "--window-size=1100,740", f"--screenshot={out}", page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
