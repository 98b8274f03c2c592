"""Bad input at scale: thousands of malformed, oversized, wrongly typed and adversarial requests
against a real gunicorn gateway. Each one gets a 4xx with a JSON ``{error, message}`` body (or a
normal answer when the fuzzer happened to build a valid request), never a 5xx or an HTML page,
and the worker behind the gateway keeps serving chats.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatworker import tokens
from chatworker.engine.registry import load_tasks

from ..conftest import SECRET, worker_env
from ..gateway.conftest_helpers import Gunicorn, gateway_env
from ..support import Worker, user_message
from .helpers import ALL_TASKS, Event, StreamReader, call, pointed_at

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PREFIX = "/api/chat"
MAX_BODY = 64 * 1024  # a smaller limit than the default, so oversized bodies stay cheap to send
FUZZ = settings(
    max_examples=int(os.environ.get("CHATWORKER_FUZZ_EXAMPLES", "800")),
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)


# -- a small HTTP/1.1 client that survives a server closing early (e.g. after a 413) ------------
@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Keep-alive requests over one socket; reconnects when the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.sent = 0
        self.statuses: Counter[int] = Counter()

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, target: str, headers: dict[str, str],
                body: bytes | None) -> Answer:
        head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        self.sent += 1
        for attempt in range(2):
            sock = self._connect()
            try:
                sock.sendall(data)
            except OSError:
                if attempt == 0 and len(data) < 65536:
                    self.close()  # a stale keep-alive socket: try once on a fresh one
                    continue
                # The server answered (413) and closed before reading all of a big body.
            response = http.client.HTTPResponse(sock, method=method)
            try:
                response.begin()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 0:
                    continue
                raise
            self.statuses[response.status] += 1
            content_type = response.getheader("Content-Type") or ""
            if content_type.startswith("text/event-stream"):
                # A stream the fuzzer was allowed to open: its headers are the answer.
                self.close()
                return Answer(response.status, content_type, b"")
            payload = response.read()
            if response.will_close:
                self.close()
            return Answer(response.status, content_type, payload)
        raise AssertionError("unreachable")


# -- the gateway, a worker, and a live run to aim at -----------------------------------------------
@dataclass
class Target:
    gw: Gunicorn
    worker: Worker
    client: Client
    run_id: str
    run_token: str
    other_run_token: str
    url: str


@pytest.fixture(scope="module")
def target(redis_url: str) -> Iterator[Target]:
    load_tasks("tests.fault_tasks")
    url = redis_url.rsplit("/", 1)[0] + "/11"
    with pointed_at(url):
        worker = Worker(worker_env(url, CHATWORKER_TASKS=ALL_TASKS), name="fuzz").start()
        gw = Gunicorn(gateway_env(url, CHATWORKER_TASKS=ALL_TASKS,
                                  CHATWORKER_MAX_BODY=str(MAX_BODY),
                                  CHATWORKER_SSE_HEARTBEAT="1"), name="fuzz").start()
        try:
            runs_made = []
            for n in range(2):
                status, body, _ = call(
                    gw.url, "POST", f"{PREFIX}/tasks/fuzz-target/runs",
                    {"chatId": f"fuzz-{n}", "messages": [user_message("hi")]},
                    token=tokens.create_trigger_token("fuzz-target", multiple_use=True),
                )  # fmt: skip
                assert status == 201, body
                runs_made.append(body)
            client = Client(gw.port)
            yield Target(gw, worker, client, runs_made[0]["runId"],
                         runs_made[0]["publicAccessToken"], runs_made[1]["publicAccessToken"],
                         url)
            client.close()
        finally:
            gw.stop()
            worker.stop()
    log = gw.log()
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]


def check(t: Target, method: str, target_path: str, headers: dict[str, str],
          body: bytes | None) -> Answer:
    """Send one request; assert the answer is what a client can always handle."""
    answer = t.client.request(method, target_path, headers, body)
    where = f"{method} {target_path[:200]} {headers!r:.300} body={body[:200] if body else body!r}"
    assert answer.status < 500, f"{answer.status} {answer.body[:500]!r} for {where}"
    if answer.body:  # (an automatic OPTIONS answer is an empty 200, whatever its type)
        assert "html" not in answer.content_type, f"HTML {answer.body[:200]!r} for {where}"
    if answer.status >= 400 and method != "HEAD":
        assert answer.content_type.startswith("application/json"), where
        data = answer.json()
        assert isinstance(data, dict) and set(data) >= {"error", "message"}, (data, where)
        assert isinstance(data["error"], str) and data["error"], (data, where)
        assert isinstance(data["message"], str) and data["message"], (data, where)
    elif answer.body and method != "HEAD":
        assert answer.content_type.startswith("application/json"), (answer, where)
        answer.json()
    return answer


# -- strategies ----------------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
nasty_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from([
        "", " ", "\x00", "\ud800", "\udfff", "\ufeff", "\u202e", "💥" * 50, "../../etc/passwd",
        "..%2f..%2f", "<script>alert(1)</script>", "' OR 1=1 --", "${jndi:ldap://x}",
        "%00", "\r\nX-Injected: 1", "null", "NaN", "run_" + "A" * 300,
    ]),
)


@st.composite
def huge_strings(draw: st.DrawFn) -> str:
    return draw(st.sampled_from("x\u00e9\u4e2d\U0001f600")) * draw(
        st.integers(min_value=1000, max_value=MAX_BODY // 2)
    )


@st.composite
def deep(draw: st.DrawFn) -> str:
    """Deeply nested JSON text (sometimes past any recursion limit, sometimes unclosed)."""
    depth = draw(st.integers(min_value=50, max_value=20000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    closed = draw(st.booleans())
    return opener * depth + "1" + (closer * depth if closed else "")


def valid_message() -> dict[str, Any]:
    return user_message("fuzz")


@dataclass(frozen=True)
class Nested:
    """Stands for ``arrays`` arrays, each inside the one before, in a body :func:`encode_body`
    writes (as text: ``json.dumps`` itself gives up near 1,000 levels). A body with it as a value
    nests one level deeper: the body object is a level too."""

    arrays: int

    def json(self) -> str:
        return "[" * self.arrays + '"bottom"' + "]" * self.arrays


@st.composite
def wire_payloads(draw: st.DrawFn) -> Any:
    """A wire payload with some fields replaced by wrong types, huge or adversarial values."""
    payload: dict[str, Any] = {
        "chatId": "fuzz-chat",
        "messages": [valid_message()],
        "trigger": "submit-message",
    }
    fields = ["chatId", "messages", "trigger", "messageId", "metadata", "continuation",
              "previousRunId", "warmTimeoutInSeconds", "extra"]
    for name in draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)):
        payload[name] = draw(st.one_of(json_values, nasty_text, huge_strings()))
    if draw(st.booleans()):
        message = dict(valid_message())
        key = draw(st.sampled_from(["id", "role", "parts", "metadata"]))
        message[key] = draw(st.one_of(json_values, nasty_text))
        if draw(st.booleans()):
            message["parts"] = [draw(st.one_of(
                st.fixed_dictionaries({"type": nasty_text, "text": json_values}),
                st.fixed_dictionaries({"type": st.just("text"), "text": nasty_text}),
                st.fixed_dictionaries({
                    "type": st.sampled_from(["tool-x", "dynamic-tool", "file", "data-x",
                                             "source-url", "reasoning", "step-start"]),
                    "state": nasty_text, "input": json_values, "output": json_values,
                    "toolCallId": nasty_text, "url": nasty_text, "data": json_values,
                }),
            ))]
        payload["messages"] = draw(st.sampled_from([[message], [message] * 3, message]))
    return payload


def encode_body(value: Any) -> bytes:
    deep: list[Nested] = []

    def placeholder(obj: Any) -> str:
        if not isinstance(obj, Nested):
            raise TypeError(type(obj).__name__)
        deep.append(obj)
        return f"@nested-{len(deep) - 1}@"

    text = json.dumps(value, default=placeholder)
    for n, nested in enumerate(deep):
        text = text.replace(f'"@nested-{n}@"', nested.json())
    return text.encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    json_values.map(encode_body),
    wire_payloads().map(encode_body),
    deep().map(str.encode),
    huge_strings().map(lambda s: encode_body({"chatId": s, "messages": []})),
    st.integers(min_value=MAX_BODY + 1, max_value=MAX_BODY * 3).map(lambda n: b"[" + b" " * n),
    st.sampled_from([b"NaN", b"Infinity", b'{"chatId": NaN}', b"\xef\xbb\xbf{}", b"{}" * 1000,
                     b'{"chatId": "\\ud800", "messages": []}', b"\xff\xfe{\x00}\x00"]),
    # Well-formed JSON the worker's parser refuses: every one a 422, nothing enqueued.
    st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d"]).map(
        lambda s: encode_body({"chatId": "fuzz-chat", "messages": [user_message(s)]})),
    st.sampled_from([200, 254, 256, 300, 3000]).map(
        lambda n: encode_body({"chatId": "fuzz-chat", "messages": [valid_message()],
                               "metadata": Nested(n)})),
)


def signed(claims: dict[str, Any], key: str = SECRET, alg: str = "HS256") -> str:
    now = int(time.time())
    body = {"iss": "chatworker", "iat": now, "exp": now + 3600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg)


def token_strategy(t: Target) -> st.SearchStrategy[str | None]:
    run_scopes = [f"read:runs:{t.run_id}", f"write:inputStreams:{t.run_id}"]
    crafted = st.builds(
        lambda scopes, exp, jti, otu, iss: signed(
            {"scopes": scopes, "exp": exp, "jti": jti, "otu": otu, "iss": iss}
        ),
        st.one_of(st.just(run_scopes), st.just(["trigger:tasks:fuzz-target"]), json_values),
        st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**62),
                  st.sampled_from([2**62, 2**53, 10**16, 2**31, int(time.time()) - 1]),
                  st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)),
        st.one_of(st.none(), st.just("a-jti"), st.uuids().map(str), json_values),
        st.one_of(st.none(), st.just(True), st.booleans(), json_values),
        st.sampled_from(["chatworker", "someone-else", ""]),
    )
    return st.one_of(
        st.none(),
        st.just(t.run_token),
        st.just(t.other_run_token),
        st.just(tokens.create_trigger_token("fuzz-target", multiple_use=True)),
        st.just(tokens.create_trigger_token("echo", multiple_use=True)),
        st.just(signed({"scopes": run_scopes}, key="not-the-secret-" * 3)),
        st.just(signed({"scopes": run_scopes, "exp": int(time.time()) - 10})),
        st.just(jwt.encode({"scopes": run_scopes, "iss": "chatworker", "exp": 2**40,
                            "iat": 0}, None, algorithm="none")),
        crafted,
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300),
    )


def auth_headers(t: Target) -> st.SearchStrategy[dict[str, str]]:
    printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                        max_size=80)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, str]:
        headers: dict[str, str] = {}
        token = draw(token_strategy(t))
        if token is not None:
            scheme = draw(st.sampled_from(["Bearer", "bearer", "Basic", "Token", ""]))
            headers["Authorization"] = f"{scheme} {token}".strip()
        content_type = draw(st.one_of(st.none(), st.sampled_from([
            "application/json", "application/json; charset=utf-8", "text/plain",
            "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
            "application/vnd.api+json", "*/*", "application/json; charset=latin-1",
        ]), printable))
        if content_type is not None:
            headers["Content-Type"] = content_type
        if draw(st.booleans()):
            headers["Last-Event-ID"] = draw(st.one_of(
                printable, st.sampled_from(["0", "0-0", "-1", "18446744073709551616-0",
                                            "99999999999999999999-99999999999999999999",
                                            "1-1-1", "$", ">", "+", "-"])))
        if draw(st.booleans()):
            headers["Idempotency-Key"] = draw(printable)
        return headers

    return build()


def query_strings() -> st.SearchStrategy[str]:
    value = st.one_of(nasty_text, st.sampled_from(
        ["0", "-1", "nan", "inf", "1e309", "0.000001", "1e-320", "600", "99999", "abc", ""]))
    pair = st.tuples(st.sampled_from(["timeout", "lastEventId", "token", "x", "timeout"]), value)
    return st.lists(pair, max_size=3).map(
        lambda pairs: "&".join(
            f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in pairs
        )
    )


def route_paths(t: Target) -> st.SearchStrategy[tuple[str, str]]:
    """(method, path) pairs: every route with good, bad and adversarial ids, and junk paths."""
    ident = st.one_of(
        st.just(t.run_id), st.just("fuzz-target"), st.just("echo"),
        nasty_text.map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")),
        # (a request line over gunicorn's 4094-byte limit is refused by gunicorn itself, before
        # the app: see test_an_overlong_request_line_is_a_4xx)
        st.sampled_from(["..", ".", "%2e%2e", "..%2f..%2fetc%2fpasswd", "run_x", "a" * 3500,
                         "%00", "%ff", "~root", "*"]),
    )
    raw_traversal = st.sampled_from([
        "/runs/../../../etc/passwd", "/tasks/../runs/x", "/../../web/app.py", "//runs//x",
        "/runs/x/../../tasks/echo/runs", "/./runs/./x", "/ui/../runs", "/runs/%2e%2e/stream",
    ])
    templates = st.sampled_from([
        ("POST", "/tasks/{}/runs"), ("GET", "/runs/{}"), ("POST", "/runs/{}/input/messages"),
        ("POST", "/runs/{}/input/stop"), ("POST", "/runs/{}/cancel"), ("GET", "/runs/{}/stream"),
        ("POST", "/runs/{}/token"), ("POST", "/ui/{}"), ("GET", "/ui/{}/chat/stream"),
        ("POST", "/ui/{}/chat/stop"), ("GET", "/{}"), ("GET", "/tasks/{}"),
    ])
    methods = st.one_of(
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=12),
    )

    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, str]:
        method, template = draw(templates)
        if draw(st.integers(0, 3)) == 0:
            method = draw(methods)
        path = template.format(draw(ident))
        if draw(st.integers(0, 5)) == 0:
            path = draw(raw_traversal)
        return method, PREFIX + path

    return build()


# -- the tests -------------------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_bad_bodies_on_every_write_route(target: Target, data: st.DataObject) -> None:
    t = target
    method, path = data.draw(st.sampled_from([
        ("POST", "/tasks/fuzz-target/runs"), ("POST", f"/runs/{t.run_id}/input/messages"),
        ("POST", f"/runs/{t.run_id}/input/stop"), ("POST", f"/runs/{t.run_id}/token"),
        ("POST", "/ui/fuzz-target"), ("POST", "/ui/fuzz-target/fuzz-0/stop"),
    ]))
    headers = data.draw(auth_headers(t))
    if data.draw(st.integers(0, 3)):  # mostly with a token that passes, to reach the body
        token = (tokens.create_trigger_token("fuzz-target", multiple_use=True)
                 if "/runs/" not in path or path.endswith("/token") else t.run_token)
        headers["Authorization"] = f"Bearer {token}"
        headers.setdefault("Content-Type", "application/json")
    check(t, method, PREFIX + path, headers, data.draw(bodies))


@FUZZ
@given(data=st.data())
def test_bad_paths_methods_and_ids(target: Target, data: st.DataObject) -> None:
    method, path = data.draw(route_paths(target))
    headers = data.draw(auth_headers(target))
    query = data.draw(query_strings())
    body = data.draw(st.one_of(st.none(), wire_payloads().map(encode_body)))
    target_path = path + (f"?{query}" if query else "")
    if len(target_path) > 4000:  # keep under gunicorn's request-line limit (tested separately)
        target_path = path
    check(target, method, target_path, headers, body)


@FUZZ
@given(data=st.data())
def test_bad_tokens_stream_positions_and_timeouts(target: Target, data: st.DataObject) -> None:
    t = target
    headers = data.draw(auth_headers(t))
    query = data.draw(query_strings())
    route = data.draw(st.sampled_from([
        f"/runs/{t.run_id}/stream", f"/runs/{t.run_id}", "/ui/fuzz-target/fuzz-0/stream",
        f"/runs/{t.run_id}/input/stop",
    ]))
    if "timeout=" not in query:  # a stream that opens must not stay open long
        query = (query + "&" if query else "") + "timeout=0.2"
    method = "POST" if route.endswith("/stop") else "GET"
    check(t, method, f"{PREFIX}{route}?{query}", headers, b'{"stop": true}'
          if method == "POST" else None)


ODD_CLAIMS: list[dict[str, Any]] = [
    {"exp": 2**62, "jti": "far-future", "otu": True},  # Redis refused the use marker's EX
    {"exp": 10**16, "jti": "far-future-2", "otu": True},
    {"exp": 2**62},
    {"jti": {"not": "a string"}, "otu": True},
    {"jti": "x" * 5000, "otu": True},
    {"otu": True},  # one-time without an id
    {"otu": "yes", "jti": 7},
    {"scopes": "trigger:tasks:fuzz-target"},  # a string, not a list
    {"scopes": [1, 2]},
    {"scopes": None},
    {"iat": "yesterday"},
    {"iat": 2**62},
    {"nbf": 2**40},
    {"exp": 1.5e9},
    {"exp": "tomorrow"},
]


@pytest.mark.parametrize("claims", ODD_CLAIMS, ids=[str(i) for i in range(len(ODD_CLAIMS))])
def test_validly_signed_tokens_with_odd_claims(target: Target, claims: dict[str, Any]) -> None:
    """Tokens signed with the real key but odd claims: refused (401/403) or honoured, never 500,
    on every route that spends or checks a trigger token."""
    token = signed({"scopes": ["trigger:tasks:fuzz-target"], **claims})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    wire = encode_body({"chatId": "odd-claims", "messages": [user_message("hi")]})
    for method, path, body in [
        ("POST", "/tasks/fuzz-target/runs", wire),
        ("POST", f"/runs/{target.run_id}/token", None),
        ("POST", "/ui/fuzz-target", encode_body({"id": "odd", "messages": [user_message("x")],
                                                 "trigger": "preload"})),
        ("GET", f"/runs/{target.run_id}", None),
    ]:
        check(target, method, PREFIX + path, headers, body)


def test_an_overlong_request_line_is_a_4xx(target: Target) -> None:
    """gunicorn answers a request line over its limit itself (414, its own small page): still a
    client error, and the connection's next request is served by the app again."""
    answer = target.client.request("GET", f"{PREFIX}/runs/{'a' * 5000}", {}, None)
    assert answer.status == 414
    check(target, "GET", f"{PREFIX}/runs/{'a' * 3000}", {}, None)


