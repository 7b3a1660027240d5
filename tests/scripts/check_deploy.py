#!/usr/bin/env python3
"""CI check of the deployment files (no container engine or cluster runs here): parses
docker-compose.yml, deploy/k8s/*.yaml, deploy/docker/Dockerfile and deploy/topics.conf and
checks the keys issue 12 requires. With --cmake, also configures the project with
BUILD_TESTING=OFF and checks that no test target exists. Exit 0 when all hold, else 1 with
one line per problem."""
import glob
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FLUSH_TIMEOUT_S = 30          # the producer's flush timeout: grace periods must exceed it
WORKERS = {                   # deployment / compose service -> (binary, consumer group, topic)
    "usage-worker": ("bw-usage-worker", "usage-worker", "usage.events"),
    "stripe-worker": ("bw-stripe-worker", "stripe-worker", "stripe.events"),
    "sync-worker": ("bw-sync-worker", "sync-worker", "sync.ticks"),
}
INGRESS = "webhook-ingress"
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def seconds(v):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", str(v).strip())
    if not m:
        return None
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[m.group(2)]


def pinned(image):
    """A tag with a version number (not latest, not a bare major like mongo:7)."""
    if ":" not in image:
        return False
    tag = image.rsplit(":", 1)[1]
    return tag != "latest" and re.search(r"\d+\.\d+", tag) is not None


def topics():
    out = {}
    with open(os.path.join(ROOT, "deploy", "topics.conf")) as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            cols = line.split()
            if len(cols) != 3 or not cols[1].isdigit() or not cols[2].isdigit():
                problem(f"deploy/topics.conf:{n}", "expected '<name> <partitions> <retention.ms>'")
                continue
            out[cols[0]] = (int(cols[1]), int(cols[2]))
    return out


def no_kafka_passthrough(where, names):
    for k in names:
        if k.startswith("KAFKA_") and k != "KAFKA_BROKERS":
            problem(where, f"{k}: KAFKA_* other than KAFKA_BROKERS collides with service links")


def check_compose(tconf):
    path = os.path.join(ROOT, "docker-compose.yml")
    doc = yaml.safe_load(open(path))
    services = doc.get("services", {})
    for name, svc in services.items():
        where = f"docker-compose.yml services.{name}"
        if "image" not in svc:
            problem(where, "no image")
        elif not pinned(svc["image"]):
            problem(where, f"image {svc['image']} is not pinned to a version")
    for name in list(WORKERS) + [INGRESS, "scheduler"]:
        where = f"docker-compose.yml services.{name}"
        svc = services.get(name)
        if svc is None:
            problem(where, "missing")
            continue
        grace = seconds(svc.get("stop_grace_period", "10s"))
        if grace is None or grace <= FLUSH_TIMEOUT_S:
            problem(where, f"stop_grace_period must exceed the {FLUSH_TIMEOUT_S} s flush timeout")
        if not svc.get("command"):
            problem(where, "no command (the image runs one binary per service)")
        env = svc.get("environment") or {}
        no_kafka_passthrough(where, env.keys() if isinstance(env, dict) else
                             [e.split("=", 1)[0] for e in env])
        if name == "scheduler":
            if "bw-admin tick" not in " ".join(map(str, svc.get("command", []))):
                problem(where, "does not publish ticks with bw-admin tick")
            continue
        hc = svc.get("healthcheck") or {}
        if hc.get("disable") or "/healthz" not in " ".join(map(str, hc.get("test", []))):
            problem(where, "no healthcheck on /healthz")
        if name in WORKERS and str(env.get("METRICS_PORT", "")) != "9100":
            problem(where, "METRICS_PORT is not 9100")
    ing = services.get(INGRESS, {})
    if "STRIPE_WEBHOOK_SECRET" not in " ".join(map(str, ing.get("command", []))):
        problem(f"docker-compose.yml services.{INGRESS}", "no check of a missing STRIPE_WEBHOOK_SECRET")
    if ing.get("restart") in ("always", "unless-stopped"):
        problem(f"docker-compose.yml services.{INGRESS}", "restart policy crash-loops on a missing secret")
    cmd = " ".join(map(str, services.get("topics", {}).get("command", [])))
    if "retention.ms" not in cmd or "topics.conf" not in cmd:
        problem("docker-compose.yml services.topics", "does not set retention.ms from deploy/topics.conf")


def containers(spec):
    return spec.get("containers", [])


def check_pod(where, pod, probe_port):
    if pod.get("enableServiceLinks") is not False:
        problem(where, "enableServiceLinks must be false")
    tg = pod.get("terminationGracePeriodSeconds", 30)
    if not isinstance(tg, int) or tg <= FLUSH_TIMEOUT_S:
        problem(where, f"terminationGracePeriodSeconds must exceed {FLUSH_TIMEOUT_S}")
    if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
        problem(where, "runAsNonRoot is not set")
    for c in containers(pod):
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    problem(where, f"container {c.get('name')}: resources.{kind}.{r} missing")
        no_kafka_passthrough(where, [e.get("name", "") for e in c.get("env", [])])
        if probe_port is None:
            continue
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = ((c.get(probe) or {}).get("httpGet")) or {}
            if get.get("path") != path:
                problem(where, f"container {c.get('name')}: {probe} is not GET {path}")
            port = get.get("port")
            named = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
            if named.get(port, port) != probe_port:
                problem(where, f"container {c.get('name')}: {probe} port is not {probe_port}")


