"""The Kubernetes API of each EKS cluster, served under /eks/CLUSTER on fargo's one port."""
