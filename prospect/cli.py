"""The ``prospect`` command (also ``python -m prospect``): a thin layer over :mod:`prospect.pipeline`.

    prospect run workflows/qinhang.toml --quick --out out/qinhang     # the case study (README: time measured)
    prospect run my_survey.toml --out out/mine --resume                # continue a run that was killed
    prospect run my_survey.toml --out out/mine --resume --epochs 50    # ... or train its models longer
    prospect check my_survey.toml                                      # read and check the inputs only
    prospect keys                                                      # every config section and its keys
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from prospect.errors import ProspectError

log = logging.getLogger("prospect.workflow")
INTERRUPTED = 130   # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prospect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a prospectivity study described by a TOML file")
    check = commands.add_parser("check", help="read the config and its inputs, report problems, run nothing")
    for sub in (run, check):
        sub.add_argument("config", type=Path, help="the run file (TOML); see `prospect keys`")
        mode = sub.add_mutually_exclusive_group()
        mode.add_argument("--quick", action="store_true", help="apply the file's [quick] overrides")
        mode.add_argument("--full", action="store_true", help="the file as written (the default)")
    run.add_argument("--out", type=Path, default=None, help="output folder (default out/<config name>)")
    existing = run.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the run in --out (its files are removed once the inputs pass their checks; "
                               "other files stay)")
    existing.add_argument("--resume", action="store_true",
                          help="continue the run in --out: finished models are kept, an interrupted one continues "
                               "from its checkpoint; with --epochs, models train on to the new count")
    run.add_argument("--seed", type=int, default=None,
                     help="first seed (the file's seeds are shifted to start here; default: as in the file)")
    run.add_argument("--epochs", type=int, default=None, help="training epochs of every model ([trainer] epochs)")
    run.add_argument("--device", default=None, help="'auto', 'cpu', 'cuda' or 'cuda:N' (training and map)")
    commands.add_parser("keys", help="list every config section, the call it feeds and its keys")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keys":
        from prospect.pipeline.config import describe_sections

        print(describe_sections())
        return 0
    try:
        return _check(args) if args.command == "check" else _run(args)
    except ProspectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:          # before the run started: nothing to resume
        print("interrupted; nothing was written", file=sys.stderr)
        return INTERRUPTED


def _load(args: argparse.Namespace):
    from prospect.pipeline import load_config

    return load_config(args.config, mode="quick" if args.quick else "full")


def _check(args: argparse.Namespace) -> int:
    from prospect.pipeline import check_inputs

    config = _load(args)
    inputs = check_inputs(config)
    if inputs.samples is not None:
        transform = inputs.samples.attrs.get("transform")
        survey = (f"{len(inputs.samples)} samples with elements {list(inputs.samples.attrs['elements'])}"
                  f"{f' ({transform})' if transform else ''}")
    else:
        survey = "no survey (rasters and vector layers alone: no screening, no IDW)"
    rasters = [f"{b}{'' if layer.attrs.get('kind', 'continuous') == 'continuous' else ' (' + layer.attrs['kind'] + ')'}"
               for layer in inputs.rasters for b in layer["band"].values]
    area = "no study area" if inputs.mask is None else \
        f"study area {100 * inputs.mask.attrs['area_fraction']:.1f} % of the grid"
    print(f"{args.config}: {config.mode} mode; {survey}; "
          f"{len(inputs.deposits)} deposits; {len(inputs.categorical)} categorical and {len(inputs.distance)} distance "
          f"layer(s); raster layers {rasters or 'none'}; "
          f"{area}; "
          f"grid {inputs.grid}; {len(config.models)} model row(s) x {len(config.seeds)} seed(s)")
    for change in config.changes:
        print(f"  {change}")
    for note in inputs.notes:
        print(f"  note: {note}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from prospect._workflow import stage_logging
    from prospect.pipeline import RunFolder, check_inputs, run

    config = _load(args)
    if args.seed is not None:
        config.override("experiments.seeds", [args.seed + i for i in range(len(config.seeds))], "--seed")
    if args.epochs is not None:
        config.override("trainer.epochs", args.epochs, "--epochs")
    if args.device is not None:
        config.override("trainer.device", args.device, "--device")
        config.override("map.device", args.device, "--device")
    folder = RunFolder(args.out if args.out is not None else Path("out") / args.config.stem,
                       overwrite=args.overwrite, resume=args.resume)
    folder.check(config)                # before any input is read
    inputs = check_inputs(config)      # every value and input checked before anything is written
    kept = folder.clear()              # --overwrite: the folder holds one run
    folder.start(config)
    with stage_logging(folder / "run.log", append=args.resume):
        if kept:
            log.info("--overwrite: the previous run's files were removed; kept what no run writes: %s",
                     ", ".join(kept))
        try:
            run(config, inputs, folder)
        except ProspectError as exc:   # said once, on the terminal and in run.log
            log.error("error: %s", exc)
            return 2
        except KeyboardInterrupt:
            log.error("the run stopped (interrupted); the same command with --resume continues it from its "
                      "checkpoints")
            return INTERRUPTED
        except BaseException:
            log.exception("the run stopped; the same command with --resume continues it from its checkpoints")
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
