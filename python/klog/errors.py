"""klog's exceptions: one KlogError carrying the C return code, with a
subclass per common code so that callers can catch what they handle.

Every exception has ``.code`` (the negative C code, e.g. -30914),
``.name`` (klog_err_name: "KLOG_EUNKNOWN_TOPIC", "ENOSPC") and a message:
the one-line message the C call wrote into its error buffer when it has
one, else klog_strerror(code).
"""

import errno as _errno

from ._lib import lib

__all__ = [
    "KlogError", "CorruptError", "FormatError", "RecordTooLargeError", "ReadOnlyError",
    "LockedError", "OffsetOutOfRangeError", "InvalidNameError", "ConfigError", "ClosedError",
    "QueueFullError", "FencedError", "DuplicateError", "SequenceError", "UnknownTopicError",
    "UnknownPartitionError", "IllegalStateError", "DiskFullError", "UnknownMemberError",
    "RebalanceInProgressError", "UnknownGroupError", "NotLeaderError", "NotEnoughReplicasError",
    "AlreadyExistsError", "KlogTimeoutError", "InvalidArgumentError", "error_for", "check",
]

# klog's own band (error.h); the values are pinned by the C library, and
# tests/test_headers.py holds this list (and _CLASSES) against error.h.
# -30913 is retired (it was the test-only KLOG_ECRASHED, now the testing
# library's KLOG_TESTING_ECRASHED, outside the band).
KLOG_ECORRUPT = -30900
KLOG_EFORMAT = -30901
KLOG_ETOOBIG = -30902
KLOG_EREADONLY = -30903
KLOG_ELOCKED = -30904
KLOG_EOFFSET = -30905
KLOG_EBADNAME = -30906
KLOG_ECONF = -30907
KLOG_ECLOSED = -30908
KLOG_EQUEUEFULL = -30909
KLOG_EFENCED = -30910
KLOG_EDUPLICATE = -30911
KLOG_ESEQUENCE = -30912
KLOG_EUNKNOWN_TOPIC = -30914
KLOG_EUNKNOWN_PARTITION = -30915
KLOG_ESTATE = -30916
KLOG_EDISKFULL = -30917
KLOG_EUNKNOWN_MEMBER = -30918
KLOG_EREBALANCE = -30919
KLOG_EUNKNOWN_GROUP = -30920
KLOG_ENOTLEADER = -30921
KLOG_ENOTENOUGH = -30922


def strerror(code):
    """klog_strerror(code) as a str."""
    return lib.klog_strerror(code).decode("utf-8", "replace")


def err_name(code):
    """klog_err_name(code) as a str."""
    return lib.klog_err_name(code).decode("utf-8", "replace")


class KlogError(Exception):
    """A klog call failed.  ``code`` is the C return code (negative),
    ``name`` its symbolic name, ``message`` the human-readable text."""

    def __init__(self, code, message=None, context=None):
        self.code = code
        self.name = err_name(code)
        self.message = message or strerror(code)
        self.context = context
        text = "%s: %s" % (context, self.message) if context else self.message
        super().__init__("%s (%s)" % (text, self.name))

    def __reduce__(self):
        return (error_for, (self.code, self.message, self.context))


class CorruptError(KlogError):
    """KLOG_ECORRUPT: data failed validation (checksum, framing, index)."""


class FormatError(KlogError):
    """KLOG_EFORMAT: unknown format version or codec."""


class RecordTooLargeError(KlogError):
    """KLOG_ETOOBIG: record or batch larger than the configured maximum."""


class ReadOnlyError(KlogError):
    """KLOG_EREADONLY: the partition turned read-only after a failed fsync."""


class LockedError(KlogError):
    """KLOG_ELOCKED: the data directory is open elsewhere (another process,
    or another klog.open of the same directory)."""


class OffsetOutOfRangeError(KlogError):
    """KLOG_EOFFSET: offset out of range."""


class InvalidNameError(KlogError, ValueError):
    """KLOG_EBADNAME: invalid topic or group name."""


class ConfigError(KlogError, ValueError):
    """KLOG_ECONF: unknown configuration key or bad value; the message names the key."""


class ClosedError(KlogError):
    """KLOG_ECLOSED: the handle is closed."""


