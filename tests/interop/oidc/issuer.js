// A real OpenID Connect issuer (oidc-provider) for the OIDC Bearer tests: client_credentials with
// a resource indicator, so the access token is a JWT (RFC 9068) for our API's audience, signed with
// the alg the client asks for, carrying the client's role in the `roles` claim.
//   node issuer.js '{"audience": "...", "clients": [{"id", "secret", "role", "alg", "ttl"}]}'
// Prints {"issuer": "http://127.0.0.1:<port>"} once it listens; stops when stdin closes.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const conf = JSON.parse(process.argv[2]);
const byId = Object.fromEntries(conf.clients.map((c) => [c.id, c]));

function jwk(type, opts, alg) {
  const { privateKey } = generateKeyPairSync(type, opts);
  return { ...privateKey.export({ format: 'jwk' }), kid: `${alg.toLowerCase()}-1`, alg, use: 'sig' };
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: conf.clients.map((c) => ({
      client_id: c.id, client_secret: c.secret, grant_types: ['client_credentials'],
      redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys: [jwk('rsa', { modulusLength: 2048 }, 'RS256'), jwk('ec', { namedCurve: 'P-256' }, 'ES256')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => conf.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: 'jarvis',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: byId[client.clientId].ttl ?? 300,
          jwt: { sign: { alg: byId[client.clientId].alg ?? 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (ctx, token) => {
      const c = byId[token.clientId];
      return c && c.role !== undefined ? { roles: c.role } : undefined;
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
