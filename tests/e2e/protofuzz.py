"""Differential protocol fuzzer: random extended/simple-protocol programs run
on direct PostgreSQL connections (the oracle) and through a pooler, where
several clients share one server. Each client must get through the pooler,
message for message, what PostgreSQL sent it on its own connection.

Used by test_protocol_fuzz.py. Terms:
  message  a Msg: the name of a conftest builder (msg_parse, ...) and its
           arguments, so that a program prints as Python that rebuilds it
  chunk    (pause in ms, messages): the messages are sent in one write,
           after the pause
  program  chunks, then a fixed tail: Sync, Query ROLLBACK (ends any open
           transaction), Query select 'sentinel-N'. The answers are read
           up to the sentinel's ReadyForQuery.
  session  the programs one client runs, one after the other, on one
           connection
  round    one session per client; through the pooler the sessions run at
           once, one thread each
  case     rounds run one after the other on the same pooler: what a
           failure needs to be replayed (a round may depend on what the
           pooler kept from the rounds before it)

The programs have no effects that one session could see in another (no
writes, no SET, nothing that pins a server), so the answers PostgreSQL gives
each client alone are the answers the client must get through the pooler,
however the pooler interleaves the clients. Every message is compared as
decode_msg gives it (errors: severity, SQLSTATE, text, detail, hint,
position), except ParameterStatus and NotificationResponse; nothing is
masked, so the pooler's own statement names (sluice_N) in an error text
are a failure.
"""

import collections
import dataclasses
import socket
import struct
import time

from conftest import (SKIP_MSG_TYPES, PgError, Worker, decode_msg, msg_bind, msg_close,
                      msg_describe, msg_execute, msg_flush, msg_parse, msg_query,
                      msg_sync, raw_connect, send_batch)

BUILDERS = {f.__name__: f for f in (msg_parse, msg_bind, msg_describe, msg_execute,
                                    msg_close, msg_flush, msg_sync, msg_query)}

# A read that waits longer than this for the next message is a wedge.
READ_TIMEOUT = 5.0
# Wedges in the minimiser: shorter, as every healthy answer there takes ms.
MINIMISE_READ_TIMEOUT = 1.0
# The minimiser's pause between writes (ms): enough for an answer to arrive.
EVEN_PAUSE = 20


@dataclasses.dataclass(frozen=True)
class Msg:
    """One frontend message, kept as its conftest builder call."""
    builder: str  # name of a conftest msg_* function
    args: tuple   # its positional arguments

    def wire(self):
        return BUILDERS[self.builder](*self.args)

    def __str__(self):
        return f"{self.builder}({', '.join(repr(a) for a in self.args)})"


def m(builder, *args):
    """m(msg_parse, "s1", "select 1"): a Msg for that builder call."""
    return Msg(builder.__name__, args)


@dataclasses.dataclass(frozen=True)
class Program:
    tag: int          # N of the sentinel query 'sentinel-N'; unique per generator
    chunks: tuple     # ((pause ms, (Msg, ...)), ...)
    tail_pause: int   # ms before the tail is sent

    def tail(self):
        return (m(msg_sync), m(msg_query, "ROLLBACK"),
                m(msg_query, f"select 'sentinel-{self.tag}'"))

    def writes(self):
        """Every write of the program, tail included: (pause ms, messages)."""
        return self.chunks + ((self.tail_pause, self.tail()),)

    def size(self):
        return sum(len(msgs) for _, msgs in self.writes())


def sessions(case):
    """(round index, client index, session) for every session of a case."""
    return [(r, c, s) for r, rnd in enumerate(case) for c, s in enumerate(rnd)]


def case_size(case):
    return sum(p.size() for _, _, session in sessions(case) for p in session)


# --------------------------------------------------------------------------
# the generator

