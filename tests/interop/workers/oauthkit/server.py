"""An Arcade toolkit whose tools need a token from the custom OAuth provider `mock`
(oauth2-mock-server in the interop tests), served by arcade-mcp-server as a real worker.

Run it the way the tests do:

    ARCADE_WORKER_SECRET=s ARCADE_SERVER_TRANSPORT=http \\
    ARCADE_SERVER_HOST=127.0.0.1 ARCADE_SERVER_PORT=8124 python server.py
"""

import hashlib
from typing import Annotated

from arcade_mcp_server import Context, MCPApp
from arcade_tdk.auth import OAuth2

app = MCPApp(
    name="Oauthkit",
    version="1.0.0",
    instructions="Tools that need the user's token from the `mock` OAuth provider.",
)


@app.tool(requires_auth=OAuth2(id="mock", scopes=["openid", "profile"]))
def token_fingerprint(
    context: Context,
) -> Annotated[dict, "The user id and the first 12 hex digits of sha256(token)"]:
    """Identify the token the call carried without revealing it."""
    token = context.get_auth_token_or_empty()
    return {
        "user_id": context.user_id,
        "has_token": bool(token),
        "token_sha256_prefix": hashlib.sha256(token.encode()).hexdigest()[:12],
    }


if __name__ == "__main__":
    app.run(transport="http")
