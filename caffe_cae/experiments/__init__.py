"""The papers' experiments: MNIST as HDF5, encoding, the classification/sparsity/compression
measures of Turchenko et al. (2019, Table 4, Sec. 5.1), figures, and the whole reproduce pipeline.

Modules: :mod:`.mnist` (data), :mod:`.encode` (run a trained net, save a blob),
:mod:`.evaluate` (LDA / MLP 10-fold per-class error), :mod:`.sparsity` (sparsity, compression),
:mod:`.figures` (PNG plots), :mod:`.report` (report.md), :mod:`.paper_results` (Table 4),
:mod:`.reproduce` (data -> gen -> train -> encode -> evaluate -> figures -> report).
"""
