
import pytest
import torch

from deceptionlab.core.errors import ModelError
from deceptionlab.models.loading import load_evaluated_model, load_model


def test_a_folder_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(tmp_path, "float32")


def test_a_folder_without_an_adapter_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="no LoRA adapter here"):
        load_evaluated_model(tiny_model_dir, tmp_path, "float32", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_asking_for_cuda_without_one_is_a_clear_error(tiny_model_dir):
    with pytest.raises(ModelError, match="no CUDA device"):
        load_evaluated_model(tiny_model_dir, None, "float32", "cuda")
    model, _ = load_evaluated_model(tiny_model_dir, None, "float32", "auto")
    assert next(model.parameters()).device.type == "cpu"
    assert not model.training
