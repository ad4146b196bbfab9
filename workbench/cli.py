"""``workbench`` on the command line: the TUI with no arguments, headless commands otherwise.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. A user mistake
prints one line on stderr (``workbench: error: ...``) and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from workbench import __version__
from workbench.errors import WorkbenchError
from workbench.terminal import printable

EXIT_USAGE = 2


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _clean(obj: Any) -> Any:
    """NaN and infinity are not JSON; write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def say(text: object = "") -> None:
    """One piece of text output for a human: control characters from data (class names, generated
    text, file names) are shown, not sent to the terminal (see :mod:`workbench.terminal`)."""
    sys.stdout.write(printable(text) + "\n")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_clean(obj), default=_json_default) + "\n")
    sys.stdout.flush()


def _runs_root(args: argparse.Namespace) -> Path:
    from workbench.runs import default_runs_dir

    return Path(args.runs_dir) if getattr(args, "runs_dir", None) else default_runs_dir()


# -- commands ----------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from workbench import distributed
    from workbench.registry import get_registry

    registry = get_registry()
    world = distributed.join()  # one process, unless torchrun started this one
    try:
        return _train_in(world, args, registry)
    finally:
        distributed.leave()


def _train_in(world: Any, args: argparse.Namespace, registry: Any) -> int:
    """``workbench train`` in this process's world; only rank 0 locks, prints and saves."""
    from workbench import distributed
    from workbench.config import plan_run

    plan = distributed.agree_on_plan(world, lambda: plan_run(
        registry, dataset=args.dataset, arch=args.arch, device=args.device, assignments=args.set,
        data_dir=args.data_dir, config_file=args.config, resume=args.resume, runs_root=_runs_root(args),
        run_dir=args.run_dir))
    if args.save_config and world.is_main:
        _save_setup(Path(args.save_config), plan.config.to_toml())
    lock = plan.begin() if world.is_main else None  # a resumed run is locked from here: no second process writes it

    from workbench.engine import Trainer
    from workbench.progress import ConsoleProgress

    stop_requests = {"count": 0}

    def request_stop(signum: int, frame: Any) -> None:
        stop_requests["count"] += 1
        if stop_requests["count"] > 1:
            raise KeyboardInterrupt
        sys.stderr.write("\nstopping after this step (checkpoint is kept); press Ctrl-C again to abort\n")

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        trainer = Trainer(plan.config, registry=registry, runs_root=_runs_root(args),
                          on_event=None if args.quiet else ConsoleProgress(),
                          should_stop=lambda: stop_requests["count"] > 0, resume=plan.resume, run=plan.run,
                          lock=lock, world=world)
        trained = trainer.train()
        result = trained.to_dict()
    finally:
        if lock is not None:
            lock.release()  # already released by the trainer, unless it never started
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not world.is_main:  # rank 0 reports for all; the others say where they stopped (on stderr)
        sys.stderr.write(f"workbench: {world.describe()} {result['state']} with run {result['run']} at step "
                         f"{trainer.global_step}\n")
        return 0
    if args.json:
        print_json(result)
    else:
        _print_train_summary(result, registry.dataset(plan.config.dataset).task)
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    """``workbench lr-find``: the learning-rate range test on the setup ``train`` would run (no run is saved)."""
    from workbench.config import plan_run
    from workbench.lr_find import check_range, find_lr, format_lr, plot
    from workbench.registry import get_registry

    check_range(args.start_lr, args.end_lr, args.steps)
    registry = get_registry()
    plan = plan_run(registry, dataset=args.dataset, arch=args.arch, device=args.device, assignments=args.set,
                    data_dir=args.data_dir, config_file=args.config)

    def show_progress(step: int, steps: int, lr: float, loss: float) -> None:
        if not args.json and sys.stderr.isatty():
            sys.stderr.write(f"\rstep {step}/{steps}  lr {lr:.2e}  loss {loss:.4f} ")

    finding = find_lr(plan.config, registry, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps,
                      on_step=show_progress)
    if not args.json and sys.stderr.isatty():
        sys.stderr.write("\n")
    if args.json:
        print_json(finding.to_dict())
        return 0
    sys.stdout.write(plot(finding, colors=sys.stdout.isatty()) + "\n")
    say(finding.summary())
    if finding.suggestion is not None:
        say(f"use it: --set lr={format_lr(finding.suggestion)}")
    return 0


