"""The learning-rate range test (L. Smith, "Cyclical Learning Rates for Training Neural Networks",
2015; fastai's ``lr_find``): train a fresh copy of a run's model for a few hundred steps while the
learning rate grows exponentially, record the loss, and suggest a rate.

Nothing here touches a run folder: the model is built from the setup (the same seed, so the same
initial weights the run would start from), trained in memory and thrown away. No Textual either:
``workbench lr-find`` and the app's setup form both call :func:`find_lr`.

The suggestion rule (:func:`suggest`): **one tenth of the learning rate at the minimum of the
smoothed loss**. The minimum is where the rate starts to be too large (the loss turns and then
diverges), so a rate ten times smaller is still fast and safely on the falling side; unlike the
steepest point of the curve, which is the other common rule, the minimum of a smoothed curve moves
little from one noisy sweep to the next. The steepest point is reported as well.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.config import RunConfig
from workbench.errors import WorkbenchError

if TYPE_CHECKING:  # the CLI's parser reads this module's defaults before the app's first paint: no plugins
    from workbench.registry import Registry

DEFAULT_START_LR = 1e-7
DEFAULT_END_LR = 10.0
DEFAULT_STEPS = 200
#: Weight of the past in the loss's exponential moving average (bias-corrected): about ten steps
#: of memory, a third of a decade at the default 25 steps per decade.
SMOOTHING = 0.9
#: The sweep stops once the smoothed loss exceeds this multiple of its lowest value.
DIVERGENCE_FACTOR = 4.0
#: Steps before divergence is judged (the first losses of a fresh model are erratic).
WARMUP_STEPS = 10
RULE = "min/10: one tenth of the learning rate at the lowest smoothed loss"

ProgressCallback = Callable[[int, int, float, float], None]


@dataclass
class LRFinding:
    """One sweep: the rates tried, the loss at each (raw and smoothed), why it ended and the suggestion."""

    dataset: str
    arch: str
    optimizer: str
    start_lr: float
    end_lr: float
    steps: int
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    #: Why the sweep ended: "diverged", "end" (reached end_lr) or "stopped" (asked to).
    ended: str = "end"
    suggestion: float | None = None
    minimum_lr: float | None = None
    steepest_lr: float | None = None
    rule: str = RULE
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: what was swept, how it ended, the suggestion."""
        how = {"diverged": "the loss diverged", "end": "reached the end of the range",
               "stopped": "stopped on request"}[self.ended]
        last = f"{self.lrs[-1]:.2g}" if self.lrs else "-"
        head = f"{len(self.lrs)} steps from lr {self.start_lr:.2g} to {last} ({how}, {self.seconds:.1f} s)"
        if self.suggestion is None:
            return f"{head}; no suggestion: the loss never fell (widen the range or add steps)"
        return (f"{head}; suggested lr {format_lr(self.suggestion)} ({self.rule}; lowest loss at "
                f"{format_lr(self.minimum_lr)}, steepest fall at {format_lr(self.steepest_lr)})")


def format_lr(value: float | None) -> str:
    """A rate as people write it: 0.003, 3e-05."""
    return "-" if value is None else f"{float(f'{value:.2g}'):g}"


