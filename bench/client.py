"""The one ``openai.OpenAI`` client each benchmark process uses (worker and baseline alike)."""

from __future__ import annotations

import os

import httpx2
import openai


def model_client() -> openai.OpenAI:
    """An OpenAI client for the scripted model server (``OPENAI_BASE_URL``), no retries, with
    enough pooled keep-alive connections for every concurrent chat of the largest run."""
    limits = httpx2.Limits(
        max_connections=4000, max_keepalive_connections=4000, keepalive_expiry=60
    )
    return openai.OpenAI(
        api_key=os.environ.get("OPENAI_API_KEY", "bench"),
        base_url=os.environ["OPENAI_BASE_URL"],
        max_retries=0,
        http_client=openai.DefaultHttpxClient(limits=limits),
    )
