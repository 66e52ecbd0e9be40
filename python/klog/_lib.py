"""Loading libklog.so and declaring the C functions this package calls.

Internal: nothing here is API.  Every function used is declared with its
argtypes and restype, so that ctypes converts and checks arguments instead of
guessing (a guessed int return would truncate pointers on 64-bit systems).

Search order for the library:
  1. the path in the environment variable KLOG_LIBRARY;
  2. a libklog.so (or libklog.so.0) inside this package (bundled by
     KLOG_BUNDLE_LIBRARY at pip install time) or next to it;
  3. the libdir the library was installed into, recorded in _buildinfo.py:
     by meson when it installs the package, by setup.py (KLOG_LIBDIR or
     pkg-config) when pip does;
  4. ctypes.util.find_library('klog') (ldconfig's cache, LD_LIBRARY_PATH).
"""

import ctypes
import ctypes.util
import os

from ctypes import (POINTER, Structure, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint32,
                    c_uint64, c_void_p)

__all__ = ["lib", "library_path"]


def _candidates():
    env = os.environ.get("KLOG_LIBRARY")
    if env:
        yield env
        return  # an explicit choice is never second-guessed
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (here, os.path.dirname(here)):
        for name in ("libklog.so", "libklog.so.0"):
            yield os.path.join(d, name)
    try:
        from . import _buildinfo  # written by meson or setup.py at install time
        if _buildinfo.LIBDIR:
            for name in ("libklog.so.0", "libklog.so"):
                yield os.path.join(_buildinfo.LIBDIR, name)
    except ImportError:
        pass
    found = ctypes.util.find_library("klog")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("klog: cannot load libklog.so; set KLOG_LIBRARY to its path. Tried: " +
                      ("; ".join(tried) or "nothing (find_library('klog') found none)"))


lib, library_path = _load()


# ---- structures (must match include/klog/*.h: tests/test_headers.py compares each, by its
# _c_name_, with the layout a C program built from the headers prints) ----------------------

class PartitionInfo(Structure):
    """klog_partition_info (topic.h)."""
    _c_name_ = "klog_partition_info"
    _fields_ = [
        ("struct_size", c_uint32),
        ("partition", c_int32),
        ("start_offset", c_int64),
        ("end_offset", c_int64),
        ("durable_offset", c_int64),
        ("size_bytes", c_uint64),
        ("segments", c_uint32),
        ("error", c_int32),
        ("disk_bytes", c_uint64),
        ("clean_offset", c_int64),
    ]


class Header(Structure):
    """klog_header (producer.h).  key/value are declared char * so that bytes
    assigned to them are pointed to in place (kept alive by the structure);
    lengths are explicit, so embedded NULs are fine."""
    _c_name_ = "klog_header"
    _fields_ = [
        ("key", c_char_p),
        ("key_len", c_size_t),
        ("value", c_char_p),
        ("value_len", c_size_t),
    ]


class Record(Structure):
    """klog_record (producer.h); key/value as in Header."""
    _c_name_ = "klog_record"
    _fields_ = [
        ("struct_size", c_uint32),
        ("partition", c_int32),
        ("key", c_char_p),
        ("key_len", c_size_t),
        ("value", c_char_p),
        ("value_len", c_size_t),
        ("timestamp", c_int64),
        ("headers", POINTER(Header)),
        ("header_count", c_size_t),
        ("opaque", c_void_p),
    ]


class Delivery(Structure):
    """klog_delivery (producer.h).  An array passed to
    klog_producer_poll_deliveries needs struct_size set (in element 0)."""
    _c_name_ = "klog_delivery"
    _fields_ = [
        ("struct_size", c_uint32),
        ("partition", c_int32),
        ("topic", c_char_p),
        ("offset", c_int64),
        ("timestamp", c_int64),
        ("err", c_int),
        ("opaque", c_void_p),
    ]


class Message(Structure):
    """klog_message (consumer.h).  A poll hands out an array of pointers to
    these; every pointer is a view valid until the next poll."""
    _c_name_ = "klog_message"
    _fields_ = [
        ("struct_size", c_uint32),
        ("partition", c_int32),
        ("topic", c_char_p),
        ("offset", c_int64),
        ("timestamp", c_int64),
        ("key", c_void_p),
        ("key_len", c_size_t),
        ("value", c_void_p),
        ("value_len", c_size_t),
        ("header_count", c_size_t),
        ("headers_raw", c_void_p),
        ("headers_raw_len", c_size_t),
    ]


