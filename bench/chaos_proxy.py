"""bench/chaos's provider proxy, and what its records tell about calls paid twice.

`ProviderProxy` is an HTTP/1.1 proxy (asyncio, in a thread of the bench) in front of one sim-server. Every
worker of the disturbed run sends every provider's calls to it (one base URL for all, so the response
cache's keys are the same in every worker), each worker naming itself in the `X-Bench-Worker` header of its
own config. It does two things:

- it makes a small share of one model's calls slow: requests chosen by a hash of their content (so every
  attempt of a chosen request is slow, whichever worker makes it) are forwarded at once, and their answer is
  held until 20-40 s after the request came in. Workers can then be stopped (SIGTERM) while such a call runs.
- it records every attempt: the worker, the model, when it came in and when it ended, the sim-server's
  status, the request key of a successful answer (from the answer's id), and whether the answer was
  written to a client still connected. A client that goes away (killed, timed out, cancelled at its drain
  deadline) does not stop the call: the proxy still waits for the sim-server's answer, as a provider still
  finishes and charges for a request whose client left.

`classify_paid_twice` sorts the sim-server's second successes for one request into unavoidable ones (the
earlier answer went to a worker that was killed, had timed out, or was cut off at its drain deadline) and
the rest. Standard library only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import threading
import time

from cluster_harness import WORKER_HEADER

# Headers that belong to one connection, not to the request or answer passed on.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
               "proxy-authorization", "proxy-authenticate", "content-length", "host"}
# After its client left, how long a request's answer is still waited for: a sim-server answer takes at most
# latency + jitter (1.5 s here); only a `hang` fault (never answered, never charged) waits this long.
AFTER_CLIENT_S = 30.0
# The id prefix of the sim-server's chat answers; what follows is the first 24 hex digits of the request key.
_ANSWER_ID = "chatcmpl-"


@dataclasses.dataclass
class Attempt:
    """One request as the proxy saw it. Times are the bench's clock (time.time())."""
    worker: str
    model: str
    start: float           # the request was read
    end: float             # the answer was written, or the client was found gone
    status: int | None     # the sim-server's HTTP status; None: no answer
    key: str | None        # a successful answer's request key (24 hex digits), else None
    delivered: bool        # the answer was written to a client still connected
    delay_s: float         # the slowness added (0: none)


