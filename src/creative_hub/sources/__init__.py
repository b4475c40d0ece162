"""Sources: outside material (git, GitHub, arXiv, CrossRef, BibTeX, mail, folders, feeds, pages,
stories, calendars, ceremonies, MCP servers) turned into events with stable ids.

The contract is ``base.Source``; ``ingest.ingest(hub, source)`` runs one into a hub.
Each connector is imported from its own module (``creative_hub.sources.git`` ...),
so a missing optional dependency only affects that connector.
"""
