"""``workbench`` and ``python -m workbench``: the terminal app with no arguments, else the CLI.

With no arguments the app starts straight away: building the command-line parser (every command and
the environment table) and importing the headless commands took about 5 ms of CPU before the first
frame and did nothing for it (issue 12). Anything else goes to :func:`workbench.cli.main`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments:
        return open_app()
    from workbench.cli import main as cli_main

    return cli_main(arguments)


def open_app() -> int:
    """``workbench`` with no arguments; errors end as the CLI's do (one line, exit status 2)."""
    from workbench.errors import WorkbenchError

    try:
        try:
            from workbench.tui.app import run_app
        except ImportError:
            raise WorkbenchError("the terminal app is not available in this build; use the headless commands") from None
        return run_app()
    except WorkbenchError as exc:
        from workbench.terminal import printable

        sys.stderr.write(f"workbench: error: {printable(exc, layout=False)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("workbench: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
