"""A single-process parallel request processor in the style of the openai-cookbook's
`api_request_parallel_processor.py`, written for bench/ratelimit as the reference to compare the cluster
with. Needs aiohttp (bench/ratelimit installs it into bench/.venv).

The approach, as the cookbook does it:
- two buckets, one of requests and one of tokens, starting full and refilling continuously at limit/60
  per second. The cookbook's buckets hold one minute's worth; here they hold `bucket_seconds` worth
  (bench/ratelimit uses 1 s, the burst the provider allows: with a minute's worth, the first minute's
  burst is refused by a provider that allows one second's worth, and every refusal costs a 15 s pause);
- a request is sent when both buckets hold enough: 1 request, and its tokens counted as the prompt
  estimate plus max_tokens (the cookbook counts prompt tokens with tiktoken plus max_tokens x n; we use
  the estimate the sim-server charges, the messages' UTF-8 bytes / 4 + 8), never refunded;
- a failed request is put on a retry queue (up to `max_attempts` attempts); after a 429 every new
  request waits (a cool-down for the whole client). The cookbook waits a fixed 15 s; here the wait is the
  429's Retry-After (`retry-after-ms`, else `retry-after`, else 15 s), or the phase would measure 15 s
  pauses rather than the limiter;
- the main loop wakes every millisecond.

Usage (as a library): `asyncio.run(process(requests, ...))`, where each request is a dict with
`content` (the user message), optionally `system` (a system prompt sent before it), `max_tokens` and `seed`.
Returns counts from the client's point of view; bench/ratelimit reads
the figures it reports from the sim-server's /stats.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp


def token_estimate(content: str, max_tokens: int, system: str = "") -> int:
    return (len(content.encode("utf-8")) + len(system.encode("utf-8"))) // 4 + 8 + max_tokens


@dataclass
class Tracker:
    started: int = 0
    in_progress: int = 0
    succeeded: int = 0
    failed: int = 0
    rate_limit_errors: int = 0
    other_errors: int = 0
    last_rate_limit_error: float = 0.0
    # No new request is sent before this time (after a 429).
    paused_until: float = 0.0


def retry_after(headers, default: float = 15.0) -> float:
    """Seconds to wait after a 429, from its headers."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / scale
        except (KeyError, ValueError):
            continue
    return default


@dataclass
class Request:
    index: int
    body: dict
    tokens: int
    attempts_left: int
    errors: list = field(default_factory=list)

    async def call(self, session: aiohttp.ClientSession, url: str, headers: dict, retries: asyncio.Queue,
                   tracker: Tracker, timeout: float) -> None:
        error = None
        try:
            async with session.post(url, json=self.body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                if response.status == 429:
                    tracker.rate_limit_errors += 1
                    tracker.last_rate_limit_error = time.time()
                    tracker.paused_until = max(tracker.paused_until, time.time() + retry_after(response.headers))
                    error = "429"
                elif response.status != 200:
                    tracker.other_errors += 1
                    error = f"HTTP {response.status}"
                else:
                    payload = await response.json(content_type=None)
                    if not payload.get("choices"):
                        tracker.other_errors += 1
                        error = "no choices"
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as problem:
            tracker.other_errors += 1
            error = repr(problem)
        if error is None:
            tracker.in_progress -= 1
            tracker.succeeded += 1
            return
        self.errors.append(error)
        if self.attempts_left > 0:
            retries.put_nowait(self)
        else:
            tracker.in_progress -= 1
            tracker.failed += 1


async def process(requests: list[dict], *, url: str, model: str, api_key: str, max_requests_per_minute: float,
                  max_tokens_per_minute: float, bucket_seconds: float = 60, max_attempts: int = 5,
                  timeout: float = 60) -> Tracker:
    headers = {"Authorization": f"Bearer {api_key}"}
    retries: asyncio.Queue = asyncio.Queue()
    tracker = Tracker()
    pending = iter(requests)
    next_request: Request | None = None
    exhausted = False

    max_request_capacity = max_requests_per_minute * bucket_seconds / 60
    max_token_capacity = max_tokens_per_minute * bucket_seconds / 60
    request_capacity = max_request_capacity
    token_capacity = max_token_capacity
    last_update = time.time()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        while True:
            if next_request is None:
                if not retries.empty():
                    next_request = retries.get_nowait()
                elif not exhausted:
                    item = next(pending, None)
                    if item is None:
                        exhausted = True
                    else:
                        system = item.get("system", "")
                        messages = ([{"role": "system", "content": system}] if system else []) + [
                            {"role": "user", "content": item["content"]}]
                        body = {"model": model, "max_tokens": item["max_tokens"], "seed": item["seed"],
                                "temperature": 0, "messages": messages}
                        next_request = Request(tracker.started, body, token_estimate(item["content"],
                                               item["max_tokens"], system), max_attempts)
                        tracker.started += 1
                        tracker.in_progress += 1

            # Refill both buckets for the time since the last look, up to their capacity.
            current = time.time()
            elapsed = current - last_update
            request_capacity = min(request_capacity + max_requests_per_minute * elapsed / 60, max_request_capacity)
            token_capacity = min(token_capacity + max_tokens_per_minute * elapsed / 60, max_token_capacity)
            last_update = current

            if next_request is not None and request_capacity >= 1 and token_capacity >= next_request.tokens:
                request_capacity -= 1
                token_capacity -= next_request.tokens
                next_request.attempts_left -= 1
                asyncio.create_task(next_request.call(session, url, headers, retries, tracker, timeout))
                next_request = None

            if tracker.in_progress == 0 and exhausted and next_request is None:
                break

            await asyncio.sleep(0.001)

            # After a rate-limit error, everyone cools down.
            remaining = tracker.paused_until - time.time()
            if remaining > 0:
                await asyncio.sleep(remaining)
    return tracker
