"""Typed errors raised by the face engine.

Every failure the engine reports is one of these classes; library exceptions
(PIL, dlib, onnxruntime, binascii) are translated where the engine meets them
and chained with ``from exc``. Callers decide what is the client's fault by the
branch of the tree, never by parsing messages::

    EngineError                      root of everything the engine raises
    ├── InputError                   the caller's input cannot be used
    │   ├── ImageError               the bytes are not a usable image
    │   │   ├── InvalidBase64Error   text is not valid base64 / data URL
    │   │   ├── UnsupportedImageError  not an image, or a format we refuse
    │   │   ├── CorruptImageError    truncated or damaged image data
    │   │   ├── ImageTooLargeError   more bytes than the byte limit
    │   │   ├── TooManyPixelsError   would decode to more pixels than allowed
    │   │   ├── ImageShapeError      a side or the aspect ratio is outside the envelope
    │   │   ├── ImageTooComplexError  its encoding would cost too much to decode
    │   │   └── ImageTooSmallError   fewer pixels than a face needs
    │   └── FaceError                the image is fine, its faces are not
    │       ├── NoFaceError          no face found, rotations included
    │       ├── MultipleFacesError   more than one visible face
    │       ├── FaceTooSmallError    the only face is below the size limit
    │       ├── FaceTooDarkError     the face is too dark to verify
    │       ├── FaceOverExposedError the face is blown out by light
    │       ├── FaceBlurredError     the face is out of focus or moved
    │       └── FaceTurnedError      the face is turned too far from the camera
    └── ModelError                   a server-side fault: model missing or bad
        └── ModelFormatError         a model file is truncated or corrupted
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error the engine raises.

    ``image`` names which input of a two-image call failed (``"first"`` or
    ``"second"``), or is ``None`` when the error is not about one input.
    """

    def __init__(self, message: str, *, image: str | None = None) -> None:
        super().__init__(message)
        self.image = image


class InputError(EngineError):
    """The caller's input cannot be processed (the client's fault)."""


class ImageError(InputError):
    """The input bytes are not a usable image."""


class InvalidBase64Error(ImageError):
    """Text input is not valid base64 (optionally a ``data:`` URL)."""


class UnsupportedImageError(ImageError):
    """The bytes are not an image, or an image format the engine refuses."""


class CorruptImageError(ImageError):
    """The image is truncated or its data is damaged."""


class ImageTooLargeError(ImageError):
    """The encoded image is larger than the byte limit."""


class TooManyPixelsError(ImageError):
    """The image would decode to more pixels than the pixel limit."""


class ImageShapeError(ImageError):
    """A side or the aspect ratio is outside the shape envelope (engine/envelope.py)."""


class ImageTooComplexError(ImageError):
    """The encoding would cost too much to decode (e.g. a JPEG with too many scans)."""


class ImageTooSmallError(ImageError):
    """The image is too small to hold a face the engine can verify."""


class FaceError(InputError):
    """The image decoded, but its faces do not allow a verification."""


class NoFaceError(FaceError):
    """No face was found, after trying the rotated image too."""


class MultipleFacesError(FaceError):
    """More than one visible face; verification needs exactly one."""


class FaceTooSmallError(FaceError):
    """The face found is smaller than the minimum supported face size."""


class FaceTooDarkError(FaceError):
    """The face is too dark to verify (engine/quality.py)."""


class FaceOverExposedError(FaceError):
    """Too much of the face is blown out by light (engine/quality.py)."""


class FaceBlurredError(FaceError):
    """The face is out of focus or moved (engine/quality.py)."""


class FaceTurnedError(FaceError):
    """The face is turned too far away from the camera (engine/quality.py)."""


class ModelError(EngineError):
    """A model could not be loaded (a server-side fault, not the client's)."""


class ModelFormatError(ModelError):
    """A model file is truncated, corrupted or not in the expected format."""
