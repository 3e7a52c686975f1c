"""The pure parts of a session's life, without a kernel: the lifecycle table, the bounded cell
history, the cell outcome, and the builders that turn an outcome and outputs into the result."""

from __future__ import annotations

import pytest

from python_mcp_server.kernels import Reply
from python_mcp_server.kernels.backend import epoch
from python_mcp_server.kernels.messages import ErrorOutput, StreamOutput
from python_mcp_server.services.displays import RichOutputs
from python_mcp_server.services.incarnations import Incarnations
from python_mcp_server.services.lifecycle import ALLOWED, InvalidTransition, Lifecycle
from python_mcp_server.services.lifecycle import SessionState as S
from python_mcp_server.services.outcome import (
    CELL_KEY,
    CellOutcome,
    DeathCause,
    KernelDeath,
    interrupt_landed,
    repaired_streams,
)
from python_mcp_server.services.outputs import OutputCollector
from python_mcp_server.services.records import CellHistory, CellRecord, KernelReplaced
from python_mcp_server.services.results import (
    KERNEL_DIED,
    CellOutputs,
    build_result,
    cell_record,
    death_note,
    kernel_notes,
    output_notes,
)

# ------------------------------------------------------------------- lifecycle


def test_a_session_starts_in_starting_and_becomes_idle() -> None:
    life = Lifecycle()
    assert life.state is S.STARTING
    assert life.public(kernel_exited=False) == "starting"
    life.move(S.IDLE)
    assert life.public(kernel_exited=False) == "idle"


def test_a_cell_runs_is_interrupted_and_settles_back_to_idle() -> None:
    life = Lifecycle(S.IDLE)
    life.move(S.BUSY)
    assert life.running
    life.move(S.INTERRUPTING)
    assert life.running
    assert life.public(kernel_exited=False) == "busy"
    life.settle()
    assert life.state is S.IDLE
    assert not life.running


def test_an_interrupt_marks_only_a_running_cell() -> None:
    for state, after in ((S.BUSY, S.INTERRUPTING), (S.INTERRUPTING, S.INTERRUPTING)):
        life = Lifecycle(state)
        life.interrupting()
        assert life.state is after
    for state in (S.IDLE, S.RESTARTING, S.DEAD, S.CLOSED, S.STARTING):
        life = Lifecycle(state)
        life.interrupting()
        assert life.state is state


def test_settle_leaves_a_session_that_something_else_moved() -> None:
    for state in (S.RESTARTING, S.DEAD, S.CLOSED, S.IDLE):
        life = Lifecycle(state)
        life.settle()
        assert life.state is state


def test_a_restart_shows_as_starting_and_a_dead_kernel_as_dead() -> None:
    life = Lifecycle(S.BUSY)
    life.move(S.RESTARTING)
    assert life.public(kernel_exited=True) == "starting"
    life.move(S.DEAD)  # the new kernel did not start
    assert life.public(kernel_exited=True) == "dead"
    life.move(S.RESTARTING)
    life.move(S.IDLE)
    assert life.public(kernel_exited=False) == "idle"


def test_a_kernel_that_ended_shows_as_dead_before_anyone_noticed() -> None:
    assert Lifecycle(S.IDLE).public(kernel_exited=True) == "dead"
    assert Lifecycle(S.BUSY).public(kernel_exited=True) == "dead"
    assert Lifecycle(S.STARTING).public(kernel_exited=True) == "starting"


def test_closed_is_final() -> None:
    life = Lifecycle(S.IDLE)
    life.move(S.CLOSED)
    assert life.closed
    assert not life.live
    for target in S:
        with pytest.raises(InvalidTransition, match="cannot go from closed to"):
            life.move(target)


@pytest.mark.parametrize("current", list(S))
def test_every_move_outside_the_table_is_refused(current: S) -> None:
    for target in S:
        life = Lifecycle(current)
        if target in ALLOWED[current]:
            life.move(target)
            assert life.state is target
        else:
            with pytest.raises(InvalidTransition) as caught:
                life.move(target)
            assert (caught.value.current, caught.value.target) == (current, target)
            assert life.state is current


