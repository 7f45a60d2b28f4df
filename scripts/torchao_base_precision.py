"""compile-int8's recipe on the fp32 model against it on the bf16-cast model (issue 15).

torchao's int8 dynamic quantization of every ``nn.Linear``, then torch.compile with freezing, as
``compile-int8`` does; the bf16 variant casts the model to bf16 first. Prints stage times of a few
generations and how many tokens match eager fp32's. It is why ``compile-int8`` quantizes the fp32
model (README, "Quantized backends").

    python scripts/torchao_base_precision.py --model bench --threads 2 fp32
    python scripts/torchao_base_precision.py --model bench --threads 2 bf16

Compiling takes about 4 minutes per variant on ``bench`` with 2 cores. A measurement tool, not a
test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
from time import perf_counter
from typing import Any

import torch

from pytest_cxrperf.backends.torch_compile import compiled_runner, int8_dynamic_copy
from pytest_cxrperf.backends.torch_runner import TorchRunner
from pytest_cxrperf.model.loader import load_model
from pytest_cxrperf.model.study import load_studies


def _stages(t: Any) -> str:
    return (
        f"vision {t.vision_s:.3f} s  prefill {t.prefill_s:.3f} s  "
        f"decode {t.per_token_s * 1000:.2f} ms/token"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", choices=("fp32", "bf16"))
    parser.add_argument("--model", default="bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    reference = load_model(args.model)
    inputs = reference.processor(load_studies(None)[0])
    dtype = torch.float32 if args.base == "fp32" else torch.bfloat16
    quantized, version = int8_dynamic_copy(reference.model, dtype)
    start = perf_counter()
    runner = compiled_runner(quantized, reference.processor, inputs)
    print(f"torchao {version}, {args.base} base: compiled in {perf_counter() - start:.1f} s")
    for _ in range(args.rounds):
        print("  " + _stages(runner.generate(inputs, 32, force_length=True).timings))
    eager = TorchRunner(reference.model, reference.processor).generate(
        inputs, 32, force_length=True
    )
    out = runner.generate(inputs, 32, force_length=True)
    same = sum(a == b for a, b in zip(out.token_ids, eager.token_ids, strict=True))
    print("  eager fp32: " + _stages(eager.timings))
    print(f"  tokens equal to eager fp32's: {same} of {len(eager.token_ids)}")


if __name__ == "__main__":
    main()
