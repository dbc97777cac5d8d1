#!/usr/bin/env python
"""Train the same Yat MLP on MNIST in every nmn framework, then cross-check the trained models through ONNX.

Model (every framework): ``Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10)``, 235,148 parameters
(asserted). AdamW pinned the same everywhere (lr 3e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on all
parameters, bias correction on), batch 128, seed 0, float32, inputs in [0, 1]. Every framework sees the same
shuffled mini-batches (a numpy permutation per epoch); initial weights are each framework's own initialisers.
The test set is evaluated whole (all 10,000 images, the last batch partial).

After training the model is exported with ``nmn.interchange.export``; onnxruntime evaluates the file on the
whole test set (its accuracy must equal the framework's and its predictions must agree on >= 99.99% of the
images); the file is then loaded with ``nmn.interchange.load`` into every framework (each in its own process,
Keras once per backend) and evaluated there. Everything lands in a JSON receipt.

Examples::

    python scripts/mnist_parity.py --framework torch --epochs 3 --data mnist.npz --report docs/results/
    python scripts/mnist_parity.py --framework keras --keras-backend jax --epochs 3 --report out.json
    python scripts/mnist_parity.py --framework all --epochs 3 --data mnist.npz --report docs/results/

``--data`` defaults to the environment variable ``NMN_MNIST``. ``--framework all`` runs every framework in its
own subprocess, then the cross-framework matrix, then writes ``mnist_summary.md`` and ``mnist_loss.png`` into the
report folder.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from _mnist import FRAMEWORKS, KERAS_BACKENDS, LABELS, RUN_NAMES, common, framework_module, run_name, split_run_name

MODEL_TEXT = "Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10)"
NOT_AVAILABLE = "not available yet"


def log(msg: str) -> None:
    print(msg, flush=True)


def _utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _interchange_missing(err: BaseException) -> bool:
    """True when ``err`` says a framework's interchange (or layer) module does not exist yet."""
    return isinstance(err, ImportError) and "No module named 'nmn.interchange." in str(err)


