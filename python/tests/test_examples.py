"""The shipped examples run and print exactly the seed's call path; programs exit cleanly.

``python/examples/client.py`` (``ds``) and ``python/examples/aclient.py`` (``ads``) are run
as programs, from an empty directory, and their whole standard output and exit status are
checked. A plain ``ads`` program, run repeatedly, exits with status 0 every time (no crash
while the interpreter finalizes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "client.py": (
        "Model sync get()\n"
        "Model base _get()\n"
        "get() with key = my_key\n"
        "Got a model with key=my_key\n"
    ),
    "aclient.py": (
        "Model async get()\n"
        "Model base _get()\n"
        "async get() with key = my_key\n"
        "Got a model with key=my_key\n"
    ),
}


def run_python(args, cwd: Path) -> subprocess.CompletedProcess:
    # Unbuffered, so that every line printed is on stdout even if the exit crashes.
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_prints_the_call_path(script: str, tmp_path: Path):
    path = EXAMPLES / script
    assert path.is_file(), f"{path} is missing"
    result = run_python([str(path)], tmp_path)
    assert result.stdout == EXPECTED[script], result.stderr
    assert result.returncode == 0, result.stderr
    # It used the store it was given: nothing was written to the working directory.
    assert list(tmp_path.iterdir()) == []


PLAIN_ADS_PROGRAM = """\
import asyncio, ads

async def main():
    db = await ads.Datastore.open("memory:")
    await db.put("Thing:1", {})
    await asyncio.gather(*(db.get("Thing:1") for _ in range(50)))
    print("done")

asyncio.run(main())
"""


@pytest.mark.parametrize("program", ["plain", "aclient.py"])
def test_ads_programs_exit_cleanly(program: str, tmp_path: Path):
    """An ``ads`` program exits with status 0 right after its last call completes.

    A regression test: when ``ads`` delivered results from tokio threads (through
    ``loop.call_soon_threadsafe``, which lets go of the GIL), such a thread could take the
    GIL back while the interpreter was finalizing and crash the process (SIGSEGV or
    SIGABRT) in about one run of five; log events forwarded from tokio threads
    (``enable_logging``, as aclient.py does) could too.
    """
    if program == "plain":
        script = tmp_path / "plain.py"
        script.write_text(PLAIN_ADS_PROGRAM)
        expected = "done\n"
    else:
        script = EXAMPLES / program
        expected = EXPECTED[program]
    for run in range(8):
        result = run_python([str(script)], tmp_path)
        assert result.stdout == expected
        assert result.returncode == 0, f"run {run + 1}: exit status {result.returncode}: {result.stderr[-300:]}"
