import io

from workbench.events import EpochEvent, StartEvent, StepEvent
from workbench.progress import ConsoleProgress, format_duration

START = StartEvent(run="r1", config={"dataset": "names", "arch": "gru"}, task="classification",
                   main_metric="accuracy", device="cpu", threads=1, precision="fp32", parameters=1234,
                   sizes={"train": 10, "valid": 2, "test": 3}, steps_per_epoch=9, dataset_info={},
                   resumed_at_epoch=None, workbench_version="0",
                   headline_metrics=("accuracy", "balanced_accuracy", "top_k_accuracy"))
STEP = StepEvent(epoch=2, step=5, steps=9, global_step=14, loss=0.5, grad_norm=1.5, lr=0.001,
                 samples_per_s=12345.0, eta_s=75.0, metric_name="accuracy", metric=0.75)
EPOCH = EpochEvent(epoch=2, epochs=4, train={"loss": 0.4, "accuracy": 0.8},
                   valid={"loss": 0.6, "accuracy": 0.7, "balanced_accuracy": 0.5}, lr=0.001,
                   samples_per_s=9000.0, seconds=1.25, best=True, partial=False)


def test_live_line_shows_epoch_loss_accuracy_rate_and_eta():
    out = io.StringIO()
    progress = ConsoleProgress(out, live=True)
    for event in (START, STEP, EPOCH):
        progress(event)
    text = out.getvalue()
    assert "names / gru on cpu" in text
    assert "epoch 2 step 5/9  loss 0.5000  accuracy 0.750  grad 1.50  12,345 samples/s  ETA 1:15" in text
    assert "epoch 2/4  loss 0.4000  accuracy 0.8000  valid loss 0.6000  valid accuracy 0.7000" in text
    assert "balanced 0.5000  9,000 samples/s  1.2s  *best" in text  # a headline metric of the task


def test_log_mode_prints_only_whole_lines():
    out = io.StringIO()
    progress = ConsoleProgress(out, live=False)
    for event in (START, STEP, EPOCH):
        progress(event)
    assert "\r" not in out.getvalue() and "step 5/9" not in out.getvalue()
    assert format_duration(3725) == "1:02:05"


def test_the_start_says_which_file_each_split_came_from():
    import dataclasses

    files = {"train": "corpus/train.csv", "valid": "corpus/dev.csv", "test": "held out of train"}
    out = io.StringIO()
    ConsoleProgress(out, live=False)(dataclasses.replace(START, dataset_info={"files": files}))
    assert "data: train corpus/train.csv, valid corpus/dev.csv, test held out of train\n" in out.getvalue()
    quiet = io.StringIO()
    ConsoleProgress(quiet, live=False)(START)
    assert "data:" not in quiet.getvalue()
