"""p50 and p99 latency in ms of GET <path> against the controller's REST API, <count> requests
one after another; "{id}" in the path becomes a random node id. Prints "p50 p99".
Usage: api_latency.py <api base url> <admin token> <ca file> <count> <path>"""
import json
import random
import ssl
import sys
import time
import urllib.request

api, token, ca, n, path = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)


def get(p):
    req = urllib.request.Request(api + p, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, context=ctx, timeout=120) as r:
        return r.read()


ids = [i["id"] for i in json.loads(get("/v1/nodes?limit=1000"))["items"]] if "{id}" in path else []
lat = []
for _ in range(n):
    p = path.replace("{id}", random.choice(ids)) if ids else path
    t = time.perf_counter()
    get(p)
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(f"{lat[len(lat)//2]:.0f} {lat[min(len(lat)-1, int(len(lat)*0.99))]:.0f}")
