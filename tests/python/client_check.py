#!/usr/bin/env python3
"""Drive one flotilla API server with the official Python `kubernetes` client (37.0.2).

Usage: client_check.py API_URL [NAMESPACE [OTHER_URL]]

The client is configured with nothing but `Configuration().host`, as a program without a
kubeconfig would be. Every step asserts what the client got back and prints one line
`ok: <step>` when it passed; the first failure raises, prints a traceback and exits
non-zero. tests/tests/python_client.rs runs this against several replicas of one cluster,
so every name lives in NAMESPACE, which must not exist yet. With OTHER_URL (another replica of
the same cluster) the watch checks make their changes through that replica, so the watches
on API_URL must see writes that entered the cluster elsewhere.

The client has its own habits that a server must accept: it calls `/version/` with a
trailing slash, sends create bodies without a Content-Type header, patches with
`application/strategic-merge-patch+json` by default, and its watch deserialises every
event into the typed model of the listed kind.
"""

import json
import sys
import threading

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

# Bound on each watch stream: the server must close it by then. Events arrive long before;
# the checks stop the stream as soon as they have seen what they wait for.
WATCH_TIMEOUT_SECONDS = 10
# Bound on each HTTP call (connect, read), so a server that hangs fails the step.
REQUEST_TIMEOUT = (5, 30)


def ok(step):
    print(f"ok: {step}", flush=True)


