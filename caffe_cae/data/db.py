"""Caffe's key-value databases of serialised records (``caffe::db``): LMDB and LevelDB.

Readers walk the records in key order and wrap to the first one at the end, as Caffe's cursor
does.  LMDB goes through the ``lmdb`` package (read-only, no lock file needed, so databases on
read-only media open); LevelDB through ``plyvel`` when it is installed (``pip install plyvel``,
a binary wheel), otherwise opening one is a one-line error that says how to convert it.

Writers (``convert_imageset``) create a new database and refuse an existing one, as Caffe's
``db::NEW`` does; LMDB's map grows as needed.
"""
from __future__ import annotations

import logging
import os
import threading
import weakref

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import one_line

log = logging.getLogger(__name__)

BACKENDS = ("lmdb", "leveldb")
LEVELDB_HELP = ("LevelDB needs the plyvel package (pip install plyvel); or convert the images to LMDB "
                "with caffe-cae convert_imageset --backend lmdb and use backend: LMDB")

# Neither py-lmdb nor LevelDB opens one database twice in a process (a train and a test net often
# read the same one): readers share one handle per path while any of them is alive.
_lmdb_envs: "weakref.WeakValueDictionary[str, object]" = weakref.WeakValueDictionary()
_leveldbs: "weakref.WeakValueDictionary[str, _LevelDbHandle]" = weakref.WeakValueDictionary()
_open_lock = threading.Lock()


class DbError(CaffeCaeError):
    """A database that cannot be opened or read (the message names it and the record)."""


def _plyvel():
    try:
        import plyvel
    except ImportError:
        raise DbError(LEVELDB_HELP) from None
    return plyvel


def _lmdb():
    import lmdb  # lazily: only nets with Data layers and the data tools need it

    return lmdb


def _open_lmdb_env(path: str):
    lmdb = _lmdb()
    key = os.path.realpath(path)
    with _open_lock:
        env = _lmdb_envs.get(key)
        if env is not None:
            return env
        if not os.path.exists(path):
            raise DbError(f"LMDB '{path}': no such database (relative to the working directory {os.getcwd()})")
        check_lmdb_file(path)
        try:
            env = lmdb.open(path, readonly=True, lock=False, subdir=os.path.isdir(path), readahead=False)
        except lmdb.Error as err:
            raise DbError(f"LMDB '{path}': cannot open ({one_line(err).replace(path + ': ', '')})") from None
        _lmdb_envs[key] = env
        return env


def check_lmdb_file(path: str) -> None:
    """An LMDB whose pages or values lie outside its file is one error before LMDB maps it
    (reading past the end kills the process; :mod:`caffe_cae.data.lmdb_check`)."""
    from caffe_cae.data.lmdb_check import check_lmdb_file as check

    check(path, DbError)


class Cursor:
    """Records of one database in key order; ``index`` counts from the first record."""

    def __init__(self, path: str, backend: str):
        self.path = path
        self.backend = backend
        self.index = -1
        self.key: bytes = b""
        self.value: bytes = b""

    def where(self) -> str:
        """'record 3 (key '00000003_cat.jpg') of LMDB 'train_lmdb'' for messages."""
        key = self.key.decode("utf-8", "backslashreplace")
        if not key.isprintable() or len(key) > 80:  # a corrupt key: one line, of a readable length
            key = repr(self.key[:80])[2:-1] + ("..." if len(self.key) > 80 else "")
        return f"record {self.index} (key '{key}') of {self.kind} '{self.path}'"

    @property
    def kind(self) -> str:
        return "LMDB" if self.backend == "lmdb" else "LevelDB"

    def seek_first(self) -> None:
        raise NotImplementedError

    def next(self) -> bool:
        """Move to the next record; False past the last one (the cursor is then invalid)."""
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError


class LmdbCursor(Cursor):
    def __init__(self, path: str):
        super().__init__(path, "lmdb")
        self.env = _open_lmdb_env(path)
        self.txn = self.env.begin(buffers=False)
        self.cursor = self.txn.cursor()

    def _read(self, moved: bool) -> bool:
        if not moved:
            return False
        self.key, self.value = self.cursor.key(), self.cursor.value()
        return True

    def _guard(self, step):
        lmdb = _lmdb()
        try:
            return step()
        except lmdb.Error as err:
            raise DbError(f"{self.where() if self.index >= 0 else self.kind + ' ' + repr(self.path)}: "
                          f"the database is corrupt ({one_line(err)})") from None

    def seek_first(self) -> None:
        self.index = 0
        if not self._guard(lambda: self._read(self.cursor.first())):
            raise DbError(f"LMDB '{self.path}': the database has no records")

    def next(self) -> bool:
        self.index += 1
        return self._guard(lambda: self._read(self.cursor.next()))

    def count(self) -> int:
        return int(self.env.stat()["entries"])


