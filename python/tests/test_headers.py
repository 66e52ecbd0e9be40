"""What the binding copies from the C headers, held against them: the error
codes (klog/errors.py), the integer constants and the function prototypes
(klog/_lib.py), and every ctypes Structure's fields, offsets and size,
against a C program generated from the headers (header_layout.py; meson
builds it and passes its path as KLOG_LAYOUT, else it is compiled here with
cc)."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

import klog
from klog import _lib, errors
from conftest import PKG_ROOT

import header_layout

INCLUDE = os.environ.get("KLOG_INCLUDE_DIR") or os.path.join(os.path.dirname(PKG_ROOT), "include")


@pytest.fixture(scope="module")
def texts():
    if not os.path.isfile(os.path.join(INCLUDE, "klog", "error.h")):
        pytest.skip("the C headers are not at %s (set KLOG_INCLUDE_DIR)" % INCLUDE)
    return header_layout.headers(INCLUDE)


@pytest.fixture(scope="module")
def layout(texts, tmp_path_factory):
    exe = os.environ.get("KLOG_LAYOUT")
    if not exe:
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            pytest.skip("KLOG_LAYOUT is not set and there is no C compiler to build it")
        d = tmp_path_factory.mktemp("layout")
        src = d / "klog_layout.c"
        src.write_text(header_layout.c_program(texts))
        exe = str(d / "klog_layout")
        subprocess.run([cc, "-I", INCLUDE, "-o", exe, str(src)], check=True, timeout=120)
    out = subprocess.run([exe], check=True, timeout=60, stdout=subprocess.PIPE, text=True).stdout
    return header_layout.parse_layout(out)


# ---- error codes ---------------------------------------------------------------------

def test_error_codes_match_error_h(texts):
    header = header_layout.error_codes(texts["error.h"])
    assert len(header) >= 20, "error.h parsed to %r" % header
    python = {n: getattr(errors, n) for n in dir(errors) if n.startswith("KLOG_E")}
    assert python == header
    consts = header_layout.int_constants(texts)
    for name, code in header.items():
        assert consts["KLOG_ERR_FIRST"] <= code <= consts["KLOG_ERR_LAST"], name
        assert errors.err_name(code) == name                    # the library agrees
        cls = errors._CLASSES.get(code)
        assert cls is not None and cls is not errors.KlogError, "%s has no exception class" % name
        assert name[len("KLOG_"):] in (cls.__doc__ or ""), "%s's docstring does not name %s" % (cls, name)
        assert type(errors.error_for(code)) is cls


def test_no_stale_code_in_python(texts):
    """A code retired in C (-30913) stays out of the Python mapping."""
    header = set(header_layout.error_codes(texts["error.h"]).values())
    for code in errors._CLASSES:
        assert code in header or -4095 <= code < 0, code       # klog's band, or a -errno


# ---- constants and prototypes --------------------------------------------------------

def test_int_constants_match(texts):
    consts = header_layout.int_constants(texts)
    mine = {n: v for n, v in vars(_lib).items() if n.isupper() and type(v) is int}
    assert {"PARTITION_ANY", "OFFSET_BEGINNING", "OFFSET_END", "OFFSET_DEFAULT", "REBALANCE_ASSIGNED",
            "RESET_EARLIEST", "STATS_JSON"} <= set(mine)
    for name, value in mine.items():
        assert "KLOG_" + name in consts, "klog/_lib.py: %s is not in the headers" % name
        assert consts["KLOG_" + name] == value, name
    assert klog.OFFSET_BEGINNING == consts["KLOG_OFFSET_BEGINNING"]
    assert klog.OFFSET_END == consts["KLOG_OFFSET_END"]


_C_INTS = {
    "int": ctypes.c_int, "unsigned": ctypes.c_uint, "int32_t": ctypes.c_int32, "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64, "size_t": ctypes.c_size_t,
}
_POINTERS = (ctypes.c_char_p, ctypes.c_void_p, ctypes._Pointer, ctypes._CFuncPtr)


def _check_type(ctype_text, py, what):
    """A C type against the ctypes type standing for it: integers by size
    and signedness, pointers (and function pointer typedefs, *_fn) as any
    pointer type."""
    words = [w for w in ctype_text.replace("*", " * ").split() if w not in ("const", "enum", "struct")]
    if "*" in words or (words and words[0].endswith("_fn")):
        assert py is not None and issubclass(py, _POINTERS), "%s: %s is a pointer, not %r" % (what, ctype_text, py)
        return
    base = words[0] if words else "void"
    if base == "void":
        assert py is None, "%s: void, not %r" % (what, py)
        return
    if base.startswith("klog_") or base in ("int",):   # an enum, or int
        base = "int"
    assert base in _C_INTS, "%s: no rule for the C type %r (extend test_headers.py)" % (what, ctype_text)
    want = _C_INTS[base]
    assert py is not None and ctypes.sizeof(py) == ctypes.sizeof(want), "%s: %s is not %r" % (what, ctype_text, py)
    signed = lambda t: t(-1).value == -1   # noqa: E731
    assert signed(py) == signed(want), "%s: %s has the wrong signedness (%r)" % (what, ctype_text, py)


def _param_type(param):
    """'const klog_message *const **msgs' -> 'const klog_message *const **'
    (the parameter's name dropped)."""
    m = re.match(r"^(.*?)\s*\b(\w+)$", param.strip())
    if m and m.group(1).replace("const", "").strip():
        return m.group(1)
    return param.strip()


def test_prototypes_match(texts):
    protos = header_layout.prototypes(texts)
    assert "klog_open" in protos and protos["klog_open"], protos.get("klog_open")
    rets = {}
    for text in texts.values():   # the declared return type of each function
        for m in re.finditer(r"\bKLOG_API\b([^;{(]*?)\b(klog_\w+)\s*\(", text, re.S):
            rets[m.group(2)] = " ".join(m.group(1).split())
    for name, (restype, argtypes) in _lib._PROTOS.items():
        assert name in protos, "%s is declared in klog/_lib.py but not in the headers" % name
        params = protos[name]
        assert len(params) == len(argtypes), "%s: %d parameters in C, %d in Python" % (
            name, len(params), len(argtypes))
        for i, (param, py) in enumerate(zip(params, argtypes)):
            _check_type(_param_type(param), py, "%s parameter %d (%s)" % (name, i + 1, param))
        _check_type(rets[name], restype, "%s's return" % name)


# ---- struct layouts ------------------------------------------------------------------

def _structures():
    return [c for c in vars(_lib).values()
            if isinstance(c, type) and issubclass(c, ctypes.Structure) and c is not ctypes.Structure]


def test_struct_layouts_match(texts, layout):
    declared = header_layout.structs(texts)
    bound = _structures()
    assert len(bound) >= 8
    for cls in bound:
        cname = getattr(cls, "_c_name_", None)
        assert cname, "%s has no _c_name_ naming its C struct" % cls.__name__
        assert cname in declared and cname in layout, "%s: no struct %s in the headers" % (cls.__name__, cname)
        fields = [f for f, _ in cls._fields_]
        assert fields == [f for f, _ in declared[cname]], "%s: fields differ from %s" % (cls.__name__, cname)
        assert ctypes.sizeof(cls) == layout[cname]["size"], "%s: sizeof %d, C says %d" % (
            cls.__name__, ctypes.sizeof(cls), layout[cname]["size"])
        for (name, off, size), (_, py) in zip(layout[cname]["fields"], cls._fields_):
            assert getattr(cls, name).offset == off, "%s.%s: offset" % (cname, name)
            assert getattr(cls, name).size == size, "%s.%s: size" % (cname, name)
        for (name, ctype_text), (_, py) in zip(declared[cname], cls._fields_):
            _check_type(ctype_text, py, "%s.%s" % (cname, name))


def test_library_struct_sizes(inst):
    """The library's own struct_size of what it hands out is the sizeof
    the headers give (a library newer than its headers would differ)."""
    from klog._lib import GroupInfo
    inst.create_topic("s")
    with klog.Consumer("s", instance=inst, group_id="g", auto_offset_reset="earliest") as c:
        for _ in range(100):
            if c.assignment():
                break
            c.poll(timeout_ms=100)
        c.commit()
    info = ctypes.POINTER(GroupInfo)()
    errors.check(_lib.lib.klog_group_info_get(inst._handle(), b"g", ctypes.byref(info)))
    try:
        gi = info.contents
        assert gi.struct_size == ctypes.sizeof(GroupInfo)
        assert gi.offset_count == 1
        assert gi.offsets[0].contents.struct_size == ctypes.sizeof(_lib.GroupOffset)
    finally:
        _lib.lib.klog_group_info_free(info)