STATEMENTS = ("", "s1", "s2")
PORTALS = ("", "p1")
# (text, number of parameters). Small on purpose: names collide and states
# repeat. The error texts fail at Parse (syntax, unknown table, two
# statements) or at Execute (division by zero).
TEXTS = (
    ("select 1 as one", 0),
    ("select $1::int + 1 as v", 1),
    ("select $1::text as t", 1),
    ("select g from generate_series(1,3) g", 0),  # with max_rows 1: PortalSuspended
    ("select pg_sleep(0.001)", 0),
    ("", 0),
    ("selec 1", 0),
    ("select * from no_such_table", 0),
    ("select 1; select 2", 0),
    ("select 1/0", 0),
    ("select 1/($1::int - 1) as q", 1),
    ("BEGIN", 0),
    ("COMMIT", 0),
    ("ROLLBACK", 0),
    ("DEALLOCATE s1", 0),
    ("DEALLOCATE ALL", 0),
    ("DISCARD ALL", 0),
)
# Parsed into the unnamed statement only (as a client library would).
SESSION_TEXTS = ("DEALLOCATE s1", "DEALLOCATE ALL", "DISCARD ALL")
# Ends each session with cleanup=True.
CLEANUP = m(msg_query, "DISCARD ALL")
# "x" is not an int: an error at Bind for $1::int.
PARAM_VALUES = ("1", "2", "x", None)

UNITS = {  # kind of unit -> weight
    "parse_bind_execute": 4,
    "parse": 2,
    "bind_execute": 3,
    "describe": 1.5,
    "execute": 1.5,
    "close": 1.5,
    "query": 2,
    "sync": 3,
    "flush": 1,
}


