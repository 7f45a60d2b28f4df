"""Peak RSS while loading a checkpoint, against the size of its weights (issue 13).

    python scripts/load_rss.py DIR            # measure loading DIR (any --cxr-model directory)
    python scripts/load_rss.py --write DIR    # first write the bench preset there (MAIRA-2 layout)

The load runs in a fresh child process so that the parent's memory does not count; the child
reports its RSS after importing torch and transformers (the floor), its RSS and peak RSS
(``ru_maxrss``) after loading, and the peak once every weight has been read (the weights are
memory-mapped: they become resident when first used). Run it on an otherwise idle machine: the
numbers are the process's own, but page-cache pressure from neighbours can change what stays
resident.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys
import torch, transformers, safetensors  # the floor: what any load imports
from pytest_cxrperf.model.loader import load_model

def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
floor = rss_mib()
reference = load_model(sys.argv[1])
weights = sum(t.numel() * t.element_size() for t in reference.model.state_dict().values())
after_load, load_peak = rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with torch.no_grad():  # read every weight once, as a first generation does
    for tensor in reference.model.state_dict().values():
        tensor.sum()
print(json.dumps({
    "floor_mib": floor,
    "after_load_mib": after_load,
    "load_peak_mib": load_peak,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "weights_mib": weights / 2**20,
    "parameters": reference.model.parameter_count(),
}))
"""


def measure(directory: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(directory)], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["peak_over_floor_mib"] = result["peak_mib"] - result["floor_mib"]
    result["peak_over_floor_per_weight"] = result["peak_over_floor_mib"] / result["weights_mib"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--write", action="store_true", help="write the bench preset there first")
    parser.add_argument("--preset", default="bench")
    args = parser.parse_args()
    if args.write:
        from pytest_cxrperf.synth.checkpoint import write_maira2_checkpoint

        write_maira2_checkpoint(args.directory, preset=args.preset, shards=2)
    print(json.dumps(measure(args.directory), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
