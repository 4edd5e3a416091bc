"""The dataflow of a built net, computed once: which value of which blob each layer reads and
writes, which blobs share memory, and which layer pairs may be fused.

Caffe's blobs are memory, not values: an in-place layer (top == bottom) overwrites its bottom,
and the tops of Split, Reshape, Flatten and one-part Concat/Slice are views of their bottom's
memory.  Three consumers need the same answers:

* the Net (:mod:`caffe_cae.net`): a layer that keeps values derived from a bottom for its
  backward must recompute them where a later layer overwrites that memory
  (:meth:`Dataflow.bottom_overwritten_later`); a top-left Unpooling whose top only a
  Deconvolution reads lets that Deconvolution skip the zeros (:attr:`Dataflow.sparse_pairs`);
* the ONNX exporter (:mod:`caffe_cae.onnx.export`): values are immutable in ONNX, so each write
  is a new :class:`Version`; a read of memory that an in-place layer overwrote through another
  view cannot be exported (:meth:`Dataflow.stale_view_reads`);
* ``params`` (:mod:`caffe_cae.params`): which layer computed a blob's units
  (:meth:`Dataflow.first_writer`).

Blob ids are those of :class:`~caffe_cae.netgraph.graph.NetGraph` (an in-place top keeps its
bottom's id, as in Caffe).  The layers' own declarations decide: ``Layer.shares_memory``,
``Layer.sparse_top_stride``, ``Layer.accepts_sparse_bottom``,
``Layer.identity_at_inference``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from caffe_cae.netgraph.graph import NetGraph


class Version(NamedTuple):
    """The value that top ``top`` of layer ``layer`` wrote (indices into the graph)."""

    layer: int
    top: int


@dataclass(frozen=True)
class InPlaceWrite:
    """Layer ``layer`` overwrote blob ``blob`` (a blob id) in place."""

    layer: int
    blob: int


@dataclass(frozen=True)
class StaleViewRead:
    """Layer ``reader`` reads blob ``blob`` whose memory layer ``writer`` overwrote in place
    through the other view ``through`` after ``blob``'s value was written."""

    reader: int
    blob: int
    writer: int
    through: int


class Dataflow:
    """Versions, readers, views and in-place writes of a :class:`NetGraph` (see module doc)."""

    def __init__(self, graph: NetGraph):
        self.graph = graph
        n_blobs = len(graph.blob_names)
        #: per layer, per bottom: the version it reads (None: nothing wrote it, e.g. a fed blob)
        self.reads: list[list[Version | None]] = []
        #: blob id -> its last version
        self.final: dict[int, Version] = {}
        #: version -> layers that read it, in net order
        self.readers: dict[Version, list[int]] = {}
        #: blob id -> the blob id whose memory it is (itself unless a view)
        self.view_root: list[int] = list(range(n_blobs))
        #: memory root -> in-place writes into it, in net order
        self.in_place_writes: dict[int, list[InPlaceWrite]] = {}
        self._first_writer: dict[int, int] = {}
        latest: dict[int, Version] = {}
        for node in graph.layers:
            layer = node.layer
            reads = [latest.get(b) for b in node.bottom_ids]
            self.reads.append(reads)
            for version in reads:
                if version is not None:
                    self.readers.setdefault(version, []).append(node.index)
            for j, blob in enumerate(node.top_ids):
                latest[blob] = Version(node.index, j)
                self._first_writer.setdefault(blob, node.index)
                bottom = next((k for k, b in enumerate(node.bottom_ids) if b == blob), None)
                if bottom is not None:
                    self.in_place_writes.setdefault(self.view_root[blob], []).append(
                        InPlaceWrite(node.index, blob))
                else:
                    viewed = next((b for k, b in enumerate(node.bottom_ids) if layer.shares_memory(k, j)), None)
                    if viewed is not None:
                        self.view_root[blob] = self.view_root[viewed]
        self.final = dict(latest)
        self.sparse_pairs: dict[int, int] = self._find_sparse_pairs()

    # -- queries ---------------------------------------------------------------------------
    def first_writer(self, blob: int) -> int | None:
        """The layer that created blob ``blob`` (later in-place layers reuse it), or None."""
        return self._first_writer.get(blob)

    def bottom_overwritten_later(self, layer_index: int) -> bool:
        """Does a later layer overwrite (in place, through any view) the memory of one of this
        layer's bottoms?  Values derived from the bottom in forward are then stale in backward."""
        node = self.graph.layers[layer_index]
        return any(
            write.layer > layer_index
            for b in node.bottom_ids
            for write in self.in_place_writes.get(self.view_root[b], ())
        )

    def stale_view_reads(self, layers: set[int] | None = None,
                         identity_writes_count: bool = True) -> list[StaleViewRead]:
        """Reads of memory that an in-place layer overwrote through another view after the read
        value was written (Caffe then reads the overwritten values).  ``layers``: only these
        readers; ``identity_writes_count=False`` ignores writers that are the identity at
        inference (Dropout in TEST)."""
        found = []
        for node in self.graph.layers:
            if layers is not None and node.index not in layers:
                continue
            for blob, version in zip(node.bottom_ids, self.reads[node.index]):
                written_at = version.layer if version is not None else -1
                for write in self.in_place_writes.get(self.view_root[blob], ()):
                    if not written_at < write.layer < node.index or write.blob == blob:
                        continue
                    writer = self.graph.layers[write.layer].layer
                    if identity_writes_count or not writer.identity_at_inference:
                        found.append(StaleViewRead(node.index, blob, write.layer, write.blob))
        return found

    # -- fusable pairs ---------------------------------------------------------------------
    def _find_sparse_pairs(self) -> dict[int, int]:
        """Reader layer index -> source layer index, where the source's only top is zero off a
        stride grid after its forward (``sparse_top_stride``), that value has exactly one
        reader, which declares ``accepts_sparse_bottom`` and has no other bottom, and nothing
        else writes that blob's memory."""
        pairs = {}
        for node in self.graph.layers:
            if len(node.top_ids) != 1 or node.layer.sparse_top_stride() is None:
                continue
            blob = node.top_ids[0]
            if blob in node.bottom_ids:
                continue
            readers = self.readers.get(Version(node.index, 0), [])
            if len(readers) != 1 or self.final[blob] != Version(node.index, 0):
                continue
            if any(self.view_root[b] == self.view_root[blob] and b != blob
                   for b in range(len(self.view_root))):
                continue  # another view of the same memory could be read or written
            reader = self.graph.layers[readers[0]]
            if reader.layer.accepts_sparse_bottom and reader.bottom_ids == [blob]:
                pairs[reader.index] = node.index
        return pairs
