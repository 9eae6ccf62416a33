"""Run tools/zoo_probe.py in every cached gate environment; one JSON line per environment.

    python tools/zoo_matrix.py [CACHE_DIR] > probe.jsonl
"""

import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    cache = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/flax-bridge-conformance/envs")
    envs = sorted(p for p in glob.glob(os.path.join(cache, "flax-*")) if os.path.isdir(p) and os.path.exists(os.path.join(p, "gate-env.json")))
    for env in envs:
        py = os.path.join(env, "bin", "python")
        proc = subprocess.run([py, os.path.join(HERE, "tools", "zoo_probe.py")], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": HERE, "CONFORMANCE_COMPILATION_CACHE": "off"})
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        print(line if line.startswith("{") else f'{{"env": "{os.path.basename(env)}", "error": {proc.stderr[-300:]!r}}}', flush=True)


if __name__ == "__main__":
    main()
