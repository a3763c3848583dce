"""EKS clusters and Fargate profiles (FARGATE.md section 6) over the store. api/eks.py checks
requests against botocore's `eks` model and calls these with named arguments; the rules live
in model/profiles.py. Clusters and profiles are kept as the documents EKS describes them by."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..model import kubeobj
from ..model import profiles as rules
from ..model.errors import ApiError
from ..model.names import ACCOUNT
from ..model.vpc import Subnet
from ..store.kube import KubeTables
from .iam import ROOT
from .kubestate import KubeState

MAX_PROFILES = 10
PROFILE_SETTLE = 0.3  # seconds a new profile spends CREATING
K8S_VERSION = "1.32"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CREATOR = "fargo:creatorArn"  # kept in the cluster's document, never shown
AUTH_MODES = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")


def _shown(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != CREATOR}


def _access_config(given: dict[str, Any]) -> dict[str, Any]:
    """CreateCluster's accessConfig. fargo has no access entries: the creator's admin
    permissions cannot be left out, or no one could ever reach the cluster in API mode
    (and EKS refuses that in CONFIG_MAP mode)."""
    mode = given.get("authenticationMode") or "API_AND_CONFIG_MAP"
    if mode not in AUTH_MODES:
        raise rules.InvalidParameter(f"Unsupported authenticationMode {str(mode)[:40]}")
    bootstrap = given.get("bootstrapClusterCreatorAdminPermissions", True)
    if bootstrap is False:
        raise rules.InvalidParameter(
            "bootstrapClusterCreatorAdminPermissions false is not supported by fargo: it has "
            "no access entries, so only the creator can be an admin before aws-auth exists")
    return {"bootstrapClusterCreatorAdminPermissions": True, "authenticationMode": mode}


class ResourceNotFound(ApiError):
    code = "ResourceNotFoundException"


class ResourceInUse(ApiError):
    code = "ResourceInUseException"


class ResourceLimitExceeded(ApiError):
    code = "ResourceLimitExceededException"


@dataclass(frozen=True)
class ClusterVpc:
    """CreateCluster's resourcesVpcConfig, as far as fargo uses it."""
    subnet_ids: list[str]
    security_group_ids: list[str]
    endpoint_public_access: bool = True
    endpoint_private_access: bool = False


def eks_arn(region: str, path: str) -> str:
    return f"arn:aws:eks:{region}:{ACCOUNT}:{path}"


class ClusterPods(Protocol):
    """What a cluster's deletion tells the pods' controller (control/pods.py)."""

    def drop_cluster(self, cluster: str) -> None: ...


