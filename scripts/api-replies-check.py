#!/usr/bin/env python3
"""Walks a running server through a day's objects and validates every reply against the
schema that /openapi.json gives for the reply's operation and status.

The schema-driven fuzz run mostly reaches errors (its ids rarely name objects that exist); this
walk makes each kind of object and reads it back, so that every success reply is checked too:
channels, users, merchants, riders, top-ups and their answers, wallet and channel payments,
capture, refunds, campaigns, coupons, payouts, settlement runs, balances, statements, payment
lists, the platform's balances, batches, the ledger's lookups and pages, and API keys.

usage: api-replies-check.py URL ADMIN_KEY
Needs the `jsonschema` package (schemathesis brings it). Exits 1 on the first reply that does
not match, printing the operation, the reply and the validation error.
"""

import json
import re
import sys
import time
import urllib.error
import urllib.request

from jsonschema import Draft202012Validator


def main():
    url, key = sys.argv[1].rstrip("/"), sys.argv[2]
    doc = json.load(urllib.request.urlopen(url + "/openapi.json"))
    checked = []

    def operation(method, path):
        """The documented operation a concrete path is an instance of."""
        for template, item in doc["paths"].items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if re.match(pattern, path) and method in item:
                return template, item[method]
        sys.exit(f"{method.upper()} {path}: not in the document")

    def call(method, path, body=None, status=200):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url + path, data=data, method=method.upper())
        request.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request) as reply:
                got, content_type, raw = reply.status, reply.headers["Content-Type"], reply.read()
        except urllib.error.HTTPError as e:
            got, content_type, raw = e.code, e.headers["Content-Type"], e.read()
        bare = path.split("?")[0]
        template, op = operation(method, bare)
        what = f"{method.upper()} {path} -> {got}"
        if got != status:
            sys.exit(f"{what}, expected {status}: {raw[:500]!r}")
        documented = op["responses"].get(str(got))
        if documented is None:
            sys.exit(f"{what}: status not documented for {template}")
        content = documented.get("content", {})
        media = (content_type or "").split(";")[0].strip()
        if media not in {m.split(";")[0] for m in content}:
            sys.exit(f"{what}: content type {content_type} not documented ({list(content)})")
        if media != "application/json":
            checked.append(f"{method.upper()} {template} {got}")
            return raw.decode()
        value = json.loads(raw)
        schema = next(c["schema"] for m, c in content.items() if m.split(";")[0] == media)
        validator = Draft202012Validator({**schema, "components": doc["components"]})
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            sys.exit(f"{what}: the reply does not match its schema:\n"
                     f"{json.dumps(value, indent=1)[:3000]}\n{errors[0]}")
        checked.append(f"{method.upper()} {template} {got}")
        return value

    post = lambda path, body=None, status=200: call("post", path, {} if body is None else body, status)
    get = lambda path, status=200: call("get", path, None, status)

    channel = post("/v1/channels", {"currency": "CNY"})["id"]
    call("put", f"/v1/channels/{channel}/bank_account", {"account": "CN00 1234 5678 0001"})
    get(f"/v1/channels/{channel}/bank_account")
    user = post("/v1/users", {"currency": "CNY"})["id"]
    merchant = post("/v1/merchants", {"currency": "CNY", "commission_bps": 1000, "channel": channel})["id"]
    rider = post("/v1/riders", {"currency": "CNY"})["id"]
    topup = post("/v1/topups", {"user": user, "channel": channel, "amount": 100_000})
    post(f"/v1/topups/{topup['id']}/confirm")
    failed = post("/v1/topups", {"user": user, "channel": channel, "amount": 5})
    post(f"/v1/topups/{failed['id']}/fail")
    withdrawal = post("/v1/withdrawals", {"user": user, "channel": channel, "amount": 1_000})
    post(f"/v1/withdrawals/{withdrawal['id']}/confirm")

    pay = post("/v1/payments", {"user": user, "merchant": merchant, "rider": rider,
                                "food_amount": 3000, "delivery_fee": 500})
    post("/v1/refunds", {"payment": pay["id"], "amount": 1000})
    refund = post("/v1/refunds", {"payment": pay["id"], "amount": 2500})
    get(f"/v1/refunds/{refund['id']}")
    get(f"/v1/payments/{pay['id']}")

    campaign = post("/v1/campaigns", {"currency": "CNY", "funder": "platform", "budget": 10_000,
                                      "amount_off": 800, "min_order": 2000})
    get(f"/v1/campaigns/{campaign['id']}")
    coupon = post("/v1/coupons", {"campaign": campaign["id"], "user": user})
    post("/v1/payments", {"user": user, "merchant": merchant, "rider": rider, "food_amount": 5000,
                          "delivery_fee": 400, "currency": "CNY", "coupon": coupon["id"]})
    # A merchant funds its campaign from what it has earned.
    merchant_campaign = post("/v1/campaigns", {"currency": "CNY", "funder": merchant,
                                               "budget": 1_000, "amount_off": 100})
    get(f"/v1/campaigns/{merchant_campaign['id']}")
    held = post("/v1/payments", {"user": user, "merchant": merchant, "rider": rider,
                                 "food_amount": 2000, "channel": channel})
    post(f"/v1/payments/{held['id']}/capture")
    released = post("/v1/payments", {"user": user, "merchant": merchant, "rider": rider,
                                     "food_amount": 2000, "channel": channel})
    post(f"/v1/payments/{released['id']}/release")

    post("/v1/batch", {
        "payments": [
            {"user": user, "merchant": merchant, "rider": rider, "food_amount": 100},
            {"user": user, "merchant": merchant, "rider": rider, "food_amount": 10**12},
        ],
        "refunds": [{"payment": pay["id"], "amount": 1}],
    })

    for party in (user, merchant, rider, channel, campaign["id"]):
        get(f"/v1/balances/{party}")
    statement = get(f"/v1/statements/{user}?limit=2")
    get(f"/v1/statements/{user}?starting_after={statement['data'][-1]['id']}")
    page = get(f"/v1/payments?merchant={merchant}&limit=1")
    get(f"/v1/payments?merchant={merchant}&starting_after={page['data'][0]['id']}")
    get(f"/v1/payments?user={user}")

    payout = post("/v1/payouts", {"merchant": merchant, "amount": 100})
    post(f"/v1/payouts/{payout['id']}/fail")
    run = post("/v1/settlement_runs")
    get(f"/v1/settlement_runs/{run['id']}")
    get(f"/v1/settlement_runs/{run['id']}/payouts.csv")
    for line in run["lines"]:
        if line["payout"]:
            post(f"/v1/payouts/{line['payout']}/confirm")
    get("/v1/platform/balances")

    entries = get(f"/v1/statements/{merchant}")["data"]
    transfers = post("/v1/ledger/transfers/lookup", {"ids": [e["id"] for e in entries]})
    account = transfers[0]["credit_account_id"]
    post("/v1/ledger/accounts/lookup", {"ids": [account, transfers[0]["debit_account_id"]]})
    get(f"/v1/ledger/accounts/{account}/transfers?limit=2")
    post("/v1/ledger/accounts", [{"id": "900000001", "ledger": 1, "code": 1},
                                 {"id": "900000002", "ledger": 1, "code": 1}])
    post("/v1/ledger/transfers", [{"id": "900000003", "debit_account_id": "900000001",
                                   "credit_account_id": "900000002", "amount": "10",
                                   "ledger": 1, "code": 1}])

    made = post("/v1/api_keys", {"role": "merchant", "merchant": merchant})
    rotated = post(f"/v1/api_keys/{made['id']}/rotate", {"overlap_seconds": 60})
    get(f"/v1/api_keys/{rotated['id']}")
    call("delete", f"/v1/api_keys/{rotated['id']}")
    keys = get("/v1/api_keys?limit=1")
    get(f"/v1/api_keys?starting_after={keys['data'][0]['id']}")

    # Webhooks, on a port that refuses connections (the server runs with
    # --webhooks-allow-private): each attempt fails, and names its event.
    endpoint = post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hook",
                                              "enabled_events": ["*"], "description": "walk"})
    mine = post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/mine", "merchant": merchant,
                                          "enabled_events": ["payment.succeeded", "payout.paid"]})
    post("/v1/payments", {"user": user, "merchant": merchant, "rider": rider, "food_amount": 100})
    attempts = {"data": []}
    for _ in range(100):
        attempts = get(f"/v1/webhook_endpoints/{endpoint['id']}/attempts")
        if attempts["data"]:
            break
        time.sleep(0.05)
    if not attempts["data"]:
        sys.exit("no webhook delivery was attempted")
    event = attempts["data"][0]["event"]
    get(f"/v1/events/{event}")
    listed = get("/v1/events?limit=1")
    get(f"/v1/events?starting_after={listed['data'][0]['id']}&type=payment.succeeded")
    get("/v1/webhook_endpoints")
    get(f"/v1/webhook_endpoints/{mine['id']}")
    post(f"/v1/webhook_endpoints/{mine['id']}/rotate_secret", {"overlap_seconds": 60})
    post(f"/v1/webhook_endpoints/{endpoint['id']}/replay", {"event": event})
    post(f"/v1/webhook_endpoints/{endpoint['id']}", {"disabled": True})
    post(f"/v1/webhook_endpoints/{endpoint['id']}/replay", {"event": event}, status=409)
    call("delete", f"/v1/webhook_endpoints/{mine['id']}")
    call("delete", f"/v1/webhook_endpoints/{endpoint['id']}")

    # Errors are replies too.
    get("/v1/payments/pay_999999999", status=404)
    post("/v1/refunds", {"payment": pay["id"], "amount": 10**9}, status=422)

    operations = sorted(set(checked))
    print(f"{len(checked)} replies matched their schemas, {len(operations)} operations and statuses:")
    for o in operations:
        print("  " + o)


if __name__ == "__main__":
    main()
