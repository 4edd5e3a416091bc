"""The papers' experiments: MNIST as HDF5, encoding, the classification/sparsity/compression
measures of Turchenko et al. (2019, Table 4, Sec. 5.1), figures, and the whole reproduce pipeline.

Modules: :mod:`.mnist` (data), :mod:`.encode` (run a trained net, save a blob),
:mod:`.evaluate` (LDA / MLP 10-fold per-class error, sparsity, compression), :mod:`.protocol` and
:mod:`.patternnet` (the paper's Matlab classification protocol next to the sklearn variant),
:mod:`.figures` (PNG plots), :mod:`.report` (report.md), :mod:`.paper_results` (Table 4),
:mod:`.run` (one run's folder and stages), :mod:`.sweep` (where the runs compute: here, local
worker processes, Dask), :mod:`.progress` (one display for all runs), :mod:`.provenance`
(version, machine, threads), :mod:`.reproduce` (data -> runs -> report).
"""
