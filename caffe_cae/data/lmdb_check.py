"""Checks of an LMDB data file before the ``lmdb`` library maps it.

LMDB trusts its file: it maps it and follows page numbers and sizes as they are written, so a
truncated copy or a flipped byte makes it read past the end of the file, which kills the process
(SIGBUS) instead of raising an error.  :func:`check_lmdb_file` reads the meta pages and walks the
main database's tree (branch and leaf pages only, never the values), checking that every page
and every value it names lies inside the file.  Layout of LMDB 0.9 (64-bit, little-endian): a
16-byte page header (pgno, pad, flags, lower, upper), nodes of an 8-byte header (lo, hi, flags,
ksize) then the key and the data (an 8-byte overflow page number for a big value).
"""
from __future__ import annotations

import mmap
import os
import struct

from caffe_cae.errors import CaffeCaeError

META_MAGIC = 0xBEEFC0DE
PAGE_HEADER = 16
NODE_HEADER = 8
MAX_KEY = 511
P_INVALID = 2**64 - 1
P_BRANCH, P_LEAF, P_LEAF2 = 0x01, 0x02, 0x20
F_BIGDATA = 0x01
# offsets in a meta page: the page size (the free DB's md_pad), the main DB's root, the last
# page, the transaction id
_PSIZE_AT, _ROOT_AT, _LAST_PG_AT, _TXNID_AT, _MAGIC_AT = 40, 128, 136, 144, 16


def check_lmdb_file(path: str, error=CaffeCaeError) -> None:
    """Raise ``error`` (naming ``path``) unless the LMDB's pages and values lie inside its file.

    A missing file or one without a valid meta page is left to LMDB, which refuses it itself
    (``MDB_INVALID``) before it maps anything."""
    data = os.path.join(path, "data.mdb") if os.path.isdir(path) else path
    try:
        size = os.path.getsize(data)
        if size < _TXNID_AT + 8:
            return
        with open(data, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as pages:
            _check(pages, size, path, data, error)
    except OSError:
        return  # LMDB's own open says what is wrong


def _check(pages, size: int, path: str, data: str, error) -> None:
    def corrupt(what: str):
        return error(f"LMDB '{path}': {data} is corrupt ({what})")

    psize = struct.unpack_from("<I", pages, _PSIZE_AT)[0]
    if struct.unpack_from("<I", pages, _MAGIC_AT)[0] != META_MAGIC or not 512 <= psize <= 1 << 16 or psize & (psize - 1):
        return  # not an LMDB meta page: LMDB refuses the file itself
    metas = [0] + ([psize] if size >= psize + _TXNID_AT + 8 else [])
    metas = [m for m in metas if struct.unpack_from("<I", pages, m + _MAGIC_AT)[0] == META_MAGIC]
    meta = max(metas, key=lambda m: struct.unpack_from("<Q", pages, m + _TXNID_AT)[0])
    root, last_page = struct.unpack_from("<QQ", pages, meta + _ROOT_AT)
    if (last_page + 1) * psize > size:
        raise error(f"LMDB '{path}': {data} holds {size} bytes but its meta page names page {last_page} "
                    f"({(last_page + 1) * psize} bytes): a truncated or corrupt copy")
    limit = last_page + 1
    stack, seen = ([] if root == P_INVALID else [root]), set()
    while stack:
        page = stack.pop()
        if page >= limit or page < 2:
            raise corrupt(f"a page number {page} outside pages 2..{last_page}")
        if page in seen:
            raise corrupt(f"page {page} is reached twice")
        seen.add(page)
        at = page * psize
        flags, lower, upper = struct.unpack_from("<3H", pages, at + 10)
        if not PAGE_HEADER <= lower <= upper <= psize or (lower - PAGE_HEADER) % 2:
            raise corrupt(f"page {page} has a broken header")
        if flags & P_LEAF2:
            continue  # fixed-size duplicates: keys only, inside the page
        if not flags & (P_BRANCH | P_LEAF):
            raise corrupt(f"page {page} is neither a branch nor a leaf")
        count = (lower - PAGE_HEADER) // 2
        for node in struct.unpack_from(f"<{count}H", pages, at + PAGE_HEADER):
            if not upper <= node <= psize - NODE_HEADER:
                raise corrupt(f"a node of page {page} lies outside it")
            lo, hi, node_flags, key_size = struct.unpack_from("<4H", pages, at + node)
            end = node + NODE_HEADER + key_size
            if key_size > MAX_KEY or end > psize:
                raise corrupt(f"a key of page {page} runs past it")
            if flags & P_BRANCH:
                stack.append(lo | hi << 16 | node_flags << 32)
                continue
            value_size = lo | hi << 16
            if node_flags & F_BIGDATA:
                if end + 8 > psize:
                    raise corrupt(f"a value of page {page} runs past it")
                overflow = struct.unpack_from("<Q", pages, at + end)[0]
                if overflow < 2 or overflow >= limit or overflow * psize + PAGE_HEADER + value_size > size:
                    raise corrupt(f"a value of page {page} lies outside the file")
            elif end + value_size > psize:
                raise corrupt(f"a value of page {page} runs past it")
