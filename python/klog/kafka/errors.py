"""kafka-python's exception names (kafka.errors).

With kafka-python installed these are its own classes (every name of
kafka.errors is here), so that ``except UnknownTopicOrPartitionError``
catches the error whether it came from a local directory or, through
kafka-python, from a server.  Without it, look-alikes with the same names,
bases and error numbers.

Errors of the local directory are klog's (klog.KlogError) raised as the
kafka-python class that means the same (``translate``); the KlogError is
the exception's ``__cause__`` and its ``klog_error``.
"""

import contextlib
import errno as _errno

from .. import errors as _k
from ._compat import kafka_python

if kafka_python is not None:
    from kafka.errors import *  # noqa: F401,F403 - every name of kafka.errors
    from kafka.errors import BrokerResponseError, KafkaError
else:
    class KafkaError(RuntimeError):
        retriable = False
        invalid_metadata = False

        def __str__(self):
            if not self.args:
                return self.__class__.__name__
            return "{0}: {1}".format(self.__class__.__name__, super().__str__())

    class BrokerResponseError(KafkaError):
        errno = None
        message = None
        description = None

        def __str__(self):
            return "[Error {0}] {1}".format(self.errno, super().__str__())


def _define(name, base, errno=None, retriable=False, description=None):
    """kafka-python's class `name` if it has one, else a look-alike."""
    g = globals()
    if name in g:
        return g[name]
    if kafka_python is not None:   # kafka-python keeps a few outside kafka.errors
        import kafka.consumer.fetcher
        found = getattr(kafka.consumer.fetcher, name, None)
        if isinstance(found, type) and issubclass(found, KafkaError):
            g[name] = found
            return found
    attrs = {"retriable": retriable, "__doc__": description, "__module__": __name__}
    if errno is not None:
        attrs.update(errno=errno, message=name, description=description)
    cls = g[name] = type(name, (base,), attrs)
    return cls


# (name, base, Kafka error number, retriable, description): the names klog.kafka raises or
# that kafka-python programs catch; kafka-python's own are used where it has them.
for _n, _b, _e, _r, _d in [
    ("IllegalStateError", KafkaError, None, False, "a call not valid in the current state"),
    ("IllegalArgumentError", KafkaError, None, False, "a bad argument"),
    ("NoBrokersAvailable", KafkaError, None, True, "no broker answered"),
    ("KafkaTimeoutError", KafkaError, None, True, "the operation did not finish in time"),
    ("KafkaConfigurationError", KafkaError, None, False, "a configuration refused"),
    ("KafkaConnectionError", KafkaError, None, True, "the connection failed"),
    ("UnsupportedCodecError", KafkaError, None, False, "a codec not supported"),
    ("CommitFailedError", KafkaError, None, False,
     "the commit failed: the group rebalanced and the partitions went to another member"),
    ("NoError", BrokerResponseError, 0, False, "no error"),
    ("UnknownError", BrokerResponseError, -1, False, "an unexpected error"),
    ("OffsetOutOfRangeError", BrokerResponseError, 1, False, "offset out of range"),
    ("CorruptRecordException", BrokerResponseError, 2, False, "a record failed its checksum"),
    ("UnknownTopicOrPartitionError", BrokerResponseError, 3, True, "no such topic or partition"),
    ("NotLeaderForPartitionError", BrokerResponseError, 6, True, "not the partition's leader"),
    ("RequestTimedOutError", BrokerResponseError, 7, True, "the request timed out"),
    ("MessageSizeTooLargeError", BrokerResponseError, 10, False, "a record larger than allowed"),
    ("InvalidTopicError", BrokerResponseError, 17, False, "an invalid topic name"),
    ("RecordListTooLargeError", BrokerResponseError, 18, False, "a batch larger than allowed"),
    ("IllegalGenerationError", BrokerResponseError, 22, False, "a stale group generation"),
    ("InvalidGroupIdError", BrokerResponseError, 24, False, "an invalid group id"),
    ("UnknownMemberIdError", BrokerResponseError, 25, False, "not a member of the group"),
    ("RebalanceInProgressError", BrokerResponseError, 27, False, "the group is rebalancing"),
    ("InvalidTimestampError", BrokerResponseError, 32, False, "a timestamp out of range"),
    ("UnsupportedVersionError", BrokerResponseError, 35, False, "a protocol version not supported"),
    ("TopicAlreadyExistsError", BrokerResponseError, 36, False, "the topic exists"),
    ("InvalidPartitionsError", BrokerResponseError, 37, False, "an invalid number of partitions"),
    ("InvalidReplicationFactorError", BrokerResponseError, 38, False, "an invalid replication factor"),
    ("InvalidReplicationAssignmentError", BrokerResponseError, 39, False, "an invalid replica assignment"),
    ("InvalidConfigurationError", BrokerResponseError, 40, False, "an invalid topic configuration"),
    ("UnsupportedForMessageFormatError", BrokerResponseError, 43, False, "a message format not supported"),
    ("PolicyViolationError", BrokerResponseError, 44, False, "refused by policy"),
    ("OutOfOrderSequenceNumberError", BrokerResponseError, 45, False, "idempotent producer: sequence gap"),
    ("DuplicateSequenceNumberError", BrokerResponseError, 46, False, "idempotent producer: batch already written"),
    ("KafkaStorageError", BrokerResponseError, 56, True, "the log directory failed (disk full, I/O error)"),
    ("NonEmptyGroupError", BrokerResponseError, 68, False, "the group has active members"),
    ("GroupIdNotFoundError", BrokerResponseError, 69, False, "no such group"),
]:
    _define(_n, _b, _e, _r, _d)
