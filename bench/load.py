"""Load harness: drive a real ``facematch serve`` on loopback with real face pairs.

It starts N worker processes of ``facematch serve`` on a free loopback port
(or uses ``--url``), writes an organisation, user, bundle and application into
its database (both with :mod:`facematch.testing`, the harness the live tests
use), takes LFW View 1 DevTest pairs as JPEGs (``--workload``: ``lfw-640x480``,
each face re-encoded as a 640×480 frame, or ``kyc``, the
KYC-style selfie × ID-card pairs of :mod:`facematch.evaluation.kyc`: selfies of
640×480, 480×640 and 12 MP, flat and photographed ID cards, a quarter turned),
and sends two-image match requests **open-loop**: request *i* is sent at
``start + i / rate`` whether or not earlier ones have answered, the way
independent clients behave, and latency is measured from that scheduled
instant (so a stalled server cannot hide its queueing delay).

Every run is bounded in requests and in time, and stops by itself.

Modes (``--mode``):

* ``fixed``    one run at ``--rate`` for ``--duration`` seconds;
* ``max``      steps the rate up until a step has errors or cannot keep up,
               and reports the highest rate sustained with zero errors;
* ``steady``   80 % of ``--rate`` (the measured max) for ``--duration``;
* ``overload`` 3 × ``--rate`` for ``--duration``;
* ``soak``     80 % of ``--rate`` for 5 minutes, RSS per worker every 10 s;
* ``all``      max, then 80 %, 3×, and the soak, on one server.

Reports throughput, p50/p95/p99 latency (successes and refusals apart),
counts by HTTP status, and RSS per worker, as text and optionally JSON
(``--json FILE``). Loopback only: the harness refuses non-loopback URLs.

    python -m bench.load --workers 2 --mode all --json load.json
    python -m bench.load --url http://127.0.0.1:8000 --pids 1234,1235 --rate 10 --duration 60

``--server-env KEY=VALUE`` passes settings to the started server (e.g.
``FACEMATCH_MIN_FACE_PX=80``); ``--database-url`` points it at PostgreSQL;
``--pairs-cache FILE`` keeps the chosen pairs so repeated runs skip choosing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import ipaddress
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

from facematch.settings import Settings
from facematch.store import db
from facematch.testing.live import LiveServer
from facematch.testing.provision import Credentials, provision

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = ROOT / ".." / "shared" / "data" / "lfw-view1"
MATCH_PATH = "/api/v1/face/match/"
TOKEN_PATH = "/api/o/token/"
REFUSALS = (429, 503)
HARD_CAP_REQUESTS = 100_000  # no run ever sends more than this
HARD_CAP_SECONDS = 1800.0  # nor runs longer than this


# --- images ---------------------------------------------------------------------


def reencode_640x480(path: Path, *, quality: int = 90) -> bytes:
    """An LFW 250×250 face as a 640×480 JPEG, like a phone selfie or ID scan.

    The face image is scaled to 480×480 and centred on a blurred, stretched
    copy of itself, so the frame has no hard edges a detector could trip on.
    """
    face = Image.open(path).convert("RGB").resize((480, 480), Image.Resampling.BICUBIC)
    # Down to 32×24 and back up: a cheap, smooth blur of the same colours.
    canvas = face.resize((32, 24), Image.Resampling.BOX).resize(
        (640, 480), Image.Resampling.BILINEAR
    )
    canvas.paste(face, (80, 0))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=quality)
    return out.getvalue()


def engine_baseline_ms(pairs: list[tuple[str, str]], *, count: int = 10, repeats: int = 3) -> float:
    """Median ms of one in-process ``FaceMatcher.match`` (one thread) on the first pairs.

    The machine this runs on is a shared VM whose speed drifts by tens of percent
    over minutes; this baseline, taken in the harness process just before and
    after the load, says how fast the machine was, so that runs can be compared
    (throughput × baseline is what should stay constant).
    """
    from facematch.engine.matcher import FaceMatcher

    matcher = FaceMatcher()
    # The requests carry base64; the engine takes bytes (a str would be a path).
    sample = [(base64.b64decode(a), base64.b64decode(b)) for a, b in pairs[:count]]
    matcher.match(*sample[0])  # warm-up
    times = []
    for _ in range(repeats):
        for first, second in sample:
            started = time.perf_counter()
            matcher.match(first, second)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def load_pairs(lfw_root: Path, count: int) -> tuple[list[tuple[str, str]], int]:
    """``count`` DevTest pairs (same and different people, alternating) as base64 JPEGs.

    Only pairs whose two re-encoded images the engine accepts (exactly one
    visible face each) are kept, so every request of a run should succeed and
    any non-200 answer is the server's doing. Returns the pairs and how many
    DevTest pairs were examined to find them.
    """
    import gc

    from facematch.engine.errors import InputError
    from facematch.engine.matcher import FaceMatcher
    from facematch.settings import Settings

    matcher = FaceMatcher.from_settings(Settings())
    lines = (lfw_root / "pairsDevTest.txt").read_text().splitlines()[1:]
    same = [line.split() for line in lines if len(line.split()) == 3]
    diff = [line.split() for line in lines if len(line.split()) == 4]
    interleaved = [p for pair in zip(same, diff, strict=False) for p in pair]

    def image(name: str, number: str) -> bytes:
        return reencode_640x480(lfw_root / "images" / name / f"{name}_{int(number):04d}.jpg")

    pairs: list[tuple[str, str]] = []
    examined = 0
    for fields in interleaved:
        if len(pairs) >= count:
            break
        examined += 1
        if len(fields) == 3:
            jpegs = (image(fields[0], fields[1]), image(fields[0], fields[2]))
        else:
            jpegs = (image(fields[0], fields[1]), image(fields[2], fields[3]))
        try:
            for jpeg in jpegs:
                matcher.observe(jpeg)
        except InputError:
            continue  # no face, or several: LFW photos often show bystanders
        pairs.append((base64.b64encode(jpegs[0]).decode(), base64.b64encode(jpegs[1]).decode()))
    del matcher
    gc.collect()
    return pairs, examined


def load_kyc_pairs(lfw_root: Path, count: int, out_dir: Path) -> tuple[list[tuple[str, str]], int]:
    """``count`` KYC-style selfie × ID-card pairs (same and different alternating) as base64.

    Like :func:`load_pairs`, only pairs whose two images the engine accepts are
    kept. The images are rendered into ``out_dir`` once and reused.
    """
    import gc

    from facematch.engine.errors import InputError
    from facematch.engine.matcher import FaceMatcher
    from facematch.evaluation.kyc import build_set
    from facematch.evaluation.lfw import read_pairs
    from facematch.settings import Settings

    listed = read_pairs(lfw_root / "pairsDevTest.txt")
    same = [i for i, p in enumerate(listed) if p.same]
    diff = [i for i, p in enumerate(listed) if not p.same]
    order = [i for pair in zip(same, diff, strict=False) for i in pair][: 2 * count + 20]
    kyc = build_set(lfw_root, listed, out_dir, only=order)
    by_index = {p.index: p for p in kyc.pairs}
    matcher = FaceMatcher.from_settings(Settings())
    pairs: list[tuple[str, str]] = []
    examined = 0
    for index in order:
        if len(pairs) >= count:
            break
        examined += 1
        pair = by_index[index]
        jpegs = (kyc.path(pair.selfie).read_bytes(), kyc.path(pair.card).read_bytes())
        try:
            for jpeg in jpegs:
                matcher.observe(jpeg)
        except InputError:
            continue
        pairs.append((base64.b64encode(jpegs[0]).decode(), base64.b64encode(jpegs[1]).decode()))
    del matcher
    gc.collect()
    return pairs, examined


# --- server ---------------------------------------------------------------------


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing to load-test a non-loopback host: {host!r}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (threads included), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields 14 and 15 of stat (utime, stime); index 11 and 12 after the name.
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB, from /proc (no extra dependency)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- driving --------------------------------------------------------------------


@dataclass
class Sample:
    offset_s: float  # scheduled send time from the start of the run
    latency_s: float  # scheduled send → full response (or failure)
    status: int  # HTTP status; 0 = transport error or client-side timeout
    error_code: int | None = None
    # Scheduled send → the harness's task actually starting: the load client's own
    # delay (it shares the cores), included in latency_s as open-loop timing requires.
    start_lag_s: float = 0.0


@dataclass
class RunReport:
    name: str
    offered_rate: float
    duration_s: float
    sent: int
    by_status: dict[str, int]
    throughput_ok: float
    latency_ok_ms: dict[str, float]
    latency_refused_ms: dict[str, float]
    error_codes: dict[str, int]
    rss_mb: dict[str, list[float]] = field(default_factory=dict)
    rss_samples: list[tuple[float, list[float]]] = field(default_factory=list)
    # CPU time per request sent, to see where the machine's cores go.
    server_cpu_ms_per_request: float | None = None
    client_cpu_ms_per_request: float | None = None
    client_start_lag_ms: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.by_status.items() if s != "200")

    def text(self) -> str:
        ok = self.latency_ok_ms
        ref = self.latency_refused_ms
        lines = [
            f"== {self.name}: offered {self.offered_rate:.1f}/s for {self.duration_s:.0f} s, "
            f"sent {self.sent}",
            f"   statuses {self.by_status}  error codes {self.error_codes}",
            f"   throughput (200) {self.throughput_ok:.2f}/s",
        ]
        if ok:
            lines.append(
                f"   latency 200 ms   p50 {ok['p50']:.0f}  p95 {ok['p95']:.0f}  "
                f"p99 {ok['p99']:.0f}  max {ok['max']:.0f}"
            )
        if ref:
            lines.append(
                f"   latency 429/503 ms p50 {ref['p50']:.1f}  p95 {ref['p95']:.1f}  "
                f"p99 {ref['p99']:.1f}  max {ref['max']:.1f}"
            )
        if self.server_cpu_ms_per_request is not None:
            lines.append(
                f"   CPU per request: server {self.server_cpu_ms_per_request:.1f} ms, "
                f"load client {self.client_cpu_ms_per_request:.1f} ms"
            )
        lag = self.client_start_lag_ms
        if lag:
            lines.append(
                f"   load client start lag ms p50 {lag['p50']:.1f}  p99 {lag['p99']:.1f}  "
                f"max {lag['max']:.1f} (part of every latency above)"
            )
        for pid, values in self.rss_mb.items():
            lines.append(
                f"   RSS worker {pid}: start {values[0]:.0f} MiB, end {values[-1]:.0f} MiB, "
                f"max {max(values):.0f} MiB"
            )
        return "\n".join(lines)


def markdown_table(reports: list[RunReport]) -> str:
    """The runs as a Markdown table (for docs/performance.md)."""
    lines = [
        "| run | offered/s | sent | answered 200/s | statuses | 200 p50 / p95 / p99 ms "
        "| 429/503 p50 / p95 / p99 ms | RSS per worker MiB (start → end, max) |",
        "|---|---:|---:|---:|---|---|---|---|",
    ]
    for r in reports:
        ok, ref = r.latency_ok_ms, r.latency_refused_ms
        ok_text = f"{ok['p50']:.0f} / {ok['p95']:.0f} / {ok['p99']:.0f}" if ok else "–"
        ref_text = f"{ref['p50']:.1f} / {ref['p95']:.1f} / {ref['p99']:.1f}" if ref else "–"
        statuses = ", ".join(f"{k}: {v}" for k, v in r.by_status.items())
        rss = "; ".join(f"{v[0]:.0f} → {v[-1]:.0f} ({max(v):.0f})" for v in r.rss_mb.values() if v)
        lines.append(
            f"| {r.name} | {r.offered_rate:.1f} | {r.sent} | {r.throughput_ok:.1f} | {statuses} "
            f"| {ok_text} | {ref_text} | {rss} |"
        )
    return "\n".join(lines)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    return {
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": 1000 * ordered[-1],
        "mean": 1000 * statistics.fmean(ordered),
    }


class Driver:
    """Holds the client, a token with enough trials, and the prepared request bodies."""

    def __init__(self, url: str, client: Credentials, pairs: list[tuple[str, str]]) -> None:
        self.url = url
        self.client = client
        # Bodies are serialised once, so the harness spends its CPU on sending, not JSON.
        self.bodies = [
            json.dumps({"first_img": a, "second_img": b, "bundle_key": client.bundle_key}).encode()
            for a, b in pairs
        ]
        self.token = ""
        # Every server process (supervisor and workers) whose CPU time is counted.
        self.cpu_pids: list[int] = []

    async def fetch_token(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            f"{self.url}{TOKEN_PATH}",
            data={
                "grant_type": "password",
                "username": self.client.username,
                "password": self.client.password,
                "client_id": self.client.client_id,
                "client_secret": self.client.client_secret,
            },
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]

    async def _one(
        self, http: httpx.AsyncClient, body: bytes, scheduled: float, start: float, timeout_s: float
    ) -> Sample:
        status, code = 0, None
        start_lag = time.monotonic() - scheduled
        try:
            response = await http.post(
                f"{self.url}{MATCH_PATH}",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {self.token}",
                },
                timeout=timeout_s,
            )
            status = response.status_code
            if status != 200:
                try:
                    code = response.json().get("error_code")
                except ValueError:
                    code = None
        except httpx.HTTPError:
            status = 0
        return Sample(scheduled - start, time.monotonic() - scheduled, status, code, start_lag)

    async def run(
        self,
        name: str,
        *,
        rate: float,
        duration_s: float,
        max_requests: int,
        rss_pids: list[int],
        rss_every_s: float = 10.0,
        timeout_s: float = 60.0,
    ) -> RunReport:
        count = min(int(rate * duration_s), max_requests, HARD_CAP_REQUESTS)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        rss: dict[str, list[float]] = {str(pid): [] for pid in rss_pids}
        rss_samples: list[tuple[float, list[float]]] = []
        async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as http:
            if not self.token:
                await self.fetch_token(http)
            server_cpu_start = cpu_seconds(self.cpu_pids)
            client_cpu_start = time.process_time()
            start = time.monotonic()
            tasks: list[asyncio.Task[Sample]] = []
            next_rss = 0.0
            for i in range(count):
                scheduled = start + i / rate
                delay = scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if scheduled - start >= next_rss:
                    values = [rss_mb(pid) or 0.0 for pid in rss_pids]
                    rss_samples.append((round(scheduled - start, 1), values))
                    for pid, value in zip(rss_pids, values, strict=True):
                        rss[str(pid)].append(value)
                    next_rss += rss_every_s
                body = self.bodies[i % len(self.bodies)]
                tasks.append(
                    asyncio.create_task(self._one(http, body, scheduled, start, timeout_s))
                )
            samples = await asyncio.gather(*tasks)
            elapsed = time.monotonic() - start
            server_cpu = cpu_seconds(self.cpu_pids) - server_cpu_start
            client_cpu = time.process_time() - client_cpu_start
        for pid in rss_pids:
            value = rss_mb(pid)
            if value is not None:
                rss[str(pid)].append(value)
        by_status: dict[str, int] = {}
        codes: dict[str, int] = {}
        for s in samples:
            by_status[str(s.status)] = by_status.get(str(s.status), 0) + 1
            if s.error_code is not None:
                codes[str(s.error_code)] = codes.get(str(s.error_code), 0) + 1
        ok = [s.latency_s for s in samples if s.status == 200]
        refused = [s.latency_s for s in samples if s.status in REFUSALS]
        return RunReport(
            name=name,
            offered_rate=rate,
            duration_s=count / rate,
            sent=count,
            by_status=dict(sorted(by_status.items())),
            throughput_ok=len(ok) / elapsed if elapsed > 0 else 0.0,
            latency_ok_ms=_percentiles(ok),
            latency_refused_ms=_percentiles(refused),
            error_codes=codes,
            rss_mb={k: v for k, v in rss.items() if v},
            rss_samples=rss_samples,
            server_cpu_ms_per_request=1000 * server_cpu / count if self.cpu_pids else None,
            client_cpu_ms_per_request=1000 * client_cpu / count,
            client_start_lag_ms=_percentiles([s.start_lag_s for s in samples]),
        )


async def find_max_rate(
    driver: Driver, *, start_rate: float, step: float, step_s: float, pids: list[int], out: list
) -> float:
    """Highest offered rate answered entirely with 200 and kept up with (≥ 97 % delivered)."""
    best = 0.0
    rate = start_rate
    while True:
        report = await driver.run(
            f"max-search {rate:.0f}/s",
            rate=rate,
            duration_s=step_s,
            max_requests=int(rate * step_s),
            rss_pids=pids,
        )
        out.append(report)
        print(report.text(), flush=True)
        # Keeping up: answers came back at (nearly) the offered rate and no
        # queue built up (p99 under 1 s; a growing queue shows up in both).
        kept_up = (
            report.latency_ok_ms
            and report.latency_ok_ms["p99"] < 1000
            and report.throughput_ok >= 0.97 * rate
        )
        if report.errors or not kept_up:
            return best
        best = rate
        rate += step


async def main_async(args: argparse.Namespace) -> int:
    server: LiveServer | None = None
    workdir: Path | None = None
    reports: list[RunReport] = []
    started = time.monotonic()
    baseline_before: float | None = None
    baseline_after: float | None = None
    pairs: list[tuple[str, str]] = []
    try:
        # The pairs first: choosing them runs the engine here, before the server competes for CPU.
        cache = Path(args.pairs_cache) if args.pairs_cache else None
        if cache is not None and cache.is_file():
            saved = json.loads(cache.read_text())
            pairs, examined = [tuple(p) for p in saved["pairs"]], saved["examined"]
        else:
            if args.workload == "kyc":
                pairs, examined = load_kyc_pairs(
                    Path(args.lfw_root), args.pairs, Path(args.kyc_dir)
                )
            else:
                pairs, examined = load_pairs(Path(args.lfw_root), args.pairs)
            if cache is not None:
                cache.write_text(json.dumps({"pairs": pairs, "examined": examined}))
        what = (
            "KYC-style selfie × ID-card pairs"
            if args.workload == "kyc"
            else "LFW DevTest pairs re-encoded as 640x480 JPEG"
        )
        print(
            f"{len(pairs)} {what} (of {examined} examined: the others have a refused image)",
            flush=True,
        )
        if args.url:
            _require_loopback(args.url)
            url, pids = args.url.rstrip("/"), [int(p) for p in args.pids.split(",") if p]
            # The running server's database, as its own configuration (this environment) names it.
            database_url = db.database_url(Settings())
        else:
            workdir = Path(tempfile.mkdtemp(prefix="facematch-load-"))
            extra = dict(item.split("=", 1) for item in args.server_env)
            server = LiveServer(
                workers=args.workers,
                database_url=args.database_url,
                data_dir=workdir,
                log_path=Path(args.server_log),
                warm_up=True,  # measured runs start warm, as in production
                start_timeout_s=300.0,
                **extra,
            )
            database_url = server.database_url
            url = server.url
        baseline_before = engine_baseline_ms(pairs)
        print(f"engine baseline before: {baseline_before:.1f} ms per match", flush=True)
        client = provision(
            database_url, token_trials=10_000_000, token_lifetime_s=3600, name="load"
        )
        if server is not None:
            server.start()
            pids = server.worker_pids()
        print(f"server {url}, workers {pids}", flush=True)
        driver = Driver(url, client, pairs)
        driver.cpu_pids = sorted(
            {*pids, *([server.process.pid] if server and server.process else [])}
        )

        # Warm every worker (first requests pay lazy initialisation) without recording.
        await driver.run("warm-up", rate=4, duration_s=5, max_requests=20, rss_pids=[])

        mode = args.mode
        rate = args.rate
        if mode in ("max", "all"):
            rate = await find_max_rate(
                driver,
                start_rate=args.start_rate,
                step=args.step,
                step_s=args.step_seconds,
                pids=pids,
                out=reports,
            )
            print(f"max sustained rate with zero errors: {rate:.0f}/s", flush=True)
            if rate <= 0:
                return 1
        runs: list[tuple[str, float, float]] = []
        if mode == "fixed":
            runs.append(("fixed", rate, args.duration))
        if mode in ("steady", "all"):
            runs.append(("steady 80%", 0.8 * rate, args.duration))
        if mode in ("overload", "all"):
            runs.append(("overload 3x", 3 * rate, args.duration))
        if mode in ("soak", "all"):
            runs.append((f"soak 80% {args.soak_seconds:.0f} s", 0.8 * rate, args.soak_seconds))
        for name, run_rate, seconds in runs:
            if time.monotonic() - started > min(args.time_limit, HARD_CAP_SECONDS):
                print("time limit reached; skipping the remaining runs", flush=True)
                break
            report = await driver.run(
                name,
                rate=run_rate,
                duration_s=seconds,
                max_requests=args.max_requests,
                rss_pids=pids,
            )
            reports.append(report)
            print(report.text(), flush=True)
    finally:
        if server is not None:
            server.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        if baseline_before is not None:
            baseline_after = engine_baseline_ms(pairs)
            print(
                f"engine baseline: {baseline_before:.1f} ms per match before the load, "
                f"{baseline_after:.1f} ms after",
                flush=True,
            )
        if reports:
            print(markdown_table(reports), flush=True)
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "workers": args.workers,
                        "workload": args.workload,
                        "cpu_count": os.cpu_count(),
                        "load_average_at_start": args.load_at_start,
                        "engine_baseline_ms": [baseline_before, baseline_after],
                        "server_env": args.server_env,
                        "runs": [asdict(r) for r in reports],
                    },
                    indent=2,
                )
            )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="use a running server (loopback only) instead of starting one"
    )
    parser.add_argument("--pids", default="", help="with --url: worker pids to sample RSS of")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--database-url", help="FACEMATCH_DATABASE_URL for the started server")
    parser.add_argument(
        "--mode", choices=["fixed", "max", "steady", "overload", "soak", "all"], default="fixed"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s (max rate for modes)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    parser.add_argument("--start-rate", type=float, default=10.0)
    parser.add_argument("--step", type=float, default=2.0)
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--time-limit", type=float, default=1500.0, help="whole-session bound, s")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument(
        "--workload",
        choices=["lfw-640x480", "kyc"],
        default="lfw-640x480",
        help="640×480 re-encoded LFW pairs, or KYC-style selfie × ID-card pairs",
    )
    parser.add_argument(
        "--kyc-dir",
        default=str(Path(tempfile.gettempdir()) / "facematch-kyc"),
        help="where --workload kyc renders its images (reused between runs)",
    )
    parser.add_argument(
        "--lfw-root", default=os.environ.get("FACEMATCH_LFW_ROOT", str(DEFAULT_LFW))
    )
    parser.add_argument(
        "--server-log", default=str(Path(tempfile.gettempdir()) / "facematch-load.log")
    )
    parser.add_argument("--json", help="write every run's figures to this file")
    parser.add_argument(
        "--pairs-cache", help="JSON file keeping the chosen pairs between runs (made if missing)"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the started server (repeatable), e.g. FACEMATCH_MIN_FACE_PX=80",
    )
    args = parser.parse_args()
    args.load_at_start = os.getloadavg()
    print(f"load average at start: {args.load_at_start}", flush=True)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
