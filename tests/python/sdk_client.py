"""Lists and calls the host's tools with the official Python MCP SDK.

Usage: sdk_client.py URL MODE CITY
       sdk_client.py stdio HOST_BINARY CONFIG MODE CITY
The first connects over Streamable HTTP; the second starts `HOST_BINARY serve --stdio
--config CONFIG` and talks to it over its stdin/stdout, passing on the MCP_* and
RUST_LOG variables (the host's log arrives on this script's stderr).
MODE is "auto" (the SDK's default: 2026-07-28 via server/discover) or "legacy"
(the initialize handshake). Prints one JSON object with what the client saw.
"""

import asyncio
import json
import os
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters


async def main(server, mode: str, city: str) -> None:
    async with Client(server, mode=mode) as client:
        tools = await client.list_tools()
        result = await client.call_tool("get_weather", {"city": city, "units": "metric"})
        invalid = await client.call_tool("get_weather", {"city": "x" * 101})
        print(
            json.dumps(
                {
                    "protocol_version": client.protocol_version,
                    "tools": [
                        {"name": t.name, "input_schema": t.input_schema} for t in tools.tools
                    ],
                    "is_error": bool(result.is_error),
                    "text": [c.text for c in result.content if c.type == "text"],
                    "structured": result.structured_content,
                    "invalid_is_error": bool(invalid.is_error),
                    "invalid_text": [c.text for c in invalid.content if c.type == "text"],
                }
            )
        )


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        binary, config, mode, city = sys.argv[2:6]
        passed = {k: v for k, v in os.environ.items() if k.startswith("MCP_") or k == "RUST_LOG"}
        server = StdioServerParameters(
            command=binary, args=["serve", "--stdio", "--config", config], env=passed
        )
        asyncio.run(main(server, mode, city))
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
