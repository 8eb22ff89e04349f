"""`sinkrepro plan CONFIG`, `sinkrepro fetch-prompts CONFIG` and the exploration commands (`sinks`, `generate`)."""
from __future__ import annotations

import argparse
import sys


def cmd_plan(args) -> int:
    from sinkrepro.config import grid_for, load_config
    from sinkrepro.plan import format_plan, parse_seconds_per_step, plan_summary

    seconds = parse_seconds_per_step(args.seconds_per_step)
    grid = grid_for(load_config(args.config))
    print(format_plan(plan_summary(grid, seconds), seconds))
    return 0


def cmd_twin(args) -> int:
    from sinkrepro.twin import write_twin

    text = write_twin(args.config, args.output)
    if args.output is None:
        print(text, end="")
    return 0


def cmd_fetch_prompts(args) -> int:
    from sinkrepro.config import PROMPT_CACHE, load_config
    from sinkrepro.prompts import load_prompt_set

    sets = load_config(args.config)["prompt_sets"]
    for name in sets:
        print(f"{name}: {len(load_prompt_set(name, sets, cache_dir=PROMPT_CACHE))} prompts")
    print(f"prompt sources cached in {PROMPT_CACHE}; `sinkrepro plan` and `snakemake -n` now work offline")
    return 0
def cmd_verify(args) -> int:
    from sinkrepro.verify import format_report, verify

    report = verify(args.root, args.config)
    print(format_report(report, args.root))
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sinkrepro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="print what a config will cost: jobs, generations, steps, GPU-hours")
    plan.add_argument("config", help="a workflow config, e.g. config/paper.yaml")
    plan.add_argument("--seconds-per-step", action="append", default=[], metavar="[MODEL=]SECONDS",
                      help="measured seconds per denoising step (one image), for GPU-hour estimates; repeatable")
    plan.set_defaults(func=cmd_plan)
    twin = sub.add_parser("twin", help="write the stand-in twin of a paper config (docs/twin.md)")
    twin.add_argument("config", help="a paper config, e.g. config/paper.yaml")
    twin.add_argument("-o", "--output", help="write the twin here (default: print it)")
    twin.set_defaults(func=cmd_twin)
    fetch = sub.add_parser("fetch-prompts", help="download every pinned prompt source of a config into the "
                           "local cache (once, with network), so planning works offline")
    fetch.add_argument("config", help="a workflow config, e.g. config/paper.yaml")
    fetch.set_defaults(func=cmd_fetch_prompts)
    check = sub.add_parser("verify", help="check every image against its manifest and every score row against "
                                          "its image; name changed files and the outputs built from them")
    check.add_argument("--root", default=".", help="the directory holding results/ (default: here)")
    check.add_argument("--config", help="also check that this config (relative to --root) is the one "
                                        "paper/provenance.json records, runtime knobs aside")
    check.set_defaults(func=cmd_verify)
    from sinkrepro import explore

    explore.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