class QueueFullError(KlogError):
    """KLOG_EQUEUEFULL: the producer's buffer stayed full for max_block_ms."""


class FencedError(KlogError):
    """KLOG_EFENCED: stale group generation or producer epoch."""


class DuplicateError(KlogError):
    """KLOG_EDUPLICATE: idempotent producer: batch already written."""


class SequenceError(KlogError):
    """KLOG_ESEQUENCE: idempotent producer: sequence gap."""


class UnknownTopicError(KlogError):
    """KLOG_EUNKNOWN_TOPIC: no such topic."""


class UnknownPartitionError(KlogError):
    """KLOG_EUNKNOWN_PARTITION: no such partition."""


class IllegalStateError(KlogError):
    """KLOG_ESTATE: the call is not valid in the handle's current state."""


class DiskFullError(KlogError):
    """KLOG_EDISKFULL (the instance's disk budget is used up) or -ENOSPC."""


class UnknownMemberError(KlogError):
    """KLOG_EUNKNOWN_MEMBER: not (or no longer) a member of the group."""


class RebalanceInProgressError(KlogError):
    """KLOG_EREBALANCE: the group is rebalancing."""


class UnknownGroupError(KlogError):
    """KLOG_EUNKNOWN_GROUP: no such consumer group."""


class NotLeaderError(KlogError):
    """KLOG_ENOTLEADER: this node does not lead the partition (replication)."""


class NotEnoughReplicasError(KlogError):
    """KLOG_ENOTENOUGH: fewer in-sync replicas than min.insync.replicas."""


class AlreadyExistsError(KlogError):
    """-EEXIST: e.g. creating a topic that exists."""


class KlogTimeoutError(KlogError, TimeoutError):
    """-ETIMEDOUT: a flush or a future's get did not finish in time."""


class InvalidArgumentError(KlogError, ValueError):
    """-EINVAL: an argument the C library refused."""


_CLASSES = {
    KLOG_ECORRUPT: CorruptError,
    KLOG_EFORMAT: FormatError,
    KLOG_ETOOBIG: RecordTooLargeError,
    KLOG_EREADONLY: ReadOnlyError,
    KLOG_ELOCKED: LockedError,
    KLOG_EOFFSET: OffsetOutOfRangeError,
    KLOG_EBADNAME: InvalidNameError,
    KLOG_ECONF: ConfigError,
    KLOG_ECLOSED: ClosedError,
    KLOG_EQUEUEFULL: QueueFullError,
    KLOG_EFENCED: FencedError,
    KLOG_EDUPLICATE: DuplicateError,
    KLOG_ESEQUENCE: SequenceError,
    KLOG_EUNKNOWN_TOPIC: UnknownTopicError,
    KLOG_EUNKNOWN_PARTITION: UnknownPartitionError,
    KLOG_ESTATE: IllegalStateError,
    KLOG_EDISKFULL: DiskFullError,
    KLOG_EUNKNOWN_MEMBER: UnknownMemberError,
    KLOG_EREBALANCE: RebalanceInProgressError,
    KLOG_EUNKNOWN_GROUP: UnknownGroupError,
    KLOG_ENOTLEADER: NotLeaderError,
    KLOG_ENOTENOUGH: NotEnoughReplicasError,
    -_errno.ENOSPC: DiskFullError,
    -_errno.EEXIST: AlreadyExistsError,
    -_errno.ETIMEDOUT: KlogTimeoutError,
    -_errno.EINVAL: InvalidArgumentError,
}


def error_for(code, message=None, context=None):
    """The exception instance for a C return code (the subclass if one maps)."""
    return _CLASSES.get(code, KlogError)(code, message, context)


def _errbuf_text(errbuf):
    if errbuf is None:
        return None
    text = errbuf.value.decode("utf-8", "replace").strip()
    return text or None


def check(rc, context=None, errbuf=None):
    """Return rc if it is >= 0, else raise the matching KlogError (with the
    errbuf's message when the call wrote one)."""
    if rc >= 0:
        return rc
    raise error_for(rc, _errbuf_text(errbuf), context)


def closed(what):
    """The ClosedError raised for a Python-side use after close()."""
    return ClosedError(KLOG_ECLOSED, None, "%s is closed" % what)
