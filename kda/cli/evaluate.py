"""`kda evaluate`: a checkpoint's test metrics, on a benchmark root's test split or on the one it carries, under
its own knowledge or an edited knowledge file."""

from __future__ import annotations

import json
from pathlib import Path

from kda.benchmark import DATASETS
from kda.cli import DefaultsFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on its test split, under its own or an edited knowledge file",
        description="Uses the checkpoint's beta (chosen on validation at training time). Without --root, the test "
        "split the checkpoint carries (its test videos' rho_av) is scored: knowledge does not change rho_av, so "
        "an edited knowledge file needs no features and no forward pass, and the checkpoint's own knowledge "
        "gives its recorded test metrics exactly.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint folder or hf-hub: id")
    p.add_argument("--root", help="dataset root; without it, the test split the checkpoint carries")
    p.add_argument(
        "--knowledge",
        help="a kda-knowledge/1 JSON file (the app's export) to evaluate instead of the checkpoint's knowledge; "
        "changed classes are encoded with the checkpoint's text encoder, as the app does, and classes it adds "
        "are unseen candidates",
    )
    p.add_argument("--dataset", help=f"{', '.join(DATASETS)} or a `kda extract` name; default: the checkpoint's")
    p.add_argument("--beta", type=float, help="override the checkpoint's beta")
    p.add_argument("--device", default="auto", help="where the model runs: auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--json",
        dest="json_out",
        help="write seen, unseen, hm, zsl, beta (and grid, empty at a given beta) as JSON to this file",
    )
    p.add_argument(
        "--scores-out",
        help="write per-video distances, true labels, class names and seen flags (.npz, or .json) to recompute "
        "the metrics independently",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.checkpoint import load_checkpoint
    from kda.device import resolve_device

    ckpt = load_checkpoint(args.checkpoint)
    ckpt.model.to(resolve_device(args.device))
    beta = ckpt.beta if args.beta is None else args.beta
    # The checkpoint's own knowledge on a root: the forward pass it always was (and its scores by benchmark class).
    by_benchmark = args.root and not args.knowledge
    result = on_benchmark(args, ckpt, beta) if by_benchmark else on_test_split(args, ckpt, beta)
    if args.json_out:
        Path(args.json_out).write_text(result.to_json() + "\n")
    return 0


def benchmark_of(args, ckpt):
    from kda.benchmark import load_benchmark
    from kda.cli import CliError

    dataset = args.dataset or ckpt.provenance.get("dataset")
    if dataset is None:
        raise CliError("the checkpoint does not record its dataset; pass --dataset")
    return load_benchmark(args.root, dataset, ckpt.setting)


def on_benchmark(args, ckpt, beta: float):
    """The checkpoint's own knowledge on the root's test features (a forward pass over every video)."""
    from kda.evaluation import evaluate_checkpoint, save_scores

    bench = benchmark_of(args, ckpt)
    evaluation = evaluate_checkpoint(ckpt, bench)
    result = evaluation.metrics(beta)
    print(result.table("test"))
    if args.scores_out:
        save_scores(evaluation, bench.classes, args.scores_out, beta)
    return result


def on_test_split(args, ckpt, beta: float):
    """The test split the checkpoint carries (or the root's, embedded once) under its own or an edited knowledge."""
    from kda.evaluation import Evaluation, embed_videos, save_scores
    from kda.knowledge_ab import KnowledgeAB, split_of_videos
    from kda.model import check_dims

    split = None
    if args.root:
        bench = benchmark_of(args, ckpt)
        check_dims(ckpt.model.cfg, *bench.dims, source=f"benchmark at {bench.root}")
        videos = bench.stage(2).evaluation
        rho = embed_videos(ckpt.model, videos.audio, videos.visual)
        split = split_of_videos(videos, rho, bench.classes, ckpt.class_ids)
    ab = KnowledgeAB.of_checkpoint(ckpt, split, beta)
    scored = ab.base
    if args.knowledge:
        candidates, changed = edited_candidates(ckpt, args.knowledge)
        print(ab.compare(candidates, changed).table("knowledge"))
        scored = ab.score(candidates)
    else:
        print(scored.metrics.table("test"))
    if args.scores_out:
        ids, seen = scored.candidates.class_ids, scored.candidates.seen
        evaluation = Evaluation(scored.distances, scored.labels, list(range(len(ids))), seen, ab.urls)
        save_scores(evaluation, ids, args.scores_out, beta)
    return scored.metrics


def edited_candidates(ckpt, path: str):
    """The classes of a knowledge file, with rows made exactly as the app makes them (a session of the checkpoint
    that imports the file), and the classes it changed."""
    from kda.cli import CliError
    from kda.studio import Studio

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as e:  # not UTF-8, or not JSON
        raise CliError(f"{path} is not a JSON knowledge file ({e}); export the knowledge for an example") from e
    session = Studio(ckpt, device=next(ckpt.model.parameters()).device).new_session()
    session.import_json(data)
    return session.candidates(), session.changed()
