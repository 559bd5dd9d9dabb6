"""The description generator against scripted OpenAI-compatible endpoints on 127.0.0.1 (bad JSON, slow
answers, 429, refusals), through the real `openai` client; and the rules that accept or reject a reply."""

import json
import re
import time

import openai
import pytest

from kda.cli import main
from kda.knowledge import (
    ASPECTS,
    ClassKnowledge,
    Description,
    Knowledge,
    KnowledgeError,
    LLMAuthError,
    LLMError,
    LLMKeyMissingError,
    LLMMalformedOutputError,
    LLMRateLimitError,
    LLMRefusalError,
    LLMTimeoutError,
    LLMUnreachableError,
    describe_classes,
    load_knowledge,
    save_knowledge,
)
from kda.knowledge.generate import (
    ANSWER_SCHEMA,
    BadAnswer,
    backoff_delay,
    first_sentences,
    parse_answer,
    read_class_list,
)

try:
    from llm_server import Reply, ScriptedLLM, answer, chat_completion, free_port
except ImportError:  # tests/ imported as a package
    from tests.llm_server import (
        Reply,
        ScriptedLLM,
        answer,
        chat_completion,
        free_port,
    )

FAST = {"retries": 2, "backoff": 0.01, "timeout": 5.0}


@pytest.fixture(autouse=True)
def no_llm_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def good(body, n):
    name = re.search(r'"(.+)"', body["messages"][-1]["content"]).group(1)
    return answer(f"This answers about {name} in one sentence. And a second sentence. A third is cut.")


# -- replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "finish", "expected"),
    [
        ('{"answer": "Archery is shooting arrows at a target."}', "stop", "Archery is shooting arrows at a target."),
        ('```json\n{"answer": "Archery is a sport with bows."}\n```', "stop", "Archery is a sport with bows."),
        ("Archery is a sport. It uses bows. It is old.", "stop", "Archery is a sport. It uses bows."),
        ("Archery uses a bow and arrows", "stop", "Archery uses a bow and arrows."),
        ('{"answer": "Archery is a sport. Archers draw a bow and rel', "length", "Archery is a sport."),
        ("Archery is a sport with bows. Archers then", "length", "Archery is a sport with bows."),
    ],
)
def test_accepted_replies(content, finish, expected):
    assert parse_answer(content, finish) == expected


@pytest.mark.parametrize(
    ("content", "finish", "reason"),
    [
        ("", "stop", "empty reply"),
        ("{not json at all", "stop", "not valid JSON"),
        ('{"answer": "Archery is a sport with', "length", "token limit cut the reply"),
        ('{"text": "Archery is a sport."}', "stop", 'lacks a string "answer"'),
        ('["Archery is a sport."]', "stop", 'lacks a string "answer"'),
        ('{"answer": "Archery"}', "stop", "too short"),
        ("I'm sorry, but I can't help with that.", "stop", "declined"),
        ("word " * 200, "stop", "runs on"),
    ],
)
def test_rejected_replies(content, finish, reason):
    with pytest.raises(BadAnswer, match=reason):
        parse_answer(content, finish)


def test_first_sentences():
    assert first_sentences("One.  Two!\nThree? Four.") == "One. Two!"
    assert first_sentences("One. Two", complete_only=True) == "One."


# -- whole classes through a scripted endpoint ---------------------------------------------------


def test_describes_three_aspects_and_writes_after_each_class(tmp_path):
    out = tmp_path / "k.json"
    with ScriptedLLM(good) as llm:
        result = describe_classes(
            ["Archery", ("BlowDryHair", "Blow Dry Hair")], out, class_set="mini", base_url=llm.base_url, **FAST
        )
        assert len(llm.requests) == 6
        first = llm.requests[0]
    assert sorted(result.described) == ["Archery", "BlowDryHair"]
    knowledge = load_knowledge(out)
    assert knowledge.class_set == "mini" and knowledge.get("BlowDryHair").name == "Blow Dry Hair"
    entry = knowledge.get("BlowDryHair")
    assert [d.aspect for d in entry.descriptions] == list(ASPECTS)
    assert entry.descriptions[1].text == "This answers about Blow Dry Hair in one sentence. And a second sentence."
    assert entry.descriptions[0].author is None  # same as the file-level provenance
    assert knowledge.provenance["author"] == "gpt-4o-mini" and set(knowledge.provenance["prompts"]) == set(ASPECTS)
    assert (
        first["response_format"]["type"] == "json_object"
        and "answer" in first["response_format"]["schema"]["properties"]
    )
    assert first["max_tokens"] == 96


