"""How `pip install .` builds the lyricmt package, from the repository root or
from python/ (each has a setup.py that calls this): make builds the shared
library (build/liblyricmt.so.0) with the repository's own Makefile and
compilers, and the package carries a copy of it beside its Python code."""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

SONAME = "liblyricmt.so.0"


def setup_lyricmt(repo, package_root):
    repo = os.path.abspath(repo)

    class BuildWithLibrary(build_py):
        def run(self):
            super().run()
            jobs = os.environ.get("LYRICMT_MAKE_JOBS", str(min(os.cpu_count() or 1, 8)))
            try:
                subprocess.check_call(["make", "-C", repo, "-j" + jobs, "build/" + SONAME])
            except (OSError, subprocess.CalledProcessError) as e:
                raise SystemExit("lyricmt: building the library failed (%s); its Debian packages come with "
                                 "sh scripts/install-deps.sh" % e)
            dest = os.path.join(self.build_lib, "lyricmt")
            os.makedirs(dest, exist_ok=True)
            shutil.copyfile(os.path.join(repo, "build", SONAME), os.path.join(dest, SONAME))

    class BinaryDistribution(Distribution):
        """The wheel holds a compiled library: tagged for this platform, not pure Python."""

        def has_ext_modules(self):
            return True

    setup(
        name="lyricmt",
        version="0.4.0",
        description="English to Korean lyric translation (M2M100 / SMaLL-100) with the lyricmt engine",
        packages=["lyricmt"],
        package_dir={"": package_root},
        python_requires=">=3.8",
        cmdclass={"build_py": BuildWithLibrary},
        distclass=BinaryDistribution,
        zip_safe=False,
        options={"build": {"build_base": os.path.join(repo, "build", "python")},
                 "egg_info": {"egg_base": os.path.join(repo, "build", "python")}},
    )
