"""Builds the disclvlm wheel with libdisclvlm.so.1 inside (disclvlm/_lib/).

The library comes from $DISCLVLM_BUNDLE_LIBRARY (a built or installed
libdisclvlm.so.1, e.g. build/lib/libdisclvlm.so.1), else from a copy already
placed in disclvlm/_lib/. Debug sections are stripped from the bundled copy
when `strip` is available (DISCLVLM_STRIP=0 keeps them).

The wheel is a platform wheel (py3-none-linux_x86_64 on x86_64 Linux): the
Python code is version-independent ctypes, but the bundled library is a
native Debian 12 binary that links the system's OpenBLAS, jansson, libpng,
libjpeg, PCRE2, utf8proc and libarchive. It is not a manylinux wheel.
"""
import os
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

SONAME = "libdisclvlm.so.1"
HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        dest_dir = os.path.join(self.build_lib, "disclvlm", "_lib")
        dest = os.path.join(dest_dir, SONAME)
        src = os.environ.get("DISCLVLM_BUNDLE_LIBRARY")
        if not src:
            src = os.path.join(HERE, "disclvlm", "_lib", SONAME)
        if not os.path.isfile(src):
            raise SystemExit(
                "disclvlm wheel: no library to bundle at %s: set DISCLVLM_BUNDLE_LIBRARY to the "
                "absolute path of a built libdisclvlm.so.1 (e.g. $PWD/build/lib/libdisclvlm.so.1; "
                "pip builds in another directory)" % os.path.abspath(src))
        os.makedirs(dest_dir, exist_ok=True)
        if os.path.abspath(src) != os.path.abspath(dest):
            shutil.copyfile(src, dest)  # follows the symlink to the real file
        os.chmod(dest, 0o755)
        if os.environ.get("DISCLVLM_STRIP", "1") != "0" and shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", dest], check=False)


class BinaryDistribution(Distribution):
    """A distribution with a native part: files go to platlib, not purelib."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(distclass=BinaryDistribution,
      cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel})
