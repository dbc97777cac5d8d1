"""``nmn serve --write-triton-repo DIR`` writes a Triton model repository."""

from __future__ import annotations

import argparse

import onnx

from nmn.serve.cli import add_commands, main as cli_main


def test_add_commands_registers_serve_and_predict():
    parser = argparse.ArgumentParser(prog="nmn")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["serve", "m.onnx", "--host", "0.0.0.0", "--port", "9000", "--workers", "3",
         "--max-batch", "8", "--batch-timeout-ms", "1.5"]
    )
    assert (args.path, args.host, args.port, args.workers, args.max_batch, args.batch_timeout_ms) == (
        "m.onnx", "0.0.0.0", 9000, 3, 8, 1.5
    )
    assert callable(args.func)
    args = parser.parse_args(["predict", "http://h:1", "--input", "x.npy", "--model", "m",
                              "--input-name", "x", "--output", "y.npy"])
    assert (args.url, args.input, args.model, args.input_name, args.output) == (
        "http://h:1", "x.npy", "m", "x", "y.npy"
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

    mlp = (out / "mlp" / "config.pbtxt").read_text()
    assert 'name: "mlp"' in mlp and 'platform: "onnxruntime_onnx"' in mlp
    assert "max_batch_size: 8" in mlp and "dynamic_batching {" in mlp
    assert 'name: "x"\n    data_type: TYPE_FP32\n    dims: [ 4 ]' in mlp  # batch dim left to Triton
    assert 'name: "y"\n    data_type: TYPE_FP32\n    dims: [ 3 ]' in mlp
    pair = (out / "pair" / "config.pbtxt").read_text()
    assert 'name: "k"\n    data_type: TYPE_INT64\n    dims: [ 2 ]' in pair
    fixed = (out / "fixed" / "config.pbtxt").read_text()
    assert "max_batch_size: 0" in fixed and "dims: [ 2, 3 ]" in fixed
    assert "dynamic_batching" not in fixed
