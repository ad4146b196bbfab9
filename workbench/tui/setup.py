"""Set up a run: dataset, architecture, device and a form generated from the parameter schemas."""

from __future__ import annotations

from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from workbench import settings
from workbench.errors import ParamError, WorkbenchError
from workbench.tui.form_edits import FormEdits
from workbench.tui.guards import from_worker
from workbench.tui.widgets import ChoiceInput, NavBar, footer

if TYPE_CHECKING:  # configs, parameters and devices are imported once the plugins are loaded
    from workbench.config import RunConfig
    from workbench.devices import DeviceInfo
    from workbench.params import Param
    from workbench.tui.app import WorkbenchApp

DEFAULT_SETUP_FILE = "workbench-setup.toml"
#: Seconds the dataset and architecture lists must rest before the form is rebuilt for them.
FORM_DELAY = 0.5


def list_devices() -> list[DeviceInfo]:
    """This machine's devices, from a child process (see :func:`list_devices_in_child`)."""
    from workbench.devices import list_devices_in_child

    return list_devices_in_child()


def same_but_default(a: Param, b: Param) -> bool:
    """Two parameters a field can be shared by: they differ at most in their default."""
    return all(getattr(a, f.name) == getattr(b, f.name) for f in fields(a) if f.name != "default")


#: The device choice of "every GPU, one process each": this prefix and the number of GPUs.
ALL_GPUS = "cuda*"


class ParamValidator(Validator):
    """Checks a form field with the parameter's own ``parse`` (the same check ``--set`` gets)."""

    def __init__(self, param: Param) -> None:
        super().__init__()
        self.param = param

    def validate(self, value: str) -> ValidationResult:
        try:
            self.param.parse(value)
        except ParamError as exc:
            return self.failure(str(exc))
        return self.success()


class PathValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        if value.strip() and not Path(value.strip()).expanduser().exists():
            return self.failure(f"data dir: {value.strip()} does not exist")
        return self.success()


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SetupScreen(Screen[None]):
    """Pick what to train and with which hyperparameters; start it, or save the setup as TOML."""

    DEFAULT_CSS = """
    SetupScreen > Horizontal { height: 1fr; }
    SetupScreen #pickers { width: 34; height: 1fr; padding: 0 1 0 0; }
    SetupScreen #pickers OptionList { height: auto; max-height: 7; }
    SetupScreen #pickers #devices { max-height: 5; }
    SetupScreen #pickers Label { text-style: bold; }
    SetupScreen #right { height: 1fr; }
    SetupScreen #description { height: auto; max-height: 5; color: $text-muted; }
    SetupScreen #form { height: 1fr; border: round $primary; }
    SetupScreen .psec { height: auto; }
    SetupScreen .prow { height: 1; }
    SetupScreen .pname { width: 18; }
    SetupScreen .prow:focus-within .pname { text-style: bold reverse; }
    SetupScreen .pname.-edited { color: $warning; }
    SetupScreen .psection { text-style: bold underline; margin-top: 1; }
    SetupScreen .prow Input { width: 1fr; }
    SetupScreen #hint { height: auto; min-height: 2; max-height: 4; }
    SetupScreen #hint.-error { color: $error; text-style: bold; }
    SetupScreen #estimate { height: 1; color: $text-muted; display: none; }
    """

    BINDINGS = [
        Binding("ctrl+t,t", "train", "Train", id="setup.train"),
        Binding("ctrl+s", "save", "Save", id="setup.save"),
        Binding("ctrl+o", "load", "Load", id="setup.load"),
        Binding("ctrl+r", "reset", "Defaults", id="setup.reset"),
        Binding("escape", "datasets", "Datasets", id="setup.datasets"),
        Binding("ctrl+l", "lr_find", "Find lr", id="setup.lr_find"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.dataset: str | None = None
        self.arch: str | None = None
        self.device = "auto"
        #: Training processes (one per GPU, under torchrun): more than 1 only with several CUDA devices.
        self.processes = 1
        #: Values the user typed, per dataset (and architecture): see workbench/tui/form_edits.py.
        self.edits = FormEdits()
        self.params: dict[str, Param] = {}
        #: The dataset and architecture the form shows (the lists may be ahead of it), and their defaults.
        self._form_for: tuple[str, str] | None = None
        self._form_defaults: dict[str, Any] = {}
        self._building = False
        self._estimate_timer: Any = None
        #: The model-size line shows an earlier setup: the form was invalid when it was due.
        self._estimate_stale = False
        self._device_notes: list[str] = []
        self._form_timer: Any = None
        #: The parameters each form section was built for ("train" -> [Param, ...]).
        self._sections: dict[str, list[Param]] = {}
        #: The row (label and field) of each parameter shown, by namespace and name.
        self._rows: dict[str, dict[str, Horizontal]] = {}
        self._labels: dict[str, Label] = {}
        #: Values the form set itself, by key, until their Changed event is handled.
        self._placed: dict[str, str] = {}
        #: The number of edited fields the form's border says (-1: not said yet).
        self._edited_count = -1
        self._data_dir_shown: str | None = None

    @property
    def wb(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    @property
    def edited(self) -> dict[str, str]:
        """The fields of the form shown that differ from its dataset's defaults: key -> text (a copy)."""
        return self.edits.of(*self._form_for) if self._form_for else {}

    def compose(self) -> ComposeResult:
        yield NavBar("setup")
        with Horizontal():
            with Vertical(id="pickers"):
                yield Label("Dataset")
                yield OptionList(Option("loading plugins…", disabled=True), id="datasets")
                yield Label("Architecture")
                yield OptionList(id="archs")
                yield Label("Device")
                yield OptionList(Option("auto  (best available)", id="auto"), Option("detecting devices…", disabled=True),
                                 id="devices")
            with Vertical(id="right"):
                yield Static(id="description")
                yield VerticalScroll(id="form")
                yield Static("", id="hint")
                yield Static("", id="estimate")
        yield footer()

    def on_mount(self) -> None:
        self.query_one("#devices", OptionList).highlighted = 0
        self.query_one("#datasets", OptionList).focus()
        # plugins given to the app ready-made (tests, embedding): the form is part of the first frame
        self.wb.when_plugins_loaded(partial(self._fill_datasets, "next" if self.wb.plugins_ready else "after_refresh"))
        self.call_after_refresh(self._detect_devices)

    def _fill_datasets(self, form: str = "after_refresh") -> None:
        """The dataset list, once the plugins are loaded (after the first paint); its form is built
        ``form`` (see :meth:`_select_dataset`)."""
        registry = self.wb.registry
        datasets = self.query_one("#datasets", OptionList)
        datasets.clear_options()
        datasets.add_options([Option(f"{name}  ({spec.task})", id=name)
                              for name, spec in sorted(registry.datasets.items())])
        if datasets.option_count:
            ids = [datasets.get_option_at_index(i).id for i in range(datasets.option_count)]
            wanted = settings.current().default_dataset
            datasets.highlighted = ids.index(wanted) if wanted in ids else 0
            # the form (a hundred widgets) is built just after the list is drawn
            self._select_dataset(datasets.get_option_at_index(datasets.highlighted).id, form=form)
        else:
            self.query_one("#description", Static).update(
                "No datasets: no plugin provides one (see `workbench plugins`).")

    # -- devices (imports torch: off the UI thread) ----------------------------------------
    def _detect_devices(self) -> None:
        self.detect_devices()

    @work(thread=True, exclusive=True, group="devices")
    def detect_devices(self) -> None:
        try:
            devices = list_devices()
        except Exception as exc:  # a broken torch install must not take the app down
            self.app.call_from_thread(self.app.notify, f"could not list devices: {exc}", severity="error")
            return
        self.app.call_from_thread(self._show_devices, devices)

    @from_worker
    def _show_devices(self, devices: list[Any]) -> None:
        options = [Option("auto  (best available)", id="auto")]
        for d in devices:
            memory = f", {d.memory_bytes / 2**30:.0f} GiB" if d.memory_bytes else ""
            if d.available:
                options.append(Option(f"{d.name}  {d.description}{memory}", id=d.name))
            else:
                # the reason is in the help line while the list has focus: it never fits 34 columns
                options.append(Option(f"{d.name}  (unavailable)", id=d.name, disabled=True))
        self._device_notes = [f"{d.name} unavailable: {d.reason}" for d in devices if not d.available]
        gpus = sum(1 for d in devices if d.available and d.name.startswith("cuda"))
        if gpus >= 2:  # one process per GPU through torchrun (see docs/engine.md, "Distributed runs")
            options.append(Option(f"cuda x{gpus}  all GPUs (torchrun)",
                                  id=f"{ALL_GPUS}{gpus}"))
        widget = self.query_one("#devices", OptionList)
        widget.clear_options()
        widget.add_options(options)
        ids = [o.id for o in options]
        chosen = f"{ALL_GPUS}{self.processes}" if self.processes > 1 else self.device
        widget.highlighted = ids.index(chosen) if chosen in ids else 0

    # -- pickers ---------------------------------------------------------------------------
    @on(OptionList.OptionHighlighted, "#datasets")
    def _dataset_moved(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id != self.dataset:
            # the description and architectures follow at once; the form once the list rests
            self._select_dataset(event.option.id, form="soon")

    @on(OptionList.OptionHighlighted, "#archs")
    def _arch_moved(self, event: OptionList.OptionHighlighted) -> None:
        # a highlight from the list of a dataset passed over a moment ago arrives late: ignore it
        stale = event.option is not event.option_list.highlighted_option
        if stale or self._building or event.option.id == self.arch or event.option.id not in self._fitting_archs():
            return
        self.arch = event.option.id
        if self.dataset is not None:
            self.edits.pick_arch(self.dataset, event.option.id)  # it comes back with the dataset
        self._rebuild_form()

    def _fitting_archs(self) -> list[str]:
        if not self.dataset:
            return []
        registry = self.wb.registry
        return [a.name for a in registry.architectures_for(registry.dataset(self.dataset).task)]

    def _form_soon(self) -> None:
        """Rebuild the form once the pickers rest for FORM_DELAY (each rebuild mounts ~100 widgets)."""
        self._describe()
        if self._form_timer is not None:
            self._form_timer.stop()
        self._form_timer = self.set_timer(FORM_DELAY, self._rebuild_form)

    def _form_now(self) -> bool:
        """Build a form that is waiting for its timer; True when one was waiting."""
        if self._form_timer is None:
            return False
        self._rebuild_form()
        return True

    @on(OptionList.OptionHighlighted, "#devices")
    def _device_moved(self, event: OptionList.OptionHighlighted) -> None:
        choice = event.option.id
        if choice and choice.startswith(ALL_GPUS):
            self.device, self.processes = "cuda", int(choice[len(ALL_GPUS):])
        elif choice:
            self.device, self.processes = choice, 1

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        """Enter on a list moves on to the next one, then into the form."""
        order = ["datasets", "archs", "devices"]
        current = event.option_list.id
        self._form_now()
        if current in order[:-1]:
            self.query_one(f"#{order[order.index(current) + 1]}", OptionList).focus()
        else:
            inputs = self.query("#form Input")
            if inputs:
                inputs.first().focus()

    def _select_dataset(self, name: str | None, arch: str | None = None, form: str = "now") -> None:
        """Show dataset ``name``; its form is built ``form``: "now", "next" (the next turn of the event
        loop), "after_refresh" (after the next frame) or "soon" (once the lists rest for FORM_DELAY)."""
        registry = self.wb.registry
        if name is None:
            return
        self.dataset = name
        spec = registry.dataset(name)
        fitting = registry.architectures_for(spec.task)
        archs = self.query_one("#archs", OptionList)
        self._building = True
        names = [a.name for a in fitting]
        if [archs.get_option_at_index(i).id for i in range(archs.option_count)] != names:
            # rebuilt only when the task changes: the same list again would cost a layout of the screen
            archs.clear_options()
            archs.add_options([Option(f"{a.name}", id=a.name) for a in fitting])
        # each dataset starts from its own default architecture, or the one picked there before
        wanted = arch or self.edits.arch_for(name) or spec.default_arch
        self.arch = wanted if wanted in names else (names[0] if names else None)
        if self.arch is not None:
            archs.highlighted = names.index(self.arch)
        self._building = False
        if form == "soon":
            self._form_soon()
        elif form == "after_refresh":
            self._describe()
            self.call_after_refresh(self._rebuild_form_unless_closing)
        elif form == "next":
            self._describe()
            self.call_later(self._rebuild_form_unless_closing)
        else:
            self._rebuild_form()

    def _describe(self) -> None:
        registry = self.wb.registry
        text = ""
        if self.dataset:
            spec = registry.dataset(self.dataset)
            text = f"[b]{escape(spec.name)}[/b] ({spec.task}): {escape(spec.description)}"
            if self.arch:
                text += f"\n[b]{escape(self.arch)}[/b]: {escape(registry.architecture(self.arch).description)}"
            else:
                text += f"\n[b]no installed architecture does {spec.task}[/b] (see `workbench plugins`)"
        description = self.query_one("#description", Static)
        rows = description.size.height
        description.update(text, layout=False)
        # a layout of the whole screen (~110 widgets) only when the text needs another number of rows
        if not rows or self._rows_for(description) != rows:
            description.refresh(layout=True)

    @staticmethod
    def _rows_for(widget: Static) -> int:
        """The rows ``widget`` takes at its width (its CSS caps it at max-height)."""
        height = widget.get_content_height(widget.size, widget.app.size, widget.size.width)
        cap = widget.styles.max_height
        return min(height, int(cap.value)) if cap is not None and cap.is_cells else height

    # -- the form --------------------------------------------------------------------------
    def _defaults(self) -> RunConfig | None:
        if not self.dataset or not self.arch:
            return None
        from workbench.config import resolve_config

        try:
            return resolve_config(self.wb.registry, self.dataset, self.arch, "auto")
        except WorkbenchError as exc:
            self.app.notify(str(exc), severity="error", title="setup")
            return None

    @from_worker  # runs after the next frame, by which time the app may be quitting
    def _rebuild_form_unless_closing(self) -> None:
        self._rebuild_form()

    def _rebuild_form(self) -> None:
        """Show the form of the current dataset and architecture, with its edits marked.

        The form has a section per namespace, and a row per parameter: a row whose parameter is the same
        as before (all the training ones, across datasets; most model ones, across architectures) gets
        its value updated in place and only the others are mounted: mounting the ~100 widgets of a
        whole form took seconds on a busy machine, and a key pressed meanwhile waited. Marks are set
        here, on the rows whose mark changes only (a press in the lists never restyles a row)."""
        if self._form_timer is not None:
            self._form_timer.stop()
            self._form_timer = None
        self._describe()
        form = self.query_one("#form", VerticalScroll)
        defaults = self._defaults()
        dataset, arch = self.dataset, self.arch
        if defaults is None or dataset is None or arch is None:
            form.remove_children()
            self._sections, self._rows, self._labels = {}, {}, {}
            self.params, self._form_for, self._form_defaults = {}, None, {}
            self._show_edited_count()
            return
        from workbench.config import param_groups

        if self._form_for != (dataset, arch):
            self._flush_edits()
        groups = param_groups(self.wb.registry, dataset, arch)
        self._show_data_dir(form)
        self._form_for = (dataset, arch)
        edits = self.edits.of(dataset, arch)
        self.params, self._form_defaults = {}, {}
        for namespace in ("train", "data", "model"):
            params = list(groups[namespace].params)
            values = getattr(defaults, namespace)
            keys = {p.name: f"{namespace}.{p.name}" for p in params}
            self._form_defaults.update({keys[p.name]: values.get(p.name, p.default) for p in params})
            shown = {p.name: edits.get(keys[p.name], show_value(values.get(p.name, p.default))) for p in params}
            edited = {p.name for p in params if keys[p.name] in edits}
            self.params.update({keys[p.name]: p for p in params})
            self._update_section(form.query_one(f"#sec-{namespace}", Vertical), namespace, params, shown, edited)
        self._show_edited_count()

    def _show_data_dir(self, form: VerticalScroll) -> None:
        """The run section: the data folder, the same for every dataset."""
        data_dir = self.edits.data_dir if self.edits.data_dir is not None else str(settings.current().data_dir or "")
        shown, self._data_dir_shown = self._data_dir_shown, data_dir
        if form.query("#sec-run"):
            if data_dir != shown:  # a loaded setup named one (what is typed there stays, Changed handled or not)
                self._set_in_place(form.query_one("#p-run-data_dir", Input), "run.data_dir", data_dir)
            return
        form.mount_all([Vertical(id=f"sec-{ns}", classes="psec") for ns in ("run", "train", "data", "model")])
        form.query_one("#sec-run", Vertical).mount_all([
            Label("run", classes="psection"),
            Horizontal(Label("data_dir", classes="pname"),
                       Input(data_dir, id="p-run-data_dir", compact=True, validators=[PathValidator()],
                             placeholder="empty: download into the cache"), classes="prow")])

    def _update_section(self, section: Vertical, namespace: str, params: list[Param], shown: dict[str, str],
                        edited: set[str]) -> None:
        """Make ``section`` show ``params`` (``edited``: the names marked as edited): a row whose parameter
        is unchanged but for its default keeps its widgets (the value and mark are set in place); the
        others are removed or mounted."""
        before = {p.name: p for p in self._sections.get(namespace, [])}
        self._sections[namespace] = params
        section.display = bool(params)
        if not params:
            section.remove_children()
            self._rows[namespace] = {}
            return
        kept = {p.name for p in params if p.name in before and same_but_default(before[p.name], p)}
        if not kept:  # nothing to keep: one mount for the lot
            section.remove_children()
            rows = {p.name: self._field_row(namespace, p, shown[p.name], p.name in edited) for p in params}
            self._labels[namespace] = Label(namespace, classes="psection")
            section.mount_all([self._labels[namespace], *rows.values()])
            self._rows[namespace] = rows
            return
        rows = self._rows.setdefault(namespace, {})
        for name in before:
            if name not in kept and name in rows:
                rows.pop(name).remove()  # rows have no id: a new one may be mounted before this is gone
        previous: Widget = self._labels[namespace]
        for param in params:
            if param.name in kept and param.name in rows:
                previous = rows[param.name]
                self._set_in_place(previous.query_one(Input), f"{namespace}.{param.name}", shown[param.name])
                self._mark_row(previous, param.name, param.name in edited)
            else:
                rows[param.name] = self._field_row(namespace, param, shown[param.name], param.name in edited)
                section.mount(rows[param.name], after=previous)
                previous = rows[param.name]

    def _set_in_place(self, field: Input, key: str, value: str) -> None:
        """Show another dataset's value; its Changed event, handled later, is not a user's edit."""
        if field.value != value:
            self._placed[key] = value
            field.value = value

    @staticmethod
    def _mark_row(row: Widget, name: str, edited: bool) -> None:
        """Mark a row's label as edited (a leading ``*`` and the ``-edited`` class) or not; a row whose
        mark does not change is left alone (changing a class restyles the widget)."""
        label = row.children[0] if row.children else None
        if isinstance(label, Label) and label.has_class("-edited") != edited:
            label.set_class(edited, "-edited")
            label.update(f"*{name}" if edited else name, layout=False)  # the label's size is fixed

    def _show_edited_count(self) -> None:
        """How many fields differ from this dataset's defaults, in the form's border."""
        count = len(self.edited)
        if count == self._edited_count:
            return
        self._edited_count = count
        keys = getattr(self.app, "_keymap", {}).get("setup.reset", "ctrl+r").split(",")[0]
        self.query_one("#form", VerticalScroll).border_title = f"{count} edited; {keys} resets" if count else None

    @staticmethod
    def _field_row(namespace: str, param: Param, value: str, edited: bool = False) -> Horizontal:
        validator = ParamValidator(param)
        field_args: dict[str, Any] = {
            "id": f"p-{namespace}-{param.name}", "compact": True, "validators": [validator],
            "valid_empty": False, "tooltip": param.help,
            # the class its first validation gives it: Textual restyles a field whose class changes,
            # mounted or not, which was two thirds of building a row (issue 12)
            "classes": "-valid" if validator.validate(value).is_valid else "-invalid",
        }
        choices = ([show_value(c) for c in param.choices] if param.choices is not None
                   else ["true", "false"] if param.type is bool else None)
        field = ChoiceInput(value, choices, **field_args) if choices else Input(value, **field_args)
        # marked when built (a class given at construction costs no restyle)
        label = Label(f"*{param.name}" if edited else param.name, classes="pname -edited" if edited else "pname")
        return Horizontal(label, field, classes="prow")

    def _key_of(self, widget_id: str | None) -> str | None:
        if not widget_id or not widget_id.startswith("p-"):
            return None
        _, namespace, name = widget_id.split("-", 2)
        return f"{namespace}.{name}"

    @on(Input.Changed, "#form Input")
    def _changed(self, event: Input.Changed) -> None:
        key = self._key_of(event.input.id)
        if key is None:
            return
        if self._placed.get(key) == event.value:  # set by the form for another dataset: not an edit
            del self._placed[key]
        elif event.value == event.input.value and event.input.is_attached:  # not superseded since
            self._remember(key, event.value)
        if self.app.focused is event.input:
            self._show_hint(event.input, event.validation_result)
        if key.startswith("model.") or key in ("train.optimizer", "train.batch_size") or self._estimate_stale:
            self._estimate_soon()

    def _remember(self, key: str, value: str) -> None:
        """Keep what was typed into ``key`` for the dataset (and architecture) the form shows, and mark
        or unmark that one row: a value equal to the default is no edit."""
        if key == "run.data_dir":  # where the data is, for every dataset: not an edit of this one
            self.edits.data_dir = None if value == str(settings.current().data_dir or "") else value
            return
        if self._form_for is None or key not in self.params:
            return
        edited = self._store(key, value)
        namespace, name = key.split(".", 1)
        row = self._rows.get(namespace, {}).get(name)
        if row is not None:
            self._mark_row(row, name, edited)
        self._show_edited_count()

    def _store(self, key: str, value: str) -> bool:
        """Keep ``value`` of ``key`` as an edit of the form shown (none if it is the default); True: an edit."""
        assert self._form_for is not None
        edited = not self._is_default(key, value)
        self.edits.put(*self._form_for, key, value if edited else None)
        return edited

    def _flush_edits(self) -> None:
        """Keep what the form shows as the edits of the dataset and architecture it was built for, before
        it shows others: a value whose Changed event is not handled yet (typed just before the switch)
        is kept all the same."""
        if self._form_for is None:
            return
        for namespace, rows in self._rows.items():
            for name, row in rows.items():
                field = row.children[1] if len(row.children) > 1 else None
                if isinstance(field, Input) and f"{namespace}.{name}" in self.params:
                    self._store(f"{namespace}.{name}", field.value)

    def _is_default(self, key: str, value: str) -> bool:
        """Whether ``value`` means the form's default for ``key`` ("0.0030" is "0.003")."""
        try:
            return bool(self.params[key].parse(value) == self._form_defaults.get(key))
        except ParamError:
            return False

    # -- the size of the model (a meta-device build in torch: off the UI thread) -----------
    def _estimate_soon(self) -> None:
        """Estimate once typing pauses (each change would otherwise build a model)."""
        if self._estimate_timer is not None:
            self._estimate_timer.stop()
        self._estimate_timer = self.set_timer(0.4, self._start_estimate)

    def _start_estimate(self) -> None:
        try:
            config = self.build_config(focus_errors=False)
        except WorkbenchError:
            # an invalid field anywhere: estimate again once a field changes (fixing that one need not
            # be a model field)
            self._estimate_stale = True
            return
        self._estimate_stale = False
        self.estimate(config)

    @work(thread=True, exclusive=True, group="estimate")
    def estimate(self, config: RunConfig) -> None:
        from workbench.engine import estimate_setup
        from workbench.resources import format_bytes

        found = estimate_setup(config, self.wb.registry)
        if found is None:
            text = ""
        else:
            parameters, weights = found
            # short enough for the form's column at 80x24; docs/tui.md says what is counted
            text = f"model: {parameters:,} parameters, ~{format_bytes(weights)}/step"
        self.app.call_from_thread(self._show_estimate, text)

    @from_worker
    def _show_estimate(self, text: str) -> None:
        widget = self.query_one("#estimate", Static)
        widget.update(Text(text), layout=False)  # one row whatever the text: no layout of the screen
        if widget.display != bool(text):
            widget.display = bool(text)

    @on(Input.Submitted, "#form Input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    def on_descendant_focus(self, event: Any) -> None:
        widget = event.widget
        if isinstance(widget, Input) and widget.id and widget.id.startswith("p-"):
            self._show_hint(widget, widget.validate(widget.value))
        elif isinstance(widget, OptionList):
            hint = self.query_one("#hint", Static)
            hint.remove_class("-error")
            hint.update(Text.assemble(*self._list_hint(widget.id or "")))

    def _list_hint(self, list_id: str) -> tuple[tuple[str, str] | str, ...]:
        """The help line for a list: the help line always describes what has focus."""
        if list_id == "datasets":
            return ("Dataset", "bold"), (": up/down picks one (its form and defaults follow), enter: next list, "
                                         "tab: on to the form; escape comes back here from any field")
        if list_id == "archs":
            return ("Architecture", "bold"), ": the architectures that fit this dataset's task; enter: next list"
        notes = "; ".join(self._device_notes)
        return ("Device", "bold"), ": auto picks the best available" + (f"; {notes}" if notes else "")

    def action_datasets(self) -> None:
        self.query_one("#datasets", OptionList).focus()

    def _show_hint(self, widget: Input, result: ValidationResult | None) -> None:
        hint = self.query_one("#hint", Static)
        key = self._key_of(widget.id)
        if result is not None and not result.is_valid:
            hint.update(Text(result.failure_descriptions[0] if result.failure_descriptions else "invalid"))
            hint.add_class("-error")
            return
        hint.remove_class("-error")
        param = self.params.get(key or "")
        if param is not None:
            stepping = "; up/down steps through them" if isinstance(widget, ChoiceInput) else ""
            # what may be typed first: at 80x24 a long help is cut after four lines
            hint.update(Text.assemble((f"{key}", "bold"), f" ({param.describe_allowed()}{stepping}; "
                                      f"{self._default_note(key or '', param)}): {param.help}"))
        elif key == "run.data_dir":
            hint.update("[b]data_dir[/b]: folder or file with the dataset; empty downloads it into the cache")

    def _default_note(self, key: str, param: Param) -> str:
        """The default that applies here: "default 0.003 for names; 0.001 otherwise" where the dataset
        recommends its own."""
        default = self._form_defaults.get(key, param.default)
        if default == param.default or self._form_for is None:
            return f"default {show_value(default)}"
        return f"default {show_value(default)} for {self._form_for[0]}; {show_value(param.default)} otherwise"

    def build_config(self, focus_errors: bool = True) -> RunConfig:
        """The validated setup, or a WorkbenchError naming the first bad field (which gets focus)."""
        if not self.dataset:
            raise WorkbenchError("choose a dataset first")
        if not self.arch:
            raise WorkbenchError(f"no installed architecture fits dataset {self.dataset!r}")
        values: dict[str, dict[str, str]] = {"train": {}, "data": {}, "model": {}}
        data_dir = ""
        for widget in self.query("#form Input").results(Input):
            key = self._key_of(widget.id)
            if key is None:
                continue
            result = widget.validate(widget.value)
            if result is not None and not result.is_valid:
                if focus_errors:
                    widget.focus()
                raise ParamError(result.failure_descriptions[0])
            namespace, name = key.split(".", 1)
            if namespace == "run":
                data_dir = widget.value.strip()
            else:
                values[namespace][name] = widget.value
        from workbench.config import plan_run

        return plan_run(self.wb.registry, dataset=self.dataset, arch=self.arch, device=self.device, values=values,
                        data_dir=str(Path(data_dir).expanduser().resolve()) if data_dir else None).config

    # -- actions ---------------------------------------------------------------------------
    def action_train(self) -> None:
        if self._form_now():  # the form still showed the dataset passed over: train once it is rebuilt
            self.call_after_refresh(self.action_train)
            return
        try:
            config = self.build_config()
        except WorkbenchError as exc:
            self.app.notify(str(exc), severity="error", title="cannot start")
            return
        self.wb.start_run(config, processes=self.processes)

    def action_lr_find(self) -> None:
        """Sweep the learning rate for this setup (a dialog, off the UI thread); enter there puts the
        suggestion into the lr field."""
        try:
            config = self.build_config()
        except WorkbenchError as exc:
            self.app.notify(str(exc), severity="error", title="cannot find a learning rate")
            return
        from workbench.lr_find import format_lr
        from workbench.tui.lr_find_screen import LRFindScreen

        def use(lr: float | None) -> None:
            if lr is not None and self.query("#p-train-lr"):
                self.query_one("#p-train-lr", Input).value = format_lr(lr)
                self.app.notify(f"lr set to {format_lr(lr)} (the finder's suggestion)")

        self.app.push_screen(LRFindScreen(config, self.wb.registry), use)

    def action_save(self) -> None:
        if self._form_now():
            self.call_after_refresh(self.action_save)
            return
        try:
            config = self.build_config()
        except WorkbenchError as exc:
            self.app.notify(str(exc), severity="error", title="cannot save")
            return
        from workbench.tui.modals import PathScreen

        def save(path: str | None) -> None:
            if not path:
                return
            try:
                Path(path).expanduser().write_text(config.to_toml(), encoding="utf-8")
            except OSError as exc:
                self.app.notify(f"could not write {path}: {exc.strerror}", severity="error")
                return
            self.app.notify(f"saved {path}; train it headless with: workbench train --config {path}")

        self.app.push_screen(PathScreen("Save the setup as TOML", DEFAULT_SETUP_FILE), save)

    def action_load(self) -> None:
        from workbench.tui.modals import PathScreen

        def load(path: str | None) -> None:
            if path:
                self.load_file(Path(path).expanduser())

        self.app.push_screen(PathScreen("Load a setup (TOML)", DEFAULT_SETUP_FILE), load)

    def load_file(self, path: Path) -> bool:
        from workbench.config import plan_run

        try:
            # the whole file is validated (as `workbench train --config` does) before the form changes
            config = plan_run(self.wb.registry, config_file=path).config
        except WorkbenchError as exc:
            self.app.notify(str(exc), severity="error", title="cannot load")
            return False
        self.show_config(config)
        self.app.notify(f"loaded {path}")
        return True

    def show_config(self, config: RunConfig) -> None:
        """Show a validated setup (a loaded file, a run's config): its dataset with its architecture, its
        values as the edits of that dataset; what the form showed before is kept for its own dataset."""
        self._flush_edits()  # what the form shows is kept before the file's values replace its dataset's
        self._take_edits(config)
        self._form_for = None  # so the form is not kept again over them
        self.device, self.processes = config.device, 1
        datasets = self.query_one("#datasets", OptionList)
        ids = [datasets.get_option_at_index(i).id for i in range(datasets.option_count)]
        self.dataset = None
        datasets.highlighted = ids.index(config.dataset)
        self._select_dataset(config.dataset, arch=config.arch)
        devices = self.query_one("#devices", OptionList)
        device_ids = [devices.get_option_at_index(i).id for i in range(devices.option_count)]
        if config.device in device_ids:
            devices.highlighted = device_ids.index(config.device)

    def _take_edits(self, config: RunConfig) -> None:
        """A loaded setup becomes the edits of the dataset it names: the values that differ from that
        dataset's defaults (with its architecture); a data folder it names replaces the one typed."""
        from workbench.config import resolve_config

        defaults = resolve_config(self.wb.registry, config.dataset, config.arch, "auto")
        typed = {f"{ns}.{name}": show_value(value) for ns in ("train", "data", "model")
                 for name, value in getattr(config, ns).items() if value != getattr(defaults, ns).get(name)}
        self.edits.replace(config.dataset, config.arch, typed)
        if config.data_dir:
            self.edits.data_dir = config.data_dir

    def action_reset(self) -> None:
        """Forget the edits of the dataset shown (with every architecture); the others' and the data
        folder stay."""
        if self.dataset is None:
            return
        self.edits.clear(self.dataset)
        self._rebuild_form()
        self.app.notify(f"{self.dataset}: its defaults restored (other datasets' values and data_dir kept)")
