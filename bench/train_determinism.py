"""Is HSV-DET training bit-reproducible, and what in the CPU environment changes its result?

    .venv/bin/python bench/train_determinism.py --bag out/data/train-s1 --steps 20 \
        --out bench/results/train_determinism.json

Trains the same run (``depthtracker train hsvdet``, same bag, seed, steps and recipe) once per variant, each in a
fresh process whose environment differs only as the variant says, and compares the saved (EMA) weights with the first
variant's: bit-identical or not, the largest absolute difference and the relative L2 difference of all weights.

Default variants: ``native`` twice (the run repeated as it is: is it deterministic on this machine?), then torch's
CPU kernels limited to AVX2 (``ATEN_CPU_CAPABILITY=avx2``) or to no vector extension (``default``), oneDNN's kernels
(the convolutions) limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``), both limited, and one torch thread instead of two.
Torch and oneDNN pick their kernels by the instruction sets of the CPU they run on, and a kernel for a wider vector
sums in another order; a variant that changes the weights here is a way two machines with different CPUs (or thread
counts) train different models from the same seed. Each variant also reports the capability torch used
(``torch.backends.cpu.get_cpu_capability()``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _machine import machine
from depthtracker.train.checkpoints import load_checkpoint

DEFAULT_VARIANTS = (
    "native:",
    "native-again:",
    "aten-avx2:ATEN_CPU_CAPABILITY=avx2",
    "aten-default:ATEN_CPU_CAPABILITY=default",
    "onednn-avx2:ONEDNN_MAX_CPU_ISA=AVX2",
    "both-avx2:ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2",
    "one-thread:OMP_NUM_THREADS=1",
)
BASE_ENV = {"OMP_NUM_THREADS": "2"}  # fixed, so a variant's thread count is its own choice, not the machine's


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` (nothing after the colon: the base environment) -> (name, env changes)."""
    name, sep, rest = spec.partition(":")
    if not sep or not name:
        raise ValueError(f"--variant {spec!r}: expected NAME:KEY=VALUE[,KEY=VALUE...] (or NAME: for no change)")
    env = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--variant {spec!r}: {item!r} is not KEY=VALUE")
        env[key] = value
    return name, env


def compare(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float | bool | int]:
    """Bit-identical?, tensors that differ, max |a - b| and ||a - b|| / ||a|| over every floating tensor."""
    if a.keys() != b.keys():
        raise ValueError(f"the checkpoints hold different tensors: {sorted(a.keys() ^ b.keys())[:5]}")
    differ, max_abs, diff2, norm2 = 0, 0.0, 0.0, 0.0
    for k in sorted(a):
        x, y = a[k], b[k]
        if not torch.equal(x, y):
            differ += 1
        if x.is_floating_point():
            d = (x.double() - y.double())
            max_abs = max(max_abs, float(d.abs().max())) if d.numel() else max_abs
            diff2 += float((d * d).sum())
            norm2 += float((x.double() ** 2).sum())
    return {"identical": differ == 0, "tensors_differing": differ, "tensors": len(a), "max_abs_diff": max_abs,
            "relative_l2_diff": (diff2 / norm2) ** 0.5 if norm2 > 0 else 0.0}


def run_variant(name: str, changes: dict[str, str], bags: list[str], steps: int, seed: int, workdir: Path,
                train_args: list[str]) -> dict:
    env = {**os.environ, **BASE_ENV, **changes}
    cap = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability(), "
                                                "torch.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    out = workdir / name
    argv = [sys.executable, "-m", "depthtracker.cli", "train", "hsvdet", "--out", str(out), "--max-steps", str(steps),
            "--seed", str(seed), "--no-progress", *train_args]
    for bag in bags:
        argv += ["--bag", bag]
    t = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"variant {name}: training failed (status {proc.returncode}):\n{proc.stderr[-2000:]}")
    tensors, meta = load_checkpoint(out / "last")
    return {"name": name, "env": changes, "cpu_capability": cap[0], "torch_threads": int(cap[1]),
            "train_s": round(time.perf_counter() - t, 1), "weights_sha256": meta["weights_sha256"][:16],
            "_tensors": tensors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bag", action="append", required=True, help="training bag (repeatable)")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per run (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", action="append", default=None,
                    help="NAME:KEY=VALUE[,KEY=VALUE...] environment of one run; the first is the reference "
                         f"(default: {' '.join(DEFAULT_VARIANTS)})")
    ap.add_argument("--image-size", nargs=2, metavar=("H", "W"), default=None,
                    help="network input of the runs (default: the training default)")
    ap.add_argument("--batch-size", default=None, help="images per step (default: the training default)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/train_determinism.json"))
    args = ap.parse_args(argv)
    for bag in args.bag:
        if not Path(bag).exists():
            ap.error(f"--bag {bag} does not exist (render one: depthtracker synth --out {bag})")
    if args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    try:
        variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    except ValueError as exc:
        ap.error(str(exc))
    names = [n for n, _ in variants]
    if len(set(names)) != len(names):
        ap.error(f"--variant names must differ, got {names}")
    train_args = (["--image-size", *args.image_size] if args.image_size else []) + \
        (["--batch-size", args.batch_size] if args.batch_size else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="train_determinism_") as tmp:
        for name, changes in variants:
            row = run_variant(name, changes, args.bag, args.steps, args.seed, Path(tmp), train_args)
            rows.append(row)
            ref = rows[0]["_tensors"]
            row.update(compare(ref, row["_tensors"]))
            print(f"{name:14s} capability {row['cpu_capability']:8s} threads {row['torch_threads']} "
                  f"{'identical' if row['identical'] else 'DIFFERS'} to {rows[0]['name']}: "
                  f"{row['tensors_differing']}/{row['tensors']} tensors, max |diff| {row['max_abs_diff']:.3g}, "
                  f"relative L2 {row['relative_l2_diff']:.3g} ({row['train_s']} s)", flush=True)
    for row in rows:
        del row["_tensors"]
    result = {"machine": machine(), "torch": torch.__version__, "bags": args.bag, "steps": args.steps,
              "seed": args.seed, "train_args": train_args, "base_env": BASE_ENV, "reference": rows[0]["name"],
              "variants": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
