"""Class descriptions written by an LLM behind any OpenAI-compatible endpoint (OpenAI itself, or a local
server such as llama-cpp-python serving SmolLM2; see docs/LOCAL_LLM.md).

Each class gets the paper's three questions (introduction, visual appearance, auditory features), one
request per question. One small question per request keeps each answer short and its JSON tiny, which even
a 135M-parameter model gets right most of the time. Every answer is asked for as `{"answer": "..."}`
(a JSON schema where the server supports one) and is validated either way:

* a JSON object with a non-empty string `answer` is accepted;
* a reply that is plain prose, not JSON (a server that ignores `response_format`), is accepted as the answer;
* JSON cut off by the token limit keeps its complete sentences, if it has any;
* anything else (other JSON, empty text, a refusal) is retried with another seed, then reported.

Accepted answers are trimmed to their first two sentences, the length the paper asks for.

`describe_classes` writes the knowledge file atomically after every class, skips classes already described
(so a run can be resumed), and never touches classes it did not just describe: a failure leaves the file
as the last completed class left it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kda.errors import KdaError
from kda.knowledge.store import (
    ASPECTS,
    ClassKnowledge,
    Description,
    Knowledge,
    load_knowledge,
    save_knowledge,
    today,
    with_file_provenance,
)

DEFAULT_MODEL = "gpt-4o-mini"  # any chat model name the endpoint knows; a single-model local server ignores it
LOCAL_DUMMY_KEY = "sk-local-no-key-needed"  # loopback servers do not check the key, but the client wants one
SYSTEM_PROMPT = (
    "You describe audio-visual event classes for a video classifier. "
    'Reply with a JSON object {"answer": "..."} whose answer is one or two plain sentences of fact.'
)
# The paper's three questions, one per aspect; {name} is the readable class name.
QUESTIONS = {
    "introduction": 'Give a brief introduction to the activity "{name}".',
    "visual": 'What is the visual appearance of "{name}"?',
    "auditory": 'What auditory features are associated with "{name}"?',
}
# minLength matters: grammar-constrained small models otherwise often answer with the bare class name.
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "minLength": 40}},
    "required": ["answer"],
}
RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "text")
MAX_SENTENCES = 2
MAX_ANSWER_CHARS = 600  # longer than any two honest sentences: a model stuck repeating itself
REFUSAL = re.compile(r"^\s*(I'?m sorry|I am sorry|I apologi[sz]e|I can(?:no|')t|I am unable|I'm unable|As an AI)", re.I)
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


class LLMError(KdaError):
    """The LLM endpoint could not give usable descriptions."""


class LLMKeyMissingError(LLMError):
    """No API key was given, none is in OPENAI_API_KEY, and the base URL is not a loopback one."""


class LLMAuthError(LLMError):
    """The endpoint rejected the API key (HTTP 401/403)."""


class LLMUnreachableError(LLMError):
    """Nothing answers at the base URL (refused, reset, DNS), after the retries."""


class LLMTimeoutError(LLMError):
    """The endpoint did not answer within the timeout, after the retries."""


class LLMRateLimitError(LLMError):
    """The endpoint kept answering 429, after the retries."""


class LLMRefusalError(LLMError):
    """The model declined to answer, after the retries."""


class LLMMalformedOutputError(LLMError):
    """The model's replies could not be used as a description, after the retries."""


class BadAnswer(Exception):
    """One reply could not be used; `refusal` says whether the model declined. Retried, then reported."""

    def __init__(self, message: str, refusal: bool = False):
        super().__init__(message)
        self.refusal = refusal


