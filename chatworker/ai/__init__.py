"""Model calls for chat tasks: ``stream_text`` (the AI SDK's ``streamText``), tools, providers."""

from .providers import LanguageModel, OpenAIChatModel, openai
from .steering import Steering, SteeringMessage
from .steps import FinishEvent, StepResult
from .stream import StreamTextResult, default_error_text, stream_text
from .task_tool import TaskToolCall, task_tool
from .tools import (
    InvalidToolInputError,
    NoSuchToolError,
    Tool,
    ToolCallOptions,
    ToolExecutionError,
    step_count_is,
    tool,
)
from .ui_stream import UIMessageStreamFinishEvent

__all__ = [
    "FinishEvent",
    "InvalidToolInputError",
    "LanguageModel",
    "NoSuchToolError",
    "OpenAIChatModel",
    "Steering",
    "SteeringMessage",
    "StepResult",
    "StreamTextResult",
    "TaskToolCall",
    "Tool",
    "ToolCallOptions",
    "ToolExecutionError",
    "UIMessageStreamFinishEvent",
    "default_error_text",
    "openai",
    "step_count_is",
    "stream_text",
    "task_tool",
    "tool",
]
