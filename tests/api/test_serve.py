"""``taelio serve`` as a real process: auth, every status code, the seed's endpoints, SSE, problem documents."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time

import httpx
import jwt
import pytest

from tests.api.server import KEYS, SECRET, ApiServer
from tests.fakeserver import Fault

pytestmark = pytest.mark.timeout(300)
STORY = {"prompt": "A mysterious lighthouse keeper", "genre": "Mystery", "tone": "Dark and atmospheric"}


def is_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    doc = response.json()
    assert doc["status"] == status and doc["detail"].endswith(".") and "Traceback" not in response.text
    return doc


# ---- auth ---------------------------------------------------------------------------------
def test_a_missing_token_is_401_with_www_authenticate(api: ApiServer) -> None:
    response = httpx.get(api.url + "/providers/available")
    doc = is_problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer realm="taelio"')
    assert "Authorization: Bearer" in doc["detail"]


@pytest.mark.parametrize(("token", "says"), [
    ("not-a-jwt", "not a well-formed JWT"),
    (jwt.encode({"sub": "a", "tier": "pro", "exp": int(time.time()) - 10}, SECRET, algorithm="HS256"), "expired"),
    (jwt.encode({"sub": "a", "tier": "pro", "exp": int(time.time()) + 600}, "another-secret-0123456789abcdefgh",
                algorithm="HS256"), "signature is not valid"),
    (jwt.encode({"sub": "a", "tier": "pro", "exp": int(time.time()) + 600}, None, algorithm="none"), "not 'none'"),
    (jwt.encode({"sub": "a", "tier": "pro", "exp": int(time.time()) + 600}, SECRET, algorithm="HS512"),
     "not 'HS512'"),
    (jwt.encode({"sub": "a", "tier": "pro"}, SECRET, algorithm="HS256"), "no 'exp' claim"),
], ids=["malformed", "expired", "other-secret", "alg-none", "hs512", "no-exp"])
def test_untrustworthy_tokens_are_401(api: ApiServer, token: str, says: str) -> None:
    response = httpx.get(api.url + "/providers/available", headers={"Authorization": f"Bearer {token}"})
    assert says in is_problem(response, 401)["detail"]
    assert "www-authenticate" in response.headers


def test_a_forged_token_with_a_changed_tier_is_401(api: ApiServer) -> None:
    head, _, sig = api.token(tier="free").split(".")
    claims = jwt.decode(api.token(tier="free"), SECRET, algorithms=["HS256"])
    forged_body = jwt.utils.base64url_encode(json.dumps({**claims, "tier": "admin"}).encode()).decode()
    response = httpx.get(api.url + "/providers/available", headers={"Authorization": f"Bearer {head}.{forged_body}.{sig}"})
    assert "signature" in is_problem(response, 401)["detail"]


def test_a_token_in_the_query_string_is_refused(api: ApiServer) -> None:
    response = httpx.get(api.url + "/providers/available", params={"access_token": api.token()})
    assert "query string" in is_problem(response, 401)["detail"]


def test_an_unknown_tier_is_403(api: ApiServer) -> None:
    response = httpx.get(api.url + "/providers/available", headers=api.headers(tier="platinum"))
    assert "'platinum' is not a tier" in is_problem(response, 403)["detail"]


def test_a_free_token_whose_body_says_admin_is_refused_and_gets_no_admin_chain(api: ApiServer) -> None:
    body = {**STORY, "tier": "admin"}
    response = httpx.post(api.url + "/generate/idea", json=body, headers=api.headers(sub="mallory", tier="free"))
    assert "tier comes from the bearer token" in is_problem(response, 422)["detail"]
    probe = httpx.post(api.url + "/providers/test", params={"provider": "openai", "tier": "admin"},
                       headers=api.headers(sub="mallory", tier="free"))
    is_problem(probe, 403)
    other = httpx.get(api.url + "/providers/selection-info", params={"task": "idea", "tier": "admin"},
                      headers=api.headers(tier="free"))
    assert "own tier" in is_problem(other, 403)["detail"]


def test_selection_info_answers_for_the_callers_tier_and_an_admin_for_any(api: ApiServer) -> None:
    mine = httpx.get(api.url + "/providers/selection-info", params={"task": "story", "tier": "pro"},
                     headers=api.headers(tier="pro")).json()
    assert mine["tier"] == "pro" and [f"{e['provider']}:{e['model']}" for e in mine["chain"]] == \
        ["gemini:g-1", "openai:o-1", "anthropic:a-1"]
    assert all(e["available"] for e in mine["chain"])
    admin = httpx.get(api.url + "/providers/selection-info", params={"task": "idea", "tier": "free"},
                      headers=api.headers(tier="admin"))
    assert admin.status_code == 200 and admin.json()["tier"] == "free"


# ---- the seed's curl examples, verbatim but for host and token --------------------------------
SEED_CURLS = [
    '''curl -X POST "http://localhost:8000/multi-agent/full-story-orchestrated" \\
  -H "Authorization: Bearer <token>" \\
  -H "Content-Type: application/json" \\
  -d '{
    "prompt": "A mysterious lighthouse keeper",
    "genre": "Mystery",
    "tone": "Dark and atmospheric"
  }\'''',
    '''curl -X GET "http://localhost:8000/providers/available" \\
  -H "Authorization: Bearer <token>"''',
    '''curl -X POST "http://localhost:8000/providers/test?provider=openai&task=idea" \\
  -H "Authorization: Bearer <token>"''',
    '''curl -X GET "http://localhost:8000/providers/selection-info?task=story&tier=pro" \\
  -H "Authorization: Bearer <token>"''',
]


def run_curl(api: ApiServer, example: str, token: str) -> dict:
    if shutil.which("curl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is not installed: .ci/run installs it with apt")
        pytest.skip("curl is not installed (apt-get install curl)")
    command = example.replace("http://localhost:8000", api.url).replace("<token>", token).replace("\\\n", " ")
    out = subprocess.run(shlex.split(command) + ["-s", "--fail-with-body"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_the_seeds_four_curl_examples_work_as_written(api: ApiServer) -> None:
    story = run_curl(api, SEED_CURLS[0], api.token(tier="pro"))
    assert story["status"] == "ok" and story["idea"]["parent_id"] == story["story"]["parent_id"]
    assert story["idea"]["provider"] == "gemini" and story["story"]["text"]
    assert story["total"]["input_tokens"] == story["idea"]["input_tokens"] + story["story"]["input_tokens"]
    assert story["total"]["cost_usd"] == pytest.approx(story["idea"]["cost_usd"] + story["story"]["cost_usd"])
    available = run_curl(api, SEED_CURLS[1], api.token(tier="pro"))
    assert {p["provider"]: p["configured"] for p in available["providers"]} == \
        {"gemini": True, "openai": True, "anthropic": True}
    probe = run_curl(api, SEED_CURLS[2], api.token(sub="root", tier="admin"))
    assert probe["source"] == "test" and probe["provider"] == "openai" and probe["status"] == "ok"
    info = run_curl(api, SEED_CURLS[3], api.token(tier="pro"))
    assert info["task"] == "story" and len(info["chain"]) == 3
    rows = api.wait_logged("parent_id = ?", [story["parent_id"]], 2)
    assert set(rows["source"]) == {"api"} and set(rows["user_id"]) == {"alice"}


# ---- generation and its errors ------------------------------------------------------------
def test_generate_falls_back_and_names_who_served_it(api: ApiServer) -> None:
    api.fake.fail("gemini", "unavailable")
    response = httpx.post(api.url + "/generate/idea", json=STORY, headers=api.headers(), timeout=60)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert [a["status"] for a in doc["attempts"]] == ["error", "ok"] and doc["provider"] == "openai"
    assert response.headers["x-taelio-provider"] == "openai:o-1"
    assert response.headers["x-taelio-request-id"] == doc["request_id"]


def test_every_provider_failing_is_502_and_lists_every_attempt(api: ApiServer) -> None:
    for provider in ("gemini", "openai", "anthropic"):
        api.fake.fail(provider, "unavailable")
    response = httpx.post(api.url + "/generate/idea", json=STORY, headers=api.headers(), timeout=60)
    doc = is_problem(response, 502)
    assert [a["provider"] for a in doc["attempts"]] == ["gemini", "openai", "anthropic"]


def test_a_hard_budget_is_402(api: ApiServer) -> None:
    response = httpx.post(api.url + "/generate/idea", json=STORY, headers=api.headers(tier="broke"), timeout=60)
    assert "Budget" in is_problem(response, 402)["detail"]


@pytest.mark.parametrize(("body", "says"), [
    ({"genre": "x"}, "prompt: Field required"), ({"prompt": "   "}, "prompt is empty"),
    ({"prompt": "x", "genre": "g" * 201}, "genre:"), ({"prompt": "x", "colour": "red"}, "colour: is not a field"),
])
def test_a_bad_body_is_422_in_one_sentence(api: ApiServer, body: dict, says: str) -> None:
    response = httpx.post(api.url + "/generate/idea", json=body, headers=api.headers())
    assert says in is_problem(response, 422)["detail"]


@pytest.mark.parametrize(("content", "content_type", "says"), [
    (b'{"prompt": "x"', "application/json", "Invalid JSON"), (b"prompt=x", "application/x-www-form-urlencoded",
                                                             "must be JSON"), (b"", "application/json", "Invalid JSON"),
], ids=["cut-json", "form", "empty"])
def test_a_body_that_is_not_json_is_422_in_one_sentence(api: ApiServer, content: bytes, content_type: str,
                                                        says: str) -> None:
    for path in ("/generate/idea", "/multi-agent/full-story-orchestrated"):
        response = httpx.post(api.url + path, content=content, headers={**api.headers(), "Content-Type": content_type})
        assert says in is_problem(response, 422)["detail"], path


def test_a_bad_body_without_a_token_is_401_not_422(api: ApiServer) -> None:
    response = httpx.post(api.url + "/generate/idea", json={"colour": "red"})
    is_problem(response, 401)


def test_an_unknown_task_is_422(api: ApiServer) -> None:
    response = httpx.post(api.url + "/generate/poem", json=STORY, headers=api.headers())
    assert "unknown task 'poem'" in is_problem(response, 422)["detail"]


def test_a_body_over_64_kib_is_413_before_it_is_parsed(api: ApiServer) -> None:
    huge = b'{"prompt": "' + b"x" * (65 * 1024) + b'"'      # not even valid JSON: never parsed
    response = httpx.post(api.url + "/generate/idea", content=huge, headers=api.headers())
    assert "64 KiB" in is_problem(response, 413)["detail"]

    def chunks():  # noqa: ANN202 - no Content-Length: counted as it arrives
        for _ in range(70):
            yield b"x" * 1024
    chunked = httpx.post(api.url + "/generate/idea", content=chunks(), headers=api.headers())
    is_problem(chunked, 413)


def test_requests_over_the_tiers_minute_limit_are_429_with_retry_after(api: ApiServer) -> None:
    headers = api.headers(sub=f"busy-{time.time_ns()}", tier="tiny")       # tiny: 3 requests a minute
    codes = [httpx.get(api.url + "/providers/available", headers=headers) for _ in range(4)]
    assert [r.status_code for r in codes[:3]] == [200, 200, 200]
    doc = is_problem(codes[3], 429)
    assert "3 requests a minute" in doc["detail"] and 1 <= int(codes[3].headers["retry-after"]) <= 60
    other_user = httpx.get(api.url + "/providers/available", headers=api.headers(sub="calm", tier="tiny"))
    assert other_user.status_code == 200          # counted per user


def test_the_days_tokens_once_spent_are_429(api: ApiServer) -> None:
    headers = api.headers(sub=f"spender-{time.time_ns()}", tier="thrifty")     # thrifty: 5 tokens a day
    first = httpx.post(api.url + "/generate/idea", json=STORY, headers=headers, timeout=60)
    assert first.status_code == 200 and first.json()["output_tokens"] > 5
    second = httpx.post(api.url + "/generate/idea", json=STORY, headers=headers, timeout=60)
    assert "5 tokens a day" in is_problem(second, 429)["detail"] and int(second.headers["retry-after"]) > 0


def test_an_unknown_path_and_method_are_problem_documents(api: ApiServer) -> None:
    assert "no endpoint" in is_problem(httpx.get(api.url + "/nope"), 404)["detail"]
    is_problem(httpx.delete(api.url + "/healthz"), 405)


# ---- SSE ----------------------------------------------------------------------------------
def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def test_the_full_story_streams_text_by_part_each_trace_and_a_summary(api: ApiServer) -> None:
    api.fake.fail("gemini", Fault.stream_cut(after_chunks=2))       # the idea's first provider breaks mid-answer
    with httpx.stream("POST", api.url + "/multi-agent/full-story-orchestrated", json=STORY, timeout=60,
                      headers={**api.headers(), "Accept": "text/event-stream"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        parent = response.headers["x-taelio-request-id"]
    names = [n for n, _ in events]
    assert names[-1] == "summary" and names.count("trace") == 2 and "truncated" in names
    parts = [d["part"] for n, d in events if n == "text"]
    assert parts == sorted(parts, key=["idea", "story"].index) and set(parts) == {"idea", "story"}
    traces = [d for n, d in events if n == "trace"]
    assert traces[0]["task"] == "idea" and traces[0]["attempts"][0]["status"] == "truncated"
    summary = events[-1][1]
    assert summary["parent_id"] == parent and summary["status"] == "ok"
    assert summary["total"]["output_tokens"] == sum(t["output_tokens"] for t in traces)
    story_text = "".join(d["text"] for n, d in events if n == "text" and d["part"] == "story")
    assert story_text == traces[1]["text"]


def test_generate_streams_one_task(api: ApiServer) -> None:
    with httpx.stream("POST", api.url + "/generate/story", json={**STORY, "idea": "A bell under the sea"},
                      headers={**api.headers(), "Accept": "text/event-stream"}, timeout=60) as response:
        events = sse_events(response)
    assert {n for n, _ in events} == {"text", "trace", "summary"}
    assert events[-1][1]["status"] == "ok" and events[-1][1]["request_id"] == response.headers["x-taelio-request-id"]


# ---- operations, docs ---------------------------------------------------------------------
def test_operations_endpoints_need_no_token(api: ApiServer) -> None:
    assert httpx.get(api.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(api.url + "/readyz").json()["policy"] == "apitest"
    httpx.post(api.url + "/generate/idea", json=STORY, headers=api.headers(), timeout=60)
    metrics = httpx.get(api.url + "/metrics").text
    assert 'taelio_generations_total{status="ok",task="idea",tier="pro"}' in metrics
    assert "taelio_http_request_seconds_bucket" in metrics and "taelio_cost_usd_total" in metrics


def test_openapi_documents_every_endpoint_and_the_docs_page_is_served(api: ApiServer) -> None:
    doc = httpx.get(api.url + "/openapi.json").json()
    for path in ("/providers/available", "/providers/selection-info", "/providers/test", "/providers/health",
                 "/multi-agent/full-story-orchestrated", "/generate/{task}", "/v1/chat/completions", "/v1/models"):
        assert path in doc["paths"], path
    assert "402" in doc["paths"]["/generate/{task}"]["post"]["responses"]
    schemas = doc["components"]["schemas"]
    for path, body, field in (("/generate/{task}", "GenerateBody", "idea"),
                              ("/multi-agent/full-story-orchestrated", "StoryBody", "prompt"),
                              ("/v1/chat/completions", "ChatCompletionRequest", "messages")):
        operation = doc["paths"][path]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{body}" and field in schemas[body]["properties"], path
        assert operation["security"] == [{"HTTPBearer": []}], path
        assert {"401", "422", "429", "502"} <= set(operation["responses"]), path
    assert schemas["ChatCompletionRequest"]["properties"]["messages"]["items"]["$ref"] == "#/components/schemas/Message"
    generate = doc["paths"]["/generate/{task}"]["post"]
    assert {(p["in"], p["name"]) for p in generate["parameters"]} == {("path", "task"), ("header", "accept")}
    assert "swagger" in httpx.get(api.url + "/docs").text.lower()


def test_provider_health_reports_breakers_and_latency(api: ApiServer) -> None:
    httpx.post(api.url + "/generate/idea", json=STORY, headers=api.headers(), timeout=60)
    doc = httpx.get(api.url + "/providers/health", headers=api.headers(), timeout=60).json()
    assert {"breakers", "budgets", "providers"} <= set(doc)
    gemini = next(p for p in doc["providers"] if p["provider"] == "gemini")
    assert gemini["attempts"] >= 1 and 0 <= gemini["success_rate"] <= 1 and gemini["p50_ms"] > 0


# ---- secrets ------------------------------------------------------------------------------
def test_a_planted_key_is_in_no_response_header_log_line_or_log_row(api: ApiServer) -> None:
    seen: list[str] = []
    api.fake.fail("openai", "auth", times=None)                    # echoes the key it was sent
    api.fake.fail("gemini", "auth", times=None)
    api.fake.fail("anthropic", "auth", times=None)
    for response in (
        httpx.post(api.url + "/generate/idea", json=STORY, headers=api.headers(), timeout=60),
        httpx.post(api.url + "/providers/test", params={"provider": "openai"}, headers=api.headers(tier="admin")),
        httpx.post(api.url + "/multi-agent/full-story-orchestrated", json=STORY, headers=api.headers(), timeout=60),
        httpx.get(api.url + "/providers/health", headers=api.headers()),
        httpx.get(api.url + "/metrics"),
    ):
        seen.append(response.text + json.dumps(dict(response.headers)))
    assert any(a in seen[0] for a in ("auth_failed",)), seen[0][:300]
    with httpx.stream("POST", api.url + "/generate/idea", json=STORY, timeout=60,
                      headers={**api.headers(), "Accept": "text/event-stream"}) as response:
        seen.append(response.read().decode() + json.dumps(dict(response.headers)))
    api.fake.clear()
    rows = api.wait_logged("source IN ('api', 'test')", None, 1)
    seen.append(rows.to_csv())
    seen.append(api.stderr_path.read_text())
    text = "\n".join(seen)
    for key in KEYS.values():
        assert key not in text and key[-12:] not in text
