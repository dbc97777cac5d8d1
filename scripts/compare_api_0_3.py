"""Parity of nmn's public API against nmn 0.3.5, by introspection of both packages, per framework.

nmn 0.3.5 is never a dependency: install it aside and point ``--old`` at it::

    pip install --no-deps --target /tmp/nmn035 nmn==0.3.5
    python scripts/compare_api_0_3.py --old /tmp/nmn035            # the parity table
    python scripts/compare_api_0_3.py --old /tmp/nmn035 --details  # every name and keyword, with the errors
    python scripts/compare_api_0_3.py --old /tmp/nmn035 --keywords # one row per keyword, one column per framework
    git archive REV | tar -x -C /tmp/rev && python scripts/compare_api_0_3.py --old /tmp/nmn035 --new /tmp/rev
    python scripts/compare_api_0_3.py --old tests/data/v03/api_0_3_5.json   # the committed description

``--save-old FILE`` writes the old package's description (``tests/data/v03/api_0_3_5.json`` is nmn 0.3.5's, so
the comparison runs without the old package); ``--write-gaps FILE`` writes what is not parity yet
(``tests/data/v03/api_gaps.json``, which ``tests/compat/test_api_parity.py`` holds the package to).

Both packages are called ``nmn``, so each is introspected in its own subprocess (the old one with ``--old`` first
on ``sys.path``); the parent only compares the two JSON descriptions. For every framework the table counts the
old public names the new package lacks (apart from the names its ``__getattr__`` refuses with an error that
says why: "refused names") and classifies every old keyword of the callables both export: present
(named by the new signature; the changed defaults are listed), refused (building the class with the keyword,
set to a value other than its 0.3 default, raises an error that names it: nmn's "(nmn 0.3) is not supported"
refusals and other errors that say why), missing (Python's or the host's generic unknown-keyword error),
accepted (``**kwargs`` took it and the built object shows no trace of it: silently swallowed) or unchecked (the
class could not be built with small sizes). The new package's subprocess builds each class once per keyword.
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

_PROBE = r"""
import ast, importlib, inspect, json, re, sys, warnings
warnings.filterwarnings("ignore")


def _default(value):
    # A comparable text for a default: no memory addresses, (1, 1) written as 1.
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value) and isinstance(value[0], int):
        value = value[0]
    text = repr(value)
    text = re.sub(r" at 0x[0-9a-f]+", "", text)
    text = re.sub(r"<function (\w+)\.<locals>\.\w+>", r"\1(...)", text)  # initializer factories
    return text[:60]


def _signature(obj):
    # A class's constructor keywords: the dataclass fields (Linen) or __init__ through the MRO (a metaclass's
    # __call__, as Flax NNX has, would hide them from inspect.signature(cls)).
    if inspect.isclass(obj) and not hasattr(obj, "__dataclass_fields__"):
        return inspect.signature(obj.__init__)
    return inspect.signature(obj)


# Required constructor arguments, by name, for building each class once (small sizes; nnx gets its Rngs).
SIZES = {"in_features": 8, "out_features": 8, "features": 8, "units": 8, "filters": 8, "in_channels": 2,
         "out_channels": 2, "kernel_size": 3, "embed_dim": 8, "num_heads": 2, "num_embeddings": 10,
         "embedding_dim": 8, "qkv_features": 8, "dim": 8}
GENERIC = ("unexpected keyword argument", "unrecognized keyword argument", "got an unexpected keyword",
           "unexpected keyword")


def _value(name, default):
    # A value for the keyword that differs from its 0.3 default (a refusal may accept the default).
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return SIZES.get(name, True)
    if isinstance(value, bool):
        return not value
    if value is None:
        return SIZES.get(name, True)
    if isinstance(value, (int, float)):
        return value + 1 if value >= 1 else 0.25
    return value


def _state(obj):
    # The built object's options: its plain and dataclass attributes (parameters, random by nature, left out).
    import dataclasses
    plain = (bool, int, float, str, type(None), tuple)
    return {k: repr(v) for k, v in vars(obj).items()
            if isinstance(v, plain) or (dataclasses.is_dataclass(v) and not isinstance(v, type))}


