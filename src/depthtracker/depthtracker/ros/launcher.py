"""``depthtracker launch``: the perception graph of ``launch/perception.launch.py`` as local processes.

For machines without launch_ros (it is not on PyPI). The same ``config/graph.yaml`` and params files describe the
graph (``depthtracker.ros.launch_plan``); this module runs it and keeps it running:

* every child inherits the environment plus ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (images between processes)
  and runs in its own process group, so a terminal's Ctrl-C reaches the launcher only and the shutdown order holds;
  each line a child writes (stdout and stderr) is logged as ``[name] line``, as ``ros2 launch`` prints it;
* respawn: a node (ingest, perception, tracking) that exits while the graph runs is started again after
  ``respawn_delay`` seconds when the graph's ``respawn`` is on (``[launch] perception exited with status -9;
  respawning in 1.0 s (respawn 1)``). Exit status 2 is our nodes' configuration error (a bad parameter, a missing
  file): it is not respawned, since it would fail the same way; the graph shuts down and ``run_graph`` returns 2.
  A node that exits with respawn off, or ``MAX_QUICK_EXITS`` times in a row within ``QUICK_EXIT_S`` of its start (a
  crash loop), also shuts the graph down (status 1): a partial graph does not run silently;
* the bag player (``--camera bag:PATH``) plays the bag's camera topics and ``/tf_static`` (never the outputs a
  recorded graph stored) once the perception node and the recorder subscribe to them (``LaunchPlan.children``); its
  finishing is not an error: the graph keeps running (the nodes stay up,
  idle) until ``duration_s``, a signal or ``stop``; with ``stop_when_played`` it shuts down once the bag is played.
  The player or the recorder failing shuts the graph down with status 1. A child that printed its ``done_line``
  (the player's ``PLAYED_LINE``) and has not exited ``exit_grace_s`` later is killed and counted as finished: its
  work is done and only its DDS teardown is left, which can block for good;
* shutdown (SIGINT / SIGTERM to the launcher, ``duration_s`` elapsed, ``stop`` set, or a failure) is ordered: SIGINT
  to the sources (ingest / play), then to perception and tracking, then to the recorder, so the bag holds everything
  up to the end and is closed last; each stage gets ``STOP_TIMEOUT_S`` before SIGTERM, then ``KILL_TIMEOUT_S``
  before SIGKILL. A second signal to the launcher skips the SIGINT grace. Status 0 after a requested stop in which
  every process exited cleanly (0 or by the signal sent);
* watchdog: a node's executor writes a heartbeat (``HEARTBEAT_ENV`` names its file; ``ros.runtime.run_node`` writes
  the time at start and every ``HEARTBEAT_PERIOD_S`` from a steady-clock timer); one whose heartbeat is older than
  ``watchdog_s`` (default ``WATCHDOG_S``) while its process runs has an executor that no longer runs (a callback that
  never returns, or the middleware holding the GIL) and is killed, its stacks dumped first, and respawned like a
  crash (``[launch] perception: no heartbeat for 20 s ...``). Model loading comes before the first heartbeat;
* a hang is shown, not only ended: our processes print every thread's stack on ``STACK_DUMP_SIGNAL`` (SIGUSR1,
  ``enable_stack_dumps``; ``Child.stack_dump``), and the launcher sends it to one that has not stopped
  ``STOP_TIMEOUT_S`` after SIGINT, or that it kills after its ``done_line``, before it escalates; the stacks appear
  in the log under the child's name.

Importing this module loads no ROS module: it only starts processes.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from depthtracker.ros.launch_plan import Child, LaunchPlan, make_plan

__all__ = ["run_graph", "run_children", "register", "enable_stack_dumps", "STOP_TIMEOUT_S", "KILL_TIMEOUT_S",
           "CONFIG_ERROR_STATUS", "STACK_DUMP_SIGNAL", "WATCHDOG_S", "HEARTBEAT_ENV", "HEARTBEAT_PERIOD_S"]

STOP_TIMEOUT_S = 10.0  # grace after SIGINT before SIGTERM, s (per shutdown stage)
KILL_TIMEOUT_S = 5.0  # grace after SIGTERM before SIGKILL, s
CONFIG_ERROR_STATUS = 2  # our nodes exit with 2 on a bad parameter or configuration (ros.runtime.run_node)
POLL_S = 0.05  # supervision period, s
QUICK_EXIT_S = 5.0  # a node exiting this soon after its start counts towards a crash loop, s
MAX_QUICK_EXITS = 5  # a node exiting soon after its start this many times in a row stops the graph (status 1)
WATCHDOG_S = 20.0  # a node whose heartbeat is older than this is stuck and is killed (0: no watchdog), s
HEARTBEAT_ENV = "DEPTHTRACKER_HEARTBEAT"  # the file a child's executor writes its heartbeat to (ros.runtime)
HEARTBEAT_PERIOD_S = 1.0  # how often a node writes its heartbeat, s
WATCHDOG_CHECK_S = 1.0  # how often the launcher reads a child's heartbeat, s
STACK_DUMP_SIGNAL = signal.SIGUSR1  # our processes print their threads' stacks on it (enable_stack_dumps)
STACK_DUMP_WAIT_S = 0.5  # time for a dump to reach the log before the next signal, s
# Exit statuses of a process that stopped because we asked it to: 0, or killed by / exiting for SIGINT or SIGTERM.
_STOPPED = {0, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGTERM}


def enable_stack_dumps() -> None:
    """Print every thread's Python stack to stderr when ``STACK_DUMP_SIGNAL`` arrives (faulthandler: it writes from
    the signal handler, so it works while a thread holds the GIL in a hang). Our nodes and the CLI call it first."""
    stream = sys.stderr
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a stream without a descriptor (a test's capture)
        stream = sys.__stderr__
    if stream is not None:  # None: the process has no stderr at all, nowhere to print
        faulthandler.register(STACK_DUMP_SIGNAL, file=stream, all_threads=True)


@dataclass
class _Running:
    child: Child
    proc: subprocess.Popen | None = None
    reader: threading.Thread | None = None
    respawns: int = 0
    restart_at: float | None = None  # monotonic time of a pending respawn
    started_at: float = 0.0  # monotonic time of the last start
    quick_exits: int = 0  # exits in a row within QUICK_EXIT_S of the start
    done_at: float | None = None  # monotonic time the child printed its ``done_line``
    heartbeat: Path | None = None  # the file its executor writes (Child.heartbeat with the watchdog on)
    checked_at: float = 0.0  # monotonic time its heartbeat was last read


def _pdeathsig() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the launcher thread that forked it dies (a launcher
    killed with SIGKILL leaves no orphans); None where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


class _Supervisor:
    def __init__(self, children: Sequence[Child], respawn_delay: float, log: Callable[[str], None],
                 on_start: Callable[[str, int], None] | None, env: Mapping[str, str] | None,
                 watchdog_s: float = 0.0, heartbeat_dir: Path | None = None) -> None:
        self.children = [_Running(c) for c in children]
        self.respawn_delay = respawn_delay
        self.watchdog_s = watchdog_s
        self.heartbeat_dir = heartbeat_dir
        self.log = log
        self.on_start = on_start
        self.env = {**(os.environ if env is None else env), "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA",
                    "PYTHONUNBUFFERED": "1"}
        self.preexec = _pdeathsig()
        self.hurry = threading.Event()  # a second stop request: skip the SIGINT grace
        for r in self.children:
            for path, text in r.child.files:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)

    # -- processes -------------------------------------------------------------------------------------------------
    def start(self, r: _Running) -> None:
        env = self.env
        if r.child.heartbeat and self.watchdog_s > 0 and self.heartbeat_dir is not None:
            r.heartbeat = self.heartbeat_dir / r.child.name
            r.heartbeat.unlink(missing_ok=True)  # the watchdog arms at this start's first heartbeat
            env = {**env, HEARTBEAT_ENV: str(r.heartbeat)}
        r.proc = subprocess.Popen(r.child.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=env, process_group=0, preexec_fn=self.preexec)
        r.restart_at, r.started_at, r.done_at = None, time.monotonic(), None
        r.reader = threading.Thread(target=self._pump, args=(r, r.proc.stdout),
                                    name=f"launch-{r.child.name}", daemon=True)
        r.reader.start()
        self.log(f"[launch] started {r.child.name} (pid {r.proc.pid})")
        if self.on_start is not None:
            self.on_start(r.child.name, r.proc.pid)

    def _pump(self, r: _Running, stream: IO[bytes]) -> None:
        done = r.child.done_line
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if done is not None and r.done_at is None and line.startswith(done):
                r.done_at = time.monotonic()
            self.log(f"[{r.child.name}] {line}")
        stream.close()

    def _overdue(self, r: _Running) -> bool:
        """The child said its work is done (``done_line``) more than ``exit_grace_s`` ago and is still running."""
        return r.done_at is not None and time.monotonic() - r.done_at > r.child.exit_grace_s

    def _kill_done(self, r: _Running) -> int:
        """Kill a child whose work is done but which does not exit (a blocked teardown); 0, its work counted."""
        self.log(f"[launch] {r.child.name} finished its work {time.monotonic() - r.done_at:.0f} s ago but has not "
                 "exited (a blocked teardown); killing it")
        self._dump_stacks([r])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(r.proc.pid, signal.SIGKILL)
        self._reap(r)
        return 0

    def _heartbeat_age(self, r: _Running) -> float | None:
        """Seconds since the child's last heartbeat, read at most every ``WATCHDOG_CHECK_S``; None when it has no
        watchdog, was read recently, or has not written its first heartbeat (still starting)."""
        now = time.monotonic()
        if r.heartbeat is None or now - r.checked_at < WATCHDOG_CHECK_S:
            return None
        r.checked_at = now
        try:
            beat = float(r.heartbeat.read_text())
        except (OSError, ValueError):  # not written yet (or mid-replace): not armed
            return None
        return now - beat  # time.monotonic() is one clock for every process of the machine (Linux)

    def _kill_stalled(self, r: _Running, age: float) -> int:
        """Kill a child whose executor stopped writing its heartbeat; its exit status (-9), handled as a crash."""
        self.log(f"[launch] {r.child.name}: no heartbeat for {age:.0f} s (watchdog {self.watchdog_s:g} s): its "
                 "executor no longer runs; killing it")
        self._dump_stacks([r])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(r.proc.pid, signal.SIGKILL)
        return self._reap(r)

    def _dump_stacks(self, group: Sequence[_Running]) -> None:
        """Ask the children of ``group`` that can (``Child.stack_dump``) to print their threads' stacks, and give the
        dumps time to reach the log."""
        dumping = [r for r in group if r.child.stack_dump and r.proc is not None and r.proc.poll() is None]
        for r in dumping:
            self.log(f"[launch] {r.child.name}: the stacks of its threads follow ({STACK_DUMP_SIGNAL.name})")
            with contextlib.suppress(ProcessLookupError):
                r.proc.send_signal(STACK_DUMP_SIGNAL)
        if dumping:
            time.sleep(STACK_DUMP_WAIT_S)

    def _reap(self, r: _Running) -> int:
        status = r.proc.wait()
        if r.reader is not None:
            r.reader.join(timeout=2.0)  # its last lines are logged before the exit is
        r.proc = None
        return status

    # -- running ---------------------------------------------------------------------------------------------------
    def supervise(self, deadline: float | None, stop: threading.Event, stop_when_played: bool) -> int:
        """Run until a stop is due; then stop everything in order. Returns the graph's exit status."""
        for r in self.children:
            self.start(r)
        failure = 0
        while failure == 0 and not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            for r in self.children:
                if r.proc is not None and r.proc.poll() is not None:
                    failure = self._exited(r, self._reap(r), stop_when_played, stop) or failure
                elif r.proc is not None and self._overdue(r):
                    failure = self._exited(r, self._kill_done(r), stop_when_played, stop) or failure
                elif r.proc is not None and (age := self._heartbeat_age(r)) is not None and age > self.watchdog_s:
                    failure = self._exited(r, self._kill_stalled(r, age), stop_when_played, stop) or failure
                elif r.restart_at is not None and time.monotonic() >= r.restart_at and not stop.is_set():
                    self.start(r)
            time.sleep(POLL_S)
        status = self.shutdown()
        return failure or status

    def _exited(self, r: _Running, status: int, stop_when_played: bool, stop: threading.Event) -> int:
        """React to an exit while the graph runs; returns a non-zero status when the graph must shut down."""
        name = r.child.name
        if name == "play" and status == 0:
            if stop_when_played:
                self.log("[launch] play finished the bag; shutting the graph down (--stop-when-played)")
                stop.set()
            else:
                self.log("[launch] play finished the bag; the graph keeps running until stopped")
            return 0
        if status == CONFIG_ERROR_STATUS:
            self.log(f"[launch] ERROR: {name} exited with status {status}: a configuration error (see its log "
                     "above); not respawning it; shutting the graph down")
            return CONFIG_ERROR_STATUS
        r.quick_exits = r.quick_exits + 1 if time.monotonic() - r.started_at < QUICK_EXIT_S else 0
        if r.child.respawn and r.quick_exits >= MAX_QUICK_EXITS:
            self.log(f"[launch] ERROR: {name} exited with status {status}, {r.quick_exits} times in a row within "
                     f"{QUICK_EXIT_S:g} s of its start; not respawning it again; shutting the graph down")
            return 1
        if r.child.respawn:
            r.respawns += 1
            r.restart_at = time.monotonic() + self.respawn_delay
            self.log(f"[launch] {name} exited with status {status}; respawning in {self.respawn_delay:g} s "
                     f"(respawn {r.respawns})")
            return 0
        self.log(f"[launch] ERROR: {name} exited with status {status}; shutting the graph down")
        return 1

    def shutdown(self) -> int:
        """Stop every running child, stage by stage; 1 when one did not stop cleanly, else 0."""
        for r in self.children:
            r.restart_at = None
        status = 0
        for stage in sorted({r.child.stage for r in self.children}):
            group = [r for r in self.children if r.child.stage == stage and r.proc is not None]
            if not group:
                continue
            interrupted = False
            for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGTERM, KILL_TIMEOUT_S),
                                 (signal.SIGKILL, KILL_TIMEOUT_S)):
                alive = [r for r in group if r.proc is not None and r.proc.poll() is None]
                if not alive:
                    break
                if sig == signal.SIGINT and self.hurry.is_set():
                    continue
                if sig != signal.SIGINT:
                    self.log(f"[launch] {', '.join(r.child.name for r in alive)} still running: sending "
                             f"{signal.Signals(sig).name}")
                if sig == signal.SIGTERM and interrupted:  # SIGINT was sent and did not stop them: show where
                    self._dump_stacks(alive)
                interrupted = sig == signal.SIGINT
                for r in alive:
                    with contextlib.suppress(ProcessLookupError):
                        r.proc.send_signal(sig)
                end = time.monotonic() + timeout
                while time.monotonic() < end and any(r.proc.poll() is None for r in alive):
                    if sig == signal.SIGINT and self.hurry.is_set():
                        break
                    time.sleep(POLL_S)
            for r in group:
                done = r.done_at is not None
                code = self._reap(r)
                if code not in _STOPPED and not (done and code == -signal.SIGKILL):  # done, then blocked: not lost
                    self.log(f"[launch] {r.child.name} exited with status {code} while stopping")
                    status = 1
                if r.child.name == "record" and code != 0:
                    self.log("[launch] ERROR: the recorder did not finish cleanly: the bag may be missing")
                    status = 1
        return status


