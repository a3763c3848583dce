"""The `fargo` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

import click
import requests

from .config import DEFAULT_PORT, Settings, default_endpoint
from .model.isolation import RUNC, TIERS
from .port.errors import AgentError

F = TypeVar("F", bound=Callable[..., None])


@click.group()
def main() -> None:
    """fargo: serverless containers on your own machines, the way AWS Fargate runs them."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int,
              help="HTTP port for every API (ECS, EC2, fargo's own).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path.home() / ".fargo",
              show_default=True, help="Where the SQLite state, images, logs and task files live.")
@click.option("--kube-port", type=int, default=None,
              help="HTTPS port of the EKS clusters' Kubernetes APIs (default: --port + 1).")
@click.option("--dns-port", type=int, default=None,
              help="Port on 127.0.0.1 (UDP and TCP) where the host asks the VPC resolver, "
                   "e.g. dig @127.0.0.1 -p PORT NAME (default: --port + 2, or a free port "
                   "when that is taken; 0: none).")
@click.option("--region", default="us-east-1", show_default=True,
              help="Region used when a request does not name one.")
@click.option("--vpc-cidr", default="10.89.0.0/16", show_default=True,
              help="CIDR of the default VPC; its first three quarters become subnets.")
@click.option("--cpu", "cpu_units", type=int, default=None,
              help="CPU units the host offers to tasks (default: 1024 per core).")
@click.option("--memory", "memory_mib", type=int, default=None,
              help="MiB the host offers to tasks (default: total memory less 256 MiB).")
@click.option("--overcommit", type=float, default=1.0, show_default=True,
              help="Let tasks be promised this many times the host's CPU and memory.")
@click.option("--registry/--no-registry", "embedded_registry", default=True, show_default=True,
              help="Start the embedded image registry (the local ECR) on loopback.")
@click.option("--registry-port", type=int, default=5000, show_default=True,
              help="Port of the embedded registry.")
@click.option("--prefix", default="fg", show_default=True,
              help="Prefix of host objects (bridges, veths, netns, cgroups) fargo owns.")
@click.option("--no-auth", "no_auth", is_flag=True,
              help="Accept unsigned requests from anyone who can reach the port (throwaway "
              "local use only).")
@click.option("--stopped-retention", type=float, default=3600.0, show_default=True,
              help="Seconds a STOPPED task stays describable (with its logs) before it is "
              "forgotten.")
@click.option("--warm-filesystems", "warm_filesystems", type=click.IntRange(0, 64), default=2,
              show_default=True,
              help="Fresh 20 GiB task filesystems kept attached and ready, so that a start "
              "only mounts one (sparse: they take no space until written).")
@click.option("--start-concurrency", "start_concurrency", type=click.IntRange(1, 1024),
              default=6, show_default=True,
              help="Tasks being started at once; more wait in PROVISIONING for a turn, so a "
              "burst starts its first tasks early instead of all of them late. A start waiting "
              "over 2 s on a pull, or on a container dependency, lets another one go.")
@click.option("--prices", "prices_file", type=click.Path(exists=True, dir_okay=False,
                                                       path_type=Path), default=None,
              help="JSON object overriding Fargate's us-east-1 prices for the bill, e.g. "
              '{"vcpuHour": 0.04048, "gbHour": 0.004445, "armVcpuHour": 0.03238, '
              '"armGbHour": 0.00356, "storageGbHour": 0.000111, "spotDiscount": 0.7}.')
@click.option("--metrics-interval", "metrics_interval", type=click.FloatRange(0.5, 60),
              default=60.0, show_default=True,
              help="Seconds between the metric sampler's passes over the running tasks "
              "(CloudWatch metrics, /metrics); below 60, a minute's point holds several.")
@click.option("--isolation", type=click.Choice(TIERS), default=RUNC,
              show_default=True,
              help="Sandbox tier of tasks that choose none: runc (the host kernel behind a user "
              "namespace, seccomp and cgroups) or gvisor (a gVisor kernel of the task's own). "
              "ECS platform version 1.4.0 picks runc, 1.4.0-gvisor gvisor, LATEST this; "
              "a pod picks one by runtimeClassName.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def server(verbose: bool, host: str, port: int, state_dir: Path, kube_port: int | None,
           dns_port: int | None, region: str, vpc_cidr: str, cpu_units: int | None,
           memory_mib: int | None,
           overcommit: float, embedded_registry: bool, registry_port: int, prefix: str,
           no_auth: bool, stopped_retention: float, warm_filesystems: int,
           start_concurrency: int, prices_file: Path | None,
           metrics_interval: float = 60.0, isolation: str = "runc") -> None:
    """Run the whole single-host fargo in the foreground; Ctrl-C stops it (tasks keep running)."""
    from .model.billing import Prices
    from .server import serve

    try:
        prices = Prices.from_json(json.loads(prices_file.read_text())) if prices_file \
            else Prices()
    except (OSError, ValueError) as err:  # bad JSON, or model.billing's PriceError
        click.echo(f"fargo server: --prices {prices_file}: {err}", err=True)
        sys.exit(1)

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings(
        state_dir=state_dir, host=host, port=port, kube_port=kube_port, dns_port=dns_port,
        region=region,
        vpc_cidr=vpc_cidr, cpu_units=cpu_units, memory_mib=memory_mib, overcommit=overcommit,
        embedded_registry=embedded_registry, registry_port=registry_port, prefix=prefix,
        auth=not no_auth, stopped_retention=stopped_retention,
        warm_filesystems=warm_filesystems, start_concurrency=start_concurrency, prices=prices,
        metrics_interval=metrics_interval, isolation=isolation)
    try:
        asyncio.run(serve(settings))
    except (OSError, RuntimeError, AgentError) as err:  # port taken, registry did not start
        click.echo(f"fargo server: {err}", err=True)
        sys.exit(1)


