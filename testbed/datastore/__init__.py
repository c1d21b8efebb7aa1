"""The lab's cluster state: the Datastore protocol, its etcd and in-memory
implementations, the key layout (``keys``) and the values stored there (``records``).

``etcd`` is not imported here, so that pure users (records, keys, the memory store)
do not pay for the etcd client's import (``etcd_http``, on http.client).
"""

from testbed.datastore.base import Datastore, DatastoreError
from testbed.datastore.memory import MemoryDatastore

__all__ = ["Datastore", "DatastoreError", "MemoryDatastore"]
