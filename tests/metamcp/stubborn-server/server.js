#!/usr/bin/env node
// A well-behaved MCP stdio server in every way but one: it will not go. It ignores
// SIGTERM, SIGINT and SIGHUP and stays alive after the end of its input, the way a
// server stuck in a native call or with a bad signal handler would. Only SIGKILL ends it.
// No dependencies: newline-delimited JSON-RPC as the MCP stdio transport defines it.
"use strict";

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => {});
setInterval(() => {}, 1 << 30);

const tools = [
  {
    name: "hold",
    description: "Echoes its input",
    inputSchema: { type: "object", properties: { message: { type: "string" } } },
  },
];

function reply(id, result) {
  process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id, result }) + "\n");
}

function handle(message) {
  if (message.id === undefined) return; // a notification
  switch (message.method) {
    case "initialize":
      return reply(message.id, {
        protocolVersion: message.params?.protocolVersion ?? "2025-06-18",
        capabilities: { tools: {} },
        serverInfo: { name: "mcpinit-stubborn-server", version: "1.0.0" },
      });
    case "tools/list":
      return reply(message.id, { tools });
    case "tools/call":
      return reply(message.id, {
        content: [{ type: "text", text: String(message.params?.arguments?.message ?? "") }],
      });
    case "ping":
      return reply(message.id, {});
    default:
      process.stdout.write(
        JSON.stringify({ jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "Method not found" } }) + "\n",
      );
  }
}

let buffer = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  let newline;
  while ((newline = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, newline).trim();
    buffer = buffer.slice(newline + 1);
    if (!line) continue;
    try {
      handle(JSON.parse(line));
    } catch {
      // not JSON: ignore, as a lenient server would
    }
  }
});
process.stdin.on("end", () => {}); // the point: the end of input does not end it
process.stdout.on("error", () => {}); // nor does a closed output
