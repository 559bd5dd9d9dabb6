"""`kda describe`: write class descriptions with an LLM into a knowledge file (resumable)."""

from __future__ import annotations

from kda.cli import DefaultsFormatter
from kda.errors import KdaError
from kda.names import class_key


def register(subparsers) -> None:
    from kda.knowledge.generate import DEFAULT_MODEL, RESPONSE_FORMATS, LLMSettings

    defaults = LLMSettings()
    p = subparsers.add_parser(
        "describe",
        help="write class descriptions with an LLM (the paper's three questions per class)",
        description="Ask an OpenAI-compatible LLM the three KDA questions for every class and store the answers "
        "in a knowledge file, after each class. Classes already described in FILE are skipped, so a stopped "
        "run can be resumed. For a local model see docs/LOCAL_LLM.md.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument(
        "--classes",
        required=True,
        metavar="FILE_OR_DATASET",
        help="UCF, ActivityNet, VGGSound, or a text file with one class name per line",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="knowledge file to write (and resume from)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated class names or ids to describe (default: all)")
    p.add_argument("--limit", type=int, metavar="N", help="describe at most the first N classes")
    p.add_argument("--class-set", help="class set name for a new file (default: DATASET-GZSL or the file's stem)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="chat model name")
    p.add_argument(
        "--base-url",
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (default: $OPENAI_BASE_URL, else OpenAI)",
    )
    p.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY; not needed for a loopback --base-url)")
    p.add_argument("--concurrency", type=int, default=2, help="classes described at the same time")
    p.add_argument("--timeout", type=float, default=defaults.timeout, help="seconds per request")
    p.add_argument(
        "--retries",
        type=int,
        default=defaults.retries,
        help="retries per question after a transient error or unusable answer",
    )
    p.add_argument("--max-tokens", type=int, default=defaults.max_tokens, help="token limit per answer")
    p.add_argument("--temperature", type=float, default=defaults.temperature, help="sampling temperature")
    p.add_argument(
        "--response-format", choices=RESPONSE_FORMATS, default=defaults.response_format, help="how to ask for JSON"
    )
    p.set_defaults(run=run)


def select(classes: list[tuple[str, str]], only: str | None, limit: int | None) -> list[tuple[str, str]]:
    if only:
        wanted = [n.strip() for n in only.split(",") if n.strip()]
        by_key = {class_key(k): c for c in classes for k in c}
        unknown = [n for n in wanted if class_key(n) not in by_key]
        if unknown:
            raise KdaError(f"--only names classes not in the list: {', '.join(unknown)}")
        classes = list(dict.fromkeys(by_key[class_key(n)] for n in wanted))
    if limit is not None:
        if limit < 1:
            raise KdaError(f"--limit must be at least 1, not {limit}")
        classes = classes[:limit]
    return classes


def run(args) -> int:
    from kda.knowledge.generate import describe_classes, read_class_list

    class_set, classes = read_class_list(args.classes)
    classes = select(classes, args.only, args.limit)
    result = describe_classes(
        classes,
        args.out,
        class_set=args.class_set or class_set,
        concurrency=args.concurrency,
        progress=lambda line: print(line, flush=True),
        model=args.model,
        base_url=args.base_url,
        api_key=args.api_key,
        timeout=args.timeout,
        retries=args.retries,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        response_format=args.response_format,
    )
    print(f"{result.path}: described {len(result.described)}, skipped {len(result.skipped)} already described")
    return 0
