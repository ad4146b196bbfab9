"""workbench's built-in plugins, installed as the ``workbench_plugins`` package.

Each module here is registered in ``pyproject.toml`` under the ``workbench.plugins`` entry-point
group, exactly like a third-party plugin, and imports only ``workbench.api`` at module level.
"""
