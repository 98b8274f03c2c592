"""``chatworker chat``: a terminal client for a chatworker gateway.

It speaks the HTTP protocol exactly like the browser transport: trigger a run with the full
history, send only new messages to a live run, stream the reply over SSE (resuming by event id
after a network blip), start a continuation run on 409, renew an expired run token on 401.
Ctrl-C while a reply streams stops that reply; Ctrl-C at the prompt (or Ctrl-D) quits.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

from ..protocol.assemble import MessageAssembler
from ..protocol.messages import dump
from .devstate import state_dir

DIM, RESET = "\033[2m", "\033[0m"


class ClientError(RuntimeError):
    """The gateway refused a request; the message says why."""


class ChatClient:
    """One chat with one task through a gateway."""

    def __init__(self, base_url: str, task: str, token: str, chat_id: str | None = None,
                 out: Any = sys.stdout, metadata: dict[str, Any] | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.task = task
        self.trigger_token = token
        self.out = out
        self.metadata = metadata
        saved = _load().get(chat_id or "", {})
        self.chat_id = chat_id or "cli-" + uuid.uuid4().hex[:10]
        self.history: list[dict[str, Any]] = saved.get("history", [])
        self.run_id: str | None = saved.get("runId")
        self.run_token: str | None = saved.get("publicAccessToken")
        self.last_event_id: str | None = saved.get("lastEventId")

    # -- requests ----------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any], token: str) -> Response:
        request = urllib.request.Request(
            f"{self.base}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        return _send(request, timeout=10)

    def _trigger(self, continuation: bool) -> None:
        body: dict[str, Any] = {"chatId": self.chat_id, "messages": self.history,
                                "trigger": "submit-message", "continuation": continuation}
        if continuation and self.run_id:
            body["previousRunId"] = self.run_id
        if self.metadata is not None:
            body["metadata"] = self.metadata
        resp = self._post(f"/tasks/{self.task}/runs", body, self.trigger_token)
        if resp.status_code != 201:
            raise ClientError(_explain(resp))
        data = resp.json()
        self.run_id, self.run_token, self.last_event_id = (
            data["runId"], data["publicAccessToken"], None)
        self.input_id: str | None = None

    def _renew(self) -> None:
        resp = self._post(f"/runs/{self.run_id}/token", {}, self.trigger_token)
        if resp.status_code != 200:
            raise ClientError(_explain(resp))
        self.run_token = resp.json()["publicAccessToken"]

    def send(self, text: str) -> None:
        """Send a user message: to the live run, else in a new (continuation) run."""
        message = {"id": uuid.uuid4().hex[:16], "role": "user",
                   "parts": [{"type": "text", "text": text}]}
        self.history.append(message)
        if self.run_id is None:
            self._trigger(continuation=False)
            return
        body: dict[str, Any] = {"chatId": self.chat_id, "messages": [message],
                                "trigger": "submit-message"}
        if self.metadata is not None:
            body["metadata"] = self.metadata
        for _ in range(2):
            resp = self._post(f"/runs/{self.run_id}/input/messages", body, self.run_token or "")
            if resp.status_code == 401:
                self._renew()
                continue
            break
        if resp.status_code == 202:
            self.input_id = resp.json()["inputId"]
        elif resp.status_code in {404, 409}:
            self._trigger(continuation=True)
        else:
            raise ClientError(_explain(resp))

    def stop(self) -> None:
        if self.run_id:
            self._post(f"/runs/{self.run_id}/input/stop", {"stop": True}, self.run_token or "")

    # -- the reply ----------------------------------------------------------------------------
    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """SSE events of the run after ``last_event_id``, reconnecting after network errors."""
        delay = 0.5
        while True:
            headers = {"Authorization": f"Bearer {self.run_token}"}
            if self.last_event_id:
                headers["Last-Event-ID"] = self.last_event_id
            request = urllib.request.Request(f"{self.base}/runs/{self.run_id}/stream",
                                             headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=300) as resp:
                    event_id, data = None, []
                    for raw in resp:
                        line = raw.decode("utf-8").rstrip("\r\n")
                        delay = 0.5
                        if line.startswith("id:"):
                            event_id = line[3:].strip()
                        elif line.startswith("data:"):
                            data.append(line[5:].strip())
                        elif line == "" and data:
                            self.last_event_id = event_id or self.last_event_id
                            yield event_id or "", json.loads("\n".join(data))
                            event_id, data = None, []
                    return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    self._renew()
                    continue
                raise ClientError(_explain(Response(exc.code, exc.read()))) from None
            except OSError as exc:
                self.out.write(f"\n{DIM}(connection lost: {exc}; reconnecting){RESET}\n")
                time.sleep(delay)
                delay = min(delay * 2, 8)

    def receive(self) -> dict[str, Any] | None:
        """Print the reply to the last message as it streams; returns the marker."""
        assembler = MessageAssembler()
        in_reasoning = False
        try:
            for _id, chunk in self.events():
                kind = chunk.get("type", "")
                if kind == "__turn_complete":
                    if chunk.get("inputId") == getattr(self, "input_id", None):
                        self.run_token = chunk.get("publicAccessToken", self.run_token)
                        self._finish(assembler)
                        return chunk
                    continue
                if kind == "__run_end":
                    self.out.write(f"\n{DIM}(run ended: {chunk.get('status')}){RESET}\n")
                    self._finish(assembler)
                    return chunk
                if kind.startswith("__"):
                    continue
                if kind == "abort" and chunk.get("reason") == "worker lost":
                    # The worker answering died; another one answers the turn again from its
                    # start (same message id): what was printed so far is not the reply.
                    self.out.write(f"\n{DIM}(the worker answering was lost; the reply starts "
                                   f"over){RESET}\n")
                    self.out.flush()
                    assembler = MessageAssembler()
                    in_reasoning = False
                    continue
                assembler.feed(chunk)
                if kind == "reasoning-delta":
                    if not in_reasoning:
                        self.out.write(f"{DIM}thinking: ")
                        in_reasoning = True
                    self.out.write(chunk.get("delta", ""))
                elif kind == "reasoning-end" and in_reasoning:
                    self.out.write(f"{RESET}\n")
                    in_reasoning = False
                elif kind == "text-delta":
                    self.out.write(chunk.get("delta", ""))
                elif kind == "tool-input-available":
                    self.out.write(f"\n{DIM}[tool {chunk.get('toolName')} "
                                   f"{json.dumps(chunk.get('input'))}]{RESET}\n")
                elif kind == "tool-output-available":
                    self.out.write(f"{DIM}[→ {json.dumps(chunk.get('output'))[:200]}]{RESET}\n")
                elif kind == "error":
                    self.out.write(f"\n[error: {chunk.get('errorText')}]\n")
                elif kind == "abort":
                    self.out.write(f"\n{DIM}(stopped){RESET}")
                self.out.flush()
        except KeyboardInterrupt:
            self.stop()
            return self.receive()  # read on to the stopped turn's marker
        return None

    def _finish(self, assembler: MessageAssembler) -> None:
        self.out.write("\n")
        message = assembler.message
        if message.parts:
            self.history = [m for m in self.history if m["id"] != message.id] + [dump(message)]
        self.save()

    def save(self) -> None:
        chats = _load()
        chats[self.chat_id] = {"runId": self.run_id, "publicAccessToken": self.run_token,
                               "lastEventId": self.last_event_id, "history": self.history,
                               "task": self.task}
        folder = state_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / "chats.json").write_text(json.dumps(chats))


def _load() -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((state_dir() / "chats.json").read_text())
        return state
    except (OSError, ValueError):
        return {}


class Response:
    """Status and body of a finished request."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def _send(request: urllib.request.Request, timeout: float) -> Response:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Response(resp.status, resp.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read())


def _explain(resp: Response) -> str:
    try:
        body = resp.json()
        return f"{resp.status_code} {body.get('error')}: {body.get('message')}"
    except ValueError:
        return f"{resp.status_code}: {resp.body[:200]!r}"


def repl(client: ChatClient) -> int:
    """Read messages from the terminal until Ctrl-D / Ctrl-C at the prompt."""
    print(f"chat {client.chat_id} with task {client.task!r} at {client.base} "
          "(Ctrl-C stops a reply, Ctrl-D quits)")
    while True:
        try:
            text = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not text:
            continue
        try:
            client.send(text)
            print("bot> ", end="", flush=True)
            client.receive()
        except ClientError as exc:
            print(f"\nerror: {exc}")
        except OSError as exc:
            print(f"\nerror: the gateway at {client.base} is unreachable ({exc})")
