"""KafkaConsumer: kafka-python's consumer over a local klog directory, or
kafka-python's own KafkaConsumer when bootstrap_servers= is given."""

import logging
import re
import time

from .. import errors as _k
from ..consumer import Consumer
from . import _config
from ._compat import default_config, kafka_python, remote
from .errors import IllegalStateError, KafkaConfigurationError, translate, translated
from .structs import ConsumerRecord, OffsetAndTimestamp, make, offset_and_metadata, tp as _tp

__all__ = ["KafkaConsumer", "ConsumerRebalanceListener"]

log = logging.getLogger("klog.kafka")

if kafka_python is not None:
    from kafka import ConsumerRebalanceListener
else:
    from ..consumer import ConsumerRebalanceListener

_STRATEGIES = {"range": "range", "roundrobin": "roundrobin", "cooperative-sticky": "cooperative-sticky",
               "cooperative_sticky": "cooperative-sticky"}
_RECORD_FIELDS_SAME = ConsumerRecord._fields == ("topic", "partition", "offset", "timestamp", "timestamp_type",
                                                 "key", "value", "headers", "checksum", "serialized_key_size",
                                                 "serialized_value_size", "serialized_header_size")


def _deserialize(f, topic, data):
    if f is None:
        return data
    if hasattr(f, "deserialize"):        # a kafka.serializer.Deserializer
        return f.deserialize(topic, data)
    return f(data)


def _log_commit_result(offsets, exception):
    """kafka-python's default_offset_commit_callback: log a failure."""
    if isinstance(exception, Exception):
        log.warning("Offset commit failed: %s", exception)


def _strategy(value):
    """partition_assignment_strategy (kafka-python's assignor classes, or
    names) -> klog's partition.assignment.strategy: the first klog has."""
    items = [value] if isinstance(value, str) or not hasattr(value, "__iter__") else list(value)
    names = [getattr(a, "name", a) for a in items]
    for n in names:
        if isinstance(n, str) and n.lower() in _STRATEGIES:
            return _STRATEGIES[n.lower()]
    raise KafkaConfigurationError("KafkaConsumer(path=...): partition_assignment_strategy=%r: klog assigns with "
                                  "range, roundrobin or cooperative-sticky" % (names,))


class _Listener:
    """A kafka-python ConsumerRebalanceListener given this module's TopicPartitions."""

    def __init__(self, user):
        self.user = user

    def on_partitions_revoked(self, tps):
        self.user.on_partitions_revoked({_tp(t) for t in tps})

    def on_partitions_assigned(self, tps):
        self.user.on_partitions_assigned({_tp(t) for t in tps})

    def on_partitions_lost(self, tps):
        fn = getattr(self.user, "on_partitions_lost", None) or self.user.on_partitions_revoked
        fn({_tp(t) for t in tps})


