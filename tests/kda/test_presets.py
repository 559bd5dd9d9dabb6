"""The `paper` and `released` presets: the released forward against a hand-written one, the released epoch,
the paper preset unchanged, old checkpoints loading, raw-mean knowledge."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kda.checkpoint import load_checkpoint
from kda.cli import main
from kda.losses import LossConfig
from kda.model import KDAModel, ModelConfig
from kda.presets import PRESETS, get_preset
from kda.settings import get_setting
from kda.train import TrainConfig, batches, epoch_order


def bn_mlp(sd, prefix, x):
    """Linear, BatchNorm (eval: running statistics), ReLU, twice; dropout 0 as released."""
    for i in (0, 4):
        x = x @ sd[f"{prefix}.{i}.weight"].T + sd[f"{prefix}.{i}.bias"]
        bn = f"{prefix}.{i + 1}"
        x = (x - sd[f"{bn}.running_mean"]) / torch.sqrt(sd[f"{bn}.running_var"] + 1e-5)
        x = torch.relu(x * sd[f"{bn}.weight"] + sd[f"{bn}.bias"])
    return x


def released_forward(sd, audio, visual, cls: bool, heads=3, head_dim=100):
    """The released network written out by hand from its description: raw inputs, encoders, a pre-norm
    transformer block over [phi_a + p_a, phi_v + p_v] (qkv chunked, heads contiguous, no qkv bias, softmax
    scaled by head_dim^-0.5, then FF 512-64-512 GELU, each with its residual), the result added to phi once
    more, projectors, [theta_v; theta_a] L2-normalised in cls only, W, no output normalisation."""
    phi = torch.stack([bn_mlp(sd, "audio_encoder", audio), bn_mlp(sd, "visual_encoder", visual)], dim=1)
    x = phi + sd["position"]
    width = x.shape[-1]
    h = F.layer_norm(x, (width,), sd["cross_attention.norm1.weight"], sd["cross_attention.norm1.bias"])
    q, k, v = (h @ sd["cross_attention.attn.qkv.weight"].T).chunk(3, dim=-1)
    split = lambda t: t.reshape(t.shape[0], 2, heads, head_dim).transpose(1, 2)  # noqa: E731  (B, H, 2, hd)
    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)  # (B, H, 2, 2)
    attended = (weights @ v).transpose(1, 2).reshape(x.shape[0], 2, heads * head_dim)
    x = x + attended @ sd["cross_attention.attn.out.weight"].T + sd["cross_attention.attn.out.bias"]
    h = F.layer_norm(x, (width,), sd["cross_attention.norm2.weight"], sd["cross_attention.norm2.bias"])
    ff = F.gelu(h @ sd["cross_attention.ff.0.weight"].T + sd["cross_attention.ff.0.bias"])
    x = x + ff @ sd["cross_attention.ff.3.weight"].T + sd["cross_attention.ff.3.bias"]
    phi_att = phi + x  # the released skip: 2 phi + p + Attn + FF
    theta_a = bn_mlp(sd, "audio_projector", phi_att[:, 0])
    theta_v = bn_mlp(sd, "visual_projector", phi_att[:, 1])
    concat = torch.cat([theta_v, theta_a], dim=1)
    if cls:
        concat = concat / concat.norm(dim=1, keepdim=True)
    return concat @ sd["embedding.weight"].T


@pytest.mark.parametrize("setting", ["cls", "main"])
def test_released_forward_equals_the_hand_written_one(setting):
    torch.manual_seed(0)
    cfg = get_preset("released").model_config(setting)
    model = KDAModel(cfg)
    with torch.no_grad():  # fixed, non-trivial weights: every BatchNorm with its own statistics
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.5)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
        for name, param in model.named_parameters():
            if "norm" in name or ".1." in name or ".5." in name:
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
        model.fit_input_norm(np.random.rand(10, cfg.audio_dim) * 100, np.random.rand(10, cfg.visual_dim) * 100)
    model.eval()
    audio, visual = torch.rand(7, cfg.audio_dim) * 255, torch.rand(7, cfg.visual_dim) * 3
    expected = released_forward(model.state_dict(), audio, visual, cls=setting == "cls")
    with torch.no_grad():
        assert torch.allclose(model(audio, visual), expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(expected.norm(dim=1), torch.ones(7))  # rho_av is not normalised


def test_released_initialisation_and_attention_dropout():
    torch.manual_seed(0)
    model = KDAModel(get_preset("released").model_config("cls"))
    w = model.embedding.weight
    assert w.min() >= 0 and w.max() < 2e-4 and w.mean().item() == pytest.approx(1e-4, rel=0.05)
    assert model.position.std().item() == pytest.approx(1.0, rel=0.1)
    attention = model.cross_attention.attn
    assert not attention.weight_dropout and attention.dropout == 0.1
    # In training, dropout acts on the output projection only: with the output projection's input fixed,
    # two draws differ, but the attention weights (hence the values before `out`) do not.
    x = torch.randn(4, 2, 512)
    attention.train()
    captured = []
    hook = attention.out.register_forward_hook(lambda m, i, o: captured.append(i[0].detach()))
    a, b = attention(x), attention(x)
    hook.remove()
    assert torch.equal(captured[0], captured[1]) and not torch.equal(a, b)


def test_released_epoch_draws_102400_class_balanced_samples():
    cfg = get_preset("released").train_config()
    assert (cfg.batch_size, cfg.batches_per_epoch, cfg.protocol) == (2048, 50, "released")
    labels = np.repeat(np.arange(30), np.arange(30) + 5)  # unbalanced classes
    order = epoch_order(labels, cfg, np.random.default_rng(42))
    assert len(order) == 102_400
    assert [len(b) for b in batches(order, cfg.batch_size)] == [2048] * 50
    counts = np.bincount(labels[order], minlength=30)
    assert counts.min() > 0.9 * counts.max()  # every class about 102,400 / 30 times


def test_paper_preset_is_the_default_network_and_training():
    paper = get_preset("paper")
    for setting in ("cls", "main"):
        assert paper.model_config(setting) == get_setting(setting).model_config()
    assert paper.train_config() == TrainConfig()
    # The paper's method: alignment plus the adaptive margin, both at weight 1, margins alpha cos + m0 at
    # alpha 1 and m0 0.5, logits -d / 0.1 (the defaults the hand values in test_losses.py assume).
    assert paper.loss_config() == LossConfig(align_weight=1.0, margin_weight=1.0, alpha=1.0, m0=0.5, tau=0.1)
    assert paper.class_matrix_form == "unit"
    released = get_preset("released")
    assert released.model_config("main").normalize_concat is False  # cls only
    assert released.model_config("cls").normalize_concat is True
    assert set(PRESETS) == {"paper", "released"}


def test_checkpoints_keep_the_released_architecture_and_old_ones_load(tmp_path, ucf_synth):
    out = tmp_path / "ck"
    args = ["train", "--root", str(ucf_synth), "--dataset", "UCF", "--out", str(out), "--quiet", "--preset"]
    args += ["released", "--epochs", "1", "--batch-size", "64", "--batches-per-epoch", "2", "--samples-per-class", "1"]
    with pytest.warns(UserWarning, match="TEST set"):
        assert main(args) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.model.cfg == get_preset("released").model_config("cls")
    assert ckpt.provenance["train"]["preset"] == "released" and ckpt.provenance["loss"]["margin_weight"] == 0
    # A checkpoint written before the preset fields existed: its config lacks them and loads with the defaults.
    config = json.loads((out / "config.json").read_text())
    for key in ("input_norm", "normalize_concat", "double_skip", "attention_weight_dropout", "init"):
        del config["model"][key]
    (out / "config.json").write_text(json.dumps(config))
    old = load_checkpoint(out).model.cfg
    assert old == replace(
        ckpt.model.cfg,
        **{
            f: getattr(ModelConfig(), f)
            for f in ("input_norm", "normalize_concat", "double_skip", "attention_weight_dropout", "init")
        },
    )


def raw_of(encoder, text: str) -> np.ndarray:
    return encoder.encode([text], normalize=False)[0]


def test_raw_mean_knowledge_is_the_plain_mean_of_unnormalised_text_embeddings():
    from kda.knowledge import TINY_TEXT_ENCODER, load_knowledge, load_text_encoder
    from kda.knowledge.class_matrix import load_class_matrix
    from kda.knowledge.sources import shipped_path

    encoder = load_text_encoder(TINY_TEXT_ENCODER)
    texts = ["Someone plays a violin.", "A dog barks loudly in a yard."]
    raw = encoder.encode(texts, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert raw / np.linalg.norm(raw, axis=1, keepdims=True) == pytest.approx(encoder.encode(texts), abs=1e-5)
    path = shipped_path("UCF")
    vectors = load_class_matrix(path, TINY_TEXT_ENCODER, form="raw-mean")
    first = vectors.names[0]
    first_texts = load_knowledge(path).texts(first)
    expected = encoder.encode(first_texts, normalize=False).mean(axis=0)
    assert vectors.vectors[0] == pytest.approx(expected, abs=1e-5)
    # the raw vector of every text is kept, so an edit rebuilds its row the same way (a unit row would be wrong)
    assert vectors.form == vectors.text_vectors.form == "raw-mean"
    assert vectors.text_vectors.vectors[first_texts[1]] == pytest.approx(raw_of(encoder, first_texts[1]), abs=1e-5)
    unit = load_class_matrix(path, TINY_TEXT_ENCODER)
    assert np.linalg.norm(unit.vectors, axis=1) == pytest.approx(1.0, abs=1e-5)


def test_plain_json_mapping_is_precomputed_knowledge(tmp_path):
    from kda.knowledge.class_matrix import PRECOMPUTED, load_class_matrix

    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"Archery": [3.0, 4.0], "Bowling": [0.0, 2.0]}))
    vectors = load_class_matrix(path).bind(["bowling", "Archery"])
    assert vectors.encoder == PRECOMPUTED and vectors.names == ["bowling", "Archery"]
    assert vectors.vectors == pytest.approx(np.array([[0.0, 1.0], [0.6, 0.8]]))
    assert load_class_matrix(path, form="raw-mean").vectors[0] == pytest.approx([3.0, 4.0])


# ---------------------------------------------------------------------------------------------
# A real tiny checkpoint of the released preset, read the way the app reads it


@pytest.fixture(scope="module")
def released_checkpoint(ucf_synth, tmp_path_factory):
    from kda.knowledge import TINY_TEXT_ENCODER

    out = tmp_path_factory.mktemp("released") / "ck"
    args = ["train", "--root", ucf_synth, "--dataset", "UCF", "--preset", "released", "--knowledge", "ours"]
    small = ["--epochs", 2, "--batch-size", 64, "--batches-per-epoch", 2, "--samples-per-class", 2, "--quiet"]
    assert main([str(a) for a in [*args, "--text-encoder", TINY_TEXT_ENCODER, *small, "--out", out]]) == 0
    return out


def test_an_edited_class_of_a_released_checkpoint_is_encoded_as_its_other_classes(released_checkpoint):
    from kda.knowledge.class_matrix import class_row
    from kda.studio import Studio

    studio = Studio.load(released_checkpoint)
    session = studio.new_session()
    norms = np.linalg.norm(session.class_matrix, axis=1)
    assert norms.min() > 1.5  # raw means of raw text vectors, not unit rows
    class_id = session.class_ids[0]
    texts = ["Flute Player", "A person blows across a flute.", "Fingers cover holes.", "A clear whistling tone."]
    session.edit(class_id, texts[1:], name=texts[0])
    encoder = studio.builder.encoder
    expected = class_row(encoder.encode(texts, normalize=False), "raw-mean")
    assert session.class_matrix[0] == pytest.approx(expected, abs=1e-5)
    assert np.linalg.norm(session.class_matrix[0]) == pytest.approx(np.linalg.norm(expected), rel=1e-5)


def test_a_released_checkpoint_keeps_the_training_means_for_a_missing_modality(released_checkpoint, ucf_synth):
    from kda.benchmark import load_benchmark
    from kda.studio import Studio

    studio = Studio.load(released_checkpoint)
    model = studio.model
    assert not model.cfg.input_norm  # raw inputs, as released ...
    train = load_benchmark(ucf_synth, "UCF", "cls").stage(2).train  # ... and still the stage-2 training means
    assert model.audio_norm.mean.numpy() == pytest.approx(train.audio.mean(axis=0), rel=1e-4, abs=1e-4)
    assert model.visual_norm.mean.numpy() == pytest.approx(train.visual.mean(axis=0), rel=1e-4, abs=1e-4)
    assert np.abs(model.audio_norm.mean.numpy()).max() > 1.0  # not the zeros that a never-fitted norm holds
    x = torch.randn(3, model.cfg.audio_dim) * 50 + 100
    assert torch.equal(model.audio_norm(x), x)  # the forward stays raw
    samples = studio.require_samples()
    silent = studio.classify_features(None, samples.visual[0])
    as_mean = studio.classify_features(model.audio_norm.mean.numpy(), samples.visual[0])
    assert [s.class_id for s in silent.gzsl] == [s.class_id for s in as_mean.gzsl]


def test_the_released_preset_searches_the_avca_grid(released_checkpoint):
    from kda.metrics import BETA_GRID

    ckpt = load_checkpoint(released_checkpoint)
    assert ckpt.provenance["train"]["beta_grid"] == "avca"
    assert any(math.isclose(ckpt.beta, b, abs_tol=1e-9) for b in BETA_GRID)
    assert get_preset("released").train_config().beta_grid == "avca"
    assert get_preset("paper").train_config().beta_grid == "gaps"


@pytest.mark.parametrize("preset", ["released", "paper"])
def test_the_margin_heatmap_says_which_margins_training_applied(released_checkpoint, preset, ucf_synth, tmp_path):
    from kda.studio import Studio

    if preset == "released":
        studio = Studio.load(released_checkpoint)
    else:
        out = tmp_path / "paper"
        args = ["train", "--root", ucf_synth, "--dataset", "UCF", "--epochs", 1, "--samples-per-class", 1, "--quiet"]
        assert main([str(a) for a in [*args, "--out", out]]) == 0
        studio = Studio.load(out)
    heatmap = studio.margins()
    if preset == "released":
        assert "WITHOUT the margin loss" in heatmap.note and not heatmap.applied.any()
    else:
        assert "unseen classes" in heatmap.note
        assert np.array_equal(heatmap.applied, np.outer(heatmap.seen, heatmap.seen)) and heatmap.applied.any()
