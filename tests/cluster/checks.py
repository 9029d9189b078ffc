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
import urllib.error
import urllib.request
import uuid

PRIMARY = os.environ["PRIMARY"]
REPLICA = os.environ["REPLICA"]
INSTANCES = os.environ["INSTANCES"].split()


def admin(instance):
    """The admin listener (metrics, detailed probes) of `instance`: deploy/local-cluster.sh puts
    it 1000 ports above the public one."""
    host, port = instance.rsplit(":", 1)
    return f"{host}:{int(port) + 1000}"
GRAPHQL = os.environ["GRAPHQL"]
REPLICA_DIR = os.environ["REPLICA_DIR"]
PG_CTL = os.environ["PG_CTL"]


def post(base, query, variables=None, token=None):
    """POSTs an operation to `base` (an instance's origin or the balancer's /graphql URL): the HTTP
    status, the Retry-After header and the JSON answer, whatever the status."""
    url = base if base.endswith("/graphql") else base + "/graphql"
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.headers.get("retry-after"), json.load(response)
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"raw": text[:200].decode(errors="replace")}
        return error.code, error.headers.get("retry-after"), answer


def gql(base, query, variables=None, token=None):
    """The JSON answer of an operation that must be answered 200."""
    status, _, answer = post(base, query, variables, token)
    assert status == 200, (status, answer)
    return answer


def data(answer):
    assert "errors" not in answer, answer
    return answer["data"]


