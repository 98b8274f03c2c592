"""Test helpers: an OpenAI-compatible scripted model server (with an offline demo mode)."""

from .model_server import ModelServer, StreamRecord
from .script import (
    Citation,
    Disconnect,
    Error,
    Finish,
    Reasoning,
    Rule,
    Seen,
    Silence,
    Text,
    ToolCall,
    ToolLoop,
    Usage,
    call_then_report,
)

__all__ = [
    "Citation",
    "Disconnect",
    "Error",
    "Finish",
    "ModelServer",
    "Reasoning",
    "Rule",
    "Seen",
    "Silence",
    "StreamRecord",
    "Text",
    "ToolCall",
    "ToolLoop",
    "Usage",
    "call_then_report",
]
