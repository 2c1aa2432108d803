"""Build iok's Python bindings with setuptools, offline:

    pip install --no-build-isolation ./bindings/python

The extension iok._iok uses iok's public header only and links the shared
library libiok.  By default the build makes that library itself, with
CMake, from this checkout (the same CMakeLists.txt as any other build: only
the library target, no tests or tools), and ships it inside the package
next to _iok.*.so, which finds it through an $ORIGIN rpath; so nothing but
cmake, pkg-config, libuv, c-ares and libcrypto (libuv1-dev,
libc-ares-dev, libssl-dev) needs to be installed.

With IOK_USE_INSTALLED=1 in the environment it links an installed libiok
found by pkg-config instead (`pkg-config --cflags --libs iok`; set
PKG_CONFIG_PATH for a non-standard prefix) and ships nothing but the
extension; the installed library must then stay where it is.
"""
import glob
import os
import shutil
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
USE_INSTALLED = os.environ.get("IOK_USE_INSTALLED", "") not in ("", "0")


def pkg_config(*args):
    out = subprocess.run(["pkg-config", *args, "iok"], check=True, capture_output=True, text=True)
    return out.stdout.split()


class BuildExt(build_ext):
    """Builds libiok with CMake first, unless an installed one is used."""

    def build_extension(self, ext):
        if USE_INSTALLED:
            flags = pkg_config("--cflags", "--libs")
            ext.include_dirs += [f[2:] for f in flags if f.startswith("-I")]
            ext.library_dirs += [f[2:] for f in flags if f.startswith("-L")]
            ext.runtime_library_dirs += [f[2:] for f in flags if f.startswith("-L")]
            return super().build_extension(ext)
        libdir = self.build_libiok()
        ext.library_dirs.append(libdir)
        # The extension loads the copy shipped beside it.
        ext.extra_link_args.append("-Wl,-rpath,$ORIGIN")
        super().build_extension(ext)
        dest = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        # The soname file (libiok.so.MAJOR, the name the extension's NEEDED
        # holds; a symlink in the build tree), copied as a plain file.
        soname = min(glob.glob(os.path.join(libdir, "libiok.so.*")), key=len)
        shutil.copyfile(soname, os.path.join(dest, os.path.basename(soname)))

    def build_libiok(self):
        bdir = os.path.join(os.path.abspath(self.build_temp), "libiok")
        subprocess.run([
            "cmake", "-S", ROOT, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release",
            "-DIOK_BUILD_TESTS=OFF", "-DIOK_BUILD_TOOLS=OFF", "-DIOK_BUILD_INTEROP=OFF",
            "-DIOK_BUILD_BENCH=OFF", "-DIOK_BUILD_PYTHON=OFF", "-DIOK_WERROR=OFF",
        ], check=True, stdout=subprocess.DEVNULL)
        jobs = os.environ.get("IOK_BUILD_JOBS", "2")
        subprocess.run(["cmake", "--build", bdir, "--target", "iok", "-j", jobs], check=True,
                       stdout=subprocess.DEVNULL)
        return bdir


ext = Extension(
    "iok._iok",
    # Absolute paths: objects then go under build/temp.*/<path>, never next
    # to the sources.
    sources=sorted(glob.glob(os.path.join(HERE, "*.c"))),
    include_dirs=[] if USE_INSTALLED else [os.path.join(ROOT, "include")],
    define_macros=[("Py_LIMITED_API", "0x030B0000")],
    extra_compile_args=["-std=gnu11", "-fvisibility=hidden", "-Wno-unused-parameter"],
    libraries=["iok"],
    py_limited_api=True,
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt},
      options={"bdist_wheel": {"py_limited_api": "cp311"}})
