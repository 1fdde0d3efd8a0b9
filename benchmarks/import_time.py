"""Start-up cost of rlinf's plugin system, beside `import pluggy` as the floor.

Prints the median wall time (over --repeat runs, each a fresh interpreter) of:
  python -c "import pluggy"           (the floor: what any pluggy-based tool pays)
  python -c "import rlinf_core"
  rlinf plugins list                  (discovery of every installed plugin + the rich table)
and each one's ratio to the floor. Run it with all first-party packages installed:
  python benchmarks/import_time.py --repeat 20
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_seconds(cmd: list[str], repeat: int) -> float:
    subprocess.run(cmd, check=True, capture_output=True)  # warm the OS file cache
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rlinf = [shutil.which("rlinf")] if shutil.which("rlinf") else [sys.executable, "-m", "rlinf_core.cli"]
    cases = {
        "python -c 'pass'": [sys.executable, "-c", "pass"],
        "import pluggy (floor)": [sys.executable, "-c", "import pluggy"],
        "import rlinf_core": [sys.executable, "-c", "import rlinf_core"],
        "rlinf plugins list": [*rlinf, "plugins", "list"],
        "rlinf plugins list --json": [*rlinf, "plugins", "list", "--json"],
    }
    results = {name: median_seconds(cmd, args.repeat) for name, cmd in cases.items()}
    floor = results["import pluggy (floor)"]
    print(f"{'command':<28} {'median ms':>10} {'x pluggy':>9}")
    for name, seconds in results.items():
        print(f"{name:<28} {seconds * 1000:>10.1f} {seconds / floor:>9.2f}")


if __name__ == "__main__":
    main()
