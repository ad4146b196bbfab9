"""How far the terminal app lags behind its user, in tmux at 80x24, quiet and with both cores busy.

Prints, for each condition (quiet; then two spinning processes started here, ``--busy-procs``):

- first paint: seconds from typing the command in a shell to the setup screen's "Dataset" label,
  for ``workbench`` and for a minimal Textual app (header, list, footer; ``--minimal-app``),
  interleaved rep by rep, and their ratio (median over median); also when the dataset list is filled
  ("ready"), and the CPU time each process had used when its first frame was seen (``/proc``; less
  sensitive to a crowded machine than the wall clock, in steps of the kernel's 10 ms tick);
- Predict: typing a surname into a names model and a short review into a word-level sentiment model
  (rt-polarity) at eight characters a second: how late each character is echoed (median, max) and how
  long after the last key the answer for the whole text appears; then the same text pasted at once;
- the dataset list: seconds from each Down press to the description of the next dataset, presses
  0.3 s apart, then presses timed to land as the form starts to change for the dataset before;
- Generate: a character language model (tinyshakespeare, one short epoch) generating a long text at
  80x24; a key typed into the priming field every 2 s for 24 s, seconds from each key to its echo,
  and how many characters were generated meanwhile.

The models are trained first (one short epoch each, with the CLI) into a temporary folder.

Bytecode: by default (``--bytecode cached``) both apps start with Python's bytecode cache in a
folder of the benchmark's own (``PYTHONPYCACHEPREFIX``), written by one unmeasured start of each, as on
a machine where the package was installed with pip or started once before. ``--bytecode none``
compiles every module at every start (as where ``PYTHONDONTWRITEBYTECODE`` is set and no cache
exists): that adds the compiling of workbench's own modules (0.1 s or more on a busy 2-core box) to
the app's first paint only, and of Textual's to both.
A poll of ``tmux capture-pane`` costs a few milliseconds, so figures have that resolution.

usage: python benchmarks/tui_latency.py [--data ../shared/data] [--reps 5] [--conditions quiet,busy]
                                        [--parts paint,predict,list,generate] [--bytecode cached|none]
       python benchmarks/tui_latency.py --minimal-app     (the baseline app, run by the benchmark itself)
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

WIDTH, HEIGHT = 80, 24
HERE = Path(__file__).resolve().parent.parent
TYPING_INTERVAL = 0.125  # eight characters a second
NAME = "Dostoevsky"
REVIEW = "a gorgeous, witty and moving film"
#: tmux on a server of the benchmark's own: other people's tmux sessions (and a server they restart)
#: on a shared machine are left alone, and every app gets this process's environment.
TMUX = ["tmux", "-L", f"wblat{os.getpid()}"]
#: Environment for every app started (see --bytecode); set by main().
PYTHON_ENV = ""


def minimal_app() -> int:
    """The baseline: what any Textual app costs to start (header, a list of datasets, footer)."""
    from textual.app import App, ComposeResult
    from textual.widgets import Footer, Header, Label, OptionList

    class Minimal(App[None]):
        BINDINGS = [("ctrl+q", "quit", "Quit")]

        def compose(self) -> ComposeResult:
            yield Header()
            yield Label("Dataset")
            yield OptionList(*[f"dataset {i}" for i in range(12)])
            yield Footer()

    Minimal().run()
    return 0


# -- tmux ------------------------------------------------------------------------------------
class Pane:
    """One tmux session of WIDTH x HEIGHT with an idle shell in ``work``."""

    def __init__(self, work: Path, name: str) -> None:
        self.session = f"wblat{os.getpid()}{name}"
        subprocess.run([*TMUX, "new", "-d", "-s", self.session, "-x", str(WIDTH), "-y", str(HEIGHT),
                        f"cd {work} && exec bash --norc --noprofile"], check=True)
        time.sleep(0.8)  # let the shell settle

    def capture(self) -> str:
        return subprocess.run([*TMUX, "capture-pane", "-p", "-t", self.session], capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run([*TMUX, "send-keys", "-t", self.session, *(["-l"] if literal else []), *keys], check=True)

    def wait(self, found: Callable[[str], bool], timeout: float, what: str) -> float:
        """Seconds until ``found(screen)``; exits with the screen when it never comes."""
        start = time.perf_counter()
        while True:
            screen = self.capture()
            if found(screen):
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"timed out after {timeout} s waiting for {what}; the screen shows:\n{screen}")
            time.sleep(0.005)

    def app_cpu(self) -> float:
        """CPU seconds (user + system, all threads) used so far by the command the shell runs."""
        shell = subprocess.run([*TMUX, "display", "-p", "-t", self.session, "#{pane_pid}"], capture_output=True,
                               text=True).stdout.strip()
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        fields = Path(f"/proc/{children[0]}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        subprocess.run([*TMUX, "send-keys", "-t", self.session, "C-q"], capture_output=True)
        time.sleep(0.3)
        subprocess.run([*TMUX, "kill-session", "-t", self.session], capture_output=True)


def app_command(work: Path, runs: Path, data: Path) -> str:
    # a tmux server that was already running passes its own environment on, not this process's
    path = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    return (f"{PYTHON_ENV}{path}WORKBENCH_RUNS_DIR={runs} WORKBENCH_DATA_DIR={data} WORKBENCH_KEYS={work / 'no-keys.toml'} "
            f"TERM=xterm-256color {sys.executable} -m workbench")


@contextmanager
def started(work: Path, command: str, tag: str) -> Iterator[tuple[Pane, float]]:
    """A pane running ``command``; yields it and the moment the command was sent."""
    pane = Pane(work, tag)
    try:
        start = time.perf_counter()
        pane.keys(command, "Enter")
        yield pane, start
    finally:
        pane.close()


# -- measurements ------------------------------------------------------------------------------
def first_paint(work: Path, runs: Path, data: Path, reps: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"minimal": [], "workbench": [], "ready": [], "minimal cpu": [],
                                     "workbench cpu": []}
    minimal = f"{PYTHON_ENV}{sys.executable} {Path(__file__).resolve()} --minimal-app"
    for rep in range(-1, reps):  # rep -1 is not measured: it writes the bytecode cache, if one is kept
        with started(work, minimal, f"m{rep}") as (pane, start):
            pane.wait(lambda s: "Dataset" in s, 60, "the minimal app")
            minimal_paint = time.perf_counter() - start
            minimal_cpu = pane.app_cpu()
        with started(work, app_command(work, runs, data), f"w{rep}") as (pane, start):
            pane.wait(lambda s: "Dataset" in s, 60, "the setup screen")
            paint = time.perf_counter() - start
            cpu = pane.app_cpu()
            pane.wait(lambda s: "names  (classification)" in s, 60, "the dataset list")
            if rep >= 0:
                found["minimal"].append(minimal_paint)
                found["workbench"].append(paint)
                found["ready"].append(time.perf_counter() - start)
                found["minimal cpu"].append(minimal_cpu)
                found["workbench cpu"].append(cpu)
    return found


def input_row(screen: str, text: str) -> str | None:
    """The Predict input's line when it ends with ``text`` (the answer line has an arrow)."""
    for line in screen.splitlines():
        if "top-k" not in line or "→" in line:
            continue
        inner = line.split("top-k")[0].strip(" ▊▎▌▐│┃")
        if inner.endswith(text[-40:]):
            return line
    return None


