"""The benchmark's preprocessing, checked against plain references written here from the facts in
docs/EXTRACTION.md (not from kda's code): VGGish's log-mel front end, and the C3D frame
pipeline (inverted BGR, PIL bilinear resize to 128x171, crop at row 8 column 30, normalise)."""

import math

import numpy as np
import pytest
from PIL import Image

from kda.media import c3d, vggish

# ---------------------------------------------------------------------------------------------
# Audio: VGGish log-mel


def reference_log_mel(waveform: np.ndarray) -> np.ndarray:
    """Frames of 400 samples, hop 160, no padding; periodic Hann; 512-point DFT magnitude; 64 mel bands
    over 125-7500 Hz with triangles in the mel domain on the bin centres, DC bin zero; log(mel + 0.01)."""
    rate, window, hop, n_fft, bands = 16000, 400, 160, 512, 64
    count = 1 + (len(waveform) - window) // hop
    hann = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / window) for n in range(window)])
    bins = n_fft // 2 + 1
    # An explicit DFT of the zero-padded frame: only its first 400 samples are non-zero.
    n = np.arange(window)
    k = np.arange(bins)[:, None]
    cos_table, sin_table = np.cos(2 * np.pi * k * n / n_fft), np.sin(2 * np.pi * k * n / n_fft)

    def mel(hz):
        return 1127.0 * math.log(1.0 + hz / 700.0)

    edges = [mel(125) + i * (mel(7500) - mel(125)) / (bands + 1) for i in range(bands + 2)]
    weights = np.zeros((bins, bands))
    for b in range(1, bins):  # bin 0 (DC) keeps zero weight
        m = mel(b * (rate / 2) / (bins - 1))
        for j in range(bands):
            left, centre, right = edges[j], edges[j + 1], edges[j + 2]
            weights[b, j] = max(0.0, min((m - left) / (centre - left), (right - m) / (right - centre)))
    out = np.zeros((count, bands))
    for f in range(count):
        frame = waveform[f * hop : f * hop + window] * hann
        magnitude = np.hypot(cos_table @ frame, sin_table @ frame)
        out[f] = np.log(magnitude @ weights + 0.01)
    return out


@pytest.fixture(scope="module")
def waveform():
    rng = np.random.default_rng(0)
    t = np.arange(int(2.1 * 16000)) / 16000
    chirp = 0.4 * np.sin(2 * np.pi * (200 + 1500 * t) * t)
    return (chirp + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_log_mel_matches_the_plain_reference(waveform):
    ours = vggish.log_mel(waveform)
    ref = reference_log_mel(waveform.astype(np.float64))
    assert ours.shape == ref.shape == (1 + (len(waveform) - 400) // 160, 64)
    assert np.abs(ours - ref).max() < 1e-5


def test_examples_are_non_overlapping_96_frame_windows_without_the_tail(waveform):
    full = vggish.log_mel(waveform)  # 208 frames -> 2 examples, 16 frames dropped
    examples = vggish.log_mel_examples(waveform)
    assert examples.shape == (len(full) // 96, 96, 64) == (2, 96, 64)
    for i, example in enumerate(examples):
        assert np.abs(example - full[96 * i : 96 * (i + 1)]).max() < 1e-5
    picked = vggish.log_mel_examples(waveform, np.array([1]))
    assert np.array_equal(picked[0], examples[1])


def test_too_short_audio_has_no_frames_or_examples():
    assert vggish.log_mel(np.zeros(399)).shape == (0, 64)
    assert vggish.num_examples(vggish.EXAMPLE_SAMPLES - 1) == 0
    assert vggish.num_examples(vggish.EXAMPLE_SAMPLES) == 1


def test_the_mel_filterbank_is_not_librosas():
    """VGGish's triangles (mel domain, unnormalised, DC zeroed) differ from librosa's Slaney filters."""
    import librosa

    ours = vggish.mel_matrix()
    theirs = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=125, fmax=7500, htk=True).T
    assert ours.shape == theirs.shape == (257, 64)
    assert ours[0].max() == 0.0
    assert ours.max() <= 1.0 + 1e-12
    assert np.abs(ours - theirs).max() > 0.1


# ---------------------------------------------------------------------------------------------
# Visual: the C3D frame pipeline

MEAN = (0.43216, 0.394666, 0.37645)
STD = (0.22803, 0.22145, 0.216989)


def reference_frame(rgb: np.ndarray) -> np.ndarray:
    """Per pixel: BGR order, value p -> (256 - p) mod 256, PIL bilinear resize to 171x128, crop rows 8..119
    and columns 30..141, /255, then (x - mean[c]) / std[c] with the statistics in the order given."""
    height, width, _ = rgb.shape
    inverted = np.zeros_like(rgb)
    for y in range(height):
        for x in range(width):
            for c in range(3):
                inverted[y, x, c] = (256 - int(rgb[y, x, 2 - c])) % 256
    resized = np.asarray(Image.fromarray(inverted, "RGB").resize((171, 128), Image.BILINEAR))
    out = np.zeros((3, 112, 112), dtype=np.float32)
    for c in range(3):
        for y in range(112):
            for x in range(112):
                value = np.float32(resized[8 + y, 30 + x, c]) / np.float32(255)
                out[c, y, x] = (value - np.float32(MEAN[c])) / np.float32(STD[c])
    return out


def test_frame(height, width, seed=0):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    frame[:10, :10] = 0  # black stays black under the wrap
    frame[-10:, -10:] = 255
    frame[20:40, :, 0] = 1  # the wrap turns 1 into 255
    return frame


test_frame.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("size", [(120, 160), (240, 320), (97, 211)])
def test_frame_pipeline_matches_the_per_pixel_reference(size):
    frame = test_frame(*size)
    assert np.abs(c3d.preprocess_frame(frame) - reference_frame(frame)).max() < 1e-6


def test_frame_pipeline_matches_the_benchmarks_torchvision_code_path():
    """The benchmark's own steps: a BGR uint8 frame stored in a float tensor, then ToPILImage (whose
    uint8 cast wraps), Resize, CenterCrop, ToTensor, Normalize."""
    import torch
    from torchvision import transforms

    frame = test_frame(240, 320, seed=1)
    pipeline = transforms.Compose(
        [
            transforms.ToPILImage(),
            transforms.Resize((128, 171)),
            transforms.CenterCrop((112, 112)),
            transforms.ToTensor(),
            transforms.Normalize(mean=list(MEAN), std=list(STD)),
        ]
    )
    bgr_float = torch.from_numpy(frame[..., ::-1].copy()).float().permute(2, 0, 1)  # (3, H, W), values 0..255
    expected = pipeline(bgr_float).numpy()
    assert np.abs(c3d.preprocess_frame(frame) - expected).max() < 1e-5


def test_short_clips_are_padded_with_zeros_after_normalisation():
    frames = np.stack([test_frame(60, 80, seed=s) for s in range(5)])
    clip = c3d.clip_tensor(frames)
    assert clip.shape == (3, 16, 112, 112)
    assert float(clip[:, 5:].abs().max()) == 0.0
    assert np.allclose(clip[:, 0].numpy(), c3d.preprocess_frame(frames[0]))
    assert c3d.clip_count(1) == 1 and c3d.clip_count(16) == 1 and c3d.clip_count(17) == 2
    assert list(c3d.clip_frame_indices(20, 1)) == [16, 17, 18, 19]
