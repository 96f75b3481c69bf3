"""`python -m tradavity_mcp`: the same as the `tradavity-mcp` command."""

from tradavity_mcp.cli import main

raise SystemExit(main())