class Generator:
    """Random programs, reproducible from the seed of `rng`.

    named_statements=False is for a pooler that passes statement names
    through to a shared server (max_prepared_statements = 0): there a named
    statement, or the unnamed one after the client's transaction ended,
    may belong to another client, which a user of that setting accepts. So
    only the unnamed statement is parsed, and it is bound or described
    only after a Parse of it since the last Sync or Query (those end the
    transaction, and with it the client's hold on the server). Unknown
    names may still be used (they are unknown everywhere), and so may the
    portal p1: portals live only as long as their transaction, during
    which the client has the server to itself.

    cleanup=True ends every session with DISCARD ALL: with names passed
    through, statements outlive the client on the server, and the next
    session, whose direct connection is new, would find them there.
    """

    def __init__(self, rng, named_statements=True, cleanup=False):
        self.rng = rng
        self.named = named_statements
        self.cleanup = cleanup
        self.tag = 0
        self.params = {}            # statement name -> parameters of its last Parse
        self.unnamed_parsed = False  # a Parse of "" since the last Sync/Query

    def round(self, clients):
        """One session per client."""
        return [self.session() for _ in range(clients)]

    def session(self):
        """1-4 programs: a connection is reused for a few programs, so
        statement names outlive a program, then replaced."""
        self.params = {}
        programs = [self.program() for _ in range(self.rng.randint(1, 4))]
        if self.cleanup:
            programs.append(self._program([CLEANUP]))
        return programs

    def program(self):
        self.unnamed_parsed = False
        msgs = []
        for _ in range(self.rng.randint(1, 10)):
            msgs += self._unit()
        return self._program(msgs)

    def _program(self, msgs):
        """Cut the messages into writes at random places."""
        chunks, cur = [], []
        for msg in msgs:
            cur.append(msg)
            if self.rng.random() < 0.25:
                chunks.append((self._pause(), tuple(cur)))
                cur = []
        if cur:
            chunks.append((self._pause(), tuple(cur)))
        self.tag += 1
        return Program(self.tag, tuple(chunks), self._pause())

    def _pause(self):
        """0 half of the time, else 1-20 ms: sometimes the answer to the
        previous write reaches the pooler before the next write does."""
        return 0 if self.rng.random() < 0.5 else self.rng.randint(1, 20)

    def _unit(self):
        r = self.rng
        kind = r.choices(list(UNITS), weights=list(UNITS.values()))[0]
        if kind == "parse_bind_execute":
            portal = r.choice(PORTALS)
            out = [self._parse()]
            stmt = out[0].args[0]
            out.append(self._bind(stmt, portal))
            if r.random() < 0.3:
                out.append(m(msg_describe, "P", portal))
            out.append(self._execute(portal))
            if out[-1].args[1] == 1 and r.random() < 0.5:
                out.append(self._execute(portal))  # the rest of a suspended portal
            return out
        if kind == "parse":
            return [self._parse()]
        if kind == "bind_execute":
            portal = r.choice(PORTALS)
            stmt = self._used_statement()
            pre = [] if stmt != "" or self.unnamed_parsed or self.named else [self._parse("")]
            return pre + [self._bind(stmt, portal), self._execute(portal)]
        if kind == "describe":
            if r.random() < 0.5:
                return [m(msg_describe, "P", r.choice(PORTALS))]
            stmt = self._used_statement()
            if stmt == "" and not (self.named or self.unnamed_parsed):
                return [m(msg_describe, "P", r.choice(PORTALS))]
            return [m(msg_describe, "S", stmt)]
        if kind == "execute":
            return [self._execute(r.choice(PORTALS))]
        if kind == "close":
            if r.random() < 0.5:
                return [m(msg_close, "P", r.choice(PORTALS))]
            return [m(msg_close, "S", r.choice(STATEMENTS))]
        if kind == "query":
            self.unnamed_parsed = False  # a simple Query drops the unnamed statement
            return [m(msg_query, r.choice(TEXTS)[0])]
        if kind == "sync":
            self.unnamed_parsed = False
            return [m(msg_sync)] * r.choices((1, 2, 3), weights=(7, 2, 1))[0]
        return [m(msg_flush)]

    def _used_statement(self):
        """A statement name to bind or describe; in restricted mode s1/s2
        are never parsed, so they stand for unknown statements."""
        if self.named or self.unnamed_parsed:
            return self.rng.choice(STATEMENTS)
        return self.rng.choice(STATEMENTS[1:]) if self.rng.random() < 0.2 else ""

    def _parse(self, name=None):
        text, nparams = self.rng.choice(TEXTS)
        if name is None:
            name = "" if text in SESSION_TEXTS or not self.named else \
                self.rng.choice(STATEMENTS)
        self.params[name] = nparams
        if name == "":
            self.unnamed_parsed = True
        return m(msg_parse, name, text)

    def _bind(self, stmt, portal):
        """Mostly the right number of parameters for what was last parsed
        under that name, sometimes one too many or too few."""
        n = self.params.get(stmt, self.rng.randint(0, 1))
        if self.rng.random() < 0.15:
            n = n + 1 if n == 0 or self.rng.random() < 0.5 else n - 1
        values = tuple(self.rng.choice(PARAM_VALUES) for _ in range(n))
        return m(msg_bind, stmt, values, portal)

    def _execute(self, portal):
        return m(msg_execute, portal, self.rng.choice((0, 0, 1)))

    def allows(self, case):
        """Whether a case the minimiser shrank still keeps the rules above:
        the unnamed statement only, and only within its transaction
        (named_statements=False); DISCARD ALL at the end of every session
        that another round follows (cleanup=True)."""
        if self.cleanup and not all(s and _messages(s[-1]) == [CLEANUP]
                                    for rnd in case[:-1] for s in rnd):
            return False
        return self.named or all(self._unnamed_only(program) for rnd in case
                                 for s in rnd for program in s)

    @staticmethod
    def _unnamed_only(program):
        """The rule of named_statements=False, for one program."""
        parsed = False
        for msg in _messages(program, tail=True):
            if msg.builder in ("msg_sync", "msg_query"):
                parsed = False
            elif msg.builder == "msg_parse":
                if msg.args[0] != "":
                    return False
                parsed = True
            elif (msg.builder == "msg_bind" and msg.args[0] == "") or \
                    (msg.builder == "msg_describe" and msg.args == ("S", "")):
                if not parsed:
                    return False
        return True


def _messages(program, tail=False):
    """The program's messages in order, with or without the fixed tail."""
    writes = program.writes() if tail else program.chunks
    return [msg for _, msgs in writes for msg in msgs]