@dataclass
class LLMSettings:
    model: str = DEFAULT_MODEL
    base_url: str | None = None  # None: OPENAI_BASE_URL, else OpenAI's API
    api_key: str | None = None  # None: OPENAI_API_KEY (not needed for a loopback base URL)
    timeout: float = 60.0  # seconds per request
    retries: int = 3  # extra attempts per question after a transient error or an unusable answer
    backoff: float = 1.0  # seconds before the first retry; doubles each time (plus jitter)
    max_tokens: int = 96  # two sentences and the JSON around them
    temperature: float = 0.3
    seed: int = 0  # retry k uses seed + k and temperature + 0.2 k, so that a bad sample is not repeated
    response_format: str = "auto"  # auto: json_schema on OpenAI, json_object + schema elsewhere, text if refused

    def resolved(self) -> LLMSettings:
        """Fill base URL and key from the environment; fail early and clearly when no key can be had."""
        base_url = self.base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = self.api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None and base_url is not None and is_loopback(base_url):
            api_key = LOCAL_DUMMY_KEY
        if api_key is None:
            raise LLMKeyMissingError(
                "no API key for the LLM: set OPENAI_API_KEY or give `api_key`, "
                "or use a local server with `base_url` http://127.0.0.1:PORT/v1 (see docs/LOCAL_LLM.md)"
            )
        if self.response_format not in RESPONSE_FORMATS:
            raise LLMError(
                f"unknown response format {self.response_format!r}; choose one of {', '.join(RESPONSE_FORMATS)}"
            )
        return LLMSettings(**{**self.__dict__, "base_url": base_url, "api_key": api_key})

    @property
    def endpoint(self) -> str:
        return self.base_url or "https://api.openai.com/v1"


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def response_format(kind: str, endpoint: str) -> dict[str, Any] | None:
    """The `response_format` request field. `auto` picks OpenAI's structured outputs on OpenAI and the
    `json_object` + `schema` form that llama.cpp-style servers turn into a grammar elsewhere."""
    if kind == "auto":
        kind = "json_schema" if (urlparse(endpoint).hostname or "").endswith("openai.com") else "json_object"
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": False}}
    if kind == "json_object":
        return {"type": "json_object", "schema": ANSWER_SCHEMA}
    return None


# ---------------------------------------------------------------------------------------------
# Answers: pure functions, tested on hand-written replies


def first_sentences(text: str, limit: int = MAX_SENTENCES, complete_only: bool = False) -> str:
    """At most `limit` sentences of `text`; with `complete_only`, drop an unfinished last sentence."""
    text = " ".join(text.split())
    parts = [p for p in SENTENCE_END.split(text) if p]
    if complete_only and parts and not re.search(r"[.!?][\"')\]]*$", parts[-1]):
        parts = parts[:-1]
    return " ".join(parts[:limit])


def salvage_truncated_json(content: str) -> str | None:
    """The answer string of `{"answer": "...` cut off by the token limit, or None."""
    match = re.match(r'\s*\{\s*"answer"\s*:\s*"((?:[^"\\]|\\.)*)', content, re.S)
    if not match:
        return None
    fragment = re.sub(r"\\u?[0-9a-fA-F]{0,3}$|\\$", "", match.group(1))  # an escape cut in half
    try:
        return json.loads(f'"{fragment}"')
    except json.JSONDecodeError:
        return None


def parse_answer(content: str | None, finish_reason: str | None = "stop") -> str:
    """The accepted answer text of one reply (rules in the module docstring), or BadAnswer."""
    text = (content or "").strip()
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)  # a fenced code block around the JSON
    truncated = finish_reason == "length"
    if not text:
        raise BadAnswer("empty reply")
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
            answer = salvage_truncated_json(text) if truncated else None
            if answer is None:
                raise BadAnswer(f"reply is not valid JSON: {text[:80]!r}") from None
        if data is not None:
            answer = data.get("answer") if isinstance(data, dict) else None
            if not isinstance(answer, str):
                raise BadAnswer(f'reply lacks a string "answer": {text[:80]!r}')
    else:
        answer = text  # plain prose from a server that ignores response_format
    return clean_answer(answer, truncated)


