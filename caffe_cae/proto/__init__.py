"""Python bindings generated from ``proto/caffe.proto`` (our own Caffe-compatible schema).

Regenerate after editing the schema with ``python -m caffe_cae.proto.regenerate``;
``tests/proto/test_bindings.py`` fails while the committed module is stale.
"""
from caffe_cae.proto import caffe_pb2

__all__ = ["caffe_pb2"]
