"""MiniLMEmbedder's speed options: batching by token count keeps the numbers, and the opt-in
int8 variant is a model of its own, close to float32 but never mixed with it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from charter.retrieval.embed import INT8_LAYERS, MiniLMEmbedder, _load, get_embedder

TEXTS = [
    "Boundary layer transition on a flat plate at supersonic speeds.",
    "",
    "The recipe calls for flour, sugar and two eggs. " * 12,
    "short",
    "Heat transfer in laminar flow past a heated cylinder, measured in a wind tunnel. " * 6,
    "long " * 400,
]


@pytest.fixture(scope="module")
def fp32() -> MiniLMEmbedder:
    return get_embedder().load()


def test_batch_size_does_not_change_the_vectors(fp32: MiniLMEmbedder) -> None:
    for batch_size in (1, 2, 64):
        got = MiniLMEmbedder(batch_size=batch_size).encode(TEXTS)
        np.testing.assert_allclose(got, fp32.encode(TEXTS), atol=1e-5)


def test_the_pooler_is_not_run(fp32: MiniLMEmbedder) -> None:
    assert _load(fp32.path).model.pooler is None


def test_int8_is_close_to_float32_and_a_model_of_its_own(fp32: MiniLMEmbedder) -> None:
    import torch

    int8 = MiniLMEmbedder(quantize=True)
    got = int8.encode(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * fp32.encode(TEXTS)).sum(1)
    # Passages agree to about 0.99; the shortest texts least ("" 0.93, "short" 0.97).
    assert cos[[0, 2, 4, 5]].min() > 0.98 and cos.min() > 0.9
    assert not np.allclose(got, fp32.encode(TEXTS), atol=1e-4)  # really another variant

    quantized = _load(int8.path, INT8_LAYERS).model
    assert _load(int8.path, INT8_LAYERS) is int8._loaded  # loaded once, shared
    left_float = [n for n, m in quantized.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(left_float) == 6  # the feed-forward outputs, one a layer
    assert all(re.search(r"layer\.\d+\.output\.dense$", n) for n in left_float)
    float_model = _load(fp32.path).model
    assert sum(isinstance(m, torch.nn.Linear) for m in float_model.modules()) == 36
    assert not get_embedder().quantize  # queries stay float32