# --------------------------------------------------------------------------
# running and comparing

WEDGE = "Wedge"      # marker: no message within the read timeout
DROPPED = "Dropped"  # marker: the connection failed or was closed


def run_session(host, port, session, pauses=True, timeout=READ_TIMEOUT):
    """Run one client's programs on a new connection. Returns the decoded
    answers per program; a wedge or a lost connection ends the last list
    with a (WEDGE | DROPPED, text) marker and the session."""
    out = [[]]
    try:
        conn = raw_connect(host, port)
    except (OSError, PgError) as e:
        return [[(DROPPED, f"login failed: {e}")]]
    conn.sock.settimeout(timeout)
    # Each write its own segment, at once: Nagle's algorithm would hold a
    # write back until the previous one is acknowledged.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for n, program in enumerate(session):
            if n:
                out.append([])
            for pause, msgs in program.writes():
                if pauses and pause:
                    time.sleep(pause / 1000)
                send_batch(conn, [msg.wire() for msg in msgs])
            _read_program(conn, program.tag, out[-1])
    except TimeoutError:
        out[-1].append((WEDGE, f"no message within {timeout} s"))
    except OSError as e:
        out[-1].append((DROPPED, f"{type(e).__name__}: {e}"))
    finally:
        conn.close()
    return out


def _read_program(conn, tag, answers):
    """Read up to the ReadyForQuery after the sentinel's row."""
    sentinel = ("DataRow", (f"sentinel-{tag}",))
    seen = False
    while True:
        typ, body = conn.read()
        if typ in SKIP_MSG_TYPES:
            continue
        try:
            answers.append(decode_msg(typ, body))
        except (ValueError, IndexError, struct.error):
            answers.append(("Malformed", typ, body))
        seen = seen or answers[-1] == sentinel
        if seen and typ == "Z":
            return


def run_sessions(target, rnd, pauses=True, timeout=READ_TIMEOUT):
    """The sessions of a round at once, one thread each, on target (.host,
    .port)."""
    workers = [Worker(run_session, target.host, target.port, s, pauses, timeout)
               for s in rnd]
    for w in workers:
        w.start()
    limit = 30 + sum(len(s) for s in rnd) * (timeout + 1)
    return [w.get(timeout=limit) for w in workers]


def run_direct(pg, rnd):
    """The oracle: each session on its own PostgreSQL connection. The
    pauses are skipped; PostgreSQL's answers do not depend on them."""
    out = run_sessions(pg, rnd, pauses=False)
    for session, answers in zip(rnd, out):
        if answers[-1] and answers[-1][-1][0] in (WEDGE, DROPPED):
            raise RuntimeError(f"PostgreSQL itself did not answer ({answers[-1][-1]}); "
                               f"the generator made a program it cannot run:\n"
                               f"{repro_code([[session]])}")
    return out


def run_round(pg, target, rnd, timeout=READ_TIMEOUT):
    """(PostgreSQL's answers, the target's answers), both runs at once."""
    direct = Worker(run_direct, pg, rnd)
    direct.start()
    got = run_sessions(target, rnd, timeout=timeout)
    return direct.get(timeout=60), got


def run_case(pg, target, case, timeout=READ_TIMEOUT):
    """The rounds one after the other, up to the first that fails:
    (PostgreSQL's answers, the target's answers), each a list per round."""
    want, got = [], []
    for rnd in case:
        w, g = run_round(pg, target, rnd, timeout)
        want.append(w)
        got.append(g)
        if first_failure([w], [g]):
            break
    return want, got


@dataclasses.dataclass
class Failure:
    kind: str      # "mismatch", WEDGE or DROPPED
    round: int     # index of the round in its case
    client: int    # index of the first client whose answers differ
    program: int   # index of the program in its session
    index: int     # index of the first differing message in that program


