"""Does a 404 from POST /api/v1/codes/redeem say anything about which codes
exist? Interleaves N redemptions of random codes of the campaign's shape
with N of near misses (a real code with its last symbol changed: the same
index path down to the last comparison) and compares their latency.

    python3 bench/code_timing.py HOST:PORT TOKEN CODES_FILE [N]

The server must run with --code-guesses-per-user 0 --code-guesses-per-address 0
(or every guess after the tenth is a 429). Prints one summary line.
"""

import http.client
import json
import random
import secrets
import statistics
import sys
import time

host, token, codes_file = sys.argv[1], sys.argv[2], sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
real = [line.split(",")[0] for line in open(codes_file) if line and not line.startswith("code,")]
real_set = set(real)


def near_miss():
    while True:
        code = random.choice(real)
        miss = code[:-1] + secrets.choice(alphabet)
        if miss not in real_set:
            return miss


def far():
    while True:
        code = "".join(secrets.choice(alphabet) for _ in range(len(real[0])))
        if code not in real_set:
            return code


conn = http.client.HTTPConnection(host)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def once(code):
    body = json.dumps({"code": code})
    started = time.perf_counter_ns()
    conn.request("POST", "/api/v1/codes/redeem", body, headers)
    r = conn.getresponse()
    r.read()
    took = time.perf_counter_ns() - started
    assert r.status == 404, (code, r.status)
    return took / 1000.0  # microseconds


for _ in range(200):  # warm-up
    once(far())
times = {"far": [], "near": []}
for _ in range(n):
    order = [("far", far()), ("near", near_miss())]
    random.shuffle(order)
    for kind, code in order:
        times[kind].append(once(code))


def q(xs, p):
    return statistics.quantiles(xs, n=100)[p - 1]


far_med, near_med = statistics.median(times["far"]), statistics.median(times["near"])
iqr = q(times["far"], 75) - q(times["far"], 25)
print(
    f"timing n={n} far_median_us={far_med:.1f} near_median_us={near_med:.1f} "
    f"diff_us={near_med - far_med:+.1f} far_iqr_us={iqr:.1f} "
    f"far_p90_us={q(times['far'], 90):.1f} near_p90_us={q(times['near'], 90):.1f}"
)
