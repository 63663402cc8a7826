"""The wire protocol under the server's own name: :mod:`facematch_protocol` itself.

The implementation ships in the ``facematch-client`` distribution (clients/python),
which the server depends on, so the SDK and the server run the same code
(docs/sdk.md). This package adds nothing; it re-exports those names, with the
same submodules (``canonical``, ``signing``, ``envelope``). The server imports the
protocol only from here, and nothing here imports a web framework (both checked
by tests/test_public_api.py).
"""

from facematch_protocol import *  # noqa: F403
from facematch_protocol import __all__ as __all__
