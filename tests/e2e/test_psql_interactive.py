"""psql driven through its standard input, as a user would type."""

import re


def test_psql_stdin_session(sluice, helpers):
    s = sluice()
    table = helpers.unique("e2e_psql")
    script = "\n".join([
        r"\conninfo",
        f"create table {table} (id int primary key, note text);",
        f"insert into {table}",
        "  values (1, 'one'),",
        "         (2, 'two');",
        "select 40 +",
        "       2 as answer;",
        r"\d",
        f"select count(*) as n from {table};",
        f"drop table {table};",
        r"\q",
        "select 'after quit';",
        "",
    ])
    r = s.psql("-v", "ON_ERROR_STOP=1", input=script)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert re.search(r'You are connected to database "sluicedb" as user "sluice_test" '
                     rf'on host "127\.0\.0\.1" at port "{s.port}"', out), out
    assert "INSERT 0 2" in out
    assert re.search(r"answer\s*\n-+\s*\n\s*42\s*\n\(1 row\)", out), out
    assert re.search(rf"public\s*\|\s*{table}\s*\|\s*table\s*\|\s*sluice_test", out), out
    assert re.search(r"n\s*\n-+\s*\n\s*2\s*\n", out), out
    assert "DROP TABLE" in out
    assert "after quit" not in out
    assert r.stderr == "", r.stderr


def test_psql_stdin_error_continues(sluice):
    """Without ON_ERROR_STOP psql reports an error and goes on."""
    s = sluice()
    r = s.psql(input="select 1/0;\nselect 'next' as v;\n\\q\n")
    assert r.returncode == 0
    assert "division by zero" in r.stderr
    assert re.search(r"v\s*\n-+\s*\n\s*next", r.stdout), r.stdout
