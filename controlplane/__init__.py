"""controlplane: the Caracal policy control plane."""

__version__ = "0.1.0"
