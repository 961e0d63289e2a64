// The peer for the side-by-side benchmark: panva's oidc-provider (installed by scripts/bench
// into target/, never committed), production mode, its in-memory adapter, doing the same work
// as ours per request: ES256 ID tokens, an ES256 JWT access token for client_credentials.
//
// Its interaction page signs in one fixed account by itself and the grant is given at once, so
// the SSO round trip (authorize with a session → code → token → userinfo) measures the
// protocol, not a form. Loopback only.
//
//   PEER_PORT=… PEER_CLIENTS=clients.json node provider.mjs
// clients.json: {"sso": {"client_id", "client_secret"}, "cc": {"client_id", "client_secret"},
//                "redirect_uri": "http://127.0.0.1:9/cb"}
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
if (!port) throw new Error('PEER_PORT is required');
const given = JSON.parse(fs.readFileSync(process.env.PEER_CLIENTS, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'peer-es256', alg: 'ES256', use: 'sig' };
const API = 'urn:load:api';
const ACCOUNT = 'load-account';

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: given.sso.client_id,
      client_secret: given.sso.client_secret,
      redirect_uris: [given.redirect_uri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
    {
      client_id: given.cc.client_id,
      client_secret: given.cc.client_secret,
      redirect_uris: [],
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  pkce: { required: () => false },
  // Fixed lifetimes (seconds), as ours has them configured; the defaults only warn.
  ttl: { AccessToken: 600, ClientCredentials: 600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Grant: 28800, Session: 28800 },
  claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Only the client_credentials grant gets the API (a JWT); SSO tokens stay for userinfo.
      defaultResource: (ctx) => (ctx.oidc.params?.grant_type === 'client_credentials' ? API : undefined),
      useGrantedResource: () => false,
      getResourceServerInfo: () => ({
        scope: '',
        audience: API,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, name: '王小明', email: 'ming@example.gov.tw' }),
  }),
  // Consent is given once per session and client, as ours remembers it.
  loadExistingGrant: async (ctx) => {
    const id = ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email');
    await grant.save();
    return grant;
  },
});

const app = provider.callback();
http
  .createServer(async (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      try {
        await provider.interactionFinished(req, res, { login: { accountId: ACCOUNT } }, { mergeWithLastSubmission: false });
      } catch (e) {
        res.statusCode = 400;
        res.end(String(e));
      }
      return;
    }
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    app(req, res);
  })
  .listen(port, '127.0.0.1', () => console.error(`peer oidc-provider on ${issuer}`));
