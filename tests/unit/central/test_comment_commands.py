"""Comments as central commands: the spec checks the text, the command carries it, and many
long comments are split over ``down/commands`` messages the sensor accepts."""

from __future__ import annotations

import pytest

from otwatch.central.commands import MAX_COMMENT, CommandRefused, Comment, command_for
from otwatch.central.commands import command_messages as messages
from otwatch.central.store.commands import command_message
from otwatch.central.store.models import Command
from otwatch.sync.protocol.messages import MAX_BYTES, CommandBatch, decode


def comment_row(i: int, text: str) -> Command:
    return Command(
        id=f"00000000-0000-4000-8000-{i:012d}", sensor="s1", kind="comment", alert_id=i,
        value=None, hlc=1, actor="user:alice", issued_ns=1, params={"text": text},
        status="pending", sent_count=1,
    )  # fmt: skip


def test_the_comment_spec_checks_its_text():
    assert command_for("comment", alert_id=3, text="  checked  ") == Comment(3, "checked")
    for bad in ("", "   ", "x" * (MAX_COMMENT + 1)):
        with pytest.raises(CommandRefused, match="comment needs"):
            command_for("comment", alert_id=3, text=bad)
    with pytest.raises(CommandRefused, match="needs an alert id"):
        command_for("comment", text="x")


def test_long_comments_are_split_over_messages_the_sensor_accepts():
    text = "ü€" * (MAX_COMMENT // 2)  # 2,000 characters, 5,000 bytes of UTF-8
    rows = [comment_row(i, text) for i in range(40)]
    assert command_message(rows[0])["text"] == text
    out = messages("s1", rows)
    assert len(out) > 1
    got = []
    for message in out:
        assert len(message.payload) <= MAX_BYTES["commands"]
        got += decode(CommandBatch, message.payload, MAX_BYTES["commands"]).commands
    assert [c.alert_id for c in got] == list(range(40)) and {c.text for c in got} == {text}


def test_commands_without_text_carry_no_text_key():
    row = comment_row(1, "x")
    row.kind, row.params = "status", {}
    assert "text" not in command_message(row)  # sensors of the previous release accept it
