"""The audit log: admin events, decision events, and the monthly partitions they go to.

Importing the package registers the partitions' post-migrate step
(``controlplane.audit.partitions``), so every migration run leaves the coming months'
partitions in place.
"""

from controlplane.audit import partitions as partitions