class Eks:
    def __init__(self, tables: KubeTables, state: KubeState, subnets: Mapping[str, Subnet],
                 vpc_id: str, endpoint: str, pods: ClusterPods | None = None,
                 ca_data: str = ""):
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

    def _check_subnets(self, ids: list[str], what: str) -> list[Subnet]:
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

    def create_cluster(self, *, name: str, role_arn: str, vpc: ClusterVpc, region: str,
                       version: str | None = None, logging: dict[str, Any] | None = None,
                       tags: dict[str, str] | None = None,
                       client_request_token: str | None = None, creator: str | None = None,
                       access: dict[str, Any] | None = None) -> dict[str, Any]:
        """creator: the ARN that signed the request (an admin of the cluster's Kubernetes
        API, unless access says bootstrapClusterCreatorAdminPermissions false)."""
        name = rules.check_name(name, "clusterName")
        if not re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9\-_]*", name):
            raise rules.InvalidParameter("Cluster name is invalid.")
        if self.tables.get_cluster(name) is not None:
            raise ResourceInUse(f"Cluster already exists with name: {name}")
        ids = list(vpc.subnet_ids)
        if not ids:
            raise rules.InvalidParameter("Subnets must be provided in resourcesVpcConfig.")
        found = self._check_subnets(ids, "clusters")
        if len({s.zone for s in found}) < 2:
            raise rules.InvalidParameter("Subnets specified must be in at least two different "
                                         "AZs")
        access_config = _access_config(access or {})
        version = version or K8S_VERSION
        if version != K8S_VERSION:
            raise rules.InvalidParameter(f"unsupported Kubernetes version {version[:20]}: "
                                         f"fargo serves {K8S_VERSION}")
        doc = {
            "name": name, "arn": eks_arn(region, f"cluster/{name}"), "createdAt": time.time(),
            "version": version, "endpoint": f"{self.endpoint}/eks/{name}",
            "roleArn": role_arn,
            "resourcesVpcConfig": {
                "subnetIds": ids, "securityGroupIds": list(vpc.security_group_ids),
                "vpcId": found[0].vpc_id,
                "endpointPublicAccess": vpc.endpoint_public_access,
                "endpointPrivateAccess": vpc.endpoint_private_access,
                "publicAccessCidrs": ["0.0.0.0/0"]},
            "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16", "ipFamily": "ipv4"},
            "logging": logging or {"clusterLogging": [
                {"types": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
                 "enabled": False}]},
            "status": "ACTIVE", "certificateAuthority": {"data": self.ca_data} if self.ca_data else {},
            "platformVersion": "eks.1",
            "tags": tags or {}, "health": {"issues": []},
            "accessConfig": access_config, CREATOR: creator,
        }
        if client_request_token:
            doc["clientRequestToken"] = client_request_token
        self.tables.put_cluster(doc)
        for ns in DEFAULT_NAMESPACES:
            self.state.add_namespace(name, kubeobj.namespace(ns))
        return _shown(doc)

    def describe_cluster(self, name: str) -> dict[str, Any]:
        return _shown(self.cluster(name))

    def list_clusters(self) -> list[str]:
        return [c["name"] for c in self.tables.list_clusters()]

    def delete_cluster(self, name: str) -> dict[str, Any]:
        doc = self.cluster(name)
        if self.tables.list_profiles(doc["name"]):
            raise ResourceInUse(f"Cluster has Fargate profiles attached: delete them before "
                                f"cluster {doc['name']}.")
        if self.pods:
            self.pods.drop_cluster(doc["name"])
        self.tables.delete_cluster(doc["name"])
        self.state.drop_cluster(doc["name"])
        doc["status"] = "DELETING"
        return _shown(doc)

    # ---- what the Kubernetes face asks about a cluster
    def exists(self, name: str) -> bool:
        return self.tables.get_cluster(name) is not None

    def token_key(self, name: str) -> str | None:
        """What the cluster's bearer token is filed under in IAM: a cluster made again under
        the same name gets a new token. None for a cluster that does not exist."""
        doc = self.tables.get_cluster(name)
        return f"{doc['name']}/{doc['createdAt']}" if doc else None

    def access(self, name: str) -> tuple[str | None, bool, str]:
        """(creator ARN, whether the creator is admin, authenticationMode). A cluster made
        before fargo recorded creators was made with the account's one key: root's; a
        cluster that is gone has no one."""
        doc = self.tables.get_cluster(name)
        if doc is None:
            return None, False, "API"
        config = doc.get("accessConfig") or {}
        return (doc.get(CREATOR, ROOT), config.get("bootstrapClusterCreatorAdminPermissions",
                                                   True),
                config.get("authenticationMode", "API_AND_CONFIG_MAP"))

    def profiles(self, cluster: str) -> list[dict[str, Any]]:
        """The cluster's Fargate profiles, by name."""
        return self.tables.list_profiles(cluster)

    # ---- Fargate profiles
    def create_fargate_profile(self, *, cluster: str, name: str, pod_execution_role_arn: str,
                               region: str, selectors: list[dict[str, Any]] | None = None,
                               subnets: list[str] | None = None,
                               tags: dict[str, str] | None = None) -> dict[str, Any]:
        doc = self.cluster(cluster)
        cname = doc["name"]
        name = rules.check_name(name, "fargateProfileName")
        checked = rules.check_selectors(selectors)
        ids = list(subnets or doc["resourcesVpcConfig"]["subnetIds"])
        self._check_subnets(ids, "Fargate pods")
        existing = self.tables.list_profiles(cname)
        if any(x["fargateProfileName"] == name for x in existing):
            raise ResourceInUse(f"A Fargate Profile already exists with this name in this "
                                f"cluster: {name}.")
        deleting = [x["fargateProfileName"] for x in existing if x["status"] == "DELETING"]
        if deleting:
            raise ResourceInUse(f"Cannot create Fargate profile {name} because cluster "
                                f"{cname} currently has Fargate profile "
                                f"{deleting[0]} in status DELETING")
        if len(existing) >= MAX_PROFILES:
            raise ResourceLimitExceeded(f"Cluster {cname} already has the maximum of "
                                        f"{MAX_PROFILES} Fargate profiles.")
        profile = {
            "fargateProfileName": name,
            "fargateProfileArn": eks_arn(region, f"fargateprofile/{cname}/{name}/"
                                         f"{uuid.uuid4()}"),
            "clusterName": cname, "createdAt": time.time(),
            "podExecutionRoleArn": pod_execution_role_arn, "subnets": ids,
            "selectors": checked, "status": "CREATING", "tags": tags or {},
            "health": {"issues": []},
        }
        self.tables.put_profile(cname, profile)
        self.state.changed.set()
        return profile

    def describe_fargate_profile(self, cluster: str, name: str) -> dict[str, Any]:
        return self._profile(self.cluster(cluster)["name"], name)

    def _profile(self, cluster: str, name: str) -> dict[str, Any]:
        doc = self.tables.get_profile(cluster, name)
        if doc is None:
            raise ResourceNotFound(f"No Fargate Profile found with name: {name[:100]}.")
        return doc

    def list_fargate_profiles(self, cluster: str) -> list[str]:
        cname = self.cluster(cluster)["name"]
        return [x["fargateProfileName"] for x in self.tables.list_profiles(cname)]

    def delete_fargate_profile(self, cluster: str, name: str) -> dict[str, Any]:
        cname = self.cluster(cluster)["name"]
        doc = self._profile(cname, name)
        if doc["status"] == "DELETING":
            return doc
        others = [x["fargateProfileName"] for x in self.tables.list_profiles(cname)
                  if x["status"] == "DELETING"]
        if others:
            raise ResourceInUse(f"Cannot delete Fargate profile {doc['fargateProfileName']} "
                                f"while Fargate profile {others[0]} is DELETING")
        doc["status"] = "DELETING"
        self.tables.put_profile(cname, doc)
        self.state.changed.set()
        return doc

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