class ProviderProxy:
    """The proxy on 127.0.0.1 (a port of the kernel's choice; `base_url` is what configs point at)."""

    def __init__(self, upstream_port: int, *, slow_model: str, slow_share: float, slow_seconds=(20.0, 40.0)):
        self.upstream = ("127.0.0.1", upstream_port)
        self.slow_model = slow_model
        self.slow_share = slow_share
        self.slow_seconds = slow_seconds
        self.attempts: list[Attempt] = []
        # The body of each request key's first successful answer: its full key is computed only when needed.
        self.bodies: dict[str, bytes] = {}
        self.port = 0
        self.in_flight = 0  # requests read and not yet recorded
        self._slow: dict[int, tuple[str, float, float]] = {}  # in flight: id -> (worker, start, release time)
        self._lock = threading.Lock()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._clients: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ProviderProxy":
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("the provider proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._stopping:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def wait_idle(self, timeout: float) -> None:
        """Waits (up to `timeout` seconds) until every request read has been recorded."""
        deadline = time.time() + timeout
        while self.in_flight and time.time() < deadline:
            time.sleep(0.1)

    def slow_in_flight(self) -> list[tuple[str, float, float, float]]:
        """Slow calls whose answer is still held: (worker, start, release time, delay). The delay is drawn
        from the request's content, so it tells one request's attempts apart from another's."""
        with self._lock:
            return list(self._slow.values())

    def slowness(self, model: str, body: bytes) -> float:
        """Seconds a request is held (0 for most): a hash of its content picks `slow_share` of the slow
        model's requests, and their delay within `slow_seconds`. Canonical JSON, so the choice does not
        depend on how a worker ordered the body's keys."""
        if model != self.slow_model:
            return 0.0
        try:
            canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
        except ValueError:
            return 0.0
        draw = int.from_bytes(hashlib.sha256(canonical).digest()[:8], "big")
        if (draw % 10_000) / 10_000 >= self.slow_share:
            return 0.0
        low, high = self.slow_seconds
        return low + (high - low) * ((draw // 10_000) % 1_000_001) / 1_000_000

    # Serving

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for writer in list(self._clients) + [writer for _, writer in self._idle]:
            writer.close()
        # The connections' handlers see them closed and end.
        await asyncio.sleep(0.2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(reader, writer)
        self._clients.add(writer)
        try:
            while await self._one(client):
                pass
        except (ConnectionError, OSError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _one(self, client: "_Client") -> bool:
        """Serves one request of a keep-alive connection; False when the connection is done."""
        request = await client.read_request()
        if request is None:
            return False
        line, headers, body = request
        start = time.time()
        self.in_flight += 1
        try:
            return await self._answer(client, line, headers, body, start)
        finally:
            self.in_flight -= 1

    async def _answer(self, client: "_Client", line: str, headers: dict, body: bytes, start: float) -> bool:
        worker = headers.get(WORKER_HEADER.lower(), "?")
        try:
            model = str(json.loads(body).get("model", "?"))
        except (ValueError, AttributeError):
            model = "?"
        delay = self.slowness(model, body)
        if delay:
            with self._lock:
                self._slow[id(client)] = (worker, start, start + delay, delay)
        exchange = asyncio.ensure_future(self._forward(line, headers, body))
        watcher = asyncio.ensure_future(client.wait_closed())
        try:
            await asyncio.wait({exchange, watcher}, return_when=asyncio.FIRST_COMPLETED)
            held = start + delay - time.time()
            if exchange.done() and not watcher.done() and held > 0:
                await asyncio.wait({watcher}, timeout=held)
            gone = watcher.done()
            end = time.time()
            if gone and not exchange.done():
                # The provider finishes (and charges for) what it was asked even though the client left.
                await asyncio.wait({exchange}, timeout=AFTER_CLIENT_S)
        finally:
            # Awaited, so its read has ended before the next request is read.
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            if delay:
                with self._lock:
                    self._slow.pop(id(client), None)
        if not exchange.done():
            exchange.cancel()
        answer = exchange.result() if exchange.done() and not exchange.cancelled() else None
        delivered = False
        if answer is not None and not gone:
            delivered = await client.write_response(*answer)
            end = time.time()
        status, _, answer_body = answer if answer is not None else (None, None, b"")
        key = _success_key(status, answer_body)
        if key and key not in self.bodies:
            self.bodies[key] = body
        self.attempts.append(Attempt(worker, model, start, end, status, key, delivered, delay))
        return delivered and "close" not in headers.get("connection", "").lower()

    async def _forward(self, line: str, headers: dict, body: bytes):
        """The sim-server's answer to the request: (status, headers, body), or None if it gave none. A kept
        connection the sim-server closed meanwhile is found out before anything was answered on it; the
        request then goes once more, on a new connection."""
        head = [line] + [f"{name}: {value}" for name, value in headers.items() if name not in _HOP_BY_HOP]
        head += [f"host: {self.upstream[0]}:{self.upstream[1]}", f"content-length: {len(body)}"]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            answer = await self._exchange(reader, writer, request)
            if answer != "unanswered":
                return answer
        try:
            reader, writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            return None
        answer = await self._exchange(reader, writer, request)
        return None if answer == "unanswered" else answer

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes):
        """One request on one connection: the answer, None if it broke off, or "unanswered" if the
        connection was closed before a byte of answer came."""
        keep = False
        try:
            writer.write(request)
            await writer.drain()
            status_line = (await reader.readuntil(b"\r\n")).decode("latin-1")
            answer_headers = _headers((await reader.readuntil(b"\r\n\r\n")).decode("latin-1"))
            answer_body = await _read_body(reader, answer_headers)
            keep = "close" not in answer_headers.get("connection", "").lower()
            return int(status_line.split()[1]), answer_headers, answer_body
        except asyncio.IncompleteReadError as error:
            return "unanswered" if not error.partial else None
        except (ConnectionError, OSError, asyncio.LimitOverrunError, ValueError, IndexError):
            return None
        finally:
            # Cancelled (no answer in time after the client left) or done with: a used connection is kept.
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()


class _Client:
    """The worker's side of one connection, with its own buffer, so that watching for it to close while a
    request is in flight never loses bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()

    async def _fill(self) -> bool:
        """Reads more into the buffer; False once the client closed (or broke) the connection."""
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        self.buffer += data
        return bool(data)

    async def wait_closed(self) -> None:
        while await self._fill():
            pass

    async def _take_until(self, marker: bytes) -> bytes | None:
        while (end := self.buffer.find(marker)) < 0:
            if not await self._fill():
                return None
        taken = bytes(self.buffer[:end + len(marker)])
        del self.buffer[:end + len(marker)]
        return taken

    async def _take(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not await self._fill():
                return None
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    async def read_request(self):
        """(request line, headers with lower-case names, body), or None at the end of the connection."""
        head = await self._take_until(b"\r\n\r\n")
        if head is None:
            return None
        line, _, rest = head.decode("latin-1").partition("\r\n")
        headers = _headers(rest)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size_line = await self._take_until(b"\r\n")
                if size_line is None:
                    return None
                size = int(size_line.split(b";")[0].strip(), 16)
                chunk = await self._take(size + 2)
                if chunk is None:
                    return None
                if size == 0:
                    break
                body += chunk[:-2]
            return line, headers, bytes(body)
        body = await self._take(int(headers.get("content-length", "0")))
        return None if body is None else (line, headers, body)

    async def write_response(self, status: int, headers: dict, body: bytes) -> bool:
        """Writes the answer; False if the client was gone."""
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        head += [f"{name}: {value}" for name, value in headers.items() if name not in _HOP_BY_HOP]
        head.append(f"content-length: {len(body)}")
        try:
            self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        return not self.writer.is_closing()


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Payload Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 504: "Gateway Timeout", 529: "Overloaded"}


def _headers(text: str) -> dict:
    headers = {}
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


async def _read_body(reader: asyncio.StreamReader, headers: dict) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return bytes(body)
            body += chunk[:-2]
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


def _success_key(status: int | None, body: bytes) -> str | None:
    """The request key (24 hex digits) of a successful chat answer, from its id `chatcmpl-<key>`: the
    sim-server counts a success exactly when it sends such an answer (a malformed or empty answer has none)."""
    if status != 200:
        return None
    try:
        answer_id = json.loads(body).get("id", "")
    except (ValueError, AttributeError):
        return None
    key = answer_id[len(_ANSWER_ID):] if answer_id.startswith(_ANSWER_ID) else ""
    return key if len(key) == 24 and all(c in "0123456789abcdef" for c in key) else None


# --------------------------------------------------------------------------------------------------
# Keys: the sim-server's and the store's, as ChatRequest.cacheKey and ModelCaller.cacheKey make them


def _fnv64(data: bytes, basis: int) -> int:
    value = basis
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def stable_hex128(text: str) -> str:
    """StableHash.hex128: two FNV-1a 64-bit hashes of the UTF-8 bytes, as 32 hex digits."""
    data = text.encode("utf-8")
    return f"{_fnv64(data, 0xCBF29CE484222325):016x}{_fnv64(data, 0x6C62272E07BB0142):016x}"


def _swift_double(value) -> str:
    """A Double as Swift's string interpolation writes it (1.0, 0.7, 1e-05)."""
    return repr(float(value))


def request_key(body: bytes) -> str:
    """The sim-server's key of an OpenAI chat request body (ChatRequest.cacheKey, with SimWire's defaults:
    temperature 1, max_tokens 4,096, seed 0; `developer` messages are system messages)."""
    request = json.loads(body)
    max_tokens = request.get("max_tokens") or request.get("max_completion_tokens") or 4096
    text = (f"chat\x01{request['model']}\x01{_swift_double(request.get('temperature', 1))}"
            f"\x01{max(1, int(max_tokens))}\x01{int(request.get('seed') or 0)}")
    for message in request["messages"]:
        role = "system" if message["role"] == "developer" else message["role"]
        text += f"\x01{role}\x02{message.get('content') or ''}"
    return stable_hex128(text)


def store_key(key: str, base_url: str) -> str:
    """The store's (and the response cache's) key of a call with request key `key` to an `openai` provider
    at `base_url` (ModelCaller.cacheKey)."""
    return stable_hex128(f"{key}\x01openai\x01{base_url}")


# --------------------------------------------------------------------------------------------------
# Paid twice

# Slack for comparing the bench's event times with the proxy's (the main loop looks every 0.1 s, log lines
# are read by a thread).
MARGIN_S = 1.0
# A client's timeout runs from before the proxy sees its request (taking a connection, writing the request): an
# answer that reached no client counts as timed out from this much before the model's timeout_s.
TIMEOUT_SLACK_S = 2.0
UNAVOIDABLE = ("killed", "timed_out", "drain_deadline")


def classify_paid_twice(successes: dict[str, list[Attempt]], extra: dict[str, int], *, task_done: dict,
                        kills: dict[str, float], drain_cancels: dict[str, float],
                        redis_restarts: list[tuple[float, float]], timeouts: dict[str, float]) -> dict:
    """Sorts second successes. `extra`: request key (24 hex digits) -> successes beyond the first, as the
    sim-server counted them; `successes`: the proxy's successful attempts per request key; `task_done`:
    request key -> when the store first had the task of that call finished (None or absent: unknown);
    `kills`, `drain_cancels`: worker -> when it was SIGKILLed / logged cancelling tasks at its drain
    deadline; `redis_restarts`: (start, end) of each; `timeouts`: model -> its client's timeout_s.

    Each success after the first is judged by the one before it (E) and its own attempt (N). Unavoidable:
    - killed: E's worker was SIGKILLed before N started and before E's task was stored (the answer died with
      the worker; when the store's time of the task is unknown, any kill before N counts);
    - drain_deadline: the same with E's worker cancelling its tasks at its drain deadline;
    - timed_out: E ended after the model's timeout_s (less TIMEOUT_SLACK_S when it reached no client).
    Everything else is avoidable: `undelivered` when E reached no client that nothing above explains,
    `redis_restart` when a Redis restart lies between E and N, `other` otherwise, and `unseen_by_proxy` for
    sim-server successes the proxy has no record of. The avoidable ones are listed in `avoidable_cases` (E, N
    and the task's stored time), for a look at what happened."""
    unavoidable = dict.fromkeys(UNAVOIDABLE, 0)
    avoidable = {"undelivered": 0, "redis_restart": 0, "other": 0, "unseen_by_proxy": 0}
    cases = []
    without_task_time = 0
    for key, count in extra.items():
        seen = sorted(successes.get(key, []), key=lambda attempt: attempt.end)
        for earlier, later in list(zip(seen, seen[1:]))[:count]:
            done = task_done.get(key)
            cause, at = _unavoidable_cause(earlier, later, done, kills, drain_cancels, timeouts)
            if cause:
                unavoidable[cause] += 1
                # Explained only because the task's stored time is unknown: the event came after the answer.
                without_task_time += done is None and at is not None and at >= earlier.end + MARGIN_S
                continue
            if not earlier.delivered:
                cause = "undelivered"
            elif any(begin <= later.start + MARGIN_S and end >= earlier.end - MARGIN_S
                     for begin, end in redis_restarts):
                cause = "redis_restart"
            else:
                cause = "other"
            avoidable[cause] += 1
            cases.append({"cause": cause, "key": key, "task_done": done,
                          "earlier": dataclasses.asdict(earlier), "later": dataclasses.asdict(later)})
        avoidable["unseen_by_proxy"] += max(0, count - max(0, len(seen) - 1))
    return {"unavoidable": sum(unavoidable.values()), "avoidable": sum(avoidable.values()),
            "unavoidable_by_cause": unavoidable, "avoidable_by_cause": avoidable,
            "unavoidable_without_task_time": without_task_time, "avoidable_cases": cases}


def _unavoidable_cause(earlier: Attempt, later: Attempt, done: float | None, kills: dict, drain_cancels: dict,
                       timeouts: dict) -> tuple[str | None, float | None]:
    """The cause that explains `later` (None if none does) and the time of its event (None for a timeout)."""
    # The event must come before the later attempt, and while the worker still held the answer's task.
    held_until = max(earlier.end + MARGIN_S, done if done is not None else float("inf"))
    before = min(held_until, later.start + MARGIN_S)
    for cause, events in (("killed", kills), ("drain_deadline", drain_cancels)):
        at = events.get(earlier.worker)
        if at is not None and at < before:
            return cause, at
    slack = MARGIN_S if earlier.delivered else TIMEOUT_SLACK_S
    if earlier.end - earlier.start >= timeouts.get(earlier.model, float("inf")) - slack:
        return "timed_out", None
    return None, None
