"""One GPU benchmark, under 5 minutes on one GPU: ``make bench-gpu`` (``python -m dgan.bench_gpu``).

Measures, with dgan.bench's training-step timer (a real Trainer, lazy R1 amortised):

- the cifar preset at batch 64 and the paper256 preset (lsun_church_stylegan2) at batch 32,
  each in fp32 (``speed.reduced_precision=false``) and with the GPU defaults (``speed=gpu``:
  bf16 top resolutions with the clamp), with and without the diffusion;
- the cifar preset with the defaults and ``torch.compile`` (``model.compile=true``);
- the data loader at 256 px (one worker, zip and folder, float and uint8 batches).

Writes one JSON and one Markdown table (``bench_results/bench-gpu-<time>.{json,md}``). Without
CUDA it refuses in one line and runs nothing.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

# (name, bench preset, batch, extra overrides); fp32 turns reduced precision off, "defaults" is
# what trainer=gpu gives.
CASES: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    ("cifar fp32", "cifar", 64, ("speed.reduced_precision=false",)),
    ("cifar defaults", "cifar", 64, ()),
    ("cifar defaults + compile", "cifar", 64, ("model.compile=true",)),
    ("paper256 fp32", "lsun_church_stylegan2", 32, ("speed.reduced_precision=false",)),
    ("paper256 defaults", "lsun_church_stylegan2", 32, ()),
)
NO_CUDA = ("error: make bench-gpu needs a CUDA GPU (torch.cuda.is_available() is False); "
           "nothing was run")


def markdown(results: dict[str, Any]) -> str:
    """The Markdown table of the training cases and the loader line."""
    env = results["environment"]
    lines = [f"GPU: {env['gpu']}, torch {env['torch']}, {results['seconds']:.0f} s in all", "",
             "| case | batch | diffusion | step s | img/s | sec/kimg | overhead | peak MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results["training"].items():
        for variant in ("diffusion", "none"):
            v = r[variant]
            lines.append(f"| {name} | {r['batch']} | {variant} | {v['step_s']:.4f} | "
                         f"{v['images_per_s']:.1f} | {v['sec_per_kimg']:.2f} | "
                         f"x{r['overhead']:.3f} | {v['peak_mem_mib']:.0f} |")
    row = results["loader"]["resolutions"].get(256) or results["loader"]["resolutions"]["256"]
    lines += ["", f"Loader, 256 px, one worker, images/s: zip float {row['zip_float']:.0f}, zip "
                  f"uint8 {row['zip_uint8']:.0f}, folder uint8 {row['folder_uint8']:.0f}, "
                  f"cached {row.get('zip_uint8_cached', float('nan')):.0f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr, flush=True)
        raise SystemExit(2)
    import logging

    from dgan.benchmarks import training as bench
    from dgan.data import loader_throughput as bench_data

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    started = time.perf_counter()
    device = torch.device("cuda")
    opts = bench.Options(steps=3, repeats=2, warmup=2, features=False)
    results: dict[str, Any] = {"environment": bench.environment(device, opts), "training": {}}
    with tempfile.TemporaryDirectory(prefix="dgan-bench-gpu-") as tmp:
        for name, preset, batch, extra in CASES:
            case = bench.Options(**{**opts.__dict__, "batch": batch, "overrides": extra})
            summary, _ = bench.measure_training(preset, case, device, Path(tmp))
            results["training"][name] = summary
            print(f"{name}: {summary['diffusion']['sec_per_kimg']:.2f} sec/kimg with the "
                  f"diffusion, {summary['none']['sec_per_kimg']:.2f} without", flush=True)
    results["loader"] = bench_data.measure(resolutions=(256,), repeats=2)
    results["seconds"] = time.perf_counter() - started
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(argv[0]) if argv else Path("bench_results") / f"bench-gpu-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    table = markdown(results)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main(sys.argv[1:])