def test_every_state_can_be_closed_except_closed() -> None:
    assert all(S.CLOSED in ALLOWED[s] for s in S if s is not S.CLOSED)


def test_a_starting_session_cannot_run_a_cell() -> None:
    with pytest.raises(InvalidTransition):
        Lifecycle().move(S.BUSY)


# ---------------------------------------------------------------- cell history


def _cell(size: int, code: str = "x") -> CellRecord:
    return CellRecord(code=code, execution_count=1, outputs=[], status="ok", size=size)


def test_the_history_drops_the_oldest_cells_over_its_count() -> None:
    history = CellHistory(max_cells=2, max_bytes=1000)
    for code in "abc":
        history.append(_cell(1, code))
    assert [c.code for c in history.cells] == ["b", "c"]
    assert history.dropped == 1
    assert history.bytes_held == 2


def test_the_history_drops_the_oldest_cells_over_its_bytes() -> None:
    history = CellHistory(max_cells=10, max_bytes=100)
    history.append(_cell(60, "a"))
    history.append(_cell(60, "b"))
    assert [c.code for c in history.cells] == ["b"]
    assert (history.dropped, history.bytes_held) == (1, 60)


def test_the_history_always_keeps_the_newest_cell() -> None:
    history = CellHistory(max_cells=10, max_bytes=100)
    history.append(_cell(500, "huge"))
    assert [c.code for c in history.cells] == ["huge"]
    assert history.dropped == 0


def _kind(entry: CellRecord | KernelReplaced) -> str:
    return entry.code if isinstance(entry, CellRecord) else f"restart {entry.generation}"


def test_a_restart_is_marked_after_the_cell_that_ran_in_the_old_kernel() -> None:
    history = CellHistory()
    history.mark(KernelReplaced(0.0, "restart_kernel was called", 1))  # before any cell: nothing
    history.append(CellRecord("a", 1, [], "ok", generation=1))
    history.mark(KernelReplaced(0.0, "restart_kernel was called", 2))
    history.append(CellRecord("b", 1, [], "ok", generation=2))
    # b's kernel was replaced while it ran (a timeout): the mark comes first, the cell goes above
    history.mark(KernelReplaced(0.0, "a cell ran past its time limit", 3))
    history.append(CellRecord("c", 1, [], "timeout", generation=2))
    history.append(CellRecord("d", 1, [], "ok", generation=3))
    assert [_kind(e) for e in history.entries] == ["a", "restart 2", "b", "c", "restart 3", "d"]
    assert [c.code for c in history.cells] == ["a", "b", "c", "d"]


def test_a_restart_mark_reads_as_a_line_between_the_kernels() -> None:
    at = 3600 + 2 * 60 + 3.5
    assert KernelReplaced(at, "exit() was called", 2).text() == (
        "— kernel restarted at 01:02:03 UTC (exit() was called); the cells below ran in a new "
        "kernel; variables from the cells above are gone —"
    )
    assert KernelReplaced(at, "restart_kernel was called", 2, ("a", "b")).text() == (
        "— kernel restarted at 01:02:03 UTC (restart_kernel was called); the cells below ran in "
        "a new kernel; variables carried over: a, b —"
    )


def test_marks_go_with_the_oldest_cells_and_count_toward_the_bound() -> None:
    history = CellHistory(max_cells=3, max_bytes=1000)
    history.append(_cell(1, "a"))
    history.mark(KernelReplaced(0.0, "restart_kernel was called", 1))
    history.append(CellRecord("b", 1, [], "ok", size=1, generation=1))
    history.append(CellRecord("c", 1, [], "ok", size=1, generation=1))
    assert [_kind(e) for e in history.entries] == ["b", "c"]
    assert (history.dropped, history.bytes_held) == (1, 2)


# ---------------------------------------------------------------- cell outcome


def _outcome(**changes: object) -> CellOutcome:
    return CellOutcome(submitted_at=0.0, generation=1).but(**changes)


def test_an_outcome_with_a_death_exit_or_restart_lost_the_state() -> None:
    assert _outcome().state_kept
    assert not _outcome(death=KernelDeath("gone", "replaced")).state_kept
    assert not _outcome(exited=True).state_kept
    assert not _outcome(overran="restarted").state_kept
    assert _outcome(overran="interrupted").state_kept


