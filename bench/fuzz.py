"""Long fuzz campaign against a live ``facematch serve`` (2 workers by default).

Starts the server on a free loopback port with a fresh SQLite database (or
``--database-url``), provisions a client, and sends hypothesis-generated hostile
requests (facematch/testing/fuzz_cases.py: every endpoint, malformed JSON, lone
surrogates, base64 variants, mutated images of every format, extreme image shapes,
odd methods, paths and headers) from ``--concurrency`` client threads. Bounded by
``--cases`` and ``--max-seconds``; stops by itself; loopback only.

Reports counts by status and by kind of case, answers that break the documented
contract (status, catalogue JSON), 5xx answers and dropped connections (each saved
with its case, for ``--replay``), worker restarts (pids and the server log), RSS of
each worker before and after, the slowest case, and the trial ledger (trials lost by
the token = answers that report ``trials_remaining``).

    python -m bench.fuzz --cases 50000 --max-seconds 3000 --json fuzz.json
    python -m bench.fuzz --replay fuzz-failures.jsonl
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import queue
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from tqdm import tqdm

from facematch.store import db
from facematch.testing import fuzz_cases as fz
from facematch.testing import fuzz_target
from facematch.testing.lfw import lfw_image, lfw_root_path
from facematch.testing.live import LiveServer

# Extreme shapes in every accepted format: tiny files, huge arrays (defect 1 of issue 10).
EXTREME_SHAPES = (
    (70000, 64, "PNG"),
    (64, 70000, "PNG"),
    (65000, 64, "JPEG"),
    (16383, 64, "WEBP"),
    (64, 16383, "WEBP"),
    (30000, 200, "PNG"),
    (5000, 5000, "PNG"),
)


class _CampaignDoneError(Exception):
    """Raised inside the generator to end the campaign early (time or count reached)."""


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    endpoints: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    trial_answers: int = 0  # match answers carrying trials_remaining
    slowest_s: float = 0.0
    slowest: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.dropped


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def warm_up(url: str, target: fz.Target, calls: int) -> None:
    """Real matches first, so both workers have loaded what a match needs (onnxruntime
    arenas, decoder buffers) before RSS is measured: growth is then the campaign's."""
    face = base64.b64encode(target.faces[0]).decode("ascii")
    body = {"first_img": face, "second_img": face, "bundle_key": target.bundle_key}
    headers = {"Authorization": f"Bearer {target.token}"}
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda _: httpx.post(
                    f"{url}/api/v1/face/match/", json=body, headers=headers, timeout=120
                ),
                range(calls),
            )
        )


def _sample_rss(
    server: LiveServer,
    tally: Tally,
    timeline: list[tuple[int, dict[int, int | None]]],
    every_s: float,
) -> None:
    """Worker RSS (KiB) every ``every_s`` seconds, keyed by cases sent so far."""
    while True:
        time.sleep(every_s)  # a sampling period, not a stand-in for an event
        timeline.append((tally.sent, {pid: rss_kib(pid) for pid in server.worker_pids()}))


def send(http: httpx.Client, case: fz.Case) -> tuple[int | None, bytes, float, str | None]:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in case.headers]
    start = time.perf_counter()
    try:
        response = http.request(case.method, case.path, headers=headers, content=case.body)
    except httpx.TransportError as exc:
        return None, b"", time.perf_counter() - start, repr(exc)
    return response.status_code, response.content, time.perf_counter() - start, None


def _sender(
    url: str, cases: queue.Queue[fz.Case | None], tally: Tally, failures: Path, bar: tqdm
) -> None:
    with httpx.Client(base_url=url, timeout=120, limits=fz.ONE_CONNECTION_PER_CASE) as http:
        while (case := cases.get()) is not None:
            status, body, elapsed, error = send(http, case)
            problems = [f"dropped connection: {error}"] if error else []
            if status is not None:
                problems += fz.violations(case, status, body, trials_spent=None)
            with tally.lock:
                tally.kinds[case.kind.split("-")[0]] += 1
                tally.endpoints[case.endpoint] += 1
                if status is None:
                    tally.dropped += 1
                else:
                    tally.statuses[status] += 1
                    if case.endpoint in fz.SPENDS_TRIAL and b'"trials_remaining"' in body:
                        tally.trial_answers += 1
                if elapsed > tally.slowest_s:
                    tally.slowest_s, tally.slowest = elapsed, case.summary(120)
                for problem in problems:
                    tally.violations[f"{case.endpoint}: {problem.split(' not in')[0][:50]}"] += 1
                if problems:
                    record = {
                        "problems": problems,
                        "status": status,
                        "answer": body[:500].decode("utf-8", "replace"),
                        "case": case.to_json(),
                    }
                    with failures.open("a") as out:
                        out.write(json.dumps(record) + "\n")
            bar.update(1)


