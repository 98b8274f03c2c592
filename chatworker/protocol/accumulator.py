"""The conversation history a chat run keeps across turns, as UI messages and model messages.

Unlike upstream, incoming messages are upserted by id, so a resubmitted message (a client tool
result, an approval) replaces its earlier copy instead of duplicating it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Generator, Iterable
from typing import Any

from .convert import (
    cleanup_aborted_parts,
    convert_to_model_messages,
    strip_provider_metadata,
)
from .messages import ModelMessage, UIMessage, dump_all, parse_ui_message

__all__ = ["History", "MessageAccumulator", "StoredMessage", "derive_id", "generate_id"]

log = logging.getLogger(__name__)

_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def generate_id() -> str:
    """A 16-character random alphanumeric id, like the AI SDK's ``generateId()``."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def derive_id(*parts: str) -> str:
    """A 16-character alphanumeric id that is always the same for the same ``parts`` (and, in
    practice, different for different ones): like :func:`generate_id`, but repeatable."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=32).digest()
    return "".join(_ID_ALPHABET[byte % len(_ID_ALPHABET)] for byte in digest[:16])


def _upsert(messages: list[UIMessage], message: UIMessage) -> None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].id == message.id:
            messages[index] = message
            return
    messages.append(message)


class History(list[ModelMessage]):
    """The model history :meth:`MessageAccumulator.add_incoming` returns: a plain list of model
    messages that can also be awaited, so ``await conversation.add_incoming(...)`` reads the
    same in ``async def`` code. The work is done when the call returns; awaiting gives the
    list itself at once (it never suspends), and mypy sees a ``list[ModelMessage]`` either way.
    """

    def __await__(self) -> Generator[Any, None, History]:
        return self
        yield  # a generator that finishes at once: awaiting never suspends


class StoredMessage(UIMessage):
    """The response :meth:`MessageAccumulator.add_response` stored: a :class:`UIMessage` that can
    also be awaited (giving itself at once), so ``await conversation.add_response(...)`` works
    in ``async def`` code. It compares equal to a plain ``UIMessage`` with the same content.
    """

    def __await__(self) -> Generator[Any, None, StoredMessage]:
        return self
        yield  # a generator that finishes at once: awaiting never suspends

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UIMessage):
            return bool(self.__dict__ == other.__dict__
                        and self.__pydantic_extra__ == other.__pydantic_extra__)
        return NotImplemented

    @classmethod
    def of(cls, message: UIMessage) -> StoredMessage:
        """``message`` as a stored message (its fields shared, not copied)."""
        if isinstance(message, StoredMessage):
            return message
        stored = cls.model_construct(set(message.model_fields_set), **message.__dict__)
        if message.__pydantic_extra__:
            stored.__pydantic_extra__ = dict(message.__pydantic_extra__)
        return stored


class MessageAccumulator:
    """Accumulates a chat's UI messages turn by turn and derives the model messages from them.

    Messages are treated as immutable: replace a message (``add_response``) rather than edit it
    in place, since model messages are cached per message object.
    """

    def __init__(self, ui_messages: Iterable[UIMessage | dict[str, Any]] = ()) -> None:
        self._ui: list[UIMessage] = [parse_ui_message(m) for m in ui_messages]
        self._new: list[UIMessage] = []
        # id(message) -> (message, its model messages); the message is held so ids stay unique
        self._cache: dict[int, tuple[UIMessage, list[ModelMessage]]] = {}

    # ------------------------------------------------------------------------- updates

    def add_incoming(
        self,
        messages: Iterable[UIMessage | dict[str, Any]],
        trigger: str,
        turn: int,
    ) -> History:
        """Take a turn's incoming messages and return the whole model history (a list that can
        also be awaited: see :class:`History`).

        Turn 0 or a regenerate replaces the history; otherwise messages are upserted by id.
        Assistant messages are cleaned with ``cleanup_aborted_parts`` first.
        """
        cleaned: list[UIMessage] = []
        for raw in messages:
            message = parse_ui_message(raw)
            if message.role == "assistant":
                message = cleanup_aborted_parts(message)
            cleaned.append(message)
        if turn == 0:
            self._ui = cleaned
            self._new = cleaned[-1:]
        elif trigger == "regenerate-message":
            self._ui = cleaned
            self._new = []
        else:
            self._new = []
            for message in cleaned:
                _upsert(self._ui, message)
                _upsert(self._new, message)
        return History(self.model_messages)

    def add_response(self, message: UIMessage | dict[str, Any]) -> StoredMessage:
        """Add the turn's assistant response (upserted by id; an empty id gets a fresh one).

        Returns the message as stored (a :class:`UIMessage` that can also be awaited: see
        :class:`StoredMessage`). It is not cleaned: clean a stopped response first.
        """
        response = StoredMessage.of(parse_ui_message(message))
        if not response.id:
            response = response.model_copy(update={"id": generate_id()})
        _upsert(self._ui, response)
        _upsert(self._new, response)
        return response

    # ------------------------------------------------------------------------------ views

    @property
    def ui_messages(self) -> list[UIMessage]:
        """The whole conversation as UI messages (a new list each time)."""
        return list(self._ui)

    @property
    def new_ui_messages(self) -> list[UIMessage]:
        """This turn's incoming messages plus the response (turn 0: only the last incoming)."""
        return list(self._new)

    @property
    def model_messages(self) -> list[ModelMessage]:
        """The whole conversation as model messages (OpenAI item ids stripped)."""
        models = self._models_for(self._ui)
        live = {id(m) for m in self._ui} | {id(m) for m in self._new}
        for key in [k for k in self._cache if k not in live]:
            del self._cache[key]
        return models

    @property
    def new_model_messages(self) -> list[ModelMessage]:
        """Model messages for :attr:`new_ui_messages`."""
        return self._models_for(self._new)

    def _models_for(self, messages: list[UIMessage]) -> list[ModelMessage]:
        result: list[ModelMessage] = []
        for message in messages:
            cached = self._cache.get(id(message))
            if cached is None or cached[0] is not message:
                try:
                    models = convert_to_model_messages([strip_provider_metadata(message)])
                except Exception:  # a bad message must not lose the rest of the history
                    log.exception("could not convert message %r to model messages", message.id)
                    models = []
                cached = (message, models)
                self._cache[id(message)] = cached
            result.extend(cached[1])
        return result

    # ------------------------------------------------------------------------- checkpoint

    def to_state(self) -> list[dict[str, Any]]:
        """The UI messages as JSON-ready dicts, for checkpointing."""
        return dump_all(self._ui)

    @classmethod
    def from_state(cls, state: Iterable[dict[str, Any]]) -> MessageAccumulator:
        """Rebuild an accumulator from :meth:`to_state` output."""
        return cls(state)
