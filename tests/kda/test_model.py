import pytest
import torch

from kda.errors import KdaError
from kda.model import KDAModel, ModelConfig
from kda.settings import SettingError, get_setting

# Parameter counts worked out by hand from the architecture table (weights + biases, BN scale + shift):
#   cls : audio enc 128*512+512 + 1024 + 512*512+512 + 1024 = 330,752
#         visual enc 4096*1024+1024 + 2048 + 1024*512+512 + 1024 = 4,723,200
#         positions 2*512 = 1,024
#         attention block 1024 (LN) + 512*900 (qkv, no bias) + 300*512+512 + 1024 (LN)
#                         + 512*64+64 + 64*512+512 = 683,072
#         projectors 2 * (2 * (512*512+512) + 2 * 1024) = 1,054,720
#         embedding 1024*512 (no bias) = 524,288                       total 7,317,056
#   main: audio enc 2*(512*512+512) + 2*1024 = 527,360; visual enc 512*1024+1024 + 2048 + 524,800 + 1024
#         = 1,053,184; the rest as above                              total 3,843,648
EXPECTED = {"cls": 7_317_056, "main": 3_843_648}


@pytest.mark.parametrize("setting", ["cls", "main"])
def test_shapes_and_parameter_counts(setting):
    cfg = get_setting(setting).model_config()
    model = KDAModel(cfg).eval()
    assert model.num_parameters() == EXPECTED[setting]
    audio, visual = torch.randn(5, cfg.audio_dim), torch.randn(5, cfg.visual_dim)
    parts = model.embed(audio, visual)
    assert parts["rho_av"].shape == (5, 512)
    for name in ("phi_a", "phi_v", "theta_a", "theta_v"):
        assert parts[name].shape == (5, 512)
    assert torch.allclose(model(audio, visual), parts["rho_av"])


def test_output_is_unit_norm_when_configured():
    model = KDAModel(get_setting("cls").model_config()).eval()
    rho = model(torch.randn(3, 128), torch.randn(3, 4096))
    assert torch.allclose(rho.norm(dim=1), torch.ones(3), atol=1e-5)
    raw = KDAModel(get_setting("main").model_config(normalize_output=False)).eval()
    assert not torch.allclose(raw(torch.randn(3, 512), torch.randn(3, 512)).norm(dim=1), torch.ones(3))


def test_attention_mixes_modalities():
    torch.manual_seed(0)
    model = KDAModel(get_setting("main").model_config()).eval()
    a, v = torch.randn(4, 512), torch.randn(4, 512)
    theta_a = model.embed(a, v)["theta_a"]
    theta_a_other_v = model.embed(a, torch.randn(4, 512))["theta_a"]
    assert not torch.allclose(theta_a, theta_a_other_v)  # audio path depends on the visual token


def test_config_round_trip_and_errors():
    cfg = get_setting("main").model_config(heads=2)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KdaError, match="unknown model config keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(SettingError, match="choose one of cls, main, clip"):
        get_setting("selavi").model_config()
