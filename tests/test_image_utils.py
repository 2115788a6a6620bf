"""batchup.image.utils.ImageArrayUInt8ToFloat32."""

import numpy as np
import pytest

from batchup.image.utils import ImageArrayUInt8ToFloat32

ARR = np.array([[0, 127, 255], [30, 60, 90]], dtype=np.uint8)


def test_default_range_matches_reference():
    w = ImageArrayUInt8ToFloat32(ARR)
    np.testing.assert_array_equal(w[0], np.array([0.0, 0.49803925, 1.0], dtype=np.float32))
    assert w[0].dtype == np.float32


def test_custom_range_matches_reference():
    w = ImageArrayUInt8ToFloat32(ARR, -1.0, 1.0)
    # float32 arithmetic: u8 * float32(2 / 255) + float32(-1)
    exact = ARR[0].astype(np.float32) * np.float32(2.0 / 255.0) + np.float32(-1.0)
    np.testing.assert_array_equal(w[0], exact)
    np.testing.assert_allclose(w[0], [-1.0, -0.00392151, 1.0], rtol=1e-6)


def test_attributes():
    w = ImageArrayUInt8ToFloat32(ARR, 0.5, 2.0)
    assert w.arr_u8 is ARR
    assert w.offset == np.float32(0.5) and w.scale == np.float32(1.5 / 255.0)
    assert w.dtype is np.float32
    assert w.shape == (2, 3) and len(w) == 2


def test_indexing_forms():
    w = ImageArrayUInt8ToFloat32(ARR)
    assert isinstance(w[1, 2], np.float32)
    assert w[np.array([1, 0])].shape == (2, 3)
    assert w[...].shape == (2, 3)
    assert w[:, 1:].shape == (2, 2)


def test_conversion_is_lazy_per_batch():
    calls = []

    class Recorder:
        shape = (4, 3)

        def __len__(self):
            return 4

        def __getitem__(self, key):
            calls.append(key)
            return ARR[:1]

    w = ImageArrayUInt8ToFloat32(Recorder())
    assert calls == []
    w[slice(0, 1)]
    assert calls == [slice(0, 1)]


def test_no_shape_raises_attribute_error():
    with pytest.raises(AttributeError, match="no `shape` attribute"):
        _ = ImageArrayUInt8ToFloat32([[0, 1]]).shape


def test_assignment_is_not_supported():
    w = ImageArrayUInt8ToFloat32(ARR)
    with pytest.raises(TypeError):
        w[0] = 1