def test_the_outcome_status_comes_from_the_kernel_side() -> None:
    assert _outcome().status == "ok"
    assert _outcome(overran="interrupted").status == "timeout"
    assert _outcome(death=KernelDeath("gone", "replaced")).status == "error"
    assert _outcome(reply=Reply("error", {})).status == "error"
    assert _outcome(reply=Reply("ok", {})).status == "ok"


def test_an_interrupt_stopped_the_cell_only_if_the_kernel_says_so_or_the_reply_came_later() -> None:
    def reply(report: object = None, made_at: float | None = None) -> Reply:
        metadata = {CELL_KEY: report} if report is not None else {}
        return Reply("ok", {}, metadata, made_at=made_at)

    assert interrupt_landed(reply({"interrupt": "landed"}, made_at=1.0), sent_at=2.0)
    assert not interrupt_landed(reply({"interrupt": "outside"}, made_at=3.0), sent_at=2.0)
    assert not interrupt_landed(reply({"interrupt": None}), sent_at=2.0)
    # a kernel without the extension: the reply's date decides
    assert not interrupt_landed(reply(made_at=1.0), sent_at=2.0)
    assert interrupt_landed(reply(made_at=3.0), sent_at=2.0)
    assert interrupt_landed(reply(), sent_at=2.0)


def test_jupyter_timestamps_read_as_epoch_seconds() -> None:
    assert epoch("2026-01-02T03:04:05.250000Z") == 1767323045.25
    assert epoch("2026-01-02T03:04:05.250000+00:00") == 1767323045.25
    assert epoch("2026-01-02T03:04:05.25") == 1767323045.25  # naive stamps are UTC
    assert epoch("yesterday") is None
    assert epoch(None) is None


def test_repaired_streams_are_read_from_the_cell_report() -> None:
    report = {"repaired": [{"stream": "stdout", "was": "None"}, "junk"]}
    assert repaired_streams(Reply("ok", {}, {CELL_KEY: report})) == [("stdout", "None")]
    assert repaired_streams(Reply("ok", {}, {CELL_KEY: "junk"})) == []
    assert repaired_streams(None) == []


# ------------------------------------------------------------- result builders


def test_kernel_notes_keep_their_order() -> None:
    outcome = _outcome(notices=("restarted earlier.", "late output."), overran="interrupted")
    assert kernel_notes(outcome, 2.5, output_seen=False) == [
        "restarted earlier.",
        "late output.",
        "The code ran longer than 2.5 s; interrupted, state kept.",
    ]


def test_a_timeout_that_needed_a_restart_says_the_state_is_gone() -> None:
    assert kernel_notes(_outcome(overran="restarted"), 1, output_seen=False) == [
        (
            "The code ran longer than 1 s; it did not stop when interrupted, so the kernel was "
            "restarted: restarted, state lost (all variables are gone)."
        )
    ]


def test_an_exit_is_told() -> None:
    assert kernel_notes(_outcome(exited=True), 1, output_seen=False) == [
        (
            "The code asked the kernel to exit (exit() or quit()), so it was restarted: all "
            "variables were lost. Use restart_kernel to do this on purpose."
        )
    ]


@pytest.mark.parametrize(
    ("cause", "start"),
    [
        ("closed", "The session was deleted (delete_session) while this code ran"),
        ("restarted", "The kernel was restarted (restart_kernel) while this code ran"),
        ("shutdown", "The server is shutting down and this cell did not stop"),
    ],
)
def test_a_death_someone_caused_says_who(cause: DeathCause, start: str) -> None:
    death = KernelDeath("kernel 'a' died", cause)
    assert death_note(death, output_seen=True).startswith(start)


def test_a_death_that_was_replaced_keeps_the_kernels_last_words() -> None:
    death = KernelDeath("The kernel was killed by SIGKILL.", "replaced", "x" * 500 + "bye")
    note = death_note(death, output_seen=True)
    assert note == (
        "The kernel was killed by SIGKILL. It was restarted; all variables were lost. Output "
        f"produced before the death is included. Its last output: {('x' * 500 + 'bye')[-400:]}"
    )
    assert death_note(KernelDeath("Gone.", "replaced"), output_seen=False) == (
        "Gone. It was restarted; all variables were lost."
    )


