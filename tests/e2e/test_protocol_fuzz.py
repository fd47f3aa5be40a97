"""Differential protocol fuzzing (protofuzz.py): random Parse/Bind/Describe/
Execute/Close/Flush/Sync/Query programs, sent straight to PostgreSQL and
through sluice in transaction mode, where the clients share one server. Each
client must get what PostgreSQL sent it. The first mismatch, wedge or lost
connection fails the test with a minimised repro.

PROTOFUZZ_SECONDS (default 30) is the fuzzing time of the whole file, shared
equally by the configurations below; PROTOFUZZ_SEED (default random, always
printed) replays the same programs (what the clients' timing does with them
may still differ). A long run:
    PROTOFUZZ_SECONDS=600 scripts/run-e2e.sh tests/e2e/test_protocol_fuzz.py
"""

import os
import random
import sys

import pytest

import protofuzz

# (max_prepared_statements, clients). 200: sluice keeps each client's
# statements to itself; with 2, three clients make it evict and prepare
# again all the time. 0: names pass through to the shared server.
CONFIGS = [(200, 1), (200, 3), (2, 3), (0, 1), (0, 3)]
SECONDS = float(os.environ.get("PROTOFUZZ_SECONDS", "30"))
PER_CONFIG = SECONDS / len(CONFIGS)
SEED = int(os.environ.get("PROTOFUZZ_SEED") or random.randrange(1 << 32))
# Room for minimising a failure and for starting and stopping processes.
TIMEOUT = int(PER_CONFIG + protofuzz.Minimiser.SECONDS + 120)


def show(capsys, line):
    """Write to the terminal even under pytest's capture, and from an xdist
    worker (whose stdout is not the terminal's, but its stderr is)."""
    with capsys.disabled():
        print(line, file=sys.stderr, flush=True)


@pytest.mark.sluice_only
@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("max_prepared, clients", CONFIGS)
def test_protocol_fuzz(sluice, pg, capsys, max_prepared, clients):
    """With max_prepared_statements = 0 and several clients, the programs use
    only the unnamed statement, and only within a transaction: named
    statements cannot work across a shared server then (PgBouncer 1.18's
    behaviour, which a user of that setting accepts)."""
    cfg = {"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0,
           "query_wait_timeout": 30, "max_prepared_statements": max_prepared}
    named = max_prepared > 0 or clients == 1
    gen = protofuzz.Generator(random.Random(SEED), named_statements=named,
                              cleanup=max_prepared == 0)
    label = f"max_prepared_statements={max_prepared}, {clients} client(s), PROTOFUZZ_SEED={SEED}"
    show(capsys, f"\nprotofuzz {label}: fuzzing for {PER_CONFIG:g} s")
    result = protofuzz.fuzz(pg, sluice(cfg), gen, clients, PER_CONFIG,
                            start_pooler=lambda: sluice(cfg), label=label)
    show(capsys, f"\nprotofuzz {label}: {result.summary()}")
    if result.report:
        pytest.fail(result.report, pytrace=False)


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("named", [True, False])
def test_protocol_fuzz_oracle_agrees_with_itself(pg, capsys, named):
    """The fuzzer against PostgreSQL on both sides, the clients at once: any
    difference would be nondeterminism in PostgreSQL's answers (a notice
    that depends on timing, a pid), which would make every other failure
    here suspect."""
    gen = protofuzz.Generator(random.Random(SEED), named_statements=named)
    result = protofuzz.fuzz(pg, pg, gen, 3, max(3.0, SECONDS / 10),
                            label=f"PostgreSQL vs PostgreSQL, PROTOFUZZ_SEED={SEED}")
    show(capsys, f"\nprotofuzz PostgreSQL vs itself: {result.summary()}")
    assert not result.report, result.report
