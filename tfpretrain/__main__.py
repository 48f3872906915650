"""``python -m tfpretrain``: the ``tfpretrain`` command, as the package installs it (its console script).

The command line lives with the jobs it runs (`tfpretrain.pipelines.cli`); the
library itself never imports them, so this module finds the command through
the package's entry point rather than an import.
"""

from importlib.metadata import entry_points

if __name__ == "__main__":
    (command,) = entry_points(group="console_scripts", name="tfpretrain")
    raise SystemExit(command.load()())