def first_failure(want, got):
    """The first difference between PostgreSQL's answers and the pooler's
    (both: per round, per client, per program, the messages), or None.
    Among several clients, a mismatch is preferred to a wedge (a wedged
    client blocks the others, which then look wedged too)."""
    for r, (want_r, got_r) in enumerate(zip(want, got)):
        found = []
        for c, (w, g) in enumerate(zip(want_r, got_r)):
            for p in range(max(len(w), len(g))):
                wp = w[p] if p < len(w) else []
                gp = g[p] if p < len(g) else []
                if wp == gp:
                    continue
                i = next((i for i, (a, b) in enumerate(zip(wp, gp)) if a != b),
                         min(len(wp), len(gp)))
                kind = gp[i][0] if i < len(gp) and gp[i][0] in (WEDGE, DROPPED) else "mismatch"
                found.append(Failure(kind, r, c, p, i))
                break
        if found:
            return min(found, key=lambda f: f.kind != "mismatch")
    return None


# --------------------------------------------------------------------------
# the fuzzing loop

# Rounds kept for replaying a failure that needs what the pooler kept from
# earlier rounds (statements its server has prepared, for instance).
HISTORY = 5


@dataclasses.dataclass
class Result:
    rounds: int = 0
    programs: int = 0   # programs run through the pooler (each also run directly)
    messages: int = 0   # messages sent through the pooler (as many sent directly)
    elapsed: float = 0.0
    report: str = ""    # empty unless a failure was found

    def summary(self):
        return (f"{self.rounds} rounds, {self.programs} programs, {self.messages} messages "
                f"(each run on both sides) in {self.elapsed:.1f} s")


def fuzz(pg, target, gen, clients, seconds, start_pooler=None, label=""):
    """Run random rounds on `target` until `seconds` have passed or one
    fails. On a failure, shrink it (with start_pooler, a callable that
    starts a fresh pooler with .host, .port and .stop()) and put the repro
    in the report."""
    result = Result()
    history = collections.deque(maxlen=HISTORY)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        rnd = gen.round(clients)
        want, got = run_round(pg, target, rnd)
        result.rounds += 1
        result.programs += sum(len(s) for s in rnd)
        result.messages += case_size([rnd])
        failure = first_failure([want], [got])
        if failure:
            result.elapsed = time.monotonic() - t0
            header = f"protofuzz {label}: {failure.kind} after {result.summary()}"
            if start_pooler is None:
                body = describe([rnd], [want], [got], failure)
            else:
                body = Minimiser(pg, start_pooler, gen).report(list(history), rnd, want, got,
                                                               failure)
            result.report = header + "\n\n" + body
            return result
        history.append(rnd)
    result.elapsed = time.monotonic() - t0
    return result


# --------------------------------------------------------------------------
# minimising

