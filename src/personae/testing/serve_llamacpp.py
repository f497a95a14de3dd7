"""``python -m personae.testing.serve_llamacpp ARGS``: ``llama_cpp.server`` with the model
loaded the way personae's own llama.cpp backend loads it (no extra weight buffers: see
``LlamaCppOptions.extra_buffers``), so the server runs wherever the in-process backend runs.
"""

from __future__ import annotations

import runpy

from personae.models.llamacpp import model_params

if __name__ == "__main__":
    with model_params(extra_buffers=False):
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
