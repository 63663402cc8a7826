"""The reader of dlib's serialized ResNet: real file, primitives, damaged copies."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facematch.engine.dlib_format import (
    AddPrev,
    Conv,
    FcNoBias,
    MaxPool,
    _Reader,
    load_network,
    parse_network,
)
from facematch.engine.errors import ModelFormatError
from facematch.engine.models import resnet_model_path
from facematch.engine.onnx_embedder import OnnxEmbedder


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return resnet_model_path().read_bytes()


def test_real_model_has_dlib_resnet_layout(dat_bytes: bytes) -> None:
    net = parse_network(dat_bytes)
    kinds = Counter(type(layer).__name__ for layer in net.layers)
    assert kinds["Conv"] == 29
    assert kinds["Affine"] == 29
    assert kinds["AddPrev"] == 14
    assert kinds["AvgPool"] == 5
    assert (net.input.rows, net.input.cols) == (150, 150)
    # dlib's published training means, rounded in the file to float32.
    np.testing.assert_allclose(net.input.avg_rgb, (122.782, 117.001, 104.298), atol=1e-4)
    first = net.layers[0]
    assert isinstance(first, Conv)
    assert first.weights.shape == (32, 3, 7, 7)
    assert first.stride == (2, 2)
    assert first.padding == (0, 0)
    assert isinstance(net.layers[3], MaxPool)
    assert isinstance(net.layers[-1], FcNoBias)
    assert net.layers[-1].weights.shape == (256, 128)
    assert any(isinstance(layer, AddPrev) and layer.tag_id == 2 for layer in net.layers)
    assert net.loss is not None
    assert net.loss.distance_threshold == pytest.approx(0.6)
    assert all(np.isfinite(layer.weights).all() for layer in net.layers if isinstance(layer, Conv))


# --------------------------------------------------------------------------- primitives


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x01\x00", 0),
        (b"\x01\x02", 2),
        (b"\x02\x80\x12", 0x1280),
        (b"\x81\x1c", -28),
        (b"\x00", 0),
    ],
)
def test_varint(raw: bytes, value: int) -> None:
    reader = _Reader(raw, "t")
    assert reader.int("n") == value
    assert reader.at_end()


def test_float_details_decodes_mantissa_and_exponent() -> None:
    # 0x99999a * 2**-24 is how dlib writes 0.6 (taken from the model's loss layer).
    reader = _Reader(b"\x03\x9a\x99\x99\x81\x18", "t")
    assert reader.float("x") == pytest.approx(0.6, abs=1e-7)


@pytest.mark.parametrize(
    ("exponent", "check"),
    [(32000, np.isposinf), (32001, np.isneginf), (32002, np.isnan)],
)
def test_float_details_special_values(exponent: int, check) -> None:  # type: ignore[no-untyped-def]
    raw = b"\x01\x00" + b"\x02" + exponent.to_bytes(2, "little")
    assert check(_Reader(raw, "t").float("x"))


def test_tensor_version_2_is_raw_float32() -> None:
    values = [1.5, -2.0, 0.25, 3.0]
    raw = b"\x01\x02" + b"\x01\x01" + b"\x01\x04" + b"\x01\x01" + b"\x01\x01"
    raw += struct.pack("<4f", *values)
    tensor = _Reader(raw, "t").tensor("w")
    assert tensor.shape == (1, 4, 1, 1)
    np.testing.assert_array_equal(tensor.reshape(-1), values)


def test_tensor_version_1_uses_float_details() -> None:
    # n=1, k=2, nr=1, nc=1, then 3 * 2**-1 and -5 * 2**0
    raw = b"\x01\x01" + b"\x01\x01\x01\x02\x01\x01\x01\x01"
    raw += b"\x01\x03\x81\x01" + b"\x81\x05\x01\x00"
    tensor = _Reader(raw, "t").tensor("w")
    np.testing.assert_array_equal(tensor.reshape(-1), [1.5, -5.0])


# --------------------------------------------------------------------------- damaged files


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "damaged.dat"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("keep", [0, 1, 15, 300, 400, 50_000, -200, -1])
def test_truncated_file_is_rejected_with_offset(
    tmp_path: Path, dat_bytes: bytes, keep: int
) -> None:
    cut = dat_bytes[:keep]
    with pytest.raises(ModelFormatError, match=r"byte offset \d+") as info:
        load_network(_write(tmp_path, cut))
    assert "damaged.dat" in str(info.value)


def test_truncation_message_says_what_was_expected(tmp_path: Path, dat_bytes: bytes) -> None:
    with pytest.raises(ModelFormatError, match="file ends early") as info:
        load_network(_write(tmp_path, dat_bytes[:-1]))
    assert f"file is {len(dat_bytes) - 1} bytes" in str(info.value)


def test_wrong_layer_name_is_rejected(tmp_path: Path, dat_bytes: bytes) -> None:
    corrupted = dat_bytes.replace(b"con_4", b"con_9", 1)
    with pytest.raises(ModelFormatError, match=r"conv layer version.*con_9.*byte offset"):
        load_network(_write(tmp_path, corrupted))


def test_wrong_loss_layer_is_rejected(tmp_path: Path, dat_bytes: bytes) -> None:
    corrupted = dat_bytes.replace(b"loss_metric_2", b"loss_mmod_xx2", 1)
    with pytest.raises(ModelFormatError, match=r"loss layer version.*byte offset 2"):
        load_network(_write(tmp_path, corrupted))


def test_corrupted_control_byte_is_rejected(tmp_path: Path, dat_bytes: bytes) -> None:
    corrupted = bytearray(dat_bytes)
    assert corrupted[29] == 0x01  # control byte of the fc layer's version header
    corrupted[29] = 0x7F
    with pytest.raises(ModelFormatError, match=r"bad integer control byte 0x7f.*byte offset 29"):
        load_network(_write(tmp_path, bytes(corrupted)))


def test_wrong_hyper_parameter_is_rejected(tmp_path: Path, dat_bytes: bytes) -> None:
    # The first conv's num_filters (32 = b" ") is written right after its params tensor.
    start = dat_bytes.index(b"con_4") + len(b"con_4")
    params_end = start + 2 + 3 + 6 + 4 * (32 * 3 * 7 * 7 + 32)
    assert dat_bytes[params_end : params_end + 2] == b"\x01 "
    corrupted = dat_bytes[:params_end] + b"\x01\x40" + dat_bytes[params_end + 2 :]
    with pytest.raises(
        ModelFormatError, match=f"num_filters = 32, found 64 at byte offset {params_end}"
    ):
        load_network(_write(tmp_path, corrupted))


def test_trailing_garbage_is_rejected(tmp_path: Path, dat_bytes: bytes) -> None:
    with pytest.raises(ModelFormatError, match="3 unexpected bytes"):
        load_network(_write(tmp_path, dat_bytes + b"abc"))


def test_missing_file_is_a_model_format_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="cannot read"):
        load_network(tmp_path / "absent.dat")


def test_embedder_refuses_truncated_model(tmp_path: Path, dat_bytes: bytes) -> None:
    path = _write(tmp_path, dat_bytes[: len(dat_bytes) // 2])
    with pytest.raises(ModelFormatError):
        OnnxEmbedder(model_path=path, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.onnx"))
