"""HSV-DET inference: the predictor's forward copy (BatchNorm folded, NHWC on the CPU) against the checkpoint's own
network (BatchNorm, NCHW), timed in turn in the same process on the same batches, with their largest output difference.

    .venv/bin/python bench/hsvdet_predict.py                                  # models/hsvdet-n, batch 1, 1 thread
    .venv/bin/python bench/hsvdet_predict.py --checkpoint models/hsvdet-n640 --batch 4 --threads 2 --out FILE.json

Each round times one forward of each path on the same random batch (the predictor's network input, values in [0, 1]),
the order alternating between rounds so that a slower moment of the machine falls on both; the figure is the ratio of
medians (copy / baseline) and the paired per-round difference. Pre- and post-processing are the same for both paths
and left out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import torch
from _machine import machine
from _stats import paired


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="models/hsvdet-n", help="HSV-DET checkpoint (default models/hsvdet-n)")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the node on 2 cores)")
    p.add_argument("--rounds", type=int, default=40, help="timed rounds (default 40), after 5 warm-up rounds")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.json")
    args = p.parse_args(argv)
    if args.batch < 1 or args.threads < 1 or args.rounds < 2:
        p.error("--batch and --threads must be >= 1, --rounds >= 2")
    from depthtracker.models.hsvdet.postprocess import decode
    from depthtracker.models.hsvdet.predictor import HSVDetPredictor

    torch.set_num_threads(args.threads)
    pred = HSVDetPredictor.from_checkpoint(args.checkpoint, device=args.device)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, *pred.input_size, device=pred.device)
    paths = {"baseline": (pred.model, x.contiguous()), "predictor": (pred.net, x.contiguous(
        memory_format=pred.memory_format))}
    sync = torch.cuda.synchronize if pred.device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in paths}
    with torch.inference_mode():
        (b_box, b_cls), (p_box, p_cls) = (decode(m(inp)) for m, inp in paths.values())
        diff = {"boxes_px": float((b_box - p_box).abs().max()), "scores": float((b_cls - p_cls).abs().max())}
        for r in range(5 + args.rounds):
            for name in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
                model, inp = paths[name]
                sync()
                t = time.perf_counter()
                model(inp)
                sync()
                if r >= 5:
                    times[name].append(1e3 * (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in times.items()}
    mean_d, se_d = paired(times["baseline"], times["predictor"])
    ratio = med["predictor"] / med["baseline"]
    report = {"benchmark": "bench/hsvdet_predict.py", "date": datetime.datetime.now(datetime.UTC).isoformat(
        timespec="minutes"), "machine": machine(), "torch": torch.__version__, "settings": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "input_hw": list(pred.input_size),
        "median_ms": med, "ratio_predictor_over_baseline": ratio, "paired_diff_ms": [mean_d, se_d],
        "max_output_difference": diff, "times_ms": times}
    print(f"machine: {report['machine']}; torch {torch.__version__}, {args.threads} thread(s), {pred.device}")
    print(f"{args.checkpoint}: batch {args.batch} x {pred.input_size[1]}x{pred.input_size[0]}, {args.rounds} rounds")
    print(f"baseline (checkpoint network, BatchNorm, NCHW): median {med['baseline']:.2f} ms")
    print(f"predictor copy (BatchNorm folded, {'NHWC' if pred.memory_format == torch.channels_last else 'NCHW'}): "
          f"median {med['predictor']:.2f} ms")
    print(f"ratio {ratio:.3f} (paired difference {mean_d:+.2f} ± {se_d:.2f} ms per forward); largest output "
          f"difference: boxes {diff['boxes_px']:.2g} px, scores {diff['scores']:.2g}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