class KafkaConsumer:
    """kafka-python's KafkaConsumer.

    ``KafkaConsumer(*topics, bootstrap_servers=...)`` *is* kafka-python's
    KafkaConsumer.  ``KafkaConsumer(*topics, path=DIR, **configs)`` reads
    the klog data directory DIR in this process (or ``instance=`` an open
    klog.Instance): with ``group_id`` it joins the group (klog's group
    coordinator, shared with every consumer of the directory in this
    process), without one it takes every partition of ``topics``.

    Over a directory the configs are handled as klog/kafka/_config.py says:
    group_id, auto_offset_reset ('latest' by default, as kafka-python),
    enable_auto_commit, auto_commit_interval_ms, the deserializers,
    consumer_timeout_ms, max_poll_records, fetch_max_bytes, fetch_min_bytes
    with fetch_max_wait_ms (poll waits up to fetch_max_wait_ms for that
    many bytes once it has a record), session_timeout_ms,
    max_poll_interval_ms, heartbeat_interval_ms, check_crcs, client_id,
    partition_assignment_strategy, default_offset_commit_callback,
    exclude_internal_topics; request_timeout_ms, retry_backoff_ms,
    metadata_max_age_ms, isolation_level accepted (they hold); the network
    settings and max_partition_fetch_bytes refused unless given their
    default.  Records are kafka-python's ConsumerRecord.
    """

    DEFAULT_CONFIG = default_config("KafkaConsumer")

    def __new__(cls, *topics, **configs):
        if configs.get("bootstrap_servers") is not None:
            if configs.get("path") is not None or configs.get("instance") is not None:
                raise KafkaConfigurationError("KafkaConsumer: give bootstrap_servers= or path=, not both")
            return remote("KafkaConsumer")(*topics, **configs)
        return super().__new__(cls)

    def __init__(self, *topics, **configs):
        configs.pop("bootstrap_servers", None)
        path = configs.pop("path", None)
        instance = configs.pop("instance", None)
        if (path is None) == (instance is None):
            raise KafkaConfigurationError(
                "KafkaConsumer needs path= (a klog data directory; or instance=) or bootstrap_servers= "
                "(a `klog serve` or Kafka, through kafka-python)")
        to_klog, mine, _held = _config.split("KafkaConsumer", configs, _config.CONSUMER_HERE,
                                             _config.CONSUMER_KEYS, _config.CONSUMER_HOLDS,
                                             _config.CONSUMER_REFUSED)
        self.config = dict(self.DEFAULT_CONFIG)
        self.config.update(configs)
        self._key_de = mine.get("key_deserializer")
        self._value_de = mine.get("value_deserializer")
        self._fetch_min_bytes = int(mine.get("fetch_min_bytes", 1))
        self._fetch_max_wait_s = int(mine.get("fetch_max_wait_ms", 500)) / 1000.0
        self._commit_cb = mine.get("default_offset_commit_callback") or _log_commit_result
        self._exclude_internal = bool(mine.get("exclude_internal_topics", True))
        if "partition_assignment_strategy" in mine:
            to_klog["partition_assignment_strategy"] = _strategy(mine["partition_assignment_strategy"])
        self._group_id = mine.get("group_id")
        self._subs = None          # subscribed topics (or the pattern), None when not subscribed
        self._pattern = None
        self._manual = False       # assign() was used
        target = {"path": path} if path is not None else {"instance": instance}
        with translated("group"):
            self._c = Consumer(group_id=self._group_id, auto_offset_reset=mine.get("auto_offset_reset", "latest"),
                               enable_auto_commit=mine.get("enable_auto_commit", True),
                               consumer_timeout_ms=mine.get("consumer_timeout_ms"), **target, **to_klog)
        try:
            if topics:
                self.subscribe(topics)
        except BaseException:
            self._c.close()
            raise

    @property
    def klog_consumer(self):
        """The klog.Consumer underneath (klog's own calls: lag, wakeup, fileno)."""
        return self._c

    # -- records -------------------------------------------------------------------------------
    def _record(self, r):
        key, value = r.key, r.value
        if self._key_de is not None:
            key = _deserialize(self._key_de, r.topic, key)
        if self._value_de is not None:
            value = _deserialize(self._value_de, r.topic, value)
        if _RECORD_FIELDS_SAME:
            return ConsumerRecord(r.topic, r.partition, r.offset, r.timestamp, r.timestamp_type, key, value,
                                  r.headers, r.checksum, r.serialized_key_size, r.serialized_value_size,
                                  r.serialized_header_size)
        d = r._asdict()
        d.update(key=key, value=value, leader_epoch=-1)
        return make(ConsumerRecord, **d)

    def poll(self, timeout_ms=0, max_records=None, update_offsets=True):
        """``{TopicPartition: [ConsumerRecord, ...]}``, waiting up to
        ``timeout_ms`` for the first record; ``{}`` if none came."""
        if timeout_ms < 0:
            raise ValueError("Timeout must not be negative")
        with translated():
            got = self._c.poll(timeout_ms, max_records)
            if self._fetch_min_bytes > 1 and got:
                self._fill_min_bytes(got, max_records)
        return {_tp(tp): [self._record(r) for r in recs] for tp, recs in got.items()}

    def _fill_min_bytes(self, got, max_records):
        """fetch_min_bytes/fetch_max_wait_ms: with a first record in hand,
        poll on until that many bytes or that long."""
        def size(rs):
            return sum(max(r.serialized_key_size, 0) + max(r.serialized_value_size, 0) for r in rs)
        have = sum(size(rs) for rs in got.values())
        count = sum(len(rs) for rs in got.values())
        deadline = time.monotonic() + self._fetch_max_wait_s
        while have < self._fetch_min_bytes and (max_records is None or count < max_records):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self._c.poll(max(1, int(left * 1000)), None if max_records is None else max_records - count)
            for tp, rs in more.items():
                got.setdefault(tp, []).extend(rs)
                have += size(rs)
                count += len(rs)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            r = next(self._c)
        except StopIteration:
            raise
        except _k.KlogError as e:
            raise translate(e) from e
        return self._record(r)

    # -- subscription and assignment -------------------------------------------------------------
    def subscribe(self, topics=(), pattern=None, listener=None):
        """Subscribe to ``topics`` or a regex ``pattern`` (not both).  With
        group_id the group shares their partitions; without one this
        consumer takes every partition of them (of the topics matching the
        pattern now)."""
        if isinstance(topics, str):
            topics = [topics]
        topics = list(topics or ())
        if (topics and pattern is not None) or (not topics and pattern is None):
            raise IllegalStateError("You must choose topics or regex pattern to subscribe to")
        if self._manual:
            raise IllegalStateError("Subscription to topics, partitions and pattern are mutually exclusive")
        if listener is not None and not hasattr(listener, "on_partitions_assigned"):
            raise TypeError("listener must be a ConsumerRebalanceListener")
        with translated():
            if self._group_id is not None:
                self._c.subscribe(topics, pattern=pattern, listener=_Listener(listener) if listener else None)
            else:
                names = topics if pattern is None else [t for t in self._c.topics() if re.match(pattern, t)]
                self._c.assign([(t, p) for t in names for p in range(self._c.instance.partition_count(t))])
        self._subs = set(topics)
        self._pattern = pattern

    def unsubscribe(self):
        with translated():
            if self._group_id is not None and self._subs is not None:
                self._c.unsubscribe()
            else:
                self._c.assign([])
        self._subs = self._pattern = None
        self._manual = False

    def subscription(self):
        """The subscribed topics (those matching the pattern now), or None."""
        if self._subs is None:
            return None
        if self._pattern is not None:
            return {t for t in self.topics() if re.match(self._pattern, t)}
        return set(self._subs)

    def assign(self, partitions):
        """Read exactly these partitions (no group subscription)."""
        if self._subs is not None:
            raise IllegalStateError("Subscription to topics, partitions and pattern are mutually exclusive")
        with translated():
            self._c.assign([_tp(p) for p in partitions])
        self._manual = bool(partitions)

    def assignment(self):
        with translated():
            return {_tp(t) for t in self._c.assignment()}

    # -- positions and commits -----------------------------------------------------------------
    def position(self, partition):
        with translated():
            return self._c.position(_tp(partition))

    def seek(self, partition, offset):
        if not isinstance(offset, int) or offset < 0:
            raise AssertionError("Offset must be >= 0")
        with translated():
            self._c.seek(_tp(partition), offset)

    def seek_to_beginning(self, *partitions):
        with translated():
            self._c.seek_to_beginning(*[_tp(p) for p in partitions])

    def seek_to_end(self, *partitions):
        with translated():
            self._c.seek_to_end(*[_tp(p) for p in partitions])

    def commit(self, offsets=None):
        """Commit synchronously (``{TopicPartition: OffsetAndMetadata}``, or
        every assigned partition's position).  CommitFailedError if the
        group rebalanced meanwhile."""
        with translated("commit"):
            self._c.commit(offsets)

    def commit_async(self, offsets=None, callback=None):
        """Commit, then call ``callback(offsets, exception_or_None)`` (or
        default_offset_commit_callback), before returning (a local commit
        does not wait on anything).  Returns a done future."""
        cb = callback or self._commit_cb
        result = {}

        def done(offsets_k, exc):
            offs = {_tp(t): offset_and_metadata(o.offset, o.metadata) for t, o in offsets_k.items()}
            result["exc"] = translate(exc, "commit") if exc is not None else None
            cb(offs, result["exc"])

        with translated("commit"):
            fut = self._c.commit_async(offsets, callback=done)
        if result.get("exc") is not None:
            fut.exception = result["exc"]
        return fut

    def committed(self, partition, metadata=False):
        with translated():
            got = self._c.committed(_tp(partition), metadata=metadata)
        if metadata and got is not None:
            return offset_and_metadata(got.offset, got.metadata)
        return got

    # -- flow, watermarks, metadata, metrics -----------------------------------------------------------
    def pause(self, *partitions):
        with translated():
            self._c.pause(*[_tp(p) for p in partitions])

    def resume(self, *partitions):
        with translated():
            self._c.resume(*[_tp(p) for p in partitions])

    def paused(self):
        return {_tp(t) for t in self._c.paused()}

    def highwater(self, partition):
        with translated():
            return self._c.highwater(_tp(partition))

    def offsets_for_times(self, timestamps):
        with translated():
            got = self._c.offsets_for_times({_tp(t): ts for t, ts in timestamps.items()})
        return {_tp(t): (None if v is None else OffsetAndTimestamp(v.offset, v.timestamp)) for t, v in got.items()}

    def beginning_offsets(self, partitions):
        with translated():
            return {_tp(t): o for t, o in self._c.beginning_offsets([_tp(p) for p in partitions]).items()}

    def end_offsets(self, partitions):
        with translated():
            return {_tp(t): o for t, o in self._c.end_offsets([_tp(p) for p in partitions]).items()}

    def topics(self):
        """The directory's topic names, as a set (internal ones only with
        exclude_internal_topics=False)."""
        with translated():
            return set(self._c.instance.list_topics(include_internal=not self._exclude_internal))

    def partitions_for_topic(self, topic):
        with translated():
            return self._c.partitions_for_topic(topic)

    def metrics(self, raw=False):
        """kafka-python's metric groups, from klog's counters (klog_stats)."""
        with translated():
            m = self._c.metrics()
        return {"consumer-fetch-manager-metrics": {"records-consumed-total": m["records"],
                                                   "bytes-consumed-total": m["bytes"],
                                                   "records-lag-max": m["lag"]},
                "consumer-metrics": {"poll-total": m["polls"]},
                "consumer-coordinator-metrics": {"assigned-partitions": m["partitions"]}}

    def bootstrap_connected(self):
        """Always True: the directory is in this process."""
        return True

    def wakeup(self):
        """klog's addition: make a blocked poll return at once (any thread)."""
        with translated():
            self._c.wakeup()

    def close(self, autocommit=True):
        """Close; with a group and enable_auto_commit, commit the positions
        first unless ``autocommit`` is False.  Idempotent."""
        with translated():
            self._c.close(autocommit=autocommit)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
