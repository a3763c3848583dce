"""Load balancers on HAProxy: config.py renders a spec (pure), runtime.py speaks HAProxy's
sockets, netns.py plumbs a load balancer's namespace, process.py runs HAProxy, plane.py is
the port's LoadBalancers."""

from .plane import HaproxyLoadBalancers

__all__ = ["HaproxyLoadBalancers"]
