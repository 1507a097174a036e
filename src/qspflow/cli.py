"""The `qspflow` command: the workflow's steps and tools, usable without Snakemake.

Every command calls the same `qspflow.steps` function as the workflow's rule; `--out DIR` places
that step's named outputs in DIR under their default file names (the output contract of
`qspflow.io.output_folder`). User errors (`QspflowError`) are printed on one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from qspflow import steps
from qspflow.errors import ConfigError, QspflowError
from qspflow.io import EXACT_FORMAT, output_file, output_folder


def _prepare(args: argparse.Namespace) -> None:
    with output_folder(args.out, force=args.force) as out:
        steps.prepare(data=args.data, experiments=args.experiments, pkn=args.pkn, fmt=args.format,
                      unknown_observables=args.unknown_observables, normalization=args.normalization,
                      controls=args.controls or (), binarization=args.binarization, threshold=args.threshold,
                      **steps.in_folder(out, steps.files("prepare")))


def _example(args: argparse.Namespace) -> None:
    with output_folder(args.out, force=args.force) as out:
        steps.example(out=out, seed=args.seed)


def _infer(args: argparse.Namespace) -> None:
    with output_folder(args.out, force=args.force) as out:
        steps.infer_from_data(pkn=args.pkn, data=args.data, fmt=args.format, experiments=args.experiments,
                              networks=out, max_networks=args.max_networks, method=args.method, time=args.time,
                              max_inputs=args.max_inputs, size_penalty=args.size_penalty, tolerance=args.tolerance,
                              drug_target=args.drug_target, inhibiting_dose=args.inhibiting_dose)


def _petab_simulate(args: argparse.Namespace) -> None:
    with output_file(args.out) as out:
        steps.petab_simulate(problem=args.problem, simulation=out)


def _petab_llh(args: argparse.Namespace) -> None:
    posterior, llh = steps.petab_llh(problem=args.problem)
    print(format(posterior, EXACT_FORMAT))
    print(format(llh, EXACT_FORMAT))


def _convert(args: argparse.Namespace) -> None:
    with output_folder(args.out, force=args.force) as out:
        steps.convert_with_config(network=args.network, out=out, method=args.method,
                                  measurements=args.measurements, experiments=args.experiments, config=args.config)


def _calibrate(args: argparse.Namespace) -> None:
    steps.start_workers(args.threads)
    with output_folder(args.out, force=args.force) as out:
        best = steps.calibrate_folder(problem=args.problem, out=out, starts=args.starts,
                                      random_starts=args.random_starts, hops=args.hops, hop_stall=args.hop_stall,
                                      hop_time=args.hop_time, refine_time=args.refine_time, seed=args.seed,
                                      solver=args.solver, global_method=args.global_method,
                                      local_method=args.local_method, polish=not args.no_polish,
                                      local_phase=args.local_phase, optimal_scalings=args.optimal_scalings,
                                      global_evaluations=args.global_evaluations, global_time=args.global_time,
                                      profile=not args.no_profile, profile_parameters=args.profile or [],
                                      threads=args.threads)
    print(format(best, EXACT_FORMAT))


def _sensitivity(args: argparse.Namespace) -> None:
    with output_folder(args.out, force=args.force) as out:
        steps.sensitivity_folder(problem=args.problem, spec=args.spec, out=out, estimates=args.estimates,
                                 seed=args.seed, threads=args.threads)


def _vpop(args: argparse.Namespace) -> None:
    with output_folder(args.out, force=args.force) as out:
        steps.vpop_folder(problem=args.problem, spec=args.spec, out=out, estimates=args.estimates, seed=args.seed,
                          threads=args.threads)


def _attractors(args: argparse.Namespace) -> None:
    sys.stdout.write(steps.attractors(network=args.network, update=args.update))


def _report_checks(checks: Sequence[object]) -> int:
    """Each file that is not identical on a line (status, path); 1 when there is one, else 0."""
    bad = [c for c in checks if c.status != "identical"]
    for check in bad:
        print(f"{check.status}: {check.path}")
    return 1 if bad else 0


def _verify(args: argparse.Namespace) -> int:
    checks = steps.verify_bundle(args.bundle)
    status = _report_checks(checks)
    verdict = "FAILED" if status else "verified"
    print(f"{args.bundle}: {verdict}, {sum(c.status == 'identical' for c in checks)} of {len(checks)} files "
          "identical to the manifest", file=sys.stderr if status else sys.stdout)
    return status


def _audit(args: argparse.Namespace) -> int:
    out = args.out or Path(args.bundle).name.removesuffix(".tar.gz") + "-audit"
    passed = steps.audit(bundle=args.bundle, out=out, cores=args.cores, force=args.force)
    print(f"{args.bundle}: audit {'PASSED' if passed else 'FAILED'}: see {Path(out) / 'audit.md'}",
          file=sys.stdout if passed else sys.stderr)
    return 0 if passed else 1


FORCE_HELP = ("write into --out even when it holds files qspflow did not write there (those are left alone; "
              "without --force such a folder is refused)")


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other qspflow error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    # -v/-q are accepted before and after the command name (a parent parser that does not reset them)
    logging_flags = argparse.ArgumentParser(add_help=False)
    logging_flags.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                               help="log every library's progress to stderr (qspflow's own progress is shown "
                                    "on a terminal anyway)")
    logging_flags.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                               help="show only warnings and errors")
    parser = _Parser(prog="qspflow", description=__doc__.splitlines()[0], parents=[logging_flags])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, func: Callable[[argparse.Namespace], int | None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[logging_flags])
        p.set_defaults(func=func)
        return p

    formats = dict(choices=["auto", "tidy", "midas"], default="auto",
                   help="measurement format: tidy CSV/TSV, CellNOpt MIDAS, or auto (MIDAS when the header has "
                        "TR:/DA:/DV: columns; default)")

    p = command("prepare", _prepare, "validate, normalize and binarize measurements (the `prepare` step)")
    p.add_argument("--data", required=True, help="tidy CSV/TSV or MIDAS measurements")
    p.add_argument("--format", **formats)
    p.add_argument("--experiments", help="experiment table (stimulus:/inhibitor:/dose: columns)")
    p.add_argument("--pkn", help="prior knowledge network (SIF) whose nodes the observables must be")
    p.add_argument("--unknown-observables", choices=["error", "warn"], default="error",
                   help="an observable that is not a PKN node is an error (default) or a warning")
    p.add_argument("--normalization", choices=["minmax", "fold_change"], default="minmax",
                   help="per observable: min-max to [0, 1] (default) or fold change over the control experiments")
    p.add_argument("--controls", nargs="+", metavar="EXPERIMENT",
                   help="control experiments whose values --normalization fold_change divides by")
    p.add_argument("--binarization", choices=["kmeans", "threshold"], default="kmeans",
                   help="per observable: two-cluster k-means (default) or a fixed --threshold")
    p.add_argument("--threshold", type=float, default=0.5, help="threshold for --binarization threshold")
    p.add_argument("--out", required=True, help="output folder (measurements.tsv, binarized.tsv, thresholds.tsv, "
                                                "experiments.tsv, qc.png)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)

    p = command("example", _example, "write the bundled example study (inputs and ground truth)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=20261127, help="seed of the measurement noise and the cohort")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)

    p = command("attractors", _attractors, "attractors of a Boolean network, one TSV row per attractor "
                "(states as bit strings; the `nodes` column names the node of each bit)")
    p.add_argument("network", help="Boolean network (.bnet)")
    p.add_argument("--update", choices=["synchronous", "asynchronous"], default="synchronous",
                   help="update scheme: all nodes at once (default; basins reported) or one node at a time")

    p = command("infer", _infer, "infer a ranked ensemble of Boolean networks from data and a PKN (the `infer` step)")
    p.add_argument("--pkn", required=True, help="prior knowledge network (signed SIF)")
    p.add_argument("--data", required=True, help="tidy CSV/TSV or MIDAS measurements (binarized as `prepare` does)")
    p.add_argument("--format", **formats)
    p.add_argument("--experiments", help="experiment table (tidy data)")
    p.add_argument("--out", required=True, help="output folder (index.tsv, NET.bnet, NET.sbml)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--method", choices=["auto", "steady_state", "time_series"], default="auto",
                   help="steady-state perturbation data (CellNOpt-style, exact by ASP) or time series of all "
                        "nodes (best-fit); auto decides from the data (default)")
    p.add_argument("--time", type=float, help="time whose data the steady-state route fits (default: latest)")
    p.add_argument("--max-inputs", type=int, default=3, help="most literals per AND term")
    p.add_argument("--size-penalty", type=float, default=1e-4, help="score = mismatches + penalty x literals")
    p.add_argument("--tolerance", type=int, default=0, help="also keep models with this many more mismatches")
    p.add_argument("--max-networks", type=int, default=5, help="best-ranked networks written")
    p.add_argument("--drug-target", help="node the drug (dose: column) inhibits")
    p.add_argument("--inhibiting-dose", type=float, help="dose at or above which the target is forced to 0")

    p = command("convert", _convert, "convert a Boolean network into an ODE model: PySB, SBML, equations, "
                "and with data a PEtab problem (the `convert` step)")
    p.add_argument("network", help="Boolean network (.bnet)")
    p.add_argument("--method", choices=["boolecube", "hillcube", "normalized-hillcube"],
                   help="Odefy conversion (default: the config's convert.method, else normalized-hillcube)")
    p.add_argument("--measurements", help="tidy CSV/TSV or MIDAS measurements; writes petab/ too")
    p.add_argument("--experiments", help="experiment table (stimulus:/inhibitor:/dose: columns; not with MIDAS)")
    p.add_argument("--config", help="study configuration (YAML) whose convert: and drug: sections apply")
    p.add_argument("--out", required=True, help="output folder (model.py, model.sbml, equations.md[, petab/])")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)

    p = command("calibrate", _calibrate, "calibrate a PEtab problem: global search, local starts, Pyomo polish, "
                "profiles (prints the best log-likelihood last)")
    p.add_argument("problem", help="PEtab problem (YAML)")
    p.add_argument("--starts", type=int, default=5, help="local starts from the global search's best points")
    p.add_argument("--random-starts", type=int, default=5,
                   help="further local starts from Latin-hypercube points over the bounds")
    p.add_argument("--hops", type=int, default=100,
                   help="at most this many basin hops after the starts: local starts from the best point so far "
                        "with a random part of its coordinates moved (0: none)")
    p.add_argument("--hop-stall", type=int, default=20,
                   help="basin hopping stops after this many hops in a row without progress")
    p.add_argument("--hop-time", type=float, default=500.0,
                   help="seconds after the calibration began at which basin hopping ends (hops still running stop)")
    p.add_argument("--refine-time", type=float, default=40.0,
                   help="seconds after --hop-time at which the refinement of the two best optima ends")
    p.add_argument("--seed", type=int, default=0, help="seed of the global search and the start points")
    p.add_argument("--local", dest="local_method", choices=["shooting", "transcription"], default="shooting",
                   help="local method: fides on the simulated likelihood with forward sensitivities (default), or "
                        "the Pyomo transcription from the start")
    p.add_argument("--no-polish", action="store_true", help="keep the shooting optimum without the Pyomo re-solve")
    p.add_argument("--solver", choices=["ipopt", "ripopt"], default="ipopt", help="NLP solver of the Pyomo solves")
    p.add_argument("--global", dest="global_method", choices=["ess", "de", "none"], default="ess",
                   help="global stage before the local solves: scatter search (default), differential evolution, "
                        "or none (Latin-hypercube multi-start)")
    p.add_argument("--global-evaluations", type=int, default=20_000,
                   help="budget of the global search in objective evaluations")
    p.add_argument("--global-time", type=float, default=300.0,
                   help="wall-time cap of the global search (s; when it binds, the result depends on the machine)")
    p.add_argument("--local-phase", action="store_true",
                   help="local solves inside the scatter search, whose optima are the first local starts (MEIGO's "
                        "local phase)")
    p.add_argument("--optimal-scalings", action="store_true",
                   help="search over the parameters other than observation scaling factors, each factor at its "
                        "closed-form optimum (hierarchical optimization)")
    profiles = p.add_mutually_exclusive_group()
    profiles.add_argument("--no-profile", action="store_true", help="skip profile likelihoods (no CIs)")
    profiles.add_argument("--profile", action="append", metavar="PARAMETER",
                          help="profile only this parameter (repeatable; default: every estimated parameter)")
    p.add_argument("--threads", type=int, default=1, help="worker processes for starts and profiles")
    p.add_argument("--out", required=True, help="output folder (estimates.tsv, starts.tsv, profiles.tsv, plots)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)

    p = command("sensitivity", _sensitivity, "global sensitivity analysis of a PEtab problem's outputs: SALib "
                "Morris screening and Sobol indices with confidence intervals (the `sensitivity` step)")
    p.add_argument("problem", help="PEtab problem (YAML)")
    p.add_argument("--spec", required=True, help="YAML file with a `sensitivity:` section (outputs, ranges, method, "
                                                 "…; keys as in the study config)")
    p.add_argument("--estimates", help="estimates.tsv of a calibration (parameter, estimate[, lower_95, upper_95]): "
                                       "the centre of the ranges (default: the problem's nominal values)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples and the bootstrap")
    p.add_argument("--threads", type=int, default=1, help="simulator threads (the result does not depend on it)")
    p.add_argument("--out", required=True, help="output folder (morris.tsv, sobol.tsv, summary.tsv, samples.tsv, "
                                                "results.tsv, sobol.png, morris.png)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)

    p = command("vpop", _vpop, "virtual population of a PEtab problem matched to a clinical cohort: plausible "
                "patients, then Allen/Rieger selection (the `vpop` step)")
    p.add_argument("problem", help="PEtab problem (YAML)")
    p.add_argument("--spec", required=True, help="YAML file with a `vpop:` section (target cohort relative to it, "
                                                 "outputs, ranges, parameters, …; keys as in the study config)")
    p.add_argument("--estimates", help="estimates.tsv of a calibration: the values of the parameters that do not "
                                       "vary (default: the problem's nominal values)")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidates and the selection")
    p.add_argument("--threads", type=int, default=1, help="simulator threads (the result does not depend on it)")
    p.add_argument("--out", required=True, help="output folder (plausible.tsv, vpop.tsv, fit.tsv, vpop.png)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)

    p = command("petab-simulate", _petab_simulate, "PEtab simulation table at the nominal parameters")
    p.add_argument("problem", help="PEtab problem (YAML)")
    p.add_argument("--out", required=True, help="simulation table (TSV; an existing file there is replaced)")

    p = command("petab-llh", _petab_llh, "log-posterior (with the objective priors; next to last line) and "
                                         "log-likelihood (last line) of a PEtab problem at the nominal parameters")
    p.add_argument("problem", help="PEtab problem (YAML)")

    p = command("verify", _verify, "check every file of a submission bundle against its MANIFEST.sha256 (exit 1 if "
                                   "one differs, is missing or unexpected)")
    p.add_argument("bundle", help="submission bundle (package/STUDY-submission.tar.gz) or its unpacked folder")

    p = command("audit", _audit, "unpack and verify a submission bundle, re-run its workflow from its own inputs and "
                                 "code, and compare every output byte for byte (exit 1 on any difference)")
    p.add_argument("bundle", help="submission bundle (package/STUDY-submission.tar.gz)")
    p.add_argument("--cores", type=int, default=2, help="cores of the re-run (the outputs do not depend on it)")
    p.add_argument("--out", help="audit folder: the unpacked bundle, the re-run, audit.json and audit.md "
                                 "(default: BUNDLE-NAME-audit in the current folder)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    """qspflow's progress on a terminal (or with -v, with every library's); only warnings with -q or in a pipe."""
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    logging.basicConfig(level=logging.INFO if verbose and not quiet else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    logging.getLogger("qspflow").setLevel(logging.INFO if not quiet and (verbose or sys.stderr.isatty())
                                          else logging.NOTSET)


def _as_flag(err: QspflowError, parser: argparse.ArgumentParser, command: str) -> str:
    """The error's message, naming a config key as the command's flag when it has one (`--starts`, then
    `calibrate.starts`): on the command line the user wrote the flag."""
    message = str(err)
    if isinstance(err, ConfigError) and err.key and not err.source:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
        flag = "--" + err.key.rsplit(".", 1)[-1].replace("_", "-")
        if any(flag in action.option_strings for action in sub._actions):
            message = message.replace(f"key '{err.key}'", f"option {flag} (config key {err.key})", 1)
    return message


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so staging folders are removed and --out is left as it was


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args) or 0
    except QspflowError as err:
        print(f"qspflow: error: {_as_flag(err, parser, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: unwound like SIGTERM, so --out is left as it was
        print("qspflow: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
