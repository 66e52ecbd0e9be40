"""The consumer: assigned partitions or a group subscription, read as copies
of klog's zero-copy records (the views die at the next C poll)."""

import collections
import ctypes
import errno
import itertools
import logging
import time

from ctypes import byref, c_char_p, c_int, c_int32, c_int64, c_size_t, c_void_p, string_at

from . import errors
from ._conf import Conf, key_name
from ._lib import (lib, Message, REBALANCE_FN, OFFSET_BEGINNING, OFFSET_DEFAULT, OFFSET_END,
                   REBALANCE_ASSIGNED, REBALANCE_LOST, REBALANCE_REVOKED)

__all__ = ["Consumer", "ConsumerRecord", "TopicPartition", "OffsetAndMetadata",
           "OffsetAndTimestamp", "ConsumerRebalanceListener", "CommitFuture"]

log = logging.getLogger("klog")

TopicPartition = collections.namedtuple("TopicPartition", "topic partition")
TopicPartition.__doc__ = "A topic's partition, as kafka-python's TopicPartition."

OffsetAndMetadata = collections.namedtuple("OffsetAndMetadata", "offset metadata")
OffsetAndMetadata.__doc__ = "An offset to commit (the next record to read) and its metadata string."

OffsetAndTimestamp = collections.namedtuple("OffsetAndTimestamp", "offset timestamp")
OffsetAndTimestamp.__doc__ = "offsets_for_times' answer: the first record at or after a time."

# kafka-python's fields, in its order (kafka.consumer.fetcher.ConsumerRecord)
ConsumerRecord = collections.namedtuple(
    "ConsumerRecord", "topic partition offset timestamp timestamp_type key value headers checksum "
    "serialized_key_size serialized_value_size serialized_header_size")
ConsumerRecord.__doc__ = (
    "A record read back, with kafka-python's fields in its order.  key and value are bytes (or "
    "None, or what the deserializers make of them); headers a list of (str, bytes) pairs; "
    "timestamp_type 0 (CreateTime: klog keeps the producer's timestamp); checksum None (record "
    "batches v2 carry a CRC per batch, not per record); serialized_*_size the stored sizes "
    "(-1 for a null key or value, or no headers).")

TIMESTAMP_CREATE_TIME = 0

_SLICE_MS = 100   # longest single wait inside C: Ctrl-C gets through between slices
_PAUSED_WAIT_S = 0.02   # see _fill: a poll that returned only paused partitions' records
_client_ids = itertools.count(1)


class CommitFuture:
    """What commit_async returns: already done (a local commit finishes
    inside the call), with kafka-python's Future surface: ``succeeded()``,
    ``failed()``, ``is_done``, ``value``, ``exception``, ``get()``,
    ``add_callback``, ``add_errback``, ``add_both``."""

    def __init__(self, value=None, exception=None):
        self.value = value
        self.exception = exception
        self.is_done = True

    def succeeded(self):
        return self.exception is None

    def failed(self):
        return self.exception is not None

    def retriable(self):
        return False

    def get(self, timeout=None):
        if self.exception is not None:
            raise self.exception
        return self.value

    def add_callback(self, fn, *args, **kwargs):
        if self.exception is None:
            fn(*args, self.value, **kwargs)
        return self

    def add_errback(self, fn, *args, **kwargs):
        if self.exception is not None:
            fn(*args, self.exception, **kwargs)
        return self

    def add_both(self, fn, *args, **kwargs):
        fn(*args, self.value if self.exception is None else self.exception, **kwargs)
        return self


def _conf_pop(conf, dotted, default):
    """Take a key given in either spelling (max_poll_records or
    "max.poll.records") out of conf."""
    value = default
    for k in [k for k in conf if key_name(k) == dotted]:
        value = conf.pop(k)
    return value


class ConsumerRebalanceListener:
    """Subclass and pass to ``subscribe(listener=...)``.  The methods run on
    the consumer's own thread, inside ``poll``/iteration or ``close``; they
    may call the consumer (``commit`` in ``on_partitions_revoked`` avoids
    redelivery) except ``poll`` and ``close``."""

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        pass

    def on_partitions_lost(self, lost):
        """The member was removed; its partitions already belong to others:
        do not commit.  By default, the same as revoked."""
        self.on_partitions_revoked(lost)