def _save_setup(path: Path, text: str) -> None:
    """``--save-config FILE``, before the run starts: a folder or an unwritable place is one line."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or exc
        raise WorkbenchError(f"--save-config {path}: cannot write it ({reason}); choose another file") from None


def _print_train_summary(result: dict[str, Any], kind: str | None) -> None:
    """The run's state, its headline metrics (loss and the task kind's ``headline_metrics``), the checkpoint."""
    from workbench.headlines import headline_values

    say(f"run {result['run']} {result['state']}" + (f" ({result['message']})" if result["message"] else ""))
    # datasets without a test split (e.g. tinyshakespeare, as in nanoGPT) report validation instead
    metrics, where = (result["metrics"], "test") if result["metrics"] else (result.get("valid_metrics"), "valid (no test split)")
    if metrics:
        shown = "  ".join(f"{key} {value:.4f}" for key, value in headline_values(metrics, kind))
        say(f"{where}: {shown}  (best epoch {result['best_epoch']})")
    say(f"checkpoint: {result['checkpoint']}")


def cmd_eval(args: argparse.Namespace) -> int:
    from workbench.engine import evaluate_checkpoint, load_trained
    from workbench.registry import get_registry
    from workbench.runs import resolve_checkpoint

    registry = get_registry()
    path = resolve_checkpoint(args.checkpoint, _runs_root(args))
    loaded = load_trained(path, registry, args.device)
    metrics = evaluate_checkpoint(loaded, registry, args.split, args.data_dir)
    if args.json:
        print_json({"checkpoint": str(path), "split": args.split, "metrics": metrics})
        return 0
    say(f"{path} on {loaded.config.dataset} {args.split} ({metrics.get('count', 0):,} examples)")
    width = max([18, *(len(key) for key, value in metrics.items() if isinstance(value, float))])
    for key, value in metrics.items():
        if isinstance(value, float):
            say(f"  {key:<{width}} {value:.4f}")
    if "per_class_accuracy" in metrics:
        say("  per class:")
        for label, acc in metrics["per_class_accuracy"].items():
            support = metrics["support"][label]
            shown = "  n/a " if acc is None else f"{acc:.3f}"
            say(f"    {label:<16} {shown}  (n={support})")
    if metrics.get("probes"):
        say("  probe sentences (sentence BLEU, k=2):")
        for probe in metrics["probes"]:
            say(f"    {probe['source']} => {probe['translation']}  (reference {probe['reference']}, "
                  f"bleu {probe['bleu']:.3f})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from workbench.engine import load_trained
    from workbench.registry import get_registry
    from workbench.runs import resolve_checkpoint

    path = resolve_checkpoint(args.checkpoint, _runs_root(args))
    loaded = load_trained(path, get_registry(), args.device)
    texts = args.text if args.text else [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise WorkbenchError("give text to predict as arguments (or on standard input)")
    predictions = [loaded.task.predict(loaded.model, text, loaded.device, top_k=args.top_k) for text in texts]
    if args.json:
        print_json({"checkpoint": str(path), "predictions": predictions})
        return 0
    for prediction in predictions:
        say(loaded.task.render_prediction(prediction))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from workbench.inspect import inspect_checkpoint, parse_gate, parse_intervention, parse_unit, render_text
    from workbench.runs import resolve_checkpoint

    interventions = [*(parse_unit(u) for u in args.zero_unit), *(parse_unit(u) for u in args.clamp_unit),
                     *(parse_gate(g) for g in args.force_gate), *(parse_intervention(s) for s in args.intervene)]
    if args.top < 1:
        raise WorkbenchError(f"--top must be at least 1, not {args.top}")
    path = resolve_checkpoint(args.checkpoint, _runs_root(args))
    result = inspect_checkpoint(path, args.text, top_k=args.top, interventions=interventions,
                                allow_unknown=args.allow_unknown, generate=args.generate)
    if args.json:
        print_json(result.to_dict())
    else:
        say(render_text(result))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from workbench.engine import load_trained
    from workbench.generation import checked_options
    from workbench.inspect import plugin_steppers
    from workbench.intervened_generation import first_difference, generate, shared_seed
    from workbench.interventions import parse_interventions
    from workbench.registry import get_registry
    from workbench.runs import resolve_checkpoint

    # the Generate screen's schema: the same names and ranges on the command line and in the app,
    # checked before the checkpoint is read
    checked = checked_options({"length": args.length, "temperature": args.temperature, "sampling": args.sampling,
                               "top_k": args.top_k, "top_p": args.top_p})
    length = checked.pop("length")
    interventions = parse_interventions(args.intervene)
    # with interventions, the untouched baseline (--json) draws with the same seed
    options = {**checked, "seed": shared_seed(args.seed) if interventions and args.json else args.seed}
    path = resolve_checkpoint(args.checkpoint, _runs_root(args))
    registry = get_registry()
    loaded = load_trained(path, registry, args.device)
    if not loaded.task.supports_generation:
        raise WorkbenchError(f"{path} is a {loaded.task.kind} model; only language models generate text")
    # generate() validates its inputs before returning the iterator: errors come before any output
    stream = generate(loaded.task, loaded.model, args.prime, length, loaded.device, interventions,
                      arch=loaded.config.arch, steppers=plugin_steppers(registry) if interventions else None,
                      **options)
    for item in interventions:
        sys.stderr.write(printable(f"intervention: {item.describe('character')}") + "\n")
    pieces = [args.prime]
    if not args.json:
        sys.stdout.write(printable(args.prime))
        sys.stdout.flush()
    for piece in stream:
        pieces.append(piece)
        if not args.json:
            sys.stdout.write(printable(piece))
            sys.stdout.flush()
    if args.json:
        result: dict[str, Any] = {"checkpoint": str(path), "prime": args.prime, "text": "".join(pieces), **options}
        if interventions:
            baseline = "".join([args.prime, *loaded.task.generate(loaded.model, args.prime, length, loaded.device,
                                                                  **options)])
            result.update(interventions=[i.to_dict() for i in interventions], baseline=baseline,
                          differs_from=first_difference(result["text"], baseline))
        print_json(result)
    else:
        sys.stdout.write("\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.export import check_format, export_checkpoint
    from workbench.runs import resolve_checkpoint

    check_format(args.format)  # a missing onnxruntime is said before anything else
    path = resolve_checkpoint(args.checkpoint, _runs_root(args))
    result = export_checkpoint(path, args.format, Path(args.output), verify=args.verify, force=args.force,
                              limit=args.limit, length=args.length, data_dir=args.data_dir)
    status = 1 if "verify" in result and not result["verify"]["ok"] else 0  # exported, but not faithful
    if args.json:
        print_json(result)
        return status
    print(f"{result['architecture']} ({result['task']}) -> {result['model']} + {result['metadata']}")
    if result["fixed_length"]:
        fixed = ", ".join(f"{name} {length}" for name, length in result["fixed_length"].items())
        print(f"  time loop unrolled: pad these inputs to exactly this many positions: {fixed}")
    if "verify" in result:
        check = result["verify"]
        verdict = "ok" if check["ok"] else f"ABOVE {check['tolerance']:g}"
        print(f"  verify: max abs logit difference {check['max_abs_diff']:.3g} over {check['examples']} "
              f"validation examples ({verdict})")
    return status


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.runs import find_run, list_runs

    root = _runs_root(args)
    if args.action == "list":
        return _list_runs(args, list_runs(root), root)
    if not args.run:
        raise WorkbenchError(f"`workbench runs {args.action}` needs a run id")
    run = find_run(args.run, root)
    if args.action == "diff":
        return _diff_runs(args, run, root)
    if args.other:
        raise WorkbenchError(f"`workbench runs {args.action}` takes one run; only diff takes two")
    if args.action == "show" and args.memory:
        return _show_memory(args, run)
    if args.action == "show":
        summary = run.summary()
        config = None if summary["state"] == "unreadable" and "config.json" in summary["reason"] else run.config()
        info = {**summary, "config": config, "results": run.results()}
        if args.json:
            print_json(info)
        else:
            say(json.dumps(_clean(info), indent=2, default=_json_default))
        return 0
    if args.action == "export":
        return _export_run(args, run)
    if args.action == "delete":
        run.delete()
        message = f"deleted {run.id}"
    else:
        from workbench.events import ACTIVE_STATES

        state = run.status().get("state")
        if state not in ACTIVE_STATES:
            raise WorkbenchError(f"run {run.id} is {state}, not training")
        run.request({"stop": "stop", "pause": "pause", "continue": "resume"}[args.action])
        message = f"asked {run.id} to {args.action}"
    if args.json:
        print_json({"run": run.id, "action": args.action, "ok": True})
    else:
        say(message)
    return 0


def _list_runs(args: argparse.Namespace, runs: list[Any], root: Path) -> int:
    """``workbench runs``: oldest first, the columns of the app's Runs screen (workbench/run_table.py)."""
    from workbench.run_table import RowCache

    rows = RowCache().rows(runs)
    if args.json:
        print_json({"runs_dir": str(root), "runs": [
            {**row.summary, "parameters": row.parameters, "seconds": row.seconds,
             "metric": {"name": row.metric, "value": row.value, "split": row.split}} for row in rows]})
        return 0
    if not rows:
        say(f"no runs under {root}")
        return 0
    header = {"run": "run", "state": "state", "epochs": "epochs", "dataset": "dataset", "arch": "arch",
              "time": "time", "params": "params", "metric": "metric (t test, v best valid)"}
    table = [header] + [{**row.cells(), **({"metric": row.reason} if row.reason else {})} for row in rows]
    widths = {name: max(len(cells[name]) for cells in table) for name in header}
    right = {"epochs", "time", "params"}
    for cells in table:
        say("  ".join(cells[name].rjust(widths[name]) if name in right else cells[name].ljust(widths[name])
                      for name in header).rstrip())
    return 0


