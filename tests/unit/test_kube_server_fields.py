"""What the store path adds to a client's object: uid, generation, defaults, kept status."""

from __future__ import annotations


def test_an_apply_keeps_what_the_server_and_controllers_wrote() -> None:
    from testbed.kube import server_fields

    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}  # fmt: skip
    first = server_fields.stored("Deployment", manifest, None, 0.0)
    assert first["metadata"]["generation"] == 1 and first["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    current = {**first, "status": {"replicas": 2}}
    current["metadata"] = {**first["metadata"], "annotations": {"deployment.kubernetes.io/revision": "1"}}
    again = server_fields.stored("Deployment", manifest, current, 10.0)
    assert server_fields.same_for_client(current, again)  # kubectl says "unchanged"
    assert again["status"] == {"replicas": 2} and again["metadata"]["uid"] == first["metadata"]["uid"]
    scaled = server_fields.stored("Deployment", {**manifest, "spec": {**manifest["spec"], "replicas": 3}}, current, 20.0)
    assert scaled["metadata"]["generation"] == 2 and not server_fields.same_for_client(current, scaled)