def test_output_notes_name_what_was_left_out() -> None:
    collector = OutputCollector(10)
    collector.feed(StreamOutput("stdout", "a" * 25))
    collector.close()
    outputs = CellOutputs(collector, RichOutputs(notes=["an image note."]))
    assert output_notes(_outcome(), outputs, 10) == [
        "stdout was 25 characters, over the budget of 10; the middle was left out.",
        "an image note.",
    ]


def test_an_interrupt_at_shutdown_is_explained() -> None:
    collector = OutputCollector(100)
    collector.feed(ErrorOutput("KeyboardInterrupt", "", []))
    notes = output_notes(_outcome(server_stopping=True), CellOutputs(collector), 100)
    assert notes == [
        (
            "The server is shutting down, so this cell was interrupted; call again once it is back "
            "(variables are not kept across a server restart)."
        )
    ]


def test_a_result_of_a_dead_kernel_reports_kernel_died() -> None:
    collector = OutputCollector(100)
    collector.feed(StreamOutput("stdout", "before\n"))
    outcome = _outcome(death=KernelDeath("The kernel died.", "replaced"))
    result = build_result("s", outcome, CellOutputs(collector), ["note."], 1.5)
    assert result.status == "error"
    assert result.error is not None
    assert (result.error.ename, result.error.evalue) == (KERNEL_DIED, "The kernel died.")
    assert (result.stdout, result.message, result.state_kept) == ("before\n", "note.", False)
    assert result.execution_count is None


def test_a_user_error_makes_an_ok_reply_an_error_and_is_recorded() -> None:
    collector = OutputCollector(100)
    collector.feed(ErrorOutput("ValueError", "bad", ["ValueError: bad"]))
    outcome = _outcome(reply=Reply("ok", {"execution_count": 3}), execution_count=3)
    result = build_result("s", outcome, CellOutputs(collector), [], 0.0)
    assert result.status == "error"
    assert result.error is not None
    assert result.error.ename == "ValueError"
    assert result.message is None
    record = cell_record("raise ValueError('bad')", outcome, collector)
    assert (record.status, record.execution_count) == ("error", 3)
    assert record.size == collector.nb_bytes + len("raise ValueError('bad')")


# ------------------------------------------------------------------ incarnations


def test_a_name_created_again_tells_each_caller_that_used_the_old_kernel_once() -> None:
    names = Incarnations()
    names.started("work", implicit=False)
    assert names.news("work", "mcp:a") is None
    assert names.news("work", "mcp:b") is None
    names.ended("work", "deleted", at=0.0, by="mcp:b")
    assert names.last_end("work") is not None
    names.started("work", implicit=False)  # create_session: its creator knows it is new
    assert names.last_end("work") is None
    assert names.news("work", None) is None
    told = names.news("work", "mcp:a")
    assert told == (
        "Session 'work' was deleted by another call at 00:00:00 UTC (delete_session); this is a "
        "new kernel, and earlier variables are gone."
    )
    assert names.news("work", "mcp:a") is None
    assert names.news("work", "mcp:b") is None  # it deleted the old one itself


def test_an_implicitly_restarted_name_tells_its_first_call_without_identity() -> None:
    names = Incarnations()
    names.started("default", implicit=True)
    names.ended("default", "expired", at=0.0, idle_s=1800)
    names.started("default", implicit=True)
    expired = (
        "Session 'default' had expired after 1800 s without use, so a fresh kernel was started; "
        "earlier variables are gone."
    )
    assert names.news("default", None) == expired
    assert names.news("default", None) is None


def test_a_caller_whose_old_kernel_is_forgotten_is_still_told() -> None:
    names = Incarnations()
    names.started("s", implicit=False)
    names.news("s", "stdio")
    for _ in range(300):  # more ends than are remembered
        names.ended("s", "deleted", at=0.0)
        names.started("s", implicit=False)
    assert names.news("s", "stdio") == (
        "Session 's' is a new kernel since your last call to it (the one you used ended); "
        "earlier variables are gone."
    )