class GroupMember(Structure):
    """klog_group_member (group.h)."""
    _c_name_ = "klog_group_member"
    _fields_ = [
        ("struct_size", c_uint32),
        ("member_id", c_char_p),
        ("instance_id", c_char_p),
        ("client_id", c_char_p),
        ("assignment", c_void_p),   # a klog_partition_list
    ]


class GroupOffset(Structure):
    """klog_group_offset (group.h)."""
    _c_name_ = "klog_group_offset"
    _fields_ = [
        ("struct_size", c_uint32),
        ("partition", c_int32),
        ("topic", c_char_p),
        ("committed", c_int64),
        ("end", c_int64),
        ("lag", c_int64),
        ("metadata", c_char_p),
    ]


class GroupInfo(Structure):
    """klog_group_info (group.h): its lists are arrays of pointers."""
    _c_name_ = "klog_group_info"
    _fields_ = [
        ("struct_size", c_uint32),
        ("generation", c_int32),
        ("group", c_char_p),
        ("state", c_char_p),
        ("protocol", c_char_p),
        ("member_count", c_size_t),
        ("members", POINTER(POINTER(GroupMember))),
        ("offset_count", c_size_t),
        ("offsets", POINTER(POINTER(GroupOffset))),
    ]


# Rebalance callback: runs on the thread that called klog_consumer_poll /
# klog_consumer_close (the consumer's own thread), never a foreign one.
REBALANCE_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_void_p)

PARTITION_ANY = -1
OFFSET_BEGINNING = -2
OFFSET_END = -1
OFFSET_DEFAULT = -1000

REBALANCE_ASSIGNED = 1
REBALANCE_REVOKED = 2
REBALANCE_LOST = 3

RESET_EARLIEST = 1
RESET_LATEST = 2
RESET_TIMESTAMP = 3
RESET_OFFSET = 4
RESET_SHIFT = 5

STATS_JSON = 0

# ---- prototypes -------------------------------------------------------------------------

