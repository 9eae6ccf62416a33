"""Where the test command's CPU goes, per test: a sampler beside ``pytest -n 2 -p _cpu_by_test_plugin``.

The machine has 2 cores and the test command keeps both busy, so its wall time
follows its CPU time; per-test wall times (``--durations``) do not add up to it
(the self-check's test runs two jobs, and tests wait on each other). Every 0.2 s
this reads each process's CPU time (``/proc/<pid>/stat``) and charges what it
used since the last sample to the test its xdist worker, or the worker it
descends from, is running (the plugin writes it to ``$CPU_BY_TEST_DIR/<pid>``).
A process that exits between two samples loses at most its last 0.2 s.

    export CPU_BY_TEST_DIR=$(mktemp -d) PYTHONPATH=benchmarks
    python benchmarks/cpu_by_test.py OUT.json &   # stops when $CPU_BY_TEST_DIR/stop exists
    python -m pytest -n 2 -p _cpu_by_test_plugin; touch $CPU_BY_TEST_DIR/stop

OUT.json: ``{"wall": s, "cpu": {test id or "(other)": CPU-s}}``; "(other)" holds every process
that descends from no worker, and the whole CPU time of those already running at the start.
(Measured with it: benchmarks/results/ci.json, "cpu_by_test_2026_12_07".)
"""

import collections
import json
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, float]:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / HZ  # ppid, utime + stime


def main(out: str, folder: str) -> None:
    last: dict[int, float] = {}
    charged: collections.Counter = collections.Counter()
    start = time.time()
    while not os.path.exists(os.path.join(folder, "stop")):
        procs = {}
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    procs[int(p)] = _stat(p)
                except OSError:
                    pass
        running = {}
        for name in os.listdir(folder):
            if name.isdigit():
                try:
                    with open(os.path.join(folder, name)) as fh:
                        running[int(name)] = fh.read().strip() or "(between tests)"
                except OSError:
                    pass
        for pid, (_, cpu) in procs.items():
            used, last[pid] = cpu - last.get(pid, 0.0), cpu
            if used <= 0:
                continue
            q, label = pid, "(other)"
            for _ in range(64):
                if q in running:
                    label = running[q]
                    break
                q = procs.get(q, (0, 0))[0]
                if not q:
                    break
            charged[label] += used
        time.sleep(0.2)
    with open(out, "w") as fh:
        json.dump({"wall": time.time() - start, "cpu": charged}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], os.environ["CPU_BY_TEST_DIR"])
