// Walks the host's OAuth flow with the official TypeScript client SDK's auth provider:
// argv[2] the MCP URL, argv[3] user, argv[4] password. The SDK meets a 401, discovers
// the metadata, registers, and asks to send the user to the authorization page; this
// script plays the browser (opens the page, fills in the login form, approves, reads the
// code from the redirect) and hands the code back with finishAuth. Then tools/list, a
// call, a call needing another scope (403: the SDK authorizes again), and a call after
// the access token was spoiled (401: the SDK refreshes). Prints one JSON line.
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from "@modelcontextprotocol/client";

const [url, user, password] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:9/callback";

class Provider {
  constructor() {
    this.client = undefined;
    this.saved = undefined;
    this.history = [];
    this.verifier = undefined;
    this.pending = undefined;
    this.authorizations = [];
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "typescript-sdk-e2e",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
    this.history.push(tokens);
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
  // The browser: the login page, the form, the redirect with the code.
  async redirectToAuthorization(authorizationUrl) {
    this.authorizations.push(authorizationUrl.searchParams.get("scope") ?? "");
    const page = await fetch(authorizationUrl);
    if (page.status !== 200) throw new Error(`authorization page: ${page.status} ${await page.text()}`);
    const cookie = (page.headers.get("set-cookie") ?? "").split(";")[0];
    const html = await page.text();
    const form = new URLSearchParams();
    for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) {
      form.set(name, value.replaceAll("&quot;", '"').replaceAll("&#39;", "'").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&"));
    }
    form.set("username", user);
    form.set("password", password);
    form.set("decision", "approve");
    const answer = await fetch(new URL("/oauth/authorize", authorizationUrl), {
      method: "POST",
      body: form,
      headers: { cookie },
      redirect: "manual",
    });
    if (answer.status !== 303) throw new Error(`login: ${answer.status} ${await answer.text()}`);
    this.pending = new URL(answer.headers.get("location")).searchParams;
  }
}

const provider = new Provider();
let client;
let transport;

async function connect() {
  transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  client = new Client({ name: "typescript-oauth-e2e", version: "1.0.0" }, { versionNegotiation: { mode: "auto" } });
  await client.connect(transport);
}

// Runs `step`; when the SDK needs the user (401 or 403), finishes the authorization the
// browser just completed, reconnects, and runs it again.
async function authorized(step) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (!(error instanceof UnauthorizedError) || attempt >= 2 || !provider.pending) throw error;
      const params = provider.pending;
      provider.pending = undefined;
      await transport.finishAuth(params);
      await connect();
    }
  }
}

const texts = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text);

await authorized(connect);
const tools = (await authorized(() => client.listTools())).tools.map((t) => t.name);
const read = await authorized(() => client.callTool({ name: "read", arguments: { text: "first" } }));
const firstScope = provider.saved.scope;
const admin = await authorized(() => client.callTool({ name: "admin", arguments: { text: "stepped up" } }));
// Spoil the access token: the host answers 401, and the SDK refreshes without the user.
const logins = provider.authorizations.length;
provider.saved = { ...provider.saved, access_token: provider.saved.access_token + "x" };
const refreshed = await authorized(() => client.callTool({ name: "read", arguments: { text: "after refresh" } }));
console.log(
  JSON.stringify({
    tools,
    read: texts(read),
    first_scope: firstScope,
    admin: texts(admin),
    admin_is_error: Boolean(admin.isError),
    refreshed: texts(refreshed),
    final_scope: provider.saved.scope,
    authorizations: provider.authorizations,
    logins_before_refresh: logins,
    client_id: provider.client?.client_id,
    access_tokens: new Set(provider.history.map((t) => t.access_token)).size,
    refresh_tokens: new Set(provider.history.map((t) => t.refresh_token)).size,
  }),
);
await client.close();
