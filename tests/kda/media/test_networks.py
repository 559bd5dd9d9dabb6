"""C3D and VGGish: parameter names and shapes of the public weight files (facts from the reference
definitions: the C3D Sports-1M PyTorch file, torchvggish's release files), output shapes, the
channels-last flatten, and the benchmark's truncating 8-bit post-processing."""

import numpy as np
import pytest
import torch

from kda.media.backbones import load_backbone
from kda.media.c3d import C3D
from kda.media.vggish import PCAQuantizer, VGGish

# c3d.pickle (Sports-1M, PyTorch): conv kernels (out, in, 3, 3, 3); fc6 8192 -> 4096, fc8 487 classes.
C3D_FILE = {
    "conv1.weight": (64, 3, 3, 3, 3),
    "conv1.bias": (64,),
    "conv2.weight": (128, 64, 3, 3, 3),
    "conv2.bias": (128,),
    "conv3a.weight": (256, 128, 3, 3, 3),
    "conv3a.bias": (256,),
    "conv3b.weight": (256, 256, 3, 3, 3),
    "conv3b.bias": (256,),
    "conv4a.weight": (512, 256, 3, 3, 3),
    "conv4a.bias": (512,),
    "conv4b.weight": (512, 512, 3, 3, 3),
    "conv4b.bias": (512,),
    "conv5a.weight": (512, 512, 3, 3, 3),
    "conv5a.bias": (512,),
    "conv5b.weight": (512, 512, 3, 3, 3),
    "conv5b.bias": (512,),
    "fc6.weight": (4096, 8192),
    "fc6.bias": (4096,),
    "fc7.weight": (4096, 4096),
    "fc7.bias": (4096,),
    "fc8.weight": (487, 4096),
    "fc8.bias": (487,),
}

# vggish-10086976.pth: an nn.Sequential `features` (convs at 0, 3, 6, 8, 11, 13) and `embeddings`
# (linears at 0, 2, 4); fc1 takes 512 x 6 x 4 = 12288 inputs.
VGGISH_FILE = {
    "features.0.weight": (64, 1, 3, 3),
    "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3),
    "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3),
    "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3),
    "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3),
    "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3),
    "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288),
    "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096),
    "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096),
    "embeddings.4.bias": (128,),
}

# vggish_pca_params (AudioSet release): a 128 x 128 eigenvector matrix and 128 means.
PCA_FILE = {"pca_eigen_vectors": (128, 128), "pca_means": (128,)}


def shapes(module) -> dict:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


@pytest.mark.parametrize("module,facts", [(C3D, C3D_FILE), (VGGish, VGGISH_FILE), (PCAQuantizer, PCA_FILE)])
def test_parameter_names_and_shapes_are_the_public_files(module, facts):
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = module()
    assert shapes(model) == facts
    file_like = {name: torch.empty(shape, device="meta") for name, shape in facts.items()}
    model.load_state_dict(file_like, strict=True, assign=True)  # loads by the file's own names


def reference_c3d_fc7(c3d, x):
    """The published C3D (Sports-1M port) up to fc7 and its ReLU, written with torch.nn.functional on the
    model's weights: 3x3x3 convolutions padded by 1, max pools (1, 2, 2) then (2, 2, 2), pool5 padded
    (0, 1, 1); fc8 is never used."""
    import torch.nn.functional as F

    def conv(h, name):
        layer = getattr(c3d, name)
        return F.relu(F.conv3d(h, layer.weight, layer.bias, padding=1))

    h = F.max_pool3d(conv(x, "conv1"), (1, 2, 2), (1, 2, 2))
    h = F.max_pool3d(conv(h, "conv2"), 2, 2)
    h = F.max_pool3d(conv(conv(h, "conv3a"), "conv3b"), 2, 2)
    h = F.max_pool3d(conv(conv(h, "conv4a"), "conv4b"), 2, 2)
    h = F.max_pool3d(conv(conv(h, "conv5a"), "conv5b"), 2, 2, padding=(0, 1, 1))
    h = F.relu(F.linear(h.flatten(1), c3d.fc6.weight, c3d.fc6.bias))
    return F.relu(F.linear(h, c3d.fc7.weight, c3d.fc7.bias))


def test_c3d_gives_fc7_after_relu():
    c3d = load_backbone("c3d", "offline").model
    x = torch.randn(1, 3, 16, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = c3d(x)
        expected = reference_c3d_fc7(c3d, x)
        h = c3d.pool5(torch.relu(c3d.conv5b(torch.relu(c3d.conv5a(torch.zeros(1, 512, 2, 7, 7))))))
    assert out.shape == (1, 4096) and int((out > 0).sum()) > 100  # not a dead output
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert h.shape == (1, 512, 1, 4, 4)  # pool5's (0, 1, 1) padding makes 7x7 -> 4x4, 8192 for fc6


def test_vggish_flattens_channels_last_and_ends_with_relu():
    model = load_backbone("vggish", "offline").model
    x = torch.randn(3, 1, 96, 64)
    with torch.inference_mode():
        out = model(x)
        conv = model.features(x)  # (3, 512, 6, 4)
        nhwc = model.embeddings(conv.permute(0, 2, 3, 1).reshape(3, -1))
        nchw = model.embeddings(conv.reshape(3, -1))
    assert conv.shape == (3, 512, 6, 4)
    assert out.shape == (3, 128) and float(out.min()) >= 0.0
    assert torch.allclose(out, nhwc)
    assert not torch.allclose(out, nchw)


def test_pca_postprocessing_truncates_like_the_benchmark():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((128, 128)).astype(np.float32)
    means = rng.standard_normal(128).astype(np.float32)
    embeddings = rng.standard_normal((5, 128)).astype(np.float32)
    pca = PCAQuantizer()
    pca.load_params({"pca_eigen_vectors": matrix, "pca_means": means})
    ours = pca(torch.from_numpy(embeddings)).numpy()
    # The benchmark's Postprocessor: np.dot(E, (x.T - mu)).T, clip to [-2, 2], uint8 cast of (x + 2) * 255 / 4.
    applied = np.dot(matrix.astype(np.float64), embeddings.T - means.reshape(-1, 1).astype(np.float64)).T
    expected = ((np.clip(applied, -2, 2) + 2) * (255.0 / 4)).astype(np.uint8)
    assert np.array_equal(ours, expected.astype(np.float32))
    # A value the rounding torchvggish does would send up is cut down.
    one = PCAQuantizer()
    one.load_params({"pca_eigen_vectors": np.eye(128, dtype=np.float32), "pca_means": np.zeros(128, np.float32)})
    x = torch.full((1, 128), 10.9 / 63.75 - 2.0)
    assert float(one(x)[0, 0]) == 10.0