def sql(url, statement):
    """One value from `statement` on the database at `url`."""
    out = subprocess.run(
        ["psql", "-qtA", url, "-c", statement], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


PRIMARY_DIR = os.path.join(os.path.dirname(REPLICA_DIR), "primary")
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
CREATE = "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }"


def pg_ctl(*args):
    # The server it starts keeps its output: nothing of it may stay tied to this process.
    subprocess.run(AS_POSTGRES + [PG_CTL, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def outage_under_load(loops, data_dir, mode, before, down, after):
    """Runs each of `loops` (given the event that tells it to stop) in a thread of its own, stops
    the PostgreSQL server in `data_dir` (`pg_ctl -m mode`) after `before` seconds, starts it again
    `down` seconds later, and stops the loops `after` seconds after that. When it started again."""
    done = threading.Event()
    workers = [threading.Thread(target=loop, args=(done,)) for loop in loops]
    for worker in workers:
        worker.start()
    try:
        time.sleep(before)
        pg_ctl("-D", data_dir, "-m", mode, "-w", "stop")
        time.sleep(down)
        pg_ctl("-D", data_dir, "-l", data_dir + "/../" + os.path.basename(data_dir) + ".log", "-w", "start")
        restarted = time.monotonic()
        time.sleep(after)
    finally:
        done.set()
        for worker in workers:
            worker.join()
    return restarted


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
    with urllib.request.urlopen(admin(INSTANCES[0]) + "/health/ready", timeout=5) as response:
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
    counts = [0]

    def load(done):
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

    outage_under_load([load] * 4, REPLICA_DIR, "immediate", before=1, down=2, after=1)
    assert not failures, f"{len(failures)} failed requests of {counts[0]}: {failures[:3]}"
    print(f"cluster: replica stopped and started again under load: {counts[0]} requests, 0 failed")


def code_of(answer):
    errors = answer.get("errors") or [{}]
    return (errors[0].get("extensions") or {}).get("code")


def instances_share_budget_and_cache():
    first, second = INSTANCES[0], INSTANCES[1]
    query = f'{{ articles(first: 1, tag: "shared-{uuid.uuid4().hex[:8]}") {{ totalCount }} }}'

    def cached(base):
        request = urllib.request.Request(
            base + "/graphql", data=json.dumps({"query": query}).encode(), method="POST"
        )
        request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers.get("x-cache")

    assert cached(first) == "MISS"
    assert cached(second) == "HIT", "instance B did not find what instance A stored"
    # A fresh user's budget: spent on A, seen spent on B.
    token = register(first)
    spent = gql(first, CREATE, {"input": {"title": "Budget", "description": "d", "body": "b"}}, token)
    after_a = spent["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    seen = gql(second, "{ viewer { username } }", None, token)
    after_b = seen["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    maximum = seen["extensions"]["cost"]["throttleStatus"]["maximumAvailable"]
    assert after_b < maximum - 5, f"instance B's budget ({after_b} of {maximum}) did not see A's charge"
    print(f"cluster: instances share the cache (MISS on A, HIT on B) and the budget ({after_a} left on A, then {after_b} on B of {maximum})")


def no_stale_answer_is_cached_from_a_lagging_replica():
    first, second = INSTANCES[0], INSTANCES[1]
    token = register(first)
    created = data(gql(first, CREATE, {"input": {"title": f"Cached {uuid.uuid4().hex[:6]}", "description": "d", "body": "before"}}, token))
    slug = created["createArticle"]["article"]["slug"]
    query = "query($slug: String!) { article(slug: $slug) { body } }"
    time.sleep(0.3)
    sql(REPLICA, "SELECT pg_wal_replay_pause()")
    try:
        data(gql(first, "mutation($slug: String!) { updateArticle(slug: $slug, input: { body: \"after\" }) { article { slug } } }", {"slug": slug}, token))
        # An anonymous reader may be answered from the paused replica (the old body)...
        gql(second, query, {"slug": slug})
    finally:
        sql(REPLICA, "SELECT pg_wal_replay_resume()")
    time.sleep(0.5)
    # ...but that answer was not stored: once the replica has caught up, everyone reads the new body.
    for base in (first, second):
        seen = data(gql(base, query, {"slug": slug}))
        assert seen["article"]["body"] == "after", f"a stale answer was cached: {seen}"
    print("cluster: an answer read on a replica behind the latest write is not cached")


def subscriptions_cross_instances():
    first, second = INSTANCES[0], INSTANCES[1]
    token = register(first)
    created = data(gql(first, CREATE, {"input": {"title": f"Followed {uuid.uuid4().hex[:6]}", "description": "d", "body": "b"}}, token))
    slug = created["createArticle"]["article"]["slug"]
    body = json.dumps({"query": "subscription($slug: String!) { commentAdded(slug: $slug) { body } }", "variables": {"slug": slug}}).encode()
    request = urllib.request.Request(second + "/graphql", data=body, method="POST")
    request.add_header("content-type", "application/json")
    request.add_header("accept", "text/event-stream")
    with urllib.request.urlopen(request, timeout=10) as stream:
        time.sleep(0.3)
        data(gql(first, "mutation($slug: String!) { addComment(slug: $slug, input: { body: \"across\" }) { comment { id } } }", {"slug": slug}, token))
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("data:") and "across" in line:
                break
        else:
            raise AssertionError("no event")
    print("cluster: a comment added through instance A reached an event stream on instance B (through Redis)")


def primary_restarted_under_load():
    token = register(INSTANCES[0])
    acknowledged, outcomes, lock = [], [], threading.Lock()

    def write(done):
        while not done.is_set():
            title = f"Under restart {uuid.uuid4().hex[:10]}"
            started = time.monotonic()
            try:
                status, retry_after, answer = post(
                    GRAPHQL, CREATE, {"input": {"title": title, "description": "d", "body": "b"}}, token
                )
            except Exception as error:  # noqa: BLE001 - a dropped connection is an outcome too
                status, retry_after, answer = None, None, {"exception": repr(error)}
            with lock:
                outcomes.append((started, status, retry_after, answer, time.monotonic() - started))
                if status == 200 and "errors" not in answer:
                    acknowledged.append(answer["data"]["createArticle"]["article"]["slug"])
            time.sleep(0.25)  # under the writer's cost budget (10 points a mutation)

    def read(done):
        while not done.is_set():
            started = time.monotonic()
            try:
                status, retry_after, answer = post(GRAPHQL, f'{{ articles(first: 2, tag: "r{uuid.uuid4().hex[:6]}") {{ totalCount }} }}')
            except Exception as error:  # noqa: BLE001
                status, retry_after, answer = None, None, {"exception": repr(error)}
            with lock:
                outcomes.append((started, status, retry_after, answer, time.monotonic() - started))
            time.sleep(0.05)

    # Down for longer than a statement waits for a connection (3 s): writes must fail, fast.
    restarted = outage_under_load([write, write, read, read], PRIMARY_DIR, "fast", before=1.5, down=4, after=5)

    wrong = [o for o in outcomes if o[1] not in (200, 503)]
    assert not wrong, f"answers other than 200 and 503 (never a 500): {wrong[:3]}"
    unavailable = [o for o in outcomes if o[1] == 503]
    assert unavailable, "no write was refused while the primary was down"
    for _, _, retry_after, answer, _ in unavailable:
        assert code_of(answer) == "SERVICE_UNAVAILABLE" and retry_after, answer
    slowest = max(o[4] for o in outcomes)
    assert slowest < 6, f"a request took {slowest:.1f} s: requests must fail fast, not time out"
    late = [o for o in outcomes if o[0] > restarted + 2 and (o[1] != 200 or "errors" in o[3])]
    assert not late, f"failures after the primary was back: {late[:3]}"
    found = int(sql(PRIMARY, "SELECT count(*) FROM articles WHERE slug IN (%s)" % ",".join(f"'{s}'" for s in acknowledged)))
    assert found == len(acknowledged), f"{len(acknowledged)} acknowledged articles, {found} in the database"
    print(
        f"cluster: primary down 4 s and back under load: {len(outcomes)} requests, {len(unavailable)} answered 503 "
        f"(SERVICE_UNAVAILABLE, Retry-After) during the outage, none after, no 500, slowest {slowest:.1f} s; "
        f"all {len(acknowledged)} acknowledged createArticle present"
    )


def primary_stopped_read_only():
    token = register(INSTANCES[0])
    # Instance B has never seen this token: it reads the token's version while the primary is down.
    reader = register(INSTANCES[0])
    pg_ctl("-D", PRIMARY_DIR, "-m", "fast", "-w", "stop")
    try:
        time.sleep(1)
        status, _, answer = post(GRAPHQL, '{ articles(first: 3) { totalCount } }')
        assert status == 200 and "errors" not in answer, (status, answer)
        started = time.monotonic()
        status, _, answer = post(INSTANCES[1], "{ viewer { username } }", token=reader)
        assert status == 200 and "errors" not in answer and answer["data"]["viewer"], (status, answer)
        assert time.monotonic() - started < 2, "the token's version is read on the replica at once"
        status, retry_after, answer = post(
            GRAPHQL, CREATE, {"input": {"title": "Refused", "description": "d", "body": "b"}}, token
        )
        assert status == 503 and code_of(answer) == "SERVICE_UNAVAILABLE" and retry_after, (status, answer)
        with urllib.request.urlopen(INSTANCES[1] + "/health/ready", timeout=5) as response:
            ready = json.load(response)
        assert response.status == 200 and ready["status"].startswith("degraded"), ready
    finally:
        pg_ctl("-D", PRIMARY_DIR, "-l", PRIMARY_DIR + "/../primary.log", "-w", "start")
    for _ in range(50):
        try:
            with urllib.request.urlopen(INSTANCES[0] + "/health/ready", timeout=5) as response:
                if json.load(response)["status"] == "ok":
                    break
        except urllib.error.URLError:
            pass
        time.sleep(0.2)
    print("cluster: primary stopped: queries answered from the replica (signed-in ones too), mutations 503 SERVICE_UNAVAILABLE, readiness degraded (read-only); back once it started")


if __name__ == "__main__":
    reads_reach_the_replica()
    read_your_writes_with_a_paused_replica()
    replica_stopped_under_load()
    instances_share_budget_and_cache()
    no_stale_answer_is_cached_from_a_lagging_replica()
    subscriptions_cross_instances()
    primary_restarted_under_load()
    primary_stopped_read_only()
    sys.exit(0)
