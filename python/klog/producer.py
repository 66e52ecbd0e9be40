"""The producer: send() returns a Future resolved from klog's delivery-report
queue, polled on the calling thread (never a callback from a C thread)."""

import collections
import ctypes
import itertools
import logging
import threading
import time

from ctypes import byref, c_void_p

from . import errors
from ._conf import Conf, key_name
from ._lib import lib, Delivery, Header, Record, PARTITION_ANY

__all__ = ["Producer", "Future", "RecordMetadata"]

RecordMetadata = collections.namedtuple("RecordMetadata", "topic partition offset timestamp")
RecordMetadata.__doc__ = "Where a record was written: topic, partition, offset, timestamp (ms)."

log = logging.getLogger("klog")

_SLICE_S = 0.1           # longest single wait inside C: Ctrl-C gets through between slices
_REPORTS_PER_POLL = 256
_POLL_EVERY = 8          # send() picks up ready reports every this many sends
_client_ids = itertools.count(1)


def _to_bytes(v, what):
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError("%s must be bytes, str or None, not %s" % (what, type(v).__name__))


class Future:
    """The fate of one sent record, as kafka-python's FutureRecordMetadata.

    ``get(timeout=None)`` waits (polling the producer's delivery reports in
    short slices on the calling thread) and returns RecordMetadata or raises
    the KlogError the report carried.  Callbacks run on whichever thread
    polled the report: inside ``send``, ``flush``, ``get`` or ``poll``.
    """

    __slots__ = ("_producer", "_done", "value", "exception", "_callbacks", "_errbacks")

    def __init__(self, producer):
        self._producer = producer
        self._done = False
        self.value = None
        self.exception = None
        self._callbacks = []
        self._errbacks = []

    @property
    def is_done(self):
        return self._done

    def succeeded(self):
        return self.is_done and self.exception is None

    def failed(self):
        return self.is_done and self.exception is not None

    def _resolve(self, value, exception):
        self.value, self.exception = value, exception
        self._done = True  # waiters are woken by the producer, once per batch of reports
        fns = self._errbacks if exception is not None else self._callbacks
        arg = exception if exception is not None else value
        self._callbacks = self._errbacks = None
        for fn in fns:
            fn(arg)

    def add_callback(self, fn, *args, **kwargs):
        """Call ``fn(*args, metadata, **kwargs)`` on success (now if already done)."""
        cb = (lambda v: fn(*args, v, **kwargs)) if args or kwargs else fn
        if self.is_done:
            if self.exception is None:
                cb(self.value)
        else:
            self._callbacks.append(cb)
        return self

    def add_errback(self, fn, *args, **kwargs):
        """Call ``fn(*args, exception, **kwargs)`` on failure (now if already done)."""
        cb = (lambda v: fn(*args, v, **kwargs)) if args or kwargs else fn
        if self.is_done:
            if self.exception is not None:
                cb(self.exception)
        else:
            self._errbacks.append(cb)
        return self

    def get(self, timeout=None):
        """Wait up to ``timeout`` seconds (None: for ever) for the delivery
        report; return RecordMetadata or raise its KlogError.  Raises
        KlogTimeoutError on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        p = self._producer
        while not self._done:
            left = _SLICE_S if deadline is None else min(_SLICE_S, deadline - time.monotonic())
            if left <= 0:
                raise errors.KlogTimeoutError(-errors._errno.ETIMEDOUT, None,
                                              "no delivery report within %ss" % timeout)
            if not p._poll_reports(left, until=self):
                with p._resolved:  # another thread is polling: it resolves us
                    if not self._done:
                        p._resolved.wait(left)
        if self.exception is not None:
            raise self.exception
        return self.value


class Producer:
    """Send records to topics, as kafka-python's KafkaProducer.

    ``Producer(path_or_instance, **conf)``: a path opens (and owns, closing
    it on close) an instance; an :class:`Instance` is shared.  ``conf`` holds
    producer keys in Python style (``linger_ms=5, acks='all',
    compression_type='zstd'``); also ``key_serializer`` and
    ``value_serializer`` (callables to bytes), as kafka-python.

    Thread-safe: several threads may send on one producer.  ``max_block_ms``
    is enforced here, in short waits, so Ctrl-C interrupts a send blocked on
    a full buffer.
    """

    def __init__(self, path_or_instance, **conf):
        from .instance import Instance
        self._key_ser = conf.pop("key_serializer", None)
        self._value_ser = conf.pop("value_serializer", None)
        max_block = 60000
        client_id = None
        for k in list(conf):
            if key_name(k) == "max.block.ms":
                max_block = conf.pop(k)
            elif key_name(k) == "client.id":
                client_id = conf.pop(k)
        self._max_block_s = float(max_block) / 1000.0
        self.client_id = str(client_id or "klog-python-producer-%d" % next(_client_ids))
        conf["client.id"] = self.client_id
        self._owns = not isinstance(path_or_instance, Instance)
        self._instance = Instance(path_or_instance) if self._owns else path_or_instance
        self._h = c_void_p()
        self._pending = {}              # opaque id -> Future
        self._next_id = 1
        self._lock = threading.Lock()   # _pending and _next_id
        self._poll_lock = threading.Lock()         # one thread polls reports at a time
        self._resolved = threading.Condition()     # notified after each batch of reports
        self._sends = 0
        self._reports = (Delivery * _REPORTS_PER_POLL)()
        for r in self._reports:   # the array is walked with this stride
            r.struct_size = ctypes.sizeof(Delivery)
        try:
            errbuf = ctypes.create_string_buffer(512)
            with Conf(conf) as c:
                c.set("delivery.report.queue", True)
                c.set("max.block.ms", 0)  # blocking is done here, in slices
                rc = lib.klog_producer_new(self._instance._handle(), c.handle, byref(self._h), errbuf,
                                           ctypes.sizeof(errbuf))
            errors.check(rc, "new producer", errbuf)
            self._instance._adopt(self)
        except BaseException:
            if self._h:
                lib.klog_producer_close(self._h)
                self._h = c_void_p()
            if self._owns:
                self._instance.close()
            raise

    def _handle(self):
        h = self._h
        if not h:
            raise errors.closed("producer")
        return h

    @property
    def instance(self):
        return self._instance

    # -- delivery reports --------------------------------------------------------------
    def _poll_reports(self, timeout_s, until=None):
        """Move queued reports into their futures.  Returns False (doing
        nothing) when another thread is polling."""
        if not self._poll_lock.acquire(blocking=False):
            return False
        try:
            h = self._h
            if not h:
                return False  # closing: close() resolves what is left
            ms = max(0, int(timeout_s * 1000))
            while True:
                n = lib.klog_producer_poll_deliveries(h, self._reports, _REPORTS_PER_POLL, ms)
                errors.check(n, "poll delivery reports")
                if n == 0:
                    return True
                done = []
                with self._lock:
                    for i in range(n):
                        d = self._reports[i]
                        fut = self._pending.pop(d.opaque, None)
                        if fut is not None:
                            done.append((fut, d.topic, d.partition, d.offset, d.timestamp, d.err))
                for fut, topic, partition, offset, ts, err in done:
                    topic = topic.decode("utf-8", "replace")
                    try:
                        if err:
                            fut._resolve(None, errors.error_for(err, None, "deliver to %s-%d" % (topic, partition)))
                        else:
                            fut._resolve(RecordMetadata(topic, partition, offset, ts), None)
                    except Exception:  # a user callback failed: as kafka-python, log it and go on
                        log.exception("klog: delivery callback raised")
                with self._resolved:
                    self._resolved.notify_all()
                if n < _REPORTS_PER_POLL and (until is None or until._done):
                    return True
                ms = 0  # more may be queued: drain without waiting
        finally:
            self._poll_lock.release()

    def poll(self, timeout_ms=0):
        """Deliver queued reports to their futures (running callbacks here),
        waiting up to timeout_ms for the first."""
        self._handle()
        self._poll_reports(timeout_ms / 1000.0)

    # -- sending --------------------------------------------------------------------------
    def send(self, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
        """Queue a record; returns a :class:`Future`.

        ``value`` and ``key``: bytes, str (UTF-8) or None (a null value is a
        tombstone).  ``headers``: a list of (str, bytes) pairs or a dict.
        ``partition``: None lets the partitioner choose.  ``timestamp_ms``:
        None for now.  Raises UnknownTopicError, RecordTooLargeError,
        QueueFullError (buffer full for max_block_ms), ClosedError, ...
        at once; delivery errors come through the future."""
        h = self._handle()
        if self._key_ser is not None:
            key = self._key_ser(key)
        if self._value_ser is not None:
            value = self._value_ser(value)
        key = _to_bytes(key, "key")
        value = _to_bytes(value, "value")
        rec = Record()
        rec.struct_size = ctypes.sizeof(Record)
        rec.partition = PARTITION_ANY if partition is None else int(partition)
        rec.key = key              # pointed to in place (no copy); None is NULL, b"" is not
        rec.key_len = len(key) if key is not None else 0
        rec.value = value
        rec.value_len = len(value) if value is not None else 0
        rec.timestamp = 0 if timestamp_ms is None else int(timestamp_ms)
        if headers:
            items = list(headers.items()) if isinstance(headers, dict) else list(headers)
            harr = (Header * len(items))()
            for i, (hk, hv) in enumerate(items):
                hk = _to_bytes(hk, "header key")
                hv = _to_bytes(hv, "header value")
                harr[i].key = hk
                harr[i].key_len = len(hk)
                harr[i].value = hv
                harr[i].value_len = len(hv) if hv is not None else 0
            rec.headers = harr
            rec.header_count = len(items)
        fut = Future(self)
        with self._lock:
            oid = self._next_id
            self._next_id += 1
            self._pending[oid] = fut
        rec.opaque = oid
        tb = topic.encode() if isinstance(topic, str) else topic
        deadline = None
        try:
            while True:
                rc = lib.klog_producer_send(h, tb, byref(rec))
                if rc != errors.KLOG_EQUEUEFULL:
                    break
                # Full (buffer.memory, or reports not yet polled): drain reports
                # and retry until max_block_ms.
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._max_block_s
                if now >= deadline:
                    break
                if not self._poll_reports(min(_SLICE_S, deadline - now)):
                    time.sleep(0.001)
            errors.check(rc, "send to %s" % (topic,))
        except BaseException:
            with self._lock:
                self._pending.pop(oid, None)
            raise
        self._sends += 1
        if self._sends % _POLL_EVERY == 0:
            self._poll_reports(0)  # resolve what is ready, keep the report queue short
        return fut

    def flush(self, timeout=None):
        """Wait until every record sent so far has its report, and resolve
        their futures.  ``timeout`` in seconds (None: for ever); raises
        KlogTimeoutError when it passes."""
        h = self._handle()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _SLICE_S if deadline is None else min(_SLICE_S, deadline - time.monotonic())
            rc = lib.klog_producer_flush(h, max(0, int(left * 1000)))
            self._poll_reports(0)
            if rc == -errors._errno.ETIMEDOUT and (deadline is None or time.monotonic() < deadline):
                continue
            errors.check(rc, "flush")
            break
        # every report is queued now: resolve them (if another thread is
        # polling, it resolves them; wait until it lets go)
        while not self._poll_reports(0) and self._h:
            time.sleep(0.001)

    def outstanding(self):
        """Records sent whose report has not been polled yet."""
        with self._lock:
            return len(self._pending)

    def close(self, timeout=None):
        """Flush (up to ``timeout`` seconds, None: for ever), resolve every
        future, close the producer, and the instance if this producer opened
        it.  Idempotent.  If the flush times out or is interrupted, the C
        close still waits for the batches in flight (klog_producer_close
        always flushes); futures still unresolved then fail with ClosedError."""
        if not self._h:
            return
        try:
            self.flush(timeout)
        finally:
            h, self._h = self._h, c_void_p()
            with self._poll_lock:   # no thread is inside a C poll any more
                lib.klog_producer_close(h)
            with self._lock:
                left, self._pending = self._pending, {}
            for fut in left.values():
                fut._resolve(None, errors.closed("producer (record not reported before close)"))
            self._instance._forget(self)
            if self._owns:
                self._instance.close()

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

    # -- metadata and metrics ----------------------------------------------------------------
    def partitions_for(self, topic):
        """The partition numbers of a topic, as a set.  Raises
        UnknownTopicError (klog creates no topic on first use)."""
        self._handle()
        return set(range(self._instance.partition_count(topic)))

    def metrics(self, raw=False):
        """This producer's counters from klog's statistics (klog_stats):
        records, bytes, batches, batch_bytes_raw, batch_bytes_written,
        delivery_errors since it was created, and queue_records /
        queue_bytes now (producers sharing its client_id are counted
        together).  ``raw`` is accepted for kafka-python's signature."""
        self._handle()
        entries = [e for e in self._instance._stats().get("producers", [])
                   if e.get("client_id") == self.client_id]
        return {n: sum(int(e.get(n, 0)) for e in entries)
                for n in ("records", "bytes", "batches", "batch_bytes_raw", "batch_bytes_written",
                          "delivery_errors", "queue_records", "queue_bytes")}
