"""A small Arcade toolkit served by arcade-mcp-server, used as a real worker in the interop tests.

Run it the way the tests do:

    ARCADE_WORKER_SECRET=s ARCADE_SERVER_TRANSPORT=http \
    ARCADE_SERVER_HOST=127.0.0.1 ARCADE_SERVER_PORT=8123 python server.py

`/worker/*` routes exist only when ARCADE_WORKER_SECRET is set.
"""

from typing import Annotated

from arcade_mcp_server import MCPApp

app = MCPApp(
    name="Mathkit",
    version="1.0.0",
    instructions="Small arithmetic and string tools for the Switchboard interop tests.",
)


@app.tool
def add(
    a: Annotated[int, "The first addend"],
    b: Annotated[int, "The second addend"],
) -> Annotated[int, "The sum of a and b"]:
    """Add two integers."""
    return a + b


@app.tool
def multiply(
    a: Annotated[float, "The first factor"],
    b: Annotated[float, "The second factor"],
) -> Annotated[float, "The product of a and b"]:
    """Multiply two numbers."""
    return a * b


@app.tool
def shout(
    text: Annotated[str, "The text to shout"],
    times: Annotated[int, "How many exclamation marks to add"] = 1,
) -> Annotated[str, "The text in upper case followed by exclamation marks"]:
    """Turn text into upper case and add exclamation marks."""
    return text.upper() + "!" * times


if __name__ == "__main__":
    app.run(transport="http")
