"""How long the ``lightkit`` command takes to answer, against importing Lightning and torch.

Commands that need no model (``--help``, a usage error, ``doctor``) should answer at once;
``import lightning`` alone takes seconds on a small machine. Each command runs in a fresh
process ``--repeat`` times; the median wall time is printed with its ratio to ``python -c
"import lightning"`` measured in the same run.

::

    python benchmarks/cli_startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

LIGHTKIT = [sys.executable, "-m", "lightkit.cli"]
COMMANDS = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    'python -c "import lightning"': [sys.executable, "-c", "import lightning"],
    "lightkit --help": [*LIGHTKIT, "--help"],
    "lightkit fit (usage error)": [*LIGHTKIT, "fit"],
    "lightkit doctor": [*LIGHTKIT, "doctor"],
}


def seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False, cwd=Path(__file__).parent)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {name: seconds(command, args.repeat) for name, command in COMMANDS.items()}
    lightning = results['python -c "import lightning"']
    print(f"{'command':<32}{'median s':>10}{'vs import lightning':>22}")
    for name, value in results.items():
        print(f"{name:<32}{value:>10.2f}{value / lightning:>21.2f}x")


if __name__ == "__main__":
    main()
