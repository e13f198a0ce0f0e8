from ansible_collections.owlat.selfhost.plugins.filter.stack_entry_problems import stack_entry_problems


def entry(name, address="", **more):
    settings = {"owlat_stack_name": name, "owlat_app_mta_smtp_address": address}
    if address:
        settings["owlat_stack_sending_addresses"] = [address]
    return dict(settings, **more)


def test_two_stacks_sending_from_one_address_are_refused_by_name():
    problems = stack_entry_problems([entry("north", "10.0.0.1"), entry("south", "10.0.0.2", owlat_stack_sending_addresses=["10.0.0.9", "10.0.0.1"])], "h1")
    assert problems == ["host h1, stack south: owlat_stacks[1]: it would send from 10.0.0.1, as host h1, stack north: owlat_stacks[0] does: "
                        "give each stack its own owlat_stack_sending_addresses (mail reputation is per address)."]
    # Two entries without the setting both take the host's default address.
    problems = stack_entry_problems([{"owlat_stack_name": "north", "owlat_app_mta_smtp_address": "10.0.0.1"},
                                     {"owlat_stack_name": "south", "owlat_app_mta_smtp_address": "10.0.0.2"}], "h1")
    assert len(problems) == 1 and "it would send from the host's default address" in problems[0]
    # A stack taken off the host no longer counts.
    assert stack_entry_problems([entry("north", "10.0.0.1"), entry("south", "10.0.0.2", owlat_stack_sending_addresses=["10.0.0.1"],
                                                                   owlat_stack_present=False)], "h1") == []


def test_three_stacks_on_their_own_addresses_are_fine():
    stacks = [entry("north", "10.0.0.1"), entry("south", "10.0.0.2"), entry("east", "10.0.0.3", owlat_stack_present=True)]
    assert stack_entry_problems(stacks, "h1") == []


def test_not_a_list_or_empty_or_not_dicts():
    assert "must be a list" in stack_entry_problems({"owlat_stack_name": "a1"}, "h1")[0]
    assert "is empty" in stack_entry_problems([], "h1")[0]
    assert stack_entry_problems(["north"], "h1") == ["host h1: owlat_stacks[0] must be a dict of the stack's settings (got a str)."]


def test_names_required_valid_and_unique():
    problems = stack_entry_problems([entry("north", "10.0.0.1"), entry("North!", "10.0.0.2"), {"owlat_app_mta_smtp_address": "10.0.0.3"},
                                     entry("north", "10.0.0.4")], "h1")
    assert len(problems) == 3
    assert "owlat_stacks[1]: owlat_stack_name is required" in problems[0] and "'North!'" in problems[0]
    assert "owlat_stacks[2]: owlat_stack_name is required" in problems[1] and "None" in problems[1]
    assert problems[2].startswith("host h1, stack north: owlat_stacks[3]: the name is also used by owlat_stacks[0]")


def test_host_wide_and_unsupported_settings_are_named_without_their_values():
    stacks = [entry("north", "10.0.0.1", owlat_proxy_https_port=8443, owlat_docker_registries=[{"password": "s3cret"}],
                    owlat_upgrade_release="hunter2", owlat_backup_password="hunter2", other="x")]
    problems = stack_entry_problems(stacks, "h1")
    assert len(problems) == 4
    assert "owlat_proxy_https_port is a setting of the whole host" in problems[0]
    assert "owlat_docker_registries is a setting of the whole host" in problems[1]
    assert "owlat_upgrade_release is not supported on a host with several stacks" in problems[2]
    assert "'other' is not an Owlat setting" in problems[3]
    assert not any("s3cret" in p or "hunter2" in p for p in problems)


def test_present_is_a_boolean():
    problems = stack_entry_problems([entry("north", owlat_stack_present="false")], "h1")
    assert problems == ["host h1, stack north: owlat_stacks[0]: owlat_stack_present is true or false (got 'false'); false "
                        "removes the stack's containers and keeps its volumes and secrets."]


def test_same_smtp_address_and_port_refused_and_every_address_collides_with_all():
    same = stack_entry_problems([entry("north", "10.0.0.1"), entry("south", "10.0.0.1", owlat_stack_sending_addresses=["10.0.0.2"])], "h1")
    assert len(same) == 1 and "stack south" in same[0] and "10.0.0.1:25" in same[0] and "stack north" in same[0]
    every = stack_entry_problems([entry("north", "10.0.0.1"), entry("south", owlat_stack_sending_addresses=["10.0.0.2"])], "h1")
    assert len(every) == 1 and "every address:25" in every[0]
    # Another port, or a removed stack, is no collision; the host's port applies to entries without their own.
    assert stack_entry_problems([entry("north", "10.0.0.1"), entry("south", "10.0.0.1", owlat_app_mta_smtp_port=2525,
                                                                   owlat_stack_sending_addresses=["10.0.0.2"])], "h1") == []
    assert stack_entry_problems([entry("north", "10.0.0.1"), entry("south", "10.0.0.1", owlat_stack_present=False)], "h1") == []
    assert "10.0.0.1:2525" in stack_entry_problems([entry("north", "10.0.0.1"), entry("south", "10.0.0.1")], "h1", 2525)[0]
    assert "it would send from 10.0.0.1" in stack_entry_problems([entry("north", "10.0.0.1"), entry("south", "10.0.0.1")], "h1", 2525)[1]


def test_entries_carry_the_hosts_settings_and_connection_then_their_own():
    from ansible_collections.owlat.selfhost.plugins.filter.stack_entries import stack_entries
    hostvars = {
        "m1": {"ansible_user": "ops", "ansible_port": 2222, "owlat_proxy_tls": "internal", "owlat_stack_name": "owlat",
               "owlat_stacks": [{"owlat_stack_name": "north", "owlat_proxy_tls": "x"}, {"owlat_stack_name": "south"}],
               "ansible_check_mode": False, "other": 1},
        "m2": {"owlat_stack_name": "solo", "ansible_host": "10.0.0.2"},
    }
    groups = {"eu": ["m1", "m2"], "us": ["m3"], "owlat_hosts": ["m1", "m2"]}
    north, south = stack_entries(hostvars, ["m1", "m2"], groups, ["eu", "us", "m1"])
    assert north == {"name": "north@m1", "groups": ["_owlat_stacks", "eu"], "owlat_stack_machine": "m1", "ansible_host": "m1",
                     "ansible_user": "ops", "ansible_port": 2222, "owlat_proxy_tls": "x", "owlat_stack_name": "north"}
    assert south["owlat_proxy_tls"] == "internal" and south["name"] == "south@m1"
    assert stack_entries(hostvars, ["m2"], groups) == []


def test_backup_settings_are_a_stacks_own():
    stacks = [entry("north", "10.0.0.1", owlat_backup_password="hunter2hunter2", owlat_backup_mode="hot"),
              entry("south", "10.0.0.2", owlat_backup_restore_confirm=True, owlat_monitoring_tenant="t1")]
    problems = stack_entry_problems(stacks, "h1")
    assert problems == ["host h1, stack south: owlat_stacks[1]: owlat_monitoring_tenant is not supported on a host "
                        "with several stacks yet (upgrade.yml and monitoring.yml refuse such hosts): remove it from "
                        "the entry."]
