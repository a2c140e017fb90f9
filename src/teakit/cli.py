"""The `tea` command line."""
from __future__ import annotations

import argparse
import sys


def _bench(args) -> int:
    from .bench import run_step_cost
    if args.what != "step-cost":
        raise SystemExit(f"tea bench: unknown benchmark {args.what!r}; known: step-cost")
    run_step_cost(args.json, rounds=args.rounds, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tea", description="Training with Explanations Alone (TEA)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="benchmarks (step-cost: seconds per TEA step vs ERM step)")
    b.add_argument("what", choices=["step-cost"])
    b.add_argument("--json", help="write the figures to this JSON file")
    b.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
