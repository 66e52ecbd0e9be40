"""klog for Python: an embeddable Kafka-like streaming log, through ctypes.

Shaped like kafka-python::

    import klog

    with klog.open("data") as k:
        k.create_topic("greetings", partitions=2, exist_ok=True)
        with klog.Producer(k, acks="all", linger_ms=5) as p:
            md = p.send("greetings", b"hello", key="ada").get(timeout=10)
        with klog.Consumer("greetings", instance=k, auto_offset_reset="earliest",
                           consumer_timeout_ms=1000) as c:
            for rec in c:
                print(rec.partition, rec.offset, rec.key, rec.value)

Pure ctypes over libklog.so (see klog._lib for how it is found; the
environment variable KLOG_LIBRARY overrides).  Errors are KlogError
subclasses carrying the C code.  No callback ever arrives from a C thread:
delivery reports are queued in C and picked up by the thread that calls
``send``, ``flush``, ``poll`` or ``Future.get``.  A directory is opened
once per process: producers, consumers and klog.open of one path share it.

kafka-python's own API (KafkaProducer, KafkaConsumer, KafkaAdminClient)
over a directory or a `klog serve`: :mod:`klog.kafka`.
"""

from ._lib import library_path, version
from .errors import (
    KlogError, CorruptError, FormatError, RecordTooLargeError, ReadOnlyError, LockedError,
    OffsetOutOfRangeError, InvalidNameError, ConfigError, ClosedError, QueueFullError, FencedError,
    DuplicateError, SequenceError, UnknownTopicError, UnknownPartitionError, IllegalStateError,
    DiskFullError, UnknownMemberError, RebalanceInProgressError, UnknownGroupError,
    NotLeaderError, NotEnoughReplicasError, AlreadyExistsError, KlogTimeoutError,
    InvalidArgumentError)
from .instance import Instance, DiskUsage, open  # noqa: A004 - klog.open, as klog_open
from .producer import Producer, Future, RecordMetadata
from .consumer import (Consumer, ConsumerRecord, TopicPartition, OffsetAndMetadata, OffsetAndTimestamp,
                       ConsumerRebalanceListener, CommitFuture)

OFFSET_BEGINNING = -2   # KLOG_OFFSET_BEGINNING: a partition's first record
OFFSET_END = -1         # KLOG_OFFSET_END: a partition's end

__version__ = version()

__all__ = [
    "open", "Instance", "DiskUsage", "Producer", "Future", "RecordMetadata", "Consumer",
    "ConsumerRecord", "TopicPartition", "OffsetAndMetadata", "OffsetAndTimestamp",
    "ConsumerRebalanceListener", "CommitFuture",
    "OFFSET_BEGINNING", "OFFSET_END", "version", "library_path",
    "KlogError", "CorruptError", "FormatError", "RecordTooLargeError", "ReadOnlyError", "LockedError",
    "OffsetOutOfRangeError", "InvalidNameError", "ConfigError", "ClosedError", "QueueFullError",
    "FencedError", "DuplicateError", "SequenceError", "UnknownTopicError", "UnknownPartitionError",
    "IllegalStateError", "DiskFullError", "UnknownMemberError", "RebalanceInProgressError",
    "UnknownGroupError", "NotLeaderError", "NotEnoughReplicasError", "AlreadyExistsError",
    "KlogTimeoutError", "InvalidArgumentError",
]
