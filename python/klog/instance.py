"""The instance: one open data directory, and its administration."""

import collections
import ctypes
import json
import os
import threading
import weakref

from ctypes import POINTER, byref, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint64, c_void_p

from . import errors
from ._conf import Conf, key_name, value_text
from ._lib import lib, GroupInfo, PartitionInfo, STATS_JSON
from ._lib import (RESET_EARLIEST, RESET_LATEST, RESET_OFFSET, RESET_SHIFT, RESET_TIMESTAMP)

__all__ = ["Instance", "open", "DiskUsage"]

DiskUsage = collections.namedtuple("DiskUsage", "used budget")
DiskUsage.__doc__ = "Bytes of segment and index files, and the disk budget (0 = none)."


def _name(s):
    if isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        raise TypeError("expected a str name, got %r" % (s,))
    return s.encode()


def _text(b):
    return None if b is None else b.decode("utf-8", "replace")


def _group_dict(gi):
    """A klog_group_info as the dict klog_group_describe's JSON parses to."""
    members = []
    for i in range(gi.member_count):
        m = gi.members[i].contents
        assignment = []
        topic, part = c_char_p(), c_int32()
        for j in range(lib.klog_partition_list_count(m.assignment)):
            lib.klog_partition_list_get(m.assignment, j, byref(topic), byref(part), None, None, None)
            assignment.append({"topic": _text(topic.value), "partition": part.value})
        members.append({"member_id": _text(m.member_id), "instance_id": _text(m.instance_id),
                        "client_id": _text(m.client_id), "assignment": assignment})
    offsets = []
    for i in range(gi.offset_count):
        o = gi.offsets[i].contents
        offsets.append({"topic": _text(o.topic), "partition": o.partition, "committed": o.committed,
                        "end": o.end, "lag": o.lag, "metadata": _text(o.metadata)})
    return {"group": _text(gi.group), "state": _text(gi.state), "generation": gi.generation,
            "protocol": _text(gi.protocol), "members": members, "offsets": offsets}


def _strings(array, count):
    return [array[i].decode("utf-8", "replace") for i in range(count)]


def _alter_config_fn():
    """klog_topic_alter_config, declared on first use (a libklog.so older
    than the call still serves everything else)."""
    f = lib.klog_topic_alter_config
    if f.argtypes is None:
        f.restype = c_int
        f.argtypes = [c_void_p, c_char_p, c_void_p, POINTER(c_char_p), c_size_t, c_char_p, c_size_t]
    return f


class _Shared:
    """One klog_open of a directory, shared by every Instance of this
    process on it (klog locks a directory to one open at a time, so two
    opens in one process would otherwise fail with LockedError)."""

    __slots__ = ("key", "handle", "refs", "conf", "pid")

    def __init__(self, key, handle, conf):
        self.key = key
        self.handle = handle
        self.refs = 1
        self.conf = conf
        self.pid = os.getpid()


_shared_lock = threading.Lock()   # _shared, and every _Shared's refs
_shared = {}                      # realpath of the directory -> _Shared


def _conf_text(conf):
    """Instance keys as klog reads them: {"disk.budget.bytes": "1024"}."""
    return {key_name(k): value_text(v) for k, v in conf.items()}


def _acquire(path, conf):
    """The _Shared for path, opening the directory if this process has
    not; conf must be empty or the same keys and values it was opened
    with (a directory open in this process has one configuration)."""
    key = os.path.realpath(path)
    want = _conf_text(conf)
    with _shared_lock:
        sh = _shared.get(key)
        if sh is not None and sh.pid == os.getpid():
            if want and want != sh.conf:
                raise errors.ConfigError(
                    errors.KLOG_ECONF,
                    "it is already open in this process with %s; a directory has one "
                    "configuration per process: close it first, or open it with the same "
                    "settings or none" % (
                        ", ".join("%s=%s" % kv for kv in sorted(sh.conf.items())) or "no settings"),
                    "open %s" % path)
            sh.refs += 1
            return sh
        # Opened under the lock: a concurrent open of the same directory
        # waits here and shares this one instead of failing on klog's lock.
        handle = c_void_p()
        errbuf = ctypes.create_string_buffer(512)
        with Conf(conf) as c:
            rc = lib.klog_open(byref(handle), path.encode(), c.handle, errbuf, ctypes.sizeof(errbuf))
        errors.check(rc, "open %s" % path, errbuf)
        sh = _shared[key] = _Shared(key, handle, want)
        return sh