def read_turn_sse(t: Target, run_id: str, token: str, after: str | None) -> list[Event]:
    """The SSE events of the next turn after ``after``, up to its ``__turn_complete``."""
    reader = StreamReader("127.0.0.1", t.gw.port, run_id, token, last_id=after).open()
    seen: list[Event] = []
    try:
        for ev in reader.events():
            seen.append(ev)
            if ev.type in ("__turn_complete", "__run_end"):
                break
    finally:
        reader.close()
    assert seen and seen[-1].type == "__turn_complete", [e.data for e in seen][-10:]
    return seen


#: Bodies ``json.loads`` accepts but the worker's parser refuses (a lone surrogate; nesting past
#: 200 levels), and what the 422 says about each. Before, each got a 202 that killed the chat
#: (or, past 255 levels, a 500).
UNREADABLE = [
    ("metadata", "\ud800", "invalid unicode escape (a lone surrogate) at line 1 column"),
    ("text", "lone \udc00 low half", "invalid unicode escape (a lone surrogate) at line 1 column"),
    ("extra", "\ud83d", "invalid unicode escape (a lone surrogate) at line 1 column"),
    ("metadata", Nested(200), "nests deeper than 200 levels at line 1 column"),
    ("metadata", Nested(300), "nests deeper than 200 levels at line 1 column"),
    ("metadata", Nested(5000), "nests deeper than 200 levels at line 1 column"),
]


