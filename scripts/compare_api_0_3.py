"""Parity of nmn's public API against nmn 0.3.5, by introspection of both packages, per framework.

nmn 0.3.5 is never a dependency: install it aside and point ``--old`` at it::

    pip install --no-deps --target /tmp/nmn035 nmn==0.3.5
    python scripts/compare_api_0_3.py --old /tmp/nmn035            # the parity table
    python scripts/compare_api_0_3.py --old /tmp/nmn035 --details  # every missing name, keyword and default

Both packages are called ``nmn``, so each is introspected in its own subprocess (the old one with ``--old`` first
on ``sys.path``); the parent only compares the two JSON descriptions. For every framework the table counts the
old public names and how many the new package lacks, and, over the classes both define, the old constructor
keywords, those missing, those refused on purpose (``nmn.core.names.REFUSED_KEYWORDS``, an error saying why)
and the defaults that changed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")
ROOT = Path(__file__).resolve().parents[1]

_PROBE = r'''
import importlib, inspect, json, re, sys, warnings
warnings.filterwarnings("ignore")
def _default(value):
    """A comparable text for a default: no memory addresses, (1, 1) written as 1."""
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value) and isinstance(value[0], int):
        value = value[0]
    text = repr(value)
    text = re.sub(r" at 0x[0-9a-f]+", "", text)
    return text[:60]


out = {}
for fw in sys.argv[1:]:
    try:
        ns = importlib.import_module("nmn." + fw)
    except Exception as err:  # an old package may fail to import on today's frameworks: report it
        out[fw] = {"error": f"{type(err).__name__}: {err}"}
        continue
    names = list(getattr(ns, "__all__", None) or [n for n in dir(ns) if not n.startswith("_")])
    public = sorted(set(names) | {n for n in dir(ns) if not n.startswith("_")})
    entry = {"names": sorted(set(names)), "importable": public, "signatures": {}}
    for name in public:
        obj = getattr(ns, name, None)
        if not callable(obj) or inspect.ismodule(obj):
            continue
        target = obj
        if inspect.isclass(obj) and "__init__" in obj.__dict__ and not hasattr(obj, "__dataclass_fields__"):
            target = obj.__init__
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):
            continue
        entry["signatures"][name] = {
            p.name: ("<required>" if p.default is p.empty else _default(p.default)) for p in params
            if p.name not in ("self", "parent", "name") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    out[fw] = entry
print("@@JSON@@" + json.dumps(out))
'''


def introspect(path_first: str | None, frameworks=FRAMEWORKS, timeout: float = 900.0) -> dict:
    """``{framework: {"names": [...], "signatures": {name: {keyword: default repr or None}}}}`` of one nmn.

    Args:
        path_first: a directory put first on ``sys.path`` (an nmn installed with ``--target``), or None for
            this checkout.
        frameworks: the framework namespaces to read.
        timeout: seconds allowed for the subprocess (importing six frameworks is slow).
    """
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (path_first or str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        TF_CPP_MIN_LOG_LEVEL="3",
        KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "tensorflow"),
    )
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *frameworks],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd="/" if path_first else str(ROOT),
    )
    marker = [line for line in run.stdout.splitlines() if line.startswith("@@JSON@@")]
    if run.returncode or not marker:
        raise RuntimeError(
            f"introspection of {path_first or ROOT} failed (exit {run.returncode}):\n"
            f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
        )
    return json.loads(marker[-1][len("@@JSON@@") :])


def _refused():
    sys.path.insert(0, str(ROOT))
    from nmn.core.names import REFUSED_KEYWORDS

    return REFUSED_KEYWORDS


def compare(old: dict, new: dict) -> dict:
    """Per framework: the old names missing in new, and per shared class the missing/refused keywords and the
    changed defaults."""
    refused = _refused()
    report = {}
    for fw in old:
        o, n = old[fw], new.get(fw, {})
        if "error" in o or "error" in n:
            report[fw] = {"error": o.get("error") or n.get("error")}
            continue
        missing_names = sorted(set(o["names"]) - set(n.get("importable", n["names"])))
        keywords, missing_kw, refused_kw, changed = 0, [], [], []
        for cls, old_sig in o["signatures"].items():
            if cls not in o["names"]:
                continue
            new_sig = n["signatures"].get(cls)
            if new_sig is None:
                continue
            for key, default in old_sig.items():
                keywords += 1
                if key not in new_sig:
                    (refused_kw if key in refused.get(cls, {}) else missing_kw).append(f"{cls}.{key}")
                elif default != new_sig[key]:
                    changed.append(f"{cls}.{key}: {default} -> {new_sig[key]}")
        report[fw] = {
            "old_names": len(o["names"]),
            "new_names": len(n["names"]),
            "missing_names": missing_names,
            "old_keywords": keywords,
            "missing_keywords": missing_kw,
            "refused_keywords": refused_kw,
            "changed_defaults": changed,
        }
    return report


def table(report: dict) -> str:
    """The parity table as Markdown."""
    lines = [
        "| framework | old names | new names | old names missing | old keywords (shared classes) | missing "
        "| refused (documented) | defaults changed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fw, r in report.items():
        if "error" in r:
            lines.append(f"| {fw} | import failed: {r['error'][:80]} | | | | | | |")
            continue
        lines.append(
            f"| {fw} | {r['old_names']} | {r['new_names']} | {len(r['missing_names'])} | "
            f"{r['old_keywords']} | {len(r['missing_keywords'])} | {len(r['refused_keywords'])} | "
            f"{len(r['changed_defaults'])} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="directory holding nmn 0.3.5 (pip install --target DIR)")
    parser.add_argument("--frameworks", nargs="*", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--details", action="store_true", help="list every missing name, keyword and default")
    parser.add_argument("--json", help="also write the full report to this JSON file")
    args = parser.parse_args(argv)
    if not (Path(args.old) / "nmn" / "__init__.py").is_file():
        parser.error(
            f"--old {args.old}: expected a directory holding nmn/__init__.py "
            "(pip install --no-deps --target DIR nmn==0.3.5)"
        )
    report = compare(introspect(args.old, args.frameworks), introspect(None, args.frameworks))
    print(table(report))
    if args.details:
        for fw, r in report.items():
            if "error" in r:
                continue
            print(f"\n## {fw}")
            for key in ("missing_names", "missing_keywords", "refused_keywords", "changed_defaults"):
                print(f"{key} ({len(r[key])}): " + (", ".join(r[key]) or "-"))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