def _signed_headers(url: str, method: str = "GET", body: bytes = b"") -> dict[str, str]:
    """SigV4 headers for a request to fargo's own API, from the usual AWS credential chain."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.session.Session()
    creds = session.get_credentials()
    if creds is None:
        return {}  # fine against a --no-auth server; a signed one says what is missing
    req = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(creds.get_frozen_credentials(), "fargo", session.region_name or "us-east-1"
              ).add_auth(req)
    return dict(req.headers.items())


def _endpoint_option(f: F) -> F:
    return click.option("--endpoint", default=default_endpoint, show_default="$FARGO_ENDPOINT or "
                        f"http://127.0.0.1:{DEFAULT_PORT}", help="fargo server URL.")(f)


@main.command()
@click.argument("task")
@click.option("--container", default=None, help="Only this container's output.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the task stops.")
@click.option("--timestamps", "-t", is_flag=True, help="Prefix each line with its time.")
@_endpoint_option
def logs(task: str, container: str | None, follow: bool, timestamps: bool, endpoint: str) -> None:
    """Print a task's container output (TASK is its id or ARN)."""
    params = {"follow": "1" if follow else "0", "timestamps": "1" if timestamps else "0"}
    if container:
        params["container"] = container
    tid = task.rsplit("/", 1)[-1]
    url = f"{endpoint.rstrip('/')}/fargo/v1/tasks/{tid}/logs?{urlencode(sorted(params.items()))}"
    try:
        with requests.get(url, headers=_signed_headers(url),
                          stream=True, timeout=(5, None)) as resp:
            if resp.status_code != 200:
                try:
                    msg = resp.json().get("message", resp.text)
                except ValueError:
                    msg = resp.text
                click.echo(f"fargo logs: {msg}", err=True)
                sys.exit(1)
            for chunk in resp.iter_content(chunk_size=None):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
    except requests.ConnectionError:
        click.echo(f"fargo logs: no fargo server answers at {endpoint}", err=True)
        sys.exit(1)


@main.command()
@click.option("--since", default="24h", show_default=True,
              help="Window start: a duration back from now (90m, 24h, 7d) or a date.")
@_endpoint_option
def cost(since: str, endpoint: str) -> None:
    """What the server's tasks and pods cost per cluster, service and task, and by usage type
    (from Cost Explorer), since SINCE."""
    from .costcli import CostError, run

    try:
        run(endpoint, since)
    except CostError as err:
        click.echo(f"fargo cost: {err}", err=True)
        sys.exit(1)


@main.group()
def spot() -> None:
    """Fargate Spot: interrupt FARGATE_SPOT tasks on purpose, as Fargate does when it takes
    its capacity back."""


@spot.command("interrupt")
@click.argument("tasks", nargs=-1, required=True)
@_endpoint_option
def spot_interrupt(tasks: tuple[str, ...], endpoint: str) -> None:
    """Interrupt FARGATE_SPOT tasks (TASKS: ids or ARNs): each gets its containers' stop
    signal now and SIGKILL after their stopTimeout (at most two minutes), then stops with
    stopCode SpotInterruption. Other tasks are refused."""
    import json

    url = f"{endpoint.rstrip('/')}/fargo/v1/spot/interruptions"
    data = json.dumps({"tasks": list(tasks)}).encode()
    headers = {"Content-Type": "application/json", **_signed_headers(url, "POST", data)}
    try:
        resp = requests.post(url, data=data, headers=headers, timeout=30)
    except requests.ConnectionError:
        click.echo(f"fargo spot interrupt: no fargo server answers at {endpoint}", err=True)
        sys.exit(1)
    try:
        answer = resp.json()
    except ValueError:
        answer = {"message": resp.text}
    if resp.status_code != 200:
        click.echo(f"fargo spot interrupt: {answer.get('message', resp.text)}", err=True)
        sys.exit(1)
    for task in answer["tasks"]:
        click.echo(f"{task['taskArn']} {task['stopCode']}: {task['stoppedReason']}")
    for failure in answer["failures"]:
        click.echo(f"fargo spot interrupt: {failure['arn']}: {failure['reason']}", err=True)
    if answer["failures"]:
        sys.exit(1)


