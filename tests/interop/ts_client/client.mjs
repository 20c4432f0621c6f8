// A small MCP client on the official TypeScript SDK, for the Switchboard interop tests.
//
// Connects to URL over Streamable HTTP, lists every tool (following nextCursor), optionally
// calls one tool, and prints JSON lines on stdout:
//   {"event":"elicitation","params":{...}}   a URL elicitation arrived (with --elicit); the
//                                            client then reads its answer ("accept",
//                                            "decline" or "cancel") as one line on stdin
//   {"event":"done","protocolVersion":...,"serverInfo":...,"sessionId":...,"tools":[...],
//    "call":{...} | null}
// The bearer token comes from the environment (MCP_BEARER), never the command line.
//
// Usage: node client.mjs URL [--call NAME] [--arguments JSON] [--elicit] [--header K:V]...

import { createInterface } from "node:readline";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

function parseArgs(argv) {
  const opts = { url: null, call: null, arguments: {}, elicit: false, headers: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--call") opts.call = argv[++i];
    else if (arg === "--arguments") opts.arguments = JSON.parse(argv[++i]);
    else if (arg === "--elicit") opts.elicit = true;
    else if (arg === "--header") {
      const raw = argv[++i];
      const at = raw.indexOf(":");
      opts.headers[raw.slice(0, at).trim()] = raw.slice(at + 1).trim();
    } else if (opts.url === null) opts.url = arg;
    else throw new Error(`unexpected argument: ${arg}`);
  }
  if (opts.url === null) throw new Error("usage: node client.mjs URL [--call NAME] ...");
  return opts;
}

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const headers = { ...opts.headers };
  if (process.env.MCP_BEARER) headers.Authorization = `Bearer ${process.env.MCP_BEARER}`;

  const capabilities = opts.elicit ? { elicitation: { url: {} } } : {};
  const client = new Client({ name: "switchboard-interop-ts", version: "1.0.0" }, { capabilities });
  if (opts.elicit) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      process.stdout.write(JSON.stringify({ event: "elicitation", params: request.params }) + "\n");
      const answer = await stdinLines.next();
      const action = answer.done ? "cancel" : answer.value.trim();
      return { action };
    });
  }

  const transport = new StreamableHTTPClientTransport(new URL(opts.url), {
    requestInit: { headers },
  });
  await client.connect(transport);

  const tools = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const result = await client.listTools(cursor ? { cursor } : {});
    tools.push(...result.tools);
    cursor = result.nextCursor;
    if (!cursor) break;
  }

  let call = null;
  if (opts.call) {
    // Generous: a call that asks the user to authorize waits for them.
    call = await client.callTool({ name: opts.call, arguments: opts.arguments }, undefined, {
      timeout: 180_000,
    });
  }

  const done = {
    event: "done",
    protocolVersion: transport.protocolVersion ?? null,
    serverInfo: client.getServerVersion() ?? null,
    serverCapabilities: client.getServerCapabilities() ?? null,
    sessionId: transport.sessionId ?? null,
    tools,
    call,
  };
  process.stdout.write(JSON.stringify(done) + "\n");
  await transport.terminateSession().catch(() => {});
  await client.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`client error: ${err?.stack ?? err}\n`);
    if (err?.code !== undefined) process.stderr.write(`code: ${JSON.stringify(err.code)}\n`);
    process.exit(1);
  },
);
