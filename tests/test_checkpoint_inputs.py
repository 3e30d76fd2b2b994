"""A damaged or mismatched HF checkpoint, or a misspelled checkpoint path, is one clear error naming
the file (issue 25; before: a JSONDecodeError / SafetensorError traceback, a multi-line mismatch
report, and a misspelled local path blamed on the HF hub)."""
import json

import huggingface_hub
import pytest
from flax import nnx

from xtreme_jax.data.errors import DataError
from xtreme_jax.data.tokenization import resolve
from xtreme_jax.models import CheckpointMismatchError, export_hf, from_pretrained
from xtreme_jax.models.encoder import Encoder, preset


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny XLM-R checkpoint written by export_hf (config.json + model.safetensors)."""
    cfg = preset("tiny").replace(num_layers=2, vocab_size=64)
    with nnx.use_eager_sharding(False):
        params = nnx.to_pure_dict(nnx.state(Encoder(cfg, rngs=nnx.Rngs(0))))
    path = tmp_path_factory.mktemp("ckpt") / "model"
    export_hf(str(path), cfg, params)
    return path


def copy(src, dst, **edit):
    dst.mkdir()
    hf = json.loads((src / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**hf, **edit}))
    (dst / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    return dst


def test_the_fixture_loads(hf_dir):
    assert from_pretrained(str(hf_dir)).cfg.num_layers == 2


@pytest.mark.parametrize("name,problem", [
    ("config.json", "damaged or truncated (JSONDecodeError: "),
    ("model.safetensors", "cannot read the weights (SafetensorError: "),
])
def test_a_truncated_file_is_named(hf_dir, tmp_path, name, problem):
    d = copy(hf_dir, tmp_path / "c")
    data = (d / name).read_bytes()
    (d / name).write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError) as e:
        from_pretrained(str(d))
    assert str(e.value).startswith(f"{d / name}: {problem}")
    assert str(e.value).endswith("-- fix: download or export the checkpoint again")


def test_a_config_json_that_disagrees_with_its_weights_is_one_line(hf_dir, tmp_path):
    d = copy(hf_dir, tmp_path / "m", num_hidden_layers=3, intermediate_size=64)
    with pytest.raises(CheckpointMismatchError) as e:
        from_pretrained(str(d))
    msg = str(e.value)
    assert "\n" not in msg and isinstance(e.value, DataError)  # bad input: main exits 2 with this line
    assert msg.startswith(f"{d}: checkpoint does not match the model config (missing (")
    assert "encoder.layer.2.attention.self.query.weight" in msg
    assert "mis-shaped (6): encoder.layer.0.intermediate.dense.bias: checkpoint (128,) -> expected (64,)" in msg
    assert msg.endswith("use the config.json saved with these weights")


def test_a_misspelled_local_path_is_no_such_directory_before_any_hub_call(tmp_path, monkeypatch):
    def no_hub(*a, **k):
        raise AssertionError("the hub was asked")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    (tmp_path / "runs" / "demo" / "target").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for name, hint in [("runs/demo/targt", " (did you mean runs/demo/target?)"),
                       ("runs/targt", ""), (str(tmp_path / "runs/demo/targt"),
                                            f" (did you mean {tmp_path / 'runs/demo/target'}?)"),
                       ("nosuch/dir/x", " (nosuch/dir does not exist either)")]:
        with pytest.raises(FileNotFoundError) as e:
            resolve(name)
        assert str(e.value) == (f"{name}: not a checkpoint directory (expected config.json and model.safetensors "
                                f"or pytorch_model.bin inside): no such directory{hint}"), name
    with pytest.raises(OSError, match="the hub was asked"):  # owner/name: a hub id
        resolve("FacebookAI/xlm-roberta-base")
