"""The MCP servers: the hub (hub.py, live.py), stories (story.py), provenance (why.py)
and GitHub (github.py), served over stdio (cli.py) or mounted over HTTP (http.py)."""