def campaign(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.out or tempfile.mkdtemp(prefix="facematch-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or f"sqlite:///{work / 'fuzz.sqlite3'}"
    failures = work / "fuzz-failures.jsonl"
    failures.unlink(missing_ok=True)
    database = db.create_db_engine(database_url)
    db.migrate(database)
    log_path = work / "server.log"
    jpeg = lfw_image(lfw_root_path(), "Aaron_Peirsol", 1).read_bytes()
    extreme = tuple(fz.flat_image(w, h, fmt) for w, h, fmt in EXTREME_SHAPES)
    with LiveServer(
        database_url=database_url, data_dir=work, workers=args.workers, log_path=log_path
    ) as server:
        target = fuzz_target.live_target(database, database_url, server.url, jpeg)
        pids = server.worker_pids()
        started = server.started_workers()
        warm_up(server.url, target, args.warm_up)
        rss_before = {pid: rss_kib(pid) for pid in pids}
        trials_before = fuzz_target.trials_left(database, target.token)
        extreme_images = st.sampled_from(extreme).map(
            lambda raw: base64.b64encode(raw).decode("ascii")
        )
        images = st.one_of(fz.image_texts(target), extreme_images)
        strategy = fz.any_case(target, images=images)

        tally = Tally()
        cases: queue.Queue[fz.Case | None] = queue.Queue(maxsize=args.concurrency * 4)
        deadline = time.monotonic() + args.max_seconds
        bar = tqdm(total=args.cases, unit="case", smoothing=0.05)
        rss_timeline: list[tuple[int, dict[int, int | None]]] = []
        sampler = threading.Thread(
            target=_sample_rss, args=(server, tally, rss_timeline, args.rss_every_s), daemon=True
        )
        sampler.start()
        threads = [
            threading.Thread(target=_sender, args=(server.url, cases, tally, failures, bar))
            for _ in range(args.concurrency)
        ]
        for thread in threads:
            thread.start()
        produced = 0

        @seed(args.seed)
        @settings(
            max_examples=args.cases,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def generate(case: fz.Case) -> None:
            nonlocal produced
            if produced >= args.cases or time.monotonic() > deadline:
                raise _CampaignDoneError
            cases.put(case)
            produced += 1

        start = time.monotonic()
        try:
            with contextlib.suppress(_CampaignDoneError):
                generate()
        finally:
            for _ in threads:
                cases.put(None)
            for thread in threads:
                thread.join()
        bar.close()
        elapsed = time.monotonic() - start
        alive = httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
        trials_spent = trials_before - fuzz_target.trials_left(database, target.token)
        pids_after = server.worker_pids()
        report = {
            "cases": tally.sent,
            "generated": produced,
            "seconds": round(elapsed, 1),
            "cases_per_s": round(tally.sent / elapsed, 1) if elapsed else None,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "seed": args.seed,
            "statuses": dict(sorted(tally.statuses.items())),
            "kinds": dict(tally.kinds.most_common()),
            "endpoints": dict(tally.endpoints.most_common()),
            "violations": dict(tally.violations.most_common()),
            "server_errors_5xx_not_503": sum(
                n for s, n in tally.statuses.items() if s >= 500 and s != 503
            ),
            "dropped_connections": tally.dropped,
            "worker_restarts": server.started_workers() - started,
            "worker_pids_before": pids,
            "worker_pids_after": pids_after,
            "rss_kib_before": rss_before,
            "rss_kib_after": {pid: rss_kib(pid) for pid in pids_after},
            "rss_kib_timeline": rss_timeline,
            "slowest_s": round(tally.slowest_s, 3),
            "slowest_case": tally.slowest,
            "trials_spent": trials_spent,
            "answers_reporting_a_trial": tally.trial_answers,
            # Trials the token lost on calls whose answer did not say so (500s after auth).
            "trials_spent_unreported": trials_spent - tally.trial_answers,
            "alive_after": alive,
            "failures_file": str(failures) if failures.exists() else None,
            "server_log": str(log_path),
            "load_average": os.getloadavg(),
        }
    database.dispose()
    return report


def replay(args: argparse.Namespace) -> None:
    """Send saved cases again (to ``--url``) and print what the server answers now."""
    for line in Path(args.replay).read_text().splitlines():
        case = fz.Case.from_json(json.loads(line)["case"])
        with httpx.Client(base_url=args.url, timeout=120) as http:
            status, body, elapsed, error = send(http, case)
        problems = fz.violations(case, status, body, None) if status else [f"dropped: {error}"]
        print(f"{status} {elapsed:.3f}s {problems or 'ok'}\n  {case.summary(200)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument(
        "--max-seconds", type=float, default=3000.0, help="under the 1 h token lifetime"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=40, help="real matches before RSS")
    parser.add_argument("--rss-every-s", type=float, default=60.0)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in --out")
    parser.add_argument("--out", help="folder for the database, server log and failures")
    parser.add_argument("--json", help="write the report here too")
    parser.add_argument("--replay", help="a failures file (JSON lines) to send again")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="server for --replay")
    args = parser.parse_args()
    if args.replay:
        host = httpx.URL(args.url).host
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error("loopback only")
        replay(args)
        return
    report = campaign(args)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
