"""SSE events built from bytes encoded once per stream are the same bytes as encoding each event whole."""
from __future__ import annotations

import json

import pytest

from taelio_core.api.sse import MARK, event, framed


@pytest.mark.parametrize("text", ["a plain chunk", 'quotes " and \\ backslashes', "é, 漢字 and 🙂", "", "line\nbreak"])
def test_a_framed_text_event_is_byte_for_byte_the_whole_event(text: str) -> None:
    frame = framed("event: text\ndata: ", {"part": "idea", "text": MARK})
    assert frame(text) == event("text", {"part": "idea", "text": text})


def test_a_framed_openai_chunk_decodes_to_the_document_with_the_text_in_place() -> None:
    doc = {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": MARK}, "finish_reason": None}]}
    raw = framed("data: ", doc)("Once upon")
    assert raw.startswith(b"data: ") and raw.endswith(b"\n\n")
    assert json.loads(raw[6:]) == {**doc, "choices": [{"index": 0, "delta": {"content": "Once upon"},
                                                       "finish_reason": None}]}


def test_a_document_without_exactly_one_mark_is_refused() -> None:
    with pytest.raises(ValueError):
        framed("data: ", {"text": "no mark here"})
    with pytest.raises(ValueError):
        framed("data: ", {"a": MARK, "b": MARK})
