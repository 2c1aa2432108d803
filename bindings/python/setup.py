"""Build iok's Python bindings with setuptools, offline:

    pip install --no-build-isolation ./bindings/python

The extension compiles the library's own sources (src/, patterns/,
transports/ of this checkout) into iok._iok, so nothing but libuv and
c-ares (libuv1-dev, libc-ares-dev) needs to be installed.
"""
import glob
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def sources():
    out = sorted(glob.glob(os.path.join(HERE, "*.c")))
    for d in ("src", "src/discovery", "patterns", "transports"):
        out += sorted(glob.glob(os.path.join(ROOT, d, "*.c")))
    # Absolute paths: objects then go under build/temp.*/<path>, never
    # next to the library's sources.
    return out


ext = Extension(
    "iok._iok",
    sources=sources(),
    include_dirs=[os.path.join(ROOT, "include"), os.path.join(ROOT, "src"), ROOT],
    define_macros=[("Py_LIMITED_API", "0x030B0000"), ("IOK_STATIC_BUILD", "1")],
    extra_compile_args=["-std=gnu11", "-fvisibility=hidden", "-Wno-unused-parameter"],
    libraries=["uv", "cares", "pthread"],
    py_limited_api=True,
)

setup(ext_modules=[ext], options={"bdist_wheel": {"py_limited_api": "cp311"}})
