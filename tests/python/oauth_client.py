"""Walks the host's OAuth flow with the official Python MCP SDK's OAuthClientProvider.

Usage: oauth_client.py URL MODE USER PASSWORD [CLIENT_METADATA_URL]

The SDK meets a 401, discovers the protected resource and authorization server
metadata, registers itself (RFC 7591), and sends "the user" to the authorization page;
here a small stand-in for the browser opens that page over HTTP, fills in the login
form, approves, and hands the code from the redirect back to the SDK. Then: tools/list,
a call the first token allows, a call that needs another scope (403, and the SDK
authorizes again with the union of scopes), and a call after the access token was made
to look expired (the SDK refreshes). With CLIENT_METADATA_URL the client is known by
that Client ID Metadata Document instead of registering. Prints one JSON object with
what it saw.
"""

import asyncio
import html
import json
import re
import sys
import time
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

REDIRECT_URI = "http://127.0.0.1:9/callback"


class MemoryStorage:
    """Token storage in memory; remembers every token set."""

    def __init__(self) -> None:
        self.tokens = None
        self.client_info = None
        self.history = []

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


class Browser:
    """Plays the user: opens the authorization URL, logs in, approves."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.result = None
        self.authorizations = []

    async def redirect_handler(self, url: str) -> None:
        scope = parse_qs(urlparse(url).query).get("scope", [""])[0]
        self.authorizations.append(scope)
        async with httpx2.AsyncClient() as http:
            page = await http.get(url)
            if page.status_code != 200:
                raise RuntimeError(f"authorization page: {page.status_code} {page.text}")
            fields = {
                name: html.unescape(value)
                for name, value in re.findall(
                    r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text
                )
            }
            fields.update(username=self.user, password=self.password, decision="approve")
            answer = await http.post(urljoin(url, "/oauth/authorize"), data=fields)
            if answer.status_code != 303:
                raise RuntimeError(f"login: {answer.status_code} {answer.text}")
            query = parse_qs(urlparse(answer.headers["location"]).query)
            self.result = AuthorizationCodeResult(
                code=query["code"][0],
                state=query.get("state", [None])[0],
                iss=query.get("iss", [None])[0],
            )

    async def callback_handler(self) -> AuthorizationCodeResult:
        return self.result


def texts(result) -> list:
    return [c.text for c in result.content if c.type == "text"]


async def main(url: str, mode: str, user: str, password: str, metadata_url=None) -> None:
    storage = MemoryStorage()
    browser = Browser(user, password)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="python-sdk-e2e",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
        client_metadata_url=metadata_url,
    )
    async with httpx2.AsyncClient(auth=provider) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            read = await client.call_tool("read", {"text": "first"})
            first_scope = storage.tokens.scope
            # Needs fix:admin, which the first token lacks: 403, step-up, retry.
            admin = await client.call_tool("admin", {"text": "stepped up"})
            # Make the access token look expired: the next request refreshes first.
            provider.context.token_expiry_time = time.time() - 1
            refreshed = await client.call_tool("read", {"text": "after refresh"})
            version = client.protocol_version
    print(
        json.dumps(
            {
                "protocol_version": version,
                "tools": tools,
                "read": texts(read),
                "admin": texts(admin),
                "admin_is_error": bool(admin.is_error),
                "refreshed": texts(refreshed),
                "first_scope": first_scope,
                "final_scope": storage.tokens.scope,
                "authorizations": browser.authorizations,
                "client_id": storage.client_info.client_id,
                "access_tokens": len({t.access_token for t in storage.history}),
                "refresh_tokens": len({t.refresh_token for t in storage.history}),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
