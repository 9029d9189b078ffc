"""Checks of a running local cluster (deploy/local-cluster.sh): reads reach the replica,
read-your-writes across instances while the replica is paused, and a replica stopped under load
costs no request.

Usage: python3 tests/cluster/checks.py   (with the `name=value` lines of `local-cluster.sh status`
in the environment as PRIMARY, REPLICA, INSTANCES (space-separated) and GRAPHQL; run.sh sets them)
"""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

PRIMARY = os.environ["PRIMARY"]
REPLICA = os.environ["REPLICA"]
INSTANCES = os.environ["INSTANCES"].split()
GRAPHQL = os.environ["GRAPHQL"]
REPLICA_DIR = os.environ["REPLICA_DIR"]
PG_CTL = os.environ["PG_CTL"]


def gql(base, query, variables=None, token=None):
    """POSTs an operation to `base` (an instance's origin or the balancer's /graphql URL)."""
    url = base if base.endswith("/graphql") else base + "/graphql"
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def data(answer):
    assert "errors" not in answer, answer
    return answer["data"]


def sql(url, statement):
    """One value from `statement` on the database at `url`."""
    out = subprocess.run(
        ["psql", "-qtA", url, "-c", statement], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def register(base):
    name = f"u{uuid.uuid4().hex[:10]}"
    answer = gql(
        base,
        "mutation($input: RegisterInput!) { register(input: $input) { token } }",
        {"input": {"username": name, "email": f"{name}@example.com", "password": "password123"}},
    )
    return data(answer)["register"]["token"]


def reads_reach_the_replica():
    for url in (PRIMARY, REPLICA):
        sql(url, "SELECT pg_stat_statements_reset()")
    time.sleep(0.5)  # a poll or two: the replica is known to answer
    for n in range(40):
        data(gql(GRAPHQL, f'{{ articles(first: 5, tag: "tag-{uuid.uuid4().hex[:8]}-{n}") {{ totalCount }} }}'))
    counted = "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE '%\"articles\".\"slug\"%'"
    on_replica = int(sql(REPLICA, counted))
    on_primary = int(sql(PRIMARY, counted))
    assert on_replica >= 40, f"article reads on the replica: {on_replica} (primary: {on_primary})"
    assert on_primary < on_replica, f"primary {on_primary}, replica {on_replica}"
    with urllib.request.urlopen(INSTANCES[0] + "/health/ready", timeout=5) as response:
        replicas = json.load(response)["checks"]["replicas"]
    assert len(replicas) == 1 and replicas[0]["up"], replicas
    print(f"cluster: 40 queries through nginx: {on_replica} article statements on the replica, {on_primary} on the primary")


def read_your_writes_with_a_paused_replica():
    first, second = INSTANCES[0], INSTANCES[1]
    token = register(first)
    created = gql(
        first,
        "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
        {"input": {"title": f"Draft {uuid.uuid4().hex[:6]}", "description": "d", "body": "b"}},
        token,
    )
    slug = data(created)["createArticle"]["article"]["slug"]
    time.sleep(0.3)
    sql(REPLICA, "SELECT pg_wal_replay_pause()")
    try:
        for round_ in range(5):
            body = f"version {round_}"
            data(gql(
                first,
                "mutation($slug: String!, $body: String!) { updateArticle(slug: $slug, input: { body: $body }) { article { slug } } }",
                {"slug": slug, "body": body},
                token,
            ))
            seen = data(gql(second, "query($slug: String!) { article(slug: $slug) { body } }", {"slug": slug}, token))
            assert seen["article"]["body"] == body, f"instance B served {seen} after the write of {body!r}"
        replayed = sql(REPLICA, "SELECT pg_last_wal_replay_lsn()")
        current = sql(PRIMARY, "SELECT pg_current_wal_lsn()")
        assert replayed != current, "the replica was supposed to be behind"
    finally:
        sql(REPLICA, "SELECT pg_wal_replay_resume()")
    print("cluster: written through instance A, read through instance B with the replica paused: never the old state (5 rounds)")


def replica_stopped_under_load():
    failures = []
    done = threading.Event()
    counts = [0]

    def load():
        while not done.is_set():
            try:
                answer = gql(GRAPHQL, f'{{ articles(first: 3, tag: "t{uuid.uuid4().hex[:8]}") {{ totalCount }} }}')
                if "errors" in answer:
                    failures.append(answer)
            except Exception as error:  # noqa: BLE001 - every failure counts
                failures.append(repr(error))
            counts[0] += 1
            # About 80 requests a second in all: under the address's cost budget (100 a second).
            time.sleep(0.05)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(1)
    stop = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(stop + [PG_CTL, "-D", REPLICA_DIR, "-m", "immediate", "-w", "stop"], check=True, capture_output=True)
    time.sleep(2)
    subprocess.run(
        stop + [PG_CTL, "-D", REPLICA_DIR, "-l", REPLICA_DIR + "/../replica.log", "-w", "start"],
        check=True,
        capture_output=True,
    )
    time.sleep(1)
    done.set()
    for worker in workers:
        worker.join()
    assert not failures, f"{len(failures)} failed requests of {counts[0]}: {failures[:3]}"
    print(f"cluster: replica stopped and started again under load: {counts[0]} requests, 0 failed")


if __name__ == "__main__":
    reads_reach_the_replica()
    read_your_writes_with_a_paused_replica()
    replica_stopped_under_load()
    sys.exit(0)
