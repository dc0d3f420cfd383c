"""The monitoring proof's Python half (scripts/prometheus.sh runs it).

Drives a small drop on a running flashcoupon and dead-letters one poison
message of each consumed queue (AMQP_URL, AMQP_NAMESPACE), saves its /metrics text, waits
until a real Prometheus has scraped the result and evaluated the alert rules,
then evaluates every dashboard query (panel targets and template variables)
and every alert rule's expression through Prometheus' HTTP API. Fails if
any answers an error, or names a flashcoupon_* metric that the server does
not export. Standard library only.

    python3 scripts/prometheus_check.py SERVER_URL PROMETHEUS_URL DASHBOARD ALERTS METRICS_OUT
"""

import datetime
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# What Grafana puts in place of its variables when it runs a panel: one job,
# every instance, and a rate window of at least four scrapes.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "${job}": "flashcoupon",
    "$job": "flashcoupon",
    "${instance}": ".*",
    "$instance": ".*",
}
METRIC = re.compile(r"\bflashcoupon_[a-zA-Z0-9_]+")
SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


def call(url, method="GET", body=None, token=None):
    req = urllib.request.Request(url, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def drop(server):
    """A campaign of 3, one per person, claimed by 5 shoppers, one of them
    twice; and a live stock stream left open (returned, to keep it open)."""
    _, login = call(server + "/api/v1/auth/login", "POST", {
        "email": os.environ["FLASHCOUPON_ADMIN_EMAIL"],
        "password": os.environ["FLASHCOUPON_ADMIN_PASSWORD"]})
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    status, campaign = call(server + "/api/v1/campaigns", "POST", {
        "name": "prometheus drop",
        "discount": {"type": "fixed", "amount": 5000},
        "total_quantity": 3, "per_user_limit": 1,
        "issue_starts_at": (now - datetime.timedelta(minutes=1)).isoformat(),
        "issue_ends_at": (now + datetime.timedelta(hours=1)).isoformat(),
        "valid_days": 7}, login["token"])
    assert status == 201, (status, campaign)
    issue = f"{server}/api/v1/campaigns/{campaign['id']}/issue"
    answers = []
    for n in range(5):
        _, user = call(server + "/api/v1/auth/signup", "POST", {
            "email": f"shopper{n}@example.com", "password": "shopper-password"})
        answers.append(call(issue, "POST", token=user["token"])[0])
        if n == 0:
            answers.append(call(issue, "POST", token=user["token"])[0])
    print(f"    drop: claims answered {answers}")
    assert answers.count(201) == 3, answers
    return urllib.request.urlopen(f"{server}/api/v1/campaigns/{campaign['id']}/live", timeout=30)


def poison(prometheus):
    """One message that is no event into each consumed queue, once the
    consumer is on it: it goes to the dead letters, which the depth gauge
    must show."""
    for kind in ("payments", "triggers"):
        queue = f"{os.environ['AMQP_NAMESPACE']}.{kind}"
        wait_for(prometheus, f'flashcoupon_broker_queue_messages{{queue="{queue}"}}', f"the queue {queue}")
        subprocess.run(["amqp-publish", "--url", os.environ["AMQP_URL"], "--routing-key", queue,
                        "--body", "not an event"], check=True)
        wait_for(prometheus, f'flashcoupon_broker_queue_messages{{queue="{queue}.dead"}} == 1',
                 f"the dead letter of {queue} in the consumer-lag gauge")


def query(prometheus, expr):
    """(error or None, number of series) of an instant query."""
    url = prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            answer = json.load(r)
    except urllib.error.HTTPError as e:
        answer = json.loads(e.read() or b"null") or {}
    if answer.get("status") != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}", 0
    result = answer["data"]["result"]
    return None, len(result) if isinstance(result, list) else 1


def exported_metrics(text):
    """Families with at least one sample in a text exposition."""
    typed, sampled = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            sampled.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return {name for name in typed
            if name in sampled or any(name + s in sampled for s in SERIES_SUFFIXES)}


def family(name, exported):
    """The family a series name belongs to: histogram series map to their base name."""
    for suffix in SERIES_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return name


