#!/usr/bin/env python3
"""The abuse side of bench/abuse.sh: cheap attacks on a running server.

While it runs (until SIGTERM or --seconds), at fixed rates:
  * SSE: --sse idle live streams (--live: a campaign's, or a sale's) (never read: the server
    must neither buffer for them without end nor slow down), spread over
    source addresses 127.0.0.2.. so each stays under the per-address cap;
  * log-in flood: --logins per second with a real e-mail and a wrong
    password (each one an Argon2 verification if admitted), the client
    hanging up right after sending, from rotating source addresses so the
    per-address limiter does not stop them all;
  * subscription toggling: --toggles per second, PUT then DELETE
    /subscription, by the users whose tokens are in TOKENS;
  * ghost tokens: --ghosts per second of claims with forged bearer tokens.
It prints one JSON line of counts when it stops, and writes READY_FILE
once the streams are open.
Standard library only.
"""
import argparse
import asyncio
import base64
import collections
import json
import os
import random
import signal
import sys
import time

counts = collections.Counter()


def request(method, path, host, token=None, body=None):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    else:
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n" + (body or "")).encode()


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def paced(rate, stop, action):
    """Call action() `rate` times a second (each on its own task) until stop."""
    if rate <= 0:
        return
    interval, due = 1.0 / rate, time.monotonic()
    tasks = set()
    while not stop.is_set():
        due += interval
        t = asyncio.create_task(action())
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1:
            due = time.monotonic()  # fell behind: do not burst to catch up
            counts["driver_behind"] += 1
    for t in list(tasks):
        t.cancel()


async def open_sse(args, n, streams):
    src = f"127.0.0.{2 + n // args.per_address}"
    try:
        reader, writer = await asyncio.open_connection(args.host, args.port, local_addr=(src, 0))
        writer.write(request("GET", args.live or f"/api/v1/campaigns/{args.campaign}/live", args.host))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        status = int(head.split(b" ", 2)[1])
        counts[f"sse_{status}"] += 1
        if status == 200:
            streams.append((reader, writer))  # held open, never read
        else:
            writer.close()
    except Exception as e:  # noqa: BLE001 - counted, the flood goes on
        counts[f"sse_error_{type(e).__name__}"] += 1


async def login(args, k):
    src = f"127.0.1.{k % 250 + 1}"
    body = json.dumps({"email": args.email, "password": f"wrong-{k}"})
    try:
        _, writer = await asyncio.open_connection(args.host, args.port, local_addr=(src, 0))
        writer.write(request("POST", "/api/v1/auth/login", args.host, body=body))
        await writer.drain()
        writer.close()  # hang up without waiting for the answer
        counts["login_sent"] += 1
    except Exception as e:  # noqa: BLE001
        counts[f"login_error_{type(e).__name__}"] += 1


class Keepalive:
    """A pool of keep-alive connections, one request at a time on each."""

    def __init__(self, args, size):
        self.args, self.free = args, asyncio.Queue()
        for _ in range(size):
            self.free.put_nowait(None)

    async def send(self, raw, label):
        conn = await self.free.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(self.args.host, self.args.port)
            reader, writer = conn
            writer.write(raw)
            await writer.drain()
            status = await asyncio.wait_for(read_response(reader), 30)
            counts[f"{label}_{status}"] += 1
        except Exception as e:  # noqa: BLE001
            counts[f"{label}_error_{type(e).__name__}"] += 1
            conn = None
        finally:
            self.free.put_nowait(conn)


def forged_token(k):
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    head = b64({"alg": "HS256", "typ": "JWT"})
    claims = b64({"sub": "01930000-0000-7000-8000-%012d" % k, "role": "admin", "iat": 0, "exp": 4102444800})
    return f"{head}.{claims}.{base64.urlsafe_b64encode(os.urandom(32)).rstrip(b'=').decode()}"


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--campaign", required=True)
    p.add_argument("--live", help="the live stream's path (default: the campaign's)")
    p.add_argument("--tokens", required=True)
    p.add_argument("--email", required=True, help="an account that exists")
    p.add_argument("--sse", type=int, default=10_000)
    p.add_argument("--per-address", type=int, default=250)
    p.add_argument("--logins", type=float, default=200)
    p.add_argument("--toggles", type=float, default=300)
    p.add_argument("--ghosts", type=float, default=300)
    p.add_argument("--seconds", type=float, default=3600)
    p.add_argument("--ready-file")
    args = p.parse_args()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.call_later(args.seconds, stop.set)

    streams = []
    for start in range(0, args.sse, 500):
        await asyncio.gather(*(open_sse(args, n, streams) for n in range(start, min(start + 500, args.sse))))
    counts["sse_open_at_start"] = len(streams)

    tokens = [t.strip() for t in open(args.tokens) if t.strip()][:5_000]
    pool = Keepalive(args, 32)
    n = {"login": 0, "toggle": 0, "ghost": 0}

    def next_of(kind):
        n[kind] += 1
        return n[kind]

    async def toggle():
        k = next_of("toggle")
        method = "PUT" if (k // len(tokens)) % 2 == 0 else "DELETE"
        raw = request(method, f"/api/v1/campaigns/{args.campaign}/subscription", args.host, random.choice(tokens))
        await pool.send(raw, "toggle")

    async def ghost():
        raw = request("POST", f"/api/v1/campaigns/{args.campaign}/issue", args.host, forged_token(next_of("ghost")))
        await pool.send(raw, "ghost")

    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write(json.dumps(counts) + "\n")
    started = time.monotonic()
    await asyncio.gather(
        stop.wait(),
        paced(args.logins, stop, lambda: login(args, next_of("login"))),
        paced(args.toggles, stop, toggle),
        paced(args.ghosts, stop, ghost),
    )
    async def still_open(reader):
        try:
            while True:  # drain what was sent; an end of stream means closed
                if not await asyncio.wait_for(reader.read(1 << 20), 0.5):
                    return False
        except asyncio.TimeoutError:
            return True
        except Exception:  # noqa: BLE001
            return False

    results = await asyncio.gather(*(still_open(r) for r, _ in streams))
    counts["sse_open_at_end"] = sum(results)
    counts["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(dict(sorted(counts.items()))), flush=True)
    os._exit(0)  # do not wait to close 10,000 sockets politely


if __name__ == "__main__":
    asyncio.run(main())