def _behaviour(ns, fw, cls_name, old_keywords, explicit):
    # {keyword: [outcome, detail]} for the 0.3 keywords this class does not name: refused / missing / accepted.
    cls = getattr(ns, cls_name, None)
    if not inspect.isclass(cls):
        return {}
    extra = {}
    if fw == "nnx":
        from flax import nnx
        extra["rngs"] = nnx.Rngs(0)
    try:
        params = _signature(cls).parameters.values()
    except (TypeError, ValueError):
        params = []
    base = {p.name: SIZES.get(p.name, extra.get(p.name)) for p in params if p.name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and (p.default is p.empty or (p.default is None and p.name in SIZES))}
    if fw == "nnx" and (any(p.kind is p.VAR_KEYWORD for p in params) or "rngs" in base):
        base["rngs"] = extra["rngs"]
    try:
        reference, again = _state(cls(**base)), _state(cls(**base))
        # what differs between two identical builds (auto-numbered names, seeds) says nothing about a keyword
        stable = {k for k in reference if again.get(k) == reference[k]}
    except Exception as err:
        return {k: ["unchecked", f"{cls_name}(**{sorted(base)}) failed: {type(err).__name__}: {err}"[:200]]
                for k in old_keywords if k not in explicit}
    out = {}
    for key, default in old_keywords.items():
        if key in explicit:
            continue
        if key in base:
            out[key] = ["present", "taken through **kwargs (given to build the class)"]
            continue
        value = _value(key, default)
        try:
            instance = cls(**base, **{key: value})
        except Exception as err:
            text = str(err).replace(chr(10), " ")
            generic = any(g in text.lower() for g in GENERIC) and "nmn 0.3" not in text
            out[key] = ["missing" if generic or key not in text else "refused", f"{type(err).__name__}: {text}"[:300]]
        else:
            try:
                kept = getattr(instance, key, KeyError) == value
            except Exception:
                kept = False
            if kept is True:  # forwarded to a base class that keeps it under its name
                out[key] = ["present", f"{key}={value!r} taken through **kwargs and kept as .{key}"]
            elif any(_state(instance).get(k) != reference[k] for k in stable):  # it changed the built options
                out[key] = ["present", f"{key}={value!r} taken through **kwargs; it changes the built options"]
            else:
                out[key] = ["accepted", f"{key}={value!r} taken through **kwargs; no .{key} holds it"]
    return out