class Minimiser:
    """Shrinks a failing case while it keeps failing the same way, each
    attempt on a fresh pooler so that the repro needs nothing that came
    before it. It starts from the smallest case that fails again: the
    failing client alone (most bugs need one client), else its whole
    round, else the round after the rounds that came before it on the
    same pooler."""

    SECONDS = 90     # time budget for shrinking
    ATTEMPTS = 400   # and attempt budget

    def __init__(self, pg, start_pooler, gen):
        self.pg = pg
        self.start_pooler = start_pooler
        self.gen = gen
        self.attempts = 0
        self.deadline = time.monotonic() + self.SECONDS
        self.notes = []  # pooler process problems (crash, sanitizer) seen on the way

    def run(self, case):
        """(want, got) for one attempt on a fresh pooler."""
        self.attempts += 1
        pooler = self.start_pooler()
        try:
            return run_case(self.pg, pooler, case, MINIMISE_READ_TIMEOUT)
        finally:
            for problem in pooler.stop():
                if problem not in self.notes:
                    self.notes.append(problem)

    def fails(self, case, kind, tries):
        """(want, got, failure) of the first of `tries` runs that fails with
        `kind`, or None. Timing may decide whether a bug shows, so a passing
        run is retried."""
        for _ in range(tries):
            want, got = self.run(case)
            failure = first_failure(want, got)
            if failure and failure.kind == kind:
                return want, got, failure
        return None

    def budget_left(self):
        return self.attempts < self.ATTEMPTS and time.monotonic() < self.deadline

    def report(self, history, rnd, want, got, failure):
        """The minimised repro of `rnd`, which failed after the rounds in
        `history`, with its answers."""
        t0 = time.monotonic()
        others = [c for c in range(len(rnd)) if c != failure.client]
        # (case, tries): a case with several clients fails less reliably
        starts = [([[rnd[c]]], 2) for c in [failure.client] + others]
        if len(rnd) > 1:
            starts.append(([rnd], 3))
        if history:
            starts.append((history + [rnd], 3))
        for case, tries in starts:
            found = self.fails(case, failure.kind, tries)
            if found:
                break
        else:
            return ("did not fail again on a fresh pooler, after the "
                    f"{len(history)} round(s) before it either (timing, or state left by "
                    "older rounds); the round as it failed:\n\n"
                    + describe([rnd], [want], [got], failure))
        size0 = (len(case), len(sessions(case)), case_size(case))
        case, found = self.shrink(case, failure.kind, tries, found)
        text = (f"minimised from {size0[0]} round(s) / {size0[1]} session(s) / {size0[2]} "
                f"messages to {len(case)} / {len(sessions(case))} / {case_size(case)} in "
                f"{self.attempts} attempts ({time.monotonic() - t0:.1f} s); it fails on a "
                f"fresh pooler\n\n")
        text += describe(case, *found)
        if self.notes:
            text += "\n\npooler problems seen while minimising:\n" + "\n".join(self.notes)
        return text

    def shrink(self, case, kind, tries, found):
        """Greedy: even out the pauses, drop rounds, sessions, programs,
        writes and single messages, then merge writes, for as long as any
        of that helps."""
        progress = True
        while progress and self.budget_left():
            progress = False
            for edits in (_even_pauses, _without_round, _without_session, _without_program,
                          _without_chunk, _without_message, _merged_chunks):
                j = len(edits(case))
                while j > 0 and self.budget_left():
                    j -= 1
                    candidates = edits(case)
                    if j >= len(candidates):
                        continue
                    smaller = candidates[j]
                    if not self.gen.allows(smaller):
                        continue
                    again = self.fails(smaller, kind, tries)
                    if again:
                        case, found, progress = smaller, again, True
        return case, found


# Each edit function returns every case that differs from `case` by one edit
# of its kind (a list, indexed from the front; shrink walks it from the back
# so that the indexes before an applied edit stay valid).

def _replace_session(case, r, c, session):
    """case with session c of round r replaced (None: removed)."""
    rnd = case[r][:c] + ([session] if session is not None else []) + case[r][c + 1:]
    return case[:r] + [rnd] + case[r + 1:]


def _replace_program(case, r, c, p, program):
    session = case[r][c]
    return _replace_session(case, r, c, session[:p] + [program] + session[p + 1:])


def _programs(case):
    """(round, client, program index, program) for every program."""
    return [(r, c, p, prog) for r, c, s in sessions(case) for p, prog in enumerate(s)]


def _even_pauses(case):
    """EVEN_PAUSE before every write but a program's first. With the
    generator's pauses (0 half of the time) a bug that depends on timing
    shows only now and then; with these, the pooler has dealt with each
    write, and with what the server answered to it, before the next one
    comes, so the repro fails every time."""
    def even(p):
        return Program(p.tag, tuple((EVEN_PAUSE if k else 0, msgs)
                                    for k, (_, msgs) in enumerate(p.chunks)),
                       EVEN_PAUSE if p.chunks else 0)
    evened = [[[even(p) for p in s] for s in rnd] for rnd in case]
    return [] if evened == case else [evened]


def _without_round(case):
    return [case[:r] + case[r + 1:] for r in range(len(case))] if len(case) > 1 else []


def _without_session(case):
    return [_replace_session(case, r, c, None)
            for r, c, _ in sessions(case) if len(case[r]) > 1]