def _tp(tp):
    if isinstance(tp, TopicPartition):
        return tp
    topic, partition = tp
    return TopicPartition(topic, int(partition))


def _parts_to_set(plist):
    """A klog_partition_list as a set of TopicPartition."""
    out = set()
    n = lib.klog_partition_list_count(plist)
    topic, part = c_char_p(), c_int32()
    for i in range(n):
        if lib.klog_partition_list_get(plist, i, byref(topic), byref(part), None, None, None) == 0:
            out.add(TopicPartition(topic.value.decode("utf-8", "replace"), part.value))
    return out


class Consumer:
    """Read records, as kafka-python's KafkaConsumer.

    ``Consumer(*topics, path=None, instance=None, group_id=None,
    auto_offset_reset='latest', enable_auto_commit=True, **conf)``

    Exactly one of ``path`` (opens an instance the consumer owns) or
    ``instance`` (an :class:`Instance`, shared).  With ``group_id`` the
    consumer subscribes to ``topics`` and the group shares their partitions;
    without, it is assigned every partition of each topic.  ``conf`` holds
    consumer keys in Python style (``max_poll_records=100``,
    ``session_timeout_ms=10000``); also ``key_deserializer``,
    ``value_deserializer`` and ``consumer_timeout_ms`` (iteration stops after
    that long without a record; default: never), as kafka-python.

    Where a partition starts without a committed offset: ``auto_offset_reset``
    'latest' (the default, as kafka-python and klog's C API: only records
    written from now on), 'earliest' (its first record) or 'none' (fail).

    With a group, ``enable_auto_commit`` commits the positions handed out
    every ``auto_commit_interval_ms`` (inside polls), before partitions are
    revoked, and on ``close()`` (unless ``close(autocommit=False)``).

    Iterating yields :class:`ConsumerRecord` s; ``poll`` returns
    ``{TopicPartition: [ConsumerRecord, ...]}``.  Blocking waits call into C
    in slices of 100 ms, so Ctrl-C interrupts them promptly.

    One thread at a time uses a consumer, except ``wakeup()``.
    """

    def __init__(self, *topics, path=None, instance=None, group_id=None, auto_offset_reset="latest",
                 enable_auto_commit=True, **conf):
        from .instance import Instance
        if (path is None) == (instance is None):
            raise TypeError("Consumer needs exactly one of path= or instance=")
        self._key_de = conf.pop("key_deserializer", None)
        self._value_de = conf.pop("value_deserializer", None)
        ct = conf.pop("consumer_timeout_ms", None)
        self._consumer_timeout_ms = None if ct is None or ct == float("inf") else float(ct)
        self._owns = instance is None
        self._instance = Instance(path) if self._owns else instance
        self.group_id = group_id
        self._h = c_void_p()
        self._buffer = collections.deque()   # copied records not handed out yet
        self._topics = {}                    # bytes -> str, decoded once
        self._woken = False
        self._listener = None
        self._listener_exc = None
        self._subscription = None
        self._rebalance_cb = REBALANCE_FN(self._on_rebalance)
        self._msgs = ctypes.POINTER(ctypes.POINTER(Message))()   # klog_consumer_poll's pointer array
        self._paused = set()                 # TopicPartition
        self._paused_keys = set()            # (topic bytes, partition): what _fill compares
        # Auto-commit is done here, not by the C consumer, so that
        # close(autocommit=False) can skip the last one (C would commit
        # when it leaves the group); the same three moments as C: every
        # auto_commit_interval_ms inside polls, on revoke, on close.
        self._auto_commit = bool(enable_auto_commit) and group_id is not None
        self._commit_on_revoke = self._auto_commit
        self._last_auto_commit = time.monotonic()
        try:
            self._auto_commit_s = int(_conf_pop(conf, "auto.commit.interval.ms", 5000)) / 1000.0
            if auto_offset_reset is not None:
                conf["auto.offset.reset"] = {"smallest": "earliest", "largest": "latest"}.get(
                    auto_offset_reset, auto_offset_reset)
            conf["auto.commit.interval.ms"] = int(self._auto_commit_s * 1000)  # C checks the range
            conf["enable.auto.commit"] = False
            if group_id is not None:
                conf["group.id"] = group_id
            self.client_id = str(_conf_pop(conf, "client.id", None) or
                                 "klog-python-consumer-%d" % next(_client_ids))
            conf["client.id"] = self.client_id
            errbuf = ctypes.create_string_buffer(512)
            with Conf(conf) as c:
                rc = lib.klog_consumer_new(self._instance._handle(), c.handle, byref(self._h), errbuf,
                                           ctypes.sizeof(errbuf))
            errors.check(rc, "new consumer", errbuf)
            errors.check(lib.klog_consumer_set_rebalance_cb(self._h, self._rebalance_cb, None),
                         "set rebalance callback")
            self._instance._adopt(self)
            if topics:
                if group_id is not None:
                    self.subscribe(topics)
                else:
                    self.assign([TopicPartition(t, p) for t in topics
                                 for p in range(self._instance.partition_count(t))])
        except BaseException:
            self._close_handles()
            raise

    # -- lifetime ----------------------------------------------------------------------------
    def _handle(self):
        h = self._h
        if not h:
            raise errors.closed("consumer")
        return h

    @property
    def instance(self):
        return self._instance

    def _close_handles(self):
        h, self._h = self._h, c_void_p()
        self._buffer.clear()
        if h:
            lib.klog_consumer_close(h)
        if self._owns:
            self._instance.close()

    def close(self, autocommit=True):
        """Close the consumer: with a group, auto-commit (enable_auto_commit,
        and ``autocommit`` True) and leave it, revoking the partitions (the
        listener runs here); then close the instance if this consumer
        opened it.  Idempotent."""
        if not self._h:
            return
        try:
            self._rewind()  # so that the auto-commit covers only what was handed out
        finally:
            h = self._h
            self._buffer.clear()
            self._commit_on_revoke = self._auto_commit and bool(autocommit)
            try:
                lib.klog_consumer_close(h)  # may call _on_rebalance: the handle is still set
            finally:
                self._h = c_void_p()
                self._instance._forget(self)
                if self._owns:
                    self._instance.close()
        self._raise_listener_exc()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._h:
                self.close()
        except Exception:
            pass

    # -- subscription and assignment --------------------------------------------------------
    def subscribe(self, topics=(), pattern=None, listener=None):
        """Join the group (needs group_id) for ``topics`` and/or a regex
        ``pattern`` (topics created later that match it join too).  Replaces
        any earlier subscription.  ``listener``: a ConsumerRebalanceListener."""
        h = self._handle()
        if isinstance(topics, str):
            topics = [topics]
        names = [t if isinstance(t, bytes) else t.encode() for t in topics]
        if pattern is not None:
            names.append((pattern if pattern.startswith("^") else "^" + pattern).encode())
        if not names:
            raise ValueError("subscribe needs topics or a pattern")
        self._rewind()
        arr = (c_char_p * len(names))(*names)
        errors.check(lib.klog_consumer_subscribe(h, arr, len(names)), "subscribe")
        self._listener = listener
        self._subscription = {n.decode() for n in names}

    def unsubscribe(self):
        """Leave the group; the consumer then has no partitions."""
        h = self._handle()
        self._rewind()
        rc = lib.klog_consumer_unsubscribe(h)
        self._subscription = None
        self._raise_listener_exc()
        if rc != errors.KLOG_ESTATE:  # not subscribed: nothing to do
            errors.check(rc, "unsubscribe")

    def subscription(self):
        """The subscribed topic names (a pattern shows as "^regex"), or None."""
        return set(self._subscription) if self._subscription is not None else None

    def assign(self, partitions):
        """Read exactly these partitions, outside any group subscription:
        a list of TopicPartition (or (topic, partition)), or a dict of them
        to start offsets (klog.OFFSET_BEGINNING and OFFSET_END work too).
        A new partition without a start offset begins at the group's
        committed offset (with a group_id, if there is one), else where
        auto_offset_reset says ('none': OffsetOutOfRangeError: give an
        offset).  Partitions already assigned keep their position; ones not
        listed are dropped."""
        h = self._handle()
        if isinstance(partitions, dict):
            want = {_tp(tp): off for tp, off in partitions.items()}
        else:
            want = {_tp(tp): None for tp in partitions}
        self._rewind()
        have = self.assignment()
        for tp in have - set(want):
            errors.check(lib.klog_consumer_unassign(h, tp.topic.encode(), tp.partition),
                         "unassign %s-%d" % tp)
            self._set_paused(self._paused - {tp})
        for tp, start in want.items():
            if start is None:
                if tp in have:
                    continue
                start = OFFSET_DEFAULT
                if self.group_id is not None:
                    committed = self.committed(tp)
                    if committed is not None:
                        start = committed
            errors.check(lib.klog_consumer_assign(h, tp.topic.encode(), tp.partition, int(start)),
                         "assign %s-%d" % tp)

    def assignment(self):
        """The partitions currently assigned, as a set of TopicPartition."""
        h = self._handle()
        plist = c_void_p()
        errors.check(lib.klog_consumer_assignment(h, byref(plist)), "assignment")
        try:
            return _parts_to_set(plist)
        finally:
            lib.klog_partition_list_free(plist)

    def _on_rebalance(self, _c, event, parts, _opaque):
        # Called by C on this thread, inside klog_consumer_poll/close.  An
        # exception cannot cross C: keep it and raise it when C returns.
        try:
            tps = _parts_to_set(parts)
            if event != REBALANCE_ASSIGNED:
                self._paused -= tps   # a partition assigned again starts unpaused
                self._paused_keys = {(tp.topic.encode(), tp.partition) for tp in self._paused}
            if event == REBALANCE_REVOKED and self._commit_on_revoke:
                self._commit_revoked(tps)
            if self._listener is None:
                return
            if event == REBALANCE_ASSIGNED:
                self._listener.on_partitions_assigned(tps)
            elif event == REBALANCE_REVOKED:
                self._listener.on_partitions_revoked(tps)
            elif event == REBALANCE_LOST:
                fn = getattr(self._listener, "on_partitions_lost", None)
                (fn or self._listener.on_partitions_revoked)(tps)
        except BaseException as e:  # noqa: B036 - re-raised after the C call
            if self._listener_exc is None:
                self._listener_exc = e

    def _commit_revoked(self, tps):
        """The auto-commit of partitions about to be revoked (their
        positions are still there): as C does it, errors are dropped (a
        fenced member's next owner reads again from the last commit)."""
        h = self._h
        plist = c_void_p()
        if not tps or lib.klog_partition_list_new(byref(plist)) < 0:
            return
        try:
            off = c_int64()
            for tp in tps:
                if lib.klog_consumer_position(h, tp.topic.encode(), tp.partition, byref(off)) == 0:
                    lib.klog_partition_list_add(plist, tp.topic.encode(), tp.partition, off.value, None)
            if lib.klog_partition_list_count(plist):
                rc = lib.klog_consumer_commit(h, plist, 0)
                if rc < 0:
                    log.debug("klog: auto-commit on revoke failed: %s", errors.strerror(rc))
        finally:
            lib.klog_partition_list_free(plist)

    def _maybe_auto_commit(self, h):
        """The periodic auto-commit (enable_auto_commit), from a poll with
        nothing buffered: the positions are what was handed out."""
        if not self._auto_commit or self._subscription is None:
            return
        now = time.monotonic()
        if now - self._last_auto_commit < self._auto_commit_s:
            return
        self._last_auto_commit = now
        rc = lib.klog_consumer_commit(h, None, 1)
        self._raise_listener_exc()
        if rc < 0 and rc != errors.KLOG_ESTATE:  # not joined yet: nothing to commit
            log.debug("klog: auto-commit failed: %s", errors.strerror(rc))

    def _raise_listener_exc(self):
        e, self._listener_exc = self._listener_exc, None
        if e is not None:
            raise e

    @property
    def member_id(self):
        """This member's id in the group ("" before the first join)."""
        buf = ctypes.create_string_buffer(256)
        gen = c_int32()
        errors.check(lib.klog_consumer_member_id(self._handle(), buf, 256, byref(gen)), "member id")
        return buf.value.decode()

    @property
    def generation(self):
        """The group generation this member joined (-1 before)."""
        buf = ctypes.create_string_buffer(256)
        gen = c_int32()
        errors.check(lib.klog_consumer_member_id(self._handle(), buf, 256, byref(gen)), "member id")
        return gen.value

    # -- reading ---------------------------------------------------------------------------------
    def _copy(self, m):
        """One record out of the view m (valid until the next C poll)."""
        topic = self._topics.get(m.topic)
        if topic is None:
            topic = self._topics[m.topic] = m.topic.decode("utf-8", "replace")
        key = string_at(m.key, m.key_len) if m.key else None
        value = string_at(m.value, m.value_len) if m.value else None
        headers = []
        header_size = -1
        if m.header_count:
            header_size = 0
            hk, hv = c_void_p(), c_void_p()
            hkl, hvl = c_size_t(), c_size_t()
            for i in range(m.header_count):
                errors.check(lib.klog_message_header(byref(m), i, byref(hk), byref(hkl), byref(hv), byref(hvl)),
                             "header of %s-%d@%d" % (topic, m.partition, m.offset))
                headers.append((string_at(hk.value, hkl.value).decode("utf-8", "replace") if hk.value else "",
                                string_at(hv.value, hvl.value) if hv.value else None))
                header_size += hkl.value + (hvl.value if hv.value else 0)
        key_size = m.key_len if m.key else -1
        value_size = m.value_len if m.value else -1
        if self._key_de is not None:
            key = self._key_de(key)
        if self._value_de is not None:
            value = self._value_de(value)
        return ConsumerRecord(topic, m.partition, m.offset, m.timestamp, TIMESTAMP_CREATE_TIME, key, value,
                              headers, None, key_size, value_size, header_size)

    def _fill(self, timeout_ms):
        """Poll C (in slices) until records arrive, timeout_ms passes (None:
        for ever) or wakeup(); copy them into the buffer.  Returns the count."""
        h = self._handle()
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000.0
        while True:
            if deadline is None:
                slice_ms = _SLICE_MS
            else:
                slice_ms = max(0, min(_SLICE_MS, int((deadline - time.monotonic()) * 1000 + 0.999)))
            self._maybe_auto_commit(h)
            n = lib.klog_consumer_poll(h, slice_ms, byref(self._msgs))
            self._raise_listener_exc()
            if n == -errno.EINTR:  # a signal: let Python's handler run (Ctrl-C)
                n = 0
            errors.check(n, "poll")
            if n > 0:
                msgs = [self._msgs[i].contents for i in range(n)]
                if self._paused_keys:
                    msgs = self._drop_paused(h, msgs)
                    if not msgs:
                        # Only paused partitions had records: they were
                        # given back, and the next poll would return them at
                        # once.  Wait a little instead of spinning (records
                        # of other partitions wait up to this long).
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            return 0
                        time.sleep(_PAUSED_WAIT_S if left is None else min(_PAUSED_WAIT_S, left))
                        continue
                    n = len(msgs)
                try:
                    recs = [self._copy(m) for m in msgs]
                except BaseException:
                    # Ctrl-C or a deserializer failed half-way: give the whole
                    # batch back (the views are still valid) so nothing is skipped
                    first = {}
                    for m in msgs:
                        first.setdefault((m.topic, m.partition), m.offset)
                    for (topic, partition), off in first.items():
                        lib.klog_consumer_seek(h, topic, partition, off)
                    raise
                self._buffer.extend(recs)
                return n
            if self._woken or slice_ms == 0 or (deadline is not None and time.monotonic() >= deadline):
                self._woken = False
                return 0

    def _drop_paused(self, h, msgs):
        """The records of msgs whose partition is not paused; the paused
        partitions are seeked back to their first record here."""
        keep, back = [], {}
        for m in msgs:
            k = (m.topic, m.partition)
            if k in self._paused_keys:
                back.setdefault(k, m.offset)
            else:
                keep.append(m)
        for (topic, partition), off in back.items():
            lib.klog_consumer_seek(h, topic, partition, off)
        return keep

    def _rewind(self):
        """Give back records copied but not handed out: seek their partitions
        to the first of them, so that positions and commits are exact."""
        if not self._buffer:
            return
        first = {}
        for r in self._buffer:
            first.setdefault(TopicPartition(r.topic, r.partition), r.offset)
        self._buffer.clear()
        h = self._handle()
        for tp, off in first.items():
            rc = lib.klog_consumer_seek(h, tp.topic.encode(), tp.partition, off)
            if rc != -errno.ENOENT:  # unassigned meanwhile: nothing to give back
                errors.check(rc, "seek %s-%d" % tp)

    def poll(self, timeout_ms=0, max_records=None):
        """Return ``{TopicPartition: [ConsumerRecord, ...]}``, waiting up to
        ``timeout_ms`` for the first record (0: do not wait; None: for ever).
        ``{}`` on timeout or wakeup().  At most ``max_records`` records
        (default: what one C poll gives, max_poll_records)."""
        self._handle()
        if not self._buffer:
            self._fill(timeout_ms)
        out = {}
        n = len(self._buffer) if max_records is None else min(int(max_records), len(self._buffer))
        for _ in range(n):
            r = self._buffer.popleft()
            out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return out

    def __iter__(self):
        return self

    def __next__(self):
        """The next record, waiting for ever (or consumer_timeout_ms, then
        StopIteration)."""
        if not self._buffer:
            self._fill(self._consumer_timeout_ms)
            if not self._buffer:
                raise StopIteration
        return self._buffer.popleft()

    def wakeup(self):
        """Make a blocked poll (or the next one) return at once.  Any thread."""
        self._woken = True
        errors.check(lib.klog_consumer_wakeup(self._handle()), "wakeup")

    def fileno(self):
        """An fd that turns readable when records arrive after a poll that
        returned none (for select/asyncio).  Owned by the consumer."""
        return errors.check(lib.klog_consumer_fd(self._handle()), "fd")

    # -- positions ------------------------------------------------------------------------------
    def seek(self, partition, offset):
        """Move a partition's position to ``offset`` (the next record read)."""
        tp = _tp(partition)
        h = self._handle()
        self._rewind()
        errors.check(lib.klog_consumer_seek(h, tp.topic.encode(), tp.partition, int(offset)),
                     "seek %s-%d" % tp)

    def _seek_all(self, partitions, where):
        tps = [_tp(p) for p in partitions] or sorted(self.assignment())
        for tp in tps:
            self.seek(tp, where)

    def seek_to_beginning(self, *partitions):
        """Move the partitions (default: all assigned) to their first record."""
        self._seek_all(partitions, OFFSET_BEGINNING)

    def seek_to_end(self, *partitions):
        """Move the partitions (default: all assigned) to their end."""
        self._seek_all(partitions, OFFSET_END)

    def seek_to_timestamp(self, partition, timestamp_ms):
        """Move to the first record whose timestamp is >= timestamp_ms."""
        tp = _tp(partition)
        h = self._handle()
        self._rewind()
        errors.check(lib.klog_consumer_seek_time(h, tp.topic.encode(), tp.partition, int(timestamp_ms)),
                     "seek %s-%d" % tp)

    def position(self, partition):
        """The offset of the next record this consumer will hand out."""
        tp = _tp(partition)
        h = self._handle()
        for r in self._buffer:
            if r.topic == tp.topic and r.partition == tp.partition:
                return r.offset
        off = c_int64()
        errors.check(lib.klog_consumer_position(h, tp.topic.encode(), tp.partition, byref(off)),
                     "position %s-%d" % tp)
        return off.value

    def lag(self, partition):
        """Records between the position and the partition's end."""
        tp = _tp(partition)
        h = self._handle()
        self._rewind()
        lag = c_int64()
        errors.check(lib.klog_consumer_lag(h, tp.topic.encode(), tp.partition, byref(lag)),
                     "lag %s-%d" % tp)
        return lag.value

    def _commit(self, offsets, async_):
        h = self._handle()
        self._rewind()
        if offsets is None:
            errors.check(lib.klog_consumer_commit(h, None, async_), "commit")
            return
        plist = c_void_p()
        errors.check(lib.klog_partition_list_new(byref(plist)), "commit")
        try:
            for tp, v in offsets.items():
                tp = _tp(tp)
                if hasattr(v, "offset"):   # OffsetAndMetadata, or kafka-python's
                    off, meta = v.offset, getattr(v, "metadata", None)
                else:
                    off, meta = v, None
                errors.check(lib.klog_partition_list_add(plist, tp.topic.encode(), tp.partition, int(off),
                                                         meta.encode() if meta is not None else None), "commit")
            errors.check(lib.klog_consumer_commit(h, plist, async_), "commit")
            topic, part, err = c_char_p(), c_int32(), c_int()
            for i in range(lib.klog_partition_list_count(plist)):
                lib.klog_partition_list_get(plist, i, byref(topic), byref(part), None, None, byref(err))
                if err.value:
                    raise errors.error_for(err.value, None, "commit %s-%d" % (topic.value.decode(), part.value))
        finally:
            lib.klog_partition_list_free(plist)

    def commit(self, offsets=None):
        """Commit offsets for the group, synchronously (on disk when it
        returns): ``{TopicPartition: offset or OffsetAndMetadata}`` (offset =
        the next record to read), or by default the position of every
        assigned partition.  Raises FencedError, RebalanceInProgressError,
        IllegalStateError (no group_id), ..."""
        self._commit(offsets, 0)

    def commit_async(self, offsets=None, callback=None):
        """As commit, but returns once the commit is in the offsets log
        (it survives the process, not a power cut until the next sync).
        ``callback(offsets, exception_or_None)`` (kafka-python's shape) is
        called before it returns, with the offsets committed
        (``{TopicPartition: OffsetAndMetadata}``); with a callback a failed
        commit is passed to it instead of raised.  Returns a done
        :class:`CommitFuture`."""
        if offsets is None:
            self._handle()
            self._rewind()
            offsets = {tp: OffsetAndMetadata(self.position(tp), "") for tp in self.assignment()}
        else:
            offsets = {_tp(tp): OffsetAndMetadata(int(v.offset), v.metadata or "") if hasattr(v, "offset")
                       else OffsetAndMetadata(int(v), "") for tp, v in offsets.items()}
        try:
            self._commit(offsets, 1)
        except errors.KlogError as e:
            if callback is None:
                raise
            callback(offsets, e)
            return CommitFuture(None, e)
        if callback is not None:
            callback(offsets, None)
        return CommitFuture(None, None)

    def committed(self, partition, metadata=False):
        """The group's committed offset of a partition, or None; with
        ``metadata`` an OffsetAndMetadata."""
        tp = _tp(partition)
        off = c_int64()
        meta = ctypes.create_string_buffer(4096)
        errors.check(lib.klog_consumer_committed(self._handle(), tp.topic.encode(), tp.partition, byref(off),
                                                 meta, ctypes.sizeof(meta)), "committed %s-%d" % tp)
        if off.value < 0:
            return None
        return OffsetAndMetadata(off.value, meta.value.decode("utf-8", "replace")) if metadata else off.value

    # -- metadata ---------------------------------------------------------------------------------
    def topics(self):
        """The instance's topic names, as a set."""
        return set(self._instance.list_topics())

    def partitions_for_topic(self, topic):
        """The partition numbers of a topic, or None if there is no such topic."""
        try:
            return set(range(self._instance.partition_count(topic)))
        except errors.UnknownTopicError:
            return None

    def beginning_offsets(self, partitions):
        """{TopicPartition: first offset still stored}."""
        return self._offsets(partitions, 0)

    def end_offsets(self, partitions):
        """{TopicPartition: next offset to be written}."""
        return self._offsets(partitions, 1)

    def _offsets(self, partitions, which):
        out, cache = {}, {}
        for tp in map(_tp, partitions):
            if tp.topic not in cache:
                cache[tp.topic] = self._instance.offsets(tp.topic)
            try:
                out[tp] = cache[tp.topic][tp.partition][which]
            except KeyError:
                raise errors.error_for(errors.KLOG_EUNKNOWN_PARTITION, None, "%s-%d" % tp) from None
        return out

    # -- flow control, watermarks, times, metrics (kafka-python's) --------------------------------
    def _set_paused(self, paused):
        self._paused = set(paused)
        self._paused_keys = {(tp.topic.encode(), tp.partition) for tp in self._paused}

    def pause(self, *partitions):
        """Stop handing out records of these assigned partitions until
        ``resume``; their positions stay where they are (and so do their
        commits).  A partition revoked and assigned again starts unpaused.
        Raises IllegalStateError for a partition not assigned."""
        tps = [_tp(p) for p in partitions]
        have = self.assignment()
        for tp in tps:
            if tp not in have:
                raise errors.IllegalStateError(errors.KLOG_ESTATE, None,
                                               "pause %s-%d: not assigned to this consumer" % tp)
        self._rewind()   # buffered records of a paused partition go back
        self._set_paused(self._paused | set(tps))

    def resume(self, *partitions):
        """Hand out records of these partitions again."""
        self._handle()
        self._set_paused(self._paused - {_tp(p) for p in partitions})

    def paused(self):
        """The partitions paused, as a set of TopicPartition."""
        return set(self._paused)

    def highwater(self, partition):
        """The partition's end offset (the offset the next record written
        will get), or None if the partition is not assigned here (as
        kafka-python, which knows it only for assigned partitions)."""
        tp = _tp(partition)
        if tp not in self.assignment():
            return None
        return self._offsets([tp], 1)[tp]

    def offsets_for_times(self, timestamps):
        """``{TopicPartition: timestamp_ms}`` -> ``{TopicPartition:
        OffsetAndTimestamp(offset, timestamp) or None}``: the first record
        whose timestamp is >= the one asked (None if every record is
        older).  Positions do not move.  Raises UnknownTopicError,
        UnknownPartitionError; ValueError for a negative timestamp."""
        out = {}
        want = {}
        for tp, ts in timestamps.items():
            tp = _tp(tp)
            if int(ts) < 0:
                raise ValueError("offsets_for_times: the timestamp of %s-%d is %d; it cannot be negative"
                                 % (tp.topic, tp.partition, ts))
            want[tp] = int(ts)
        if not want:
            return out
        ends = self._offsets(want, 1)
        # A private consumer with no group does the seeking, so that this
        # one's positions, assignment and group stay as they are.
        with Consumer(instance=self._instance, auto_offset_reset="earliest", max_poll_records=1) as look:
            for tp, ts in want.items():
                look.assign({tp: OFFSET_BEGINNING})
                look.seek_to_timestamp(tp, ts)
                pos = look.position(tp)
                out[tp] = None
                deadline = time.monotonic() + 10.0
                while pos < ends[tp] and time.monotonic() < deadline:
                    recs = look.poll(timeout_ms=100).get(tp)
                    if recs:
                        out[tp] = OffsetAndTimestamp(recs[0].offset, recs[0].timestamp)
                        break
        return out

    def metrics(self, raw=False):
        """This consumer's counters from klog's statistics (klog_stats):
        ``{"records", "bytes", "polls", "partitions", "lag"}`` since it was
        created (consumers sharing its client_id are counted together).
        ``raw`` is accepted for kafka-python's signature."""
        self._handle()
        entries = [e for e in self._instance._stats().get("consumers", [])
                   if e.get("client_id") == self.client_id]
        return _sum_entries(entries, ("records", "bytes", "polls", "partitions", "lag"))


def _sum_entries(entries, names):
    return {n: sum(int(e.get(n, 0)) for e in entries) for n in names}
