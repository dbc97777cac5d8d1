"""Every reference to a document from the code resolves inside the repository.

A reference is ``docs/<name>.md`` optionally followed, on the same line, by section marks ``§<id>`` (as in
``docs/design.md §0.2`` or ``§D5``); each ``§<id>`` must be the start of a heading of that document
(``### §0.2 Shared options``). Scanned: the Python files of ``nmn``, ``onnx_ops``, ``tests`` and ``scripts``, the
README and ``docs/*.md``. Design documents that never were in the repository (the earlier internal notes) must not
be cited at all.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("nmn", "onnx_ops", "tests", "scripts")
SECTION = "\N{SECTION SIGN}"
REFERENCE = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)")  # not another project's docs/ (onnx/docs/...)
MARK = re.compile(SECTION + r"([0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)")
HEADING = re.compile(r"^#{1,6}\s+" + SECTION + r"(\S+)\s", re.M)
# design notes that were cited but never shipped (their citations now name docs/design.md sections)
OUTSIDE = re.compile(r"\b(?:yat-ops|architecture|onnx-notes|style-anchors|CONTRACT)\.md\b")


def _files(root: Path) -> list[Path]:
    files = [p for top in SCANNED for p in sorted((root / top).rglob("*.py"))]
    files += [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    me = Path(__file__).resolve()
    return [p for p in files if p.is_file() and p.resolve() != me]


def headings(doc: Path) -> set[str]:
    """The section ids (``0.2``, ``D5``, ...) that open a heading of ``doc``."""
    return set(HEADING.findall(doc.read_text(encoding="utf-8")))


def references(root: Path = ROOT) -> list[tuple[str, int, str, list[str]]]:
    """``(file, line, document, [section ids])`` for every ``docs/*.md`` reference under ``root``."""
    found = []
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            hits = list(REFERENCE.finditer(line))
            for i, hit in enumerate(hits):
                end = hits[i + 1].start() if i + 1 < len(hits) else len(line)
                found.append((rel, number, hit.group(1), MARK.findall(line[hit.end() : end])))
    return found


def unresolved(root: Path = ROOT) -> list[str]:
    """``file:line: reason`` for every reference whose document or section does not exist."""
    problems, cache = [], {}
    for rel, number, doc, marks in references(root):
        if OUTSIDE.fullmatch(doc):  # a note never shipped: test_no_citation_of_design_notes_... reports it
            continue
        path = root / "docs" / doc
        if not path.is_file():
            problems.append(f"{rel}:{number}: docs/{doc} does not exist")
            continue
        known = cache.setdefault(doc, headings(path))
        for mark in marks:
            if mark not in known:
                problems.append(f"{rel}:{number}: docs/{doc} has no heading {SECTION}{mark}")
    return problems


def outside(root: Path = ROOT) -> list[str]:
    """``file:line: name`` for every citation of a design note that is not in the repository."""
    found = []
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found += [f"{rel}:{number}: {m.group(0)}" for m in OUTSIDE.finditer(line)]
    return found


def _tree(tmp_path: Path, code: str) -> Path:
    (tmp_path / "docs").mkdir(parents=True)
    (tmp_path / "docs" / "design.md").write_text(f"# d\n\n## {SECTION}D Decisions\n\n### {SECTION}0.2 Options\n")
    (tmp_path / "nmn").mkdir()
    (tmp_path / "nmn" / "m.py").write_text(code)
    return tmp_path


def test_the_checker_finds_a_missing_section_and_document(tmp_path):
    root = _tree(
        tmp_path,
        f'"""ok: docs/design.md {SECTION}0.2 and {SECTION}D; bad: docs/design.md {SECTION}9.9, docs/gone.md."""\n'
        "# not ours: onnx/docs/Operators.md\n",
    )
    assert [r[2:] for r in references(root)] == [("design.md", ["0.2", "D"]), ("design.md", ["9.9"]), ("gone.md", [])]
    assert unresolved(root) == [
        f"nmn/m.py:1: docs/design.md has no heading {SECTION}9.9",
        "nmn/m.py:1: docs/gone.md does not exist",
    ]
    old = "yat-ops" + ".md"  # split, so that the rewrite script leaves this line alone
    assert outside(_tree(tmp_path / "b", f"# see {old} 0.2\n")) == [f"nmn/m.py:1: {old}"]


def test_design_sections_are_unique():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    ids = HEADING.findall(text)
    assert ids and len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_every_docs_reference_resolves():
    problems = unresolved()
    assert not problems, "references to missing documents or sections:\n" + "\n".join(problems)


def test_no_citation_of_design_notes_outside_the_repository():
    found = outside()
    assert not found, "cite docs/design.md sections instead:\n" + "\n".join(found)
