"""What flashcoupon's OpenAPI document cannot say, told to schemathesis.

JSON Schema cannot compare two fields, nor a field with what the server has
stored, so a generated body that the schema calls valid can still break a
rule the server enforces (and the fields' descriptions state):

- POST /api/v1/campaigns: `issue_ends_at` after `issue_starts_at`;
  `valid_until` not before `issue_ends_at`; `valid_from` before
  `valid_until`.
- PATCH /api/v1/campaigns/{id}: `issue_ends_at` after the campaign's
  `issue_starts_at`, and not after its `valid_until` if it has one.
- POST /api/v1/sales: `ends_at` after `starts_at`; `sale_price` not above
  the product's `list_price`.
- PATCH /api/v1/sales/{id}: `ends_at` after the sale's `starts_at`.

For valid (positive) cases only, this moves the generated times into those
relations just before the request goes out. And one thing for the world
outside: a webhook the fuzzer registers gets deliveries, so its host is
moved under `.invalid` (an IPv4 address to 127.0.0.1, which the server
refuses to send to), and no made-up host is ever contacted. Everything else
is sent as generated, and invalid (negative) cases are left alone: they must
still be refused. Loaded by scripts/schemathesis.sh (`hooks` in its config).
"""

from __future__ import annotations

import datetime as dt
import re

import requests
import schemathesis
from schemathesis import GenerationMode

# The year as written must be 2000..2999 (the schemas' pattern).
_WRITABLE = re.compile(r"^2[0-9]{3}-")
_DAY = dt.timedelta(days=1)
_URL = re.compile(r"^(https?://)([^/:?#]+)(.*)$", re.S)
_IPV4 = re.compile(r"^[0-9.]+$")


def _instant(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _utc(instant: dt.datetime) -> str | None:
    """The instant written in UTC, if its year can be written that way."""
    text = instant.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return text if _WRITABLE.match(text) else None


def _positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _new_campaign(body: dict) -> None:
    starts, ends = _instant(body.get("issue_starts_at")), _instant(body.get("issue_ends_at"))
    if starts is None or ends is None:
        return
    if ends < starts:
        body["issue_starts_at"], body["issue_ends_at"] = body["issue_ends_at"], body["issue_starts_at"]
        starts, ends = ends, starts
    elif ends == starts:
        later = _utc(starts + _DAY)
        if later is not None:
            body["issue_ends_at"], ends = later, starts + _DAY
        else:
            body["issue_starts_at"], starts = _utc(ends - _DAY), ends - _DAY
    until = _instant(body.get("valid_until"))
    if until is not None and until < ends:
        body["valid_until"], until = body["issue_ends_at"], ends
    since = _instant(body.get("valid_from"))
    if until is not None and since is not None and since >= until:
        # issue_starts_at < issue_ends_at <= valid_until
        body["valid_from"] = body["issue_starts_at"]


def _campaign_patch(case, body: dict) -> None:
    ends = _instant(body.get("issue_ends_at"))
    if ends is None:
        return
    base = case.operation.schema.get_base_url().rstrip("/")
    answer = requests.get(f"{base}/api/v1/campaigns/{case.path_parameters['id']}", timeout=10)
    if answer.status_code != 200:
        return  # a 404 is a 404 whatever the body says
    campaign = answer.json()
    starts = _instant(campaign["issue_starts_at"])
    until = _instant(campaign.get("valid_until"))
    if starts < ends and (until is None or ends <= until):
        return
    candidate = campaign.get("valid_until") or _utc(starts + _DAY)
    moved = _instant(candidate)
    if candidate is not None and _WRITABLE.match(candidate) and moved > starts and (until is None or moved <= until):
        body["issue_ends_at"] = candidate
        return
    del body["issue_ends_at"]
    if all(value is None for value in body.values()):
        body["paused"] = False


def _new_sale(body: dict) -> None:
    starts, ends = _instant(body.get("starts_at")), _instant(body.get("ends_at"))
    if starts is not None and ends is not None:
        if ends < starts:
            body["starts_at"], body["ends_at"] = body["ends_at"], body["starts_at"]
        elif ends == starts:
            later = _utc(starts + _DAY)
            if later is not None:
                body["ends_at"] = later
            else:
                body["starts_at"] = _utc(ends - _DAY)
    product = body.get("product")
    if isinstance(product, dict):
        price, most = body.get("sale_price"), product.get("list_price")
        if isinstance(price, (int, float)) and isinstance(most, (int, float)) and price > most:
            body["sale_price"] = most


def _sale_patch(case, body: dict) -> None:
    ends = _instant(body.get("ends_at"))
    if ends is None:
        return
    base = case.operation.schema.get_base_url().rstrip("/")
    answer = requests.get(f"{base}/api/v1/sales/{case.path_parameters['id']}", timeout=10)
    if answer.status_code != 200:
        return  # a 404 is a 404 whatever the body says
    starts = _instant(answer.json()["starts_at"])
    if starts < ends:
        return
    later = _utc(starts + _DAY)
    if later is not None:
        body["ends_at"] = later
        return
    del body["ends_at"]
    if all(value is None for value in body.values()):
        body["paused"] = False


def _new_webhook(body: dict) -> None:
    parts = _URL.match(body.get("url") or "")
    if parts is None:
        return
    scheme, host, rest = parts.groups()
    host = "127.0.0.1" if _IPV4.match(host) else f"{host}.invalid"
    port, path = re.match(r"^(:[0-9]+)?(.*)$", rest, re.S).groups()
    port = port or ""
    # Still at most 2048 characters: the path gives up its tail.
    path = path[: max(0, 2048 - len(scheme + host + port))]
    body["url"] = scheme + host + port + path


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not _positive(case) or not isinstance(case.body, dict):
        return
    route = (case.method.upper(), case.operation.path)
    if route == ("POST", "/api/v1/campaigns"):
        _new_campaign(case.body)
    elif route == ("PATCH", "/api/v1/campaigns/{id}"):
        _campaign_patch(case, case.body)
    elif route == ("POST", "/api/v1/admin/webhooks"):
        _new_webhook(case.body)
    elif route == ("POST", "/api/v1/sales"):
        _new_sale(case.body)
    elif route == ("PATCH", "/api/v1/sales/{id}"):
        _sale_patch(case, case.body)
