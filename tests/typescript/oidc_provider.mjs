// A certified OpenID provider we did not write (npm oidc-provider), on 127.0.0.1 with a
// port from the OS, for the host's external mode. It issues JWT access tokens (ES256)
// by client credentials for whatever resource the request names (RFC 8707). Prints
// one JSON line, {"issuer": ...}, once it listens.
import http from "node:http";
import { generateKeyPair, exportJWK } from "jose";
import Provider from "oidc-provider";

const { privateKey } = await generateKeyPair("ES256", { extractable: true });
const signing = { ...(await exportJWK(privateKey)), kid: "oidc-provider-es256", use: "sig", alg: "ES256" };

const server = http.createServer();
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    jwks: { keys: [signing] },
    clients: [
      {
        client_id: "machine",
        client_secret: "machine-secret",
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: "client_secret_post",
        id_token_signed_response_alg: "ES256",
      },
    ],
    scopes: ["fix:read", "fix:admin"],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: "fix:read fix:admin",
          audience: resource,
          accessTokenFormat: "jwt",
          accessTokenTTL: 600,
          jwt: { sign: { alg: "ES256" } },
        }),
      },
    },
  });
  server.on("request", provider.callback());
  console.log(JSON.stringify({ issuer }));
});
