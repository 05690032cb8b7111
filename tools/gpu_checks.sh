#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run: what a session lent a GPU (the H100 of the `device` tool, or any
# CUDA machine with this checkout) runs once, within about 9 minutes. CI never runs it (it has no GPU).
#
#   OUT=DIR bash tools/gpu_checks.sh            # DIR default out/gpu; on the device tool $OUT is already set
#
# Steps, each under its own time limit so that one hang cannot eat the others' time:
#   1. env.txt: GPU, driver, torch, Triton, cuDNN versions (bench/RESULTS.md needs them beside every figure);
#   2. the `gpu` kernel tests: bf16 and larger sizes against the naive twins (test/kernels, issue 4);
#   3. bench/kernels.py: the sparse global block (-> kernels_global.json), then vision NSA (-> kernels.json, written
#      after every case) against cuDNN / flash SDPA and FlexAttention (DESIGN.md section 7, issue 4);
#   4. bench/graph.py --preset rig-4x640 --path inprocess --device cuda: camera -> tracks, 4 x 640x480 (issue 7)
#      -> graph.json;
#   5. bench/attention_ablation.py --latency-only: CUDA latency of mha/mqa/gqa/nsa (issue 5) -> attn/.
# Everything printed goes to OUT/checks.log as well. At most 8 files come back from the device: this writes 8.
#
# The device's Python (3.12) has torch, Triton, NumPy, SciPy, OpenCV, safetensors, PyYAML, tqdm and pytest but no ROS
# wheels and no rosbags. Only step 5 needs rosbags (its module imports the bag reader); carry it as wheels, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       rosbags==0.11.9 ruamel.yaml==0.19.1 lz4==4.4.5 backports.zstd==1.8.0 apsw==3.54.1.0   # requirements/lock.txt
# (6.5 MB) and name `.whl` in the run's carry list: device run `bash tools/gpu_checks.sh`, carry [".whl"],
# timeout_s 600. Without .whl/ step 5 reports the import error and the rest runs.
# Rehearsed on the CPU (2026-12-05) with every package the device lacks blocked from import: each step imports and
# starts; it has not yet run on a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu}
mkdir -p "$OUT/attn"
LOG="$OUT/checks.log"
: >"$LOG"
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dt-site .whl/*.whl \
        >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/dt-site${PYTHONPATH:+:$PYTHONPATH}
fi
# The core imports from the checkout (no install step on the device); bench scripts import their siblings.
export PYTHONPATH=$PWD/src/depthtracker:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, report the exit status
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "=== $name (limit ${limit} s): $*" | tee -a "$LOG"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    echo "=== $name: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$LOG"
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    "$PY" -c 'import platform, torch, triton; print("python", platform.python_version(), "torch", torch.__version__,
"cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "triton", triton.__version__,
"gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>&1
    git rev-parse --short HEAD 2>/dev/null || echo "revision unknown"
} >"$OUT/env.txt"
cat "$OUT/env.txt" | tee -a "$LOG"

step gpu_tests 90 "$PY" -m pytest -q -p no:cacheprovider -m gpu test/kernels
step kernels_global 60 "$PY" bench/kernels.py --only global --out "$OUT/kernels_global.json"
step kernels_nsa 240 "$PY" bench/kernels.py --only nsa --out "$OUT/kernels.json"  # rewritten after every case
step graph 90 "$PY" bench/graph.py --preset rig-4x640 --path inprocess --device cuda --out "$OUT/graph.json"
step attention 90 "$PY" bench/attention_ablation.py --latency-only --cameras 4 --out "$OUT/attn"
echo "done: results in $OUT" | tee -a "$LOG"
