"""An OpenID Connect relying party made with Authlib, for the interoperability tests
(idp/tests/e2e/interop.rs): the authorization-code flow with PKCE S256, state and nonce,
optionally a pushed authorization request (RFC 9126) and DPoP-bound tokens (RFC 9449).

Authlib (requests client) does discovery, the authorization request (PKCE, state, nonce), client
authentication, the token request with its state check, ID token verification (JWKS signature,
iss, aud, nonce, at_hash), userinfo and refresh. It has no client-side PAR or DPoP, so:
  - PAR: the request Authlib built is POSTed to `pushed_authorization_request_endpoint` with
    Authlib's client authentication, and the URL is `client_id` + `request_uri`;
  - DPoP: proofs are made with joserfc (Authlib's JOSE): ES256, `typ: dpop+jwt`, `jwk` header,
    htm/htu/iat/jti, `ath` at userinfo, the server's nonce, one retry on `use_dpop_nonce`;
  - RFC 9207 `iss` in the callback is compared with the discovered issuer here.

The line protocol is the same as ../node-client/client.mjs:

  python3 authlib_client.py --issuer URL --client-id ID --client-secret S --redirect-uri URI
                            [--auth-method client_secret_basic|client_secret_post|none]
                            [--scope S] [--par] [--dpop]

(IDP_INTEROP_ISSUER, IDP_INTEROP_CLIENT_ID, IDP_INTEROP_CLIENT_SECRET, IDP_INTEROP_REDIRECT_URI
stand in for the options.) It prints `AUTHORIZE <url>`, reads one line from standard input — the
URL the browser was sent back to — and prints `RESULT <json>`, or `ERROR <message>` and exits 1.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.integrations.base_client import FrameworkIntegration
from authlib.integrations.base_client.sync_app import BaseApp, OAuth2Mixin
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Auth, OAuth2Session
from authlib.integrations.requests_client.oauth2_session import OAuth2ClientAuth
from authlib.oauth2.rfc6750 import add_bearer_token
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import ECKey


class Failure(Exception):
    pass


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def add_dpop_token(token, uri, headers, body, placement="header"):
    """RFC 9449 §7.1: `Authorization: DPoP <token>` (the proof itself comes from DPoPAuth)."""
    headers = dict(headers or {})
    headers["Authorization"] = f"DPoP {token}"
    return uri, headers, body


class TokenAuth(OAuth2Auth):
    """Authlib's token auth, taught the DPoP token type beside bearer."""

    SIGN_METHODS = {"bearer": add_bearer_token, "dpop": add_dpop_token}


class DPoPKey:
    """The client's DPoP key (P-256) and the server's latest nonce."""

    def __init__(self):
        self.key = ECKey.generate_key("P-256")
        self.nonce = None

    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        parts = urlsplit(url)
        claims = {
            "jti": generate_token(24),
            "htm": method.upper(),
            # RFC 9449 §4.2: the target URI without query and fragment.
            "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "iat": int(time.time()),
        }
        if self.nonce:
            claims["nonce"] = self.nonce
        if access_token:
            claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
        header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key)


def asks_for_nonce(resp) -> bool:
    if resp.status_code == 401:
        return "use_dpop_nonce" in resp.headers.get("WWW-Authenticate", "")
    if resp.status_code == 400:
        try:
            return resp.json().get("error") == "use_dpop_nonce"
        except ValueError:
            return False
    return False


class DPoPAuth(requests.auth.AuthBase):
    """Wraps Authlib's client or token auth: adds a fresh proof to the request, remembers the
    server's DPoP-Nonce, and on `use_dpop_nonce` sends the request once more with it (the way
    requests' own digest auth answers a challenge)."""

    def __init__(self, dpop: DPoPKey, inner=None, access_token=None):
        self.dpop = dpop
        self.inner = inner
        self.access_token = access_token
        self.retried = False

    def __call__(self, r):
        if self.inner is not None:
            r = self.inner(r)
        r.headers["DPoP"] = self.dpop.proof(r.method, r.url, self.access_token)
        r.register_hook("response", self.on_response)
        return r

    def remember(self, resp):
        nonce = resp.headers.get("DPoP-Nonce")
        if nonce:
            self.dpop.nonce = nonce

    def on_response(self, resp, **kwargs):
        self.remember(resp)
        if self.retried or not asks_for_nonce(resp):
            return resp
        self.retried = True
        resp.content  # read it all, so the connection can be reused
        resp.close()
        again = resp.request.copy()
        again.headers["DPoP"] = self.dpop.proof(again.method, again.url, self.access_token)
        second = resp.connection.send(again, **kwargs)
        second.history.append(resp)
        second.request = again
        self.remember(second)
        return second


class App(OAuth2Mixin, OpenIDMixin, BaseApp):
    """Authlib's framework-independent OAuth 2.0 / OpenID Connect app on a requests session."""

    client_cls = OAuth2Session


