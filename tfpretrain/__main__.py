"""``python -m tfpretrain`` runs the command-line interface."""

from tfpretrain.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