def unreadable_body(chat_id: str, where: str, value: Any, *, ui: bool = False) -> bytes:
    message = user_message(value if where == "text" else "hello")
    body: dict[str, Any] = {"id" if ui else "chatId": chat_id, "messages": [message]}
    if where == "metadata":
        body["metadata"] = value
    elif where == "extra":
        body["extra"] = {"note": value}
    return encode_body(body)


def post(t: Target, path: str, body: bytes, token: str) -> tuple[int, Any]:
    status, answer, _ = call(t.gw.url, "POST", PREFIX + path, raw=body, token=token,
                             headers={"Content-Type": "application/json"})
    return status, answer


def test_bodies_the_worker_cannot_read_are_refused_and_the_chat_goes_on(target: Target) -> None:
    """Through every route that enqueues (trigger, send, /ui), a body the worker could not read
    is a 422 that names the problem and where it is; the live chat is untouched and answers its
    next message. The 200-level limit itself is accepted and answered."""
    t = target
    trigger = tokens.create_trigger_token("fuzz-target", multiple_use=True)
    chat = "unreadable-chat"
    status, started, _ = call(t.gw.url, "POST", f"{PREFIX}/tasks/fuzz-target/runs",
                              {"chatId": chat, "messages": [user_message("hi")]}, token=trigger)
    assert status == 201, started
    run_id, run_token = started["runId"], started["publicAccessToken"]
    last = read_turn_sse(t, run_id, run_token, None)[-1].id

    for where, value, says in UNREADABLE:
        for path, body, token in [
            (f"/runs/{run_id}/input/messages", unreadable_body(chat, where, value), run_token),
            ("/tasks/fuzz-target/runs", unreadable_body(chat, where, value), trigger),
            ("/ui/fuzz-target", unreadable_body(chat, where, value, ui=True), trigger),
        ]:
            status, answer = post(t, path, body, token)
            assert status == 422, (path, where, status, answer)
            assert answer["error"] == "invalid_payload", answer
            assert says in answer["message"], (path, where, answer)
    # A stop's message is read by the same parser (a lone surrogate there was a 500).
    status, answer, _ = call(t.gw.url, "POST", f"{PREFIX}/runs/{run_id}/input/stop",
                             {"stop": True, "message": "\ud800"}, token=run_token)
    assert status == 422 and "lone surrogate" in answer["message"], (status, answer)

    info = call(t.gw.url, "GET", f"{PREFIX}/runs/{run_id}", token=run_token)[1]
    assert info["pendingInputs"] == 0 and info["status"] not in {"failed", "completed"}, info
    # Exactly at the limit (200 levels, counting the body) is accepted, and answered.
    at_limit = unreadable_body(chat, "metadata", Nested(199))
    status, sent = post(t, f"/runs/{run_id}/input/messages", at_limit, run_token)
    assert status == 202, sent
    turn = read_turn_sse(t, run_id, run_token, last)
    assert turn[-1].json()["inputId"] == sent["inputId"]
    assert any(e.type == "text-delta" and "ok: 3 messages" in e.data for e in turn), turn
    status, sent = post(t, f"/runs/{run_id}/input/messages",
                        unreadable_body(chat, "text", "still here?"), run_token)
    assert status == 202, sent
    turn = read_turn_sse(t, run_id, run_token, turn[-1].id)
    assert any(e.type == "text-delta" and "(turn 2)" in e.data for e in turn), turn
    assert call(t.gw.url, "GET", f"{PREFIX}/runs/{run_id}", token=run_token)[1]["status"] in {
        "running", "waiting", "suspended"}
    assert f"run {run_id}: failed" not in t.worker.log()


