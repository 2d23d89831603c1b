// Connects to the MCP server at argv[2] with the official TypeScript client SDK in
// version-negotiation mode argv[4] ("legacy", the SDK's default, or "auto", which probes
// for 2026-07-28), lists the tools, calls get_weather for argv[3] and once with an
// invalid city, and prints what it saw as one JSON line for tests/typescript_sdk.rs.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, city, mode] = process.argv.slice(2);
const client = new Client(
  { name: "mcp-wasm-host-e2e", version: "1.0.0" },
  { versionNegotiation: { mode } },
);
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
const { tools } = await client.listTools();
const call = await client.callTool({ name: "get_weather", arguments: { city } });
const invalid = await client.callTool({
  name: "get_weather",
  arguments: { city: "x".repeat(101) },
});
const texts = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text);
console.log(
  JSON.stringify({
    protocol_version: transport.protocolVersion ?? null,
    tools: tools.map((t) => ({ name: t.name, input_schema: t.inputSchema })),
    is_error: call.isError ?? false,
    text: texts(call),
    structured: call.structuredContent ?? null,
    invalid_is_error: invalid.isError ?? false,
    invalid_text: texts(invalid),
  }),
);
await client.close();
