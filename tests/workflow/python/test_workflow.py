"""The Python workflow SDK (upstash-workflow 2.0.0) against the server: sequential steps with a
sleep, context.call, and a failing step ending in the failure function. Its protocol is the older
one (steps carry retries and headers themselves, no lazy fetch, no wait/notify/invoke)."""

import json
import threading
import time

from upstash_workflow import WorkflowContext


def test_sequential_steps_and_sleep_run_once_each(app):
    calls = {"a": 0, "b": 0}
    seen = []

    @app.route("/wf/seq")
    def seq(context: WorkflowContext) -> None:
        n = context.request_payload["n"]

        def a():
            calls["a"] += 1
            return n + 1

        x = context.run("a", a)
        context.sleep("nap", 1)

        def b():
            calls["b"] += 1
            return x * 10

        y = context.run("b", b)
        seen.append((x, y))

    started = time.time()
    run_id = app.start("/wf/seq", {"n": 4})
    run = app.run(run_id, "RUN_SUCCESS")
    assert time.time() - started >= 0.9
    assert calls == {"a": 1, "b": 1}
    assert seen[-1] == (5, 50)
    names = [s["stepName"] for g in run["steps"] for s in g["steps"]]
    assert names == ["init", "a", "nap", "b"]
    # The message that starts it, then one delivery per step: init, a, nap, b.
    assert app.hits["/wf/seq"] == 5


def test_context_call_gets_the_third_party_answer(app):
    got = {}
    hits = {"n": 0}

    def api(body):
        hits["n"] += 1
        return 200, json.dumps({"echo": json.loads(body)})

    app.plain["/api/echo"] = api

    @app.route("/wf/call")
    def call(context: WorkflowContext) -> None:
        res = context.call("echo", url=app.url("/api/echo"), method="POST", body={"q": 1})

        def record():
            got["status"] = res.status
            got["body"] = res.body

        context.run("record", record)

    run_id = app.start("/wf/call", {})
    app.run(run_id, "RUN_SUCCESS")
    assert hits["n"] == 1
    assert got["status"] == 200
    assert got["body"] == {"echo": {"q": 1}}


def test_a_failing_step_calls_the_failure_function(app):
    failures = []
    done = threading.Event()
    calls = {"boom": 0}

    def failure_function(context, fail_status, fail_response, fail_headers):
        failures.append((context.workflow_run_id, fail_status, fail_response))
        done.set()

    @app.route("/wf/fail", failure_function=failure_function, retries=0)
    def fail(context: WorkflowContext) -> None:
        def boom():
            calls["boom"] += 1
            raise ValueError("python boom")

        context.run("boom", boom)

    run_id = app.start("/wf/fail", {"x": 1})
    app.run(run_id, "RUN_FAILED")
    assert done.wait(20)
    assert calls["boom"] == 1
    assert failures[0][0] == run_id
    assert failures[0][1] == 500
    assert "python boom" in failures[0][2]