def test_each_class_is_on_disk_before_the_next_is_finished(tmp_path):
    out = tmp_path / "k.json"
    seen_on_disk = []

    def script(body, n):
        if "Bowling" in body["messages"][-1]["content"] and n == 3:
            time.sleep(1.0)  # the writer thread has had ample time to store Archery
            seen_on_disk.append(load_knowledge(out).class_ids if out.exists() else [])
        return good(body, n)

    with ScriptedLLM(script) as llm:
        describe_classes(["Archery", "Bowling"], out, concurrency=1, base_url=llm.base_url, **FAST)
    assert seen_on_disk == [["Archery"]]


def test_resume_skips_described_classes_and_keeps_them(tmp_path):
    out = tmp_path / "k.json"
    with ScriptedLLM(good) as llm:
        describe_classes(["Archery"], out, base_url=llm.base_url, **FAST)
        before = out.read_text()
        result = describe_classes(["Archery", "Bowling"], out, base_url=llm.base_url, **FAST)
        assert len(llm.requests) == 6  # three for Archery, three for Bowling: Archery was not asked again
    assert result.skipped == ["Archery"] and result.described == ["Bowling"]
    assert json.loads(out.read_text())["classes"]["Archery"] == json.loads(before)["classes"]["Archery"]


def test_a_partly_described_class_is_asked_only_what_it_lacks(tmp_path):
    out = tmp_path / "k.json"
    knowledge = Knowledge("mine", {})
    knowledge.set_class(
        "Archery",
        ClassKnowledge("Archery", (Description("visual", "My own words."), Description("habitat", "Ranges."))),
    )
    save_knowledge(knowledge, out)
    _, requests = describe_with(good, out)
    assert len(requests) == 2 and "visual" not in requests[0]["messages"][-1]["content"]
    entry = load_knowledge(out).get("Archery")
    assert [d.aspect for d in entry.descriptions] == ["visual", "habitat", "introduction", "auditory"]
    assert entry.descriptions[0].text == "My own words." and entry.is_complete()


def test_malformed_output_is_retried_then_reported_and_file_untouched(tmp_path):
    out = tmp_path / "k.json"
    with ScriptedLLM(good) as llm:
        describe_classes(["Archery"], out, base_url=llm.base_url, **FAST)
    before = out.read_text()
    with ScriptedLLM(lambda b, n: Reply(body=chat_completion('{"answer": 42, "oops"'))) as llm:
        with pytest.raises(
            LLMMalformedOutputError, match=r"no usable introduction answer for 'Bowling' after 3 attempts"
        ):
            describe_classes(["Archery", "Bowling"], out, base_url=llm.base_url, **FAST)
        assert len(llm.requests) == 3
        assert [r["seed"] for r in llm.requests] == [0, 1, 2]  # a retry is a new sample
    assert out.read_text() == before


@pytest.mark.parametrize("body", ['{"choices": [', "<html>502 Bad Gateway</html>", '{"choices": [{"message": "x"}]}'])
def test_a_reply_that_is_not_a_chat_completion_is_malformed_output(tmp_path, body):
    with pytest.raises(LLMMalformedOutputError, match="not an OpenAI chat completion"):
        describe_with(lambda b, n: Reply(body=body), tmp_path / "k.json")


def test_bad_answer_then_good_answer_succeeds(tmp_path):
    # Broken JSON ("not json {" would pass: plain prose of three words is an accepted answer).
    script = lambda b, n: Reply(body=chat_completion('{"answer": "cut')) if n == 0 else good(b, n)  # noqa: E731
    with ScriptedLLM(script) as llm:
        result = describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
        seeds = sorted(r["seed"] for r in llm.requests)
    assert result.described == ["Archery"]
    assert seeds == [0, 0, 0, 1]  # three questions; the one answered badly was asked again, as a new sample
    answer_text = "This answers about Archery in one sentence. And a second sentence."
    assert load_knowledge(tmp_path / "k.json").texts("Archery") == ["Archery", *[answer_text] * 3]


def describe_with(script, out, classes=("Archery",), **settings):
    """describe_classes against a scripted endpoint; returns the result and the requests it received."""
    with ScriptedLLM(script) as llm:
        return describe_classes(list(classes), out, base_url=llm.base_url, **{**FAST, **settings}), llm.requests


