"""Self-extracting wrappers in the two-step form: the payload bound to a name, then compiled and run."""

import base64
import lzma

import pytest

from harness.unwrap import WrapperError, is_wrapper, unwrap_source

SOURCE = "def f(x):\n    return x + 1\n"


def two_step(source: str, run: str = "exec(compile(_src, 'train_gpt.py', 'exec'))") -> str:
    blob = base64.b85encode(lzma.compress(source.encode())).decode()
    return ("import base64, lzma, linecache\n"
            "globals()['__file__'] = 'train_gpt.py'\n"
            f"_src = lzma.decompress(base64.b85decode(b'{blob}')).decode('utf-8')\n"
            "linecache.cache['train_gpt.py'] = (len(_src), None, _src.splitlines(True), 'train_gpt.py')\n"
            f"{run}\n")


@pytest.mark.parametrize("run", ["exec(compile(_src, 'train_gpt.py', 'exec'))", "exec(_src)"])
def test_payload_bound_to_a_name_is_unpacked(run):
    wrapped = two_step(SOURCE, run)
    assert is_wrapper(wrapped)
    assert unwrap_source(wrapped) == (SOURCE, 1)


def test_a_name_bound_to_something_else_is_not_a_payload():
    code = "import os\n_src = os.getcwd()\nprint(_src)\nexec(compile(_src, 'x', 'exec'))\n"
    assert not is_wrapper(code)  # other statements beside the exec: ordinary code
    with pytest.raises(WrapperError, match="unsupported"):
        unwrap_source("import os\n_src = os.popen('echo').read()\nexec(compile(_src, 'x', 'exec'))\n")