# ---------------------------------------------------------------------------------------------- one framework
def run_one(args, framework: str, keras_backend: str | None, data: dict, data_info: dict) -> dict:
    name = run_name(framework, keras_backend)
    hp = common.HParams(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    receipt = {
        "experiment": "mnist_parity",
        "run": name,
        "label": LABELS.get(name, name),
        "framework": framework,
        "keras_backend": keras_backend,
        "started_utc": _utc(),
        "command": [sys.executable, *sys.argv],
        "model": MODEL_TEXT,
        "params_expected": common.EXPECTED_PARAMS,
        "data": data_info,
        "hparams": {
            "epochs": hp.epochs,
            "batch_size": hp.batch_size,
            "seed": hp.seed,
            "dtype": "float32",
            "shuffle": "numpy default_rng([seed, epoch]).permutation, identical in every framework",
            "init": (
                "shared: one numpy set of initial weights loaded into every framework "
                "(Yat kernels Glorot-normal, readout Glorot-uniform, biases 0, alphas 1)"
                if args.init == "shared"
                else "native: each framework's own initialisers, seeded"
            ),
        },
        "optimizer": hp.optimizer_json(),
    }
    t_import = time.perf_counter()
    mod = framework_module(framework, keras_backend)
    receipt["versions"] = mod.versions()
    receipt["machine"] = common.machine()
    trainer = mod.Trainer(hp, init=common.shared_init(hp.seed) if args.init == "shared" else None)
    receipt["import_and_build_seconds"] = time.perf_counter() - t_import
    n_params = trainer.param_count()
    receipt["params"] = n_params
    if n_params != common.EXPECTED_PARAMS:
        raise AssertionError(f"{name}: the model has {n_params:,} parameters, expected {common.EXPECTED_PARAMS:,}")
    log(
        f"[{name}] {MODEL_TEXT}: {n_params:,} parameters; {len(data['x_train'])} train / "
        f"{len(data['x_test'])} test images"
    )

    history = common.train(trainer, data, hp, name, progress=not args.no_progress, log=log)
    receipt["history"] = history
    logits = trainer.logits(data["x_test"], 1000)
    final = common.metrics(logits, data["y_test"])
    train_s = sum(h["seconds"] for h in history)
    receipt["final"] = {
        "test_accuracy": final["accuracy"],
        "test_correct": final["correct"],
        "test_loss": final["loss"],
        "test_images": final["n"],
        "train_seconds_total": train_s,
        "seconds_per_epoch": train_s / max(len(history), 1),
        "seconds_per_epoch_after_first": (sum(h["seconds"] for h in history[1:]) / (len(history) - 1))
        if len(history) > 1
        else None,
    }
    receipt["onnx"] = onnx_check(args, trainer, name, data, logits)
    receipt["finished_utc"] = _utc()
    return receipt


def onnx_check(args, trainer, name: str, data: dict, logits) -> dict:
    """Export, then evaluate the file in onnxruntime against the framework's own logits."""
    onnx_dir = Path(args.onnx_dir)
    onnx_dir.mkdir(parents=True, exist_ok=True)
    path = onnx_dir / f"mnist_{name}.onnx"
    try:
        t0 = time.perf_counter()
        trainer.export(path, data["x_test"][:2])
        export_s = time.perf_counter() - t0
    except Exception as err:
        status = NOT_AVAILABLE if _interchange_missing(err) else "export failed"
        log(f"[{name}] ONNX export: {status}: {type(err).__name__}: {err}")
        return {
            "status": status,
            "error": f"{type(err).__name__}: {err}",
            "traceback": None if status == NOT_AVAILABLE else traceback.format_exc(limit=6),
        }
    out = {
        "status": "ok",
        "file": common.file_info(path),
        "export_seconds": export_s,
        "params_in_file": common.onnx_param_count(path),
    }
    t0 = time.perf_counter()
    ort_logits = common.onnx_logits(path, data["x_test"])
    ort = common.compare(ort_logits, logits.astype(ort_logits.dtype), data["y_test"])
    ort["seconds"] = time.perf_counter() - t0
    ort["accuracy_equal"] = ort["correct"] == common.metrics(logits, data["y_test"])["correct"]
    ort["agreement_ok"] = ort["agreement"] >= 0.9999
    out["onnxruntime"] = ort
    ok = ort["accuracy_equal"] and ort["agreement_ok"] and out["params_in_file"] == common.EXPECTED_PARAMS
    out["status"] = "ok" if ok else "mismatch"
    log(
        f"[{name}] ONNX {path.name}: onnxruntime acc {100 * ort['accuracy']:.2f}% "
        f"(framework {100 * common.metrics(logits, data['y_test'])['accuracy']:.2f}%), agreement "
        f"{100 * ort['agreement']:.2f}%, max |dlogit| {ort['max_abs_logit_diff']:.2e} -> {out['status']}"
    )
    return out


# ----------------------------------------------------------------------------------------------- cross-check
def crosscheck_into(target: str, files: list[str], data: dict) -> list[dict]:
    """Load every ONNX file into ``target`` (a run name) and evaluate it on the test set (this process)."""
    framework, backend = split_run_name(target)
    results = []
    try:
        mod = framework_module(framework, backend)
    except Exception as err:
        status = NOT_AVAILABLE if _interchange_missing(err) else "import failed"
        return [{"file": f, "target": target, "status": status, "error": f"{type(err).__name__}: {err}"} for f in files]
    for f in files:
        row = {"file": f, "target": target}
        try:
            t0 = time.perf_counter()
            logits = mod.load_logits(f, data["x_test"], 1000)
            row["seconds"] = time.perf_counter() - t0
            row.update(common.compare(logits, common.onnx_logits(f, data["x_test"]), data["y_test"]))
            row["status"] = "ok"
        except Exception as err:
            row["status"] = NOT_AVAILABLE if _interchange_missing(err) else "failed"
            row["error"] = f"{type(err).__name__}: {err}"
            if row["status"] == "failed":
                row["traceback"] = traceback.format_exc(limit=8)
        log(
            f"[crosscheck {target}] {Path(f).name}: {row['status']}"
            + (
                f", acc {100 * row['accuracy']:.2f}%, agreement with onnxruntime {100 * row['agreement']:.2f}%"
                if row["status"] == "ok"
                else f" ({row.get('error', '')[:200]})"
            )
        )
        results.append(row)
    return results


def _data_args(args) -> list[str]:
    out = []
    if args.data:
        out += ["--data", args.data]
    if args.digits:
        out += ["--digits"]
    if args.limit_train:
        out += ["--limit-train", str(args.limit_train)]
    if args.limit_test:
        out += ["--limit-test", str(args.limit_test)]
    return out


def crosscheck_subprocesses(args, files: list[str], targets=RUN_NAMES) -> dict[str, list[dict]]:
    """One subprocess per target framework (Keras once per backend), each loading every file."""
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            out = Path(tmp) / f"{target}.json"
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--crosscheck-into",
                target,
                "--out",
                str(out),
                *_data_args(args),
                "--onnx",
                *files,
            ]
            log(f"[crosscheck] loading {len(files)} file(s) into {target}")
            proc = subprocess.run(
                cmd, env=_child_env(target), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
            )
            for line in proc.stdout.splitlines():
                if line.startswith("[crosscheck"):
                    log(line)
            if out.exists():
                table[target] = json.loads(out.read_text())
            else:
                tail = "\n".join(proc.stdout.splitlines()[-15:])
                table[target] = [
                    {
                        "file": f,
                        "target": target,
                        "status": "crashed",
                        "error": f"exit status {proc.returncode}: {tail}",
                    }
                    for f in files
                ]
    return table