def test_timeout(tmp_path):
    with pytest.raises(LLMTimeoutError, match=r"did not answer within 0.3 s \(after 2 attempts\)"):
        describe_with(lambda b, n: Reply(delay=1.5), tmp_path / "k.json", timeout=0.3, retries=1)
    assert not (tmp_path / "k.json").exists()


def test_rate_limit_is_retried_with_backoff(tmp_path):
    limited = Reply(
        status=429, body={"error": {"message": "slow down", "type": "rate_limit"}}, headers={"Retry-After": "0"}
    )
    with ScriptedLLM(lambda b, n: limited if n < 2 else good(b, n)) as llm:
        result = describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
        assert len(llm.requests) == 5
    assert result.described == ["Archery"]
    with pytest.raises(LLMRateLimitError, match="429 rate limited"):
        describe_with(lambda b, n: limited, tmp_path / "other.json")


def test_refusal(tmp_path):
    with pytest.raises(LLMRefusalError, match="declined to describe 'Archery'"):
        describe_with(lambda b, n: answer("I'm sorry, but I cannot describe that."), tmp_path / "k.json")


def test_structured_output_rejected_falls_back_to_text(tmp_path):
    def script(body, n):
        if "response_format" in body:
            return Reply(status=400, body={"error": {"message": "response_format not supported"}})
        return Reply(body=chat_completion("Archery is a sport with bows and arrows."))

    with ScriptedLLM(script) as llm:
        describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
    assert load_knowledge(tmp_path / "k.json").texts("Archery")[1] == "Archery is a sport with bows and arrows."


def test_missing_key(tmp_path):
    with pytest.raises(LLMKeyMissingError, match="set OPENAI_API_KEY or give `api_key`"):
        describe_classes(["Archery"], tmp_path / "k.json")
    with pytest.raises(LLMKeyMissingError, match="no API key for the LLM"):  # not loopback: a key is needed
        describe_classes(["Archery"], tmp_path / "k.json", base_url="https://llm.example.com/v1")


def test_unreachable_base_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(LLMUnreachableError, match=f"cannot reach the LLM at {url}"):
        describe_classes(["Archery"], tmp_path / "k.json", base_url=url, **FAST)


def test_wrong_key_is_not_retried(tmp_path):
    with ScriptedLLM(lambda b, n: Reply(status=401, body={"error": {"message": "bad key"}})) as llm:
        with pytest.raises(LLMAuthError, match="rejected the API key"):
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, api_key="sk-wrong", **FAST)
        assert len(llm.requests) == 1


def test_unreadable_output_file_is_never_overwritten(tmp_path):
    out = tmp_path / "k.json"
    out.write_text("my notes, not JSON")
    with ScriptedLLM(good) as llm, pytest.raises(KnowledgeError, match="not valid JSON"):
        describe_classes(["Archery"], out, base_url=llm.base_url, **FAST)
    assert out.read_text() == "my notes, not JSON"


def test_class_lists(tmp_path):
    class_set, classes = read_class_list("UCF")
    assert class_set == "UCF-GZSL" and len(classes) == 101 and ("ApplyEyeMakeup", "Apply Eye Makeup") in classes
    path = tmp_path / "mine.txt"
    path.write_text("dog barking\n\n# a comment\ncat purring  # inline\ndog barking\n")
    assert read_class_list(path) == ("mine", [("dog barking", "dog barking"), ("cat purring", "cat purring")])


# -- the command line ----------------------------------------------------------------------------


def test_cli_describes_selected_classes(tmp_path, capsys):
    out = tmp_path / "ucf.json"
    with ScriptedLLM(good) as llm:
        code = main(
            [
                "describe",
                "--classes",
                "UCF",
                "--only",
                "archery, Apply Eye Makeup",
                "--out",
                str(out),
                "--base-url",
                llm.base_url,
            ]
        )
    assert code == 0
    assert set(load_knowledge(out).class_ids) == {"Archery", "ApplyEyeMakeup"}
    assert "described 2, skipped 0" in capsys.readouterr().out


def test_cli_rejects_unknown_only_names(tmp_path, capsys):
    args = ["describe", "--classes", "UCF", "--only", "Quidditch", "--out", str(tmp_path / "k.json")]
    assert main([*args, "--base-url", "http://127.0.0.1:1/v1"]) == 1
    assert capsys.readouterr().err == "kda describe: error: --only names classes not in the list: Quidditch\n"


def describe(script, tmp_path, **settings):
    with ScriptedLLM(script) as llm:
        try:
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **{**FAST, **settings})
        finally:
            requests = list(llm.requests)
    return requests


