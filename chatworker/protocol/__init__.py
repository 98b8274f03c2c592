"""The AI SDK's data and its pure functions: the bottom layer of chatworker.

UI messages and model messages (:mod:`.messages`), UI message stream chunks (:mod:`.chunks`),
folding chunks into the assistant message (:mod:`.assemble`), UI messages to model messages
(:mod:`.convert`), the history a chat run keeps (:mod:`.accumulator`) and the partial JSON of a
streaming tool input (:mod:`.partial_json`).

Nothing here touches Redis, Celery, HTTP or a model, and nothing here imports the rest of
chatworker: every other layer builds on these types.
"""

from __future__ import annotations

from .accumulator import MessageAccumulator, generate_id
from .assemble import MessageAssembler
from .chunks import is_control_chunk, to_chunk_dict, validate_chunk
from .convert import cleanup_aborted_parts, convert_to_model_messages, strip_provider_metadata
from .messages import (
    ModelMessage,
    UIMessage,
    dump,
    dump_all,
    parse_model_messages,
    parse_ui_message,
)
from .partial_json import parse_partial_json

__all__ = [
    "MessageAccumulator",
    "MessageAssembler",
    "ModelMessage",
    "UIMessage",
    "cleanup_aborted_parts",
    "convert_to_model_messages",
    "dump",
    "dump_all",
    "generate_id",
    "is_control_chunk",
    "parse_model_messages",
    "parse_partial_json",
    "parse_ui_message",
    "strip_provider_metadata",
    "to_chunk_dict",
    "validate_chunk",
]
