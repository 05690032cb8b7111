"""``depthtracker train depthtrack``, ``eval depthtrack`` and ``predict depth``: argparse registration.

Each ``register_*`` takes the model-level subparsers of its command group (``train``, ``eval``, ``predict``) and
adds one subcommand whose handler calls an importable function; ``cli.py`` wires them::

    models = train_parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    depthtrack_cli.register_train(models)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["register_train", "register_eval", "register_predict", "parse_overrides"]


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` model-config overrides; values are YAML (``attention=nsa``, ``depth=6``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        parsed = yaml.safe_load(value)
        out[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def register_train(models: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``depthtrack`` to ``depthtracker train``."""
    p = models.add_parser(
        "depthtrack",
        help="train DepthTrack (multi-camera depth + single-target tracking)",
        description="Train DepthTrack on depthtracker bags (depth_gt and objects_gt ground truth) into OUT: last.* "
        "(EMA weights + JSON sidecar), best.* (best delta1 when --val-bag is given), training state for --resume, "
        "TensorBoard scalars in OUT/tb. Several processes: torchrun --nproc_per_node=N -m depthtracker.cli train "
        "depthtrack ...",
    )
    p.add_argument("--bag", action="append", required=True, type=Path, help="training bag (repeat for several)")
    p.add_argument("--val-bag", type=Path, default=None, help="validation bag scored every --eval-every epochs")
    arch = p.add_mutually_exclusive_group()
    arch.add_argument("--preset", choices=("edge", "base"), default=None, help="architecture preset (default edge)")
    arch.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                      help="fine-tune this checkpoint (its weights and architecture; --set still applies), e.g. "
                      "models/depthtrack-edge.safetensors on your own bags")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a model config field (YAML value), e.g. --set attention=nsa; repeatable")
    p.add_argument("--out", type=Path, default=Path("runs/depthtrack"), help="output folder (default runs/depthtrack)")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=int, default=10, help="passes over the training sets (default 10)")
    steps.add_argument("--max-steps", type=int, default=0, help="optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=8, help="sets (each with one tracking pair) per step (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default 1e-3)")
    p.add_argument("--eval-every", type=int, default=1, help="epochs between validations (default 1)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, shuffling and augmentation (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.state.*")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)
    return p


def _run_train(args: argparse.Namespace) -> int:
    from depthtracker.train.depthtrack import train_depthtrack

    preset = None if args.init is not None else (args.preset or "edge")
    path = train_depthtrack(args.bag, args.out, preset=preset, init=args.init, overrides=parse_overrides(args.set),
                            epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
                            val_bag=args.val_bag, eval_every=args.eval_every, resume=args.resume, seed=args.seed,
                            progress=not args.no_progress, num_workers=args.workers)
    print(f"checkpoint: {path}")
    return 0


def register_eval(models: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``depthtrack`` to ``depthtracker eval``."""
    p = models.add_parser(
        "depthtrack",
        help="score DepthTrack and the SGBM / CSRT / KCF baselines on a bag",
        description="Replay a bag through DepthTrack and write OUT/report.json (depth.*, sot.*, baselines.sgbm, "
        "baselines.csrt, baselines.kcf), report.md and plots. Without --checkpoint the shipped "
        "models/depthtrack-edge is used.",
    )
    p.add_argument("--bag", required=True, type=Path, help="bag with depth_gt and objects_gt ground truth")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: the shipped depthtrack-edge)")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    p.add_argument("--max-sets", type=int, default=0, help="sets read from the bag (default 0 = all)")
    p.add_argument("--max-sequences", type=int, default=8, help="tracking sequences scored (default 8)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_eval)
    return p


def _run_eval(args: argparse.Namespace) -> int:
    from depthtracker.eval.depthtrack import DepthTrackEvalConfig, evaluate_depthtrack

    cfg = DepthTrackEvalConfig(max_sets=args.max_sets, max_sequences=args.max_sequences)
    report = evaluate_depthtrack(args.bag, args.checkpoint, args.out, cfg, progress=not args.no_progress,
                                 device=args.device)
    d, s, b = report["depth"], report["sot"], report["baselines"]
    print(f"depth AbsRel {d['abs_rel']:.4f} delta1 {d['delta1']:.4f} (SGBM {b['sgbm']['abs_rel']:.4f})  "
          f"SOT AUC {s['success_auc']:.4f} (CSRT {b['csrt']['success_auc']:.4f}, KCF {b['kcf']['success_auc']:.4f})"
          f" -> {args.out / 'report.md'}")
    return 0


def register_predict(models: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``depth`` to ``depthtracker predict``."""
    p = models.add_parser(
        "depth",
        help="metric depth of image files with DepthTrack",
        description="Write OUT/NAME.depth.npy (float32 metres, NaN = unknown) and OUT/NAME.depth.png per image. "
        "Calibrations are ROS camera_info YAML files (none: a 70 degree pinhole is assumed; one: shared; or one "
        "per image). Two images with the calibrations of a rectified stereo pair run as one two-camera rig.",
    )
    p.add_argument("images", nargs="+", type=Path, help="image files")
    p.add_argument("--calib", action="extend", nargs="+", type=Path, default=[], metavar="FILE",
                   help="camera_info YAML file(s), in image order (repeatable)")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: the shipped depthtrack-edge)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--near", type=float, default=0.5, help="colour map near end, metres (default 0.5)")
    p.add_argument("--far", type=float, default=15.0, help="colour map far end, metres (default 15)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.set_defaults(func=_run_predict)
    return p


def _run_predict(args: argparse.Namespace) -> int:
    from depthtracker.models.depthtrack.predictor import predict_depth_files

    written = predict_depth_files(args.images, args.out, args.calib, args.checkpoint, args.device, args.near,
                                  args.far)
    for path in written:
        print(path)
    return 0
