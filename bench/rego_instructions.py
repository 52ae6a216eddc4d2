"""Instructions per evaluation of a Rego policy, counted under valgrind: exact on a busy machine.

Run: ``.venv/bin/python bench/rego_instructions.py [--evaluate-set] [-n 2000] POLICY...``
(needs ``valgrind``). A POLICY is a template id or a path to a module of ``package
caracal.authz``. For each, a child process evaluates ``result`` with the input of
``bench/pdp_inprocess.py`` N times, and once more without those N evaluations, both under
callgrind; the difference divided by N is printed: the instructions of one ``eval_rule`` (the
input already set), or with ``--evaluate-set`` of one ``evaluate_set`` (input conversion and
normalisation included). Timings on the shared machine move by 5-10 % from run to run; the
counts repeat to the instruction, so they rank variants of a policy exactly. They do not
count cache misses: confirm a winner with ``bench/pdp_inprocess.py``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pdp_inprocess import INPUT

from controlplane.pdp import compile_policy, compile_set, evaluate_set, get_template
from controlplane.pdp.templates import TEMPLATE_DIR

WARM_UP = 200


def child(mode: str, path: str, n: int) -> None:
    """Evaluate the module at ``path`` WARM_UP + n times (the measured process)."""
    content = Path(path).read_text()
    compiled = compile_set("bench", "bench-v1", "0" * 64, [compile_policy("p", "p-v1", content)])
    if mode == "evaluate_set":
        for _ in range(WARM_UP + n):
            evaluate_set(compiled, INPUT)
        return
    engine = compiled.policies[0].engine
    engine.set_input(INPUT)
    for _ in range(WARM_UP + n):
        engine.eval_rule("data.caracal.authz.result")


def count(mode: str, path: str, n: int) -> int:
    """Instructions the child executes (callgrind's total)."""
    run = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            mode,
            path,
            str(n),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def resolve(policy: str) -> str:
    if Path(policy).is_file():
        return policy
    if get_template(policy) is None:
        raise SystemExit(f"{policy}: neither a file nor a template id")
    return str(TEMPLATE_DIR / f"{policy}.rego")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", metavar="POLICY")
    parser.add_argument("--evaluate-set", action="store_true")
    parser.add_argument("-n", type=int, default=2000, help="evaluations measured (default 2000)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    mode = "evaluate_set" if args.evaluate_set else "eval_rule"
    print(f"{'policy':<60} {mode + ' instructions':>26}")
    for policy in args.policies:
        path = resolve(policy)
        per_eval = (count(mode, path, args.n) - count(mode, path, 0)) / args.n
        print(f"{policy:<60} {per_eval:>26,.0f}")


if __name__ == "__main__":
    main()
