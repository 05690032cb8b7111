"""Training foundation: safetensors checkpoints and training state, the fit loop (resume, EMA, eval, logs), DDP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from depthtracker.train import (
    CheckpointError,
    TrainConfig,
    fit,
    load_checkpoint,
    load_train_state,
    save_checkpoint,
    save_train_state,
)
from torch.utils.data import TensorDataset


class Tiny(torch.nn.Module):
    """Linear layers with a tied weight, a BatchNorm (buffers incl. an int64 counter) and dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(6, 16)
        self.norm = torch.nn.BatchNorm1d(16)
        self.drop = torch.nn.Dropout(0.2)
        self.out = torch.nn.Linear(16, 2)
        self.tied = torch.nn.Linear(6, 16)
        self.tied.weight = self.inp.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.relu(self.norm(self.inp(x) + self.tied(x)))))


def _data(n: int = 40) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, torch.stack([x[:, 0] - x[:, 1], x[:, 2] * 0.5], 1))


def _loss(model, batch):
    x, y = batch
    err = torch.nn.functional.mse_loss(model(x), y)
    return err, {"mse": err.detach()}


def _model() -> Tiny:
    torch.manual_seed(1)
    return Tiny()


def _cfg(tmp: Path, **kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=8, lr=1e-2, warmup_steps=3, ema_decay=0.9, ema_ramp_steps=5.0, log_every=2,
                out_dir=str(tmp), seed=3, progress=False)
    return TrainConfig(**{**base, **kw})


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model = _model()
    model.norm.running_mean.uniform_()
    path = save_checkpoint(tmp_path / "ck", model, config={"width": 16, "sizes": (6, 2)},
                           manifest={"bags": ["a"]}, metrics={"map50": 0.5}, extra={"note": "x"})
    assert path == tmp_path / "ck.safetensors" and (tmp_path / "ck.json").is_file()
    for name in ("ck", "ck.safetensors", "ck.json"):
        state, side = load_checkpoint(tmp_path / name)
        ref = model.state_dict()
        assert state.keys() == ref.keys()
        for k, v in ref.items():
            assert state[k].dtype == v.dtype and torch.equal(state[k], v), k
    assert side["model_config"] == {"width": 16, "sizes": [6, 2]}
    assert side["data_manifest"] == {"bags": ["a"]} and side["metrics"] == {"map50": 0.5}
    assert side["extra"] == {"note": "x"} and side["torch_version"] == torch.__version__
    assert side["git_revision"] == "unknown" or len(side["git_revision"]) == 40
    assert {"git_dirty", "depthtracker_version", "created_utc", "weights_sha256"} <= side.keys()
    # what trained it: the CPU and the kernels torch chose there (another CPU trains other weights from the seed)
    assert side["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert side["machine"]["torch_threads"] == torch.get_num_threads() and side["machine"]["cpu"]
    fresh = Tiny()
    fresh.load_state_dict(state)  # a rebuilt model takes the weights (tied ones included)
    assert b"pickle" not in (tmp_path / "ck.safetensors").read_bytes()[:200]


def test_bad_checkpoint_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "none.safetensors"))):
        load_checkpoint(tmp_path / "none")
    save_checkpoint(tmp_path / "ck", _model(), config={})
    (tmp_path / "ck.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"ck\.json is not valid JSON"):
        load_checkpoint(tmp_path / "ck")
    save_checkpoint(tmp_path / "ck", _model(), config={})
    data = bytearray((tmp_path / "ck.safetensors").read_bytes())
    data[-5:] = b"\xff" * 5
    (tmp_path / "ck.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ck\.safetensors do not match their sidecar"):
        load_checkpoint(tmp_path / "ck")
    side = json.loads((tmp_path / "ck.json").read_text())
    del side["weights_sha256"]
    (tmp_path / "ck.json").write_text(json.dumps(side))
    (tmp_path / "ck.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"ck\.safetensors cannot be read"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(CheckpointError, match=r"last\.state\.safetensors does not exist"):
        load_train_state(tmp_path / "last")
    with pytest.raises(CheckpointError, match="config.fn holds a builtin_function_or_method"):
        save_checkpoint(tmp_path / "bad", _model(), config={"fn": len})



def test_a_checkpoint_of_the_other_model_is_named_as_such():
    """The depth checkpoint where the detector's belongs (perception's two parameters, eval, export) and the reverse
    say which model the file holds and what to pass instead; so does a sidecar without a model config."""
    from depthtracker.models.depthtrack.predictor import DepthTrackPredictor
    from depthtracker.models.hsvdet import HSVDetPredictor
    from depthtracker.train.checkpoints import model_config

    models = Path(__file__).resolve().parents[1] / "models"
    with pytest.raises(CheckpointError, match=r"depthtrack-edge\.safetensors holds the DepthTrack model, not HSV-DET: "
                                              r"pass a checkpoint of HSV-DET \(models/hsvdet-n\.safetensors, or one "
                                              r"written by `depthtracker train hsvdet`\)"):
        HSVDetPredictor.from_checkpoint(models / "depthtrack-edge.safetensors")
    with pytest.raises(CheckpointError, match=r"hsvdet-n\.safetensors holds the HSV-DET model, not DepthTrack"):
        DepthTrackPredictor.from_checkpoint(models / "hsvdet-n.safetensors", device="cpu")
    side = json.loads((models / "hsvdet-n.json").read_text())
    assert model_config(side, "x", "HSV-DET").sgb_levels == tuple(side["model_config"]["sgb_levels"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['nonsense'\] for HSVDetConfig"):
        model_config({"model_config": {**side["model_config"], "nonsense": 1}}, "x", "HSV-DET")  # neither model's
    with pytest.raises(CheckpointError, match="x: its sidecar has no model_config; was it written by "
                                              "`depthtracker train depthtrack`"):
        model_config({}, "x", "DepthTrack")

def test_train_state_round_trip(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, gamma=0.5)
    for _ in range(3):
        opt.zero_grad()
        _loss(model, _data()[:8])[0].backward()
        opt.step()
        sched.step()
    torch.manual_seed(123)
    save_train_state(tmp_path / "run", optimizer=opt, scheduler=sched, epoch=2, step=3, model=model,
                     extra={"best": 0.25})
    want_draw = torch.rand(3)
    opt2 = torch.optim.AdamW(_model().parameters(), lr=0.1)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 2, gamma=0.5)
    state = load_train_state(tmp_path / "run", optimizer=opt2, scheduler=sched2)
    assert torch.equal(torch.rand(3), want_draw)  # RNG restored
    assert state["epoch"] == 2 and state["step"] == 3 and state["extra"] == {"best": 0.25}
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"] and b["param_groups"][0]["betas"] == (0.8, 0.99)
    for pid, st in a["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["state"][pid][k]), (pid, k)
    assert sched2.state_dict() == sched.state_dict()
    assert all(torch.equal(v, state["model"][k]) for k, v in model.state_dict().items())


def test_resume_matches_an_uninterrupted_run(tmp_path):
    ref = fit(_model(), _loss, _data(), _cfg(tmp_path / "ref"))
    assert ref.step == 15 and ref.epoch == 3 and ref.ema is not None

    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 6:  # first step of epoch 2 (5 steps per epoch), after the epoch-1 checkpoint
            raise RuntimeError("simulated crash")
        return _loss(model, batch)

    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(_model(), crashing, _data(), _cfg(tmp_path / "run"))
    assert json.loads((tmp_path / "run" / "last.json").read_text())["extra"]["step"] == 5
    torch.manual_seed(999)  # resume must not depend on the caller's RNG
    resumed = fit(_model(), _loss, _data(), _cfg(tmp_path / "run"), resume=True)
    assert resumed.step == 15
    for (k, v), w in zip(ref.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(v, w), k
    for (k, v), w in zip(ref.ema.state_dict().items(), resumed.ema.state_dict().values()):
        assert torch.equal(v, w), k
    # the main checkpoint holds the EMA weights
    state, side = load_checkpoint(tmp_path / "run" / "last")
    assert side["extra"]["weights"] == "ema" and torch.equal(state["out.weight"], ref.ema.out.weight)


def test_fit_evaluates_logs_and_keeps_best(tmp_path):
    scores = iter([0.2, 0.7, 0.5])
    seen_modes = []

    def evaluate(model):
        seen_modes.append(model.training)
        return {"map50": next(scores), "per_class": {"a": {"ap50": 0.1}}}

    res = fit(_model(), _loss, _data(), _cfg(tmp_path, ema_decay=0.0, best_metric="map50"), evaluate=evaluate,
              model_config={"width": 16}, manifest={"samples": 40})
    assert seen_modes == [False, False, False] and res.metrics["map50"] == 0.5
    best = json.loads((tmp_path / "best.json").read_text())
    last = json.loads((tmp_path / "last.json").read_text())
    assert best["metrics"]["map50"] == 0.7 and last["metrics"]["map50"] == 0.5
    assert last["model_config"] == {"width": 16} and last["data_manifest"] == {"samples": 40}
    assert last["extra"]["train_config"]["lr"] == 1e-2 and last["extra"]["weights"] == "model"
    tags = {k for h in res.history for k in h}
    assert {"train/loss", "train/mse", "train/lr", "train/grad_norm", "eval/map50", "eval/per_class/a/ap50"} <= tags
    csv_log = tmp_path / "scalars.csv"
    if csv_log.exists():  # without tensorboard installed the scalars go to a CSV
        lines = csv_log.read_text().splitlines()
        assert lines[0] == "step,tag,value" and any(",eval/map50,0.7" in x for x in lines)
    else:
        assert any((tmp_path / "tb").iterdir())


def test_max_steps_and_config_validation(tmp_path):
    res = fit(_model(), _loss, _data(), _cfg(tmp_path, max_steps=7, checkpoint_every=0))
    assert res.step == 7 and res.epoch == 2
    assert json.loads((tmp_path / "last.json").read_text())["extra"]["step"] == 7
    with pytest.raises(ValueError, match="TrainConfig.lr"):
        TrainConfig(lr=0.0)
    with pytest.raises(ValueError, match="TrainConfig.schedule"):
        TrainConfig(schedule="step")


_DDP_SCRIPT = textwrap.dedent('''
    import sys, torch
    sys.path.insert(0, sys.argv[2])
    from test_train import Tiny, _data, _loss, _cfg
    from pathlib import Path
    from depthtracker.train import fit
    from safetensors.torch import save_file
    torch.manual_seed(int(__import__("os").environ["RANK"]))  # different inits per rank: DDP must broadcast rank 0's
    res = fit(Tiny(), _loss, _data(), _cfg(Path(sys.argv[1]), epochs=2, ema_decay=0.0))
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else int(__import__("os").environ["RANK"])
    save_file({k: v.contiguous().clone() for k, v in res.model.state_dict().items()},
              f"{sys.argv[1]}/params_rank{rank}.safetensors")
    # one file per rank: the two ranks share stdout, where their prints can interleave mid-line
    Path(sys.argv[1], f"result_rank{rank}.txt").write_text(f"{rank} {res.step} {res.last_checkpoint is not None}")
''')


def test_ddp_two_cpu_processes(tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "ddp_fit.py"
    script.write_text(_DDP_SCRIPT)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(out), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [(out / f"result_rank{r}.txt").read_text().split() for r in (0, 1)]
    # 40 samples / 2 ranks / batch 8 -> 3 steps per epoch; only rank 0 wrote a checkpoint
    assert results == [["0", "6", "True"], ["1", "6", "False"]]
    p0, p1 = load_file(out / "params_rank0.safetensors"), load_file(out / "params_rank1.safetensors")
    for k in p0:
        if "norm.running" not in k:  # BatchNorm running statistics are per rank (DDP syncs gradients only)
            assert torch.equal(p0[k], p1[k]), k
    state, side = load_checkpoint(out / "last")
    assert side["extra"]["step"] == 6 and torch.equal(state["out.weight"], p0["out.weight"])
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("last")) == [
        "last.json", "last.safetensors", "last.state.json", "last.state.safetensors"]
