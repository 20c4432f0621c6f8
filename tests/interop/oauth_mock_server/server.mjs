// An independent OAuth 2.0 server for the Switchboard interop tests: npm oauth2-mock-server,
// with the checks a real server makes and the library leaves out, and a record of requests.
//
//   OAUTH_MOCK_CLIENT_SECRET=s node server.mjs --client-id ID [--port 0]
//
// Prints `oauth2-mock-server issuer http://127.0.0.1:PORT` once it listens.
//
// oauth2-mock-server itself verifies a PKCE `code_verifier` against the stored challenge when
// one is sent, and otherwise accepts anything. On top of it, like a real server, this script:
// - authenticates the client on /token (Basic or form credentials; wrong → 401 invalid_client);
// - accepts a code once, only with the `redirect_uri` it was issued for, and only with a
//   `code_verifier` when the authorization request carried a challenge (→ 400 invalid_grant);
// - accepts a refresh token once: every refresh issues a new one (rotation);
// - answers `scope` with the scopes granted at /authorize (the library says "dummy");
// - makes every access token unique (the library's are identical within one second).
//
// Test control, on the same port:
//   GET  /_control/events    {events: every /authorize and /token request the library answered,
//                            with what it was answered; requests: [{method, path}] of all}
//   POST /_control/settings  {"code_expires_in": s, "refresh_expires_in": s}: `expires_in` of
//                            later code exchanges and refreshes (default 3600)
//   POST /_control/revoke_refresh_tokens   every refresh token issued so far stops working

import { randomUUID } from "node:crypto";
import http from "node:http";
import { parseArgs } from "node:util";

import { OAuth2Issuer, OAuth2Service } from "oauth2-mock-server";

const { values: args } = parseArgs({
  options: {
    "client-id": { type: "string" },
    port: { type: "string", default: "0" },
  },
});
const clientId = args["client-id"];
const clientSecret = process.env.OAUTH_MOCK_CLIENT_SECRET;
if (!clientId || !clientSecret) {
  console.error("usage: OAUTH_MOCK_CLIENT_SECRET=s node server.mjs --client-id ID [--port N]");
  process.exit(2);
}

const settings = { code_expires_in: 3600, refresh_expires_in: 3600 };
/** code → what /authorize was asked (for the checks at /token). */
const codes = new Map();
/** refresh token → { scope, used } */
const refreshTokens = new Map();
const events = [];
const requests = [];

const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);

// Every JWT unique (the library's are identical within one second) and expiring when
// `expires_in` says.
service.on("beforeTokenSigning", (token, req) => {
  token.payload.jti = randomUUID();
  const grant = req.body?.grant_type;
  if (grant === "authorization_code") {
    token.payload.exp = token.payload.iat + settings.code_expires_in;
  } else if (grant === "refresh_token") {
    token.payload.exp = token.payload.iat + settings.refresh_expires_in;
  }
});

service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const q = req.query;
  const code = redirect.url.searchParams.get("code");
  const event = {
    endpoint: "authorize",
    query: { ...q },
    code_issued: false,
  };
  if (q.client_id !== clientId) {
    redirect.url.searchParams.delete("code");
    redirect.url.searchParams.set("error", "unauthorized_client");
    event.error = "unauthorized_client";
  } else if (code) {
    codes.set(code, {
      redirect_uri: q.redirect_uri,
      scope: q.scope ?? "",
      code_challenge: q.code_challenge,
      used: false,
    });
    event.code_issued = true;
  }
  events.push(event);
});