def clean_answer(answer: str, truncated: bool) -> str:
    answer = answer.strip().strip('"').strip()
    if REFUSAL.match(answer):
        raise BadAnswer(f"the model declined: {answer[:80]!r}", refusal=True)
    answer = first_sentences(answer, complete_only=truncated)
    if truncated and not answer:
        raise BadAnswer("the token limit cut the reply before its first sentence ended; raise `max_tokens`")
    if len(answer.split()) < 3:
        raise BadAnswer(f"answer too short to be a description: {answer!r}")
    if len(answer) > MAX_ANSWER_CHARS:
        raise BadAnswer(f"answer runs on for {len(answer)} characters without ending a sentence")
    if not re.search(r"[.!?][\"')\]]*$", answer):
        answer += "."
    return answer


# ---------------------------------------------------------------------------------------------
# Requests


def make_client(settings: LLMSettings):
    import openai

    # Retries are ours (they also cover unusable answers); the client's own would multiply them.
    return openai.OpenAI(api_key=settings.api_key, base_url=settings.base_url, timeout=settings.timeout, max_retries=0)


def ask(client, settings: LLMSettings, name: str, aspect: str) -> str:
    """One question about one class, retried with backoff; returns the answer or raises LLMError."""
    import openai

    prompt = QUESTIONS[aspect].format(name=name)
    fmt, attempt, last = settings.response_format, 0, None
    while True:
        try:
            return request_answer(client, settings, prompt, fmt, attempt)
        except BadAnswer as e:
            last = e
        except openai.BadRequestError as e:
            if settings.response_format != "auto" or fmt == "text":
                raise LLMError(f"{settings.endpoint} rejected the request: {status_detail(e)}") from e
            fmt = "text"  # the server does not take structured output: ask again for plain text, no retry spent
            continue
        except (openai.RateLimitError, openai.APIConnectionError, openai.InternalServerError) as e:
            last = e  # transient: rate limit, timeout (an APIConnectionError), unreachable, 5xx
        except openai.APIStatusError as e:
            raise status_error(e, settings) from e
        attempt += 1
        if attempt > settings.retries:
            raise final_error(last, settings, name, aspect) from last
        if not isinstance(last, BadAnswer):  # an unusable answer is not the server's load: ask again at once
            time.sleep(backoff_delay(settings.backoff, attempt, last))


def request_answer(client, settings: LLMSettings, prompt: str, fmt: str, attempt: int) -> str:
    """Ask once. A retry samples anew: another seed and a little more temperature, so that a model stuck
    on one bad answer gets out of it."""
    import openai

    extra = {}
    if (rf := response_format(fmt, settings.endpoint)) is not None:
        extra["response_format"] = rf
    try:
        completion = client.chat.completions.create(
            model=settings.model,
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            max_tokens=settings.max_tokens,
            temperature=min(settings.temperature + 0.2 * attempt, 1.0),
            seed=settings.seed + attempt,
            **extra,
        )
        message, finish_reason = first_choice(completion)
    except (ValueError, AttributeError, TypeError, IndexError, openai.APIResponseValidationError) as e:
        # The HTTP body itself is not a chat completion (not JSON, or the wrong shape).
        raise BadAnswer(f"the server's reply is not an OpenAI chat completion ({type(e).__name__}: {e})") from e
    if getattr(message, "refusal", None) or finish_reason == "content_filter":
        raise BadAnswer(f"the model declined: {(message.refusal or finish_reason)!r}", refusal=True)
    return parse_answer(message.content, finish_reason)


def first_choice(completion):
    """(message, finish_reason) of the first choice; a reply without one is unusable."""
    if isinstance(completion, str) or not completion.choices:
        raise BadAnswer("reply has no choices")
    choice = completion.choices[0]
    if not isinstance(choice.message.content, str | None):
        raise TypeError(f"message content is {type(choice.message.content).__name__}, not text")
    return choice.message, choice.finish_reason


