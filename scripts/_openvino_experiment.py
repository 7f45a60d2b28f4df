"""What the OpenVINO experiment scripts share: their common options, the model, study and OpenVINO
backend class those options name, and the shuffled interleaving they time variants in."""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from pytest_cxrperf.backends.openvino import _OpenVINOBackend
from pytest_cxrperf.backends.registry import get_backend_class
from pytest_cxrperf.model.loader import ReferenceModel, load_model
from pytest_cxrperf.model.study import load_studies


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="openvino-w8a8-int4")
    parser.add_argument("--model", default="bench")
    parser.add_argument("--threads", type=int, default=2)


def load(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[ReferenceModel, Any, type[_OpenVINOBackend]]:
    """(reference model, the first phantom study's inputs, the backend class); exits with a usage
    error when ``--backend`` is not an OpenVINO backend. Sets torch's thread count."""
    backend = get_backend_class(args.backend)
    if not issubclass(backend, _OpenVINOBackend):
        parser.error(f"{args.backend} is not an OpenVINO backend")
    torch.set_num_threads(args.threads)
    reference = load_model(args.model)
    return reference, reference.processor(load_studies(None)[0]), backend


def shuffled_rounds(names: Iterable[str], rounds: int, seed: int = 0) -> Iterator[str]:
    """Every name once per round, in an order shuffled anew each round (reproducible per seed):
    the interleaving the experiment scripts time their variants in."""
    shuffle = random.Random(seed).shuffle
    names = list(names)
    for _ in range(rounds):
        order = list(names)
        shuffle(order)
        yield from order