NoOffsetForPartitionError = _define("NoOffsetForPartitionError", KafkaError, None, False,
                                    "no committed offset and auto_offset_reset='none'")
del _n, _b, _e, _r, _d

# klog's code -> the name of the kafka-python class meaning the same
_MAP_NAMES = {
    _k.KLOG_ECORRUPT: "CorruptRecordException",
    _k.KLOG_EFORMAT: "UnsupportedForMessageFormatError",
    _k.KLOG_ETOOBIG: "MessageSizeTooLargeError",
    _k.KLOG_EREADONLY: "KafkaStorageError",
    _k.KLOG_ELOCKED: "KafkaError",
    _k.KLOG_EOFFSET: "OffsetOutOfRangeError",
    _k.KLOG_EBADNAME: "InvalidTopicError",
    _k.KLOG_ECONF: "KafkaConfigurationError",
    _k.KLOG_ECLOSED: "IllegalStateError",
    _k.KLOG_EQUEUEFULL: "KafkaTimeoutError",
    _k.KLOG_EFENCED: "IllegalGenerationError",
    _k.KLOG_EDUPLICATE: "DuplicateSequenceNumberError",
    _k.KLOG_ESEQUENCE: "OutOfOrderSequenceNumberError",
    _k.KLOG_EUNKNOWN_TOPIC: "UnknownTopicOrPartitionError",
    _k.KLOG_EUNKNOWN_PARTITION: "UnknownTopicOrPartitionError",
    _k.KLOG_ESTATE: "IllegalStateError",
    _k.KLOG_EDISKFULL: "KafkaStorageError",
    _k.KLOG_EUNKNOWN_MEMBER: "UnknownMemberIdError",
    _k.KLOG_EREBALANCE: "RebalanceInProgressError",
    _k.KLOG_EUNKNOWN_GROUP: "GroupIdNotFoundError",
    -_errno.ENOSPC: "KafkaStorageError",
    -_errno.EIO: "KafkaStorageError",
    -_errno.EEXIST: "TopicAlreadyExistsError",
    -_errno.ETIMEDOUT: "KafkaTimeoutError",
    -_errno.EINVAL: "IllegalArgumentError",
    -_errno.ENOENT: "IllegalStateError",          # a partition not assigned
}

# where an error happened changes what kafka-python calls it
_IN_NAMES = {
    "commit": {_k.KLOG_EFENCED: "CommitFailedError", _k.KLOG_EREBALANCE: "CommitFailedError",
               _k.KLOG_EUNKNOWN_MEMBER: "CommitFailedError"},
    "group": {_k.KLOG_EBADNAME: "InvalidGroupIdError", _k.KLOG_ESTATE: "NonEmptyGroupError"},
    "admin": {_k.KLOG_ECONF: "InvalidConfigurationError"},
}

_G = globals()
_MAP = {code: _G[name] for code, name in _MAP_NAMES.items()}
_IN = {where: {code: _G[name] for code, name in codes.items()} for where, codes in _IN_NAMES.items()}


def translate(e, where=None):
    """The kafka-python exception for a KlogError ``e`` (``where``:
    "commit", "group", "admin" or None), with ``klog_error`` set to e."""
    cls = _IN.get(where, {}).get(e.code) or _MAP.get(e.code, KafkaError)
    out = cls(str(e))
    out.klog_error = e
    out.__cause__ = e
    return out


@contextlib.contextmanager
def translated(where=None):
    """Raise a KlogError of the block as its kafka-python exception."""
    try:
        yield
    except _k.KlogError as e:
        raise translate(e, where) from e
