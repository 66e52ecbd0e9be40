#!/usr/bin/python3
"""Run test_kafka_python.py (meson test kafka_python).

Exits 77 (meson's "skipped") when pytest, kafka-python or the codec modules
it compresses with (python3-snappy, python3-lz4, python3-zstandard) are not
installed.  No cache or bytecode is written into the source tree.
"""
import os
import sys

sys.dont_write_bytecode = True
try:
    import pytest
    import kafka.record.default_records  # noqa: F401
    import snappy  # noqa: F401
    import lz4.frame  # noqa: F401
    import zstandard  # noqa: F401
except ImportError as e:
    print("%s: the kafka-python cross-check is skipped (build.sh installs it)" % e, file=sys.stderr)
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", os.path.join(here, "test_kafka_python.py")] + sys.argv[1:]))
