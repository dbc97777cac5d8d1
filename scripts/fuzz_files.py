"""Fuzz nmn's entry points with mutated golden files: the long run of tests/security/test_fuzz.py.

Every mutation (tests/security/mutations.py: bit flips, truncations, insertions, duplicated spans, and
protobuf-aware changes of dims, data types, attribute values, names, the manifest, nodes, opsets) of a file in
models/golden/ goes through ``nmn check`` and ``nmn.interchange.load`` in each framework. Each entry point runs
in its own worker process, so that a hang (no answer within ``--timeout`` s) or a memory blow-up (worker RSS
over ``--max-rss-gib``) is caught, recorded and the worker restarted. Anything that is not nmn's own one-line
error is a failure; every failing input is saved under ``--out``. Exit status 1 if anything failed.

    python scripts/fuzz_files.py --per-entry 2000                 # all entry points, 2,000 mutations each
    python scripts/fuzz_files.py --entries torch,check --per-entry 50 --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.security.mutations import ENTRY_POINTS, GOLDEN, mutate, run_entry

_TAG = "NMN-FUZZ "


def _worker(entry: str) -> None:
    """Answer one line per path read from stdin: ``NMN-FUZZ {"outcome": ..., "message": ...}``."""
    out = sys.stdout
    sys.stdout = sys.stderr  # framework chatter must not mix with the answers
    run_entry(entry, str(GOLDEN[0]))  # warm up: import the framework once
    out.write(_TAG + json.dumps({"outcome": "ready"}) + "\n")
    out.flush()
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        outcome, message = run_entry(entry, path)
        out.write(_TAG + json.dumps({"outcome": outcome, "message": message[:4000]}) + "\n")
        out.flush()


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Worker:
    def __init__(self, entry: str, log: Path, startup_s: float):
        self.entry = entry
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", entry],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=ROOT,
        )
        self.buffer = b""
        reply = self.ask(None, startup_s, max_rss=None)
        if reply.get("outcome") != "ready":
            raise SystemExit(f"fuzz worker for {entry} did not start: {reply} (see {log})")

    def ask(self, path: str | None, timeout_s: float, max_rss: int | None) -> dict:
        if path is not None:
            self.proc.stdin.write((path + "\n").encode())
            self.proc.stdin.flush()
        deadline = time.monotonic() + timeout_s
        while True:
            if b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(_TAG):
                    return json.loads(text[len(_TAG) :])
                continue
            if max_rss is not None and _rss(self.proc.pid) > max_rss:
                return {"outcome": "blow-up", "message": f"worker RSS over {max_rss} bytes"}
            if time.monotonic() > deadline:
                return {"outcome": "hang", "message": f"no answer within {timeout_s:g} s"}
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    code = self.proc.wait()
                    return {"outcome": "crash", "message": f"worker died with status {code}"}
                self.buffer += chunk

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--entries",
        default=",".join(ENTRY_POINTS),
        help=f"comma-separated entry points (default: all of {', '.join(ENTRY_POINTS)})",
    )
    parser.add_argument("--per-entry", type=int, default=2000, help="mutations per entry point (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (mutation i uses seed + i)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a case counts as a hang")
    parser.add_argument("--startup-timeout", type=float, default=600.0, help="seconds a worker may take to start")
    parser.add_argument("--max-rss-gib", type=float, default=4.0, help="worker RSS that counts as a blow-up")
    parser.add_argument("--out", default="/tmp/nmn-fuzz", help="folder for cases, failures and worker logs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    from tqdm import tqdm

    out = Path(args.out)
    (out / "failures").mkdir(parents=True, exist_ok=True)
    entries = [e.strip() for e in args.entries.split(",") if e.strip()]
    unknown = sorted(set(entries) - set(ENTRY_POINTS))
    if unknown:
        parser.error(f"unknown entry points {unknown}; choose from {list(ENTRY_POINTS)}")
    max_rss = int(args.max_rss_gib * 1024**3)
    totals: dict[str, Counter] = {}
    failed = 0
    for entry in entries:
        counts = Counter()
        totals[entry] = counts
        work = out / "cases" / entry
        work.mkdir(parents=True, exist_ok=True)
        worker = Worker(entry, out / f"worker-{entry}.log", args.startup_timeout)
        t0 = time.perf_counter()
        bar = tqdm(range(args.per_entry), desc=entry, unit="file", mininterval=2.0)
        for i in bar:
            seed = args.seed + i
            golden = GOLDEN[i % len(GOLDEN)]
            kind, data = mutate(golden.read_bytes(), seed)
            path = work / "case.onnx"
            path.write_bytes(data)
            reply = worker.ask(str(path), args.timeout, max_rss)
            outcome = reply["outcome"]
            counts[outcome] += 1
            counts[f"mutation:{kind}"] += 1
            if outcome not in ("ok", "refused"):
                failed += 1
                saved = out / "failures" / f"{entry}-{golden.stem}-{seed}.onnx"
                saved.write_bytes(data)
                (saved.with_suffix(".txt")).write_text(
                    f"{entry}: {golden.name} mutated by {kind!r} (seed {seed}): {outcome}: {reply['message']}\n"
                )
                tqdm.write(
                    f"{outcome}: {entry} {golden.name} {kind!r} seed {seed}: {reply['message'][:300]} (saved {saved})"
                )
                if outcome in ("hang", "blow-up", "crash"):
                    worker.close()
                    worker = Worker(entry, out / f"worker-{entry}.log", args.startup_timeout)
            bar.set_postfix(
                ok=counts["ok"],
                refused=counts["refused"],
                bad=counts["foreign"] + counts["hang"] + counts["blow-up"] + counts["crash"],
            )
        bar.close()
        worker.close()
        counts["seconds"] = round(time.perf_counter() - t0)
    print("\nentry   mutations  ok  refused  foreign  hang  blow-up  crash  seconds")
    for entry, c in totals.items():
        n = c["ok"] + c["refused"] + c["foreign"] + c["hang"] + c["blow-up"] + c["crash"]
        print(
            f"{entry:<7} {n:>9}  {c['ok']:>3} {c['refused']:>8} {c['foreign']:>8} {c['hang']:>5} "
            f"{c['blow-up']:>8} {c['crash']:>6} {c['seconds']:>8}"
        )
    print(f"failing inputs (if any): {out / 'failures'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