_vp = c_void_p
_pp = POINTER(c_void_p)
_PROTOS = {
    # version.h, error.h
    "klog_version": (c_int, [POINTER(c_char_p)]),
    "klog_strerror": (c_char_p, [c_int]),
    "klog_err_name": (c_char_p, [c_int]),
    # conf.h
    "klog_conf_new": (c_int, [_pp]),
    "klog_conf_free": (None, [_vp]),
    "klog_conf_set": (c_int, [_vp, c_char_p, c_char_p, c_char_p, c_size_t]),
    "klog_conf_get": (c_int, [_vp, c_char_p, c_char_p, c_size_t]),
    # instance.h
    "klog_open": (c_int, [_pp, c_char_p, _vp, c_char_p, c_size_t]),
    "klog_close": (c_int, [_vp]),
    "klog_io_backend": (c_char_p, [_vp]),
    "klog_disk_usage": (c_int, [_vp, POINTER(c_uint64), POINTER(c_uint64)]),
    "klog_free": (None, [_vp]),
    "klog_stats": (c_int, [_vp, c_int, POINTER(c_void_p)]),
    # topic.h
    "klog_topic_create": (c_int, [_vp, c_char_p, c_int, _vp, c_char_p, c_size_t]),
    "klog_topic_delete": (c_int, [_vp, c_char_p]),
    "klog_topic_add_partitions": (c_int, [_vp, c_char_p, c_int]),
    "klog_topic_list": (c_int, [_vp, POINTER(POINTER(c_char_p)), POINTER(c_size_t)]),
    "klog_topic_list_free": (None, [POINTER(c_char_p), c_size_t]),
    "klog_topic_delete_records": (c_int, [_vp, c_char_p, c_int32, c_int64, POINTER(c_int64)]),
    "klog_topic_describe": (c_int, [_vp, c_char_p, POINTER(PartitionInfo), c_size_t, c_char_p, c_size_t]),
    # producer.h
    "klog_producer_new": (c_int, [_vp, _vp, _pp, c_char_p, c_size_t]),
    "klog_producer_send": (c_int, [_vp, c_char_p, POINTER(Record)]),
    "klog_producer_flush": (c_int, [_vp, c_int]),
    "klog_producer_poll_deliveries": (c_int, [_vp, POINTER(Delivery), c_size_t, c_int]),
    "klog_producer_outstanding": (c_int64, [_vp]),
    "klog_producer_close": (c_int, [_vp]),
    # consumer.h
    "klog_consumer_new": (c_int, [_vp, _vp, _pp, c_char_p, c_size_t]),
    "klog_consumer_assign": (c_int, [_vp, c_char_p, c_int32, c_int64]),
    "klog_consumer_unassign": (c_int, [_vp, c_char_p, c_int32]),
    "klog_consumer_poll": (c_int, [_vp, c_int, POINTER(POINTER(POINTER(Message)))]),
    "klog_message_header": (c_int, [POINTER(Message), c_size_t, POINTER(c_void_p), POINTER(c_size_t),
                                    POINTER(c_void_p), POINTER(c_size_t)]),
    "klog_consumer_seek": (c_int, [_vp, c_char_p, c_int32, c_int64]),
    "klog_consumer_seek_time": (c_int, [_vp, c_char_p, c_int32, c_int64]),
    "klog_consumer_position": (c_int, [_vp, c_char_p, c_int32, POINTER(c_int64)]),
    "klog_consumer_lag": (c_int, [_vp, c_char_p, c_int32, POINTER(c_int64)]),
    "klog_consumer_wakeup": (c_int, [_vp]),
    "klog_consumer_fd": (c_int, [_vp]),
    "klog_consumer_close": (c_int, [_vp]),
    # group.h
    "klog_partition_list_new": (c_int, [_pp]),
    "klog_partition_list_free": (None, [_vp]),
    "klog_partition_list_add": (c_int, [_vp, c_char_p, c_int32, c_int64, c_char_p]),
    "klog_partition_list_count": (c_size_t, [_vp]),
    "klog_partition_list_get": (c_int, [_vp, c_size_t, POINTER(c_char_p), POINTER(c_int32), POINTER(c_int64),
                                        POINTER(c_char_p), POINTER(c_int)]),
    "klog_consumer_subscribe": (c_int, [_vp, POINTER(c_char_p), c_size_t]),
    "klog_consumer_unsubscribe": (c_int, [_vp]),
    "klog_consumer_set_rebalance_cb": (c_int, [_vp, REBALANCE_FN, _vp]),
    "klog_consumer_assignment": (c_int, [_vp, _pp]),
    "klog_consumer_commit": (c_int, [_vp, _vp, c_int]),
    "klog_consumer_committed": (c_int, [_vp, c_char_p, c_int32, POINTER(c_int64), c_char_p, c_size_t]),
    "klog_consumer_member_id": (c_int, [_vp, c_char_p, c_size_t, POINTER(c_int32)]),
    "klog_group_list": (c_int, [_vp, POINTER(POINTER(c_char_p)), POINTER(c_size_t)]),
    "klog_group_list_free": (None, [POINTER(c_char_p), c_size_t]),
    # json is returned as char * to be freed with klog_free: keep it a raw pointer
    "klog_group_describe": (c_int, [_vp, c_char_p, POINTER(c_void_p)]),
    "klog_group_info_get": (c_int, [_vp, c_char_p, POINTER(POINTER(GroupInfo))]),
    "klog_group_info_free": (None, [POINTER(GroupInfo)]),
    "klog_group_committed": (c_int, [_vp, c_char_p, c_char_p, c_int32, POINTER(c_int64)]),
    "klog_group_reset_offsets": (c_int, [_vp, c_char_p, c_char_p, c_int32, c_int, c_int64]),
    "klog_group_delete": (c_int, [_vp, c_char_p]),
}

for _name, (_res, _args) in _PROTOS.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args
del _name, _res, _args, _f


def version():
    """The linked library's version string ("0.1.0")."""
    s = c_char_p()
    lib.klog_version(ctypes.byref(s))
    return s.value.decode()
