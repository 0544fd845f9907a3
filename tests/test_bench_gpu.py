"""make bench-gpu (its CPU path refuses in one line) and dgan.bench --data (tiny)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_target_runs_the_gpu_bench():
    text = (ROOT / "Makefile").read_text()
    assert "\nbench-gpu: $(STAMP)\n\t$(BIN)/python -m dgan.bench_gpu\n" in text
    assert "$(BIN)/python -m dgan.bench --data\n" in text  # make bench prints the loader too


def test_gpu_bench_refuses_without_cuda(tmp_path: Path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "dgan.bench_gpu", str(tmp_path / "b.json")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: make bench-gpu needs a CUDA GPU (torch.cuda.is_available() is False); "
        "nothing was run"]
    assert done.stdout == "" and not list(tmp_path.iterdir())


def test_bench_data_tiny_writes_the_loader_figures(tmp_path: Path):
    out = tmp_path / "data.json"
    done = subprocess.run([sys.executable, "-m", "dgan.bench", "--data", "--tiny", "--out",
                           str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert set(results["resolutions"]) == {"32", "256", "1024"}
    for row in results["resolutions"].values():
        for key in ("zip_float", "zip_uint8", "folder_float", "folder_uint8"):
            assert row[key] > 0
        assert row["1gpu_images_per_s_per_gpu"] > row["8gpu_images_per_s_per_gpu"] > 0
    assert "images/s of ONE worker" in done.stdout
