"""A tiny OpenAI-compatible chat server for loopback tests and benchmarks.

It answers ``POST /v1/chat/completions`` after a fixed delay with a canned reply, counts the
requests it received (and keeps their bodies, unless ``keep_bodies=False``), and can be told
to fail: a list of HTTP status codes to return for the first requests (e.g. ``[429, 503]``),
or ``hang=True`` to never answer. With ``varied=True`` the reply is a sentence picked by a
hash of the request's messages instead: the same request always gets the same reply, and
different turns of a conversation get different replies; ``reply_fn`` computes the reply from
the request body (a judge that grades what it is shown, a subject that degrades). It speaks
plain HTTP/1.1 with keep-alive on asyncio streams, so it costs far less than the client under
test.

    python -m personae.testing.loopback --port 8099 --delay 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


class LoopbackServer:
    """Run in a background thread: ``with LoopbackServer(delay_s=0.05) as srv: srv.base_url``.

    >>> with LoopbackServer(delay_s=0) as srv:
    ...     srv.base_url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, *, delay_s: float = 0.0, reply: str = "Hello from loopback.",
                 fail_with: Sequence[int] = (), hang: bool = False, host: str = "127.0.0.1",
                 port: int = 0, keep_bodies: bool = True, varied: bool = False,
                 reply_fn: Callable[[dict], str] | None = None) -> None:
        self.delay_s, self.reply, self.hang, self.varied = delay_s, reply, hang, varied
        self.reply_fn = reply_fn
        self.keep_bodies = keep_bodies
        self.host, self.port = host, port
        self._failures = list(fail_with)
        self.requests = 0
        self.in_flight = self.peak_in_flight = 0
        self.bodies: list[dict] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (h.partition(":") for h in header_lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                status, payload = await self._respond(request_line, body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                    f"content-type: application/json\r\ncontent-length: {len(data)}\r\n"
                    "connection: keep-alive\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            pass  # client went away, or the server is shutting down
        finally:
            writer.close()

    async def _respond(self, request_line: str, body: bytes) -> tuple[int, dict]:
        method, path, _ = request_line.split(" ", 2)
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": "loopback", "object": "model"}]}
        if method != "POST" or not path.endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {method} {path}"}}
        self.requests += 1
        try:
            req = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return 400, {"error": {"message": "body is not JSON"}}
        if self.keep_bodies:
            self.bodies.append(req)
        if self.hang:
            await asyncio.sleep(3600)
        if self._failures:
            status = self._failures.pop(0)
            return status, {"error": {"message": f"injected failure {status}"}}
        if self.delay_s:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                self.in_flight -= 1
        return 200, self._completion(req)

    def _completion(self, req: dict) -> dict:
        if self.reply_fn is not None:
            content = self.reply_fn(req)
        else:
            content = varied_reply(req) if self.varied else self.reply
        return {
            "id": f"chatcmpl-{self.requests}", "object": "chat.completion",
            "created": int(time.time()), "model": req.get("model", "loopback"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
        }

    def __enter__(self) -> Self:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            self._ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._server is not None:
            loop, server = self._loop, self._server

            async def stop() -> None:
                server.close()
                for task in asyncio.all_tasks(loop):
                    if task is not asyncio.current_task():
                        task.cancel()

            asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)


_WORDS = ["market", "river", "bread", "engine", "winter", "letter", "garden", "ticket", "harbour", "morning", "cousin", "radio", "bridge", "lantern", "pepper", "tractor", "violin", "kettle", "ladder", "pocket", "thunder", "village", "mirror", "saddle", "orchard", "compass", "blanket", "chimney", "meadow", "parcel"]


def varied_reply(request: dict) -> str:
    """A deterministic reply that differs from one conversation turn to the next.

    >>> varied_reply({"messages": [{"role": "user", "content": "hi"}]}) == \\
    ...     varied_reply({"messages": [{"role": "user", "content": "hi"}]})
    True
    """
    digest = hashlib.sha256(json.dumps(request.get("messages"), sort_keys=True).encode()).digest()
    words = [_WORDS[b % len(_WORDS)] for b in digest[:9]]
    return f"The {words[0]} and the {words[1]}: " + " ".join(words[2:]) + "."


def in_character_reply(request: dict, *, degraded: bool = False) -> str:
    """A subject that plays the persona in its system prompt: it names who it is (so a judge
    can tell the personas apart) and varies with the question. ``degraded`` plays none.

    >>> req = {"messages": [{"role": "system", "content": "You are Ana, a nurse."},
    ...                     {"role": "user", "content": "Hi?"}]}
    >>> in_character_reply(req).endswith("(You are Ana, a nurse.)")
    True
    >>> in_character_reply(req, degraded=True).startswith("As an AI")
    True
    """
    messages = request.get("messages") or []
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    if degraded or not system:
        return "As an AI language model, I do not have a personal life. " + varied_reply(request)
    return f"{varied_reply(request)} ({' '.join(system.split()[:40])})"


def grading_judge(score: Callable[[str], int]) -> Callable[[dict], str]:
    """A ``reply_fn`` for a judge server that grades what it is shown: a rubric request ends
    in ``Therefore, the final score is N.`` with ``N = score(request text)``, an NLI request
    answers ``entailment``, a role-identification request names the persona whose
    description shares the most words with the response, anything else gets a varied reply.

    >>> judge = grading_judge(lambda text: 2 if "As an AI" in text else 4)
    >>> rubric = "... tasked to evaluate responses to questions based on a given rubric."
    >>> judge({"messages": [{"role": "system", "content": rubric},
    ...                     {"role": "user", "content": "Response: As an AI, I cannot"}]})
    'Therefore, the final score is 2.'
    """
    def reply(request: dict) -> str:
        messages = request.get("messages") or []
        text = "\n".join(str(m.get("content", "")) for m in messages)
        if "natural-language inference" in text:
            return "entailment"
        if "which persona wrote it" in text:
            return _role_answer(text)
        if "evaluate responses to questions based on a given rubric" in text:
            return f"Therefore, the final score is {score(text)}."
        return varied_reply(request)

    return reply


def _role_answer(text: str) -> str:
    listing, _, response = text.partition("Response:")
    words = set(response.lower().split())
    options = [(line[0], set(line[3:].lower().split())) for line in listing.splitlines()
               if len(line) > 3 and line[0].isupper() and line[1:3] == ". "]
    if not options:
        return "A"
    return max(options, key=lambda o: len(o[1] & words))[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--varied", action="store_true", help="Vary the reply with the request.")
    args = ap.parse_args()
    # Nobody reads the bodies of a standalone server, and a long benchmark or soak run
    # would otherwise keep every request body in memory.
    server = LoopbackServer(delay_s=args.delay, host=args.host, port=args.port,
                            keep_bodies=False, varied=args.varied)

    async def serve() -> None:
        await server.start()
        print(f"listening on {server.base_url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
