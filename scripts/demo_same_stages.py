"""Time today's `tea demo` on the stages of an earlier demo only (for issue #20's wall-time comparison).

    python scripts/demo_same_stages.py OUT EARLIER_DEMO_OUT

Runs `teakit.demo.run_demo(OUT, jobs=2)` (fresh) with the plan cut to the stage names that
EARLIER_DEMO_OUT's `stages/` holds, at today's settings (widths, epochs and learning rates), and prints
the wall time; the stages' own times are in OUT/report.md.
"""
import sys
import time
from pathlib import Path

from teakit import demo


def main(out: str, earlier: str) -> None:
    names = {p.name.rsplit("-", 1)[0] for p in (Path(earlier) / "stages").iterdir() if p.is_dir()}
    if not names:
        raise SystemExit(f"{earlier}/stages holds no stage folders")
    full_plan = demo.plan

    def plan(*args, **kwargs):
        stages = full_plan(*args, **kwargs)
        missing = names - {s.name for s in stages}
        if missing:
            raise SystemExit(f"today's demo has no stage named {', '.join(sorted(missing))}")
        return [s for s in stages if s.name in names]

    demo.plan = plan
    t0 = time.perf_counter()
    demo.run_demo(out, fresh=True, jobs=demo.default_jobs(), progress=False)
    print(f"{len(names)} stages of {earlier} at today's settings: {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
