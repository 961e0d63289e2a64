// An OpenID Connect relying party made with openid-client (panva, v6), for the interoperability
// tests (idp/tests/e2e/interop.rs): the authorization-code flow with PKCE S256, state and nonce,
// optionally a pushed authorization request (RFC 9126) and DPoP-bound tokens (RFC 9449), every
// step done by the library. The line protocol is the same as ../interop/authlib_client.py:
//
//   node client.mjs --issuer URL --client-id ID --client-secret S --redirect-uri URI
//                   [--auth-method client_secret_basic|client_secret_post|none] [--scope S]
//                   [--par] [--dpop]
//
// (IDP_INTEROP_ISSUER, IDP_INTEROP_CLIENT_ID, IDP_INTEROP_CLIENT_SECRET, IDP_INTEROP_REDIRECT_URI
// stand in for the options.) It prints `AUTHORIZE <url>`, reads one line from standard input —
// the URL the browser was sent back to — and prints `RESULT <json>`, or `ERROR <message>` and
// exits 1.

import * as client from 'openid-client';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string', default: process.env.IDP_INTEROP_ISSUER },
    'client-id': { type: 'string', default: process.env.IDP_INTEROP_CLIENT_ID },
    'client-secret': { type: 'string', default: process.env.IDP_INTEROP_CLIENT_SECRET },
    'redirect-uri': { type: 'string', default: process.env.IDP_INTEROP_REDIRECT_URI },
    'auth-method': { type: 'string', default: 'client_secret_basic' },
    scope: { type: 'string', default: 'openid profile email offline_access' },
    par: { type: 'boolean', default: false },
    dpop: { type: 'boolean', default: false },
  },
});

function fail(message) {
  process.stdout.write(`ERROR ${String(message).replace(/\s+/g, ' ')}\n`);
  process.exit(1);
}

function describe(e) {
  // ResponseBodyError and WWWAuthenticateChallengeError carry the server's error code.
  const parts = [e?.name, e?.code, e?.error, e?.error_description, e?.message].filter(Boolean);
  if (e?.cause?.message) parts.push(`cause: ${e.cause.message}`);
  return parts.join(': ');
}

function payload(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

/** RFC 7638 thumbprint of a public EC or RSA key. */
async function thumbprint(publicKey) {
  const jwk = await crypto.subtle.exportKey('jwk', publicKey);
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function readLine() {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin });
    rl.once('line', (line) => {
      resolve(line.trim());
      rl.close();
    });
    rl.once('close', () => reject(new Error('standard input closed before the callback URL')));
  });
}

async function main() {
  for (const name of ['issuer', 'client-id', 'redirect-uri']) {
    if (!args[name]) fail(`--${name} is required`);
  }
  const auth = {
    client_secret_basic: () => client.ClientSecretBasic(args['client-secret']),
    client_secret_post: () => client.ClientSecretPost(args['client-secret']),
    none: () => client.None(),
  }[args['auth-method']];
  if (!auth) fail(`unknown --auth-method ${args['auth-method']}`);

  // Discovery: /.well-known/openid-configuration, its issuer checked by the library. The test
  // IdP runs on http://127.0.0.1, which openid-client refuses unless told.
  const config = await client.discovery(
    new URL(args.issuer),
    args['client-id'],
    { redirect_uris: [args['redirect-uri']] },
    auth(),
    { execute: [client.allowInsecureRequests] },
  );
  // Verify ID token signatures with the JWKS (by default openid-client trusts the TLS channel).
  client.enableNonRepudiationChecks(config);

  let DPoP;
  let keyJkt = null;
  if (args.dpop) {
    const keyPair = await client.randomDPoPKeyPair('ES256');
    DPoP = client.getDPoPHandle(config, keyPair);
    keyJkt = await thumbprint(keyPair.publicKey);
  }

  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const parameters = {
    redirect_uri: args['redirect-uri'],
    scope: args.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  const url = args.par
    ? await client.buildAuthorizationUrlWithPAR(config, parameters, { DPoP })
    : client.buildAuthorizationUrl(config, parameters);
  process.stdout.write(`AUTHORIZE ${url.href}\n`);

  const callback = await readLine();
  // Checks state, iss (RFC 9207) and the error response, redeems the code with the verifier and
  // the DPoP proof (retrying once with the server's nonce), validates the ID token (signature,
  // iss, aud, exp, nonce).
  const tokens = await client.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
    undefined,
    { DPoP },
  );
  const idClaims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub, { DPoP });

  let refreshed = false;
  let refreshedTokenType = null;
  if (tokens.refresh_token) {
    const again = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
    refreshed = Boolean(again.access_token);
    refreshedTokenType = again.token_type;
  }

  let dpopJkt = null;
  try {
    dpopJkt = payload(tokens.access_token)?.cnf?.jkt ?? null;
  } catch {
    dpopJkt = null;
  }
  const result = {
    library: 'openid-client',
    token_type: tokens.token_type,
    id_token_sub: idClaims.sub,
    userinfo_sub: userinfo.sub,
    userinfo,
    dpop_jkt: dpopJkt,
    key_jkt: keyJkt,
    refreshed,
    refreshed_token_type: refreshedTokenType,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (e) => fail(describe(e)),
);