def exponential_rates(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """``steps`` rates from ``start_lr`` to ``end_lr``, evenly spaced on a log scale."""
    if steps < 2:
        return [start_lr]
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / (steps - 1)) for i in range(steps)]


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average (the first values are not pulled towards zero)."""
    out, average = [], 0.0
    for index, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta**index))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float | None, float | None]:
    """(suggestion, rate at the lowest smoothed loss, rate of the steepest fall before it), or Nones
    when the loss never fell below its start."""
    if len(lrs) < 3:
        return None, None, None
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    if lowest == 0 or smoothed[lowest] >= smoothed[0]:
        return None, None, None
    # slope per decade, over the falling part only
    slopes = [(smoothed[i + 1] - smoothed[i]) / math.log10(lrs[i + 1] / lrs[i]) for i in range(lowest)]
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    minimum_lr = lrs[lowest]
    suggestion = max(minimum_lr / 10, lrs[0])
    return suggestion, minimum_lr, lrs[steepest]


def find_lr(config: RunConfig, registry: Registry | None = None, *, start_lr: float = DEFAULT_START_LR,
            end_lr: float = DEFAULT_END_LR, steps: int = DEFAULT_STEPS,
            on_step: ProgressCallback | None = None,
            should_stop: Callable[[], bool] | None = None) -> LRFinding:
    """Sweep the learning rate for ``config`` (a resolved setup; nothing is saved). ``on_step(step,
    steps, lr, smoothed_loss)`` after each step; ``should_stop()`` ends the sweep early."""
    check_range(start_lr, end_lr, steps)
    import torch

    from workbench import engine
    from workbench.devices import resolve_device
    from workbench.tasks import task_class
    from workbench.training import TrainOptions

    if registry is None:
        from workbench.registry import get_registry

        registry = get_registry()
    options = TrainOptions.from_config(config.train)
    device = resolve_device(config.device)
    engine.configure_threads(options.threads)
    generator = engine.seed_everything(options.seed)
    data = engine.load_dataset(config, registry)
    task = task_class(registry.dataset(config.dataset).task).from_data(data)
    encoded = task.encode(data)
    train_set, _, _ = task.cut_long(encoded["train"], options.max_tokens)
    train_set = train_set[: options.limit] if options.limit else train_set
    if not train_set:
        raise WorkbenchError(f"dataset {config.dataset!r} has no usable training examples")
    task.prepare_training(train_set, config.train)
    model = engine.build_model(config, task, registry).to(device)
    model.train()
    optimizer = engine.make_optimizer(model, options)
    params = [p for p in model.parameters() if p.requires_grad]
    clip = options.clip_grad_norm if options.clip_grad_norm > 0 else float("inf")

    finding = LRFinding(config.dataset, config.arch, options.optimizer, start_lr, end_lr, steps)
    started = time.monotonic()
    batches = _endless(lambda: task.batches(train_set, options.batch_size, True, generator))
    for step, lr in enumerate(exponential_rates(start_lr, end_lr, steps), start=1):
        if should_stop is not None and should_stop():
            finding.ended = "stopped"
            break
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        output = task.loss(model, next(batches).to(device))
        loss = output[0] if isinstance(output, tuple) else output
        value = float(loss.detach())
        if not math.isfinite(value):
            finding.ended = "diverged"
            break
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        finding.lrs.append(lr)
        finding.losses.append(value)
        finding.smoothed = smooth(finding.losses)
        if on_step is not None:
            on_step(step, steps, lr, finding.smoothed[-1])
        if step > WARMUP_STEPS and finding.smoothed[-1] > DIVERGENCE_FACTOR * min(finding.smoothed):
            finding.ended = "diverged"
            break
    finding.seconds = time.monotonic() - started
    finding.suggestion, finding.minimum_lr, finding.steepest_lr = suggest(finding.lrs, finding.smoothed)
    return finding


def check_range(start_lr: float, end_lr: float, steps: int) -> None:
    """A sweep that cannot work is one line before any data is loaded."""
    if not (math.isfinite(start_lr) and math.isfinite(end_lr)) or start_lr <= 0 or end_lr <= start_lr:
        raise WorkbenchError(f"the learning-rate range must run upwards from a positive rate (got {start_lr:g} "
                             f"to {end_lr:g}); e.g. --start-lr 1e-7 --end-lr 10")
    if not 5 <= steps <= 100_000:
        raise WorkbenchError(f"--steps must be from 5 to 100000 (got {steps}); a few hundred is usual")


def _endless(make: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """Batches epoch after epoch (a small dataset may have fewer batches than the sweep has steps)."""
    while True:
        empty = True
        for batch in make():
            empty = False
            yield batch
        if empty:
            raise WorkbenchError("the training split gives no batches")


def plot(finding: LRFinding, width: int = 80, height: int = 20, colors: bool = True) -> str:
    """The loss against the learning rate (log x axis) as terminal text, the suggestion marked by a
    vertical line. The y axis stops a little above the starting loss, so the last diverging steps do
    not flatten the part of the curve that matters."""
    import plotext as plt  # type: ignore[import-untyped]

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.xscale("log")
    if finding.lrs:
        plt.scatter(finding.lrs, finding.losses, marker="dot", label="loss")
        plt.plot(finding.lrs, finding.smoothed, marker="braille", label="smoothed")
        if finding.suggestion is not None:
            plt.vline(finding.suggestion)
        low = min(finding.losses)
        high = max(finding.smoothed[0] * 1.5, low * 1.1)
        plt.ylim(low - 0.05 * (high - low), high)
        decades = range(math.floor(math.log10(finding.lrs[0])), math.ceil(math.log10(finding.lrs[-1])) + 1)
        ticks = [10.0**d for d in decades]
        plt.xticks(ticks, [f"{t:g}" for t in ticks])
    plt.title(f"lr-find {finding.dataset} / {finding.arch} ({finding.optimizer})"
              + (f": suggested lr {format_lr(finding.suggestion)}" if finding.suggestion else ""))
    plt.xlabel("learning rate (log scale)")
    text: str = plt.build()
    plt.clear_figure()
    return text if colors else plt.uncolorize(text)
