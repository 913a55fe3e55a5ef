#!/usr/bin/env python3
"""Times login with a wrong password, an unknown email and the right password
against a running keymeter: the first two must be indistinguishable.

    scripts/login-timing.py http://127.0.0.1:8000/graphql
"""
import json, statistics, sys, time, urllib.request
url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/graphql"
EMAIL = f"timing-{int(time.time())}@example.com"
def post(q, v):
    req = urllib.request.Request(url, data=json.dumps({"query": q, "variables": v}).encode(), headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))
post("mutation($e:String!){signup(input:{email:$e,password:\"correct horse\"}){token}}", {"e": EMAIL})
L = "mutation($e:String!,$p:String!){login(input:{email:$e,password:$p}){token}}"
res = {"wrong password": [], "unknown email": [], "right password": []}
for i in range(30):
    for name, e, p in [("wrong password", EMAIL, "wrong horse"), ("unknown email", f"nobody{i}@example.com", "correct horse"), ("right password", EMAIL, "correct horse")]:
        t = time.perf_counter(); r = post(L, {"e": e, "p": p}); res[name].append((time.perf_counter() - t) * 1000)
for k, v in res.items():
    print(f"{k:15s} median {statistics.median(v):6.1f} ms  p90 {sorted(v)[26]:6.1f} ms")
