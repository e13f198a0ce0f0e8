from ansible_collections.owlat.selfhost.plugins.filter.stack_members import stack_members


def item(name, stack=None, service=None):
    labels = {"owlat.stack": stack, "owlat.service": service} if stack else {"com.example": "x"}
    return {"Id": name, "Names": ["/" + name], "Labels": labels}


def test_labelled_containers_are_their_labels_stacks_whatever_their_names():
    host = [item("acme-web", "acme", "web"), item("acme-eu-web", "acme-eu", "web"), item("renamed", "acme", "redis")]
    assert stack_members(host, "acme") == ["acme-web", "renamed"]
    assert stack_members(host, "acme-eu") == ["acme-eu-web"]


def test_unlabelled_containers_only_under_the_described_names():
    host = [item("acme-web"), item("acme-eu-web"), item("acme-convex"), item("acme-worker")]
    assert stack_members(host, "acme") == ["acme-convex", "acme-web"]
    assert stack_members(host, "acme", ["web", "worker"]) == ["acme-web", "acme-worker"]
    assert stack_members([], "acme") == [] and stack_members(None, "acme") == []