@main.command()
@click.argument("cluster")
@_endpoint_option
def kubeconfig(cluster: str, endpoint: str) -> None:
    """Print a kubeconfig for EKS cluster CLUSTER's Kubernetes API (for kubectl)."""
    import boto3
    import botocore.exceptions
    import yaml
    from botocore import UNSIGNED
    from botocore.config import Config

    session = boto3.session.Session()
    config = None if session.get_credentials() else Config(signature_version=UNSIGNED)
    eks = session.client("eks", endpoint_url=endpoint, config=config,
                         region_name=session.region_name or "us-east-1")
    try:
        found = eks.describe_cluster(name=cluster)["cluster"]
    except botocore.exceptions.ClientError as err:
        click.echo(f"fargo kubeconfig: {err.response['Error'].get('Message', err)}", err=True)
        sys.exit(1)
    except botocore.exceptions.EndpointConnectionError:
        click.echo(f"fargo kubeconfig: no fargo server answers at {endpoint}", err=True)
        sys.exit(1)
    url = f"{endpoint.rstrip('/')}/fargo/v1/eks/{cluster}/token"
    resp = requests.get(url, headers=_signed_headers(url), timeout=10)
    if resp.status_code != 200:
        click.echo(f"fargo kubeconfig: {resp.json().get('message', resp.text)}", err=True)
        sys.exit(1)
    user = f"fargo-{cluster}"
    cluster_entry: dict[str, object] = {"server": found["endpoint"]}
    ca = (found.get("certificateAuthority") or {}).get("data")
    if ca:
        cluster_entry["certificate-authority-data"] = ca
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": cluster, "cluster": cluster_entry}],
           "users": [{"name": user, "user": {"token": resp.json()["token"]}}],
           "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
           "current-context": cluster}
    click.echo(yaml.safe_dump(doc, sort_keys=False), nl=False)


@main.command()
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path.home() / ".fargo",
              show_default=True, help="The server's state dir.")
@click.option("--prefix", default="fg", show_default=True, help="The server's --prefix.")
def purge(state_dir: Path, prefix: str) -> None:
    """Kill every task and load balancer on this host and remove its sandbox, mounts, netns
    and bridges, and end the embedded registry a killed server left running.

    Run it with the server stopped; a later start records the tasks as STOPPED."""
    from .agent.host import HostRuntime
    from .agent.lb import HaproxyLoadBalancers
    from .agent.netplane import HostNetworkPlane
    from .agent.registry import LocalRegistry

    try:
        for pid in LocalRegistry(state_dir / "registry").end_left_over():
            click.echo(f"ended the embedded registry (pid {pid})")
    except AgentError as err:  # the tasks are purged all the same
        click.echo(f"warning: {err}", err=True)
    plane = HostNetworkPlane(prefix)
    HaproxyLoadBalancers(plane.network).purge()  # their HAProxys, before netns and bridges go
    HostRuntime(state_dir, plane, prefix=prefix).purge()


@main.command()
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path.home() / ".fargo",
              show_default=True, help="The server's state dir.")
def credentials(state_dir: Path) -> None:
    """Print the access key as shell exports: eval "$(fargo credentials)"."""
    from .control.iam import Iam
    from .store.sqlite import Store

    if not (state_dir / "fargo.db").exists():
        click.echo(f"fargo credentials: no fargo state in {state_dir}; start `fargo server "
                   f"--state-dir {state_dir}` once first", err=True)
        sys.exit(1)
    store = Store(state_dir / "fargo.db")
    key = Iam(store).ensure_root_key()
    store.close()
    click.echo(f"export AWS_ACCESS_KEY_ID={key.id}")
    click.echo(f"export AWS_SECRET_ACCESS_KEY={key.secret}")


@main.group()
def image() -> None:
    """Images in fargo's local store."""


@image.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("name")
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path.home() / ".fargo",
              show_default=True, help="The server's state dir.")
def image_import(archive: Path, name: str, state_dir: Path) -> None:
    """Load a `docker save` or OCI archive as NAME:TAG, for machines without a registry."""
    from .agent.images import ImageStore, PullError

    try:
        img = ImageStore(state_dir / "images").import_archive(archive, name)
    except (ValueError, OSError, PullError) as err:
        click.echo(f"fargo image import: {err}", err=True)
        sys.exit(1)
    click.echo(f"{name} {img.digest}")


if __name__ == "__main__":
    main()