@contextlib.contextmanager
def _signals_set(stop: threading.Event, hurry: threading.Event) -> Iterator[None]:
    """SIGINT / SIGTERM set ``stop`` (a second one sets ``hurry``) while the graph runs; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        (hurry if stop.is_set() else stop).set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _stderr_log() -> Callable[[str], None]:
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            print(line, file=sys.stderr, flush=True)

    return log


def run_graph(
    plan: LaunchPlan,
    duration_s: float | None = None,
    stop_when_played: bool = False,
    log: Callable[[str], None] | None = None,
    on_start: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
    watchdog_s: float = WATCHDOG_S,
) -> int:
    """Run the graph of ``plan`` until ``duration_s`` elapses, ``stop`` is set, SIGINT/SIGTERM arrives (when called
    from the main thread), the bag is played (``stop_when_played``) or something fails; then stop it in order.

    ``log`` gets every line (``[launch] ...`` and each child's ``[name] ...``; default: stderr) and may be called from
    several threads; ``on_start(name, pid)`` is called at every (re)start of a child; ``env`` is the children's
    environment (default: this process's); ``watchdog_s``: a node whose heartbeat is older is killed and respawned
    (0: no watchdog). Returns 0 after a clean requested stop, 2 when a node exited with a
    configuration error, 1 on any other failure. ``ValueError`` (before anything starts) when the plan is invalid.
    Blocks; to run a graph beside other work, call it in a thread and set ``stop`` to end it.
    """
    with tempfile.TemporaryDirectory(prefix="depthtracker-launch-") as rundir:
        return run_children(plan.children(Path(rundir)), plan.graph.respawn_delay, duration_s, stop_when_played,
                            log, on_start, stop, env, watchdog_s)


def run_children(
    children: Sequence[Child],
    respawn_delay: float = 1.0,
    duration_s: float | None = None,
    stop_when_played: bool = False,
    log: Callable[[str], None] | None = None,
    on_start: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
    watchdog_s: float = WATCHDOG_S,
) -> int:
    """``run_graph`` for any processes: start ``children`` in order, supervise them, stop them stage by stage."""
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration_s}")
    if not 0 <= watchdog_s < float("inf"):
        raise ValueError(f"watchdog must be >= 0 seconds (0: off), got {watchdog_s}")
    if 0 < watchdog_s <= 2 * HEARTBEAT_PERIOD_S:
        raise ValueError(f"watchdog must be 0 (off) or longer than {2 * HEARTBEAT_PERIOD_S:g} s (two heartbeats), "
                         f"got {watchdog_s}")
    log = _stderr_log() if log is None else log
    stop = threading.Event() if stop is None else stop
    with tempfile.TemporaryDirectory(prefix="depthtracker-heartbeat-") as heartbeats:
        sup = _Supervisor(children, respawn_delay, log, on_start, env, watchdog_s, Path(heartbeats))
        deadline = None if duration_s is None else time.monotonic() + duration_s
        with _signals_set(stop, sup.hurry):
            try:
                status = sup.supervise(deadline, stop, stop_when_played)
            except BaseException:
                sup.hurry.set()
                sup.shutdown()
                raise
    log(f"[launch] graph stopped (status {status})")
    return status


# -- CLI -----------------------------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``launch`` subcommand to ``sub`` (``parser.add_subparsers(...)``)."""
    p = sub.add_parser(
        "launch",
        help="run the perception graph (ingest, perception, tracking) as local processes",
        description="Start the graph of launch/perception.launch.py from its arguments file (config/graph.yaml) "
        "without launch_ros: one process per node, output prefixed [name], nodes respawned when they die (not on a "
        "configuration error, exit status 2), ordered shutdown on Ctrl-C/SIGTERM. Exit status: 0 after a clean "
        "stop, 2 on a configuration error, 1 on another failure.",
    )
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="graph YAML (default: config/graph.yaml); relative paths in it are to its folder")
    p.add_argument("--camera", action="append", default=[], metavar="SPEC",
                   help="camera source, repeat per camera: video:PATH, folder:DIR, v4l2:DEVICE, synth (a whole "
                   "rig), or bag:PATH (replays a bag instead of the ingest node; alone). Default: the cameras of "
                   "the graph's cameras_config")
    p.add_argument("--for", dest="duration", type=float, default=None, metavar="SECONDS",
                   help="run this long, then shut down (default: until Ctrl-C)")
    p.add_argument("--record", type=Path, default=None, metavar="BAG",
                   help="record the camera inputs and the outputs of the enabled nodes into this new bag")
    p.add_argument("--device", default=None, help="perception device: auto | cpu | cuda | cuda:N")
    p.add_argument("--namespace", default=None, metavar="NS", help="namespace of every node and topic")
    p.add_argument("--no-respawn", action="store_true", help="do not restart nodes that die (the graph stops)")
    p.add_argument("--watchdog", type=float, default=WATCHDOG_S, metavar="SECONDS",
                   help=f"kill (and respawn) a node whose executor has not written its heartbeat for this long "
                   f"(default {WATCHDOG_S:g}; 0: off)")
    p.add_argument("--stop-when-played", action="store_true",
                   help="with --camera bag:PATH, shut down once the bag is played (default: keep running)")
    p.add_argument("--set-param", action="append", default=[], metavar="NODE:NAME=VALUE",
                   help="override a node parameter (VALUE in YAML, as -p NAME:=VALUE), e.g. "
                   "perception:publish_color=true; repeatable")
    p.add_argument("--dry-run", action="store_true", help="print the command lines and exit")
    p.set_defaults(func=run_launch)


def run_launch(args: argparse.Namespace) -> int:
    plan = make_plan(args.config, args.camera, args.record, args.device, args.namespace,
                     False if args.no_respawn else None, args.set_param)
    if args.dry_run:
        import shlex

        for child in plan.children():
            print(f"{child.name}: {shlex.join(child.argv)}")
        return 0
    if args.stop_when_played and plan.bag is None:
        raise ValueError("--stop-when-played needs --camera bag:PATH")
    return run_graph(plan, duration_s=args.duration, stop_when_played=args.stop_when_played,
                     watchdog_s=args.watchdog)
