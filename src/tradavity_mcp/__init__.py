"""tradavity-mcp: an MCP server that keeps a trader's journal in Tradavity."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tradavity-mcp")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
