"""k8s-trace: explain Kubernetes packet paths hop by hop from captures and node dumps."""

__version__ = "0.1.0"
