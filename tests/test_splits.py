"""Live traffic splits: validated in the policy, chosen in the router, analysed from the log."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy_parser import load_policy, parse_policy
from taelio_core.errors import ConfigError, ProviderUnavailable
from taelio_core.experiments.live_splits import analyse_splits
from taelio_core.providers.function import FunctionProvider
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router

BASE = load_policy("current").text
SPLIT = """
[splits.pro.idea.gpt]
weight = 30
head = "openai:gpt-4.1"

[splits.pro.idea.claude]
weight = 70
chain = ["anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"]
"""


def test_a_split_is_parsed_into_full_chains() -> None:
    policy = parse_policy(BASE + SPLIT)
    split = policy.split("pro", "idea")
    assert split is not None and policy.split("pro", "story") is None
    gpt, claude = split.arms
    assert [e.ref for e in gpt.chain] == ["openai:gpt-4.1", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"]
    assert [e.ref for e in claude.chain] == ["anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"]
    assert (gpt.weight, claude.weight) == (30, 70)


@pytest.mark.parametrize(("extra", "key", "message"), [
    ("[splits.pro.idea.a]\nweight = 1\nhead = \"openai:gpt-4.1\"\n", "splits.pro.idea", "at least two arms"),
    (SPLIT.replace('head = "openai:gpt-4.1"', 'head = "opnai:gpt-4.1"'), "splits.pro.idea.gpt.head",
     "unknown provider 'opnai'"),
    (SPLIT.replace("weight = 30", "weight = 0"), "splits.pro.idea.gpt.weight", "greater than 0"),
    (SPLIT.replace('head = "openai:gpt-4.1"', 'head = "openai:gpt-4.1"\nchain = ["openai:gpt-4.1"]'),
     "splits.pro.idea.gpt", "exactly one of 'head'"),
    (SPLIT.replace("splits.pro.idea.gpt", "splits.vip.idea.gpt"), "splits.vip", "unknown tier 'vip'"),
    (SPLIT.replace("splits.pro.idea.gpt", "splits.pro.poem.gpt"), "splits.pro.poem", "unknown task 'poem'"),
    (SPLIT.replace("weight = 30", "weigth = 30"), "splits.pro.idea.gpt.weigth", "unknown key"),
])
def test_split_mistakes_name_file_key_and_line(extra: str, key: str, message: str) -> None:
    text = BASE + extra
    with pytest.raises(ConfigError) as err:
        parse_policy(text, source="mine.toml")
    text_err = str(err.value)
    assert text_err.startswith("mine.toml:") and f"key '{key}'" in text_err and message in text_err
    line = int(text_err.split(":")[1].split(",")[0])
    assert key.split(".")[-1] in text.splitlines()[line - 1] or key.split(".")[2] in text.splitlines()[line - 1]


def _router(tmp_path: Path, fail_claude: bool = False) -> tuple[Router, DuckDBCallLog]:
    policy = parse_policy(BASE + SPLIT)

    def answer(model: str, request) -> str:  # noqa: ANN001
        if fail_claude and model.startswith("claude"):
            raise ProviderUnavailable("down", provider="anthropic", model=model, http_status=503)
        return f"an idea from {model}"
    providers = {name: FunctionProvider(name, answer) for name in policy.providers}
    log = DuckDBCallLog(tmp_path / "log.duckdb")
    return Router(policy, providers, sink=log), log


def test_assignment_is_sticky_per_user_and_follows_the_weights(tmp_path: Path) -> None:
    router, log = _router(tmp_path)
    split = router.policy.split("pro", "idea")
    by_user = {f"user{i}": split.choose(f"user{i}").name for i in range(2000)}
    assert all(split.choose(u).name == arm for u, arm in list(by_user.items())[:200])   # sticky
    share = Counter(by_user.values())["claude"] / len(by_user)
    assert 0.66 < share < 0.74                                                        # ~70%
    first = router.generate("pro", "idea", Inputs(prompt="x"), user_id="user7")
    assert first.routing_reason == f"split pro.idea={by_user['user7']}"
    served = "openai" if by_user["user7"] == "gpt" else "anthropic"
    assert first.provider == served
    for _ in range(5):
        assert router.generate("pro", "idea", Inputs(prompt="x"), user_id="user7").provider == served
    # an explicit provider choice bypasses the split; other routes are untouched
    assert router.generate("pro", "idea", Inputs(prompt="x"), provider="gemini").routing_reason is None
    assert router.generate("pro", "story", Inputs(prompt="x")).routing_reason is None
    log.close()


def test_the_compare_page_analysis_reads_the_split_back_from_the_log(tmp_path: Path) -> None:
    router, log = _router(tmp_path, fail_claude=True)
    for i in range(120):
        try:
            router.generate("pro", "idea", Inputs(prompt="x"), user_id=f"u{i}")
        except Exception:  # noqa: BLE001 - a failed request is logged too
            pass
    log.flush()
    (analysis,) = analyse_splits(log)
    assert (analysis.tier, analysis.task) == ("pro", "idea")
    arms = analysis.arms.set_index("arm")
    assert arms.requests.sum() == 120
    # claude's head fails every time, so its arm is served by gemini after a fallback; gpt's by openai.
    assert arms.loc["claude", "served_by"] == "gemini:gemini-2.5-pro"
    assert arms.loc["gpt", "served_by"] == "openai:gpt-4.1"
    assert (arms.success_rate == 1.0).all() and (arms.success_low < 1.0).all()
    assert analysis.sentences[0].startswith("Success rate:") and "no real difference" in analysis.sentences[0]
    log.close()
