"""User command lines over the engine, run from the repository root as `python -m tools.NAME`."""
