"""The face engine: bytes → image → faces → embeddings → score → decision.

Pure Python + numpy + dlib + onnxruntime. Knows nothing about HTTP, tokens or
databases; the service layer calls it.
"""
