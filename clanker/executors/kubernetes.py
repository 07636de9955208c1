"""Kubernetes as an executor — designed and built here, NOT yet run against a cluster, so it is
not offered in `executors:` (README, "Beyond one machine").

The design is the ssh executor's with `kubectl` as the transport:
- slots are pods: a StatefulSet (`manifest` below, or one of your own named by `statefulset`)
  whose pods `<name>-0 … <name>-(n-1)` idle (`sleep infinity`) in an image with git, bash and
  the agent; slave k is placed on pod k mod n;
- agents start with `kubectl exec -i` into the pod, through the same launch script as ssh and
  containers (executors/launch.py): the environment and prompt over stdin, the agent stopped
  when that pipe ends;
- code moves with git over `kubectl exec` as well, by git's `ext::` transport (`git push
  ext::kubectl exec -i … -- %S <clone>`), into a clone per slave under `workdir` in the pod;
- credentials are sent per run over stdin, as for ssh; never a Secret mounted for every pod.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Pods(msgspec.Struct, frozen=True):
    name: str  # the StatefulSet
    replicas: int
    namespace: str = "default"
    image: str = "ghcr.io/you/agent-image:latest"
    container: str = "agent"
    workdir: str = "/work"
    context: str | None = None  # a kubeconfig context, else the current one

    def pod(self, slave_index: int) -> str:
        return f"{self.name}-{slave_index % self.replicas}"

    def kubectl(self) -> list[str]:
        return ["kubectl", *(["--context", self.context] if self.context else []), "-n", self.namespace]

    def exec_prefix(self, slave_index: int) -> list[str]:
        """The argv prefix that runs a command in slave k's pod (stdin attached, no tty)."""
        return [*self.kubectl(), "exec", "-i", self.pod(slave_index), "-c", self.container, "--"]

    def clone(self, repo_id: str, slave: str) -> str:
        return f"{self.workdir.rstrip('/')}/{repo_id}/{slave}"

    def git_url(self, slave_index: int, clone: str) -> str:
        """A git remote for the clone in the pod, over `kubectl exec` (git's ext:: transport:
        `%S` becomes git-upload-pack or git-receive-pack; needs `protocol.ext.allow=always`)."""
        return "ext::" + " ".join([*self.exec_prefix(slave_index), "%S", clone])

    def manifest(self) -> dict[str, Any]:
        """A StatefulSet of idle pods, one slot each."""
        labels = {"app.kubernetes.io/name": self.name, "app.kubernetes.io/managed-by": "clanker"}
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": labels},
            "spec": {
                "serviceName": self.name,
                "replicas": self.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": self.name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": self.container,
                                "image": self.image,
                                "command": ["sleep", "infinity"],
                                "workingDir": self.workdir,
                                "volumeMounts": [{"name": "work", "mountPath": self.workdir}],
                            }
                        ],  # fmt: skip
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "work"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
                    }
                ],  # fmt: skip
            },
        }
