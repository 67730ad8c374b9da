# The cdylib is built by cargo through setuptools-rust (no Python binding: ctypes loads it)
# and bundled as meshlink/libmeshlink.so.
import os

from setuptools import setup
from setuptools_rust import Binding, RustExtension

setup(rust_extensions=[RustExtension("meshlink.libmeshlink", path="../Cargo.toml", binding=Binding.NoBinding,
                                 debug=os.environ.get("MESHLINK_DEBUG_BUILD") == "1")])
