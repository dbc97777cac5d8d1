"""``nmn serve --write-triton-repo DIR`` writes a Triton model repository."""

from __future__ import annotations

import argparse

import onnx
import pytest

from nmn.serve.cli import add_commands
from nmn.serve.cli import main as cli_main


def test_add_commands_registers_serve_and_predict():
    parser = argparse.ArgumentParser(prog="nmn")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "serve",
            "m.onnx",
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--workers",
            "3",
            "--max-batch",
            "8",
            "--batch-timeout-ms",
            "1.5",
        ]
    )
    assert (args.path, args.host, args.port, args.workers, args.max_batch, args.batch_timeout_ms) == (
        "m.onnx",
        "0.0.0.0",
        9000,
        3,
        8,
        1.5,
    )
    assert callable(args.func)
    args = parser.parse_args(
        ["predict", "http://h:1", "--input", "x.npy", "--model", "m", "--input-name", "x", "--output", "y.npy"]
    )
    assert (args.url, args.input, args.model, args.input_name, args.output) == (
        "http://h:1",
        "x.npy",
        "m",
        "x",
        "y.npy",
    )
    assert callable(args.func)


def test_write_triton_repo(model_dir, tmp_path, capsys):
    out = tmp_path / "repo"
    assert cli_main(["serve", str(model_dir), "--write-triton-repo", str(out), "--max-batch", "8"]) == 0
    assert "mlp" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["fixed", "mlp", "pair", "square"]
    for name in ("fixed", "mlp", "pair", "square"):
        assert (out / name / "config.pbtxt").is_file()
        model = onnx.load(str(out / name / "1" / "model.onnx"))
        onnx.checker.check_model(model, full_check=True)
    # The nmn function travels into the Triton copy.
    assert [f.name for f in onnx.load(str(out / "square" / "1" / "model.onnx")).functions] == ["Square"]

    mc = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] is not installed")
    from google.protobuf import text_format

    def parse(name):  # Triton's own schema: an unknown field or a bad value fails here
        return text_format.Parse((out / name / "config.pbtxt").read_text(), mc.ModelConfig())

    def tensors(items):
        return [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in items]

    mlp = parse("mlp")
    assert (mlp.name, mlp.platform, mlp.max_batch_size) == ("mlp", "onnxruntime_onnx", 8)
    assert mlp.HasField("dynamic_batching") and mlp.dynamic_batching.max_queue_delay_microseconds == 2000
    assert tensors(mlp.input) == [("x", "TYPE_FP32", [4])]  # batch dim left to Triton
    assert tensors(mlp.output) == [("y", "TYPE_FP32", [3])]
    pair = parse("pair")
    assert tensors(pair.input) == [("a", "TYPE_FP32", [2]), ("k", "TYPE_INT64", [2])]
    assert tensors(pair.output) == [("sum", "TYPE_FP32", [2]), ("neg", "TYPE_FP32", [2])]
    fixed = parse("fixed")
    assert fixed.max_batch_size == 0 and not fixed.HasField("dynamic_batching")
    assert tensors(fixed.input) == [("x", "TYPE_FP32", [2, 3])]
    square = parse("square")
    assert square.max_batch_size == 8 and tensors(square.input) == [("x", "TYPE_FP32", [3])]


def test_triton_config_without_batching_keeps_symbolic_dims(model_dir, tmp_path):
    mc = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] is not installed")
    from google.protobuf import text_format

    out = tmp_path / "repo"
    assert cli_main(["serve", str(model_dir / "pair.onnx"), "--write-triton-repo", str(out)]) == 0
    cfg = text_format.Parse((out / "pair" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert cfg.max_batch_size == 0 and [list(t.dims) for t in cfg.input] == [[-1, 2], [-1, 2]]
