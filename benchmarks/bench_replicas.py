"""Several replicas: aggregate throughput of 1, 2 and 3 ``taelio serve`` processes on one PostgreSQL and Redis.

The same cluster as the replica test (``tests/replicas/cluster.py``): throwaway PostgreSQL and Redis, three
``taelio serve --workers 1`` replicas on one ``DATABASE_URL`` and ``REDIS_URL``, the fake provider server in
its own process (zero added latency), and a round-robin ``httpx`` client. All three replicas run for the
whole part; a round sends its load to the first 1, 2 or 3 of them (the idle ones only poll Redis), and the
rounds are interleaved (1, 2, 3, 1, 2, 3, ...) so the machine's drift hits every size alike. Each size's
figure is its median round. In-flight requests grow with the replicas (``PER_REPLICA`` each), as a load
balancer in front of more replicas would see more clients.

Beside each figure: the CPU per request of the replicas, of PostgreSQL and Redis, of the fake provider and
of the client; how many cores this run kept busy, and how many the machine as a whole (other work included).
Their sum per request sets the ceiling: with C ms of CPU per request all told, 2 cores answer at most
2000 / C requests a second, however many replicas share them.

    PYTHONPATH=. python benchmarks/bench_replicas.py [--quick]
"""
from __future__ import annotations

import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Figure, PartContext, run_standalone  # noqa: E402