def test_model_the_endpoint_does_not_serve(tmp_path):
    missing = Reply(status=404, body={"error": {"message": "The model `gpt-9` does not exist", "code": "not_found"}})
    with ScriptedLLM(lambda b, n: missing) as llm:
        with pytest.raises(LLMError, match=r"does not serve model 'gpt-9' \(HTTP 404: .*gpt-9.*\); check `model`"):
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, model="gpt-9", **FAST)
        assert len(llm.requests) == 1  # not retried: asking again cannot help
    assert not (tmp_path / "k.json").exists()


def test_persistent_server_errors_are_retried_then_reported(tmp_path):
    broken = Reply(status=500, body={"error": {"message": "backend exploded"}})
    with ScriptedLLM(lambda b, n: broken) as llm:
        with pytest.raises(LLMError, match=r"failed after 3 attempts: HTTP 500: .*backend exploded"):
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
        assert len(llm.requests) == 3


def test_server_error_then_answer_succeeds(tmp_path):
    broken = Reply(status=503, body={"error": {"message": "warming up"}})
    script = lambda b, n: broken if n == 0 else answer("Archery is shooting arrows at a target.")  # noqa: E731
    with ScriptedLLM(script) as llm:
        result = describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
    assert result.described == ["Archery"]
    # three questions (introduction, visual, auditory), the first asked twice: the 503, then its retry
    assert len(llm.requests) == 4 and llm.requests[1]["messages"] == llm.requests[0]["messages"]
    assert [r["seed"] for r in llm.requests] == [0, 1, 0, 0]  # only the retry samples anew


def refusal_reply():
    body = chat_completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that request."
    return Reply(body=body)


@pytest.mark.parametrize(
    "reply",
    [refusal_reply(), Reply(body=chat_completion(None, finish_reason="content_filter"))],
    ids=["refusal", "content_filter"],
)
def test_refusal_and_content_filter(tmp_path, reply):
    with ScriptedLLM(lambda b, n: reply) as llm:
        with pytest.raises(
            LLMRefusalError, match=r"model 'gpt-4o-mini' declined to describe 'Archery' \(introduction\)"
        ):
            describe_classes(["Archery"], tmp_path / "k.json", base_url=llm.base_url, **FAST)
        assert len(llm.requests) == 3  # a refusal is resampled like any unusable answer


def test_explicit_json_schema_format_is_sent_as_structured_output(tmp_path):
    requests = describe(
        lambda b, n: answer("Archery is shooting arrows at a target."), tmp_path, response_format="json_schema"
    )
    assert len(requests) == 3
    assert requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": False},
    }


def test_explicit_text_format_sends_no_response_format(tmp_path):
    reply = Reply(body=chat_completion("Archery is shooting arrows at a target."))
    requests = describe(lambda b, n: reply, tmp_path, response_format="text")
    assert len(requests) == 3 and all("response_format" not in r for r in requests)


def test_an_explicit_format_the_server_rejects_is_not_silently_replaced(tmp_path):
    rejected = Reply(status=400, body={"error": {"message": "response_format json_schema is not supported"}})
    with ScriptedLLM(lambda b, n: rejected) as llm:
        with pytest.raises(LLMError, match=r"rejected the request: HTTP 400: .*json_schema is not supported"):
            describe_classes(
                ["Archery"], tmp_path / "k.json", base_url=llm.base_url, response_format="json_schema", **FAST
            )
        assert len(llm.requests) == 1
    with pytest.raises(LLMError, match=r"unknown response format 'yaml'; choose one of auto, json_schema"):
        describe_classes(["Archery"], tmp_path / "k.json", base_url="http://127.0.0.1:1/v1", response_format="yaml")


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("120", 60.0), ("soon", None), (None, None)])
def test_retry_after_sets_the_wait_when_longer(header, expected):
    headers = {} if header is None else {"Retry-After": header}
    limited = Reply(status=429, body={"error": {"message": "slow down"}}, headers=headers)
    with ScriptedLLM(lambda b, n: limited) as llm:
        client = openai.OpenAI(api_key="sk-test", base_url=llm.base_url, max_retries=0, timeout=5)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    delay = backoff_delay(0.01, 1, caught.value)
    if expected is None:  # no usable header: exponential backoff from `backoff`, with up to 25% jitter
        assert 0.01 <= delay <= 0.0125
    else:
        assert delay == expected