def _release(sh):
    """Drop one reference; the last closes the C instance."""
    with _shared_lock:
        sh.refs -= 1
        if sh.refs > 0:
            return
        if _shared.get(sh.key) is sh:
            del _shared[sh.key]
        h, sh.handle = sh.handle, c_void_p()
        if h and sh.pid == os.getpid():
            errors.check(lib.klog_close(h), "close %s" % sh.key)


class Instance:
    """An open klog data directory (klog_open).  Thread-safe.

    Created by :func:`klog.open` (and by a Producer or Consumer given a
    path).  Producers and consumers are made on it
    (``klog.Producer(inst)``, ``klog.Consumer('t', instance=inst)``);
    ``close()`` closes those still open on it first.

    A directory is opened once per process: every Instance of one
    directory (``klog.open`` twice, ``klog.Producer(path)`` beside
    ``klog.Consumer('t', path=path)``) shares one klog instance, closed when
    the last of them closes.  Another process holding the directory gives
    LockedError.
    """

    def __init__(self, path, **conf):
        self.path = os.fspath(path)
        if isinstance(self.path, bytes):
            self.path = os.fsdecode(self.path)
        self._shared = None
        self._children = weakref.WeakSet()
        self._lock = threading.Lock()
        self._shared = _acquire(self.path, conf)

    # -- lifetime -------------------------------------------------------------------
    def _handle(self):
        sh = self._shared
        if sh is None or not sh.handle:
            raise errors.closed("instance %s" % self.path)
        return sh.handle

    def _adopt(self, child):
        with self._lock:
            self._handle()
            self._children.add(child)

    def _forget(self, child):
        with self._lock:
            self._children.discard(child)

    @property
    def closed(self):
        return self._shared is None

    def close(self):
        """Close every producer and consumer still open on this Instance,
        then let go of the directory (the last Instance of it in the
        process syncs and releases klog's lock).  Idempotent."""
        first = None
        while True:  # one at a time: a child's close may close this instance again
            with self._lock:
                try:
                    child = self._children.pop()
                except KeyError:
                    break
            try:
                child.close()
            except Exception as e:  # close the rest regardless
                first = first or e
        sh, self._shared = self._shared, None
        if sh is not None:
            _release(sh)
        if first is not None:
            raise first

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if getattr(self, "_shared", None) is not None:
                self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<klog.Instance %s%s>" % (self.path, " closed" if self.closed else "")

    @property
    def io_backend(self):
        """The I/O backend in use: "uring" or "posix"."""
        return lib.klog_io_backend(self._handle()).decode()

    # -- topics ---------------------------------------------------------------------
    def create_topic(self, name, partitions=1, exist_ok=False, **conf):
        """Create a topic with ``partitions`` partitions; ``conf`` holds topic
        keys (``retention_ms=..., cleanup_policy='compact'``).  Raises
        AlreadyExistsError unless ``exist_ok``, InvalidNameError, ConfigError."""
        errbuf = ctypes.create_string_buffer(512)
        with Conf(conf) as c:
            rc = lib.klog_topic_create(self._handle(), _name(name), int(partitions), c.handle, errbuf,
                                       ctypes.sizeof(errbuf))
        if rc == -errors._errno.EEXIST and exist_ok:
            return
        errors.check(rc, "create topic %r" % (name,), errbuf)

    def delete_topic(self, name):
        """Delete a topic and its data.  Raises UnknownTopicError."""
        errors.check(lib.klog_topic_delete(self._handle(), _name(name)), "delete topic %r" % (name,))

    def add_partitions(self, name, total):
        """Grow a topic to ``total`` partitions."""
        errors.check(lib.klog_topic_add_partitions(self._handle(), _name(name), int(total)),
                     "add partitions to %r" % (name,))

    def alter_topic_config(self, name, delete=(), **conf):
        """Change a topic's configuration (Kafka's incremental alter-configs):
        ``conf`` sets topic keys for the topic (``retention_ms=3600000``,
        underscores for dots), ``delete`` names keys (``"retention.ms"`` or
        ``"retention_ms"``) that go back to the instance's value; the other
        keys keep theirs.  Recorded in the topic metadata before it takes
        effect (see klog_topic_alter_config(3) for when each key applies).
        Raises UnknownTopicError, InvalidNameError, ConfigError (a key that
        is not a topic key, or a bad value); these change nothing."""
        if isinstance(delete, (str, bytes)):
            delete = (delete,)
        names = [key_name(k.decode() if isinstance(k, bytes) else k) for k in delete]
        unset = (c_char_p * max(len(names), 1))(*[k.encode() for k in names])
        errbuf = ctypes.create_string_buffer(512)
        with Conf(conf) as c:
            rc = _alter_config_fn()(self._handle(), _name(name), c.handle, unset, len(names), errbuf,
                                    ctypes.sizeof(errbuf))
        errors.check(rc, "alter config of topic %r" % (name,), errbuf)

    def list_topics(self, include_internal=False):
        """Topic names, sorted.  Internal topics (``__consumer_offsets``) only
        with ``include_internal``."""
        arr = ctypes.POINTER(c_char_p)()
        n = c_size_t()
        errors.check(lib.klog_topic_list(self._handle(), byref(arr), byref(n)), "list topics")
        try:
            names = _strings(arr, n.value)
        finally:
            lib.klog_topic_list_free(arr, n.value)
        return [t for t in names if include_internal or not t.startswith("__")]

    def partition_count(self, name):
        """The number of partitions of a topic.  Raises UnknownTopicError."""
        return errors.check(lib.klog_topic_describe(self._handle(), _name(name), None, 0, None, 0),
                            "describe topic %r" % (name,))

    def _partition_infos(self, name):
        h = self._handle()
        n = self.partition_count(name)
        while True:
            parts = (PartitionInfo * max(n, 1))()
            parts[0].struct_size = ctypes.sizeof(PartitionInfo)
            size = 4096
            while True:
                config = ctypes.create_string_buffer(size)
                m = errors.check(lib.klog_topic_describe(h, _name(name), parts, n, config, size),
                                 "describe topic %r" % (name,))
                if len(config.value) < size - 1:
                    break
                size *= 4
            if m <= n:  # partitions may have been added meanwhile
                return parts[:m], config.value.decode("utf-8", "replace")
            n = m

    def describe_topic(self, name):
        """A dict: ``name``, ``partitions`` (a list of dicts with partition,
        start_offset, end_offset, durable_offset, size_bytes, segments, error,
        disk_bytes, clean_offset) and ``config`` (the topic's explicitly set
        keys, as a dict of strings)."""
        parts, config = self._partition_infos(name)
        fields = [f for f, _ in PartitionInfo._fields_ if f != "struct_size"]
        cfg = {}
        for line in config.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                cfg[k] = v
        return {
            "name": name,
            "partitions": [{f: getattr(p, f) for f in fields} for p in parts],
            "config": cfg,
        }

    def offsets(self, name):
        """{partition: (start_offset, end_offset)} of a topic."""
        parts, _ = self._partition_infos(name)
        return {p.partition: (p.start_offset, p.end_offset) for p in parts}

    def delete_records(self, topic, partition, before_offset=-1):
        """Kafka's DeleteRecords: make every record of the partition below
        ``before_offset`` (-1: the end) unreadable.  Returns the new start
        offset (low watermark)."""
        low = c_int64()
        errors.check(lib.klog_topic_delete_records(self._handle(), _name(topic), int(partition),
                                                   int(before_offset), byref(low)),
                     "delete records of %s-%d" % (topic, partition))
        return low.value

    def disk_usage(self):
        """DiskUsage(used, budget): bytes of segment and index files, and
        disk.budget.bytes (0 = none)."""
        used, budget = c_uint64(), c_uint64()
        errors.check(lib.klog_disk_usage(self._handle(), byref(used), byref(budget)), "disk usage")
        return DiskUsage(used.value, budget.value)

    def _stats(self):
        """klog_stats as a dict (instance, topics, producers, consumers)."""
        p = c_void_p()
        errors.check(lib.klog_stats(self._handle(), STATS_JSON, byref(p)), "stats")
        try:
            return json.loads(ctypes.string_at(p).decode("utf-8", "replace"))
        finally:
            lib.klog_free(p)

    # -- groups ---------------------------------------------------------------------
    def list_groups(self):
        """Consumer groups with members or committed offsets, sorted."""
        arr = ctypes.POINTER(c_char_p)()
        n = c_size_t()
        errors.check(lib.klog_group_list(self._handle(), byref(arr), byref(n)), "list groups")
        try:
            return _strings(arr, n.value)
        finally:
            lib.klog_group_list_free(arr, n.value)

    def describe_group(self, group):
        """The group as a dict (from klog_group_info_get; the same keys and
        values as klog_group_describe's JSON): group, state, generation,
        protocol, members (member_id, instance_id, client_id, assignment),
        offsets (topic, partition, committed, end, lag, metadata).  Raises
        UnknownGroupError."""
        info = POINTER(GroupInfo)()
        errors.check(lib.klog_group_info_get(self._handle(), _name(group), byref(info)),
                     "describe group %r" % (group,))
        try:
            return _group_dict(info.contents)
        finally:
            lib.klog_group_info_free(info)

    def _describe_group_json(self, group):
        """klog_group_describe's JSON document, parsed (describe_group's
        text twin; the tests hold one against the other)."""
        p = c_void_p()
        errors.check(lib.klog_group_describe(self._handle(), _name(group), byref(p)),
                     "describe group %r" % (group,))
        try:
            text = ctypes.string_at(p).decode("utf-8", "replace")
        finally:
            lib.klog_free(p)
        return json.loads(text)

    def committed(self, group, topic, partition):
        """The group's committed offset of a partition, or None."""
        off = c_int64()
        errors.check(lib.klog_group_committed(self._handle(), _name(group), _name(topic), int(partition),
                                              byref(off)), "committed offset of %r" % (group,))
        return None if off.value < 0 else off.value

    def reset_offsets(self, group, topic, partition=-1, to=None, timestamp=None, offset=None, shift=None):
        """Reset a group's committed offsets of one partition (or all, -1).
        Give exactly one of: ``to='earliest'|'latest'``, ``timestamp=ms``,
        ``offset=n`` (clamped to the log), ``shift=n`` (added to the committed
        offset).  The group must have no active member (IllegalStateError).
        Returns the number of partitions reset."""
        given = [(k, v) for k, v in (("to", to), ("timestamp", timestamp), ("offset", offset),
                                     ("shift", shift)) if v is not None]
        if len(given) != 1:
            raise TypeError("reset_offsets needs exactly one of to=, timestamp=, offset=, shift=")
        what, value = given[0]
        if what == "to":
            kinds = {"earliest": RESET_EARLIEST, "beginning": RESET_EARLIEST, "latest": RESET_LATEST,
                     "end": RESET_LATEST}
            if value not in kinds:
                raise ValueError("to= must be 'earliest' or 'latest', not %r" % (value,))
            kind, value = kinds[value], 0
        else:
            kind = {"timestamp": RESET_TIMESTAMP, "offset": RESET_OFFSET, "shift": RESET_SHIFT}[what]
        return errors.check(lib.klog_group_reset_offsets(self._handle(), _name(group), _name(topic),
                                                         int(partition), kind, int(value)),
                            "reset offsets of %r" % (group,))

    def delete_group(self, group):
        """Delete a group's committed offsets (no active member allowed)."""
        errors.check(lib.klog_group_delete(self._handle(), _name(group)), "delete group %r" % (group,))


def open(path, **conf):  # noqa: A001 - the module's verb, as klog_open
    """Open (creating if needed) the data directory ``path`` and return an
    :class:`Instance`.  ``conf`` holds instance keys in Python style,
    underscores for dots: ``klog.open('data', disk_budget_bytes=1 << 30,
    segment_bytes=8 << 20)``; topic keys given here are every topic's defaults.
    A directory already open in this process is shared, not opened again
    (``conf`` must then be empty or the same).  Raises LockedError if
    another process holds the directory, ConfigError for a bad key (the
    message names it)."""
    return Instance(path, **conf)
