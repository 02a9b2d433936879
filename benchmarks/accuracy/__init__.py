"""Accuracy studies (issue 14): our models and the peers' own models, trained alike.

``geo-neuralop study NAME`` (or ``python -m benchmarks.accuracy NAME``) runs a study;
see :mod:`benchmarks.accuracy.cli`. Modules: :mod:`.spec` (what a study is),
:mod:`.studies` (the studies), :mod:`.peers` (neuraloperator / torch-harmonics
adapters), :mod:`.datasets`, :mod:`.runner` (runs, fingerprints, budgets),
:mod:`.forces` (drag and lift), :mod:`.report` (tables, plots, README section).
"""
