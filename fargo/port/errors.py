"""Every failure the data plane reports: one hierarchy, so control maps them to the user's
errors in one place (a failed start's reason, an API error) without reading message text."""

from __future__ import annotations


class AgentError(Exception):
    """Base of what the data plane raises; the message is fit to show a user."""


class InvalidSpec(AgentError):
    """Input the data plane refuses before acting (an unsafe name, a bad reference)."""


class SandboxError(AgentError):
    """A sandbox or container operation failed (cgroups, runc, conmon)."""


class ContainerGone(SandboxError):
    """The container is not (or no longer) known to the runtime."""


class StorageError(AgentError):
    """A task's ephemeral filesystem could not be made or removed."""


class UsernsError(AgentError):
    """A user namespace or an idmapped mount could not be made."""


class NetworkError(AgentError):
    """A bridge, netns or veth operation failed."""


class FirewallError(AgentError):
    """nftables refused a rule set or a member change."""


class ImageError(AgentError):
    """An image could not be resolved, pulled, imported or mounted."""


class PullError(ImageError):
    """The registry could not be reached or refused the image."""


class RootfsError(ImageError):
    """A container's layered root filesystem could not be mounted."""
