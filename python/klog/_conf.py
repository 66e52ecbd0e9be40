"""Python keyword arguments to a klog_conf (internal)."""

import ctypes

from . import errors
from ._lib import lib


def key_name(key):
    """linger_ms -> "linger.ms"; dotted keys pass through unchanged."""
    return key.replace("_", ".")


def value_text(value):
    """Conf values as the strings klog_conf_set parses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


class Conf:
    """Owns a klog_conf built from a dict; use as a context manager or free()."""

    def __init__(self, conf=None):
        self.handle = ctypes.c_void_p()
        errors.check(lib.klog_conf_new(ctypes.byref(self.handle)), "klog_conf_new")
        try:
            for key, value in (conf or {}).items():
                self.set(key, value)
        except BaseException:
            self.free()
            raise

    def set(self, key, value):
        name = key_name(key)
        errbuf = ctypes.create_string_buffer(512)
        rc = lib.klog_conf_set(self.handle, name.encode(), value_text(value).encode(), errbuf,
                               ctypes.sizeof(errbuf))
        if rc < 0 and not errbuf.value:
            errbuf.value = ("%s: %s" % (name, errors.strerror(rc))).encode()
        errors.check(rc, None, errbuf)

    def free(self):
        if self.handle:
            lib.klog_conf_free(self.handle)
            self.handle = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()
