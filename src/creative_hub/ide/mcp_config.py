"""MCP server entries for editors' assistants, in each client's documented format.

``entry(client, ...)`` gives the JSON a client needs to start
``creative-hub mcp hub`` over stdio (absolute Python, the log URL, the token
through the environment); ``merge`` puts it into what a config file holds
already, leaving every other server and setting alone.

Where each format is documented (checked 2026-12):

- vscode: ``.vscode/mcp.json``, ``servers`` and ``inputs`` --
  code.visualstudio.com/docs/copilot/reference/mcp-configuration
- cursor: ``.cursor/mcp.json``, ``mcpServers``, ``${env:NAME}`` --
  cursor.com/docs/context/mcp
- claude-code: ``.mcp.json``, ``mcpServers`` with ``type: stdio``, ``${VAR}`` --
  code.claude.com/docs/en/mcp
- claude-desktop: ``claude_desktop_config.json``, ``mcpServers`` --
  modelcontextprotocol.io/docs/develop/connect-local-servers
- zed: ``~/.config/zed/settings.json``, ``context_servers`` with ``source: custom`` --
  zed.dev/docs/ai/mcp

The token: VS Code asks for it once (an ``inputs`` entry with ``password:
true``, kept in its secret storage); Cursor and Claude Code expand
``CREATIVE_HUB_TOKEN`` from the environment they start in; Claude Desktop
and Zed expand nothing, so the token is written into the file (mode 0600)
only with ``--write`` and an explicit token, else a placeholder is left.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import ValidationError

__all__ = ["CLIENTS", "default_path", "entry", "load_jsonc", "merge", "server_name"]

CLIENTS = ("vscode", "cursor", "claude-code", "claude-desktop", "zed")
TOKEN_ENV = "CREATIVE_HUB_TOKEN"
INPUT_ID = "creative-hub-token"
PLACEHOLDER = "<your creative-hub token>"


def server_name(server: str) -> str:
    """``creative-hub`` for the hub server, ``creative-hub-story`` for the others."""
    return "creative-hub" if server == "hub" else f"creative-hub-{server}"


def absolute_log(log: str) -> str:
    """``sqlite:///hub.db`` -> ``sqlite:////home/me/hub.db``: the editor starts the server elsewhere."""
    m = re.match(r"^sqlite:///(?!/)(.*)$", log)
    if m:
        return "sqlite:///" + str(Path(m.group(1)).resolve())
    return log


def entry(client: str, *, log: str, server: str = "hub", token: str | None = None) -> dict[str, Any]:
    """The whole config fragment for ``client`` (a dict to merge into its file)."""
    if client not in CLIENTS:
        raise ValidationError("client", f"{client!r} is not one of {', '.join(CLIENTS)}")
    name = server_name(server)
    command, args = sys.executable, ["-m", "creative_hub", "mcp", server]
    env = {"CREATIVE_HUB_LOG": absolute_log(log)}
    if client == "vscode":
        env[TOKEN_ENV] = f"${{input:{INPUT_ID}}}"
        return {
            "inputs": [
                {
                    "type": "promptString",
                    "id": INPUT_ID,
                    "description": "creative-hub API token (creative-hub principal token NAME)",
                    "password": True,
                }
            ],
            "servers": {name: {"type": "stdio", "command": command, "args": args, "env": env}},
        }
    if client == "cursor":
        env[TOKEN_ENV] = f"${{env:{TOKEN_ENV}}}"
        return {"mcpServers": {name: {"command": command, "args": args, "env": env}}}
    if client == "claude-code":
        env[TOKEN_ENV] = f"${{{TOKEN_ENV}}}"
        return {"mcpServers": {name: {"type": "stdio", "command": command, "args": args, "env": env}}}
    env[TOKEN_ENV] = token or PLACEHOLDER
    if client == "claude-desktop":
        return {"mcpServers": {name: {"command": command, "args": args, "env": env}}}
    return {"context_servers": {name: {"source": "custom", "command": command, "args": args, "env": env}}}


def default_path(client: str, project: Path) -> Path:
    """Where ``--write`` puts it: the project's file, or the user's for the desktop apps."""
    home = Path.home()
    if client == "vscode":
        return project / ".vscode" / "mcp.json"
    if client == "cursor":
        return project / ".cursor" / "mcp.json"
    if client == "claude-code":
        return project / ".mcp.json"
    if client == "claude-desktop":
        system = platform.system()
        if system == "Darwin":
            return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        if system == "Windows":
            return Path(os.environ.get("APPDATA", home)) / "Claude" / "claude_desktop_config.json"
        return home / ".config" / "Claude" / "claude_desktop_config.json"
    base = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return base / "zed" / "settings.json"


_JSONC = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.S)
_TRAILING = re.compile(r'("(?:\\.|[^"\\])*")|,(\s*[}\]])')


def load_jsonc(text: str, where: str) -> dict[str, Any]:
    """A JSON object, allowing the comments and trailing commas Zed and VS Code accept."""
    if not text.strip():
        return {}
    plain = _JSONC.sub(lambda m: m.group(1) or "", text)
    plain = _TRAILING.sub(lambda m: m.group(1) or m.group(2), plain)
    try:
        data = json.loads(plain)
    except ValueError as e:
        raise ValidationError("file", f"{where}: not JSON ({e}); fix it or move it aside") from None
    if not isinstance(data, dict):
        raise ValidationError("file", f"{where}: the top level must be an object")
    return data


def merge(existing: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """``fragment`` put into ``existing``: our server replaced, every other key kept."""
    out = dict(existing)
    for key, value in fragment.items():
        if isinstance(value, dict):
            current = out.get(key)
            if current is not None and not isinstance(current, dict):
                raise ValidationError(key, f"the file's {key!r} is not an object; cannot add a server to it")
            out[key] = {**(current or {}), **value}
        elif isinstance(value, list):  # VS Code inputs: ours replaced by id, the others kept
            current_list = out.get(key) or []
            if not isinstance(current_list, list):
                raise ValidationError(key, f"the file's {key!r} is not an array")
            ids = {v.get("id") for v in value if isinstance(v, dict)}
            kept = [v for v in current_list if not (isinstance(v, dict) and v.get("id") in ids)]
            out[key] = kept + value
        else:
            out[key] = value
    return out
