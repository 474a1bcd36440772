"""Benchmark scoring for evaluation runs (tools/eval.py): each published benchmark scored by its
own definition, from its rows and a model's responses (`ifeval`: IFEval's strict and loose
prompt- and instruction-level accuracy)."""