/** RFC 6749 §2.3.1: Basic credentials are form-encoded before base64. */
function basicCredentials(req) {
  const header = req.headers.authorization ?? "";
  if (!header.toLowerCase().startsWith("basic ")) return null;
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  const unform = (s) => decodeURIComponent(s.replace(/\+/g, " "));
  return { id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
}

function fail(response, status, error, description) {
  response.statusCode = status;
  response.body = { error, error_description: description };
}

service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  const basic = basicCredentials(req);
  const event = {
    endpoint: "token",
    grant_type: body.grant_type,
    client_auth: basic ? "client_secret_basic" : body.client_secret ? "client_secret_post" : "none",
    form_keys: Object.keys(body).sort(),
    code_verifier_sent: typeof body.code_verifier === "string",
    redirect_uri: body.redirect_uri,
    refresh_token_presented: body.refresh_token,
  };
  events.push(event);
  const id = basic ? basic.id : body.client_id;
  const secret = basic ? basic.secret : body.client_secret;
  if (id !== clientId || secret !== clientSecret) {
    fail(response, 401, "invalid_client", "unknown client or wrong secret");
  } else if (body.grant_type === "authorization_code") {
    const issued = codes.get(body.code);
    if (!issued || issued.used) {
      fail(response, 400, "invalid_grant", "unknown or used code");
    } else if (issued.redirect_uri !== body.redirect_uri) {
      fail(response, 400, "invalid_grant", "redirect_uri differs from the authorization request");
    } else if (issued.code_challenge && typeof body.code_verifier !== "string") {
      fail(response, 400, "invalid_grant", "code_verifier required");
    } else {
      issued.used = true;
      response.body.scope = issued.scope;
      response.body.expires_in = settings.code_expires_in;
      refreshTokens.set(response.body.refresh_token, { scope: issued.scope, used: false });
    }
  } else if (body.grant_type === "refresh_token") {
    const known = refreshTokens.get(body.refresh_token);
    if (!known || known.used) {
      fail(response, 400, "invalid_grant", "unknown or already used refresh token");
    } else {
      known.used = true;
      response.body.scope = known.scope;
      response.body.expires_in = settings.refresh_expires_in;
      refreshTokens.set(response.body.refresh_token, { scope: known.scope, used: false });
    }
  }
  event.status = response.statusCode;
  if (response.statusCode === 200) {
    event.issued = {
      access_token: response.body.access_token,
      refresh_token: response.body.refresh_token,
      expires_in: response.body.expires_in,
      scope: response.body.scope,
    };
  } else {
    event.error = response.body.error;
  }
});

function control(req, res) {
  const reply = (status, value) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(value));
  };
  if (req.method === "GET" && req.url === "/_control/events") {
    reply(200, { events, requests });
  } else if (req.method === "POST" && req.url === "/_control/settings") {
    let raw = "";
    req.on("data", (chunk) => (raw += chunk));
    req.on("end", () => {
      try {
        const update = JSON.parse(raw || "{}");
        for (const key of Object.keys(update)) {
          if (!(key in settings) || !Number.isInteger(update[key])) {
            reply(400, { error: `unknown setting or not an integer: ${key}` });
            return;
          }
        }
        Object.assign(settings, update);
        reply(200, settings);
      } catch {
        reply(400, { error: "not JSON" });
      }
    });
  } else if (req.method === "POST" && req.url === "/_control/revoke_refresh_tokens") {
    // As when the user revokes the app at the provider: every refresh now gets invalid_grant.
    for (const known of refreshTokens.values()) known.used = true;
    reply(200, { revoked: refreshTokens.size });
  } else {
    reply(404, { error: "not found" });
  }
}

const server = http.createServer((req, res) => {
  // Every request as it arrives, including those the library refuses before any event.
  if (!req.url.startsWith("/_control/")) {
    requests.push({ method: req.method, path: req.url.split("?")[0] });
  }
  if (req.url.startsWith("/_control/")) {
    control(req, res);
  } else {
    service.requestHandler(req, res);
  }
});
server.listen(Number(args.port), "127.0.0.1", () => {
  const { port } = server.address();
  issuer.url = `http://127.0.0.1:${port}`;
  console.log(`oauth2-mock-server issuer ${issuer.url}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  // Nothing to flush: exit at once rather than wait for keep-alive connections.
  process.on(signal, () => process.exit(0));
}
