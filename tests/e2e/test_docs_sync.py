"""The documentation that lives in two places stays in step (issue 22).

Checked here:
- every configuration key in docs/config.md's tables ([sluice], [databases],
  [users]) is in man/sluice.ini.5's section of the same name, and the other
  way round;
- every long option `sluice --help` prints is in man/sluice.1, and every
  option the page describes is in --help;
- the version in src/core/version.h is the one of both man pages and of
  debian/changelog's latest entry.

No sluice process is started; these read files (and run --help once).
"""

import re
import subprocess

import pytest

import conftest
from conftest import REPO

pytestmark = pytest.mark.sluice_only

SECTIONS = {  # docs/config.md heading -> man page section heading
    "[sluice] / [pgbouncer]": "[sluice] SECTION",
    "[databases]": "[databases] SECTION",
    "[users]": "[users] SECTION",
}


def version():
    text = (REPO / "src" / "core" / "version.h").read_text()
    return re.search(r'#define SLUICE_VERSION "([^"]+)"', text).group(1)


def markdown_keys(heading):
    """Keys named in the first cell of each row of the section's table."""
    md = (REPO / "docs" / "config.md").read_text()
    start = md.index(f"\n## {heading}\n")
    end = md.find("\n## ", start + 1)
    keys = set()
    for line in md[start:end].splitlines():
        if line.startswith("| `"):
            first = line.split(" | ")[0]
            keys |= set(re.findall(r"`([^`]+)`", first))
    return keys


def man_keys(heading):
    """Keys in the bold tags (.TP paragraphs) of the man page's section."""
    roff = (REPO / "man" / "sluice.ini.5").read_text()
    start = roff.index(f'.SH "{heading}"\n')
    end = roff.find("\n.SH ", start + 1)
    keys = set()
    lines = roff[start:end].splitlines()
    for prev, line in zip(lines, lines[1:]):
        if prev == ".TP":
            tag = line.split(" (default")[0]
            keys |= {k.replace("\\-", "-") for k in re.findall(r"\\fB([^\\]+(?:\\-[^\\]+)*)\\fR", tag)}
    return keys


@pytest.mark.parametrize("md_heading", list(SECTIONS))
def test_config_keys_in_both(md_heading):
    in_md = markdown_keys(md_heading)
    in_man = man_keys(SECTIONS[md_heading])
    assert len(in_md) > 5, in_md
    only_md = sorted(in_md - in_man)
    only_man = sorted(in_man - in_md)
    assert not only_md and not only_man, (
        f"{md_heading}: documented in docs/config.md only: {only_md}; "
        f"in man/sluice.ini.5 only: {only_man}")


def test_long_options_in_man_page():
    r = subprocess.run([conftest.default_bin(), "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=10)
    assert r.returncode == 0
    in_help = set(re.findall(r"--[a-z]+", r.stdout))
    assert {"--daemon", "--version", "--help"} <= in_help, r.stdout
    roff = (REPO / "man" / "sluice.1").read_text()
    options = roff[roff.index(".SH OPTIONS"):roff.index(".SH SIGNALS")]
    in_man = set(re.findall(r"\\-\\-([a-z]+)", options))
    assert {o[2:] for o in in_help} == in_man


def test_versions_agree():
    v = version()
    for page in ("sluice.1", "sluice.ini.5"):
        th = next(line for line in (REPO / "man" / page).read_text().splitlines()
                  if line.startswith(".TH "))
        assert f'"sluice {v}"' in th, (page, th)
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"sluice ({v})"), first


def test_sections_in_both():
    """Every section docs/config.md documents has a section of the man page."""
    md = (REPO / "docs" / "config.md").read_text()
    roff = (REPO / "man" / "sluice.ini.5").read_text()
    for name in re.findall(r"^## (\[[a-z_]+\])", md, re.M):
        assert f'.SH "{name} SECTION"' in roff, name
