"""Command-line overrides are recognized anywhere on the line, and only they."""

from engine.cli import split_overrides


def test_overrides_anywhere_flags_and_positionals_kept_in_order():
    argv = ["step", "r.yaml", "--steps", "10", "data.max_seq_len=8", "--trace=/tmp/x=y",
            "parallel.tp=2", "out=dir/a=b"]
    rest, overrides = split_overrides(argv)
    assert rest == ["step", "r.yaml", "--steps", "10", "--trace=/tmp/x=y"]
    assert overrides == ["data.max_seq_len=8", "parallel.tp=2", "out=dir/a=b"]


def test_paths_with_equals_signs_are_not_keys():
    assert split_overrides(["runs/a=b/recipe.yaml"]) == (["runs/a=b/recipe.yaml"], [])
    assert split_overrides(["=5", "a..b=1"]) == (["=5", "a..b=1"], [])
