"""loranas.matmul through the C ABI against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import loranas

SHAPES = [(1, 1, 1), (2, 3, 4), (5, 1, 7), (17, 33, 9), (64, 128, 32), (130, 70, 257)]


def _operands(rng, m, k, n, trans_a, trans_b, integers=False):
    draw = (lambda s: rng.integers(-4, 5, size=s).astype(np.float32)) if integers else (
        lambda s: rng.standard_normal(s).astype(np.float32)
    )
    a = draw((k, m) if trans_a else (m, k))
    b = draw((n, k) if trans_b else (k, n))
    return a, b


def _reference(a, b, trans_a, trans_b):
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    return (a64.T if trans_a else a64) @ (b64.T if trans_b else b64)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_matmul_exact_on_integers(m, k, n, trans_a, trans_b):
    # Small integers: every product and partial sum is exact in float32, so any layout or
    # transposition mistake shows as a mismatch.
    rng = np.random.default_rng(m * 10007 + k * 101 + n)
    a, b = _operands(rng, m, k, n, trans_a, trans_b, integers=True)
    c = loranas.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    assert c.dtype == np.float32 and c.shape == (m, n) and c.flags.c_contiguous
    np.testing.assert_array_equal(c, _reference(a, b, trans_a, trans_b).astype(np.float32))


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_matmul_matches_numpy(m, k, n, trans_a, trans_b):
    rng = np.random.default_rng(1 + m * 10007 + k * 101 + n)
    a, b = _operands(rng, m, k, n, trans_a, trans_b)
    c = loranas.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    ref = _reference(a, b, trans_a, trans_b)
    # rtol 1e-5 relative to the sum of |terms| (what float32 rounding scales with), so entries
    # that cancel to near zero are not held to a relative bound they cannot meet.
    scale = _reference(np.abs(a), np.abs(b), trans_a, trans_b)
    err = np.abs(c.astype(np.float64) - ref)
    worst = np.unravel_index(np.argmax(err / scale), err.shape)
    assert np.all(err <= 1e-5 * scale), f"worst at {worst}: {c[worst]} vs {ref[worst]}"


def test_matmul_converts_inputs():
    rng = np.random.default_rng(7)
    a64 = rng.integers(-3, 4, size=(6, 4)).astype(np.float64)
    b_big = rng.integers(-3, 4, size=(9, 10)).astype(np.float32)
    b_view = b_big[::2, 1::2]  # (5, 5) non-contiguous
    a_view = a64[:5].T  # (4, 5), a transposed float64 view
    c = loranas.matmul(a_view, b_view)
    np.testing.assert_array_equal(c, (a_view @ b_view).astype(np.float32))
    c2 = loranas.matmul([[1, 2], [3, 4]], [[5], [6]])  # nested lists of ints
    np.testing.assert_array_equal(c2, np.array([[17], [39]], np.float32))


def test_matmul_does_not_modify_inputs():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(12, dtype=np.float32).reshape(3, 4)
    a0, b0 = a.copy(), b.copy()
    loranas.matmul(a, b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("m, k, n", [(0, 3, 4), (3, 4, 0), (3, 0, 4)])
def test_matmul_empty(m, k, n):
    a = np.ones((m, k), np.float32)
    b = np.ones((k, n), np.float32)
    c = loranas.matmul(a, b)
    assert c.shape == (m, n)
    np.testing.assert_array_equal(c, np.zeros((m, n), np.float32))  # an empty sum is 0


def test_matmul_with_several_threads():
    rng = np.random.default_rng(3)
    a = rng.integers(-4, 5, size=(300, 200)).astype(np.float32)
    b = rng.integers(-4, 5, size=(200, 150)).astype(np.float32)
    before = loranas.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            loranas.set_num_threads(threads)
            results.append(loranas.matmul(a, b))
    finally:
        loranas.set_num_threads(before)
    expected = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)
    for c in results:
        np.testing.assert_array_equal(c, expected)
