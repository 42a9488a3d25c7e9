import logging

from fermix.preprocess.progress import Progress


def test_plain_progress_logs_periodic_lines_with_counts(caplog):
    with caplog.at_level(logging.INFO, logger="fermix"), Progress(40, "plain") as bar:
        for i in range(40):
            bar.advance(failed=i % 10 == 0)
    lines = [r.getMessage() for r in caplog.records]
    assert 10 <= len(lines) <= 21  # about one line per 5%, not one per image
    assert lines[-1].startswith("preprocess: 40/40 images, 4 failed")


def test_none_progress_is_silent(caplog):
    with caplog.at_level(logging.INFO, logger="fermix"), Progress(5, "none") as bar:
        for _ in range(5):
            bar.advance()
    assert caplog.records == []
    assert bar.done == 5


def test_rich_progress_draws_a_bar_with_the_failure_count(capsys):
    with Progress(3, "rich") as bar:
        for i in range(3):
            bar.advance(failed=i == 0)
    err = capsys.readouterr()
    text = err.out + err.err
    assert "3/3" in text and "1 failed" in text