def wait_for(prometheus, expr, what, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        error, series = query(prometheus, expr)
        if error is None and series > 0:
            return
        time.sleep(0.5)
    sys.exit(f"FAIL: Prometheus never saw {what} ({expr})")


def dashboard_queries(path, failures):
    """(where, expr) for every panel target and query variable, Grafana's
    variables filled in; structural problems go to `failures`."""
    with open(path) as f:
        dash = json.load(f)
    if not isinstance(dash.get("schemaVersion"), int):
        failures.append("dashboard: no schemaVersion")
    variables = dash.get("templating", {}).get("list", [])
    if not any(v.get("type") == "datasource" and v.get("name") == "DS_PROMETHEUS" for v in variables):
        failures.append("dashboard: no datasource variable DS_PROMETHEUS")
    out = []
    for v in variables:
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            # label_values(selector, label) is Grafana's: the same series as count by (label).
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
            out.append((f"variable ${v['name']}", f"count by ({m[2]}) ({m[1]})" if m else q))
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        failures.append("dashboard: panel ids are not unique")
    for p in panels:
        if p.get("type") == "row":
            continue
        where = f"panel {p.get('title')!r}"
        if (p.get("datasource") or {}).get("uid") != "${DS_PROMETHEUS}":
            failures.append(f"{where}: its datasource is not ${{DS_PROMETHEUS}}")
        if not p.get("targets") or "gridPos" not in p:
            failures.append(f"{where}: no targets or no gridPos")
        for t in p.get("targets", []):
            if not t.get("expr") or not t.get("refId"):
                failures.append(f"{where}: a target without expr or refId")
                continue
            out.append((f"{where} {t['refId']}", t["expr"]))
    filled = []
    for where, expr in out:
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        if "$" in expr:
            failures.append(f"{where}: a variable the check does not know: {expr}")
        filled.append((where, expr))
    return filled


def rule_queries(prometheus, alerts_path, failures):
    """(where, expr) of every rule Prometheus loaded from the alert file,
    once it has evaluated each of them without an error."""
    with open(alerts_path) as f:
        written = len(re.findall(r"^\s*- alert:", f.read(), re.M))
    deadline = time.monotonic() + 30
    while True:
        _, answer = call(prometheus + "/api/v1/rules")
        rules = [r for g in answer["data"]["groups"] for r in g["rules"]]
        evaluated = [r for r in rules if r.get("lastEvaluation", "").startswith("20")]
        if len(evaluated) == len(rules) == written or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if len(rules) != written:
        failures.append(f"alerts: {written} rules written, Prometheus loaded {len(rules)}")
    for r in rules:
        if r.get("health") != "ok":
            failures.append(f"rule {r['name']}: health {r.get('health')}: {r.get('lastError')}")
        for key in ("summary", "description"):
            if not r.get("annotations", {}).get(key):
                failures.append(f"rule {r['name']}: no {key} annotation")
    return [(f"rule {r['name']}", r["query"]) for r in rules]


def main():
    server, prometheus, dashboard, alerts, metrics_out = sys.argv[1:6]
    stream = drop(server)
    poison(prometheus)
    with urllib.request.urlopen(server + "/metrics", timeout=30) as r:
        text = r.read().decode()
    with open(metrics_out, "w") as f:
        f.write(text)
    exported = exported_metrics(text)
    # The drop's end as the next scrapes see it, and two samples past it for rate().
    wait_for(prometheus, 'sum(flashcoupon_issue_outcomes_total{result="issued"}) == 3',
             "the three issued coupons")
    wait_for(prometheus, "flashcoupon_sse_connections >= 1", "the open live stream")
    time.sleep(2.5)

    failures = []
    checked = dashboard_queries(dashboard, failures)
    panels = len(checked)
    checked += rule_queries(prometheus, alerts, failures)
    referenced = set()
    for where, expr in checked:
        error, series = query(prometheus, expr)
        names = {family(n, exported) for n in METRIC.findall(expr)}
        referenced |= names
        missing = sorted(names - exported)
        if error:
            failures.append(f"{where}: {error}\n      {expr}")
        if missing:
            failures.append(f"{where}: names metrics the server does not export: {', '.join(missing)}")
        print(f"    {'FAIL' if error or missing else 'ok  '} {series:3} series  {where}")
    unused = sorted(n for n in exported - referenced if n.startswith("flashcoupon_"))
    if unused:
        print(f"    exported but on no panel and in no rule: {', '.join(unused)}")
    stream.close()
    for failure in failures:
        print(f"FAIL: {failure}")
    print(f"==> prometheus: {panels} dashboard queries and {len(checked) - panels} alert rules "
          f"evaluated, {len(referenced)} metrics referenced, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
