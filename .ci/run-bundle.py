"""Start the server as the desktop extension's resolved mcp_config says, and journal.

argv: the resolved config (JSON), the installed `tradavity-mcp`, a picked folder. The
config's `uv run --directory <ext> --quiet tradavity-mcp` prefix is what the host runs;
here the bundle's project is already installed, so its entry point stands in for it.
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import date, timedelta
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from PIL import Image


def prepare(config_path: str, folder: str) -> tuple[list[str], dict[str, str], Path]:
    """The resolved arguments after the entry point, the environment, and a chart."""
    config = json.loads(Path(config_path).read_text("utf-8"))
    args: list[str] = config["args"]
    assert config["command"] == "uv", config
    prefix = args.index("tradavity-mcp")
    assert args[:prefix] == ["run", "--directory", args[2], "--quiet"], args
    rest = args[prefix + 1 :]
    assert rest[0] == "--allowed-dir", rest
    assert len(rest) == 3, rest  # both picked folders, each its own argument
    assert rest[-1] == folder, rest
    env = {**os.environ, **config["env"]}
    assert env["TRADAVITY_SANDBOX"] == "true", config["env"]
    assert env["TRADAVITY_API_KEY"] == "", config["env"]
    chart = Path(folder) / "chart.png"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 90, 200)).save(buffer, format="PNG")
    chart.write_bytes(buffer.getvalue())
    return rest, env, chart


async def main(entry: str, rest: list[str], env: dict[str, str], chart: Path) -> None:

    params = StdioServerParameters(command=entry, args=rest, env=env)
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        assert len(tools) >= 14, [t.name for t in tools]
        result = await client.call_tool(
            "journal_trade",
            {
                "trade": {
                    "symbol": "MES",
                    "direction": "long",
                    "quantity": 1,
                    "net_pnl": 25,
                    # Two days back: 10:05 of the UTC "today" is still tomorrow for an evening in
                    # New York, and a trade in the future is refused.
                    "trade_date": (date.today() - timedelta(days=2)).isoformat() + "T10:05",
                    "account": "Apex 50K",
                },
                "screenshot": {"path": str(chart)},
            },
        )
        assert not result.is_error, result.content
        data = result.structured_content or {}
        assert data.get("outcome") == "done", data
    print(f"bundle: {len(tools)} tools; journaled trade #{data.get('trade_number')} with a chart")


if __name__ == "__main__":
    config_path, entry, folder = sys.argv[1:4]
    anyio.run(main, entry, *prepare(config_path, folder))
