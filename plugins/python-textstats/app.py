"""A tool plugin written in Python: `text_stats` counts a text's words, lines and
characters and names its most frequent words. Built into a component with
componentize-py against the host's WIT (`wit/`), like any other plugin."""

import json
import re
from collections import Counter

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import (
    Annotations,
    CallError_InvalidArguments,
    CallError_UnknownTool,
    CallResult,
    Content_Text,
    Tool,
)

INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "maxLength": 1_000_000, "description": "The text to count."},
        "top": {
            "type": "integer",
            "minimum": 1,
            "maximum": 20,
            "default": 5,
            "description": "How many of the most frequent words to name.",
        },
    },
    "required": ["text"],
    "additionalProperties": False,
}

OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "words": {"type": "integer"},
        "lines": {"type": "integer"},
        "characters": {"type": "integer"},
        "top_words": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"word": {"type": "string"}, "count": {"type": "integer"}},
                "required": ["word", "count"],
            },
        },
    },
    "required": ["words", "lines", "characters", "top_words"],
}

WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def text_stats(arguments):
    text = arguments["text"]
    top = arguments.get("top", 5)
    if not text.strip():
        # The schema allows it; the tool still cannot count nothing.
        raise Err(CallError_InvalidArguments("`text` has no words to count"))
    words = [w.lower() for w in WORD.findall(text)]
    # Most frequent first, ties in alphabetical order. (Not `most_common(n)`: it
    # imports heapq when called, and a component holds only what was imported when
    # it was built.)
    counts = sorted(Counter(words).items(), key=lambda wc: (-wc[1], wc[0]))[:top]
    stats = {
        "words": len(words),
        "lines": len(text.splitlines()),
        "characters": len(text),
        "top_words": [{"word": w, "count": c} for w, c in counts],
    }
    named = ", ".join(f"{w} ({c})" for w, c in counts)
    summary = f"{stats['words']} words, {stats['lines']} lines, {stats['characters']} characters. Most frequent: {named}."
    return CallResult(
        content=[Content_Text(summary)], structured=json.dumps(stats), is_error=False
    )


class Tools(exports.Tools):
    def list_tools(self):
        return [
            Tool(
                name="text_stats",
                title="Text statistics",
                description="Counts the words, lines and characters of a text and names its most frequent words.",
                input_schema=json.dumps(INPUT_SCHEMA),
                output_schema=json.dumps(OUTPUT_SCHEMA),
                annotations=Annotations(
                    read_only=True, destructive=False, idempotent=True, open_world=False
                ),
            )
        ]

    def call_tool(self, name, arguments):
        if name != "text_stats":
            raise Err(CallError_UnknownTool(name))
        return text_stats(json.loads(arguments))
