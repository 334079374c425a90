"""Running the trustlab command inside a test and checking its one-line errors."""

import pytest

from trustlab.cli import main


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["--quiet", *map(str, args)])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trustlab: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
