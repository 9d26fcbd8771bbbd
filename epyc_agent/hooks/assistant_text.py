"""The assistant's latest text, digested at Stop, so `log analyze --loops` sees text loops (the
same answer again and again, one sentence streamed over and over) without logging the text.

Claude Code 2.1.x hands Stop the `last_assistant_message`; older versions only the transcript,
which is read from its end (the last 256 KiB), never whole.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

from ..guards.retry import digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TAIL_BYTES = 1 << 18
SENTENCE = re.compile(r"[^.!?\n]+")
MIN_SENTENCE = 20  # characters: shorter fragments ("Done", list bullets) repeat innocently


def latest_text(p: dict[str, Any]) -> str:
    """The text of the assistant's last message: from the payload, else the transcript's tail."""
    text = p.get("last_assistant_message")
    if isinstance(text, str):
        return text
    path = p.get("transcript_path")
    return _from_transcript(path) if isinstance(path, str) and path else ""


def _from_transcript(path: str) -> str:
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(0, end - TAIL_BYTES))
            lines = f.read().splitlines()
    except OSError:
        return ""
    for raw in reversed(lines):
        try:
            line = json.loads(raw)
        except ValueError:
            continue  # the cut first line, or one being written
        if not isinstance(line, dict) or line.get("type") != "assistant":
            continue
        message = line.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            texts = [c.get("text") for c in content if isinstance(c, dict) and c.get("type") == "text"]
            text = "\n".join(t for t in texts if isinstance(t, str))
            if text:
                return text
    return ""


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def text_facts(text: str) -> dict[str, Any]:
    """A digest of the normalised text (case and spacing ignored) and how often its most
    repeated sentence (or line) occurs; empty for no text."""
    norm = _norm(text)
    if not norm:
        return {}
    sentences = Counter(s for s in map(_norm, SENTENCE.findall(text)) if len(s) >= MIN_SENTENCE)
    top = sentences.most_common(1)
    return {
        "text_digest": digest(norm),
        "text_chars": len(text),
        "sentence_repeats": top[0][1] if top else 0,
    }