def _diff_runs(args: argparse.Namespace, run: Any, root: Path) -> int:
    """``workbench runs diff A B``: two runs' settings side by side, differing keys first (marked ≠)."""
    from dataclasses import asdict

    from workbench.run_diff import compare_runs, render_text
    from workbench.runs import find_run

    if not args.other:
        raise WorkbenchError("`workbench runs diff` needs two run ids: workbench runs diff RUN_A RUN_B")
    comparison = compare_runs(run, find_run(args.other, root))
    if args.json:
        print_json({"a": comparison.a, "b": comparison.b,
                    "settings": [{**asdict(line), "differs": line.differs} for line in comparison.settings],
                    "results": [{**asdict(line), "differs": line.differs} for line in comparison.results]})
        return 0
    for line in render_text(comparison, min(shutil.get_terminal_size((100, 24)).columns, 160)):
        say(line)
    return 0


def _show_memory(args: argparse.Namespace, run: Any) -> int:
    """``workbench runs show RUN --memory``: the run's memory-across-time probes as an epoch x lag map."""
    from workbench.events import MemoryEvent
    from workbench.memory_view import memory_map, reach

    probes = [e for e in run.events() if isinstance(e, MemoryEvent)]
    if args.json:
        print_json({"run": run.id, "memory": [e.to_json() for e in probes]})
        return 0
    if not probes:
        say(f"run {run.id} has no memory probes (runs before this version, memory_every=0, or a model "
            "without a padded recurrent encoder)")
        return 0
    columns = shutil.get_terminal_size((80, 24)).columns
    say(f"memory across time, {run.id}: |dL/dh| at each lag back from the last step, relative to lag 0 "
        f"({probes[-1].cell}, {probes[-1].examples} probe examples)")
    for line in memory_map(probes, width=min(columns, 120), height=max(len(probes) + 2, 3)):
        say(line)
    say("reach (largest lag with at least 1e-3 of lag 0's gradient): "
        + ", ".join(f"epoch {e.epoch}: {reach(e)}" for e in probes[-5:]))
    return 0