def _child_env(target: str) -> dict:
    env = dict(os.environ)
    fw, backend = split_run_name(target)
    if fw == "keras":
        env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def attach_crosscheck(receipt: dict, table: dict[str, list[dict]]) -> None:
    onnx_info = receipt.get("onnx", {})
    if onnx_info.get("status") not in ("ok", "mismatch"):
        return
    path = onnx_info["file"]["path"]
    load_into = {}
    for target, rows in table.items():
        for row in rows:
            if row["file"] == path:
                load_into[target] = {k: v for k, v in row.items() if k not in ("file", "target")}
    onnx_info["load_into"] = load_into


# ------------------------------------------------------------------------------------------------- reporting
def receipt_path(report: str, name: str) -> Path:
    p = Path(report)
    if p.suffix == ".json":
        return p
    return p / f"mnist_{name}.json"


def portable(obj):
    """A receipt without the machine's file layout: paths inside the checkout relative to it, other absolute paths
    by their file name, the interpreter as ``python``."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if isinstance(obj, str) and obj == sys.executable:
        return "python"
    if isinstance(obj, str) and os.path.isabs(obj) and "\n" not in obj:
        p = Path(obj)
        try:
            return p.resolve().relative_to(ROOT.resolve()).as_posix()
        except ValueError:
            return p.name
    return obj


def write_json(path: Path, obj) -> None:
    from nmn.interchange._atomic import write_bytes

    write_bytes(path, (json.dumps(portable(obj), indent=2, default=_jsonable) + "\n").encode())


def _jsonable(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def write_summary(report_dir: Path, receipts: dict[str, dict], failures: dict[str, str], args) -> Path:
    lines = [
        "# MNIST parity: one Yat MLP in six frameworks, cross-checked through ONNX",
        "",
        f"Model `{MODEL_TEXT}`; AdamW (lr {args.lr}, betas (0.9, 0.999), eps 1e-8, weight decay 0.01, bias "
        f"correction on), batch {args.batch_size}, {args.epochs} epoch(s), seed {args.seed}, float32. "
        "Every framework sees the same shuffled mini-batches; "
        + (
            "every framework starts from the same initial weights (`--init shared`: one numpy draw, Yat kernels "
            "Glorot-normal, readout Glorot-uniform, biases 0, alphas 1)"
            if getattr(args, "init", "native") == "shared"
            else "initial weights come from each framework's own initialisers (`--init native`)"
        )
        + ". Test metrics are over the whole test set.",
        "",
    ]
    any_r = next(iter(receipts.values()), None)
    if any_r:
        m, d = any_r["machine"], any_r["data"]
        lines += [
            (
                f"Data: `{Path(d.get('path') or 'digits').name}` ({d['n_train']:,} train / {d['n_test']:,} test "
                f"images). Machine: {m['platform']}, {m['usable_cpus']} usable CPU(s) (cpu_count "
                f"{m['cpu_count']}), CPU only."
            ),
            "",
        ]
    lines += ["Command: `" + " ".join(["python", "scripts/mnist_parity.py", *portable(sys.argv[1:])]) + "`", ""]
    reused = getattr(args, "reused", None)
    if reused:
        lines += [
            "Receipts reused from an earlier run of the same command without `--only` (same settings): "
            + ", ".join(f"{n} ({t})" for n, t in reused.items())
            + ".",
            "",
        ]
    lines += [
        "## Results",
        "",
        (
            "| Framework | Params | Test acc | Test loss | Total (s) | s / epoch | s / epoch after 1st | "
            "ONNX (onnxruntime) acc | ORT agreement | Epochs | Load avg |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in RUN_NAMES:
        r = receipts.get(name)
        if r is None:
            if name in failures:
                lines.append(f"| {LABELS[name]} | — | failed | | | | | | | | |")
            continue
        f, o = r["final"], r.get("onnx", {})
        ort = o.get("onnxruntime")
        ort_acc = _pct(ort["accuracy"]) if ort else o.get("status", "—")
        agree = f"{100 * ort['agreement']:.2f} % ({ort['disagreements']} differ)" if ort else "—"
        after = f"{f['seconds_per_epoch_after_first']:.2f}" if f.get("seconds_per_epoch_after_first") else "—"
        n_ep = len(r["history"])
        loads = [v for h in r["history"] for v in h.get("load_average_1min", [])]
        load = f"{sum(loads) / len(loads):.1f}" if loads else "—"
        lines.append(
            f"| {r['label']} | {r['params']:,} | {_pct(f['test_accuracy'])} | {f['test_loss']:.4f} | "
            f"{f['train_seconds_total']:.2f} | {f['seconds_per_epoch']:.2f} | {after} | {ort_acc} | {agree} "
            f"| {n_ep}{'' if n_ep == args.epochs else ' (reduced)'} | {load} |"
        )
    lines += [
        "",
        (
            "Total and s / epoch are training wall time (the first epoch includes JIT compilation where the "
            "framework compiles); evaluation time is recorded separately in the receipts. Load avg is the "
            "machine's 1-minute load average around the training epochs: above the CPU count, other processes "
            "were competing for the cores and the times are inflated accordingly."
        ),
        "",
        "## Train loss per epoch",
        "",
    ]
    max_ep = max((len(r["history"]) for r in receipts.values()), default=0)
    lines += ["| Framework | " + " | ".join(f"Epoch {i}" for i in range(max_ep)) + " |", "|---|" + "---|" * max_ep]
    for name in RUN_NAMES:
        r = receipts.get(name)
        if r:
            cells = [f"{h['train_loss']:.4f}" for h in r["history"]] + [""] * (max_ep - len(r["history"]))
            lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "![train loss](mnist_loss.png)",
        "",
        "## Cross-framework ONNX check",
        "",
        (
            "Rows: the framework that trained and exported the model. Columns: the framework that loaded the file "
            "with `nmn.interchange.load` and evaluated it on the test set (test accuracy; `*` marks a load whose "
            "predictions differ from onnxruntime's on some image)."
        ),
        "",
    ]
    targets = [t for t in RUN_NAMES]
    lines += [
        "| trained in \\ loaded into | onnxruntime | " + " | ".join(targets) + " |",
        "|---|---|" + "---|" * len(targets),
    ]
    notes = []
    for name in RUN_NAMES:
        r = receipts.get(name)
        if not r:
            continue
        o = r.get("onnx", {})
        if "onnxruntime" not in o:
            lines.append(f"| {name} | {o.get('status', '—')} | " + " | ".join("—" for _ in targets) + " |")
            if o.get("error"):
                notes.append(f"- {name} export: {o['status']}: {o['error'][:300]}")
            continue
        cells = []
        for t in targets:
            c = o.get("load_into", {}).get(t)
            if c is None:
                cells.append("—")
            elif c["status"] == "ok":
                cells.append(_pct(c["accuracy"]) + ("" if c["disagreements"] == 0 else "*"))
            else:
                cells.append(c["status"])
                if c["status"] != NOT_AVAILABLE or t == targets[0]:
                    notes.append(f"- {name} -> {t}: {c['status']}: {c.get('error', '')[:300]}")
        lines.append(f"| {name} | {_pct(o['onnxruntime']['accuracy'])} | " + " | ".join(cells) + " |")
    missing_t = sorted(
        {
            t
            for r in receipts.values()
            for t, c in r.get("onnx", {}).get("load_into", {}).items()
            if c["status"] == NOT_AVAILABLE
        }
    )
    if missing_t:
        notes.append(f"- `nmn.interchange.load` was not available yet for: {', '.join(missing_t)}.")
    if failures:
        for name, err in failures.items():
            notes.append(f"- {name} training run failed: {err[:400]}")
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines += [
        "",
        (
            "Receipts: `mnist_<framework>.json` next to this file (per-epoch history, parameter count, "
            "library versions, machine, the ONNX file's sha256 and the cross-check table)."
        ),
        "",
    ]
    from nmn.interchange._atomic import write_bytes

    return write_bytes(report_dir / "mnist_summary.md", "\n".join(lines).encode())


def write_plot(report_dir: Path, receipts: dict[str, dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name in RUN_NAMES:
        r = receipts.get(name)
        if not r:
            continue
        curve = [pt for h in r["history"] for pt in h.get("train_loss_curve", [])]
        if curve:
            (line,) = ax.plot([p[0] for p in curve], [p[1] for p in curve], lw=1.2, alpha=0.85, label=r["label"])
            color = line.get_color()
        else:
            color = None
        ax.plot(
            [h["epoch"] + 1 for h in r["history"]],
            [h["train_loss"] for h in r["history"]],
            "o",
            ms=4,
            color=color,
            label=None if curve else r["label"],
        )
    ax.set_xlabel("epoch (lines: mean loss of each 25 batches; dots: mean over the epoch)")
    ax.set_ylabel("train loss (cross-entropy)")
    ax.set_yscale("log")
    ax.set_title("Yat MLP on MNIST: train loss per framework")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from nmn.interchange._atomic import write_bytes

    path = write_bytes(report_dir / "mnist_loss.png", lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------------- all
def run_all(args) -> int:
    report_dir = Path(args.report)
    if report_dir.suffix == ".json":
        raise SystemExit("--framework all writes one receipt per framework: --report must be a folder")
    report_dir.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else list(RUN_NAMES)
    receipts, failures = {}, {}
    for name in names:
        fw, backend = split_run_name(name)
        epochs = args.mlx_epochs if (fw == "mlx" and args.mlx_epochs) else args.epochs
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--framework",
            fw,
            "--epochs",
            str(epochs),
            "--report",
            str(receipt_path(str(report_dir), name)),
            "--batch-size",
            str(args.batch_size),
            "--lr",
            str(args.lr),
            "--seed",
            str(args.seed),
            "--init",
            args.init,
            "--onnx-dir",
            args.onnx_dir,
            "--no-crosscheck",
            *_data_args(args),
        ]
        if fw == "mlx" and args.mlx_limit_train:  # argparse keeps the last --limit-train
            cmd += ["--limit-train", str(args.mlx_limit_train)]
        if backend:
            cmd += ["--keras-backend", backend]
        if args.no_progress:
            cmd.append("--no-progress")
        log(f"=== {name}: {' '.join(cmd[1:])}")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=_child_env(name), check=False)
        log(f"=== {name}: exit status {proc.returncode} after {time.perf_counter() - t0:.1f} s")
        rp = receipt_path(str(report_dir), name)
        if proc.returncode == 0 and rp.exists():
            receipts[name] = json.loads(rp.read_text())
            if "file" in receipts[name].get("onnx", {}):  # the receipt names it portably; the file is here
                receipts[name]["onnx"]["file"]["path"] = str(Path(args.onnx_dir) / f"mnist_{name}.onnx")
        elif rp.exists() and json.loads(rp.read_text()).get("error"):
            failures[name] = json.loads(rp.read_text())["error"]
        else:
            failures[name] = f"exit status {proc.returncode}"
    if args.only:  # the other frameworks' receipts of an earlier run in the same folder join the summary
        for name in RUN_NAMES:
            rp = receipt_path(str(report_dir), name)
            if name not in names and rp.exists():
                earlier = json.loads(rp.read_text())
                if "history" in earlier:
                    receipts[name] = earlier
                    args.reused = {**getattr(args, "reused", {}), name: earlier.get("started_utc")}
                    log(f"=== {name}: reusing the receipt of {earlier.get('started_utc')} ({rp})")
    files = [
        r["onnx"]["file"]["path"]
        for r in receipts.values()
        if "file" in r.get("onnx", {}) and Path(r["onnx"]["file"]["path"]).exists()
    ]
    if files and not args.no_crosscheck:
        table = crosscheck_subprocesses(args, files)
        for name, r in receipts.items():
            attach_crosscheck(r, table)
            write_json(receipt_path(str(report_dir), name), r)
    summary = write_summary(report_dir, receipts, failures, args)
    plot = write_plot(report_dir, receipts)
    log(f"wrote {summary} and {plot}")
    log(summary.read_text())
    bad = [n for n, r in receipts.items() if r.get("onnx", {}).get("status") == "mismatch"]
    return 1 if (failures or bad) else 0


# ------------------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--framework", choices=[*FRAMEWORKS, "all"], default="torch")
    p.add_argument(
        "--keras-backend",
        choices=KERAS_BACKENDS,
        default=None,
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow); fixed per process",
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data", default=None, help=f"an mnist.npz-style file (default: ${common.ENV_DATA})")
    p.add_argument(
        "--digits",
        action="store_true",
        help="use scikit-learn's bundled 8x8 digits upsampled to 28x28 instead of MNIST (smoke runs)",
    )
    p.add_argument(
        "--report",
        default=None,
        help="receipt path (.json) or folder (receipt mnist_<framework>.json; with all: also the summary)",
    )
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--limit-test", type=int, default=None, help="use only the first N test images")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init",
        choices=("native", "shared"),
        default="native",
        help="native: each framework's own initialisers (default, as in the post); shared: the same "
        "numpy initial weights in every framework, so runs differ only by floating-point rounding",
    )
    p.add_argument(
        "--onnx-dir",
        default=str(ROOT / "build" / "mnist_onnx"),
        help="where the exported ONNX files go (default: build/mnist_onnx, git-ignored)",
    )
    p.add_argument(
        "--no-crosscheck",
        action="store_true",
        help="skip loading the ONNX file into the other frameworks (onnxruntime is still checked)",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.add_argument(
        "--only",
        default=None,
        help="with --framework all: train only this comma-separated subset of "
        + ",".join(RUN_NAMES)
        + "; the others' receipts already in the report folder are reused for the "
        "cross-check, the summary and the plot",
    )
    p.add_argument("--mlx-epochs", type=int, default=None, help="with --framework all: epochs for MLX only")
    p.add_argument(
        "--mlx-limit-train", type=int, default=None, help="with --framework all: training images for MLX only"
    )
    p.add_argument("--crosscheck-into", default=None, help=argparse.SUPPRESS)
    p.add_argument("--onnx", nargs="*", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def load_data(args) -> tuple[dict, dict]:
    if args.digits:
        data, info = common.load_digits_28(), {"path": None, "source": "sklearn.datasets.load_digits (8x8 -> 28x28)"}
    else:
        path = common.resolve_data_path(args.data)
        data = common.load_mnist(path)
        info = {"path": str(path), "sha256": common.file_info(path)["sha256"]}
    data = common.limit(data, args.limit_train, args.limit_test)
    info.update(n_train=len(data["x_train"]), n_test=len(data["x_test"]))
    return data, info


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.epochs < 1:
        raise SystemExit("--epochs must be >= 1")
    try:
        data, data_info = load_data(args)
    except common.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.crosscheck_into:
        rows = crosscheck_into(args.crosscheck_into, args.onnx or [], data)
        write_json(Path(args.out), rows)
        return 0
    if args.report is None:
        args.report = str(ROOT / "docs" / "results")
    if args.framework == "all":
        return run_all(args)
    backend = (
        (args.keras_backend or os.environ.get("KERAS_BACKEND", "tensorflow")) if args.framework == "keras" else None
    )
    name = run_name(args.framework, backend)
    path = receipt_path(args.report, name)
    try:
        receipt = run_one(args, args.framework, backend, data, data_info)
    except Exception as err:
        write_json(
            path,
            {
                "experiment": "mnist_parity",
                "run": name,
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(),
            },
        )
        raise
    if not args.no_crosscheck and receipt["onnx"].get("status") in ("ok", "mismatch"):
        table = crosscheck_subprocesses(args, [receipt["onnx"]["file"]["path"]])
        attach_crosscheck(receipt, table)
    write_json(path, receipt)
    log(f"[{name}] receipt: {path}")
    return 1 if receipt["onnx"].get("status") == "mismatch" else 0


if __name__ == "__main__":
    sys.exit(main())
