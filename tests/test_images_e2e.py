"""Images as users meet them through RunTask: the image config applies, STOPSIGNAL is used,
imported archives and the embedded registry work, logs follow, stopped tasks age out."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from tests.conftest import ROOT, free_port, http_body, wait_status
from tests.imagebuild import build_busybox_oci, push_layout, save_archive
from tests.test_tasks import WEB, detail, logs, register, run

CONFIG = {
    "Entrypoint": ["sh", "-c"],
    "Cmd": ["echo cwd=$(pwd) user=$(id -u) flavour=$FLAVOUR args=$0; "
            "trap 'echo caught INT; exit 0' INT; trap 'echo ignored TERM' TERM; "
            "while true; do sleep 0.1; done"],
    "Env": ["PATH=/bin", "FLAVOUR=vanilla"],
    "WorkingDir": "/tmp",
    "User": "65534",
    "StopSignal": "SIGINT",
}


def test_image_config_and_stop_signal(ecs, fargo, registry, subnet_id, tmp_path):
    layout = build_busybox_oci(tmp_path / "cfg", config=CONFIG)
    push_layout(layout, registry.address, "configured:1")
    image = f"{registry.address}/configured:1"
    fam = register(ecs, image, stopTimeout=20)
    t = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "RUNNING")
    start = time.time()
    ecs.stop_task(task=t["taskArn"])
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    # The image's STOPSIGNAL (SIGINT) ended it at once, not SIGKILL after 20 s.
    assert time.time() - start < 10
    assert t["containers"][0]["exitCode"] == 0
    out = logs(fargo, t["taskArn"])
    assert "cwd=/tmp user=65534 flavour=vanilla" in out
    assert "caught INT" in out and "ignored TERM" not in out
    # The definition's own settings win over the image's.
    fam2 = register(ecs, image, command=["echo over=$FLAVOUR in $(pwd) as $(id -u)"],
                    workingDirectory="/", user="0",
                    environment=[{"name": "FLAVOUR", "value": "mint"}])
    t2 = wait_status(ecs, run(ecs, fam2, subnet_id)["taskArn"], "STOPPED")
    assert "over=mint in / as 0" in logs(fargo, t2["taskArn"])


def test_logs_follow_until_the_task_stops(ecs, fargo, busybox_image, subnet_id):
    fam = register(ecs, busybox_image,
                   command=["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done"])
    t = run(ecs, fam, subnet_id)
    wait_status(ecs, t["taskArn"], "RUNNING")
    start = time.time()
    out = subprocess.run([sys.executable, "-m", "fargo", "logs", t["taskArn"], "--follow"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env=fargo.env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"line {i}" for i in range(1, 6)]
    assert time.time() - start >= 0.9  # it really waited for the later lines
    bad = subprocess.run([sys.executable, "-m", "fargo", "logs", t["taskArn"], "--container",
                          "nope", "--endpoint", fargo.endpoint], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env=fargo.env())
    assert bad.returncode == 1 and "no container named" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "fargo", "logs", uuid.uuid4().hex,
                              "--endpoint", fargo.endpoint], capture_output=True, text=True,
                             timeout=60, cwd=ROOT, env=fargo.env())
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_embedded_registry_import_and_retention(tmp_path, fargo_servers):
    """A server with its own registry (the local ECR) and a short retention for stopped tasks."""
    rport = free_port()
    srv = fargo_servers("--stopped-retention", "2", "--registry", "--registry-port", str(rport),
                        name="ecr")
    assert f"local registry (ECR) at 127.0.0.1:{rport}" in srv.log.read_text()
    ecs = srv.client()
    subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    layout = build_busybox_oci(tmp_path / "layout")
    push_layout(layout, f"127.0.0.1:{rport}", "mine/web:v1")
    fam = register(ecs, f"127.0.0.1:{rport}/mine/web:v1", command=WEB)
    t = wait_status(ecs, run(ecs, fam, subnet)["taskArn"], "RUNNING")
    ip = detail(t, "privateIPv4Address")
    assert http_body(f"http://{ip}:8080/") == "hello from fargo\n"  # httpd may still be binding
    ecs.stop_task(task=t["taskArn"])
    wait_status(ecs, t["taskArn"], "STOPPED")

    # An archive imported with `fargo image import` runs with no registry involved.
    archive = save_archive(layout, tmp_path / "web.tar", "web:offline", docker=True)
    out = subprocess.run([sys.executable, "-m", "fargo", "image", "import", str(archive),
                          "offline/web:1", "--state-dir", str(srv.state_dir)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "sha256:" in out.stdout
    fam2 = register(ecs, "offline/web:1", command=["echo", "imported ok"])
    t2 = wait_status(ecs, run(ecs, fam2, subnet)["taskArn"], "STOPPED")
    assert t2["containers"][0]["exitCode"] == 0, t2
    bad = subprocess.run([sys.executable, "-m", "fargo", "image", "import", str(srv.log),
                          "x:1", "--state-dir", str(srv.state_dir)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr

    # Past the retention, stopped tasks are forgotten with their logs.
    deadline = time.time() + 15
    while time.time() < deadline:
        if not ecs.describe_tasks(tasks=[t2["taskArn"]])["tasks"]:
            break
        time.sleep(0.5)
    assert ecs.describe_tasks(tasks=[t2["taskArn"]])["failures"][0]["reason"] == "MISSING"
    gone = t2["taskArn"].rsplit("/", 1)[-1]
    assert not (srv.state_dir / "tasks" / gone).exists()  # its logs
    assert not (srv.run_dir / gone).exists()  # and its runtime files
