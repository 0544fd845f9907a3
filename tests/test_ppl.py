"""Perceptual path length (issue 29, item 3): the five variants of StyleGAN2-ADA against a direct
computation on a small StyleGAN2 G, the error for a G without a mapping network, the weights
check, and ``dgan.evaluate ckpt=... metrics=[ppl_wend...]`` printing a finite value.

NVIDIA's ``vgg16.pt`` cannot be downloaded here: a stand-in TorchScript file with its interface
(``forward(img, resize_images, return_lpips, return_features)``) is written instead.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dgan.metrics import ppl
from dgan.metrics.feature_stats import batch_noise_seed, seeded_global_rng
from dgan.metrics.registry import (
    MetricOptions,
    check_weights_available,
    compute_metric,
    extractors_for_metrics,
)
from dgan.networks.stylegan2.generator import Generator

from .test_image_metrics import NVIDIA_VGG16_FILE, LookupGenerator, smooth_images

NUM = 60
BATCH = 16
SEED = 7


class _StandInLPIPSVGG16(nn.Module):
    """NVIDIA's vgg16.pt interface, tiny: [0, 255] images in; LPIPS features (unit-normalised
    per position, scaled by the number of positions), or pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False,
                return_features: bool = False) -> torch.Tensor:
        x = img.to(torch.float32) / 255
        if resize_images:
            x = F.adaptive_avg_pool2d(x, 16)
        f = torch.tanh(self.conv(x))
        if return_lpips:
            f = f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
            return f.flatten(1) / math.sqrt(f.shape[2] * f.shape[3])
        pooled = F.adaptive_avg_pool2d(f, 2).flatten(1)
        return pooled if return_features else pooled.sum(1)


