"""KafkaProducer: kafka-python's producer over a local klog directory, or
kafka-python's own KafkaProducer when bootstrap_servers= is given."""

from .. import errors as _k
from ..producer import Producer
from . import _config
from ._compat import default_config, remote
from .errors import (BrokerResponseError, KafkaConfigurationError, KafkaError, KafkaTimeoutError,
                     MessageSizeTooLargeError, translate, translated)
from .structs import RecordMetadata, TopicPartition, make

__all__ = ["KafkaProducer", "FutureRecordMetadata"]

# Bytes a record batch and a record take beyond the key, value and headers
# (v2 batch header 61, a record's varints at most ~21 more): max_request_size
# bounds the record as it would travel in a produce request, as kafka-python.
_BATCH_OVERHEAD = 61 + 21

_ACKS = {0: "0", 1: "1", -1: "all", "all": "all", "0": "0", "1": "1", "-1": "all"}
_KLOG_PARTITIONERS = ("default", "hash", "sticky", "round_robin")


def _serialize(f, topic, data):
    if f is None:
        return data
    if hasattr(f, "serialize"):          # a kafka.serializer.Serializer
        return f.serialize(topic, data)
    return f(data)


def _bytes(v, what):
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return v.encode()
    raise TypeError("%s must be bytes (serialize it, or give a %s_serializer), not %s"
                    % (what, what, type(v).__name__))


class FutureRecordMetadata:
    """kafka-python's future of a sent record: ``get(timeout=None)`` returns
    RecordMetadata or raises kafka-python's exception; ``add_callback``,
    ``add_errback``, ``add_both``, ``succeeded``, ``failed``, ``is_done``,
    ``value``, ``exception``.  Callbacks run on the thread that picks the
    report up (inside send, flush, get or poll), never on a C thread."""

    def __init__(self, inner, sizes, request_timeout_s, exception=None):
        self._inner = inner                 # a klog.Future, or None when send failed at once
        self._sizes = sizes                 # serialized key, value, header sizes
        self._timeout_s = request_timeout_s
        self._exception = exception

    def _md(self, md):
        ks, vs, hs = self._sizes
        return make(RecordMetadata, topic=md.topic, partition=md.partition,
                    topic_partition=TopicPartition(md.topic, md.partition), offset=md.offset,
                    timestamp=md.timestamp, log_start_offset=-1, checksum=None, serialized_key_size=ks,
                    serialized_value_size=vs, serialized_header_size=hs)

    @property
    def is_done(self):
        return self._inner is None or self._inner.is_done

    def succeeded(self):
        return self.is_done and self.exception is None

    def failed(self):
        return self.is_done and self.exception is not None

    def retriable(self):
        e = self.exception
        return bool(e is not None and getattr(e, "retriable", False))

    @property
    def value(self):
        if self._inner is None or self._inner.value is None:
            return None
        return self._md(self._inner.value)

    @property
    def exception(self):
        if self._exception is None and self._inner is not None and self._inner.exception is not None:
            self._exception = translate(self._inner.exception)
        return self._exception

    def get(self, timeout=None):
        """Wait up to ``timeout`` seconds (None: up to the producer's
        request_timeout_ms, the time a record may take to be reported, as a
        kafka-python batch expires) and return RecordMetadata."""
        if self._inner is None:
            raise self._exception
        try:
            md = self._inner.get(self._timeout_s if timeout is None else timeout)
        except _k.KlogTimeoutError as e:
            raise KafkaTimeoutError("no delivery report within %ss" % (
                self._timeout_s if timeout is None else timeout)) from e
        except _k.KlogError:
            raise self.exception from None
        return self._md(md)

    def add_callback(self, fn, *args, **kwargs):
        """``fn(*args, record_metadata, **kwargs)`` on success."""
        if self._inner is not None:
            self._inner.add_callback(lambda md: fn(*args, self._md(md), **kwargs))
        return self

    def add_errback(self, fn, *args, **kwargs):
        """``fn(*args, exception, **kwargs)`` on failure."""
        if self._inner is None:
            fn(*args, self._exception, **kwargs)
        else:
            self._inner.add_errback(lambda _e: fn(*args, self.exception, **kwargs))
        return self

    def add_both(self, fn, *args, **kwargs):
        self.add_callback(fn, *args, **kwargs)
        self.add_errback(fn, *args, **kwargs)
        return self


