"""``cxrperf synth``: synthetic stand-ins for a team's own model and studies. It parses its own
arguments; the top parser only lists it."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_synth(argv: list[str]) -> int:
    """Synthetic stand-ins for a team's own model and studies (what CI runs end to end)."""
    parser = argparse.ArgumentParser(
        prog="cxrperf synth", description="write synthetic checkpoints and DICOM studies"
    )
    sub = parser.add_subparsers(dest="what", required=True)
    ckpt = sub.add_parser("checkpoint", help="a checkpoint in a published layout (--cxr-model)")
    ckpt.add_argument("directory", type=Path)
    ckpt.add_argument("--layout", choices=["maira2"], default="maira2")
    ckpt.add_argument("--preset", default="tiny", help="dimensions (default tiny)")
    ckpt.add_argument("--shards", type=int, default=2)
    ckpt.add_argument("--seed", type=int, default=0)
    dicom = sub.add_parser("dicom", help="phantom studies as DICOM files (--cxr-studies)")
    dicom.add_argument("directory", type=Path)
    dicom.add_argument("--count", type=int, default=2, help="studies (default 2)")
    dicom.add_argument("--size", type=int, default=256, help="image side in pixels")
    dicom.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "checkpoint":
        from ..synth.checkpoint import write_maira2_checkpoint

        folder = write_maira2_checkpoint(args.directory, args.preset, args.shards, args.seed)
        print(f"wrote a {args.layout}-layout checkpoint ({args.preset}) to {folder}")
        return 0
    from ..synth.dicom import write_dicom_studies

    files = write_dicom_studies(args.directory, args.count, args.size, args.seed)
    print(f"wrote {len(files)} DICOM files under {args.directory}")
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands.add_parser(
        "synth", help="write a synthetic checkpoint or DICOM studies", add_help=False
    )