def predict_latency(pane: Pane, text: str, paste: bool) -> tuple[list[float], float]:
    """Type (or paste) ``text`` into the focused input; per-character echo delays and the answer delay."""
    sent: list[float] = []
    echoed: list[float | None] = [None] * len(text)
    chunks = [text] if paste else list(text)
    next_send = time.perf_counter()
    done = 0
    deadline = time.perf_counter() + 120
    while True:
        now = time.perf_counter()
        if done < len(chunks) and now >= next_send:
            pane.keys(chunks[done], literal=True)
            sent.extend([time.perf_counter()] * len(chunks[done]))
            done += 1
            next_send += TYPING_INTERVAL
        screen = pane.capture()
        seen = time.perf_counter()
        shown = max((k for k in range(1, len(sent) + 1) if input_row(screen, text[:k])), default=0)
        for k in range(shown):
            if echoed[k] is None:
                echoed[k] = seen - sent[k]
        if done == len(chunks) and all(e is not None for e in echoed) and f"{text} →" in screen:
            return [e for e in echoed if e is not None], seen - sent[-1]
        if seen > deadline:
            raise SystemExit(f"no answer for {text!r} after 120 s; the screen shows:\n{screen}")
        time.sleep(0.005)


def predict(work: Path, runs: Path, data: Path, model_line: str, text: str) -> dict[str, float]:
    with started(work, app_command(work, runs, data), "p") as (pane, _):
        pane.wait(lambda s: "names  (classification)" in s, 60, "the setup screen")
        pane.keys("F5")
        pane.wait(lambda s: model_line in s, 60, f"the model ({model_line})")
        time.sleep(0.5)
        typed, answer = predict_latency(pane, text, paste=False)
        for _ in text:
            pane.keys("BSpace")
        pane.wait(lambda s: "type an input" in s, 30, "a cleared input")
        time.sleep(0.5)
        pasted, pasted_answer = predict_latency(pane, text, paste=True)
    return {"echo median": statistics.median(typed), "echo max": max(typed), "answer": answer,
            "paste echo": max(pasted), "paste answer": pasted_answer}


