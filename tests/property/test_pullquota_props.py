"""Hypothesis: the pull-quota machine never lets more pulls out than the registry's remaining
figure minus ``min_remaining``, however concurrent pulls are reserved, sent, counted by the
registry and answered (in any order), so a quota-planned run never meets Docker Hub's 429."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.ratelimit.pullquota import PullQuota
from ocync.ratelimit.signals import PullQuotaReading

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(min_value=1, max_value=4)),
        st.tuples(st.just("send"), st.just(0)),
        st.tuples(st.just("count"), st.integers(min_value=0, max_value=50)),  # the server counts one
        st.tuples(st.just("answer"), st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("lose"), st.integers(min_value=0, max_value=50)),  # no answer at all
        st.tuples(st.just("release"), st.integers(min_value=1, max_value=4)),
        st.tuples(st.just("head"), st.just(0)),  # a HEAD: a reading, no pull
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(min_value=0, max_value=40), min_remaining=st.integers(min_value=0, max_value=10), ops=OPS)
def test_never_reserves_or_sends_beyond_remaining_minus_min_remaining(
    start: int, min_remaining: int, ops: list[tuple[str, int]]
) -> None:
    quota = PullQuota(min_remaining)
    server = start  # the registry's real remaining count
    quota.observe(quota.ticket(), PullQuotaReading(server), 0.0, ok=True)
    sent: list[tuple[int, bool]] = []  # (ticket, counted by the server yet)
    reserved = 0
    for now, (op, arg) in enumerate(ops, start=1):
        if op == "reserve":
            if quota.reserve(arg):
                reserved += arg
        elif op == "release":
            quota.release(arg)
            reserved = max(0, reserved - arg)
        elif op == "send":
            ticket = quota.send()
            if ticket is not None:
                reserved = max(0, reserved - 1)
                sent.append((ticket, False))
        elif op == "count" and sent:
            i = arg % len(sent)
            ticket, counted = sent[i]
            if not counted:
                server -= 1
                sent[i] = (ticket, True)
        elif op in ("answer", "lose") and sent:
            ticket, counted = sent.pop(arg % len(sent))
            if not counted:
                server -= 1  # counted on the way out at the latest
            observed = PullQuotaReading(server) if op == "answer" else None
            quota.answered(ticket, observed, float(now), ok=op == "answer")
        elif op == "head":
            quota.observe(quota.ticket(), PullQuotaReading(server), float(now), ok=True)
        # the registry never went under min_remaining, so never answered 429
        assert server >= min_remaining or start < min_remaining and server == start, (server, start)
        stats = quota.statistics()
        assert stats.remaining is not None
        assert stats.reserved + stats.in_flight <= max(0, start - min_remaining)
        available = quota.available()
        assert available is not None and 0 <= available <= max(0, stats.remaining - min_remaining)
    assert quota.pulls_sent <= max(0, start - min_remaining)
