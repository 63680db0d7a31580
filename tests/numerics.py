"""The numeric test policy: parity with another library is judged against its float64 result.

A constant bound against a float32 reference holds on the CPU it was tuned on and fails on
another: oneDNN (Intel AVX512/AMX), Eigen and MKL/pocketfft sum in other orders, and the
reference's own float32 rounding moves with them. So each parity test runs the reference twice,
in float32 (as used) and in float64 (its exact result), and bounds our error against the float64
result by a multiple of the reference's own float32 error on the same input, plus a small
margin. That bound moves with the machine exactly as the reference's rounding does.
See docs/design.md, "Numeric test policy".
"""

import numpy as np

# Our float32 graph and the reference's sum in different orders: on PaSST both land within
# 0.8-1.5x of each other's error against float64 (measured on AMD EPYC); 4x leaves room for
# another kernel order, and still fails on any real mistake (a wrong epsilon or a transposed
# weight is 1e-3 or more, thousands of times the reference's own error).
FLOAT32_FACTOR = 4.0


def relative_error(got, expected):
    """max |got - expected| / max |expected|, in float64."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))


def absolute_error(got, expected):
    """max |got - expected|, in float64."""
    return float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(expected, np.float64))))


def assert_float32_parity(
    ours,
    reference32,
    reference64,
    error=relative_error,
    margin=1e-7,
    factor=FLOAT32_FACTOR,
    what="output",
):
    """Our float32 result is as close to exact as the reference's float32 result is.

    Args:
        ours: our output (float32).
        reference32: the reference library's output in float32 (as it is used).
        reference64: the same reference run in float64 on the same input (exact, for this).
        error: `relative_error` or `absolute_error`.
        margin: a floor in `error`'s unit (a few float32 ulps at the output's scale), so that a
            reference that happens to be nearly exact does not demand the impossible.
        factor: how many times the reference's own float32 error ours may be.
    """
    own = error(reference32, reference64)
    ours_error = error(ours, reference64)
    bound = factor * own + margin
    assert ours_error <= bound, (
        f"{what}: error {ours_error:.3g} against the float64 reference exceeds {factor:g} x the "
        f"reference's own float32 error {own:.3g} + {margin:.3g}"
    )
    return ours_error, own
