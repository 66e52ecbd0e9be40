#!/usr/bin/python3
"""Run the Python binding's pytest suite (meson test --suite python).

Exits 77 (meson's "skipped") when pytest is not installed.  Extra
arguments go to pytest.  No cache or bytecode is written into the source
tree.
"""
import os
import sys

sys.dont_write_bytecode = True
try:
    import pytest
except ImportError:
    print("python3-pytest is not installed: the Python tests are skipped", file=sys.stderr)
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", os.path.join(here, "tests")] + sys.argv[1:]))
