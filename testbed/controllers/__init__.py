"""The lab's controller manager: Kubernetes' reconciling loops over the lab's etcd."""