def expect_error(status, reason, call, *args, **kwargs):
    """Run `call`, which must fail with HTTP `status` and a Status body of `reason`."""
    try:
        call(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except ApiException as e:
        assert e.status == status, f"want HTTP {status}, got {e.status}: {e.body}"
        body = json.loads(e.body)
        assert body.get("kind") == "Status", body
        assert body.get("reason") == reason, f"want reason {reason}: {body}"
        assert body.get("code") == status, body
        return body
    raise AssertionError(f"{call.__name__} succeeded, want HTTP {status} {reason}")


def names(items):
    return sorted(i.metadata.name for i in items)


def deployment_body(name):
    """A Deployment as a plain dict without apiVersion/kind: the server takes them from the URL."""
    labels = {"app": name}
    containers = [{"name": "web", "image": "nginx:1.25"}, {"name": "sidecar", "image": "busybox:1.36"}]
    return {
        "metadata": {"name": name, "labels": {"app": name, "tier": "front"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
    }


def pod_body(name, app):
    return {
        "metadata": {"name": name, "labels": {"role": app}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }


def check_version(api):
    info = client.VersionApi(api).get_code(_request_timeout=REQUEST_TIMEOUT)
    assert (info.major, info.minor) == ("1", "32"), info
    assert info.git_version.startswith("v1.32."), info
    ok("version minor 32")


def check_create(core, apps, ns):
    created = core.create_namespace({"metadata": {"name": ns}}, _request_timeout=REQUEST_TIMEOUT)
    assert created.metadata.name == ns and created.metadata.uid, created.metadata
    listed = names(core.list_namespace(_request_timeout=REQUEST_TIMEOUT).items)
    for want in ("default", "kube-system", ns):
        assert want in listed, listed
    ok("create namespace")

    cm = core.create_namespaced_config_map(
        ns, {"metadata": {"name": "settings", "labels": {"app": "web"}}, "data": {"mode": "fast"}},
        _request_timeout=REQUEST_TIMEOUT)
    assert cm.data == {"mode": "fast"} and cm.metadata.namespace == ns, cm
    assert int(cm.metadata.resource_version) > 0, cm.metadata
    got = core.read_namespaced_config_map("settings", ns, _request_timeout=REQUEST_TIMEOUT)
    assert got.data == {"mode": "fast"} and got.metadata.uid == cm.metadata.uid, got
    ok("create configmap")

    dep = apps.create_namespaced_deployment(ns, deployment_body("web"), _request_timeout=REQUEST_TIMEOUT)
    assert dep.kind == "Deployment" and dep.api_version == "apps/v1", (dep.kind, dep.api_version)
    assert dep.spec.replicas == 2 and dep.metadata.generation == 1, dep
    assert [c.name for c in dep.spec.template.spec.containers] == ["web", "sidecar"], dep.spec
    ok("create deployment")


def check_selectors(core, apps, ns):
    for name, app in (("web-1", "web"), ("web-2", "web"), ("db-1", "db")):
        core.create_namespaced_pod(ns, pod_body(name, app), _request_timeout=REQUEST_TIMEOUT)

    def pods(**selectors):
        return names(core.list_namespaced_pod(ns, _request_timeout=REQUEST_TIMEOUT, **selectors).items)

    # The deployment created above has pods of its own (its ReplicaSet's); these hand-made
    # pods carry a `role` label instead of `app`, so the selectors tell them apart.
    assert pods(label_selector="role") == ["db-1", "web-1", "web-2"], pods(label_selector="role")
    assert pods(label_selector="role=web") == ["web-1", "web-2"], pods(label_selector="role=web")
    assert pods(label_selector="role=nothing") == [], pods(label_selector="role=nothing")
    assert pods(label_selector="role,role!=web") == ["db-1"], pods(label_selector="role,role!=web")
    assert pods(label_selector="role in (db,cache)") == ["db-1"], pods(label_selector="role in (db,cache)")
    assert pods(field_selector="metadata.name=web-2") == ["web-2"], pods(field_selector="metadata.name=web-2")
    assert pods(label_selector="role=web", field_selector="metadata.name=db-1") == []
    ok("list pods with label and field selectors")

    def deployments(**selectors):
        return names(apps.list_namespaced_deployment(ns, _request_timeout=REQUEST_TIMEOUT, **selectors).items)

    assert deployments(label_selector="app=web,tier=front") == ["web"]
    assert deployments(label_selector="app=other") == []
    assert deployments(field_selector="metadata.name=web") == ["web"]
    assert deployments(field_selector="metadata.name=nope") == []
    cms = core.list_namespaced_config_map(ns, field_selector="metadata.name=settings", _request_timeout=REQUEST_TIMEOUT)
    assert names(cms.items) == ["settings"], names(cms.items)
    ok("list deployments and configmaps with selectors")


def check_patches(apps, ns):
    before = apps.read_namespaced_deployment("web", ns, _request_timeout=REQUEST_TIMEOUT)
    patch = {
        "metadata": {"labels": {"tier": "back"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}},
    }
    dep = apps.patch_namespaced_deployment("web", ns, patch, _request_timeout=REQUEST_TIMEOUT)
    assert dep.spec.replicas == 3, dep.spec
    assert dep.metadata.labels == {"app": "web", "tier": "back"}, dep.metadata.labels
    # Strategic merge: containers merge by name, so the sidecar stays and keeps its image.
    images = {c.name: c.image for c in dep.spec.template.spec.containers}
    assert images == {"web": "nginx:1.26", "sidecar": "busybox:1.36"}, images
    assert dep.metadata.generation == before.metadata.generation + 1, dep.metadata
    assert int(dep.metadata.resource_version) > int(before.metadata.resource_version), dep.metadata
    ok("strategic merge patch deployment")

    scale = apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}},
                                                   _request_timeout=REQUEST_TIMEOUT)
    assert scale.kind == "Scale" and scale.spec.replicas == 5, scale
    assert apps.read_namespaced_deployment("web", ns, _request_timeout=REQUEST_TIMEOUT).spec.replicas == 5
    assert apps.read_namespaced_deployment_scale("web", ns, _request_timeout=REQUEST_TIMEOUT).spec.replicas == 5
    ok("patch deployment scale")


def check_conflicts(core, apps, ns):
    stale = apps.read_namespaced_deployment("web", ns, _request_timeout=REQUEST_TIMEOUT)
    # The deployment controller writes the object too (status, revision annotation), so a
    # read-modify-write retries on Conflict, as every Kubernetes client must.
    for _ in range(20):
        fresh = apps.read_namespaced_deployment("web", ns, _request_timeout=REQUEST_TIMEOUT)
        fresh.spec.replicas = 1
        try:
            replaced = apps.replace_namespaced_deployment("web", ns, fresh, _request_timeout=REQUEST_TIMEOUT)
            break
        except ApiException as e:
            if e.status != 409:
                raise
    else:
        raise AssertionError("replace kept conflicting")
    assert replaced.spec.replicas == 1, replaced.spec
    stale.metadata.labels["stale"] = "yes"
    expect_error(409, "Conflict", apps.replace_namespaced_deployment, "web", ns, stale)
    current = apps.read_namespaced_deployment("web", ns, _request_timeout=REQUEST_TIMEOUT)
    assert "stale" not in current.metadata.labels and current.spec.replicas == 1, current.metadata
    ok("replace with stale resourceVersion is 409 Conflict")

    body = expect_error(409, "AlreadyExists", core.create_namespaced_config_map, ns,
                        {"metadata": {"name": "settings"}, "data": {"mode": "slow"}})
    assert body["details"]["name"] == "settings", body
    expect_error(409, "AlreadyExists", apps.create_namespaced_deployment, ns, deployment_body("web"))
    ok("duplicate create is 409 AlreadyExists")


def check_watch_live(core, writer, ns):
    """A watch without resourceVersion: ADDED for what exists, then live MODIFIED and DELETED."""
    writer.create_namespaced_config_map(ns, {"metadata": {"name": "watched"}, "data": {"v": "1"}},
                                        _request_timeout=REQUEST_TIMEOUT)
    seen_added = threading.Event()
    failures = []

    def mutate():
        if not seen_added.wait(WATCH_TIMEOUT_SECONDS):
            return
        try:
            writer.patch_namespaced_config_map("watched", ns, {"data": {"v": "2"}}, _request_timeout=REQUEST_TIMEOUT)
            writer.delete_namespaced_config_map("watched", ns, _request_timeout=REQUEST_TIMEOUT)
        except Exception as e:  # reported by the main thread
            failures.append(e)

    mutator = threading.Thread(target=mutate)
    mutator.start()
    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=WATCH_TIMEOUT_SECONDS,
                       _request_timeout=REQUEST_TIMEOUT):
        obj = ev["object"]
        assert isinstance(obj, client.V1ConfigMap), type(obj)
        if obj.metadata.name != "watched":
            assert ev["type"] == "ADDED" and obj.metadata.name == "settings", (ev["type"], obj.metadata.name)
            continue
        events.append((ev["type"], obj.data))
        if ev["type"] == "ADDED":
            seen_added.set()
        if ev["type"] == "DELETED":
            w.stop()
    seen_added.set()
    mutator.join()
    assert not failures, failures
    assert events == [("ADDED", {"v": "1"}), ("MODIFIED", {"v": "2"}), ("DELETED", {"v": "2"})], events
    ok("watch sees ADDED then live MODIFIED and DELETED")


