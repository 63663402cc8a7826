"""The harness shared by the tests and ``bench/``: not used by the service itself.

- :mod:`.live` — ``facematch serve`` as a child process on a free loopback port
  (:class:`~.live.LiveServer`), and :func:`~.live.free_port`.
- :mod:`.provision` — a client (organisation, user, bundle, application) written
  into a server's database, its access token, and a read-back of what the
  database recorded (:func:`~.provision.ledger`).
- :mod:`.stub` — :class:`~.stub.StubMatcher`, a scripted engine that loads no model.
- :mod:`.keys` — one client RSA key pair per process.
- :mod:`.lfw` — where the LFW View 1 images are.
- :mod:`.fuzz_cases`, :mod:`.fuzz_target` — hostile-request generators, their
  oracle, and a fuzz target on a running server.

It lives in the package (not in ``tests/``) so that ``bench/`` never imports
from ``tests/``, and so that mypy and the import contracts check it like the
rest of ``src/`` (docs/development.md). Its modules import the ``dev`` extra's
packages (httpx, hypothesis); no production module imports this package
(an import-linter contract).
"""
