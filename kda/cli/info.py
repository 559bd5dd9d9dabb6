"""`kda info`: the model for a feature setting (dims, parameter count) or a checkpoint's summary."""

from __future__ import annotations

from kda.cli import DefaultsFormatter
from kda.settings import list_settings


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="show the model of a feature setting, or a checkpoint",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("--setting", choices=list_settings(), default="cls", help="feature setting")
    p.add_argument("--checkpoint", help="checkpoint folder or hf-hub: id (overrides --setting)")
    p.set_defaults(run=run)


def run(args) -> int:
    from kda.model import KDAModel
    from kda.settings import get_setting

    if args.checkpoint:
        from kda.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        model = ckpt.model
        seen = int(ckpt.seen_mask.sum())
        print(f"checkpoint      {args.checkpoint}")
        print(f"feature setting {ckpt.setting}")
        print(f"text encoder    {ckpt.text_encoder}")
        print(f"classes         {len(ckpt.classes)} ({seen} seen, {len(ckpt.classes) - seen} unseen)")
        print(f"beta            {ckpt.beta:.2f}")
        if "test" in ckpt.metrics:
            t = ckpt.metrics["test"]
            print(f"test metrics    S {t['seen']:.2f}  U {t['unseen']:.2f}  HM {t['hm']:.2f}  ZSL {t['zsl']:.2f}")
    else:
        model = KDAModel(get_setting(args.setting).model_config())
        print(f"feature setting {args.setting}")
    cfg = model.cfg
    print(f"inputs          audio {cfg.audio_dim}, visual {cfg.visual_dim} -> knowledge space {cfg.embed_dim}")
    print(f"parameters      {model.num_parameters():,}")
    for name, child in model.named_children():
        count = sum(p.numel() for p in child.parameters())
        if count:
            print(f"  {name:<18}{count:>12,}")
    return 0