def check_watch_from_version(core, writer, ns):
    """A watch from a list's resourceVersion replays only what changed after the list."""
    listed = core.list_namespaced_config_map(ns, _request_timeout=REQUEST_TIMEOUT)
    assert names(listed.items) == ["settings"], names(listed.items)
    rv = listed.metadata.resource_version
    assert rv and int(rv) > 0, listed.metadata
    writer.create_namespaced_config_map(ns, {"metadata": {"name": "later"}, "data": {"v": "1"}},
                                        _request_timeout=REQUEST_TIMEOUT)
    writer.patch_namespaced_config_map("settings", ns, {"data": {"mode": "slow"}}, _request_timeout=REQUEST_TIMEOUT)
    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv,
                       timeout_seconds=WATCH_TIMEOUT_SECONDS, _request_timeout=REQUEST_TIMEOUT):
        events.append((ev["type"], ev["object"].metadata.name, ev["object"].data))
        if len(events) == 2:
            w.stop()
    # Events come in revision order, so anything from before the list would come first.
    assert events == [("ADDED", "later", {"v": "1"}), ("MODIFIED", "settings", {"mode": "slow"})], events
    ok("watch from a list resourceVersion sees only later changes")

    # Nothing changes after this list: the stream must end by itself at timeoutSeconds.
    rv = core.list_namespaced_config_map(ns, _request_timeout=REQUEST_TIMEOUT).metadata.resource_version
    quiet = list(watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=2,
                                      _request_timeout=REQUEST_TIMEOUT))
    assert quiet == [], [(e["type"], e["object"].metadata.name) for e in quiet]
    ok("idle watch ends at timeoutSeconds")


def check_delete(core, apps, ns):
    core.delete_namespaced_config_map("settings", ns, _request_timeout=REQUEST_TIMEOUT)
    expect_error(404, "NotFound", core.read_namespaced_config_map, "settings", ns)
    apps.delete_namespaced_deployment("web", ns, _request_timeout=REQUEST_TIMEOUT)
    body = expect_error(404, "NotFound", apps.read_namespaced_deployment, "web", ns)
    assert body["details"]["name"] == "web" and body["details"]["kind"] == "deployments", body
    assert apps.list_namespaced_deployment(ns, _request_timeout=REQUEST_TIMEOUT).items == []
    expect_error(404, "NotFound", core.delete_namespaced_config_map, "settings", ns)
    ok("delete configmap and deployment, then get is 404")


def api_client(url):
    """A client configured by URL alone: no kubeconfig, no credentials."""
    cfg = client.Configuration()
    cfg.host = url.rstrip("/")
    return client.ApiClient(cfg)


def main():
    if not 2 <= len(sys.argv) <= 4:
        sys.exit(f"usage: {sys.argv[0]} API_URL [NAMESPACE [OTHER_URL]]")
    api = api_client(sys.argv[1])
    ns = sys.argv[2] if len(sys.argv) >= 3 else "python-client"
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    writer = client.CoreV1Api(api_client(sys.argv[3])) if len(sys.argv) == 4 else core
    check_version(api)
    check_create(core, apps, ns)
    check_selectors(core, apps, ns)
    check_patches(apps, ns)
    check_conflicts(core, apps, ns)
    check_watch_live(core, writer, ns)
    check_watch_from_version(core, writer, ns)
    check_delete(core, apps, ns)
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
