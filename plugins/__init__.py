"""workbench's built-in plugins, installed as the ``workbench_plugins`` package.

The spec modules here are registered in ``pyproject.toml`` under the ``workbench.plugins``
entry-point group, exactly like a third-party plugin, and every module imports only the public
plugin API, as a third-party plugin must: ``workbench.api``, plus ``workbench.nn`` in the model
modules (tests/test_plugin_api.py checks it).
"""
