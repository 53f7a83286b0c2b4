"""An unmodified ``openai`` SDK client against ``taelio serve``'s ``/v1``: the JWT is its API key."""
from __future__ import annotations

import openai
import pytest

from tests.api.server import ApiServer

pytestmark = pytest.mark.timeout(300)
MESSAGES = [{"role": "system", "content": "ignored: the task has its own"},
            {"role": "user", "content": "An earlier turn"}, {"role": "assistant", "content": "..."},
            {"role": "user", "content": "A lighthouse keeper finds a bottle"}]


def client(api: ApiServer, tier: str = "pro", **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=api.url + "/v1", api_key=api.token(tier=tier), max_retries=0, timeout=60, **kw)


def test_models_lists_each_task(api: ApiServer) -> None:
    assert [m.id for m in client(api).models.list()] == ["taelio/idea", "taelio/story"]


def test_a_completion_maps_the_last_user_message_and_extra_body_onto_the_task(api: ApiServer) -> None:
    api.fake.set_usage("gemini", input_tokens=321, output_tokens=45)
    raw = client(api).chat.completions.with_raw_response.create(
        model="taelio/idea", messages=MESSAGES, extra_body={"genre": "Mystery", "tone": "Bleak"})
    completion = raw.parse()
    assert completion.choices[0].message.content and completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (321, 45)   # as reported
    assert raw.headers["x-taelio-provider"] == "gemini:g-1"
    sent = api.fake.requests[-1].body["contents"][-1]["parts"][0]["text"]
    assert sent == "Premise: A lighthouse keeper finds a bottle (Mystery, Bleak)"
    rows = api.wait_logged("request_id = ?", [raw.headers["x-taelio-request-id"]], 1)
    assert list(rows["source"]) == ["api"] and list(rows["task"]) == ["idea"]


def test_a_streamed_completion_arrives_in_chunks_with_usage_last(api: ApiServer) -> None:
    api.fake.set_text("gemini", "One two three four five six seven eight")
    stream = client(api).chat.completions.create(model="taelio/story", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One two three four five six seven eight"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_errors_raise_the_sdks_usual_exceptions(api: ApiServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=api.url + "/v1", api_key="not-a-jwt", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError, match="taelio/idea"):
        client(api).chat.completions.create(model="gpt-4", messages=MESSAGES)
    with pytest.raises(openai.UnprocessableEntityError):
        client(api).chat.completions.create(model="taelio/idea", messages=[])
    for provider in ("gemini", "openai", "anthropic"):
        api.fake.fail(provider, "unavailable")
    with pytest.raises(openai.InternalServerError) as info:
        client(api).chat.completions.create(model="taelio/idea", messages=MESSAGES)
    assert info.value.status_code == 502 and info.value.body["type"] == "api_error"
    with pytest.raises(openai.APIStatusError) as budget:
        client(api, tier="broke").chat.completions.create(model="taelio/idea", messages=MESSAGES)
    assert budget.value.status_code == 402


def test_a_stream_whose_every_provider_fails_raises_in_the_sdk(api: ApiServer) -> None:
    for provider in ("gemini", "openai", "anthropic"):
        api.fake.fail(provider, "unavailable")
    stream = client(api).chat.completions.create(model="taelio/idea", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="Every provider failed"):
        list(stream)