def _export_run(args: argparse.Namespace, run: Any) -> int:
    """``workbench runs export RUN --format SINK``: a finished run's events through an event sink."""
    from workbench.events import ACTIVE_STATES
    from workbench.registry import get_registry
    from workbench.sinks import replay

    if not args.format:
        raise WorkbenchError("`workbench runs export` needs --format (csv, or a sink `workbench plugins` lists)")
    registry = get_registry()
    registry.sink(args.format)
    if run.status().get("state") in ACTIVE_STATES:
        raise WorkbenchError(f"run {run.id} is still training; export it when it has ended")
    output = Path(args.output).expanduser() if args.output else run.path
    problems = replay(registry, [args.format], run.events(), output)
    if problems:
        raise WorkbenchError(problems[0])
    if args.json:
        print_json({"run": run.id, "action": "export", "format": args.format, "output": str(output), "ok": True})
    else:
        say(f"exported {run.id} as {args.format} into {output}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """``workbench sweep``: plan (or reopen) a sweep, run its cells detached, print the table (docs/sweep.md)."""
    from workbench import sweep as sw

    root = _runs_root(args)
    if args.action == "list":
        found = [{"name": s.name, "dataset": s.dataset, "runs": len(s.cells), "folder": str(s.folder)}
                 for s in sw.list_sweeps(root)]
        if args.json:
            print_json({"sweeps": found})
        for item in [] if args.json else found:
            say(f"{item['name']:<40} {item['dataset']:<14} {item['runs']} runs")
        if not found and not args.json:
            say(f"no sweeps under {sw.sweeps_root(root)}")
        return 0
    if args.action == "run" and not args.resume:
        sweep, resumed = _plan_sweep(args, root)
    else:
        name = args.resume or args.sweep
        if not name:
            raise WorkbenchError(f"`workbench sweep {args.action}` needs a sweep name (see `workbench sweep list`)")
        sweep, resumed = sw.load_sweep(name, root), True
    if args.action == "stop":
        asked = sw.stop_sweep(sweep)
        if args.json:
            print_json({"sweep": sweep.name, "stopped": asked})
        else:
            say(f"asked {len(asked)} run(s) of sweep {sweep.name} to stop")
        return 0
    if args.action == "run" and not _run_sweep(args, sweep, resumed):
        return 130
    report = sw.summarize(sweep)
    if args.action == "status" and not args.json:
        say(sw.render_matrix(sweep) + "\n")
    elif args.action != "status":
        sw.write_tables(report)
    if args.json:
        print_json(report.to_dict())
    else:
        say(sw.render_text(report))
    return 0


def _plan_sweep(args: argparse.Namespace, root: Path) -> Any:
    from workbench import sweep as sw
    from workbench.registry import get_registry

    if args.parallel is not None and not 1 <= args.parallel <= 256:
        raise WorkbenchError(f"--parallel {args.parallel}: give 1 to 256 runs at once")
    planned = sw.plan_sweep(get_registry(), name=args.name, runs_root=root, axes=sw.parse_grid(args.grid),
                            seeds=sw.parse_seeds(args.seeds), dataset=args.dataset, arch=args.arch,
                            device=args.device, assignments=args.set, config_file=args.config,
                            data_dir=args.data_dir, command=" ".join(["workbench", *sys.argv[1:]]))
    sw.check_size(planned, args.yes)
    sweep, resumed = sw.open_or_plan(planned)
    if not resumed:
        sweep.save()
    return sweep, resumed


def _run_sweep(args: argparse.Namespace, sweep: Any, resumed: bool) -> bool:
    """Schedule the cells; Ctrl-C or SIGTERM ends this process, not the runs (they are detached).
    False when interrupted."""
    import time

    from workbench import sweep as sw

    slots = sw.machine_slots(sweep.cells[0].config.get("device", "auto"), args.parallel)
    total = len(sweep.cells)

    def notify(what: str, cell: Any) -> None:
        if not args.json:
            done = sum(sw.cell_state(sweep, c) in ("finished", "stopped", "failed") for c in sweep.cells)
            extra = f": {cell.message}" if cell.message and what not in ("started", "resumed") else ""
            result = sw.cell_result(sweep, cell) if what in ("finished", "stopped") else None
            main = (sw.headline_metrics(sweep.kind) or ("loss",))[0]
            if result and isinstance(result.get(main), (int, float)):
                extra = f" {main} {result[main]:.4f}{extra}"
            say(f"{time.strftime('%H:%M:%S')} {what:<11} {sweep.label(cell.configuration)} seed {cell.seed} "
                f"(run {cell.run}; {done}/{total} done){extra}")

    stop = {"signal": 0}

    def request_stop(signum: int, frame: Any) -> None:
        stop["signal"] = signum

    if not args.json:
        say(f"sweep {sweep.name} ({'resumed' if resumed else 'new'}): {len(sweep.configurations)} configurations x "
            f"{len(sweep.seeds)} seeds in {sweep.folder}; {slots.count} at once ({slots.reason})")
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        scheduler = sw.Scheduler(sweep, sw.DetachedLauncher(), slots, notify=notify, retry_failed=args.retry_failed)
        scheduler.run(should_stop=lambda: stop["signal"] != 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop["signal"]:
        sys.stderr.write(f"workbench: sweep {sweep.name} interrupted; its {len(scheduler.running)} running run(s) "
                         f"go on detached: `workbench sweep --resume {sweep.name}` continues, `workbench sweep stop "
                         f"{sweep.name}` stops them\n")
        return False
    return True


def cmd_plugins(args: argparse.Namespace) -> int:
    from workbench.config import TRAIN_PARAMS
    from workbench.registry import get_registry

    registry = get_registry()
    if args.check:
        return _check_plugin(args)
    if args.json:
        print_json({
            "plugins": [p.to_dict() for p in registry.plugins],
            "datasets": {name: {"task": s.task, "description": s.description, "plugin": registry.dataset_owner[name],
                                "default_arch": s.default_arch, "source": s.source,
                                "params": [p.to_dict() for p in s.params]}
                         for name, s in sorted(registry.datasets.items())},
            "architectures": {name: {"tasks": list(s.tasks), "description": s.description,
                                     "plugin": registry.architecture_owner[name],
                                     "params": [p.to_dict() for p in s.params]}
                              for name, s in sorted(registry.architectures.items())},
            "sinks": {name: {"description": s.description, "plugin": registry.sink_owner[name],
                             "params": [p.to_dict() for p in s.params]}
                      for name, s in sorted(registry.sinks.items())},
            "errors": [{"plugin": p.name, "error": e} for p, e in registry.errors],
            "train_params": [p.to_dict() for p in TRAIN_PARAMS],
        })
        return 0
    for plugin in registry.plugins:
        if plugin.origin == "loose":
            origin = f"loose: {plugin.path}"
        elif plugin.builtin:
            origin = "built-in"
        else:
            origin = f"package {plugin.package}" if plugin.package else plugin.origin
        state = " [disabled]" if plugin.disabled else ""
        version = f" {plugin.version}" if plugin.version else ""
        say(f"{plugin.name}{version} ({origin}){state}")
        if plugin.datasets:
            shown = ", ".join(f"{n} ({registry.datasets[n].task})" for n in plugin.datasets)
            say(f"  datasets: {shown}")
        if plugin.architectures:
            shown = ", ".join(f"{n} ({', '.join(registry.architectures[n].tasks)})" for n in plugin.architectures)
            say(f"  architectures: {shown}")
        if plugin.sinks:
            say(f"  event sinks: {', '.join(plugin.sinks)}")
        if not (plugin.datasets or plugin.architectures or plugin.sinks or plugin.errors or plugin.disabled):
            say("  registers nothing")
        for error in plugin.errors:
            say(f"  ERROR: {error}")
    if args.verbose:
        say("\ndatasets:")
        for name, spec in sorted(registry.datasets.items()):
            say(f"  {name:<16} {spec.task:<15} {spec.description}")
            _print_params(spec.params)
        say("architectures:")
        for name, arch in sorted(registry.architectures.items()):
            say(f"  {name:<16} {','.join(arch.tasks):<15} {arch.description}")
            _print_params(arch.params)
        say("event sinks (--set sinks=NAME,...):")
        for name, sink in sorted(registry.sinks.items()):
            say(f"  {name:<16} {sink.description}")
            _print_params(sink.params)
        say("training parameters (every run):")
        _print_params(TRAIN_PARAMS)
    return 0


def _print_params(params: Any) -> None:
    for param in params:
        say(f"      {param.name} = {param.default!r}  ({param.describe_allowed()}) {param.help}")


def _check_plugin(args: argparse.Namespace) -> int:
    """``workbench plugins --check NAME``: the contract test of workbench.testing, from the shell."""
    from workbench.testing import check_plugin

    report = check_plugin(args.check, data_dir=args.data_dir)
    if args.json:
        print_json(report.to_dict())
    else:
        say(report.render())
    return 0 if report.ok else 1


def cmd_devices(args: argparse.Namespace) -> int:
    from workbench.devices import list_devices

    devices = list_devices()
    if args.json:
        print_json({"devices": [d.to_dict() for d in devices]})
        return 0
    for d in devices:
        memory = f", {d.memory_bytes / 2**30:.0f} GiB" if d.memory_bytes else ""
        status = "available" if d.available else f"unavailable: {d.reason}"
        say(f"{d.name:<8} {d.description}{memory} ({status})")
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    try:
        from workbench.tui.app import run_app
    except ImportError:
        raise WorkbenchError("the terminal app is not available in this build; use the headless commands") from None
    return run_app(args)


# -- parser ------------------------------------------------------------------------------------
def _path(text: str) -> str:
    """A file or folder argument. The OS refuses NUL in a path with a ValueError deep inside whatever opens
    it first; argparse turns this check into the usual one-line usage error instead."""
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable path (it holds a NUL character)")
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too; keep it short)
        # argparse echoes the offending argument: neutralised and kept on one line like any error
        self.exit(EXIT_USAGE, f"workbench: error: {printable(message, layout=False)} (see `{self.prog} --help`)\n")


def _variables_help(width: int = 80) -> str:
    """The ``--help`` epilog: every variable of :data:`workbench.settings.VARIABLES`."""
    import textwrap

    from workbench.settings import LAUNCHER_VARIABLES, VARIABLES

    shown = {**VARIABLES, **LAUNCHER_VARIABLES}
    column = max(map(len, shown)) + 4
    lines = ["environment:"]
    for name, meaning in shown.items():
        lines.append(textwrap.fill(meaning, width, initial_indent=f"  {name:<{column - 2}}",
                                   subsequent_indent=" " * column))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="Train and explore sequence models from the terminal.\n"
                     "With no command, opens the terminal app.", epilog=_variables_help(),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("--runs-dir", type=_path,
                        help="where runs are kept (default: $WORKBENCH_RUNS_DIR or ./checkpoints)")
    parser.add_argument("--plugins-dir", action="append", type=_path, default=[], metavar="DIR",
                        help="also load every *.py file and package in DIR as a loose plugin (repeatable; "
                        "adds to $WORKBENCH_PLUGINS_DIR)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_train(sub)
    _add_lr_find(sub)
    _add_checkpoint_commands(sub)
    _add_export(sub)
    _add_listings(sub)
    _add_sweep(sub)
    _add_inspect(sub)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    """The options every command takes."""
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--runs-dir", type=_path, default=argparse.SUPPRESS, help="where runs are kept")
    p.add_argument("--plugins-dir", type=_path, action="append", default=[], dest="plugins_dir_here",
                   metavar="DIR", help="load loose plugins from DIR")


def _add_setup_options(p: argparse.ArgumentParser, arch_help: str = "architecture (default: the dataset's "
                       "recommendation)", set_help: str = "override a parameter, e.g. --set lr=0.01 --set "
                       "model.hidden_size=256", config_help: str = "TOML setup file (as saved by the app or "
                       "--save-config)") -> None:
    """What a setup is made of, the same for train, lr-find and sweep."""
    p.add_argument("--dataset", help="dataset name (see `workbench plugins`)")
    p.add_argument("--arch", help=arch_help)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--data-dir", type=_path,
                   help="folder or file with the dataset (default: $WORKBENCH_DATA_DIR, else download)")
    p.add_argument("--config", type=_path, help=config_help)


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model headless")
    _add_setup_options(p)
    p.add_argument("--save-config", type=_path, metavar="FILE", help="write the resolved setup as TOML")
    p.add_argument("--resume", type=_path, metavar="RUN", help="continue a run from its last checkpoint")
    p.add_argument("--run-dir", type=_path, metavar="DIR", help="train into this (new or empty) run folder instead of a "
                   "generated one under --runs-dir; the app uses it to know the run before it starts")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _common(p)
    p.set_defaults(func=cmd_train)


def _add_lr_find(sub: Any) -> None:
    from workbench.lr_find import DEFAULT_END_LR, DEFAULT_START_LR, DEFAULT_STEPS

    p = sub.add_parser("lr-find", help="sweep the learning rate on a throwaway copy of a setup and suggest one")
    _add_setup_options(p, set_help="override a parameter, as for train")
    p.add_argument("--start-lr", type=float, default=DEFAULT_START_LR, help=f"first rate (default {DEFAULT_START_LR:g})")
    p.add_argument("--end-lr", type=float, default=DEFAULT_END_LR, help=f"last rate (default {DEFAULT_END_LR:g})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"optimisation steps, rates evenly spaced on a log scale (default {DEFAULT_STEPS})")
    _common(p)
    p.set_defaults(func=cmd_lr_find)


def _add_checkpoint_commands(sub: Any) -> None:
    """eval, predict and generate: each loads one checkpoint onto a device."""

    def checkpoint_command(name: str, help: str, func: Any) -> _Parser:
        p = sub.add_parser(name, help=help)
        p.add_argument("checkpoint", type=_path, help="checkpoint file, run directory or run id")
        p.add_argument("--device", default="auto")
        _common(p)
        p.set_defaults(func=func)
        return p

    p = checkpoint_command("eval", "evaluate a checkpoint on a split", cmd_eval)
    p.add_argument("--split", choices=("test", "valid", "train"), default="test")
    p.add_argument("--data-dir", type=_path)

    p = checkpoint_command("predict", "classify text with a checkpoint", cmd_predict)
    p.add_argument("text", nargs="*", help="inputs (default: lines of standard input)")
    p.add_argument("--top-k", type=int, default=3)

    p = checkpoint_command("generate", "generate text with a language-model checkpoint", cmd_generate)
    p.add_argument("--prime", default="", help="text the model continues")
    p.add_argument("--length", type=int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--sampling", choices=("sample", "greedy", "top-k", "top-p"), default="sample")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--intervene", action="append", default=[], metavar="SPEC",
                   help="from character STEP on (the prime's characters count first): LAYER:UNIT@STEP zeroes a "
                   "hidden unit, LAYER:UNIT=VALUE@STEP clamps it (UNIT * for all), [LAYER:]GATE=VALUE@STEP forces "
                   "a gate, e.g. forget=0@20 (repeatable; docs/inspect.md)")


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export a checkpoint as TorchScript or ONNX (docs/export.md)")
    p.add_argument("checkpoint", type=_path, help="checkpoint file, run directory or run id")
    p.add_argument("--format", required=True, choices=("torchscript", "onnx"))
    p.add_argument("--output", required=True, type=_path, metavar="DIR",
                   help="new or empty folder for the model and model.json")
    p.add_argument("--force", action="store_true", help="replace what --output already holds")
    p.add_argument("--verify", action="store_true", help="compare checkpoint and export on validation examples")
    p.add_argument("--limit", type=int, default=512, help="validation examples to trace and verify on")
    p.add_argument("--data-dir", type=_path, help="where the dataset is now, if it moved since training")
    p.add_argument("--length", type=int, default=0, help="fixed input length of models whose time loop is "
                   "unrolled (default: the longest validation example)")
    _common(p)
    p.set_defaults(func=cmd_export)


def _add_inspect(sub: Any) -> None:
    p = sub.add_parser("inspect", help="step a checkpoint through a text token by token: predictions, states, "
                       "gates, saliency, interventions (docs/inspect.md)")
    p.add_argument("checkpoint", type=_path, help="checkpoint file, run directory or run id")
    p.add_argument("text", help="the input, e.g. a surname")
    p.add_argument("--top", type=int, default=3, metavar="K", help="predictions shown per step")
    p.add_argument("--zero-unit", action="append", default=[], metavar="LAYER:UNIT@STEP",
                   help="zero hidden unit UNIT of layer LAYER from token STEP on (repeatable)")
    p.add_argument("--clamp-unit", action="append", default=[], metavar="LAYER:UNIT=VALUE@STEP",
                   help="hold a hidden unit at VALUE from token STEP on (repeatable)")
    p.add_argument("--force-gate", action="append", default=[], metavar="[LAYER:]GATE=VALUE@STEP",
                   help="fix a gate from token STEP on, e.g. forget=1@3 or update=0@2 (repeatable)")
    p.add_argument("--intervene", action="append", default=[], metavar="SPEC",
                   help="any of the three above in one syntax, e.g. 1:5@3, 1:*=0.5@2, forget=1@4 (repeatable)")
    p.add_argument("--generate", type=int, default=0, metavar="N",
                   help="language models: also continue the text greedily by N characters")
    p.add_argument("--allow-unknown", action="store_true", help="inspect even if the text has tokens the model "
                   "never saw (they are read as <unk>)")
    _common(p)
    p.set_defaults(func=cmd_inspect)


def _add_listings(sub: Any) -> None:
    """runs, plugins and devices: what there is and what state it is in."""
    p = sub.add_parser("runs", help="list, show, diff, stop, delete or export runs")
    p.add_argument("action", nargs="?", default="list",
                   choices=("list", "show", "diff", "delete", "stop", "pause", "continue", "export"))
    p.add_argument("run", nargs="?", type=_path, help="run id or directory")
    p.add_argument("other", nargs="?", type=_path, help="diff: the second run")
    p.add_argument("--format", metavar="SINK", help="export: the event sink to replay events.jsonl through "
                   "(csv, or any other sink `workbench plugins` lists)")
    p.add_argument("--output", type=_path, metavar="DIR", help="export: write here (default: the run's folder)")
    p.add_argument("--memory", action="store_true", help="show: the memory-across-time map (gradient reaching "
                   "each earlier hidden state, by epoch)")
    _common(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("plugins", help="list plugins, their datasets and architectures, and load errors")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list every dataset and architecture with its parameters")
    p.add_argument("--check", metavar="PLUGIN",
                   help="run the plugin contract test on PLUGIN (entry-point name, module or file); exit 1 on violations")
    p.add_argument("--data-dir", type=_path, help="with --check: folder or file with the plugin's dataset")
    _common(p)
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("devices", help="list devices and whether they can be used")
    _common(p)
    p.set_defaults(func=cmd_devices)


def _add_sweep(sub: Any) -> None:
    p = sub.add_parser("sweep", help="train a grid of configurations over seeds; mean and spread per configuration")
    p.add_argument("action", nargs="?", default="run", choices=("run", "status", "report", "stop", "list"),
                   help="run (default) a sweep; status, report (writes sweep.md/csv) or stop one by name; list them")
    p.add_argument("sweep", nargs="?", help="the sweep's name (status, report, stop)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a parameter (any --set key, or arch) and its values; repeat for more axes")
    p.add_argument("--seeds", metavar="N|S1,S2", help="number of seeds (0..N-1) or a list of seeds (default 3)")
    _add_setup_options(p, arch_help="architecture, unless the grid has arch", set_help="a parameter for every run",
                       config_help="TOML setup file every run starts from")
    p.add_argument("--name", help="the sweep's folder under RUNS/sweeps (default: dataset and grid keys)")
    p.add_argument("--resume", metavar="NAME", help="continue sweep NAME (the same command again does too)")
    p.add_argument("--parallel", type=int, metavar="N", help="runs at once (default: one per free core, or per GPU)")
    p.add_argument("--yes", action="store_true", help=f"start grids of more than {100} runs")
    p.add_argument("--retry-failed", action="store_true", help="start failed cells again")
    _common(p)
    p.set_defaults(func=cmd_sweep)


def use_plugin_dirs(folders: list[str]) -> None:
    """Put ``--plugins-dir`` folders in front of ``WORKBENCH_PLUGINS_DIR``, so that processes this one
    starts (the app's training processes) load the same loose plugins."""
    if not folders:
        return
    resolved = []
    for folder in folders:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise WorkbenchError(f"--plugins-dir {folder}: no such folder")
        resolved.append(str(path.resolve()))
    from workbench.registry import reset_registry
    from workbench.settings import add_plugin_dirs

    add_plugin_dirs(resolved)
    reset_registry()


def _plugin_threads_left() -> bool:
    """True while a plugin's import or hook call runs on in its time-limit thread."""
    return any(t.name.startswith("workbench-plugin ") and t.is_alive() for t in threading.enumerate())


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    from workbench import distributed

    if distributed.ends_without_shutdown():  # a torchrun worker: see ends_without_shutdown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        use_plugin_dirs([*args.plugins_dir, *getattr(args, "plugins_dir_here", [])])
        if args.command is None:
            return cmd_tui(args)
        return args.func(args)
    except WorkbenchError as exc:
        if getattr(args, "json", False):
            print_json({"error": str(exc)})
        sys.stderr.write(f"workbench: error: {printable(exc, layout=False)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("workbench: interrupted\n")
        if _plugin_threads_left():
            # a plugin still importing or hung in a hook cannot be stopped from Python; leave without
            # the interpreter's shutdown, which must not wait on (or be disturbed by) that thread
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