def run(args) -> dict:
    issuer = args.issuer.rstrip("/")
    app = App(
        FrameworkIntegration("interop"),
        name="interop",
        client_id=args.client_id,
        client_secret=args.client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": args.scope,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": args.auth_method,
            "default_timeout": 30,
        },
    )
    metadata = app.load_server_metadata()
    described = OpenIDProviderMetadata({k: v for k, v in metadata.items() if not k.startswith("_")})
    described.validate()
    if described["issuer"] != issuer:
        raise Failure(f"discovery names issuer {described['issuer']}, not {issuer}")

    dpop = DPoPKey() if args.dpop else None
    client_auth = OAuth2ClientAuth(args.client_id, args.client_secret, args.auth_method)

    # PKCE S256 (Authlib makes the verifier), state and nonce.
    request = app.create_authorization_url(redirect_uri=args.redirect_uri)
    url = request["url"]
    if args.par:
        endpoint = metadata.get("pushed_authorization_request_endpoint")
        if not endpoint:
            raise Failure("discovery has no pushed_authorization_request_endpoint")
        params = dict(parse_qsl(urlsplit(url).query))
        auth = DPoPAuth(dpop, client_auth) if dpop else client_auth
        resp = app.post(endpoint, data=params, auth=auth, withhold_token=True)
        if resp.status_code != 201:
            raise Failure(f"PAR answered {resp.status_code}: {resp.text}")
        pushed = resp.json()
        url = add_params_to_uri(
            metadata["authorization_endpoint"],
            [("client_id", args.client_id), ("request_uri", pushed["request_uri"])],
        )
    print(f"AUTHORIZE {url}", flush=True)

    callback = sys.stdin.readline().strip()
    if not callback:
        raise Failure("standard input closed before the callback URL")
    answer = dict(parse_qsl(urlsplit(callback).query))
    if "error" in answer:
        raise Failure(f"authorization error {answer['error']}: {answer.get('error_description', '')}")
    # RFC 9207: Authlib's client does not check `iss`, so it is checked here.
    if metadata.get("authorization_response_iss_parameter_supported") and answer.get("iss") != issuer:
        raise Failure(f"callback iss {answer.get('iss')!r} is not the issuer {issuer!r}")

    # Authlib checks the state, sends the code with the verifier and authenticates the client.
    token_auth = DPoPAuth(dpop, client_auth) if dpop else None
    token = app.fetch_access_token(
        redirect_uri=args.redirect_uri,
        authorization_response=callback,
        state=request["state"],
        code_verifier=request["code_verifier"],
        auth=token_auth,
    )
    # Signature with the JWKS, iss, aud, exp, nonce, at_hash.
    claims_options = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": args.client_id},
        "exp": {"essential": True},
    }
    id_claims = app.parse_id_token(token, nonce=request["nonce"], claims_options=claims_options)
    if id_claims is None:
        raise Failure("no id_token in the token response")

    def userinfo_auth(tok):
        inner = TokenAuth(tok)
        return DPoPAuth(dpop, inner, access_token=tok["access_token"]) if dpop else inner

    resp = app.get(metadata["userinfo_endpoint"], token=token, auth=userinfo_auth(token))
    if resp.status_code != 200:
        raise Failure(f"userinfo answered {resp.status_code}: {resp.headers.get('WWW-Authenticate', '')} {resp.text}")
    userinfo = resp.json()
    if userinfo.get("sub") != id_claims["sub"]:
        raise Failure(f"userinfo sub {userinfo.get('sub')!r} is not the ID token's {id_claims['sub']!r}")

    refreshed, refreshed_type = False, None
    if token.get("refresh_token"):
        session = OAuth2Session(args.client_id, args.client_secret, token_endpoint_auth_method=args.auth_method)
        again = session.refresh_token(
            metadata["token_endpoint"],
            refresh_token=token["refresh_token"],
            auth=DPoPAuth(dpop, client_auth) if dpop else client_auth,
        )
        refreshed, refreshed_type = bool(again.get("access_token")), again.get("token_type")

    dpop_jkt = None
    try:
        body = token["access_token"].split(".")[1]
        dpop_jkt = (json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))).get("cnf") or {}).get("jkt")
    except (IndexError, ValueError):
        pass
    return {
        "library": "authlib",
        "token_type": token.get("token_type"),
        "id_token_sub": id_claims["sub"],
        "userinfo_sub": userinfo.get("sub"),
        "userinfo": userinfo,
        "dpop_jkt": dpop_jkt,
        "key_jkt": dpop.jkt() if dpop else None,
        "refreshed": refreshed,
        "refreshed_token_type": refreshed_type,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--issuer", default=os.environ.get("IDP_INTEROP_ISSUER"))
    p.add_argument("--client-id", default=os.environ.get("IDP_INTEROP_CLIENT_ID"))
    p.add_argument("--client-secret", default=os.environ.get("IDP_INTEROP_CLIENT_SECRET"))
    p.add_argument("--redirect-uri", default=os.environ.get("IDP_INTEROP_REDIRECT_URI"))
    p.add_argument("--auth-method", default="client_secret_basic")
    p.add_argument("--scope", default="openid profile email offline_access")
    p.add_argument("--par", action="store_true")
    p.add_argument("--dpop", action="store_true")
    args = p.parse_args()
    try:
        for name in ("issuer", "client_id", "redirect_uri"):
            if not getattr(args, name):
                raise Failure(f"--{name.replace('_', '-')} is required")
        result = run(args)
    except Exception as e:  # every failure is one ERROR line
        message = f"{type(e).__name__}: {e}"
        for attr in ("error", "description"):
            if getattr(e, attr, None) and str(getattr(e, attr)) not in message:
                message += f" ({attr}: {getattr(e, attr)})"
        print("ERROR " + " ".join(message.split()), flush=True)
        sys.exit(1)
    print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