def test_worker_and_gateway_still_serve_chats_after_the_fuzz(target: Target) -> None:
    t = target
    # The fuzz above really sent thousands of requests, and reached every kind of answer: the
    # valid ones it built got through, and each kind of refusal was exercised.
    assert t.client.sent > 2000, t.client.sent
    seen = set(t.client.statuses)
    assert {400, 401, 403, 404, 405, 413, 415, 422} <= seen, t.client.statuses
    assert seen & {200, 201, 202}, t.client.statuses
    print(f"fuzz: {t.client.sent} requests, statuses {dict(sorted(t.client.statuses.items()))}")
    assert t.worker.proc is not None and t.worker.proc.poll() is None
    assert t.gw.proc is not None and t.gw.proc.poll() is None
    status, started, _ = call(
        t.gw.url, "POST", f"{PREFIX}/tasks/echo/runs",
        {"chatId": "after-fuzz", "messages": [user_message("still there?")]},
        token=tokens.create_trigger_token("echo"),
    )  # fmt: skip
    assert status == 201, started
    reader = StreamReader("127.0.0.1", t.gw.port, started["runId"],
                          started["publicAccessToken"]).open()
    text = ""
    for ev in reader.events():
        if ev.type == "text-delta":
            text += ev.json()["delta"]
        if ev.type in ("__turn_complete", "__run_end"):
            assert ev.type == "__turn_complete"
            break
    reader.close()
    assert text.strip() == "echo: still there? (turn 0)"
    # No run the fuzz managed to start failed on the worker.
    assert "failed in turn" not in t.worker.log(), t.worker.log()[-3000:]
    r = redis.Redis.from_url(t.url, decode_responses=True)
    assert r.ping()
