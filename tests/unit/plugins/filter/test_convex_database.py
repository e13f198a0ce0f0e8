"""The database a stack's backend uses (upstream: the instance name, '-' as '_'), and stacks that would share one."""

from ansible_collections.owlat.selfhost.plugins.filter.convex_database import database_of
from ansible_collections.owlat.selfhost.plugins.filter.shared_database_problems import shared_database_problems


def test_sqlite_has_no_database_on_a_server():
    assert database_of("", "", "acme") == ""


def test_the_database_is_the_instance_name_with_underscores_and_never_the_credentials():
    assert database_of("postgresql://convex:s3cret@PG.example.net:6432", "", "acme-eu") == "postgres://pg.example.net:6432/acme_eu"
    assert database_of("postgres://convex@pg.example.net/", "", "") == "postgres://pg.example.net:5432/convex_self_hosted"
    assert database_of("", "mysql://convex:pw@db.example.net", "acme") == "mysql://db.example.net:3306/acme"


def test_a_port_that_is_no_number_is_kept_as_given():
    assert database_of("postgres://convex@pg:port", "", "a") == "postgres://pg:port/a"


def test_two_stacks_on_one_database_are_named_with_the_fix():
    claims = [{"database": "postgres://pg:5432/convex_self_hosted", "where": "stack b on mail2"},
              {"database": "postgres://pg:5432/convex_self_hosted", "where": "stack a on mail1"},
              {"database": "postgres://pg:5432/c", "where": "stack c on mail1"},
              {"database": "", "where": "stack d on mail1"}, {"database": "", "where": "stack e on mail2"}]
    assert shared_database_problems(claims) == [
        "database postgres://pg:5432/convex_self_hosted would be used by stack a on mail1 and stack b on mail2: upstream's "
        "lease lets one backend use a database (the newer one takes it over, the older one stops). Give each of these "
        "stacks its own owlat_convex_instance_name (the database is that name with '-' as '_'; create it on the server "
        "first)."]


def test_one_stack_per_database_is_fine():
    assert shared_database_problems([{"database": "postgres://pg:5432/a", "where": "stack a on m"},
                                     {"database": "postgres://pg:5432/b", "where": "stack b on m"}]) == []
