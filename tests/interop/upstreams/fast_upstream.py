"""An upstream MCP server for the interop tests, on the MCP Python SDK's own server
(`MCPServer`, formerly FastMCP), served over Streamable HTTP on 127.0.0.1.

Tools:
  echo(message)    structured output {message, length} (and the SDK's text rendering of it)
  fail(reason)     raises, so the SDK answers an `isError: true` result with `reason` as text
  check_api_key()  whether the request carried `X-Api-Key` equal to the expected value, and
                   every header name it carried (with every value except X-Api-Key's), so a
                   test can check that no inbound gateway credential was forwarded

Usage: python fast_upstream.py --port PORT
The expected X-Api-Key value comes from the environment (FAST_UPSTREAM_API_KEY), never the
command line. Prints "fast-upstream listening on http://127.0.0.1:PORT/mcp" once bound.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
from typing import TypedDict

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

mcp = MCPServer(name="fast-upstream", version="1.0.0")


class Echoed(TypedDict):
    message: str
    length: int


class ApiKeyCheck(TypedDict):
    matched: bool
    present: bool
    header_names: list[str]
    # Every header the request carried, X-Api-Key's value redacted.
    headers: dict[str, str]


@mcp.tool(description="Echoes the message back as structured output.")
def echo(message: str) -> Echoed:
    return {"message": message, "length": len(message)}


@mcp.tool(description="Always fails with the given reason.")
def fail(reason: str) -> str:
    raise ToolError(f"upstream refused: {reason}")


@mcp.tool(description="Says whether the request carried the expected X-Api-Key header.")
def check_api_key(ctx: Context) -> ApiKeyCheck:
    expected = os.environ.get("FAST_UPSTREAM_API_KEY", "")
    headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
    got = headers.get("x-api-key")
    matched = bool(expected) and got is not None and hmac.compare_digest(got, expected)
    shown = {k: ("<redacted>" if k == "x-api-key" else v) for k, v in headers.items()}
    return {
        "matched": matched,
        "present": got is not None,
        "header_names": sorted(headers),
        "headers": shown,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    print(f"fast-upstream listening on http://{args.host}:{args.port}/mcp", flush=True)
    sys.stdout.flush()
    mcp.run(transport="streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