frameworks = sys.argv[1:]
old = json.loads(sys.stdin.read() or "{}")  # the old package's description: behaviour is checked against it
out = {}
for fw in frameworks:
    try:
        ns = importlib.import_module("nmn." + fw)
    except Exception as err:  # an old package may fail to import on today's frameworks: report it
        out[fw] = {"error": f"{type(err).__name__}: {err}"}
        continue
    names = list(getattr(ns, "__all__", None) or [n for n in dir(ns) if not n.startswith("_")])
    public = sorted(set(names) | {n for n in dir(ns) if not n.startswith("_")})
    entry = {"names": sorted(set(names)), "importable": public, "signatures": {}, "var_keyword": [],
             "behaviour": {}, "refused_names": {}}
    for name in old.get(fw, {}).get("names", []):  # an old name the module refuses through __getattr__, saying why
        if name in public:
            continue
        try:
            getattr(ns, name)
        except AttributeError as err:
            if "nmn 0.3" in str(err) and name in str(err):
                entry["refused_names"][name] = str(err)[:300]
        except Exception:
            pass
    for name in public:
        obj = getattr(ns, name, None)
        if not callable(obj) or inspect.ismodule(obj):
            continue
        try:
            params = list(_signature(obj).parameters.values())
        except (TypeError, ValueError):
            continue
        entry["signatures"][name] = {
            p.name: ("<required>" if p.default is p.empty else _default(p.default)) for p in params
            if p.name not in ("self", "parent", "name") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if any(p.kind is p.VAR_KEYWORD for p in params):
            entry["var_keyword"].append(name)
    for cls_name, old_sig in old.get(fw, {}).get("signatures", {}).items():
        if cls_name in entry["signatures"]:
            entry["behaviour"][cls_name] = _behaviour(ns, fw, cls_name, old_sig, entry["signatures"][cls_name])
    out[fw] = entry
print("@@JSON@@" + json.dumps(out))
"""


def introspect(path_first: str | None, frameworks=FRAMEWORKS, timeout: float = 900.0, old: dict | None = None) -> dict:
    """``{framework: {"names", "signatures": {name: {keyword: default}}, "behaviour": ...}}`` of one nmn.

    Args:
        path_first: a directory put first on ``sys.path`` (an nmn installed with ``--target``, or another
            checkout), or None for this checkout.
        frameworks: the framework namespaces to read.
        timeout: seconds allowed for the subprocess (importing six frameworks is slow).
        old: the old package's description; given, every old constructor keyword a class does not name is tried
            on the class (built once with small sizes) and its outcome recorded under ``"behaviour"``.
    """
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (path_first or str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        TF_CPP_MIN_LOG_LEVEL="3",
        KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "tensorflow"),
    )
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *frameworks],
        input=json.dumps(old or {}),
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


OUTCOMES = ("present", "refused", "missing", "accepted", "unchecked")


def compare(old: dict, new: dict) -> dict:
    """Per framework: the old public names the new package lacks, and every old keyword of the callables both
    export, classified ``present`` (the new signature names it, ``changed`` listing the defaults that differ; or ``**kwargs`` takes
    it and the built object keeps it under its name),
    ``refused`` (building the class with it raises an error that names it, not Python's or the host's generic
    unknown-keyword error), ``missing`` (that generic error, or a function without it), ``accepted`` (taken by
    ``**kwargs`` without error: swallowed unless the host's base class uses it) or ``unchecked`` (the class could
    not be built with small sizes, or a function takes ``**kwargs``)."""
    report = {}
    for fw in old:
        o, n = old[fw], new.get(fw, {})
        if "error" in o or "error" in n:
            report[fw] = {"error": o.get("error") or n.get("error")}
            continue
        importable = set(n.get("importable", n["names"]))
        r = {"old_names": len(o["names"]), "new_names": len(n["names"])}
        refused_names = n.get("refused_names", {})
        r["missing_names"] = sorted(set(o["names"]) - importable - set(refused_names))
        r["refused_names"] = sorted(set(o["names"]) & set(refused_names))
        r.update({k: [] for k in OUTCOMES}, changed=[], details={})
        for name, old_sig in o["signatures"].items():
            if name not in o["names"] or name not in n["signatures"]:
                continue
            new_sig, seen = n["signatures"][name], n.get("behaviour", {}).get(name, {})
            for key, default in old_sig.items():
                label = f"{name}.{key}"
                if key in new_sig:
                    r["present"].append(label)
                    if default != new_sig[key]:
                        r["changed"].append(f"{label}: {default} -> {new_sig[key]}")
                    continue
                outcome, detail = seen.get(key) or (
                    ("unchecked", "takes **kwargs") if name in n.get("var_keyword", []) else ("missing", "")
                )
                r[outcome].append(label)
                if detail:
                    r["details"][label] = detail
        for name in r["refused_names"]:
            r["details"][name] = refused_names[name]
        r["old_keywords"] = sum(len(r[k]) for k in OUTCOMES)
        report[fw] = r
    return report


def table(report: dict) -> str:
    """The parity table as Markdown (one row per framework)."""
    lines = [
        "| framework | old names | missing names | refused names (say why) | old keywords | present | default changed "
        "| refused (says why) | missing (generic error) | accepted by `**kwargs` | unchecked |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fw, r in report.items():
        if "error" in r:
            lines.append(f"| {fw} | import failed: {r['error'][:80]} | | | | | | | | | |")
            continue
        lines.append(
            f"| {fw} | {r['old_names']} | {len(r['missing_names'])} | {len(r.get('refused_names', []))} | "
            f"{r['old_keywords']} | {len(r['present'])} | "
            f"{len(r['changed'])} | {len(r['refused'])} | {len(r['missing'])} | {len(r['accepted'])} | "
            f"{len(r['unchecked'])} |"
        )
    return "\n".join(lines)


_CANONICAL = {"YatDense": "YatNMN", "Embed": "YatEmbed", "MultiHeadAttention": "MultiHeadYatAttention"}


def _family(name: str) -> str:
    """One label for a class and its aliases: ``YatConv2d`` -> ``YatConv2D`` -> ``YatConv*D``."""
    name = _CANONICAL.get(name, name)
    for stem in ("YatConvTranspose", "YatConv"):
        if name.startswith(stem) and name[len(stem) :] in ("1D", "2D", "3D", "1d", "2d", "3d", ""):
            return f"{stem}*D"
    return name


def keyword_table(report: dict) -> str:
    """Markdown: one row per 0.3 keyword (of a class both packages export) that is not present with the same
    default in all six frameworks, one column per framework: ``✓``, the changed default, ``refused``,
    ``missing`` or ``accepted`` (by ``**kwargs``), each naming the classes when they differ."""
    status = {}  # keyword -> framework -> family -> outcome text
    for fw, r in report.items():
        if "error" in r:
            continue
        changed = {}
        for line in r["changed"]:
            label, _, change = line.partition(": ")
            changed[label] = change
        for outcome in OUTCOMES:
            for label in r[outcome]:
                cls, _, key = label.partition(".")
                if cls[:1].islower():  # functions: their names are in the names list
                    continue
                text = "✓" if outcome == "present" else outcome
                if label in changed:
                    text = f"default {changed[label]}"
                status.setdefault(key, {}).setdefault(fw, {}).setdefault(_family(cls), set()).add(text)
    frameworks = [fw for fw in report if "error" not in report[fw]]
    lines = ["| 0.3 keyword | " + " | ".join(frameworks) + " |", "|---" * (len(frameworks) + 1) + "|"]
    for key in sorted(status):
        cells, uniform = [], True
        for fw in frameworks:
            families = status[key].get(fw)
            if not families:
                cells.append("")
                continue
            texts = {t for v in families.values() for t in v}
            if texts != {"✓"}:
                uniform = False
            if len(texts) == 1:
                cells.append(texts.pop())
            else:
                by_text = {}
                for family, v in sorted(families.items()):
                    for t in sorted(v):
                        by_text.setdefault(t, []).append(family)
                cells.append("; ".join(f"{t} ({', '.join(f)})" for t, f in sorted(by_text.items())))
        if not uniform:
            lines.append(f"| `{key}` | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


#: What a report lists that is not yet parity: old names the new package lacks, old keywords it neither takes
#: nor refuses saying why (missing, swallowed by ``**kwargs``, unchecked) and defaults that changed.
GAP_KEYS = ("missing_names", "missing", "accepted", "unchecked", "changed")


def describe_old(path: str, frameworks=FRAMEWORKS) -> dict:
    """The old package's description: ``{framework: {"names", "signatures"}}`` of its exported names only (what
    :func:`compare` reads; ``tests/data/v03/api_0_3_5.json`` is this for nmn 0.3.5), or ``{"error"}``."""
    old = introspect(path, frameworks)
    return {
        fw: v
        if "error" in v
        else {"names": v["names"], "signatures": {k: s for k, s in v["signatures"].items() if k in v["names"]}}
        for fw, v in old.items()
    }


def load_old(path: str, frameworks=FRAMEWORKS) -> dict:
    """``--old``: a folder holding the old package (introspected) or a JSON description :func:`describe_old`
    wrote (read as it is)."""
    if Path(path).is_file():
        data = json.loads(Path(path).read_text())
        return {fw: data[fw] for fw in frameworks if fw in data}
    if not (Path(path) / "nmn" / "__init__.py").is_file():
        raise SystemExit(
            f"--old {path}: expected a directory holding nmn/__init__.py (pip install --no-deps --target DIR "
            "nmn==0.3.5) or a JSON description written by --save-old"
        )
    return describe_old(path, frameworks)


def gaps(report: dict) -> dict:
    """``{framework: {key: sorted labels}}`` of the :data:`GAP_KEYS` of a report (``tests/data/v03/api_gaps.json``
    records today's, which ``tests/compat/test_api_parity.py`` holds the package to)."""
    return {fw: {k: sorted(r[k]) for k in GAP_KEYS} for fw, r in report.items() if "error" not in r}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--old",
        required=True,
        help="directory holding nmn 0.3.5 (pip install --target DIR), or a JSON description (--save-old)",
    )
    parser.add_argument(
        "--new", help="another nmn checkout or export to compare instead of this one (e.g. git archive REV)"
    )
    parser.add_argument("--frameworks", nargs="*", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--details", action="store_true", help="list every missing name, keyword and default")
    parser.add_argument("--json", help="also write the full report to this JSON file")
    parser.add_argument(
        "--keywords", action="store_true", help="also print the per-keyword table (every framework's outcome)"
    )
    parser.add_argument("--save-old", help="write the old package's description to this JSON file")
    parser.add_argument("--write-gaps", help="write the gaps (names, keywords, defaults) to this JSON file")
    args = parser.parse_args(argv)
    old = load_old(args.old, args.frameworks)
    if args.save_old:
        Path(args.save_old).write_text(json.dumps(old, indent=0, sort_keys=True) + "\n")
    report = compare(old, introspect(args.new, args.frameworks, old=old))
    print(table(report))
    if args.details:
        for fw, r in report.items():
            if "error" in r:
                continue
            print(f"\n## {fw}")
            for key in ("missing_names", "refused_names", "changed", "refused", "missing", "accepted", "unchecked"):
                print(f"{key} ({len(r[key])}): " + (", ".join(r[key]) or "-"))
                if key in ("present", "refused_names", "refused", "accepted", "unchecked"):
                    for label in r[key]:
                        if label in r["details"]:
                            print(f"    {label}: {r['details'][label]}")
    if args.keywords:
        print("\n" + keyword_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.write_gaps:
        Path(args.write_gaps).write_text(json.dumps(gaps(report), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
