"""The ``depthtracker`` command. Each subcommand is a thin layer over an importable function.

Subcommands grow with the product; ``depthtracker --help`` lists those that exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from depthtracker.ros.commands import register as register_ros_commands
from depthtracker.ros.launcher import enable_stack_dumps
from depthtracker.train import depthtrack_cli


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="render the synthetic multi-camera world into a rosbag2",
        description="Render the synthetic world (config/synth.yaml, overridden by the flags) into a new rosbag2. "
        "The bag appears only when complete.",
    )
    p.add_argument("--out", required=True, type=Path, help="bag folder to create (must not exist)")
    p.add_argument("--config", type=Path, default=None, help="synth YAML (default: config/synth.yaml)")
    p.add_argument("--cameras", type=int, help="number of cameras")
    p.add_argument("--seconds", type=float, help="duration in seconds")
    p.add_argument("--fps", type=float, help="frames per second")
    p.add_argument("--width", type=int, help="image width in pixels")
    p.add_argument("--height", type=int, help="image height in pixels")
    p.add_argument("--seed", type=int, help="random seed (same seed, same bag)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (default mcap)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from depthtracker.configio import load_config
    from depthtracker.data.synth import SynthConfig
    from depthtracker.data.synth_bag import write_synth_bag

    config = load_config(SynthConfig, args.config, name="synth")
    overrides = {k: getattr(args, k) for k in ("cameras", "seconds", "fps", "width", "height", "seed")
                 if getattr(args, k) is not None}
    config = dataclasses.replace(config, **overrides)
    path = write_synth_bag(config, args.out, storage=args.storage, progress=not args.no_progress)
    n = round(config.seconds * config.fps)
    print(f"wrote {path} ({args.storage}): {config.cameras} cameras x {n} frames, {config.width}x{config.height}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo on the embedded synthetic world",
        description="Render the default synthetic world into OUT/world (if absent), play it through the perception "
        "graph (perception + tracking nodes; a target set on the longest visible object), and write what the graph "
        "published, scored against the world's ground truth: OUT/report.{json,md} (depth, detection, tracking, "
        "single target), plots.png, cameras.mp4 and contact_sheet.png (tracks and target, depth heatmaps), and "
        "OUT/annotated (an mcap that opens in Foxglove Studio).",
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of the demo world in seconds (default 4)")
    p.add_argument("--in-process", action="store_true",
                   help="run the graph's computation in this process instead of through ROS nodes")
    p.add_argument("--rate", type=float, default=None,
                   help="playback speed factor (default: 1 on CUDA, else what this CPU keeps up with)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--depth-checkpoint", default="", help="DepthTrack checkpoint (default: the shipped one)")
    p.add_argument("--detector-checkpoint", default="", help="HSV-DET checkpoint (default: the shipped one)")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from depthtracker.demo import run_demo

    run_demo(args.out, seconds=args.seconds, path="in-process" if args.in_process else "graph", rate=args.rate,
             device=args.device, depth_checkpoint=args.depth_checkpoint,
             detector_checkpoint=args.detector_checkpoint)
    return 0


def _parse_sets(items: Sequence[str] | None) -> dict:
    """``KEY=VALUE`` overrides of model config fields; values are YAML (``sgb_levels=[5]``, ``sgb_topk=null``)."""
    import yaml

    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        parsed = yaml.safe_load(value)
        out[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description="Train a model on bags (see each model's help).")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    depthtrack_cli.register_train(models)
    h = models.add_parser(
        "hsvdet",
        help="train the HSV-DET detector",
        description="Train HSV-DET on depthtracker bags (objects_gt ground truth) into OUT: last.* (EMA weights), "
        "best.* (best validation mAP50-95 when --val-bag is given), training state for --resume, scalars. "
        "Threads: torch uses OMP_NUM_THREADS.",
    )
    h.add_argument("--bag", action="append", required=True, type=Path, help="training bag (repeat for several)")
    h.add_argument("--val-bag", type=Path, default=None, help="validation bag scored every --eval-every epochs")
    h.add_argument("--preset", default="n", help="model preset: n | s | l (default n)")
    h.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a model config field "
                   "(YAML value), e.g. --set sgb_levels=[] for YOLO-only; repeatable")
    h.add_argument("--out", type=Path, default=Path("runs/hsvdet"), help="output folder (default runs/hsvdet)")
    steps = h.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=int, default=10, help="passes over the training data (default 10)")
    steps.add_argument("--max-steps", type=int, default=0, help="optimizer steps (overrides --epochs)")
    h.add_argument("--batch-size", type=int, default=16, help="images per step (default 16)")
    h.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=(256, 320),
                   help="network input height and width, multiples of 32 (default 256 320)")
    h.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default 2e-3)")
    h.add_argument("--eval-every", type=int, default=1, help="epochs between validations (default 1)")
    h.add_argument("--seed", type=int, default=0, help="seed of weights, shuffling and augmentation (default 0)")
    h.add_argument("--resume", action="store_true", help="continue from OUT/last.state.*")
    h.add_argument("--no-progress", action="store_true", help="no progress bar")
    h.set_defaults(func=_run_train_hsvdet)


def _run_train_hsvdet(args: argparse.Namespace) -> int:
    from depthtracker.train.hsvdet import train_hsvdet

    path = train_hsvdet(args.bag, args.out, preset=args.preset, overrides=_parse_sets(args.set),
                        image_size=tuple(args.image_size), epochs=args.epochs, max_steps=args.max_steps,
                        batch_size=args.batch_size, lr=args.lr, val_bag=args.val_bag, eval_every=args.eval_every,
                        resume=args.resume, seed=args.seed, progress=not args.no_progress)
    print(f"checkpoint: {path}")
    return 0


DEFAULT_HSVDET = Path("models/hsvdet-n.safetensors")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on a bag", description="Evaluate a model on a bag.")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    depthtrack_cli.register_eval(models)
    h = models.add_parser(
        "hsvdet",
        help="score HSV-DET on a bag",
        description="Replay a bag through HSV-DET inference and write OUT/report.json, report.md, pr_curves.png and "
        "ap_per_class.png: COCO mAP50, mAP50-95, AP small, per-class AP, CPU latency (batch 1 and 4).",
    )
    h.add_argument("--bag", required=True, type=Path, help="bag with objects_gt ground truth")
    h.add_argument("--checkpoint", type=Path, default=DEFAULT_HSVDET, help=f"default {DEFAULT_HSVDET}")
    h.add_argument("--out", required=True, type=Path, help="report folder")
    h.add_argument("--min-visibility", type=float, default=0.25,
                   help="ground truth counts when at least this fraction is visible (default 0.25)")
    h.add_argument("--no-progress", action="store_true", help="no progress bar")
    h.set_defaults(func=_run_eval_hsvdet)
    g = models.add_parser(
        "graph",
        help="score the whole graph (perception + tracking nodes) on a bag, through ROS",
        description="Start the perception and tracking nodes, send target/set for the bag's longest visible object "
        "run, play the bag into them and score what they publish: depth (AbsRel, RMSE, delta1, MAE, PSNR), "
        "detection (mAP), multi-object tracking (HOTA, MOTA, IDF1) and the single target (success AUC, "
        "precision@20px, IoU) into OUT/report.json and report.md. --compare also runs the same computation in "
        "process and reports the difference.",
    )
    g.add_argument("--bag", required=True, type=Path, help="bag with depth_gt and objects_gt ground truth")
    g.add_argument("--out", required=True, type=Path, help="report folder")
    g.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1; lower it on a slow "
                   "device: the graph drops sets it cannot keep up with, and coverage says how many)")
    g.add_argument("--device", default="auto", help="perception device: auto | cpu | cuda | cuda:N")
    g.add_argument("--config", default="", help="graph YAML (default config/graph.yaml)")
    g.add_argument("--set-param", action="append", default=[], metavar="NODE:NAME=VALUE",
                   help="override a node parameter, as depthtracker launch --set-param; repeatable")
    g.add_argument("--compare", action="store_true", help="also run in process and report the difference")
    g.set_defaults(func=_run_eval_graph)


def _run_eval_graph(args: argparse.Namespace) -> int:
    try:
        from depthtracker.ros.eval_graph import GraphEvalConfig, evaluate_graph
    except ImportError as exc:
        raise ValueError(f"ROS 2 Python packages are not installed ({exc}); run make setup") from exc
    import sys

    cfg = GraphEvalConfig(rate=args.rate, device=args.device, graph_config=args.config,
                          set_params=tuple(args.set_param))
    report = evaluate_graph(args.bag, args.out, cfg, compare=args.compare, log=lambda s: print(s, file=sys.stderr))
    d, det, m, s, c = (report[k] for k in ("depth", "det", "mot", "sot", "coverage"))
    print(f"depth AbsRel {d['abs_rel']:.4f}  mAP50 {det.get('map50', float('nan')):.4f}  HOTA {m['mean']['HOTA']:.4f}"
          f"  SOT AUC {s['success_auc']:.4f}  ({c['sets_answered']}/{c['sets']} sets answered) -> "
          f"{args.out / 'report.md'}")
    return 0


def _run_eval_hsvdet(args: argparse.Namespace) -> int:
    from depthtracker.eval.hsvdet import HSVDetEvalConfig, evaluate_hsvdet

    report = evaluate_hsvdet(args.bag, args.checkpoint, args.out, HSVDetEvalConfig(min_visibility=args.min_visibility),
                             progress=not args.no_progress)
    det, lat = report["det"], report["latency"]
    print(f"mAP50 {det['map50']:.4f}  mAP50-95 {det['map50_95']:.4f}  AP small {det['ap_small']:.4f}  "
          f"latency {lat['batch1_ms_per_image']:.1f} ms/image (batch 1) -> {args.out / 'report.md'}")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX", description="Export a model to ONNX.")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    h = models.add_parser(
        "hsvdet",
        help="export HSV-DET (network + box decoding) to ONNX",
        description="Export HSV-DET to ONNX (images -> boxes, scores; no NMS), then run it with onnxruntime against "
        "PyTorch on random input and print the largest difference; exits 1 when it exceeds --tolerance.",
    )
    h.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    h.add_argument("--checkpoint", type=Path, default=DEFAULT_HSVDET, help=f"default {DEFAULT_HSVDET}")
    h.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest allowed difference (scores; boxes / input side) (default 1e-4)")
    h.set_defaults(func=_run_export_hsvdet)


def _run_export_hsvdet(args: argparse.Namespace) -> int:
    import torch

    from depthtracker.models.hsvdet.export import check_onnx, export_onnx
    from depthtracker.models.hsvdet.predictor import HSVDetPredictor

    model = HSVDetPredictor.from_checkpoint(args.checkpoint).model
    path = export_onnx(model, args.out)
    cfg = model.config
    torch.manual_seed(0)
    diff = check_onnx(model, path, torch.rand(2, 3, cfg.input_height, cfg.input_width))
    ok = diff <= args.tolerance
    print(f"wrote {path}; onnxruntime vs PyTorch max difference {diff:.3g} "
          f"({'within' if ok else 'ABOVE'} tolerance {args.tolerance:g})")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    from depthtracker import __version__

    parser = argparse.ArgumentParser(prog="depthtracker", description="Multi-camera depth and tracking for ROS 2.")
    parser.add_argument("--version", action="version", version=f"depthtracker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_synth(sub)
    _add_demo(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_export(sub)
    p = sub.add_parser("predict", help="run a model on image files", description="Run a model on image files.")
    depthtrack_cli.register_predict(p.add_subparsers(dest="model", metavar="MODEL", required=True))
    register_ros_commands(sub)  # record, play, launch: rclpy is imported only when they run
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    enable_stack_dumps()  # SIGUSR1 prints every thread's stack: where a hung command (or a launcher's child) is
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # bad input: configs, bags and types raise ValueError naming the problem
        name = " ".join(filter(None, (args.command, getattr(args, "model", None))))
        print(f"depthtracker {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"depthtracker {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