def check_k8s(tconf):
    kdir = os.path.join(ROOT, "deploy", "k8s")
    objs = []
    files = sorted(glob.glob(os.path.join(kdir, "*.yaml")))
    for f in files:
        for d in yaml.safe_load_all(open(f)):
            if d:
                objs.append((os.path.basename(f), d))
    by_kind = {}
    for f, d in objs:
        by_kind.setdefault(d.get("kind"), {})[d.get("metadata", {}).get("name")] = (f, d)
    kust = by_kind.get("Kustomization", {})
    listed = set()
    for _, (f, d) in kust.items():
        listed |= set(d.get("resources", []))
    for f in files:
        b = os.path.basename(f)
        if b != "kustomization.yaml" and b not in listed:
            problem(f"deploy/k8s/{b}", "not listed in kustomization.yaml")
    for _, (f, d) in by_kind.get("ConfigMap", {}).items():
        no_kafka_passthrough(f"deploy/k8s/{f}", (d.get("data") or {}).keys())
    deps = by_kind.get("Deployment", {})
    for name in list(WORKERS) + [INGRESS]:
        if name not in deps:
            problem("deploy/k8s", f"no Deployment {name}")
            continue
        f, d = deps[name]
        pod = d["spec"]["template"]["spec"]
        check_pod(f"deploy/k8s/{f} Deployment {name}", pod, 8080 if name == INGRESS else 9100)
        if name in WORKERS and containers(pod) and containers(pod)[0].get("command") != [WORKERS[name][0]]:
            problem(f"deploy/k8s/{f}", f"Deployment {name} does not run {WORKERS[name][0]}")
    scaled = by_kind.get("ScaledObject", {})
    for name, (_, group, topic) in WORKERS.items():
        so = [d for (f, d) in scaled.values() if d["spec"]["scaleTargetRef"]["name"] == name]
        if len(so) != 1:
            problem("deploy/k8s", f"want one ScaledObject for Deployment {name}, found {len(so)}")
            continue
        spec = so[0]["spec"]
        trig = [t for t in spec.get("triggers", []) if t.get("type") == "kafka"]
        if not trig:
            problem("deploy/k8s", f"ScaledObject of {name} has no kafka trigger")
            continue
        md = trig[0].get("metadata", {})
        if md.get("consumerGroup") != group or md.get("topic") != topic:
            problem("deploy/k8s", f"ScaledObject of {name}: want group {group} on {topic}")
        if "lagThreshold" not in md:
            problem("deploy/k8s", f"ScaledObject of {name}: no lagThreshold")
        parts = tconf.get(topic, (None,))[0]
        if spec.get("maxReplicaCount") != parts:
            problem("deploy/k8s", f"ScaledObject of {name}: maxReplicaCount "
                    f"{spec.get('maxReplicaCount')} != {parts} partitions of {topic}")
    crons = by_kind.get("CronJob", {})
    ticking = False
    for name, (f, d) in crons.items():
        pod = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        check_pod(f"deploy/k8s/{f} CronJob {name}", pod, None)
        for c in containers(pod):
            ticking |= c.get("command", [])[:2] == ["bw-admin", "tick"]
    if not ticking:
        problem("deploy/k8s", "no CronJob runs bw-admin tick")
    svc = by_kind.get("Service", {}).get(INGRESS)
    if not svc:
        problem("deploy/k8s", f"no Service {INGRESS}")
    else:
        sel = svc[1]["spec"].get("selector", {})
        labels = deps.get(INGRESS, (None, {}))[1].get("spec", {}).get("template", {}) \
            .get("metadata", {}).get("labels", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            problem("deploy/k8s", f"Service {INGRESS} selects no ingress pod")


def check_dockerfile():
    text = open(os.path.join(ROOT, "deploy", "docker", "Dockerfile")).read()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    if len(froms) < 2:
        problem("Dockerfile", "not multi-stage")
    for img in froms:
        img = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), img)
        if not pinned(img):
            problem("Dockerfile", f"base image {img} is not pinned to a version")
    user = re.findall(r"^USER (\S+)", text, re.M)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        problem("Dockerfile", "does not run as a non-root user")
    if not re.search(r"^HEALTHCHECK .*CMD .*\/healthz", text, re.M | re.S):
        problem("Dockerfile", "no HEALTHCHECK on /healthz")
    if "curl" not in re.findall(r"apt-get install[^&]*", text)[-1]:
        problem("Dockerfile", "the HEALTHCHECK's curl is not installed in the runtime image")
    if "-DBUILD_TESTING=OFF" not in text:
        problem("Dockerfile", "does not build with BUILD_TESTING=OFF")
    for b in ["bw-usage-worker", "bw-stripe-worker", "bw-sync-worker", "bw-webhook-ingress", "bw-admin"]:
        if b not in text:
            problem("Dockerfile", f"{b} is not checked into the image")


def check_no_tests_built():
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["cmake", "-S", ROOT, "-B", tmp, "-DBUILD_TESTING=OFF"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            problem("cmake -DBUILD_TESTING=OFF", r.stderr.strip()[-300:])
            return
        r = subprocess.run(["cmake", "--build", tmp, "--target", "help"], capture_output=True, text=True)
        tests = [l for l in r.stdout.splitlines()
                 if re.search(r"\b(unit|integration|fault)_test_|bw_testkit", l)]
        if tests:
            problem("cmake -DBUILD_TESTING=OFF", f"still builds tests: {tests[:3]}")
        ctest_file = os.path.join(tmp, "CTestTestfile.cmake")
        if os.path.exists(ctest_file):
            with open(ctest_file) as f:
                text = f.read()
            if "add_test" in text or 'subdirs("tests")' in text:
                problem("cmake -DBUILD_TESTING=OFF", "registers tests")


def main():
    tconf = topics()
    check_compose(tconf)
    check_k8s(tconf)
    check_dockerfile()
    if "--cmake" in sys.argv:
        check_no_tests_built()
    for p in problems:
        print(p)
    print(f"check_deploy: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
