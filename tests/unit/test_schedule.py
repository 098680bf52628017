"""The step schedule is written once (compile/schedule.py): the engine steps it phase by phase,
the compiled loop is rendered from it; both take their phases in its order."""
import re

import pytest

from nmlsim.compile.schedule import START, STEP, run_start, run_steps


def _recording_ops(log, acted=(), skip=()):
    def op(name):
        def f(k):
            log.append((name, k))
            if name == "last":
                return k == 2
            return name in acted
        return f
    return {ph.name: (None if ph.name in skip else op(ph.name)) for ph in STEP}


def test_steps_follow_the_schedule_and_stop_after_the_last_row():
    log = []
    run_steps(_recording_ops(log, skip={"noise", "exchange"}), nsteps=2)
    order = [ph.name for ph in STEP if ph.name not in ("noise", "exchange")]
    assert log == [(n, k) for k in (0, 1) for n in order] + [(n, 2) for n in ("derived", "record", "last")]


def test_a_refresh_phase_that_acted_has_the_derived_values_computed_again():
    log = []
    run_steps(_recording_ops(log, acted={"due", "events"}), nsteps=1)
    names = [n for n, k in log if k == 0]
    # (refresh phases that acted: derived again before the step goes on; others never)
    assert names[names.index("due") + 1] == "derived"
    assert names[names.index("events") + 1] == "exchange"
    assert names.count("derived") == 2


def test_the_refresh_can_be_its_own_op():
    """A refresh need not be the derived phase's op (the engine's keeps the event time the
    phase that acted set)."""
    log = []
    ops = _recording_ops(log, acted={"watch"})
    ops["refresh"] = lambda k: log.append(("refresh", k))
    run_steps(ops, nsteps=1)
    names = [n for n, k in log if k == 0]
    assert names[names.index("watch") + 1] == "refresh" and names.count("derived") == 1


def test_unknown_phases_are_refused():
    with pytest.raises(ValueError, match="no phase named"):
        run_steps({"derived": lambda k: None, "integrate": lambda k: None}, 1)
    with pytest.raises(ValueError, match="no phase named"):
        run_start({"record": lambda k: None})
    log = []
    run_start({ph.name: (lambda k, n=ph.name: log.append(n)) for ph in START})
    assert log == [ph.name for ph in START]


#: a line of the compiled loop that only the primitive of each phase writes
MARKS = {"derived": r"^\s+_derived\(t", "record": r"TB\[r, j\]", "last": r"return e \+ 1$",
         "drain": r"SBN\[0\] \+ need", "due": r"_due\(e \+ 1", "update": r"^\s+_(d?step)\(t",
         "clock": r"CLK\[1\] = CLK\[1\] \+ dt", "events": r"if _events\(ee", "check": r"ee % check == 0"}


def _phase_lines(src):
    lines = src.split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("def _run("))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("def ")), len(lines))
    body = lines[start:end]
    found = {}
    for name, pat in MARKS.items():
        hits = [i for i, ln in enumerate(body) if re.search(pat, ln)]
        if hits:
            found[name] = hits[0]
    return found


@pytest.mark.parametrize("fused,due", [(False, False), (True, False), (False, True)])
def test_the_compiled_loop_is_rendered_in_the_schedules_order(fused, due):
    from nmlsim.backends.numba.loop import render_run, run_phases
    src = "\n".join(render_run(run_phases("a0", "_dstep" if fused else "_step", derived=not fused, due=due,
                                          finite=["            pass"]),
                               "a0", refresh=None if fused else "_derived(t, a0)"))
    compile(src, "<run>", "exec")  # (valid Python)
    at = _phase_lines(src)
    names = [ph.name for ph in STEP if ph.name in at]
    assert ("due" in at) == due
    assert sorted(names, key=at.get) == names
    if due and not fused:  # the refresh after jLEMS's delayed events
        assert "if _acted:" in src


def test_a_models_compiled_loop_follows_the_schedule():
    pytest.importorskip("numba")
    from nmlsim.engine.simulator import Simulator
    from nmlsim.library import build
    from nmlsim.compile.build import build_groups
    net = build("coba_lif", size=40, seed=1)
    for method in ("euler", "exp_euler"):
        sim = Simulator(build_groups(net), 1e-4, method=method, seed=1, backend="numba")
        at = _phase_lines(sim.kernels.source)
        names = [ph.name for ph in STEP if ph.name in at]
        assert {"derived", "record", "last", "update", "clock", "events"} <= set(names)
        assert sorted(names, key=at.get) == names
        assert (method == "euler") == ("due" in at)


def test_an_unknown_backend_is_one_line_error():
    """The backends registry names what there is (the CLI's --backend choices come from it)."""
    from nmlsim.backends import BACKENDS, get_backend
    from nmlsim.errors import SimulationError
    assert set(BACKENDS) == {"numpy", "numba"}
    with pytest.raises(SimulationError, match=r"^unknown backend 'gpu' \(numpy or numba\)$"):
        get_backend("gpu")
    assert get_backend("numpy").name == "numpy"
