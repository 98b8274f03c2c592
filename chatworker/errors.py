"""Exceptions chatworker raises, each naming what went wrong and what to do about it."""

from __future__ import annotations


class ChatworkerError(Exception):
    """Base class of every chatworker error. ``code`` is the JSON ``error`` the gateway sends."""

    code = "error"
    status = 500


class RunNotFound(ChatworkerError):
    """The run id is unknown (never existed, or expired after its retention period)."""

    code = "run_not_found"
    status = 404


class TaskNotFound(ChatworkerError):
    """No chat task with that id is registered in this process (check ``CHATWORKER_TASKS``)."""

    code = "task_not_found"
    status = 404


class RunEnded(ChatworkerError):
    """The run will not answer this message; trigger a continuation run with the full history."""

    code = "run_ended"
    status = 409


class RunBusy(ChatworkerError):
    """A turn of the run is streaming and the message's ``whileStreaming`` policy is ``reject``:
    nothing was queued. Send it again once the turn is complete, or with another policy."""

    code = "busy"
    status = 409


class InvalidPayload(ChatworkerError):
    """The wire payload or the client data failed validation; nothing was enqueued."""

    code = "invalid_payload"
    status = 422


class RedisUnavailable(ChatworkerError):
    """Redis could not be reached."""

    code = "redis_unavailable"
    status = 503


class AbortError(ChatworkerError):
    """Raised by code that honours an abort signal when the signal fires."""

    code = "aborted"


class StreamTrimmed(ChatworkerError):
    """Entries after the id a reader resumes from were trimmed from the run's output stream (it
    keeps about ``CHATWORKER_STREAM_MAXLEN`` entries): reading on would skip them. Load the
    chat's history again instead, then follow the run from its current position."""

    code = "stream_trimmed"
    status = 410


class StreamIdAhead(ChatworkerError):
    """The id to resume after is beyond the last entry the run's output stream ever had: it was
    not sent by this stream (or Redis lost entries it had sent). Resume from an id the stream
    sent, or load the chat's history again."""

    code = "stream_id_ahead"
    status = 400
