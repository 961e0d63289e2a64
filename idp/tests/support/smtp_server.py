#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the mail tests.

Listens on 127.0.0.1, on a port the system picks, and prints `port N` on standard output once
it accepts connections. Each message that reaches the end of DATA is written to OUT as
`N.json` (envelope, content, whether TLS and AUTH were used, whether it was accepted) before the
server answers, so a client that saw the answer can read the file at once. Exits when its
standard input closes, so a test that dies does not leave it running.

Modes:
  plain     no TLS (and no STARTTLS offered)
  smtps     implicit TLS from the first byte (needs --cert/--key)
  starttls  offers STARTTLS and refuses every command but EHLO/STARTTLS/QUIT before it
  refuse    like plain, but answers 550 to every message
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, out, refuse):
        self.out = out
        self.refuse = refuse
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if server._tls_protocol is not None:
            tls = "starttls"
        elif server.transport.get_extra_info("ssl_object") is not None:
            tls = "implicit"
        else:
            tls = None
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", errors="replace"),
            "tls": tls,
            "auth_login": session.auth_data if session.authenticated else None,
            "accepted": not self.refuse,
        }
        path = os.path.join(self.out, f"{self.count}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.replace(path + ".tmp", path)
        if self.refuse:
            return "550 5.7.1 Message refused by policy"
        return "250 2.0.0 Message accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["plain", "smtps", "starttls", "refuse"])
    p.add_argument("--out", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth", help="USER:PASSWORD that clients must sign in with")
    a = p.parse_args()
    # aiosmtpd warns that AUTH is offered without STARTTLS, not seeing the implicit TLS (smtps)
    # under it, and logs deprecations of its own; neither tells a test anything.
    warnings.simplefilter("ignore", UserWarning)
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    context = None
    if a.mode in ("smtps", "starttls"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
    user = password = None
    if a.auth:
        user, password = a.auth.split(":", 1)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    recorder = Recorder(a.out, refuse=a.mode == "refuse")

    def protocol():
        return SMTP(
            recorder,
            hostname="mail.test",
            loop=loop,
            tls_context=context if a.mode == "starttls" else None,
            require_starttls=a.mode == "starttls",
            auth_required=user is not None,
            # Under implicit TLS aiosmtpd does not see a STARTTLS, so it must not wait for one.
            auth_require_tls=a.mode == "starttls",
            authenticator=authenticator if user is not None else None,
        )

    implicit = context if a.mode == "smtps" else None
    server = loop.run_until_complete(loop.create_server(protocol, host="127.0.0.1", port=0, ssl=implicit))
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)

    def exit_when_stdin_closes():
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    loop.run_forever()


if __name__ == "__main__":
    main()
