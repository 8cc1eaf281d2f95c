#!/usr/bin/env python3
"""Verifies huifu webhook deliveries (Standard Webhooks signatures) with the standard library.

    python3 examples/verify_webhook.py                         check verify() on the spec's vector
    python3 examples/verify_webhook.py serve PORT SECRET [HOST]
                                                               receive deliveries, print each one
                                                               verified (HOST: 127.0.0.1)

A delivery carries `webhook-id` (the event id), `webhook-timestamp` (Unix seconds of the attempt)
and `webhook-signature`: space-separated `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
the key being the base64-decoded part of the endpoint's secret after `whsec_`. While a secret
rotation overlaps, two signatures come: one matching is enough. The timestamp must be recent, so
that a captured delivery cannot be sent again later. Deliveries come at least once: deduplicate by
`webhook-id`, and order by the body's `sequence`.
"""

import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_PREFIX = "whsec_"
# A delivery stamped further than this from now is refused.
TOLERANCE_SECONDS = 5 * 60


def signing_key(secret):
    """The key of a `whsec_...` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)


def sign(secret, msg_id, timestamp, body):
    """The `v1,...` signature of a delivery; `body` is the raw bytes received."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret, headers, body, tolerance=TOLERANCE_SECONDS, now=None):
    """Whether a delivery is authentic: one of its signatures matches (compared in constant time)
    and, unless `tolerance` is None, its timestamp is within `tolerance` seconds of `now`.

    `headers` is any mapping of header names (any case) to values; `body` the raw bytes, before
    any JSON parsing (re-encoding would change them)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id", "")
    timestamp = lower.get("webhook-timestamp", "")
    signatures = lower.get("webhook-signature", "")
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if tolerance is not None:
        now = time.time() if now is None else now
        if abs(now - sent) > tolerance:
            return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(
        hmac.compare_digest(expected.encode(), given.encode())
        for given in signatures.split(" ")
        if given.startswith("v1,")
    )


def self_check():
    """verify() against the published test vector of the Standard Webhooks specification."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    checks = [
        ("the vector verifies", verify(secret, headers, body, tolerance=None)),
        ("sign() makes the vector's signature",
         sign(secret, headers["webhook-id"], headers["webhook-timestamp"], body)
         == headers["webhook-signature"]),
        ("a second signature beside it is fine",
         verify(secret, {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]},
                body, tolerance=None)),
        ("header names in any case", verify(secret, {k.upper(): v for k, v in headers.items()}, body,
                                            tolerance=None)),
        ("a changed body fails", not verify(secret, headers, b'{"test": 2432232315}', tolerance=None)),
        ("a changed id fails", not verify(secret, {**headers, "webhook-id": "msg_other"}, body,
                                          tolerance=None)),
        ("another secret fails", not verify("whsec_" + base64.b64encode(b"other").decode(), headers,
                                            body, tolerance=None)),
        ("within the tolerance", verify(secret, headers, body, now=1614265330 + TOLERANCE_SECONDS)),
        ("a stale timestamp fails", not verify(secret, headers, body)),
    ]
    for name, ok in checks:
        print(("ok      " if ok else "FAILED  ") + name)
    return all(ok for _, ok in checks)


def serve(port, secret, host="127.0.0.1"):
    """A receiver: answers 2xx to each verified delivery (printing it, once per event id) and 401
    to anything else."""
    signing_key(secret)  # a bad secret fails now, not at the first delivery
    seen = set()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if not verify(secret, dict(self.headers.items()), body):
                self.send_response(401)
                self.end_headers()
                print(f"refused {self.headers.get('webhook-id')}: signature or timestamp invalid",
                      flush=True)
                return
            msg_id = self.headers.get("webhook-id")
            event = json.loads(body)
            again = " (again)" if msg_id in seen else ""
            seen.add(msg_id)
            obj = event.get("data", {}).get("object", {})
            print(f"{event.get('endpoint')} #{event.get('sequence')} {event.get('type')} "
                  f"{obj.get('id')} {msg_id}{again}", flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass  # one line per event is printed above

    server = ThreadingHTTPServer((host, port), Receiver)
    print(f"receiving on http://{host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv):
    if len(argv) == 1:
        return 0 if self_check() else 1
    if argv[1] == "serve" and len(argv) in (4, 5):
        serve(int(argv[2]), argv[3], *argv[4:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
