"""The consumer: assigned partitions or a group subscription, read as copies
of klog's zero-copy records (the views die at the next C poll)."""

import collections
import ctypes
import errno
import time

from ctypes import byref, c_char_p, c_int, c_int32, c_int64, c_size_t, c_void_p, string_at

from . import errors
from ._conf import Conf
from ._lib import (lib, Message, REBALANCE_FN, OFFSET_BEGINNING, OFFSET_DEFAULT, OFFSET_END,
                   REBALANCE_ASSIGNED, REBALANCE_LOST, REBALANCE_REVOKED)

__all__ = ["Consumer", "ConsumerRecord", "TopicPartition", "OffsetAndMetadata",
           "ConsumerRebalanceListener"]

TopicPartition = collections.namedtuple("TopicPartition", "topic partition")
TopicPartition.__doc__ = "A topic's partition, as kafka-python's TopicPartition."

OffsetAndMetadata = collections.namedtuple("OffsetAndMetadata", "offset metadata")
OffsetAndMetadata.__doc__ = "An offset to commit (the next record to read) and its metadata string."

ConsumerRecord = collections.namedtuple("ConsumerRecord",
                                        "topic partition offset timestamp key value headers")
ConsumerRecord.__doc__ = ("A record read back: key and value are bytes (or None, or what the "
                          "deserializers make of them); headers a list of (str, bytes) pairs.")

_SLICE_MS = 100   # longest single wait inside C: Ctrl-C gets through between slices


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
    auto_offset_reset='earliest', enable_auto_commit=True, **conf)``

    Exactly one of ``path`` (opens an instance the consumer owns) or
    ``instance`` (an :class:`Instance`, shared).  With ``group_id`` the
    consumer subscribes to ``topics`` and the group shares their partitions;
    without, it is assigned every partition of each topic.  ``conf`` holds
    consumer keys in Python style (``max_poll_records=100``,
    ``session_timeout_ms=10000``); also ``key_deserializer``,
    ``value_deserializer`` and ``consumer_timeout_ms`` (iteration stops after
    that long without a record; default: never), as kafka-python.

    Iterating yields :class:`ConsumerRecord` s; ``poll`` returns
    ``{TopicPartition: [ConsumerRecord, ...]}``.  Blocking waits call into C
    in slices of 100 ms, so Ctrl-C interrupts them promptly.

    One thread at a time uses a consumer, except ``wakeup()``.
    """

    def __init__(self, *topics, path=None, instance=None, group_id=None, auto_offset_reset="earliest",
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
        try:
            if auto_offset_reset is not None:
                conf["auto.offset.reset"] = {"smallest": "earliest", "largest": "latest"}.get(
                    auto_offset_reset, auto_offset_reset)
            conf["enable.auto.commit"] = bool(enable_auto_commit)
            if group_id is not None:
                conf["group.id"] = group_id
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

    def close(self):
        """Close the consumer: with a group, auto-commit (enable_auto_commit)
        and leave it, revoking the partitions (the listener runs here); then
        close the instance if this consumer opened it.  Idempotent."""
        if not self._h:
            return
        try:
            self._rewind()  # so that the auto-commit covers only what was handed out
        finally:
            h = self._h
            self._buffer.clear()
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
            if self._listener is None:
                return
            tps = _parts_to_set(parts)
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
        if m.header_count:
            hk, hv = c_void_p(), c_void_p()
            hkl, hvl = c_size_t(), c_size_t()
            for i in range(m.header_count):
                errors.check(lib.klog_message_header(byref(m), i, byref(hk), byref(hkl), byref(hv), byref(hvl)),
                             "header of %s-%d@%d" % (topic, m.partition, m.offset))
                headers.append((string_at(hk.value, hkl.value).decode("utf-8", "replace") if hk.value else "",
                                string_at(hv.value, hvl.value) if hv.value else None))
        if self._key_de is not None:
            key = self._key_de(key)
        if self._value_de is not None:
            value = self._value_de(value)
        return ConsumerRecord(topic, m.partition, m.offset, m.timestamp, key, value, headers)

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
            n = lib.klog_consumer_poll(h, slice_ms, byref(self._msgs))
            self._raise_listener_exc()
            if n == -errno.EINTR:  # a signal: let Python's handler run (Ctrl-C)
                n = 0
            errors.check(n, "poll")
            if n > 0:
                msgs = [self._msgs[i].contents for i in range(n)]
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
                if isinstance(v, OffsetAndMetadata):
                    off, meta = v.offset, v.metadata
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

    def commit_async(self, offsets=None):
        """As commit, but returns once the commit is in the offsets log
        (it survives the process, not a power cut until the next sync)."""
        self._commit(offsets, 1)

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
