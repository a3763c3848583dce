"""A big model fargo serves a few operations of is trimmed to their shapes: the served ones
check and parse as with the whole model, the others keep only their names."""

from __future__ import annotations

import botocore.loaders
import botocore.session
import pytest
from botocore.model import ServiceModel

from fargo.api.shapes import trimmed

pytestmark = pytest.mark.pure
SERVED = frozenset({"DescribeSubnets", "AuthorizeSecurityGroupIngress"})


def test_served_operations_keep_their_shapes_and_the_rest_their_names() -> None:
    whole = botocore.session.get_session().get_service_model("ec2")
    raw = botocore.loaders.create_loader().load_service_model("ec2", "service-2")
    model = ServiceModel(trimmed(raw, SERVED), service_name="ec2")
    assert model.operation_names == whole.operation_names
    assert len(trimmed(raw, SERVED)["shapes"]) < len(raw["shapes"]) // 10
    for name in SERVED:
        ours, theirs = model.operation_model(name), whole.operation_model(name)
        assert ours.input_shape.members.keys() == theirs.input_shape.members.keys()
        assert ours.output_shape.members.keys() == theirs.output_shape.members.keys()
    perms = model.operation_model("AuthorizeSecurityGroupIngress").input_shape
    pair = perms.members["IpPermissions"].member.members["UserIdGroupPairs"].member
    assert "GroupId" in pair.members  # nested shapes come along
    assert model.operation_model("RunInstances").input_shape is None