def backoff_delay(base: float, attempt: int, error: Exception | None) -> float:
    """Exponential backoff with jitter; a server's Retry-After wins when it asks for longer."""
    delay = base * 2 ** (attempt - 1) * (1 + 0.25 * random.random())
    response = getattr(error, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    try:
        return max(delay, min(float(retry_after), 60.0)) if retry_after else delay
    except ValueError:
        return delay


def status_detail(e) -> str:
    message = getattr(e, "message", None) or str(e)
    return f"HTTP {getattr(e, 'status_code', '?')}: {' '.join(str(message).split())[:200]}"


def status_error(e, settings: LLMSettings) -> LLMError:
    code = getattr(e, "status_code", None)
    if code in (401, 403):
        return LLMAuthError(
            f"{settings.endpoint} rejected the API key ({status_detail(e)}); check OPENAI_API_KEY or `api_key`"
        )
    if code == 404:
        return LLMError(
            f"{settings.endpoint} does not serve model {settings.model!r} ({status_detail(e)}); check `model` and `base_url`"
        )
    return LLMError(f"{settings.endpoint} failed: {status_detail(e)}")


def final_error(error: Exception | None, settings: LLMSettings, name: str, aspect: str) -> LLMError:
    """The error to report once retries are spent, by what went wrong last."""
    import openai

    tries = f"after {settings.retries + 1} attempts"
    url = settings.endpoint
    if isinstance(error, openai.APITimeoutError):
        return LLMTimeoutError(
            f"{url} did not answer within {settings.timeout:g} s ({tries}); raise `timeout` or check the server"
        )
    if isinstance(error, openai.APIConnectionError):
        return LLMUnreachableError(
            f"cannot reach the LLM at {url} ({tries}); start the server (docs/LOCAL_LLM.md) or fix `base_url`"
        )
    if isinstance(error, openai.RateLimitError):
        return LLMRateLimitError(f"{url} keeps answering 429 rate limited ({tries}); lower `concurrency` or try later")
    if isinstance(error, openai.APIStatusError):
        return LLMError(f"{url} failed {tries}: {status_detail(error)}")
    if isinstance(error, BadAnswer) and error.refusal:
        return LLMRefusalError(f"model {settings.model!r} declined to describe {name!r} ({aspect}) {tries}: {error}")
    return LLMMalformedOutputError(
        f"model {settings.model!r} gave no usable {aspect} answer for {name!r} {tries}: {error}"
    )


# ---------------------------------------------------------------------------------------------
# Classes and files


def describe_class(name: str, settings: LLMSettings, client=None, aspects: Sequence[str] = ASPECTS) -> ClassKnowledge:
    """The descriptions of one class (the three questions, or `aspects`), attributed to the model and today."""
    settings = settings.resolved()
    client = client or make_client(settings)
    descriptions = []
    for aspect in aspects:
        answer = ask(client, settings, name, aspect)
        descriptions.append(
            Description(aspect, answer, author=settings.model, created=today(), prompt=QUESTIONS[aspect])
        )
    return ClassKnowledge(name, tuple(descriptions))


def file_provenance(settings: LLMSettings) -> dict[str, Any]:
    return {
        "author": settings.model,
        "method": "kda describe: the three KDA questions per class, one request each, answers cut to two sentences",
        "prompts": {a: QUESTIONS[a] for a in ASPECTS},
        "system_prompt": SYSTEM_PROMPT,
        "endpoint": settings.endpoint,
        "temperature": settings.temperature,
        "seed": settings.seed,
        "created": today(),
    }


@dataclass
class DescribeResult:
    path: Path
    described: list[str] = field(default_factory=list)  # class ids written by this run
    skipped: list[str] = field(default_factory=list)  # already described in the file


def as_pairs(classes: Sequence[Any]) -> list[tuple[str, str]]:
    """(id, readable name) from names, (id, name) pairs, or objects with `.id` and `.name`."""
    pairs = []
    for c in classes:
        if isinstance(c, str):
            pairs.append((c.strip(), c.strip()))
        elif isinstance(c, tuple):
            pairs.append((str(c[0]), str(c[1])))
        else:
            pairs.append((c.id, c.name))
    return pairs


def open_output(out: Path, class_set: str, settings: LLMSettings) -> Knowledge:
    """The knowledge already in `out` (to resume), or a new empty one. An unreadable file is an error,
    never something to overwrite."""
    if out.exists():
        return load_knowledge(out)
    return Knowledge(class_set, {}, file_provenance(settings), source=str(out))


def describe_classes(
    classes: Sequence[Any],
    out_path: str | Path,
    class_set: str = "custom",
    concurrency: int = 2,
    progress: Callable[[str], None] | None = None,
    **settings: Any,
) -> DescribeResult:
    """Describe `classes` (names, (id, name) pairs or ClassInfo) into the knowledge file `out_path`.

    Classes already complete in the file are skipped, and a class that lacks some aspects is asked only
    for those (its other descriptions stay); the file is rewritten atomically after each class;
    on the first failure the remaining classes are cancelled and the error is raised (an LLMError).
    `settings` are LLMSettings fields: model, base_url, api_key, timeout, retries, backoff, max_tokens, ...
    """
    llm = LLMSettings(**settings).resolved()
    out = Path(out_path)
    knowledge = open_output(out, class_set, llm)
    result = DescribeResult(out)
    todo = []  # (class id, name, aspects to ask): a partly described class keeps what it has
    for class_id, name in as_pairs(classes):
        existing = knowledge.find(class_id) or knowledge.find(name)
        entry = knowledge.get(existing) if existing is not None else None
        missing = [a for a in ASPECTS if entry is None or not entry.is_complete([a])]
        if not missing:
            result.skipped.append(existing)
        else:
            todo.append((existing or class_id, entry.name if entry else name, missing))
    if todo:
        run_pool(todo, knowledge, out, llm, max(1, concurrency), result, progress or (lambda _: None))
    return result


def run_pool(
    todo, knowledge: Knowledge, out: Path, llm: LLMSettings, concurrency: int, result: DescribeResult, progress
) -> None:
    """Describe classes on `concurrency` threads; only this (the calling) thread writes the file."""
    client = make_client(llm)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures: dict[Future, str] = {
            pool.submit(describe_class, name, llm, client, aspects): class_id for class_id, name, aspects in todo
        }
        order = {future: i for i, future in enumerate(futures)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                done = sorted(done, key=order.get)
                for future in (f for f in done if f.exception() is None):  # store every success first
                    class_id = futures[future]
                    store(knowledge, out, class_id, future.result())
                    result.described.append(class_id)
                    progress(f"[{len(result.described)}/{len(todo)}] described {class_id}")
                failed = next((f for f in done if f.exception() is not None), None)
                if failed is not None:
                    raise failed.exception()
        finally:
            for future in pending:
                future.cancel()


def store(knowledge: Knowledge, out: Path, class_id: str, entry: ClassKnowledge) -> None:
    """Add the new descriptions to the class (after any it already had) and rewrite the file."""
    kept = knowledge.get(class_id).descriptions if class_id in knowledge else ()
    new = tuple(with_file_provenance(d, knowledge.provenance) for d in entry.descriptions)
    knowledge.set_class(class_id, ClassKnowledge(entry.name, kept + new))
    save_knowledge(knowledge, out)


def read_class_list(spec: str | Path) -> tuple[str, list[tuple[str, str]]]:
    """(class set name, [(id, name)]) for a benchmark name (UCF, ActivityNet, VGGSound) or a text file
    with one class name per line (blank lines and '#' comments ignored)."""
    from kda.benchmark import DATASETS, builtin_classes

    spec = str(spec)
    if spec in DATASETS:
        return f"{spec}-GZSL", [(c.id, c.name) for c in builtin_classes(spec)]
    path = Path(spec)
    if not path.is_file():
        raise KdaError(f"`classes` {spec!r} is neither a dataset ({', '.join(DATASETS)}) nor a file of class names")
    names = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise KdaError(f"{path} lists no class names (one per line expected)")
    return path.stem, [(n, n) for n in names]
