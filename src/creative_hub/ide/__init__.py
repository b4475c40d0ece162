"""Editors and version control: MCP config entries for editors' assistants, git hooks that publish commits."""
