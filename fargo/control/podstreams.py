"""What kubectl exec, attach and port-forward reach of a pod: a running container of its task
(an exec'd process, its output) and the task's network namespace (a connection to one of
its ports). The Kubernetes face speaks the streaming protocols; this says which task and
container a request names, refuses what cannot be reached in the apiserver's words, and asks
the data plane."""

from __future__ import annotations

import socket
from typing import Any

from ..model.kubeerrors import KubeError, bad_request
from ..port.errors import AgentError, ContainerGone
from ..port.protocols import ExecSession, Network, Runtime
from .kubestate import KubeState

__all__ = ["ExecSession", "PodStreams"]


def _state_words(status: dict[str, Any] | None) -> str:
    """A container's state as `kubectl describe` words it: "waiting to start: Reason", or
    "terminated (Reason)"."""
    state = (status or {}).get("state") or {}
    if "waiting" in state:
        return "is waiting to start: " + (state["waiting"].get("reason") or "ContainerCreating")
    if "terminated" in state:
        return "has terminated (" + (state["terminated"].get("reason") or "Completed") + ")"
    return "is not running"


class PodStreams:
    def __init__(self, state: KubeState, runtime: Runtime, network: Network):
        self.state = state
        self.runtime = runtime
        self.network = network

    def _running_pod(self, cluster: str, ns: str, name: str, verb: str) -> tuple[dict[str, Any],
                                                                                 str]:
        pod = self.state.get(cluster, "pods", ns, name)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise bad_request(f"cannot {verb} a container in a completed pod; current phase is "
                              f"{phase}")
        tid = (pod.get("_fargo") or {}).get("task")
        if not tid:
            raise bad_request(f"pod {name} does not have a host assigned")
        return pod, tid

    def container(self, cluster: str, ns: str, name: str, container: str | None,
                  verb: str = "exec into") -> tuple[str, str]:
        """(task id, container name) of a running container of the pod; the apiserver's
        errors for a pod or container that is not there, not chosen, or not running."""
        pod, tid = self._running_pod(cluster, ns, name, verb)
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        names = [c["name"] for c in spec.get("containers") or []]
        inits = [c["name"] for c in spec.get("initContainers") or []]
        if not container:
            if len(names) != 1:
                raise bad_request(f"a container name must be specified for pod {name}, choose "
                                  f"one of: [{' '.join(names)}]"
                                  + (f" or one of the init containers: [{' '.join(inits)}]"
                                     if inits else ""))
            container = names[0]
        if container not in names + inits:
            raise bad_request(f"container {container} is not valid for pod {name}")
        statuses = (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or [])
        mine = next((s for s in statuses if s.get("name") == container), None)
        if not ((mine or {}).get("state") or {}).get("running"):
            raise bad_request(f'container "{container}" in pod "{name}" {_state_words(mine)}')
        return tid, container

    def pod_task(self, cluster: str, ns: str, name: str) -> str:
        """The task of a running pod (port-forward reaches its network namespace)."""
        pod, tid = self._running_pod(cluster, ns, name, "forward ports of")
        phase = (pod.get("status") or {}).get("phase")
        if phase != "Running":
            raise bad_request(f"unable to forward port because pod is not running. Current "
                              f"status={phase}")
        return tid

    def exec(self, tid: str, container: str, argv: list[str], *, tty: bool,
             stdin: bool) -> ExecSession:
        """Start argv in the container. Blocking: call it off the event loop."""
        try:
            return self.runtime.exec_session(tid, container, argv, tty=tty, stdin=stdin)
        except ContainerGone:
            raise bad_request(f'container "{container}" is not running') from None
        except AgentError as err:
            raise KubeError(400, "BadRequest", "error executing command in container: "
                            f"{err}") from None

    def ended(self, tid: str, container: str) -> bool:
        """Cheap: whether the container's process has ended (attach follows it till then)."""
        try:
            return self.runtime.exited(tid, container)
        except AgentError:
            return True

    def socket(self, tid: str) -> socket.socket:
        """An unconnected non-blocking TCP socket inside the task's netns; AgentError when
        the netns is gone. Blocking: call it off the event loop."""
        return self.network.probe_socket(tid)