def dataset_list(work: Path, runs: Path, data: Path, names: list[str], presses: int, rest: float) -> list[float]:
    """Seconds per Down press in the dataset list, from the key to the next dataset's description;
    ``rest`` seconds between presses."""
    delays = []
    with started(work, app_command(work, runs, data), "d") as (pane, _):
        pane.wait(lambda s: "names  (classification)" in s, 60, "the setup screen")
        pane.wait(lambda s: "names (classification):" in s and "epochs" in s, 60, "the names form")
        time.sleep(1.0)
        index = names.index("names")
        for step in range(1, presses + 1):
            target = names[(index + step) % len(names)]
            start = time.perf_counter()
            pane.keys("Down")
            described = re.compile(rf"(^|\s){re.escape(target)} \([a-z_0-9]+\):", re.MULTILINE)
            pane.wait(lambda s, d=described: d.search(s) is not None, 30, f"the description of {target}")
            delays.append(time.perf_counter() - start)
            time.sleep(rest)
    return delays


def generate_latency(work: Path, runs: Path, data: Path, seconds: float, every: float) -> dict[str, object]:
    """Key-to-repaint during one long generation: a digit typed into the priming field every
    ``every`` seconds while the output streams in; seconds from each key to its echo."""
    delays: list[tuple[float, float]] = []
    with started(work, app_command(work, runs, data), "g") as (pane, _):
        pane.wait(lambda s: "names  (classification)" in s or "Dataset" in s, 60, "the setup screen")
        pane.keys("F6")
        pane.wait(lambda s: "enter or ctrl+g generates" in s, 60, "the language model")
        time.sleep(0.5)
        pane.keys("Tab")  # the priming field has focus: on to length (its text selected on focus)
        time.sleep(0.5)
        pane.keys("BSpace")
        pane.keys("999999", literal=True)  # longer than the measurement (the field shows six digits)
        pane.wait(lambda s: "999999" in s, 10, "the length")
        pane.keys("BTab")
        time.sleep(0.5)
        pane.keys("Q", literal=True)
        pane.wait(lambda s: "Q" in s.split("generated text")[0], 10, "the priming text")
        pane.keys("Enter")
        pane.wait(lambda s: "generating" in s, 30, "the generation")
        begun = time.perf_counter()
        typed = "Q"
        while time.perf_counter() - begun < seconds:
            time.sleep(every)
            typed += str(len(typed) % 10)
            start = time.perf_counter()
            pane.keys(typed[-1], literal=True)
            pane.wait(lambda s, t=typed: t in s.split("generated text")[0], 30, f"the echo of {typed!r}")
            delays.append((start - begun, time.perf_counter() - start))
        pane.keys("Escape")
        pane.wait(lambda s: "stopped:" in s or "done:" in s, 60, "the generation to stop")
        found = re.search(r"(?:stopped|done): (\d+) characters", pane.capture())
    return {"delays": delays, "characters": int(found.group(1)) if found else -1}


def generate_figures(work: Path, data: Path, models: dict[str, Path]) -> None:
    found = generate_latency(work, models["tinyshakespeare"], data, seconds=24.0, every=2.0)
    delays = found["delays"]
    assert isinstance(delays, list)
    shown = ", ".join(f"{at:.0f}s {delay:.2f}" for at, delay in delays)
    late = [delay for at, delay in delays if at >= 12]
    print(f"generate, key to echo while a long text streams in (seconds into it: delay s): {shown}; "
          f"median {statistics.median(d for _, d in delays):.2f}, max {max(d for _, d in delays):.2f}, "
          f"after 12 s median {statistics.median(late) if late else float('nan'):.2f}; "
          f"{found['characters']} characters when stopped", flush=True)


# -- set-up ------------------------------------------------------------------------------------
def train(runs: Path, data: Path, dataset: str, *settings: str) -> None:
    env = {**os.environ, "WORKBENCH_RUNS_DIR": str(runs), "WORKBENCH_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "workbench", "train", "--dataset", dataset, "--set", "epochs=1", *[f"--set={s}" for s in settings]]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {dataset} failed:\n{done.stdout}\n{done.stderr}")


def dataset_names() -> list[str]:
    from workbench.registry import get_registry

    return sorted(get_registry().datasets)