class KafkaProducer:
    """kafka-python's KafkaProducer.

    ``KafkaProducer(bootstrap_servers=...)`` *is* kafka-python's
    KafkaProducer (talking to a `klog serve`, or to Kafka).
    ``KafkaProducer(path=DIR, **configs)`` writes to the klog data directory
    DIR in this process (or ``instance=`` an open klog.Instance).

    Over a directory, kafka-python's configs are handled as
    klog/kafka/_config.py says: ``acks``, ``compression_type``,
    ``batch_size``, ``linger_ms``, ``buffer_memory``, ``max_block_ms``,
    ``client_id``, the serializers, ``partitioner`` (a callable
    ``(key_bytes, all_partitions, available)`` as kafka-python's, or one of
    klog's names; not given: klog's default, the one C producers of the
    directory use, which hashes keys with xxh3 where kafka-python's
    DefaultPartitioner uses murmur2: give ``partitioner=DefaultPartitioner()``
    for kafka-python's placement), ``max_request_size`` (a larger record fails with
    MessageSizeTooLargeError), ``request_timeout_ms`` (how long
    ``future.get()`` waits by default) are used; ``retries``,
    ``retry_backoff_ms``, ``metadata_max_age_ms`` accepted (what they ask
    for holds); the network settings refused unless given their default.
    klog's own producer keys are accepted too (``compression_level=3``).
    """

    DEFAULT_CONFIG = default_config("KafkaProducer")

    def __new__(cls, **configs):
        if configs.get("bootstrap_servers") is not None:
            if configs.get("path") is not None or configs.get("instance") is not None:
                raise KafkaConfigurationError("KafkaProducer: give bootstrap_servers= or path=, not both")
            return remote("KafkaProducer")(**configs)
        return super().__new__(cls)

    def __init__(self, **configs):
        configs.pop("bootstrap_servers", None)
        path = configs.pop("path", None)
        instance = configs.pop("instance", None)
        if (path is None) == (instance is None):
            raise KafkaConfigurationError(
                "KafkaProducer needs path= (a klog data directory; or instance=) or bootstrap_servers= "
                "(a `klog serve` or Kafka, through kafka-python)")
        to_klog, mine, held = _config.split("KafkaProducer", configs, _config.PRODUCER_HERE,
                                            _config.PRODUCER_KEYS, _config.PRODUCER_HOLDS,
                                            _config.PRODUCER_REFUSED)
        self.config = dict(self.DEFAULT_CONFIG)
        self.config.update(configs)
        self._key_ser = mine.get("key_serializer")
        self._value_ser = mine.get("value_serializer")
        self._max_request_size = int(mine.get("max_request_size", 1048576))
        self._request_timeout_s = int(mine.get("request_timeout_ms", 30000)) / 1000.0
        acks = mine.get("acks", 1)
        if acks not in _ACKS:
            raise KafkaConfigurationError("KafkaProducer: acks=%r: give 0, 1, 'all' or -1" % (acks,))
        to_klog["acks"] = _ACKS[acks]
        to_klog["compression_type"] = mine.get("compression_type") or "none"
        self._partitioner = None
        part = mine.get("partitioner")
        if isinstance(part, str):
            to_klog["partitioner"] = part        # klog's: default, hash, sticky, round_robin
        elif part is not None:   # kafka-python's (DefaultPartitioner: murmur2, as Java) or the user's
            if not callable(part):
                raise KafkaConfigurationError("KafkaProducer: partitioner must be callable(key_bytes, "
                                              "all_partitions, available_partitions) or one of %s"
                                              % (", ".join(_KLOG_PARTITIONERS),))
            self._partitioner = part
        with translated():
            self._p = Producer(instance if instance is not None else path, **to_klog)
        self._closed = False

    # -- sending ---------------------------------------------------------------------------
    def send(self, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
        """kafka-python's send: returns a FutureRecordMetadata.  A record
        over max_request_size, or to an unknown topic or partition, gives a
        failed future (as kafka-python does for broker errors); a full
        buffer for max_block_ms raises KafkaTimeoutError."""
        assert not (value is None and key is None), "Need at least one: key or value"
        if self._closed:
            raise KafkaError("KafkaProducer already closed!")   # kafka-python's words
        key_bytes = _bytes(_serialize(self._key_ser, topic, key), "key")
        value_bytes = _bytes(_serialize(self._value_ser, topic, value), "value")
        if headers is None:
            headers = []
        for h in headers:
            if not (isinstance(h, tuple) and len(h) == 2 and isinstance(h[0], str)):
                raise AssertionError("Headers must be a list of (str, bytes) tuples, not %r" % (h,))
        ks = len(key_bytes) if key_bytes is not None else -1
        vs = len(value_bytes) if value_bytes is not None else -1
        hs = sum(len(k.encode()) + (len(v) if v is not None else 0) for k, v in headers) if headers else -1
        size = _BATCH_OVERHEAD + max(ks, 0) + max(vs, 0) + max(hs, 0)
        sizes = (ks, vs, hs)
        if size > self._max_request_size:
            return FutureRecordMetadata(None, sizes, self._request_timeout_s, MessageSizeTooLargeError(
                "The message is %d bytes when serialized which is larger than the maximum request size "
                "you have configured with the max_request_size configuration" % size))
        try:
            if partition is None and self._partitioner is not None:
                parts = sorted(self._p.partitions_for(topic))
                partition = self._partitioner(key_bytes, parts, parts)
            fut = self._p.send(topic, value_bytes, key=key_bytes, headers=headers, partition=partition,
                               timestamp_ms=timestamp_ms)
        except _k.KlogError as e:
            err = translate(e)
            if isinstance(err, BrokerResponseError):
                return FutureRecordMetadata(None, sizes, self._request_timeout_s, err)
            raise err from e
        return FutureRecordMetadata(fut, sizes, self._request_timeout_s)

    def flush(self, timeout=None):
        """Wait for every record sent so far (``timeout`` seconds, None: for
        ever); KafkaTimeoutError when it passes."""
        with translated():
            self._p.flush(timeout)

    def poll(self, timeout_ms=0):
        """Run the callbacks of the reports that arrived (klog's addition:
        kafka-python runs them on its I/O thread)."""
        with translated():
            self._p.poll(timeout_ms)

    def close(self, timeout=None):
        """Flush (up to ``timeout`` seconds) and close.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        with translated():
            self._p.close(timeout)

    def partitions_for(self, topic):
        """The topic's partition numbers, as a set.  Raises
        UnknownTopicOrPartitionError (klog creates no topic on first use)."""
        with translated():
            return self._p.partitions_for(topic)

    def bootstrap_connected(self):
        """Always True: the directory is in this process."""
        return not self._closed

    def metrics(self, raw=False):
        """{'producer-metrics': {...}} from klog's counters (klog_stats):
        record-send-total, record-error-total, byte-total, batch-total,
        compression-rate-avg, records-queued, bytes-queued."""
        with translated():
            m = self._p.metrics()
        raw_b, written = m["batch_bytes_raw"], m["batch_bytes_written"]
        return {"producer-metrics": {
            "record-send-total": m["records"], "record-error-total": m["delivery_errors"],
            "byte-total": m["bytes"], "batch-total": m["batches"],
            "compression-rate-avg": (written / raw_b) if raw_b else 1.0,
            "records-queued": m["queue_records"], "bytes-queued": m["queue_bytes"]}}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
