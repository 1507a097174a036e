"""Does `qspflow calibrate` reach the published fit of six PEtab benchmark problems, and how fast?

Each run is the command a user types, `qspflow calibrate PROBLEM.yaml --seed S --no-profile`, over
the full PEtab bounds with the default options (one configuration for every problem; `--threads`
worker processes), timed by wall clock from start to exit, compilation and start-up included. A
run *reaches* the published fit when the log-likelihood it prints last is at least the reference
(AMICI's log-likelihood at the problem's nominal parameters, which are the published fit) − 0.5.

Run: `.venv/bin/python benchmarks/calibrate_suite.py [--problems …] [--seeds 0 1 2] [--threads 2]`
(`--problems` may also name the collection's other problems with an AMICI reference).
Prints one line per run, one per problem, and last
`problems=… reached=… runs=… runs_reached=… median_s=… worst_s=…` (reached: problems whose every
run reached). `benchmarks/pypesto_suite.py` runs pyPESTO + AMICI + fides on the same problems.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from petab_collection import REFERENCES as COLLECTION_REFERENCES  # noqa: E402  (benchmarks/petab_collection.py)
from petab_collection import problem_yaml  # noqa: E402

# The six problems, run by default; --problems may name any other with AMICI's log-likelihood at its
# nominal parameters (the collection's README), which for most problems are the published fit.
SIX = ("Boehm_JProteomeRes2014", "Fujita_SciSignal2010", "Bruno_JExpBot2016", "Fiedler_BMCSystBiol2016",
       "Sneyd_PNAS2002", "Weber_BMC2015")
REFERENCES = {name: COLLECTION_REFERENCES[name] for name in SIX} | COLLECTION_REFERENCES
TOLERANCE = 0.5


def run(problem: str, seed: int, threads: int, extra: list[str], log_dir: Path | None) -> tuple[float, float]:
    """(best log-likelihood, wall seconds) of one `qspflow calibrate` run; its log kept in `log_dir` if given."""
    yaml = problem_yaml(problem)
    with tempfile.TemporaryDirectory() as out:
        command = [str(ROOT / ".venv" / "bin" / "qspflow"), "calibrate", str(yaml), "--seed", str(seed),
                   "--no-profile", "--threads", str(threads), "--out", str(Path(out) / "result"),
                   "--verbose" if log_dir else "--quiet", *extra]
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - began
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{problem}.seed{seed}.log").write_text(done.stderr)
    if done.returncode != 0:
        print(f"# {problem} seed {seed} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        return float("-inf"), seconds
    return float(done.stdout.strip().splitlines()[-1]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(SIX), choices=list(REFERENCES), metavar="PROBLEM",
                        help="default: the six; any problem of the collection with an AMICI reference")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-dir", type=Path, help="keep each run's log (stderr, progress included) here")
    parser.add_argument("options", nargs="*", help="further `qspflow calibrate` options (after --)")
    args = parser.parse_args()
    times: list[float] = []
    reached_problems = runs_reached = 0
    for problem in args.problems:
        reference = REFERENCES[problem]
        results = []
        for seed in args.seeds:
            llh, seconds = run(problem, seed, args.threads, args.options, args.log_dir)
            reached = llh >= reference - TOLERANCE
            results.append((llh, seconds, reached))
            times.append(seconds)
            print(f"problem={problem} seed={seed} best_llh={llh:.6f} reference={reference:.6f} "
                  f"reached={str(reached).lower()} seconds={seconds:.1f}", flush=True)
        n_reached = sum(r for _, _, r in results)
        runs_reached += n_reached
        reached_problems += n_reached == len(results)
        print(f"problem={problem} runs_reached={n_reached}/{len(results)} best_llh={max(r[0] for r in results):.6f} "
              f"median_s={statistics.median(r[1] for r in results):.1f} worst_s={max(r[1] for r in results):.1f}",
              flush=True)
    print(f"problems={len(args.problems)} reached={reached_problems} runs={len(times)} runs_reached={runs_reached} "
          f"median_s={statistics.median(times):.1f} worst_s={max(times):.1f}")


if __name__ == "__main__":
    main()