PER_REPLICA = 12              # requests in flight per replica used
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc/<pid>/stat``)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, of its children that ended (reaped) and of those alive: PostgreSQL's backends."""
    fields = _stat(pid)
    total = sum(int(x) for x in fields[11:15]) / TICKS
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except OSError:
                continue
            if int(child[1]) == pid:
                total += (int(child[11]) + int(child[12])) / TICKS
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def busy_cores() -> float:
    """Seconds of CPU the whole machine has spent so far (all cores, idle and iowait left out)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(parts) - parts[3] - parts[4]) / TICKS


def limit(machine_busy: float, ours: float) -> str:
    """Why a second replica does not double the throughput here, from what the run measured."""
    cores = os.cpu_count() or 1
    if machine_busy >= 0.9 * cores and ours < 0.8 * cores:
        return (f"the CPU: all {cores} cores were busy while this run got {ours:.2f} of them (the rest went to "
                "other work on the machine), and every request costs CPU in the replica, the client and the "
                "fake provider alike, so more replicas only split the same share")
    return (f"the CPU: a replica is one Python process (one core at most), and the client, the fake provider, "
            f"PostgreSQL and Redis share the same {cores} cores")


def run(ctx: PartContext) -> list[Figure]:
    from tests.replicas.cluster import Cluster
    from tests.replicas.load import run_load
    from tests.servers import postgres_server, redis_server

    per_round = 300 if ctx.quick else 900
    rounds = 2 if ctx.quick else 4
    rates: dict[int, list[float]] = {1: [], 2: [], 3: []}
    cpu_per_request: dict[int, list[float]] = {1: [], 2: [], 3: []}
    fake_cpu: dict[int, list[float]] = {1: [], 2: [], 3: []}
    client_cpu: dict[int, list[float]] = {1: [], 2: [], 3: []}
    servers_cpu: dict[int, list[float]] = {1: [], 2: [], 3: []}     # PostgreSQL and Redis
    ours: dict[int, list[float]] = {1: [], 2: [], 3: []}            # cores all of the above kept busy
    cores: dict[int, list[float]] = {1: [], 2: [], 3: []}
    with postgres_server() as pg, redis_server() as redis, tempfile.TemporaryDirectory() as tmp:
        database_url = pg.new_database(f"bench_{uuid.uuid4().hex[:8]}")
        with Cluster.start(Path(tmp), replicas=3, database_url=database_url, redis=redis) as cluster:
            pids = [r.proc.pid for r in cluster.replicas if r.proc is not None]
            postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
            assert redis.process is not None

            def servers() -> float:
                return tree_cpu_seconds(postmaster) + cpu_seconds(redis.process.pid)
            asyncio.run(run_load(cluster, 150, concurrency=3 * PER_REPLICA))      # warm every replica up
            for _ in range(rounds):
                for n in (1, 2, 3):
                    if ctx.left() < 60:
                        break
                    cpu0, busy0, t0 = sum(cpu_seconds(p) for p in pids), busy_cores(), time.monotonic()
                    fake0, own0, servers0 = cpu_seconds(cluster.fake.proc.pid), own_cpu_seconds(), servers()
                    result = asyncio.run(run_load(cluster, per_round, concurrency=n * PER_REPLICA,
                                                  only=list(range(n))))
                    wall = time.monotonic() - t0
                    assert not result.not_ok(), result.not_ok()[0].doc
                    rates[n].append(per_round / result.seconds)
                    used = {"replicas": sum(cpu_seconds(p) for p in pids) - cpu0,
                            "fake": cpu_seconds(cluster.fake.proc.pid) - fake0,
                            "client": own_cpu_seconds() - own0, "servers": servers() - servers0}
                    cores[n].append((busy_cores() - busy0) / wall)
                    ours[n].append(sum(used.values()) / wall)
                    for into, key in ((cpu_per_request, "replicas"), (fake_cpu, "fake"), (client_cpu, "client"),
                                      (servers_cpu, "servers")):
                        into[n].append(used[key] / per_round * 1000)
            [row] = cluster.sql("SELECT count(*) AS n FROM requests")
            ctx.raw["logged_requests"] = row["n"]
    ctx.raw["rates"] = rates
    ctx.raw["cpu_ms_per_request"] = cpu_per_request
    ctx.raw["busy_cores"] = cores
    ctx.raw["fake_cpu_ms_per_request"] = fake_cpu
    ctx.raw["client_cpu_ms_per_request"] = client_cpu
    ctx.raw["postgres_redis_cpu_ms_per_request"] = servers_cpu
    ctx.raw["cores_busy_with_this_run"] = ours
    if not rates[1]:
        return [Figure(part="replicas", name="aggregate throughput", value=None, unit="req/s",
                       note="no round finished within the time budget")]
    median = {n: statistics.median(v) for n, v in rates.items() if v}
    figures = []
    for n, rate in median.items():
        ratio = rate / median[1]
        server, fake, client, dbs = (statistics.median(v[n]) for v in (cpu_per_request, fake_cpu, client_cpu,
                                                                        servers_cpu))
        ceiling = 1000 * (os.cpu_count() or 1) / (server + fake + client + dbs)
        figures.append(Figure(
            part="replicas", name=f"aggregate throughput, {n} replica{'s' if n > 1 else ''}", value=rate,
            unit="req/s",
            baseline=(f"{ratio:.2f}x 1 replica; " if n > 1 else "")
                     + f"CPU/request: replicas {server:.1f} ms, PostgreSQL+Redis {dbs:.1f} ms, fake {fake:.1f} ms, "
                       f"client {client:.1f} ms (ceiling {ceiling:.0f} req/s on {os.cpu_count()} cores); "
                       f"this run kept {statistics.median(ours[n]):.2f} cores busy, the machine "
                       f"{statistics.median(cores[n]):.2f}",
            target=">= 1.7x at 2 replicas" if n == 2 else "",
            met=ratio >= 1.7 if n == 2 else None,
            note=f"median of {len(rates[n])} rounds of {per_round} requests, {n * PER_REPLICA} in flight"
                 + (f"; what limits it: {limit(statistics.median(cores[n]), statistics.median(ours[n]))}"
                    if n == 2 else "")))
    return figures


def main() -> None:
    run_standalone(run, __doc__.splitlines()[0], seconds=900.0)


if __name__ == "__main__":
    main()