def write_standin_vgg16(directory: Path) -> Path:
    """NVIDIA's VGG16 stand-in as ``DIRECTORY/vgg16.pt`` (TorchScript, as the real file)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    path = directory / NVIDIA_VGG16_FILE
    torch.jit.save(torch.jit.script(_StandInLPIPSVGG16()), path)
    return path


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("weights_vgg16_nvidia")
    write_standin_vgg16(directory)
    return directory


def small_generator() -> Generator:
    torch.manual_seed(1)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=64,
                  channel_max=16, mapping_layers=2, num_fp16_res=0)
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.2)  # noise matters: both ends of a pair must share it
    return G.eval()


# --------------------------------------------------------------------------------------------
# The direct computation: the reference's formulas written out, sample by sample
# --------------------------------------------------------------------------------------------


def _slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    a, b = a / a.norm(), b / b.norm()
    omega = torch.acos((a * b).sum())
    c = b - (a * b).sum() * a
    c = c / c.norm()
    d = a * torch.cos(t * omega) + c * torch.sin(t * omega)
    return d / d.norm()


def direct_ppl(G: Generator, vgg: torch.jit.ScriptModule, space: str, sampling: str,
               crop: bool) -> float:
    distances = []
    for first in range(0, NUM, BATCH):
        noisy = copy.deepcopy(G)
        with seeded_global_rng(batch_noise_seed(SEED, first), "cpu"):
            for name, buf in noisy.named_buffers():
                if name.endswith("noise_const"):
                    buf.copy_(torch.randn_like(buf))
        for i in range(first, min(first + BATCH, NUM)):
            rng = np.random.default_rng([SEED, i])
            z0 = torch.from_numpy(rng.standard_normal(8, dtype=np.float32))
            z1 = torch.from_numpy(rng.standard_normal(8, dtype=np.float32))
            t = float(np.float32(rng.random())) if sampling == "full" else 0.0
            c = torch.zeros(1, 0)
            with torch.no_grad():
                if space == "z":
                    zs = torch.stack([_slerp(z0, z1, t), _slerp(z0, z1, t + 1e-4)])
                    ws = noisy.mapping(zs, torch.cat([c, c]))
                else:
                    w0, w1 = noisy.mapping(torch.stack([z0, z1]), torch.cat([c, c]))
                    ws = torch.stack([w0 + t * (w1 - w0), w0 + (t + 1e-4) * (w1 - w0)])
                img = noisy.synthesis(ws, noise_mode="const")
                if crop:  # 16 px: rows 6..13, columns 4..11
                    img = img[:, :, 6:14, 4:12]
                lp = vgg((img + 1) * 127.5, resize_images=False, return_lpips=True)
            distances.append(float((lp[0] - lp[1]).square().sum()) / 1e-8)
    d = np.array(distances, dtype=np.float32)
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())


@pytest.mark.parametrize("name", list(ppl.PPL_VARIANTS))
def test_ppl_equals_the_direct_computation(name: str, weights_dir: Path) -> None:
    G = small_generator()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    opts = MetricOptions(G=G, dataset=None, batch_size=BATCH, seed=SEED, weights_dir=weights_dir)
    result = compute_metric(f"{name}{NUM}", opts)
    assert list(result) == [f"{name}{NUM}"]
    space, sampling, crop = ppl.PPL_VARIANTS[name]
    vgg = torch.jit.load(str(weights_dir / NVIDIA_VGG16_FILE))
    expected = direct_ppl(G, vgg, space, sampling, crop)
    assert math.isfinite(expected) and expected > 0
    # Float32 finite differences at epsilon 1e-4 (the reference's too): batched and per-sample
    # arithmetic differ in the last bits, which the division by epsilon^2 lifts to ~1e-4.
    assert result[f"{name}{NUM}"] == pytest.approx(expected, rel=3e-3)
    # G keeps its own noise maps and weights.
    assert all(torch.equal(v, before[k]) for k, v in G.state_dict().items())


def test_ppl_variants_and_outlier_filter() -> None:
    assert ppl.PPL_VARIANTS["ppl2_wend"] == ("w", "end", False)
    assert ppl.PPL_VARIANTS["ppl_zfull"] == ("z", "full", True)
    d = np.arange(1, 201, dtype=np.float32)
    d[0], d[-1] = -1e6, 1e6  # outliers below the 1st and above the 99th percentile
    assert ppl.filtered_mean(d) == pytest.approx(np.arange(3, 199).mean())
    # slerp stays on the unit sphere and ends where it should.
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    assert torch.allclose(ppl.slerp(a, b, torch.zeros(4, 1)), a / a.norm(dim=1, keepdim=True),
                          atol=1e-6)
    assert torch.allclose(ppl.slerp(a, b, torch.ones(4, 1)), b / b.norm(dim=1, keepdim=True),
                          atol=1e-5)
    assert extractors_for_metrics(["ppl_wend", "ppl2_wend", "ppl_zfull2k"]) == ["vgg16-nvidia"]


def test_ppl_without_mapping_network_is_one_clear_error(weights_dir: Path,
                                                         tmp_path: Path) -> None:
    opts = MetricOptions(G=LookupGenerator(smooth_images(4)), dataset=None,
                         weights_dir=weights_dir)
    with pytest.raises(ValueError, match="ppl_wend needs a StyleGAN2 generator .*"
                                         "LookupGenerator has no mapping network"):
        compute_metric("ppl_wend", opts)
    with pytest.raises(FileNotFoundError, match="vgg16.pt"):
        check_weights_available(["ppl_wend"], tmp_path)


def test_evaluate_prints_a_finite_ppl(weights_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from dgan.assembly.builder import build_run
    from dgan.evaluate import main

    from .conftest import compose_train

    run_dir = tmp_path / "run"
    overrides = ["experiment=digits_stylegan2", "kimg=0.008", "model.batch_size=8",
                 "model.generator.channel_base=1024", "model.generator.channel_max=32",
                 "metrics=none", "callbacks.samples=null", "callbacks.diagnostics=null",
                 "callbacks.progress=null", "callbacks.checkpoint.every_kimg=0", "logger=none"]
    result = build_run(compose_train(overrides, run_dir))
    result.trainer.fit(result.module, datamodule=result.datamodule)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    assert main([f"ckpt={ckpt}", "metrics=[ppl_wend100,ppl2_wend100]", "device=cpu",
                 f"weights_dir={weights_dir}", "batch_size=50", f"outdir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()
            if line.startswith("ppl")}
    assert set(rows) == {"ppl_wend100", "ppl2_wend100"}
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in rows.values()), out


def test_evaluate_refuses_ppl_without_mapping_network(weights_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from dgan.evaluate import main

    from .test_image_metrics import to_uint8

    folder = tmp_path / "fakes"
    folder.mkdir()
    from PIL import Image

    for i, image in enumerate(to_uint8(smooth_images(4, channels=1, resolution=32))):
        Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")
    assert main([f"images={folder}", "dataset=digits", "metrics=[ppl_wend]",
                 f"weights_dir={weights_dir}", f"outdir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: metrics: ppl_wend needs a StyleGAN2 generator (mapping and synthesis "
                   "networks); a folder of images has no mapping network"]
