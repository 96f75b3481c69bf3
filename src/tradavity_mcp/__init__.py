"""tradavity-mcp: an MCP server that keeps a trader's journal in Tradavity."""

#: The one place the version is written. pyproject.toml reads it (hatch's dynamic
#: version); server.json and the desktop extension's manifest repeat it, and
#: tests/test_readme.py fails when they drift.
__version__ = "0.1.0"

__all__ = ["__version__"]
