"""Plain words to cron: what a person types in the schedule box."""

from __future__ import annotations

import pytest

from troika_frontend.repeat import RepeatError, to_cron


@pytest.mark.parametrize(
    ("words", "cron"),
    [
        ("every minute", "* * * * *"),
        ("every 15 minutes", "*/15 * * * *"),
        ("every 2 hours", "0 */2 * * *"),
        ("every hour", "0 * * * *"),
        ("hourly at :30", "30 * * * *"),
        ("every day at 9", "0 9 * * *"),
        ("Daily at 18:30", "30 18 * * *"),
        ("every weekday at 8am", "0 8 * * 1-5"),
        ("every weekend at 10:00", "0 10 * * 0,6"),
        ("every monday at 9:30", "30 9 * * 1"),
        ("Mondays and Thursdays at 7pm", "0 19 * * 1,4"),
        ("every tue, fri at 12pm", "0 12 * * 2,5"),
        ("every sun at 12am", "0 0 * * 0"),
        ("every month on the 1st at 9", "0 9 1 * *"),
        ("monthly on day 15 at 12:00", "0 12 15 * *"),
        ("*/5 * * * *", "*/5 * * * *"),
        ("0 9 * * MON-FRI", "0 9 * * mon-fri"),
    ],
)
def test_words_become_the_cron_a_person_means(words: str, cron: str) -> None:
    assert to_cron(words) == cron


@pytest.mark.parametrize(
    ("words", "hint"),
    [
        ("", "describe how often"),
        ("every day", "say when"),
        ("every 99 minutes", "1 to 59"),
        ("every day at 25:00", "is not a time"),
        ("every day at 13pm", "is not a time"),
        ("every month at 9", "which day of the month"),
        ("every month on the 40th at 9", "not a day of the month"),
        ("whenever it rains at 9", "every weekday at 8am"),
    ],
)
def test_words_it_cannot_read_say_what_it_can(words: str, hint: str) -> None:
    with pytest.raises(RepeatError, match=hint):
        to_cron(words)