@contextmanager
def spinners(count: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def run_condition(label: str, work: Path, data: Path, models: dict[str, Path], reps: int, names: list[str],
                  parts: set[str]) -> None:
    print(f"== {label} (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores) ==", flush=True)
    if "paint" in parts:
        paint_figures(work, data, models, reps)
    if "predict" in parts:
        predict_figures(work, data, models)
    if "generate" in parts:
        generate_figures(work, data, models)
    if "list" in parts:
        from workbench.tui.setup import FORM_DELAY

        # 0.3 s: presses in a row; FORM_DELAY + 0.05 s: each press lands as the form starts to change
        for rest, what in ((0.3, "per Down press"), (FORM_DELAY + 0.05, "press during the form update")):
            delays = dataset_list(work, models["names"], data, names, min(8, len(names) - 1), rest)
            print(f"dataset list, {what} (s): {fmt(delays)}  median {statistics.median(delays):.2f}, "
                  f"max {max(delays):.2f}", flush=True)


def paint_figures(work: Path, data: Path, models: dict[str, Path], reps: int) -> None:
    paint = first_paint(work, models["names"], data, reps)
    ratio = statistics.median(paint["workbench"]) / statistics.median(paint["minimal"])
    print(f"first paint, minimal Textual app (s): {fmt(paint['minimal'])}  median {statistics.median(paint['minimal']):.2f}")
    print(f"first paint, workbench (s):           {fmt(paint['workbench'])}  median "
          f"{statistics.median(paint['workbench']):.2f}")
    print(f"datasets listed, workbench (s):       {fmt(paint['ready'])}  median {statistics.median(paint['ready']):.2f}")
    print(f"first paint ratio workbench / minimal: {ratio:.2f}", flush=True)
    cpu_ratio = statistics.median(paint["workbench cpu"]) / statistics.median(paint["minimal cpu"])
    print(f"CPU at first paint (process, s; read when the frame is seen): minimal {fmt(paint['minimal cpu'])}, "
          f"workbench {fmt(paint['workbench cpu'])}; ratio of medians {cpu_ratio:.2f}", flush=True)


def predict_figures(work: Path, data: Path, models: dict[str, Path]) -> None:
    for model, line, text in (("names", "names / ", NAME), ("rt-polarity", "rt-polarity /", REVIEW)):
        found = predict(work, models[model], data, line, text)
        print(f"predict {model}, typing {text!r} at 8 chars/s: echo median {found['echo median']:.2f} s, "
              f"max {found['echo max']:.2f} s; answer {found['answer']:.2f} s after the last key; pasted: "
              f"echo {found['paste echo']:.2f} s, answer {found['paste answer']:.2f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("WORKBENCH_DATA_DIR", str(HERE.parent / "shared" / "data")))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--conditions", default="quiet,busy")
    parser.add_argument("--busy-procs", type=int, default=2)
    parser.add_argument("--parts", default="paint,predict,list,generate",
                        help="which figures: paint, predict, list, generate")
    parser.add_argument("--bytecode", choices=["cached", "none"], default="cached",
                        help="cached: as after pip install or a first start (default); none: compile at every start")
    parser.add_argument("--minimal-app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.minimal_app:
        return minimal_app()
    data = Path(args.data).resolve()
    work = Path(tempfile.mkdtemp(prefix="wb-latency-"))
    global PYTHON_ENV
    # a prefix of the benchmark's own: nothing is written into the project or the installed packages
    PYTHON_ENV = (f"PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX={work / 'pycache'} " if args.bytecode == "cached"
                  else f"PYTHONDONTWRITEBYTECODE=1 PYTHONPYCACHEPREFIX={work / 'no-pycache'} ")
    print(f"bytecode: {args.bytecode}", flush=True)
    models = {"names": work / "runs-names", "rt-polarity": work / "runs-sentiment"}
    print("training the two models (one short epoch each)...", flush=True)
    train(models["names"], data, "names", "limit=4000")
    if "predict" in args.parts:
        train(models["rt-polarity"], data, "rt-polarity", "limit=2000")
    if "generate" in args.parts:
        models["tinyshakespeare"] = work / "runs-lm"
        train(models["tinyshakespeare"], data, "tinyshakespeare", "limit=200")
    names = dataset_names()
    parts = set(args.parts.split(","))
    # a session that lives as long as the benchmark: the server does not exit (and restart, racing the
    # next `tmux new`) each time the last measured session is closed
    subprocess.run([*TMUX, "new", "-d", "-s", "holder"], check=True)
    try:
        run_conditions(args, work, data, models, names, parts)
    finally:
        subprocess.run([*TMUX, "kill-server"], capture_output=True)
    return 0


def run_conditions(args: argparse.Namespace, work: Path, data: Path, models: dict[str, Path], names: list[str],
                   parts: set[str]) -> None:
    for condition in args.conditions.split(","):
        if condition == "busy":
            with spinners(args.busy_procs):
                time.sleep(1.0)
                run_condition(f"busy: {args.busy_procs} spinning processes", work, data, models, args.reps, names, parts)
        else:
            run_condition("quiet (nothing started here)", work, data, models, args.reps, names, parts)


if __name__ == "__main__":
    raise SystemExit(main())
