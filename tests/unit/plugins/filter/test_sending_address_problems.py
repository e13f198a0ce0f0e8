"""Where a stack's sending addresses must be, and upstream's pool rules (docs/upstream-deliverability.md §2)."""

from ansible_collections.owlat.selfhost.plugins.filter.sending_address_problems import sending_problems

FQDN = r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
HOST = ["10.0.0.5", "172.29.0.241", "2001:db8::5"]


def problems(sending, **more):
    return sending_problems(dict({"sending_addresses": sending, "fqdn_re": FQDN}, **more), HOST)


def test_addresses_of_the_host_are_fine():
    assert problems(["172.29.0.241", "2001:db8::5"]) == []


def test_an_address_not_on_the_host_is_refused_unless_a_nat_is_declared():
    assert problems(["198.51.100.7"]) == [
        "owlat_stack_sending_addresses: 198.51.100.7 is not an address of the host (it has 10.0.0.5, 172.29.0.241, "
        "2001:db8::5): add it to an interface, or set owlat_stack_behind_nat: true if the host sends through a NAT "
        "with that public address."]
    assert problems(["198.51.100.7"], behind_nat=True, public_address="198.51.100.7") == []


def test_behind_nat_the_private_defaults_are_refused():
    found = problems(["10.0.0.5"], behind_nat=True, public_address="10.0.0.5")
    assert len(found) == 2
    assert "owlat_stack_behind_nat is true, but owlat_stack_sending_addresses has 10.0.0.5" in found[0]
    assert "owlat_stack_public_address is 10.0.0.5, an address of the host itself" in found[1]


def test_what_upstreams_pools_refuse():
    assert "'mail.example.com' is not an IP address" in problems(["mail.example.com"])[0]
    assert "0.0.0.0 cannot send mail" in problems(["0.0.0.0"])[0]
    assert "127.0.0.1 cannot send mail" in problems(["127.0.0.1"])[0]
    assert "is empty" in problems([])[0]
    assert "only IPv6 addresses" in problems(["2001:db8::5"])[0]


def test_ehlo_names_per_address():
    assert problems(["172.29.0.241"], ehlo_hostnames={"172.29.0.241": "mail2.example.com"}) == []
    found = problems(["172.29.0.241"], ehlo_hostnames={"10.0.0.5": "localhost", "172.29.0.241": 5})
    assert found == [
        "owlat_stack_ehlo_hostnames names 10.0.0.5, which is not one of owlat_stack_sending_addresses (172.29.0.241).",
        "owlat_stack_ehlo_hostnames: the EHLO name of 10.0.0.5 must be a fully qualified name (got 'localhost').",
        "owlat_stack_ehlo_hostnames: the EHLO name of 172.29.0.241 must be a fully qualified name (got 5).",
    ]