def _without_program(case):
    return [_replace_session(case, r, c, s[:p] + s[p + 1:])
            for r, c, s in sessions(case) if len(s) > 1 for p in range(len(s))]


def _without_chunk(case):
    return [_replace_program(case, r, c, p, dataclasses.replace(
                prog, chunks=prog.chunks[:k] + prog.chunks[k + 1:]))
            for r, c, p, prog in _programs(case) for k in range(len(prog.chunks))]


def _without_message(case):
    out = []
    for r, c, p, prog in _programs(case):
        for k, (pause, msgs) in enumerate(prog.chunks):
            if len(msgs) < 2:
                continue  # _without_chunk covers it
            for i in range(len(msgs)):
                chunk = (pause, msgs[:i] + msgs[i + 1:])
                out.append(_replace_program(case, r, c, p, dataclasses.replace(
                    prog, chunks=prog.chunks[:k] + (chunk,) + prog.chunks[k + 1:])))
    return out


def _merged_chunks(case):
    """Two consecutive writes of a program sent as one (fewer lines to read)."""
    out = []
    for r, c, p, prog in _programs(case):
        for k in range(len(prog.chunks) - 1):
            (pause, a), (_, b) = prog.chunks[k], prog.chunks[k + 1]
            out.append(_replace_program(case, r, c, p, dataclasses.replace(
                prog, chunks=prog.chunks[:k] + ((pause, a + b),) + prog.chunks[k + 2:])))
    return out


# --------------------------------------------------------------------------
# printing a repro

def repro_code(case):
    """The case as Python with the conftest helpers. The sessions of a
    round run at once, each in its own thread; a round starts when the one
    before it has finished."""
    lines = ["# conftest's raw_connect, send_batch and msg_*; HOST, PORT: the pooler's"]
    for r, c, session in sessions(case):
        if len(case) > 1 and c == 0:
            lines.append(f"# ---- round {r}")
        if len(case[r]) > 1:
            lines.append(f"# client {c} (in its own thread)")
        lines.append(f"c{c} = raw_connect(HOST, PORT)")
        for program in session:
            for pause, msgs in program.writes():
                if pause:
                    lines.append(f"time.sleep({pause / 1000})")
                lines.append(f"send_batch(c{c}, [")
                lines += [f"    {msg}," for msg in msgs]
                lines.append("])")
            lines.append(f"# read up to the ReadyForQuery after the row 'sentinel-{program.tag}'")
        lines.append(f"c{c}.close()")
    return "\n".join(lines)


def _fmt(msg):
    return " ".join(str(x) for x in msg) if msg[0] in (WEDGE, DROPPED) else repr(msg)


def describe(case, want, got, failure):
    """Repro, both transcripts of the failing client and where they part."""
    f = failure
    w, g = want[f.round][f.client], got[f.round][f.client]
    where = f"round {f.round}, client {f.client}" if len(case) > 1 else f"client {f.client}"
    out = [repro_code(case), "",
           f"{where}: first difference in program {f.program}, message {f.index}:"]
    wp, gp = w[f.program], g[f.program] if f.program < len(g) else []
    out.append("  PostgreSQL: " + (_fmt(wp[f.index]) if f.index < len(wp) else "(nothing more)"))
    out.append("  pooler:     " + (_fmt(gp[f.index]) if f.index < len(gp) else "(nothing more)"))
    leaks = [msg for prog in g for msg in prog if "sluice_" in repr(msg)]
    if leaks:
        out.append("  the pooler LEAKS its internal statement names (sluice_N): "
                   + _fmt(leaks[0]))
    for name, transcript in (("PostgreSQL", w), ("pooler", g)):
        out.append(f"\n{where}, {name}:")
        for p, answers in enumerate(transcript):
            out.append(f"  -- program {p}")
            for i, msg in enumerate(answers):
                mark = ">>" if (p, i) == (f.program, f.index) else "  "
                out.append(f"  {mark}{i:3} {_fmt(msg)}")
    return "\n".join(out)