class _LevelDbHandle:
    """Holds a plyvel DB (which takes no weak references); plyvel closes the DB when the last
    reference (handle or iterator) is gone."""

    def __init__(self, db):
        self.db = db


def _open_leveldb(path: str) -> _LevelDbHandle:
    plyvel = _plyvel()
    key = os.path.realpath(path)
    with _open_lock:
        handle = _leveldbs.get(key)
        if handle is not None:
            return handle
        if not os.path.isdir(path):
            raise DbError(f"LevelDB '{path}': no such database (relative to the working directory {os.getcwd()})")
        try:
            handle = _LevelDbHandle(plyvel.DB(path, create_if_missing=False))
        except (plyvel.Error, OSError) as err:
            raise DbError(f"LevelDB '{path}': cannot open ({one_line(err)})") from None
        _leveldbs[key] = handle
        return handle


class LeveldbCursor(Cursor):
    def __init__(self, path: str):
        super().__init__(path, "leveldb")
        self.handle = _open_leveldb(path)
        self.db = self.handle.db
        self.iterator = None

    def _advance(self) -> bool:
        plyvel = _plyvel()
        try:
            self.key, self.value = next(self.iterator)
        except StopIteration:
            return False
        except (plyvel.Error, OSError) as err:
            raise DbError(f"{self.where()}: the database is corrupt ({one_line(err)})") from None
        return True

    def seek_first(self) -> None:
        self.iterator = self.db.iterator()
        self.index = 0
        if not self._advance():
            raise DbError(f"LevelDB '{self.path}': the database has no records")

    def next(self) -> bool:
        self.index += 1
        return self._advance()

    def count(self) -> int:
        return sum(1 for _ in self.db.iterator(include_value=False))


def open_cursor(path: str, backend: str) -> Cursor:
    """A cursor on the first record of the database at ``path`` (``lmdb`` or ``leveldb``)."""
    if not path:
        raise DbError("no database given (data_param.source is empty)")
    cursor = LmdbCursor(path) if backend == "lmdb" else LeveldbCursor(path)
    cursor.seek_first()
    log.info("Opened %s %s", "lmdb" if backend == "lmdb" else "leveldb", path)
    return cursor


# ------------------------------------------------------------------------------------------
# writing


class Writer:
    """A new database; ``put`` records, ``commit`` every so often, ``close`` at the end."""

    def put(self, key: bytes, value: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class LmdbWriter(Writer):
    def __init__(self, path: str):
        lmdb = _lmdb()
        if os.path.exists(path):
            raise DbError(f"LMDB '{path}': already exists (convert_imageset writes a new database)")
        try:
            os.mkdir(path, 0o744)
            self.env = lmdb.open(path, map_size=1 << 26, subdir=True)
        except (OSError, lmdb.Error) as err:
            raise DbError(f"LMDB '{path}': cannot create ({one_line(err)})") from None
        self.path = path
        self.pending: list[tuple[bytes, bytes]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.pending.append((key, value))

    def commit(self) -> None:
        lmdb = _lmdb()
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in self.pending:
                        txn.put(key, value)
                break
            except lmdb.MapFullError:  # as Caffe's db_lmdb: double the map and redo the transaction
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
            except lmdb.Error as err:
                raise DbError(f"LMDB '{self.path}': cannot write ({one_line(err)})") from None
        self.pending = []

    def close(self) -> None:
        self.commit()
        self.env.close()


class LeveldbWriter(Writer):
    def __init__(self, path: str):
        plyvel = _plyvel()
        try:
            self.db = plyvel.DB(path, create_if_missing=True, error_if_exists=True,
                                write_buffer_size=268435456)
        except (plyvel.Error, OSError) as err:
            raise DbError(f"LevelDB '{path}': cannot create ({one_line(err)}); is it already existing?") from None
        self.batch = self.db.write_batch()

    def put(self, key: bytes, value: bytes) -> None:
        self.batch.put(key, value)

    def commit(self) -> None:
        self.batch.write()
        self.batch = self.db.write_batch()

    def close(self) -> None:
        self.commit()
        self.db.close()


def create_db(path: str, backend: str) -> Writer:
    if backend not in BACKENDS:
        raise DbError(f"Unknown db backend {backend} (use lmdb or leveldb)")
    writer = LmdbWriter(path) if backend == "lmdb" else LeveldbWriter(path)
    log.info("Opened %s %s", backend, path)
    return writer


def backend_name(enum_value: int) -> str:
    """``data_param.backend`` (DataParameter.DB: LEVELDB = 0, LMDB = 1) as ``lmdb``/``leveldb``."""
    return "lmdb" if enum_value == 1 else "leveldb"
