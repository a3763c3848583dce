"""EKS clusters and Fargate profiles (FARGATE.md section 6) over the store. Requests arrive
checked against botocore's `eks` model; the rules live in model/profiles.py."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from ..model import profiles as rules
from ..model.errors import ApiError
from ..model.names import ACCOUNT
from ..store.kube import KubeTables
from .kubestate import KubeState

MAX_PROFILES = 10
PROFILE_SETTLE = 0.3  # seconds a new profile spends CREATING
K8S_VERSION = "1.32"


class ResourceNotFound(ApiError):
    code = "ResourceNotFoundException"
    status = 404


class ResourceInUse(ApiError):
    code = "ResourceInUseException"
    status = 409


class ResourceLimitExceeded(ApiError):
    code = "ResourceLimitExceededException"


def eks_arn(region: str, path: str) -> str:
    return f"arn:aws:eks:{region}:{ACCOUNT}:{path}"


class Eks:
    def __init__(self, tables: KubeTables, state: KubeState, subnets: Any, vpc_id: str,
                 endpoint: str, pods: Any = None, ca_data: str = ""):
        self.tables = tables
        self.state = state
        self.subnets = subnets  # the engine's: id -> Subnet
        self.vpc_id = vpc_id  # EKS here runs in fargo's default VPC
        self.endpoint = endpoint.rstrip("/")
        self.pods = pods  # control/pods.Pods, told when profiles come and go
        self.ca_data = ca_data  # base64 PEM of the CA behind the HTTPS endpoint

    # ---- clusters
    def cluster(self, name: str) -> dict[str, Any]:
        doc = self.tables.get_cluster(name)
        if doc is None:
            raise ResourceNotFound(f"No cluster found for name: {name[:100]}.")
        return doc

    def _check_subnets(self, ids: list[str], what: str) -> list[Any]:
        found = []
        for sid in ids:
            subnet = self.subnets.get(sid)
            if subnet is None:
                raise rules.InvalidParameter(f"The subnet ID '{sid[:64]}' does not exist "
                                             f"(Service: AmazonEC2; Error Code: "
                                             f"InvalidSubnetID.NotFound)")
            if subnet.vpc_id != self.vpc_id:
                raise rules.InvalidParameter(f"Subnet {sid} is not in fargo's default VPC "
                                             f"{self.vpc_id}: {what} run only there.")
            if getattr(subnet, "public", False):
                raise rules.InvalidParameter(f"Subnet {sid} is not a private subnet: {what} "
                                             "run only in private subnets.")
            found.append(subnet)
        if len({s.vpc_id for s in found}) > 1:
            raise rules.InvalidParameter("Subnets must all be in the same VPC.")
        return found

    def create_cluster(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        name = rules.check_name(p["name"], "clusterName")
        if not re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9\-_]*", name):
            raise rules.InvalidParameter("Cluster name is invalid.")
        if self.tables.get_cluster(name) is not None:
            raise ResourceInUse(f"Cluster already exists with name: {name}")
        vpc = p["resourcesVpcConfig"]
        ids = list(vpc.get("subnetIds") or [])
        if not ids:
            raise rules.InvalidParameter("Subnets must be provided in resourcesVpcConfig.")
        found = self._check_subnets(ids, "clusters")
        if len({s.zone for s in found}) < 2:
            raise rules.InvalidParameter("Subnets specified must be in at least two different "
                                         "AZs")
        version = p.get("version") or K8S_VERSION
        if version != K8S_VERSION:
            raise rules.InvalidParameter(f"unsupported Kubernetes version {version[:20]}: "
                                         f"fargo serves {K8S_VERSION}")
        doc = {
            "name": name, "arn": eks_arn(region, f"cluster/{name}"), "createdAt": time.time(),
            "version": version, "endpoint": f"{self.endpoint}/eks/{name}",
            "roleArn": p["roleArn"],
            "resourcesVpcConfig": {
                "subnetIds": ids, "securityGroupIds": list(vpc.get("securityGroupIds") or []),
                "vpcId": found[0].vpc_id,
                "endpointPublicAccess": vpc.get("endpointPublicAccess", True),
                "endpointPrivateAccess": vpc.get("endpointPrivateAccess", False),
                "publicAccessCidrs": ["0.0.0.0/0"]},
            "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16", "ipFamily": "ipv4"},
            "logging": p.get("logging") or {"clusterLogging": [
                {"types": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
                 "enabled": False}]},
            "status": "ACTIVE", "certificateAuthority": {"data": self.ca_data} if self.ca_data else {},
            "platformVersion": "eks.1",
            "tags": p.get("tags") or {}, "health": {"issues": []},
            "accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"},
        }
        if p.get("clientRequestToken"):
            doc["clientRequestToken"] = p["clientRequestToken"]
        self.tables.put_cluster(doc)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.state.create(name, "namespaces", "", {
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        return {"cluster": doc}

    def describe_cluster(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return {"cluster": self.cluster(_cluster_name(p))}

    def list_clusters(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        names = [c["name"] for c in self.tables.list_clusters()]
        return _page(names, p, "clusters")

    def delete_cluster(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        doc = self.cluster(_cluster_name(p))
        if self.tables.list_profiles(doc["name"]):
            raise ResourceInUse(f"Cluster has Fargate profiles attached: delete them before "
                                f"cluster {doc['name']}.")
        if self.pods:
            self.pods.drop_cluster(doc["name"])
        self.tables.delete_cluster(doc["name"])
        self.state.drop_cluster(doc["name"])
        doc["status"] = "DELETING"
        return {"cluster": doc}

    # ---- Fargate profiles
    def create_fargate_profile(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self.cluster(_cluster_name(p))
        name = rules.check_name(p["fargateProfileName"], "fargateProfileName")
        selectors = rules.check_selectors(p.get("selectors"))
        ids = list(p.get("subnets") or cluster["resourcesVpcConfig"]["subnetIds"])
        self._check_subnets(ids, "Fargate pods")
        existing = self.tables.list_profiles(cluster["name"])
        if any(x["fargateProfileName"] == name for x in existing):
            raise ResourceInUse(f"A Fargate Profile already exists with this name in this "
                                f"cluster: {name}.")
        deleting = [x["fargateProfileName"] for x in existing if x["status"] == "DELETING"]
        if deleting:
            raise ResourceInUse(f"Cannot create Fargate profile {name} because cluster "
                                f"{cluster['name']} currently has Fargate profile "
                                f"{deleting[0]} in status DELETING")
        if len(existing) >= MAX_PROFILES:
            raise ResourceLimitExceeded(f"Cluster {cluster['name']} already has the maximum of "
                                        f"{MAX_PROFILES} Fargate profiles.")
        doc = {
            "fargateProfileName": name,
            "fargateProfileArn": eks_arn(region, f"fargateprofile/{cluster['name']}/{name}/"
                                         f"{uuid.uuid4()}"),
            "clusterName": cluster["name"], "createdAt": time.time(),
            "podExecutionRoleArn": p["podExecutionRoleArn"], "subnets": ids,
            "selectors": selectors, "status": "CREATING", "tags": p.get("tags") or {},
            "health": {"issues": []},
        }
        self.tables.put_profile(cluster["name"], doc)
        self.state.changed.set()
        return {"fargateProfile": doc}

    def describe_fargate_profile(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self.cluster(_cluster_name(p))
        return {"fargateProfile": self._profile(cluster["name"], p["fargateProfileName"])}

    def _profile(self, cluster: str, name: str) -> dict[str, Any]:
        doc = self.tables.get_profile(cluster, name)
        if doc is None:
            raise ResourceNotFound(f"No Fargate Profile found with name: {name[:100]}.")
        return doc

    def list_fargate_profiles(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self.cluster(_cluster_name(p))
        names = [x["fargateProfileName"] for x in self.tables.list_profiles(cluster["name"])]
        return _page(names, p, "fargateProfileNames")

    def delete_fargate_profile(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self.cluster(_cluster_name(p))
        doc = self._profile(cluster["name"], p["fargateProfileName"])
        if doc["status"] == "DELETING":
            return {"fargateProfile": doc}
        others = [x["fargateProfileName"] for x in self.tables.list_profiles(cluster["name"])
                  if x["status"] == "DELETING"]
        if others:
            raise ResourceInUse(f"Cannot delete Fargate profile {doc['fargateProfileName']} "
                                f"while Fargate profile {others[0]} is DELETING")
        doc["status"] = "DELETING"
        self.tables.put_profile(cluster["name"], doc)
        self.state.changed.set()
        return {"fargateProfile": doc}

    # ---- the profiles' own lifecycle, advanced by the controller loop
    def settle(self, cluster: str, busy: set[str]) -> None:
        """CREATING becomes ACTIVE after a moment; DELETING goes once none of its pods
        runs any more (`busy`: profiles still holding running pods)."""
        now = time.time()
        for doc in self.tables.list_profiles(cluster):
            if doc["status"] == "CREATING" and now - doc["createdAt"] >= PROFILE_SETTLE:
                doc["status"] = "ACTIVE"
                self.tables.put_profile(cluster, doc)
                self.state.changed.set()
            elif doc["status"] == "DELETING" and doc["fargateProfileName"] not in busy:
                self.tables.delete_profile(cluster, doc["fargateProfileName"])
                self.state.changed.set()


def _cluster_name(p: dict[str, Any]) -> str:
    """The cluster a request names in its URI (`clusterName` in profile operations)."""
    return p.get("clusterName") or p.get("name") or ""


def _page(items: list[str], p: dict[str, Any], key: str) -> dict[str, Any]:
    start = 0
    token = p.get("nextToken")
    if token:
        if not re.fullmatch(r"[0-9]{1,9}", token) or int(token) > len(items):
            raise rules.InvalidParameter("The nextToken is not valid.")
        start = int(token)
    size = p.get("maxResults") or 100
    if not 1 <= size <= 100:
        raise rules.InvalidParameter("maxResults must be between 1 and 100.")
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out
